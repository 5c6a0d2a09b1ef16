"""Columnar decoding of ExportTraceServiceRequest wire bytes: one numba pass, flat int64 tables.

``scan`` walks the protobuf wire format of every request of a batch (all payloads concatenated
into one ``np.uint8`` buffer) and records where things are instead of building objects: per
span its ids, name, times, kind, status and which rows of the attribute and event tables are
its own; per attribute its key, value type and value (or the byte range of the value); per
resource, scope and event the same. Nothing is copied out of the buffer, so later stages gather
bytes in bulk. Field numbers are those of opentelemetry/proto/{trace,common,resource}/v1.

Decoding follows protobuf's rules where the tables can express them: unknown fields (and known
fields with an unexpected wire type) are skipped, the last occurrence of a scalar field wins.
A few legal but unusual encodings cannot be expressed - a singular message field sent twice
(protobuf merges the two), two value fields in one AnyValue, a span's attributes interleaved
with its events - and make ``scan`` report the request as NONCANONICAL; the caller re-encodes
that request with protobuf (canonical form) and scans again. Every read is bounds-checked: a
malformed payload gives MALFORMED, never a read outside the buffer.
"""

from __future__ import annotations

import numpy as np
from numba import njit

OK, MALFORMED, NONCANONICAL = 0, -1, -2

# Span table columns. *_OFF/*_LEN are byte ranges in the buffer; a missing field has length 0.
(S_REQ, S_RES, S_SCOPE, S_OFF, S_LEN, S_TRACE_OFF, S_TRACE_LEN, S_ID_OFF, S_ID_LEN, S_PARENT_OFF,
 S_PARENT_LEN, S_NAME_OFF, S_NAME_LEN, S_KIND, S_START, S_END, S_CODE, S_MSG_OFF, S_MSG_LEN,
 S_ATTR_START, S_ATTR_COUNT, S_EVENT_START, S_EVENT_COUNT) = range(23)  # fmt: skip
SPAN_FIELDS = 23

# Attribute (KeyValue) table columns. A_VOFF/A_VLEN: the string/bytes payload, or the inner
# message of an array/kvlist; A_INT: int/bool/strindex value, or a double's bit pattern;
# A_RAW_*: the whole AnyValue message (length 0 when the KeyValue has no value).
(A_OWNER_KIND, A_OWNER, A_KEY_OFF, A_KEY_LEN, A_TYPE, A_VOFF, A_VLEN, A_INT, A_RAW_OFF,
 A_RAW_LEN) = range(10)  # fmt: skip
ATTR_FIELDS = 10
OWNER_SPAN, OWNER_RESOURCE, OWNER_EVENT = 0, 1, 2
OWNER_DROPPED = 3  # past a limit (processors.normalize.limits): the attribute count, or a dropped event's

# AnyValue kinds (A_TYPE), by the AnyValue field that was set.
T_NONE, T_STR, T_BOOL, T_INT, T_DOUBLE, T_ARRAY, T_KVLIST, T_BYTES, T_STRINDEX = range(9)

R_REQ, R_ATTR_START, R_ATTR_COUNT = range(3)  # resource table
RESOURCE_FIELDS = 3
SC_NAME_OFF, SC_NAME_LEN = range(2)  # scope table
SCOPE_FIELDS = 2
E_SPAN, E_NAME_OFF, E_NAME_LEN, E_TIME, E_ATTR_START, E_ATTR_COUNT = range(6)  # event table
EVENT_FIELDS = 6

_WT_VARINT, _WT_I64, _WT_LEN, _WT_SGROUP, _WT_EGROUP, _WT_I32 = 0, 1, 2, 3, 4, 5


def _tag(field: int, wire_type: int) -> int:
    return field << 3 | wire_type


