"""Attribute limits: over-long string values are cut, attributes past the count are dropped.

A client that sends a 50 MB prompt as an attribute, or ten thousand attributes on one span,
must not cost a batch its place in storage: the batch is kept, the values are cut and counted
(``agentwatch_attribute_values_truncated_total`` / ``agentwatch_attributes_dropped_total``).

- ``max_attribute_value_length``: characters (code points) of a string value; strings inside
  arrays and kvlists are cut too. Bytes, numbers and keys are left alone (as the OpenTelemetry
  SDK's attribute limits do).
- ``max_attribute_count``: attributes kept per span, per event and per resource: the first ones
  in the order they were sent, so a repeated key counts each time it appears.

The limits apply where the rows are made, so every column agrees: the ``attributes`` JSON, the
canonical columns read from the attributes, and the per-span rules (``limit_span``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from numba import njit
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from processors.wire import (
    A_OWNER_KIND,
    A_TYPE,
    A_VLEN,
    A_VOFF,
    E_ATTR_COUNT,
    E_ATTR_START,
    OWNER_DROPPED,
    R_ATTR_COUNT,
    R_ATTR_START,
    S_ATTR_COUNT,
    S_ATTR_START,
    T_ARRAY,
    T_KVLIST,
    T_STR,
)


@dataclass(frozen=True)
class Limits:
    max_attribute_value_length: int
    max_attribute_count: int


@dataclass
class LimitCounts:
    values_truncated: int = 0
    attributes_dropped: int = 0


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


@njit(cache=True)
def _limit_set(
    buf: np.ndarray, attrs: np.ndarray, start: int, count: int, max_length: int, max_count: int
) -> tuple[int, int]:
    """Limit attribute rows [start, start+count); (kept count, strings cut)."""
    keep = min(count, max_count)
    for a in range(start + keep, start + count):
        attrs[a, A_OWNER_KIND] = OWNER_DROPPED  # nothing that scans the table by owner sees it
    cut = 0
    for a in range(start, start + keep):
        if attrs[a, A_TYPE] == T_STR and attrs[a, A_VLEN] > max_length:
            length = utf8_prefix(buf, attrs[a, A_VOFF], attrs[a, A_VLEN], max_length)
            if length < attrs[a, A_VLEN]:
                attrs[a, A_VLEN] = length
                cut += 1
    return keep, cut


@njit(cache=True)
def apply_limits(
    buf: np.ndarray,
    spans: np.ndarray,
    attrs: np.ndarray,
    resources: np.ndarray,
    events: np.ndarray,
    max_length: int,
    max_count: int,
) -> tuple[int, int]:
    """Cut the scanner's tables in place; (string values cut, attributes dropped).

    Only plain strings are cut here; arrays and kvlists are formatted in Python
    (``limit_any_value``)."""
    cut = 0
    dropped = 0
    for table, start_col, count_col in (
        (spans, S_ATTR_START, S_ATTR_COUNT),
        (resources, R_ATTR_START, R_ATTR_COUNT),
        (events, E_ATTR_START, E_ATTR_COUNT),
    ):
        for row in range(table.shape[0]):
            count = table[row, count_col]
            keep, n_cut = _limit_set(buf, attrs, table[row, start_col], count, max_length, max_count)
            table[row, count_col] = keep
            cut += n_cut
            dropped += count - keep
    return cut, dropped


def nested_candidates(attrs: np.ndarray, max_length: int) -> np.ndarray:
    """Kept array/kvlist attributes whose encoding is long enough to hold an over-long string."""
    kind = attrs[:, A_TYPE]
    return np.flatnonzero(
        ((kind == T_ARRAY) | (kind == T_KVLIST))
        & (attrs[:, A_VLEN] > max_length)
        & (attrs[:, A_OWNER_KIND] != OWNER_DROPPED)
    )


def limit_any_value(value: AnyValue, max_length: int) -> bool:
    """Cut every string in ``value`` (nested ones too) in place; whether any was cut."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        if len(value.string_value) > max_length:
            value.string_value = value.string_value[:max_length]
            return True
        return False
    if kind == "array_value":
        items = value.array_value.values
    elif kind == "kvlist_value":
        items = [pair.value for pair in value.kvlist_value.values]
    else:
        return False
    cut = [limit_any_value(item, max_length) for item in items]  # all of them, not up to the first
    return any(cut)


def _limit_pairs(pairs: RepeatedCompositeFieldContainer[KeyValue], limits: Limits) -> None:
    del pairs[limits.max_attribute_count :]
    for pair in pairs:
        limit_any_value(pair.value, limits.max_attribute_value_length)


def limit_span(span: Span, limits: Limits) -> None:
    """The limits on a protobuf span (for the rules that read whole spans), in place."""
    _limit_pairs(span.attributes, limits)
    for event in span.events:
        _limit_pairs(event.attributes, limits)
