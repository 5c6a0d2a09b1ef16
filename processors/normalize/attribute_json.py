"""The ``attributes``, ``resource_attributes`` and ``events`` JSON columns, written by numba.

The text must equal ``orjson.dumps`` of the attribute dict byte for byte: compact separators, keys
in first-occurrence order with the last duplicate's value (a Python dict's behaviour), strings
escaped as orjson does (``\\"``, ``\\\\``, ``\\b \\t \\n \\f \\r``, other control characters as
``\\u00xx``; everything else, non-ASCII included, as is). Strings, ints, bools and empty values are
written here straight from the payload bytes. Other values (doubles, arrays, kvlists, bytes) are
rare and formatted in Python once per distinct value by the existing decoder - ``any_value`` then
``orjson.dumps`` - and the kernel copies that text in: ``value_snippets`` below.

Attributes whose key is marked in ``skip`` and events marked in ``skip_events`` are left out
(``capture_text: false``, see ``processors.normalize.redact``); a span left without events gets a
null ``events`` value, as one that had none.
"""

from __future__ import annotations

import numpy as np
import orjson
import pyarrow as pa
from numba import njit

from processors.normalize.columns import string_array
from processors.normalize.decoded import Decoded, col
from processors.normalize.kernels import value_ids
from processors.normalize.wire import (
    A_INT,
    A_KEY_LEN,
    A_KEY_OFF,
    A_OWNER_KIND,
    A_TYPE,
    A_VLEN,
    A_VOFF,
    E_ATTR_COUNT,
    E_ATTR_START,
    E_NAME_LEN,
    E_NAME_OFF,
    E_TIME,
    OWNER_DROPPED,
    R_ATTR_COUNT,
    R_ATTR_START,
    S_ATTR_COUNT,
    S_ATTR_START,
    S_EVENT_COUNT,
    S_EVENT_START,
    S_RES,
    T_BOOL,
    T_INT,
    T_NONE,
    T_STR,
)

_SHORT_ESCAPES = np.zeros(128, np.uint8)
for _char, _letter in ((8, "b"), (9, "t"), (10, "n"), (12, "f"), (13, "r"), (34, '"'), (92, "\\")):
    _SHORT_ESCAPES[_char] = ord(_letter)
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_NAME = np.frombuffer(b'{"name":', np.uint8)
_TIME = np.frombuffer(b',"time_unix_nano":', np.uint8)
_ATTRIBUTES = np.frombuffer(b',"attributes":', np.uint8)
_TRUE = np.frombuffer(b"true", np.uint8)
_FALSE = np.frombuffer(b"false", np.uint8)
_NULL = np.frombuffer(b"null", np.uint8)
_U00 = np.frombuffer(b"\\u00", np.uint8)


def value_snippets(decoded: Decoded, skip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pool, offsets): the JSON text of every value the kernel does not format itself, once per
    distinct value; attribute a's text is pool[offsets[a, 0]:offsets[a, 0] + offsets[a, 1]]."""
    buf, attrs = decoded.buf, decoded.attrs
    kinds = attrs[:, A_TYPE]
    rare = np.flatnonzero(
        (kinds != T_STR)
        & (kinds != T_INT)
        & (kinds != T_BOOL)
        & (kinds != T_NONE)
        & (attrs[:, A_OWNER_KIND] != OWNER_DROPPED)  # past a limit: never written
        & ~skip[decoded.key_id]  # left out: never written
    )
    offsets = np.zeros((attrs.shape[0], 2), np.int64)
    if not rare.size:
        return np.frombuffer(b"", np.uint8), offsets  # read-only like a real pool: same kernel types
    ids, first = value_ids(buf, attrs, rare)
    texts = []
    for a in first.tolist():
        texts.append(orjson.dumps(decoded.value(a)))
    lengths = np.array([len(t) for t in texts], np.int64)
    starts = np.cumsum(lengths) - lengths
    offsets[rare, 0] = starts[ids]
    offsets[rare, 1] = lengths[ids]
    return np.frombuffer(b"".join(texts), np.uint8), offsets


@njit(cache=True, inline="always")
def _copy(out: np.ndarray, pos: int, src: np.ndarray, off: int, n: int) -> int:
    # A plain loop: slice assignment costs more than the copy for strings this short.
    for j in range(n):
        out[pos + j] = src[off + j]
    return pos + n