# The fields read, as full tags: a known field number with another wire type is an unknown
# field to protobuf too, so comparing whole tags gives its skipping rule for free.
_REQ_RESOURCE_SPANS = _tag(1, _WT_LEN)
_RS_RESOURCE, _RS_SCOPE_SPANS = _tag(1, _WT_LEN), _tag(2, _WT_LEN)
_RESOURCE_ATTRIBUTES = _tag(1, _WT_LEN)
_SS_SCOPE, _SS_SPANS = _tag(1, _WT_LEN), _tag(2, _WT_LEN)
_SCOPE_NAME = _tag(1, _WT_LEN)
_SPAN_TRACE_ID, _SPAN_ID, _SPAN_PARENT, _SPAN_NAME = (_tag(f, _WT_LEN) for f in (1, 2, 4, 5))
_SPAN_KIND, _SPAN_START, _SPAN_END = _tag(6, _WT_VARINT), _tag(7, _WT_I64), _tag(8, _WT_I64)
_SPAN_ATTRIBUTES, _SPAN_EVENTS, _SPAN_STATUS = _tag(9, _WT_LEN), _tag(11, _WT_LEN), _tag(15, _WT_LEN)
_EVENT_TIME, _EVENT_NAME, _EVENT_ATTRIBUTES = _tag(1, _WT_I64), _tag(2, _WT_LEN), _tag(3, _WT_LEN)
_STATUS_MESSAGE, _STATUS_CODE = _tag(2, _WT_LEN), _tag(3, _WT_VARINT)
_KV_KEY, _KV_VALUE = _tag(1, _WT_LEN), _tag(2, _WT_LEN)
_AV_STRING, _AV_ARRAY, _AV_KVLIST, _AV_BYTES = (_tag(f, _WT_LEN) for f in (1, 5, 6, 7))
_AV_BOOL, _AV_INT, _AV_STRINDEX = (_tag(f, _WT_VARINT) for f in (2, 3, 8))
_AV_DOUBLE = _tag(4, _WT_I64)


@njit(cache=True)
def _varint_slow(buf: np.ndarray, p: int, end: int) -> tuple[np.int64, int]:
    value = np.int64(0)
    for shift in range(0, 70, 7):
        if p >= end:
            return np.int64(0), -1
        byte = np.int64(buf[p])
        p += 1
        if shift < 64:
            value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, p
    return np.int64(0), -1  # more than 10 bytes


@njit(cache=True, inline="always")
def _varint(buf: np.ndarray, p: int, end: int) -> tuple[np.int64, int]:
    """(value as two's-complement int64, position after it); position -1 when truncated."""
    if p < end and buf[p] < 0x80:  # tags and most lengths are one byte: no call
        return np.int64(buf[p]), p + 1
    return _varint_slow(buf, p, end)


@njit(cache=True, inline="always")
def _int32(value: np.int64) -> np.int64:
    """protobuf keeps the low 32 bits of an int32/enum varint."""
    low = value & 0xFFFFFFFF
    return low - 0x100000000 if low >= 0x80000000 else low


@njit(cache=True)
def _skip_group(buf: np.ndarray, p: int, end: int) -> int:
    """Position after a group's end tag (nested groups included); -1 when malformed."""
    depth = 1
    while depth > 0:
        tag, p = _varint(buf, p, end)
        if p < 0:
            return -1
        wire_type = tag & 7
        if wire_type == _WT_VARINT:
            _, p = _varint(buf, p, end)
        elif wire_type in (_WT_I64, _WT_I32):
            p = p + (8 if wire_type == _WT_I64 else 4)
            p = p if p <= end else -1
        elif wire_type == _WT_LEN:
            n, p = _varint(buf, p, end)
            p = p + int(n) if p >= 0 and 0 <= n <= end - p else -1
        elif wire_type == _WT_SGROUP:
            depth += 1
        elif wire_type == _WT_EGROUP:
            depth -= 1
        else:
            return -1
        if p < 0:
            return -1
    return p


@njit(cache=True, inline="always")
def _field_hot(buf: np.ndarray, p: int, end: int) -> tuple[np.int64, np.int64, int, int]:
    """One field at ``p``: (tag, value, start, next position); next is -1 when malformed.

    VARINT: value is the varint; I64: the 8 bytes as int64; LEN: the content is
    buf[start:next]; I32 and groups are consumed and ignored (no field read here has them).
    """
    tag, p = _varint(buf, p, end)
    if p < 0:
        return np.int64(0), np.int64(0), 0, -1
    wire_type = tag & 7
    value = np.int64(0)
    start = p
    if wire_type == _WT_VARINT:
        value, p = _varint(buf, p, end)
    elif wire_type == _WT_LEN:
        value, start = _varint(buf, p, end)
        p = start + int(value) if start >= 0 and 0 <= value <= end - start else -1
    elif wire_type in (_WT_I64, _WT_I32):
        size = 8 if wire_type == _WT_I64 else 4
        if end - p < size:
            return np.int64(0), np.int64(0), 0, -1
        for i in range(size):
            value |= np.int64(buf[p + i]) << (8 * i)
        p += size
    elif wire_type == _WT_SGROUP:
        p = _skip_group(buf, p, end)
    else:
        p = -1
    return tag, value, start, p


@njit(cache=True)
def _field(buf: np.ndarray, p: int, end: int) -> tuple[np.int64, np.int64, int, int]:
    """``_field_hot`` as a call: inlined copies cost compile time, so only the per-attribute
    and per-span loops inline it; message levels walked once per request or event call this."""
    return _field_hot(buf, p, end)


