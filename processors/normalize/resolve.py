"""Attribute names → canonical slots, and the coercions from attribute values to column types.

The index is inverted (attribute name → the slots it can fill, with a priority), so resolving
costs one lookup per distinct attribute name of a batch instead of one per name the conventions
know (``kernels.resolve_slots`` applies it to every span). Priorities encode "configured names
first, then built-ins in table order".
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from processors.normalize import conventions as conv

_NOT_FOUND = 1 << 30
_BUILTIN_PRIORITY = 1000  # configured names get 0.., built-in names 1000.., so config wins

Index = dict[str, tuple[tuple[str, int], ...]]


def build_index(extra: Mapping[str, Sequence[str]]) -> Index:
    """Attribute name → ((slot, priority), ...); a lower priority number wins."""
    best: dict[str, dict[str, int]] = {}

    def add(name: str, slot: str, priority: int) -> None:
        slots = best.setdefault(name, {})
        if priority < slots.get(slot, _NOT_FOUND):
            slots[slot] = priority

    for column, names in extra.items():
        for i, name in enumerate(names):
            add(name, column, i)
    for table in (conv.COLUMN_CANDIDATES, conv.SIGNAL_CANDIDATES):
        for slot, names in table.items():
            for i, name in enumerate(names):
                add(name, slot, _BUILTIN_PRIORITY + i)
    return {name: tuple(slots.items()) for name, slots in best.items()}


# --- coercion: attribute values arrive as whatever type the SDK chose -------------------


def as_int(value: Any) -> int | None:
    """Token counts: ints, floats and numeric strings ("12", "12.0"); anything else is None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        value = as_float(value)
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return None


def as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return isinstance(value, bool | int) and bool(value)


def as_json_object(value: Any) -> dict[str, Any] | None:
    """A kvlist value, or a JSON object sent as a string (Langfuse usage/cost details)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


_SEPARATORS = re.compile(r"[\s./-]+")


class ProviderAliases:
    """Provider spelling → canonical name; memoised, as a deployment sends few spellings."""

    def __init__(self, extra: Mapping[str, str]) -> None:
        self._table = dict(conv.PROVIDER_ALIASES)
        self._table.update({k.strip().lower(): v.strip().lower() for k, v in extra.items()})
        self._memo: dict[str, str] = {}

    def canonical(self, raw: str) -> str:
        hit = self._memo.get(raw)
        if hit is None:
            key = raw.strip().lower()
            hit = self._table.get(key)
            if hit is None:
                key = _SEPARATORS.sub("_", key)
                hit = self._table.get(key, key)
            if len(self._memo) < 10_000:
                self._memo[raw] = hit
        return hit
