"""Numba kernels over the decoded batch: interning byte ranges, grouping rows, resolving slots,
gathering bytes into Arrow string buffers.

Interning turns byte ranges (attribute keys, values, span names) into small dense ids, so the
Python-level work - decoding a key, coercing a value, running a derive.* rule - is done once per
distinct value instead of once per span. Hash tables here compare the actual bytes on every hash
match, so an id is exact (two ranges get the same id iff their bytes are equal).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from processors.normalize.wire import (
    A_RAW_LEN,
    A_RAW_OFF,
    A_TYPE,
    A_VLEN,
    A_VOFF,
    R_ATTR_COUNT,
    R_ATTR_START,
    S_ATTR_COUNT,
    S_ATTR_START,
    S_ID_LEN,
    S_ID_OFF,
    S_PARENT_LEN,
    S_PARENT_OFF,
    S_RES,
    S_TRACE_LEN,
    S_TRACE_OFF,
    T_BYTES,
    T_NONE,
    T_STR,
)

_EMPTY = -1


@njit(cache=True, inline="always")
def _mix(h: np.int64, word: np.int64 | int) -> np.int64:
    return (h ^ word) * 0x100000001B3  # FNV-1a's step, on whole words


@njit(cache=True, inline="always")
def _finish(h: np.int64) -> np.int64:
    return h ^ (h >> 29)  # the low bits pick the slot: fold the high bits in


@njit(cache=True, inline="always")
def _word(buf: np.ndarray, off: int) -> np.int64:
    """The 8 bytes at ``off`` as one little-endian int64 (unaligned, so assembled)."""
    return (
        np.int64(buf[off]) | (np.int64(buf[off + 1]) << 8) | (np.int64(buf[off + 2]) << 16)
        | (np.int64(buf[off + 3]) << 24) | (np.int64(buf[off + 4]) << 32) | (np.int64(buf[off + 5]) << 40)
        | (np.int64(buf[off + 6]) << 48) | (np.int64(buf[off + 7]) << 56)
    )  # fmt: skip


@njit(cache=True, inline="always")
def _hash_bytes(buf: np.ndarray, off: int, n: int) -> np.int64:
    """Hash of bytes [off, off+n), a word (one multiply) per 8 bytes."""
    h = _mix(np.int64(0x2545F4914F6CDD1D), n)
    end = off + n
    while end - off >= 8:
        h = _mix(h, _word(buf, off))
        off += 8
    tail = np.int64(0)
    for j in range(end - off):
        tail |= np.int64(buf[off + j]) << (8 * j)
    return _finish(_mix(h, tail))


@njit(cache=True, inline="always")
def _same_bytes(buf: np.ndarray, a: int, b: int, n: int) -> bool:
    i = 0
    while n - i >= 8:
        if _word(buf, a + i) != _word(buf, b + i):
            return False
        i += 8
    for j in range(i, n):  # noqa: SIM110 (numba compiles no generator expressions)
        if buf[a + j] != buf[b + j]:
            return False
    return True


@njit(cache=True)
def _rehashed(hashes: np.ndarray, count: int, size: int) -> np.ndarray:
    """A table of ``size`` slots holding ids 0..count-1 (hashes[id]) by linear probing."""
    table = np.full(size, _EMPTY, np.int64)
    for j in range(count):
        slot = hashes[j] & (size - 1)
        while table[slot] != _EMPTY:
            slot = (slot + 1) & (size - 1)
        table[slot] = j
    return table


@njit(cache=True)
def intern_ranges(buf: np.ndarray, offs: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids, first): ids[i] is the dense id of range i's bytes (-1 where lens[i] < 0), and
    first[id] the first range with that id."""
    n = offs.shape[0]
    # The table grows with the distinct values, not with n: most columns have few, and a
    # table sized for n would cost more in fresh memory than the lookups themselves.
    size = 256
    table = np.full(size, _EMPTY, np.int64)
    hashes = np.empty(n, np.int64)  # by id
    ids = np.empty(n, np.int64)
    first = np.empty(n, np.int64)
    count = 0
    for i in range(n):
        length = lens[i]
        if length < 0:
            ids[i] = -1
            continue
        off = offs[i]
        h = _hash_bytes(buf, off, length)
        slot = h & (size - 1)
        while True:
            j = table[slot]
            if j == _EMPTY:
                hashes[count] = h
                first[count] = i
                ids[i] = count
                count += 1
                table[slot] = ids[i]
                if 2 * count > size:
                    size *= 2
                    table = _rehashed(hashes, count, size)
                break
            rep = first[j]
            if hashes[j] == h and lens[rep] == length and _same_bytes(buf, offs[rep], off, length):
                ids[i] = j
                break
            slot = (slot + 1) & (size - 1)
    return ids, first[:count]