@njit(cache=True, inline="always")
def _put_string(out: np.ndarray, pos: int, buf: np.ndarray, off: int, n: int) -> int:
    out[pos] = 34  # "
    pos += 1
    escape = False  # most strings need no escaping: check (branch-free), then copy
    for i in range(off, off + n):
        byte = buf[i]
        escape |= (byte < 0x20) | (byte == 34) | (byte == 92)
    if not escape:
        pos = _copy(out, pos, buf, off, n)
        out[pos] = 34
        return pos + 1
    for i in range(off, off + n):
        byte = buf[i]
        if byte >= 0x20 and byte != 34 and byte != 92:
            out[pos] = byte
            pos += 1
        elif _SHORT_ESCAPES[byte] != 0:
            out[pos] = 92
            out[pos + 1] = _SHORT_ESCAPES[byte]
            pos += 2
        else:  # \u00xx, lowercase as orjson writes it
            pos = _copy(out, pos, _U00, 0, 4)
            out[pos] = _HEX[byte >> 4]
            out[pos + 1] = _HEX[byte & 15]
            pos += 2
    out[pos] = 34
    return pos + 1


@njit(cache=True, inline="always")
def _put_int(out: np.ndarray, pos: int, value: int, unsigned: bool) -> int:
    """Decimal of an int64, or of the uint64 with the same bits when ``unsigned``."""
    if value < 0 and not unsigned:
        out[pos] = 45  # -
        pos += 1
    magnitude = np.uint64(value)
    if value < 0 and not unsigned:
        magnitude = np.uint64(0) - magnitude
    digits = 1
    rest = magnitude // np.uint64(10)
    while rest > np.uint64(0):
        digits += 1
        rest //= np.uint64(10)
    for i in range(digits - 1, -1, -1):
        out[pos + i] = 48 + np.uint8(magnitude % np.uint64(10))
        magnitude //= np.uint64(10)
    return pos + digits