# Nested values (inside an array or kvlist attribute), read by processors.normalize.limits.
ENTRY = _tag(1, _WT_LEN)  # ArrayValue.values and KeyValueList.values: repeated field 1
IRREGULAR = -3  # an encoding protobuf would merge (a second oneof member or value), or malformed


@njit(cache=True)
def next_field(buf: np.ndarray, p: int, end: int) -> tuple[np.int64, int, int]:
    """(tag, start, next position) of the field at ``p``; a LEN field's content is
    buf[start:next]; next is -1 when malformed."""
    tag, _, start, p = _field_hot(buf, p, end)
    return tag, start, p


@njit(cache=True, inline="always")
def _oneof_kind(tag: np.int64) -> int:
    """The AnyValue kind a field sets (T_NONE: not one of the value fields)."""
    if tag == _AV_STRING:
        return T_STR
    if tag == _AV_ARRAY:
        return T_ARRAY
    if tag == _AV_KVLIST:
        return T_KVLIST
    if tag == _AV_BYTES:
        return T_BYTES
    if tag == _AV_BOOL:
        return T_BOOL
    if tag == _AV_INT:
        return T_INT
    if tag == _AV_DOUBLE:
        return T_DOUBLE
    return T_STRINDEX if tag == _AV_STRINDEX else T_NONE


@njit(cache=True)
def any_value_payload(buf: np.ndarray, p: int, end: int) -> tuple[int, int, int]:
    """(kind, offset, length) of the AnyValue message buf[p:end]: its T_* kind and, for a
    string, bytes, array or kvlist, where its payload is. Kind IRREGULAR for a second oneof
    member (protobuf's last-wins and merge rules would apply) or a malformed message."""
    kind, off, length = T_NONE, 0, 0
    while p < end:
        tag, _, start, p = _field_hot(buf, p, end)
        if p < 0:
            return IRREGULAR, 0, 0
        member = _oneof_kind(tag)
        if member != T_NONE:
            if kind != T_NONE:
                return IRREGULAR, 0, 0
            kind, off, length = member, start, p - start
    return kind, off, length


@njit(cache=True)
def key_value_parts(buf: np.ndarray, p: int, end: int) -> tuple[int, int, int, int]:
    """(key offset, key length, value offset, value length) of the KeyValue message buf[p:end]
    (value length -1: no value); key length IRREGULAR when the value is sent twice (protobuf
    merges the two) or the message is malformed. A key sent twice: the last wins."""
    key_off = key_len = value_off = 0
    value_len = -1
    while p < end:
        tag, _, start, p = _field_hot(buf, p, end)
        if p < 0:
            return 0, IRREGULAR, 0, 0
        if tag == _KV_KEY:
            key_off, key_len = start, p - start
        elif tag == _KV_VALUE:
            if value_len >= 0:
                return 0, IRREGULAR, 0, 0
            value_off, value_len = start, p - start
    return key_off, key_len, value_off, value_len


@njit(cache=True)
def _key_value(buf: np.ndarray, p: int, end: int, attrs: np.ndarray, i: int, kind: int, owner: int) -> int:
    """Fill row ``i`` of the attribute table from a KeyValue message; returns a status."""
    attrs[i, :] = 0
    attrs[i, A_OWNER_KIND] = kind
    attrs[i, A_OWNER] = owner
    seen_value = False
    while p < end:
        tag, _, start, p = _field_hot(buf, p, end)
        if p < 0:
            return MALFORMED
        if tag == _KV_KEY:
            attrs[i, A_KEY_OFF], attrs[i, A_KEY_LEN] = start, p - start
        elif tag == _KV_VALUE:
            if seen_value:  # protobuf would merge the two: let it re-encode the request
                return NONCANONICAL
            seen_value = True
            attrs[i, A_RAW_OFF], attrs[i, A_RAW_LEN] = start, p - start
            q = start
            while q < p:  # AnyValue
                tag, value, v_start, q = _field_hot(buf, q, p)
                if q < 0:
                    return MALFORMED
                if tag in (_AV_STRING, _AV_ARRAY, _AV_KVLIST, _AV_BYTES):
                    kind = T_STR if tag == _AV_STRING else (T_ARRAY if tag == _AV_ARRAY else (
                        T_KVLIST if tag == _AV_KVLIST else T_BYTES))  # fmt: skip
                    attrs[i, A_VOFF], attrs[i, A_VLEN] = v_start, q - v_start
                elif tag == _AV_BOOL:
                    kind, attrs[i, A_INT] = T_BOOL, 1 if value != 0 else 0
                elif tag == _AV_INT:
                    kind, attrs[i, A_INT] = T_INT, value
                elif tag == _AV_DOUBLE:
                    kind, attrs[i, A_INT] = T_DOUBLE, value
                elif tag == _AV_STRINDEX:
                    kind, attrs[i, A_INT] = T_STRINDEX, _int32(value)
                else:
                    continue
                if attrs[i, A_TYPE] != T_NONE:  # a second oneof member: protobuf's rules apply
                    return NONCANONICAL
                attrs[i, A_TYPE] = kind
    return OK