@njit(cache=True)
def group_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group, first): group[i] is the dense id of row i's values, first[g] its first row."""
    n, k = rows.shape
    size = 256
    table = np.full(size, _EMPTY, np.int64)
    hashes = np.empty(n, np.int64)
    group = np.empty(n, np.int64)
    first = np.empty(n, np.int64)
    count = 0
    for i in range(n):
        h = np.int64(0x2545F4914F6CDD1D)
        for c in range(k):
            h = _mix(h, rows[i, c])
        h = _finish(h)
        slot = h & (size - 1)
        while True:
            g = table[slot]
            if g == _EMPTY:
                hashes[count] = h
                first[count] = i
                group[i] = count
                count += 1
                table[slot] = group[i]
                if 2 * count > size:
                    size *= 2
                    table = _rehashed(hashes, count, size)
                break
            rep = first[g]
            same = hashes[g] == h
            for c in range(k):
                if not same:
                    break
                same = rows[rep, c] == rows[i, c]
            if same:
                group[i] = g
                break
            slot = (slot + 1) & (size - 1)
    return group, first[:count]


@njit(cache=True)
def gather(
    main: np.ndarray, pool: np.ndarray, source: np.ndarray, offs: np.ndarray, lens: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate byte ranges into Arrow string (data, int32 offsets); source 0 is null (no
    bytes), 1 a range of ``main``, 2 a range of ``pool``."""
    n = source.shape[0]
    offsets = np.empty(n + 1, np.int32)
    total = 0
    for i in range(n):
        offsets[i] = total
        if source[i] != 0:
            total += lens[i]
    offsets[n] = total
    if total >= 2**31:
        raise ValueError("a string column of one batch exceeds 2 GiB")
    data = np.empty(total, np.uint8)
    for i in range(n):
        if source[i] != 0:
            src = main if source[i] == 1 else pool
            start, off = offsets[i], offs[i]
            for j in range(lens[i]):  # a loop: slicing costs more than short copies
                data[start + j] = src[off + j]
    return data, offsets


_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


@njit(cache=True)
def hex_ranges(buf: np.ndarray, offs: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lowercase hex of each byte range, as Arrow string (data, int32 offsets)."""
    n = offs.shape[0]
    offsets = np.empty(n + 1, np.int32)
    total = 0
    for i in range(n):
        offsets[i] = total
        total += 2 * lens[i]
    offsets[n] = total
    if total >= 2**31:
        raise ValueError("an id column of one batch exceeds 2 GiB")
    data = np.empty(total, np.uint8)
    for i in range(n):
        out, off = offsets[i], offs[i]
        for j in range(lens[i]):
            byte = buf[off + j]
            data[out + 2 * j] = _HEX[byte >> 4]
            data[out + 2 * j + 1] = _HEX[byte & 15]
    return data, offsets


@njit(cache=True, inline="always")
def _best_of(
    attrs: np.ndarray,
    key_id: np.ndarray,
    hit_start: np.ndarray,
    hit_slot: np.ndarray,
    hit_prio: np.ndarray,
    start: int,
    count: int,
    prio: np.ndarray,
    win: np.ndarray,
) -> None:
    """win[slot] = the attribute of rows [start, start+count) filling the slot: lowest priority
    number, then first in order; None and "" values fill nothing."""
    prio[:] = 1 << 62
    win[:] = -1
    for a in range(start, start + count):
        kind = attrs[a, A_TYPE]
        if kind == T_NONE or (kind in (T_STR, T_BYTES) and attrs[a, A_VLEN] == 0):
            continue  # None or "" (empty bytes are "" in base64 too)
        k = key_id[a]
        for h in range(hit_start[k], hit_start[k + 1]):
            slot = hit_slot[h]
            if hit_prio[h] < prio[slot]:
                prio[slot] = hit_prio[h]
                win[slot] = a


@njit(cache=True)
def resolve_slots(
    attrs: np.ndarray,
    key_id: np.ndarray,
    hit_start: np.ndarray,
    hit_slot: np.ndarray,
    hit_prio: np.ndarray,
    spans: np.ndarray,
    resources: np.ndarray,
    n_slots: int,
) -> np.ndarray:
    """[span, slot] → the attribute filling the slot (-1: none): the span's own attributes
    win, the resource's fill the gaps. hit_* is the inverted index in CSR form by key id."""
    prio = np.empty(n_slots, np.int64)
    win = np.empty(n_slots, np.int64)
    by_resource = np.empty((resources.shape[0], n_slots), np.int64)
    for r in range(resources.shape[0]):
        start, count = resources[r, R_ATTR_START], resources[r, R_ATTR_COUNT]
        _best_of(attrs, key_id, hit_start, hit_slot, hit_prio, start, count, prio, win)
        by_resource[r] = win
    out = np.empty((spans.shape[0], n_slots), np.int64)
    for s in range(spans.shape[0]):
        start, count = spans[s, S_ATTR_START], spans[s, S_ATTR_COUNT]
        _best_of(attrs, key_id, hit_start, hit_slot, hit_prio, start, count, prio, win)
        res = spans[s, S_RES]
        for slot in range(n_slots):
            out[s, slot] = win[slot] if win[slot] >= 0 else by_resource[res, slot]
    return out


@njit(cache=True)
def value_ids(buf: np.ndarray, attrs: np.ndarray, picks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids, first): ids[i] is the dense id of attribute picks[i]'s value (equal AnyValue bytes,
    equal id; -1 where picks[i] is -1), first[id] an attribute holding that value."""
    memo = np.full(attrs.shape[0], -1, np.int64)
    chosen = np.empty(picks.shape[0], np.int64)
    n = 0
    for p in picks:
        if p >= 0 and memo[p] < 0:
            memo[p] = n
            chosen[n] = p
            n += 1
    chosen = chosen[:n]
    ids, first = intern_ranges(buf, attrs[chosen, A_RAW_OFF], attrs[chosen, A_RAW_LEN])
    out = np.empty(picks.shape[0], np.int64)
    for i in range(picks.shape[0]):
        out[i] = ids[memo[picks[i]]] if picks[i] >= 0 else -1
    return out, chosen[first]


@njit(cache=True)
def has_child(buf: np.ndarray, spans: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per row of ``rows`` (span indexes): whether another of ``rows`` names it as parent, in the
    same trace. Exact: (trace id, span id) pairs are compared byte for byte on hash matches."""
    n = rows.shape[0]
    size = 64
    while size < 2 * n:
        size *= 2
    table = np.full(size, _EMPTY, np.int64)  # → a row whose (trace, parent) hashed there
    hashes = np.empty(n, np.int64)
    for i in range(n):
        s = rows[i]
        if spans[s, S_PARENT_LEN] == 0:
            continue
        h = _mix(_hash_bytes(buf, spans[s, S_TRACE_OFF], spans[s, S_TRACE_LEN]),
                 _hash_bytes(buf, spans[s, S_PARENT_OFF], spans[s, S_PARENT_LEN]))  # fmt: skip
        hashes[i] = h
        slot = h & (size - 1)
        while table[slot] != _EMPTY:
            slot = (slot + 1) & (size - 1)
        table[slot] = i
    out = np.zeros(n, np.bool_)
    for i in range(n):
        s = rows[i]
        h = _mix(_hash_bytes(buf, spans[s, S_TRACE_OFF], spans[s, S_TRACE_LEN]),
                 _hash_bytes(buf, spans[s, S_ID_OFF], spans[s, S_ID_LEN]))  # fmt: skip
        slot = h & (size - 1)
        while table[slot] != _EMPTY:
            c = rows[table[slot]]
            if (
                hashes[table[slot]] == h
                and spans[c, S_TRACE_LEN] == spans[s, S_TRACE_LEN]
                and spans[c, S_PARENT_LEN] == spans[s, S_ID_LEN]
                and _same_bytes(buf, spans[c, S_TRACE_OFF], spans[s, S_TRACE_OFF], spans[s, S_TRACE_LEN])
                and _same_bytes(buf, spans[c, S_PARENT_OFF], spans[s, S_ID_OFF], spans[s, S_ID_LEN])
            ):
                out[i] = True
                break
            slot = (slot + 1) & (size - 1)
    return out


@njit(cache=True)
def attr_ranges(attrs: np.ndarray, attr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, where attribute attr[i]'s value is as text: (source, offset, length) with
    source 1 for a string value (its bytes), 0 for none (-1, or an empty AnyValue) and 3 for
    any other kind, whose text the caller makes in Python."""
    n = attr.shape[0]
    source = np.zeros(n, np.int8)
    offs = np.zeros(n, np.int64)
    lens = np.zeros(n, np.int64)
    for i in range(n):
        a = attr[i]
        if a < 0:
            continue
        kind = attrs[a, A_TYPE]
        if kind == T_STR:
            source[i], offs[i], lens[i] = 1, attrs[a, A_VOFF], attrs[a, A_VLEN]
        elif kind != T_NONE:
            source[i] = 3
    return source, offs, lens
