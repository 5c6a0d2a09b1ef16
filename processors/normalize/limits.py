"""Attribute and event limits: over-long strings and keys are cut, whatever is past a count dropped.

A client that sends a 50 MB prompt as an attribute, ten thousand attributes or events on one
span, or an array of a million numbers must not cost a batch its place in storage: the batch is
kept, the surplus cut and counted (``agentwatch_attribute_values_truncated_total``,
``agentwatch_attributes_dropped_total``, ``agentwatch_attribute_keys_truncated_total``,
``agentwatch_array_values_dropped_total``, ``agentwatch_span_events_dropped_total``).

- ``max_attribute_value_length``: characters (code points) of a string value; strings inside
  arrays and kvlists are cut too. Bytes and numbers are left alone (as the OpenTelemetry SDK's
  attribute limits do). Counted once per attribute whose value had anything cut.
- ``max_attribute_count``: attributes kept per span, per event and per resource, and entries kept
  per kvlist value (nested ones too): the first ones in the order they were sent, so a repeated
  key counts each time it appears. Counted per attribute or entry dropped.
- ``max_attribute_key_length``: characters of a key (attribute keys and kvlist keys); a longer key
  is cut, not dropped, so the value stays, under the key's first characters. Counted per key cut.
- ``max_array_length``: elements kept of an array value (of any element type, nested arrays
  too), first sent first kept. Counted per element dropped.
- ``max_events_per_span``: events kept per span, first sent first kept; a dropped event's
  attributes are neither seen nor counted. Counted per event dropped.

Surplus is dropped before the rest is looked at: an element past ``max_array_length`` does not
count as a cut string too. The limits apply where the rows are made, so every column agrees: the
``attributes`` and ``events`` JSON, the canonical columns read from the attributes, the events
table itself and the rules that read whole spans (exception and message events): those decode a
span with protobuf, and ``limit_span`` applies the limits to the spans ``apply_limits`` found
something to limit in.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from numba import njit
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from processors.normalize.wire import (
    A_KEY_LEN,
    A_KEY_OFF,
    A_OWNER,
    A_OWNER_KIND,
    A_TYPE,
    A_VLEN,
    A_VOFF,
    E_ATTR_COUNT,
    E_ATTR_START,
    E_SPAN,
    ENTRY,
    IRREGULAR,
    OWNER_DROPPED,
    R_ATTR_COUNT,
    R_ATTR_START,
    S_ATTR_COUNT,
    S_ATTR_START,
    S_EVENT_COUNT,
    S_EVENT_START,
    T_ARRAY,
    T_KVLIST,
    T_STR,
    any_value_payload,
    key_value_parts,
    next_field,
)


@dataclass(frozen=True)
class Limits:
    max_attribute_value_length: int
    max_attribute_count: int
    max_attribute_key_length: int
    max_array_length: int
    max_events_per_span: int

    def as_array(self) -> np.ndarray:
        """The limits as the kernels take them (L_* indexes)."""
        return np.array(
            [
                self.max_attribute_value_length,
                self.max_attribute_count,
                self.max_attribute_key_length,
                self.max_array_length,
                self.max_events_per_span,
            ],
            np.int64,
        )

    @property
    def nothing_to_cut(self) -> int:
        """Bytes a value may take with nothing in it over a limit: a string or key over a limit
        takes more bytes than that, and so does an array or kvlist over one (2 bytes or more an
        entry). ``_limit_table`` skips the same values."""
        return min(
            self.max_attribute_value_length,
            self.max_attribute_key_length,
            self.max_array_length,
            self.max_attribute_count,
        )


L_VALUE, L_COUNT, L_KEY, L_ARRAY, L_EVENTS = range(5)


@dataclass
class LimitCounts:
    values_truncated: int = 0
    attributes_dropped: int = 0
    keys_truncated: int = 0
    array_values_dropped: int = 0
    events_dropped: int = 0

    def add(self, other: LimitCounts) -> None:
        for counter in fields(self):
            setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))


C_VALUES, C_ATTRS, C_KEYS, C_ARRAY, C_EVENTS = range(5)  # kernel counters, LimitCounts order
_MAX_DEPTH = 100  # protobuf's own recursion limit: deeper values are left to it


@njit(cache=True)
def utf8_prefix(buf: np.ndarray, off: int, length: int, max_chars: int) -> int:
    """Bytes of the first ``max_chars`` characters of the UTF-8 text buf[off:off+length]."""
    if length <= max_chars:  # never more characters than bytes
        return length
    chars = 0
    for i in range(off, off + length):
        if (buf[i] & 0xC0) != 0x80:  # a character starts here
            if chars == max_chars:
                return i - off
            chars += 1
    return length


@njit(cache=True, inline="always")
def _is_cut(buf: np.ndarray, off: int, length: int, max_chars: int) -> bool:
    return length > max_chars and utf8_prefix(buf, off, length, max_chars) < length


@njit(cache=True, inline="always")
def _drop_rows(attrs: np.ndarray, start: int, count: int) -> None:
    for a in range(start, start + count):
        attrs[a, A_OWNER_KIND] = OWNER_DROPPED  # nothing that scans the table by owner sees it


@njit(cache=True)
def _walk(buf: np.ndarray, off: int, length: int, kind: int, limits: np.ndarray, found: np.ndarray) -> bool:
    """Count what the limits cut inside an array or kvlist value (its payload buf[off:off+length])
    into ``found`` (C_* order; C_VALUES 1 if any string is cut). False, with ``found`` partly
    filled, for an encoding protobuf would merge or reject: the caller asks protobuf instead."""
    pos = np.empty(_MAX_DEPTH, np.int64)  # a stack of the arrays/kvlists being walked
    ends = np.empty(_MAX_DEPTH, np.int64)
    kinds = np.empty(_MAX_DEPTH, np.int64)
    seen = np.empty(_MAX_DEPTH, np.int64)  # entries met so far
    top = 0
    pos[0], ends[0], kinds[0], seen[0] = off, off + length, kind, 0
    while top >= 0:
        if pos[top] >= ends[top]:
            top -= 1
            continue
        tag, start, end = next_field(buf, pos[top], ends[top])
        if end < 0:
            return False
        pos[top] = end
        if tag != ENTRY:
            continue  # an unknown field
        seen[top] += 1
        in_array = kinds[top] == T_ARRAY
        if seen[top] > limits[L_ARRAY if in_array else L_COUNT]:
            found[C_ARRAY if in_array else C_ATTRS] += 1
            continue
        if not in_array:  # a KeyValue: its key, then its value
            key_off, key_len, start, value_len = key_value_parts(buf, start, end)
            if key_len == IRREGULAR:
                return False
            found[C_KEYS] += _is_cut(buf, key_off, key_len, limits[L_KEY])
            if value_len < 0:
                continue
            end = start + value_len
        value_kind, value_off, value_len = any_value_payload(buf, start, end)
        if value_kind == IRREGULAR:
            return False
        if value_kind == T_STR and _is_cut(buf, value_off, value_len, limits[L_VALUE]):
            found[C_VALUES] = 1
        elif value_kind in (T_ARRAY, T_KVLIST):
            if top + 1 == _MAX_DEPTH:
                return False
            top += 1
            pos[top], ends[top], kinds[top], seen[top] = value_off, value_off + value_len, value_kind, 0
    return True


@njit(cache=True)
def _limit_attribute(
    buf: np.ndarray,
    attrs: np.ndarray,
    a: int,
    limits: np.ndarray,
    counts: np.ndarray,
    irregular: np.ndarray,
    found: np.ndarray,
) -> bool:
    """Limit attribute ``a``, adding to ``counts``; whether anything was limited.

    Strings and keys are cut in the table. Arrays and kvlists are formatted in Python
    (``limit_any_value``): here they are only walked to count (``found``: scratch for ``_walk``);
    ``irregular`` marks those protobuf has to count."""
    limited = False
    if attrs[a, A_KEY_LEN] > limits[L_KEY]:
        length = utf8_prefix(buf, attrs[a, A_KEY_OFF], attrs[a, A_KEY_LEN], limits[L_KEY])
        if length < attrs[a, A_KEY_LEN]:
            attrs[a, A_KEY_LEN] = length
            counts[C_KEYS] += 1
            limited = True
    kind, value_len = attrs[a, A_TYPE], attrs[a, A_VLEN]
    if kind == T_STR and value_len > limits[L_VALUE]:
        length = utf8_prefix(buf, attrs[a, A_VOFF], value_len, limits[L_VALUE])
        if length < value_len:
            attrs[a, A_VLEN] = length
            counts[C_VALUES] += 1
            limited = True
    elif kind in (T_ARRAY, T_KVLIST):
        found[:] = 0
        if _walk(buf, attrs[a, A_VOFF], value_len, kind, limits, found):
            counts[C_VALUES : C_ARRAY + 1] += found
            limited |= bool(found.any())
        else:
            irregular[a] = limited = True
    return limited


@njit(cache=True)
def _limit_table(
    buf: np.ndarray,
    attrs: np.ndarray,
    table: np.ndarray,
    rows: int,
    start_col: int,
    count_col: int,
    limits: np.ndarray,
    counts: np.ndarray,
    irregular: np.ndarray,
    found: np.ndarray,
) -> np.ndarray:
    """Limit the attributes of each of the first ``rows`` rows of a span, resource or event
    table (its count column gets the count kept), adding to ``counts``; per row, whether
    anything was limited.

    One loop over the whole table, no call per row: a call passing arrays costs more than the
    test that most attributes need (numba counts references to every array passed)."""
    limited = np.zeros(rows, np.bool_)
    max_count = limits[L_COUNT]
    nothing_to_cut = min(limits[L_VALUE], limits[L_KEY], limits[L_ARRAY], max_count)  # Limits'
    for row in range(rows):
        start, count = table[row, start_col], table[row, count_col]
        if count > max_count:
            limited[row] = True
            table[row, count_col] = max_count
            counts[C_ATTRS] += count - max_count
            for a in range(start + max_count, start + count):
                attrs[a, A_OWNER_KIND] = OWNER_DROPPED  # nothing that scans the table by owner sees it
            count = max_count
        for a in range(start, start + count):
            if max(attrs[a, A_KEY_LEN], attrs[a, A_VLEN]) > nothing_to_cut and _limit_attribute(
                buf, attrs, a, limits, counts, irregular, found
            ):
                limited[row] = True
    return limited


@njit(cache=True)
def _limit_events(
    spans: np.ndarray, attrs: np.ndarray, events: np.ndarray, max_events: int, limited: np.ndarray
) -> tuple[int, int]:
    """Keep each span's first ``max_events`` events, moving the kept rows together so the event
    table holds nothing else; (rows kept, events dropped). Marks the spans that lost some."""
    kept = dropped = 0
    for s in range(spans.shape[0]):
        start, count = spans[s, S_EVENT_START], spans[s, S_EVENT_COUNT]
        keep = min(count, max_events)
        if keep < count:
            limited[s] = True
            spans[s, S_EVENT_COUNT] = keep
            for e in range(start + keep, start + count):
                _drop_rows(attrs, events[e, E_ATTR_START], events[e, E_ATTR_COUNT])
        if kept != start:  # only after a drop: rows move towards the front, never onto unread ones
            spans[s, S_EVENT_START] = kept
            for e in range(keep):
                events[kept + e] = events[start + e]
                first = events[kept + e, E_ATTR_START]
                attrs[first : first + events[kept + e, E_ATTR_COUNT], A_OWNER] = kept + e
        kept += keep
        dropped += count - keep
    return kept, dropped


@njit(cache=True)
def apply_limits(
    buf: np.ndarray,
    spans: np.ndarray,
    attrs: np.ndarray,
    resources: np.ndarray,
    events: np.ndarray,
    limits: np.ndarray,
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """Cut the scanner's tables in place: (counts in LimitCounts order, event rows kept, mask of
    the attributes whose nested value protobuf has to count, mask of the spans a limit changed:
    their attributes, events or events' attributes). Only the first ``event rows kept`` rows of
    ``events`` are events afterwards."""
    counts = np.zeros(5, np.int64)
    irregular = np.zeros(attrs.shape[0], np.bool_)
    limited = np.zeros(spans.shape[0], np.bool_)
    found = np.empty(4, np.int64)
    n_events, counts[C_EVENTS] = _limit_events(spans, attrs, events, limits[L_EVENTS], limited)
    args = (limits, counts, irregular, found)
    limited |= _limit_table(buf, attrs, spans, spans.shape[0], S_ATTR_START, S_ATTR_COUNT, *args)
    _limit_table(buf, attrs, resources, resources.shape[0], R_ATTR_START, R_ATTR_COUNT, *args)
    by_event = _limit_table(buf, attrs, events, n_events, E_ATTR_START, E_ATTR_COUNT, *args)
    for e in np.flatnonzero(by_event):
        limited[events[e, E_SPAN]] = True
    return counts, n_events, irregular, limited


# --- the same limits on protobuf messages (formatting nested values, per-span rules) ----------


def limit_any_value(value: AnyValue, limits: Limits) -> LimitCounts:
    """Apply the limits to ``value`` (nested values too) in place; what was cut, counted as
    ``apply_limits`` counts it (values_truncated 1 if any string was cut)."""
    counts = LimitCounts()
    counts.values_truncated = int(_limit_nested(value, limits, counts))
    return counts


def _limit_nested(value: AnyValue, limits: Limits, counts: LimitCounts) -> bool:
    """Whether any string in ``value`` was cut; the other cuts are added to ``counts``."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        if len(value.string_value) > limits.max_attribute_value_length:
            value.string_value = value.string_value[: limits.max_attribute_value_length]
            return True
        return False
    if kind == "array_value":
        items = value.array_value.values
        counts.array_values_dropped += max(0, len(items) - limits.max_array_length)
        del items[limits.max_array_length :]
        cut = [_limit_nested(item, limits, counts) for item in items]  # all of them, not up to the first
        return any(cut)
    if kind == "kvlist_value":
        pairs = value.kvlist_value.values
        counts.attributes_dropped += max(0, len(pairs) - limits.max_attribute_count)
        del pairs[limits.max_attribute_count :]
        counts.keys_truncated += sum(_limit_key(pair, limits) for pair in pairs)
        cut = [_limit_nested(pair.value, limits, counts) for pair in pairs]
        return any(cut)
    return False


def _limit_key(pair: KeyValue, limits: Limits) -> bool:
    if len(pair.key) > limits.max_attribute_key_length:
        pair.key = pair.key[: limits.max_attribute_key_length]
        return True
    return False


def _limit_pairs(pairs: RepeatedCompositeFieldContainer[KeyValue], limits: Limits) -> None:
    del pairs[limits.max_attribute_count :]
    uncounted = LimitCounts()  # apply_limits counted them
    for pair in pairs:
        _limit_key(pair, limits)
        _limit_nested(pair.value, limits, uncounted)


def limit_span(span: Span, limits: Limits) -> None:
    """The limits on a protobuf span (for the rules that read whole spans), in place."""
    _limit_pairs(span.attributes, limits)
    del span.events[limits.max_events_per_span :]
    for event in span.events:
        _limit_pairs(event.attributes, limits)
