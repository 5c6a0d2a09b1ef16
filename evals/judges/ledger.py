"""The judge ledger: what the judge's own calls cost, priced like the cost processor prices
model spans (``processors.cost``: the ``genai-prices`` tables at the price in force that day, or
the config's ``processors.cost.models`` prices, which win; its tenant multipliers apply), and the
agent's own tokens priced the same way, to be shown side by side.

A call that reported no tokens has no cost (``cost_source`` None); one whose model has no price
is ``unknown``. Totals are None when no part of them is known."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from processors.cost.config import Config as CostConfig


@dataclass(frozen=True)
class Usage:
    """Tokens (and their cost) summed over calls or cases."""

    calls: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None

    def add(self, input_tokens: int | None, output_tokens: int | None, cost: float | None) -> Usage:
        known = cost is not None or self.cost_usd is not None
        total = round((self.cost_usd or 0.0) + (cost or 0.0), 10) if known else None
        inp, out = _plus(self.input_tokens, input_tokens), _plus(self.output_tokens, output_tokens)
        return Usage(self.calls + 1, inp, out, total)

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cost_usd": self.cost_usd}  # fmt: skip


def _plus(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else (a or 0) + (b or 0)


class _Nowhere:
    def consume(self, batch: Any) -> None:
        return None


class Pricer:
    """Prices (model, input tokens, output tokens) as the cost processor prices a chat span."""

    def __init__(self, cost: CostConfig | None = None, tenant: str = "default", provider: str = "") -> None:
        from processors.cost.processor import CostProcessor

        self._processor = CostProcessor(cost or CostConfig(), _Nowhere())
        self.tenant = tenant
        self.provider = provider

    def price(
        self, items: Sequence[tuple[str | None, int | None, int | None]], when: datetime
    ) -> list[tuple[float | None, str | None]]:
        """(cost in dollars, ``computed``/``unknown``) per (model, input, output); (None, None)
        for an item with no tokens or no model."""
        if not items:
            return []
        n = len(items)
        table = pa.table({
            "tenant": pa.array([self.tenant] * n, pa.string()),
            "provider": pa.array([self.provider] * n, pa.string()),
            "model": pa.array([m for m, _, _ in items], pa.string()),
            "operation": pa.array(["chat"] * n, pa.string()),
            "start_time": pa.array([when] * n, pa.timestamp("us", "UTC")),
            "input_tokens": pa.array([i for _, i, _ in items], pa.int64()),
            "output_tokens": pa.array([o for _, _, o in items], pa.int64()),
            "cached_tokens": pa.array([None] * n, pa.int64()),
            "cache_write_tokens": pa.array([None] * n, pa.int64()),
            "cost_usd": pa.array([None] * n, pa.float64()),
            "cost_source": pa.array([None] * n, pa.string()),
        })  # fmt: skip
        priced = self._processor.price(table)
        costs = priced["cost_usd"].to_pylist()
        sources = priced["cost_source"].to_pylist()
        return [(None if c is None else round(float(c), 10), s) for c, s in zip(costs, sources, strict=True)]
