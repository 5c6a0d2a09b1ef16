"""error_type, error_message, input_text and output_text: the rules that may need whole spans.

``errors`` and ``span_texts`` are the rules for one span, as written against protobuf objects
before the columnar decoder. Most spans need only their slot values, so each rule runs once per
distinct combination of the slots it reads (with no events and no attribute dict: nothing it
reads is missing then); input and output text are separate rules, so a repeated prompt is
extracted once even when every answer differs. Spans with events a rule reads (exception events
for errors, GenAI message events for text) or with flattened message lists
(``gen_ai.prompt.0.content``, ``llm.input_messages.0...``) are decoded by protobuf and run it
one by one; events of other names change neither result, so they do not cost that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from core.model import as_str
from processors.normalize import conventions as conv
from processors.normalize import derive
from processors.normalize.columns import Ranges
from processors.normalize.decoded import Decoded, col
from processors.normalize.kernels import intern_ranges
from processors.normalize.message_text import text_of
from processors.normalize.slots import derived_strings, per_group
from processors.normalize.wire import E_NAME_LEN, E_NAME_OFF, E_SPAN, S_MSG_LEN, S_MSG_OFF

if TYPE_CHECKING:
    from processors.normalize.canonical import Rules

# Slots whose presence means the span may report an error (so error columns are worth deriving).
ERROR_SLOTS = frozenset({"error_type", "error_message", "sig.rpc_error_code", "sig.error_message"})
TEXT_SLOTS = frozenset(
    {
        "input_text",
        "output_text",
        "sig.indexed_input",
        "sig.indexed_output",
        "sig.input_other",
        "sig.output_other",
    }
)
# The slots each rule reads: equal values of these give equal results.
ERROR_INPUTS = (*sorted(ERROR_SLOTS), "sig.tool_is_error", "sig.tool_result")
TEXT_INPUTS = (  # input_text (the entity name tells a method's self among its arguments), output_text
    ("input_text", "sig.indexed_input", "sig.input_other", "sig.entity_name"),
    ("output_text", "sig.indexed_output", "sig.output_other"),
)
# Events the rules read; events of other names change neither result.
_ERROR_EVENTS = frozenset({conv.EXCEPTION_EVENT})
_TEXT_EVENTS = conv.INPUT_EVENTS | conv.OUTPUT_EVENTS | {conv.DETAILS_EVENT}
STATUSES = ("unset", "ok", "error")


def columns(rules: Rules, tool: np.ndarray) -> tuple[Ranges, Ranges, Ranges, Ranges]:
    """(error_type, error_message, input_text, output_text) of every span; ``tool`` marks
    tool/MCP spans (whose failed results count as errors)."""
    d, r = rules.d, rules.r
    spans = d.spans
    # The status message matters only on error spans: elsewhere it is left out of the key.
    message = np.where((rules.status == 2) & (spans[:, S_MSG_LEN] > 0), spans[:, S_MSG_LEN], -1)
    message_id, message_first = intern_ranges(d.buf, col(spans, S_MSG_OFF), message)
    keys = np.column_stack([tool, rules.status, message_id, r.vids(ERROR_INPUTS)])

    def error_rule(row: np.ndarray, events: list[dict[str, Any]]) -> tuple[str | None, str | None]:
        status_message = None
        if row[2] >= 0:
            s = int(message_first[row[2]])
            status_message = d.text(spans[s, S_MSG_OFF], spans[s, S_MSG_LEN])
        return errors(r.found(ERROR_INPUTS, row[3:]), events, bool(row[0]), STATUSES[row[1]], status_message)

    # Spans with events a rule reads (or flattened message lists) run it one by one.
    one_by_one = _with_events(d, _ERROR_EVENTS)
    error_type, error_message = _evaluate(
        rules,
        keys,
        one_by_one,
        lambda row: error_rule(row, []),
        lambda s: error_rule(keys[s], d.span_dicts(s)[0]),
    )
    input_text, output_text = (_text_column(rules, i, slots) for i, slots in enumerate(TEXT_INPUTS))
    return error_type, error_message, input_text, output_text


def _text_column(rules: Rules, direction: int, slots: tuple[str, ...]) -> Ranges:
    """input_text (direction 0) or output_text (1), read from ``slots``."""
    d, r, config = rules.d, rules.r, rules.settings.config
    if not config.capture_text:
        return Ranges.nulls(d.spans.shape[0])
    keys = r.vids(slots)
    indexed = r.has(slots[1])

    def rule(row: np.ndarray, events: list[dict[str, Any]], attrs: dict[str, Any]) -> str | None:
        return span_texts(config, r.found(slots, row), events, attrs)[direction]

    def single(s: int) -> str | None:
        events, attrs = d.span_dicts(s)
        return rule(keys[s], events, attrs)

    one_by_one = _with_events(d, _TEXT_EVENTS) | indexed
    (column,) = _evaluate(rules, keys, one_by_one, lambda row: rule(row, [], {}), single)
    return column


def _with_events(d: Decoded, names: frozenset[str]) -> np.ndarray:
    """Per span: whether it has an event named in ``names``."""
    out = np.zeros(d.spans.shape[0], bool)
    if d.events.shape[0]:
        ids, first = intern_ranges(d.buf, col(d.events, E_NAME_OFF), col(d.events, E_NAME_LEN))
        hit = np.array(
            [d.text(d.events[e, E_NAME_OFF], d.events[e, E_NAME_LEN]) in names for e in first.tolist()]
        )
        out[d.events[hit[ids], E_SPAN]] = True
    return out


def _evaluate(
    rules: Rules,
    keys: np.ndarray,
    one_by_one: np.ndarray,
    by_key: Callable[[np.ndarray], Any],
    by_span: Callable[[int], Any],
) -> list[Ranges]:
    """String columns of a rule: ``by_key`` once per distinct row of ``keys``, except for the
    ``one_by_one`` spans, which get ``by_span``. A rule giving a tuple gives one column each."""
    n = keys.shape[0]
    rows = np.flatnonzero(~one_by_one)
    results, group = per_group(keys[rows], by_key)
    singles = np.flatnonzero(one_by_one)
    results += [by_span(s) for s in singles.tolist()]
    group = np.concatenate([group, np.arange(len(results) - singles.size, len(results))])
    rows = np.concatenate([rows, singles])
    tuples = results and isinstance(results[0], tuple)
    columns = [[result[k] for result in results] for k in range(len(results[0]))] if tuples else [results]
    out = []
    for values in columns:
        column = Ranges.nulls(n)
        derived_strings(column, rows, values, group, rules.pool)
        out.append(column)
    return out


def errors(
    found: dict[str, Any], events: list[dict[str, Any]], tool: bool, status: str, status_message: str | None
) -> tuple[str | None, str | None]:
    """(error_type, error_message) of one span.

    error_message: configured names, else the first exception event's message, else
    ``rpc.jsonrpc.error_message``/``error.message``, else the status message of an error span.
    The derive.* calls are skipped when the span carries nothing they could use.
    """
    error_type = error_message = None
    if events or status == "error" or not ERROR_SLOTS.isdisjoint(found):
        exc_type, exc_message = derive.exception_of(events)
        error_type = derive.error_type(found, exc_type)
        error_message = derive.error_message(found, exc_message, status, status_message)
    if tool and error_type is None:
        error_type = derive.tool_error(found)  # MCP reports a failed tool inside a successful result
    return error_type, error_message


def span_texts(
    config: Any, found: dict[str, Any], events: list[dict[str, Any]], attrs: dict[str, Any]
) -> tuple[str | None, str | None]:
    """(input_text, output_text) of one span; none when text is not captured or not sent."""
    if config.capture_text and (events or not TEXT_SLOTS.isdisjoint(found)):
        return texts(config.max_text_length, attrs, found, events)
    return None, None


def texts(
    limit: int, attrs: dict[str, Any], found: dict[str, Any], events: list[dict[str, Any]]
) -> tuple[str | None, str | None]:
    """(input_text, output_text), each from the first source that has it, truncated.

    Sources, most specific first: message attributes (and configured names), flattened
    message lists, GenAI message events, then generic inputs/outputs such as input.value.
    """
    ev_in = ev_out = None
    if events:
        ev_in, ev_out = derive.event_text(events)
    entity = as_str(found.get("sig.entity_name"))
    inp = text_of(found.get("input_text"), entity=entity)
    if inp is None and "sig.indexed_input" in found:
        inp = derive.indexed_text(attrs, conv.INPUT_MESSAGE_FAMILIES)
    if inp is None:
        inp = ev_in if ev_in is not None else text_of(found.get("sig.input_other"), entity=entity)
    out = text_of(found.get("output_text"), answer=True)
    if out is None and "sig.indexed_output" in found:
        out = derive.indexed_text(attrs, conv.OUTPUT_MESSAGE_FAMILIES, answer=True)
    if out is None:
        out = ev_out if ev_out is not None else text_of(found.get("sig.output_other"), answer=True)
    if inp is not None and len(inp) > limit:
        inp = inp[:limit]
    if out is not None and len(out) > limit:
        out = out[:limit]
    return inp, out