@njit(cache=True)
def _grow(table: np.ndarray) -> np.ndarray:
    """``table`` with twice the rows (doubling keeps appends amortised O(1))."""
    bigger = np.empty((table.shape[0] * 2 + 16, table.shape[1]), np.int64)
    bigger[: table.shape[0]] = table
    return bigger


@njit(cache=True)
def scan(
    buf: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    spans: np.ndarray,
    attrs: np.ndarray,
    resources: np.ndarray,
    scopes: np.ndarray,
    events: np.ndarray,
) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decode requests ``buf[starts[r]:ends[r]]`` into the given tables (grown when too small).

    Returns (status, request, spans, attrs, resources, scopes, events, counts): the tables as
    filled, ``counts`` their used rows; on a status other than OK ``request`` is the culprit.
    Callers pass the previous batch's tables back in: reusing their memory spares the page
    faults of fresh allocations (about a sixth of the scan's time).
    """
    counts = np.zeros(5, np.int64)
    n_span = n_attr = n_res = n_scope = n_event = 0
    status = OK
    for req in range(starts.shape[0]):
        p, p_end = starts[req], ends[req]
        while p < p_end:  # ExportTraceServiceRequest
            tag, _, q, p = _field(buf, p, p_end)
            if p < 0:
                return MALFORMED, req, spans, attrs, resources, scopes, events, counts
            if tag != _REQ_RESOURCE_SPANS:
                continue
            if n_res == resources.shape[0]:
                resources = _grow(resources)
            res = n_res
            n_res += 1
            resources[res, R_REQ], resources[res, R_ATTR_START], resources[res, R_ATTR_COUNT] = req, n_attr, 0
            seen_resource = False
            q_end = p
            while q < q_end:  # ResourceSpans
                tag, _, r, q = _field(buf, q, q_end)
                if q < 0:
                    return MALFORMED, req, spans, attrs, resources, scopes, events, counts
                if tag == _RS_RESOURCE:
                    if seen_resource:  # protobuf merges the two: let it re-encode the request
                        return NONCANONICAL, req, spans, attrs, resources, scopes, events, counts
                    seen_resource = True
                    resources[res, R_ATTR_START] = n_attr
                    while r < q:  # Resource
                        tag, _, kv, r = _field(buf, r, q)
                        if r < 0:
                            return MALFORMED, req, spans, attrs, resources, scopes, events, counts
                        if tag == _RESOURCE_ATTRIBUTES:
                            if n_attr == attrs.shape[0]:
                                attrs = _grow(attrs)
                            status = _key_value(buf, kv, r, attrs, n_attr, OWNER_RESOURCE, res)
                            if status != OK:
                                return status, req, spans, attrs, resources, scopes, events, counts
                            n_attr += 1
                            resources[res, R_ATTR_COUNT] += 1
                elif tag == _RS_SCOPE_SPANS:
                    if n_scope == scopes.shape[0]:
                        scopes = _grow(scopes)
                    scope = n_scope
                    n_scope += 1
                    scopes[scope, SC_NAME_OFF], scopes[scope, SC_NAME_LEN] = 0, 0
                    seen_scope = False
                    while r < q:  # ScopeSpans
                        tag, _, s, r = _field(buf, r, q)
                        if r < 0:
                            return MALFORMED, req, spans, attrs, resources, scopes, events, counts
                        if tag == _SS_SCOPE:
                            if seen_scope:
                                return NONCANONICAL, req, spans, attrs, resources, scopes, events, counts
                            seen_scope = True
                            while s < r:  # InstrumentationScope: only its name is read
                                tag, _, n0, s = _field(buf, s, r)
                                if s < 0:
                                    return MALFORMED, req, spans, attrs, resources, scopes, events, counts
                                if tag == _SCOPE_NAME:
                                    scopes[scope, SC_NAME_OFF], scopes[scope, SC_NAME_LEN] = n0, s - n0
                        elif tag == _SS_SPANS:
                            if n_span == spans.shape[0]:
                                spans = _grow(spans)
                            spans[n_span, :] = 0
                            spans[n_span, S_REQ], spans[n_span, S_RES], spans[n_span, S_SCOPE] = (
                                req,
                                res,
                                scope,
                            )
                            status, attrs, events, n_attr, n_event = _span(
                                buf, s, r, spans, n_span, attrs, n_attr, events, n_event
                            )
                            if status != OK:
                                return status, req, spans, attrs, resources, scopes, events, counts
                            n_span += 1
    counts[:] = (n_span, n_attr, n_res, n_scope, n_event)
    return OK, -1, spans, attrs, resources, scopes, events, counts


@njit(cache=True)
def _span(
    buf: np.ndarray,
    p: int,
    end: int,
    spans: np.ndarray,
    i: int,
    attrs: np.ndarray,
    n_attr: int,
    events: np.ndarray,
    n_event: int,
) -> tuple[int, np.ndarray, np.ndarray, int, int]:
    """Fill row ``i`` of the span table from a Span message and append its attributes and
    events (with theirs) to those tables; returns (status, attrs, events, their row counts).

    A span's own attribute rows must be contiguous: attributes after an event are left to
    protobuf's re-encoding (which writes fields in number order, attributes first).
    """
    spans[i, S_OFF], spans[i, S_LEN] = p, end - p
    spans[i, S_ATTR_START], spans[i, S_EVENT_START] = n_attr, n_event
    seen_status = False
    while p < end:
        tag, value, start, p = _field_hot(buf, p, end)
        if p < 0:
            return MALFORMED, attrs, events, n_attr, n_event
        if tag == _SPAN_ATTRIBUTES:
            if spans[i, S_ATTR_START] + spans[i, S_ATTR_COUNT] != n_attr:
                return NONCANONICAL, attrs, events, n_attr, n_event
            if n_attr == attrs.shape[0]:
                attrs = _grow(attrs)
            status = _key_value(buf, start, p, attrs, n_attr, OWNER_SPAN, i)
            if status != OK:
                return status, attrs, events, n_attr, n_event
            n_attr += 1
            spans[i, S_ATTR_COUNT] += 1
        elif tag == _SPAN_TRACE_ID:
            spans[i, S_TRACE_OFF], spans[i, S_TRACE_LEN] = start, p - start
        elif tag == _SPAN_ID:
            spans[i, S_ID_OFF], spans[i, S_ID_LEN] = start, p - start
        elif tag == _SPAN_PARENT:
            spans[i, S_PARENT_OFF], spans[i, S_PARENT_LEN] = start, p - start
        elif tag == _SPAN_NAME:
            spans[i, S_NAME_OFF], spans[i, S_NAME_LEN] = start, p - start
        elif tag == _SPAN_KIND:
            spans[i, S_KIND] = _int32(value)
        elif tag == _SPAN_START:
            spans[i, S_START] = value
        elif tag == _SPAN_END:
            spans[i, S_END] = value
        elif tag == _SPAN_STATUS:
            if seen_status:  # protobuf merges the two: let it re-encode the request
                return NONCANONICAL, attrs, events, n_attr, n_event
            seen_status = True
            while start < p:  # Status
                tag, value, m, start = _field(buf, start, p)
                if start < 0:
                    return MALFORMED, attrs, events, n_attr, n_event
                if tag == _STATUS_MESSAGE:
                    spans[i, S_MSG_OFF], spans[i, S_MSG_LEN] = m, start - m
                elif tag == _STATUS_CODE:
                    spans[i, S_CODE] = _int32(value)
        elif tag == _SPAN_EVENTS:
            if n_event == events.shape[0]:
                events = _grow(events)
            events[n_event, :] = 0
            events[n_event, E_SPAN], events[n_event, E_ATTR_START] = i, n_attr
            while start < p:  # Span.Event
                tag, value, f, start = _field(buf, start, p)
                if start < 0:
                    return MALFORMED, attrs, events, n_attr, n_event
                if tag == _EVENT_TIME:
                    events[n_event, E_TIME] = value
                elif tag == _EVENT_NAME:
                    events[n_event, E_NAME_OFF], events[n_event, E_NAME_LEN] = f, start - f
                elif tag == _EVENT_ATTRIBUTES:
                    if n_attr == attrs.shape[0]:
                        attrs = _grow(attrs)
                    status = _key_value(buf, f, start, attrs, n_attr, OWNER_EVENT, n_event)
                    if status != OK:
                        return status, attrs, events, n_attr, n_event
                    n_attr += 1
                    events[n_event, E_ATTR_COUNT] += 1
            n_event += 1
            spans[i, S_EVENT_COUNT] += 1
    return OK, attrs, events, n_attr, n_event