@njit(cache=True)
def key_texts(buf: np.ndarray, attrs: np.ndarray, key_first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``"key":`` of every distinct key (attribute key_first[k] holds key k), escaped once per
    batch instead of once per attribute: (text, offsets), key k's at offsets[k]:offsets[k+1]."""
    n = key_first.shape[0]
    total = 0
    for k in range(n):
        total += 6 * attrs[key_first[k], A_KEY_LEN] + 3
    out = np.empty(total, np.uint8)
    offsets = np.empty(n + 1, np.int64)
    pos = 0
    for k in range(n):
        offsets[k] = pos
        pos = _put_string(out, pos, buf, attrs[key_first[k], A_KEY_OFF], attrs[key_first[k], A_KEY_LEN])
        out[pos] = 58  # :
        pos += 1
    offsets[n] = pos
    return out, offsets


@njit(cache=True, inline="always")
def _put_object(
    out: np.ndarray,
    pos: int,
    buf: np.ndarray,
    attrs: np.ndarray,
    start: int,
    count: int,
    key_id: np.ndarray,
    keys: np.ndarray,
    key_offsets: np.ndarray,
    last: np.ndarray,
    stamps: np.ndarray,
    stamp: int,
    pool: np.ndarray,
    snippets: np.ndarray,
    skip: np.ndarray,
) -> int:
    """``{"key":value,...}`` of attribute rows [start, start+count) but those whose key is
    marked in ``skip``; ``stamp`` is unique per call."""
    for a in range(start, start + count):
        last[key_id[a]] = a  # a repeated key keeps its last value ...
    out[pos] = 123  # {
    pos += 1
    written = False
    for a in range(start, start + count):
        k = key_id[a]
        if stamps[k] == stamp or skip[k]:  # ... at its first position
            continue
        if written:
            out[pos] = 44  # ,
            pos += 1
        written = True
        stamps[k] = stamp
        pos = _copy(out, pos, keys, key_offsets[k], key_offsets[k + 1] - key_offsets[k])
        v = last[k]
        kind = attrs[v, A_TYPE]
        if kind == T_STR:
            pos = _put_string(out, pos, buf, attrs[v, A_VOFF], attrs[v, A_VLEN])
        elif kind == T_INT:
            pos = _put_int(out, pos, attrs[v, A_INT], False)
        elif kind == T_BOOL:
            pos = _copy(out, pos, _TRUE, 0, 4) if attrs[v, A_INT] else _copy(out, pos, _FALSE, 0, 5)
        elif kind == T_NONE:
            pos = _copy(out, pos, _NULL, 0, 4)
        else:
            pos = _copy(out, pos, pool, snippets[v, 0], snippets[v, 1])
    out[pos] = 125  # }
    return pos + 1


@njit(cache=True)
def _bound(attrs: np.ndarray, snippets: np.ndarray, owners: int, extra: int) -> int:
    """Bytes enough for the JSON of all attribute rows: each byte escapes to at most 6."""
    total = 2 * owners + extra
    for a in range(attrs.shape[0]):
        total += 6 * attrs[a, A_KEY_LEN] + 24 + snippets[a, 1]
        if attrs[a, A_TYPE] == T_STR:
            total += 6 * attrs[a, A_VLEN]
    return total


@njit(cache=True)
def objects(
    buf: np.ndarray,
    attrs: np.ndarray,
    key_id: np.ndarray,
    keys: np.ndarray,
    key_offsets: np.ndarray,
    starts: np.ndarray,
    counts: np.ndarray,
    pool: np.ndarray,
    snippets: np.ndarray,
    skip: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """One JSON object per owner (attribute rows [starts[i], starts[i]+counts[i])), as Arrow
    string (data, int32 offsets)."""
    n = starts.shape[0]
    out = np.empty(_bound(attrs, snippets, n, 0), np.uint8)
    offsets = np.empty(n + 1, np.int32)
    last = np.empty(key_offsets.shape[0] - 1, np.int64)
    stamps = np.zeros(key_offsets.shape[0] - 1, np.int64)
    pos = 0
    for i in range(n):
        offsets[i] = pos
        start, count = starts[i], counts[i]
        pos = _put_object(
            out, pos, buf, attrs, start, count, key_id, keys, key_offsets, last, stamps, i + 1, pool,
            snippets, skip,
        )  # fmt: skip
    offsets[n] = pos
    if pos >= 2**31:
        raise ValueError("a JSON column of one batch exceeds 2 GiB")
    return out[:pos], offsets


@njit(cache=True)
def event_lists(
    buf: np.ndarray,
    attrs: np.ndarray,
    key_id: np.ndarray,
    keys: np.ndarray,
    key_offsets: np.ndarray,
    spans: np.ndarray,
    events: np.ndarray,
    pool: np.ndarray,
    snippets: np.ndarray,
    skip: np.ndarray,
    skip_events: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per span ``[{"name":...,"time_unix_nano":...,"attributes":{...}},...]`` (events_list's
    shape) of the events not marked in ``skip_events``, as Arrow string (data, int32 offsets); a
    span without such events gets no bytes (null)."""
    n = spans.shape[0]
    extra = 0
    for e in range(events.shape[0]):
        extra += 6 * events[e, E_NAME_LEN] + 80  # {"name":"",...,"attributes":{}}, + 20 digits
    out = np.empty(_bound(attrs, snippets, n, extra), np.uint8)
    offsets = np.empty(n + 1, np.int32)
    last = np.empty(key_offsets.shape[0] - 1, np.int64)
    stamps = np.zeros(key_offsets.shape[0] - 1, np.int64)
    pos = 0
    for s in range(n):
        offsets[s] = pos
        first, count = spans[s, S_EVENT_START], spans[s, S_EVENT_COUNT]
        opened = False
        for e in range(first, first + count):
            if skip_events[e]:
                continue
            out[pos] = 44 if opened else 91  # , or [
            pos += 1
            opened = True
            pos = _copy(out, pos, _NAME, 0, _NAME.shape[0])
            pos = _put_string(out, pos, buf, events[e, E_NAME_OFF], events[e, E_NAME_LEN])
            pos = _copy(out, pos, _TIME, 0, _TIME.shape[0])
            pos = _put_int(out, pos, events[e, E_TIME], True)
            pos = _copy(out, pos, _ATTRIBUTES, 0, _ATTRIBUTES.shape[0])
            start, n_attrs = events[e, E_ATTR_START], events[e, E_ATTR_COUNT]
            pos = _put_object(
                out,
                pos,
                buf,
                attrs,
                start,
                n_attrs,
                key_id,
                keys,
                key_offsets,
                last,
                stamps,
                e + 1,
                pool,
                snippets,
                skip,
            )
            out[pos] = 125  # }
            pos += 1
        if opened:
            out[pos] = 93  # ]
            pos += 1
    offsets[n] = pos
    if pos >= 2**31:
        raise ValueError("a JSON column of one batch exceeds 2 GiB")
    return out[:pos], offsets


def json_columns(
    decoded: Decoded, skip: np.ndarray | None = None, skip_events: np.ndarray | None = None
) -> dict[str, pa.Array]:
    """``attributes``, ``resource_attributes`` and ``events`` of every span, without the
    attributes whose key id is marked in ``skip`` and the events marked in ``skip_events``."""
    d = decoded
    if skip is None:
        skip = np.zeros(len(d.keys), np.bool_)
    if skip_events is None:
        skip_events = np.zeros(d.events.shape[0], np.bool_)
    pool, snippets = value_snippets(d, skip)
    keys, key_offsets = key_texts(d.buf, d.attrs, d.key_first)
    common = (d.buf, d.attrs, d.key_id, keys, key_offsets)
    data, offsets = objects(
        *common, col(d.spans, S_ATTR_START), col(d.spans, S_ATTR_COUNT), pool, snippets, skip
    )
    out = {"attributes": string_array(data, offsets)}
    # Once per resource, then repeated for each of its spans.
    data, offsets = objects(
        *common, col(d.resources, R_ATTR_START), col(d.resources, R_ATTR_COUNT), pool, snippets, skip
    )
    out["resource_attributes"] = string_array(data, offsets).take(pa.array(col(d.spans, S_RES)))
    data, offsets = event_lists(*common, d.spans, d.events, pool, snippets, skip, skip_events)
    out["events"] = string_array(data, offsets, offsets[1:] > offsets[:-1])
    return out
