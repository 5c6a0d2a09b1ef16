"""Canonical slots per span, and the helpers that turn slot values into columns.

Per span and slot, ``kernels.resolve_slots`` finds the attribute that fills it, by
``resolve.build_index``'s priorities (configured names before built-ins, first present wins) and
with the span's own attributes before its resource's. Rules then read the slot values:
``per_group`` runs a rule once per distinct combination of its inputs, never once per span.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

from core.model import as_str
from processors.normalize import conventions as conv
from processors.normalize.columns import Pool, Ranges
from processors.normalize.decoded import Decoded
from processors.normalize.kernels import attr_ranges, group_rows, resolve_slots
from processors.normalize.resolve import Index

T = TypeVar("T")

SLOTS: tuple[str, ...] = (*conv.MAPPABLE_COLUMNS, *conv.SIGNAL_CANDIDATES)
SLOT = {name: i for i, name in enumerate(SLOTS)}
_OTHER = 3  # attr_ranges' source for a value whose text is made in Python


def index_csr(index: Index, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The inverted index restricted to the batch's keys, in CSR form by key id:
    key k's (slot, priority) pairs are slots[start[k]:start[k+1]], priorities[...]."""
    hits = [index.get(key, ()) for key in keys]
    start = np.zeros(len(keys) + 1, np.int64)
    start[1:] = np.cumsum([len(h) for h in hits])
    slots = np.array([SLOT[slot] for h in hits for slot, _ in h], np.int64)
    priorities = np.array([priority for h in hits for _, priority in h], np.int64)
    return start, slots, priorities


def per_group(keys: np.ndarray, rule: Callable[[np.ndarray], T]) -> tuple[list[T], np.ndarray]:
    """(results, group): ``rule`` run once per distinct row of ``keys``; group[i] indexes row i's."""
    group, first = group_rows(np.ascontiguousarray(keys, np.int64))
    return [rule(keys[i]) for i in first.tolist()], group


class Resolved:
    """Per span and slot, the attribute that fills it (``attr``/``attrs``, -1: none) and, for
    the slots rules read, an id per distinct value (``vids``): equal values, equal ids.

    Only slots that some attribute name of the batch can fill get a column; the others are
    the same all -1 array. A batch touches a dozen of the slots, and the memory of a full
    span-by-slot table would cost more than resolving.
    """

    def __init__(self, decoded: Decoded, index: Index, rule_slots: Sequence[str]) -> None:
        self.decoded = decoded
        n = decoded.spans.shape[0]
        self._none = np.full(n, -1, np.int64)
        start, slots, priorities = index_csr(index, decoded.keys)
        active, compact = np.unique(slots, return_inverse=True)
        self._column = {SLOTS[slot]: i for i, slot in enumerate(active.tolist())}
        self._attr = resolve_slots(
            decoded.attrs, decoded.key_id, start, compact.reshape(-1), priorities, decoded.spans,
            decoded.resources, active.shape[0],
        )  # fmt: skip
        # Value ids only where rules read values: plain columns are copied as bytes instead.
        read = [slot for slot in rule_slots if slot in self._column and (self.attr(slot) >= 0).any()]
        self._vid_column = {slot: i for i, slot in enumerate(read)}
        self._vid, self._first = decoded.value_ids(self.attrs(read))
        self._values: dict[int, Any] = {}

    def attr(self, slot: str) -> np.ndarray:
        column = self._column.get(slot)
        return self._none if column is None else self._attr[:, column]

    def attrs(self, slots: Sequence[str]) -> np.ndarray:
        return np.column_stack([self.attr(slot) for slot in slots]) if slots else self._none[:, None][:, :0]

    def has(self, slot: str) -> np.ndarray:
        return self.attr(slot) >= 0

    def vids(self, slots: Sequence[str]) -> np.ndarray:
        columns = [self._vid_column.get(slot) for slot in slots]
        return np.column_stack([self._none if c is None else self._vid[:, c] for c in columns])

    def value(self, vid: int) -> Any:
        if vid not in self._values:
            self._values[vid] = self.decoded.value(int(self._first[vid]))
        return self._values[vid]

    def found(self, slots: Sequence[str], vids: Iterable[int]) -> dict[str, Any]:
        """The ``found`` dict (slot → value) derive.* reads, restricted to ``slots``."""
        return {slot: self.value(v) for slot, v in zip(slots, vids, strict=True) if v >= 0}

    def per_value(self, slot: str, rule: Callable[[Any], T], missing: T) -> tuple[list[T], np.ndarray]:
        """(results, code): ``rule`` once per distinct value of the slot, ``missing`` for spans
        without one; code[i] indexes span i's result."""
        distinct, code = np.unique(self.vids([slot])[:, 0], return_inverse=True)
        return [missing if v < 0 else rule(self.value(v)) for v in distinct.tolist()], code


def attr_strings(decoded: Decoded, attr: np.ndarray, pool: Pool) -> Ranges:
    """``as_str`` of each row's attribute value (attr -1 or a None value: null).

    String values are referenced in the payloads, never decoded; ``as_str`` runs only for other
    kinds (an int agent version, a list...), once per distinct value.
    """
    out = Ranges(*attr_ranges(decoded.attrs, np.ascontiguousarray(attr)))
    other = np.flatnonzero(out.source == _OTHER)
    if other.size:
        ids, first = decoded.value_ids(attr[other])
        source, offs, lens = pool.ranges([as_str(decoded.value(a)) for a in first.tolist()])
        out.set(other, source[ids], offs[ids], lens[ids])
    return out


def derived_strings(
    out: Ranges, rows: np.ndarray, results: list[str | None], group: np.ndarray, pool: Pool
) -> None:
    """Set ``rows`` of ``out`` to their group's result (None: null)."""
    source, offs, lens = pool.ranges(results)
    out.set(rows, source[group], offs[group], lens[group])


def pick(attrs: np.ndarray, attr: np.ndarray, column: int, missing: int) -> np.ndarray:
    """attrs[attr, column], ``missing`` where attr is -1."""
    if not attrs.shape[0]:
        return np.full(attr.shape, missing, np.int64)
    return np.where(attr >= 0, attrs[attr, column], missing)
