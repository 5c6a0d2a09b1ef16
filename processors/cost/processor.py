"""The cost processor: prices the LLM spans that carry tokens but no cost.

Per batch, column by column: the spans to price are the model calls (``LLM_OPERATIONS``) with
token counts and no ``cost_usd`` (normalize keeps tokens on leaf calls only, so an agent span
that repeats its children's totals is never priced twice). Their distinct (provider, model,
day) keys are priced once each, from the config's ``models`` if it names the model, else from
the ``genai-prices`` library at the price in force that day; the cost is then

    (input - cached - written) x input price + cached x cache-read price
        + written x cache-write price + output x output price

(``input_tokens`` counts the cache reads and writes, as the GenAI conventions do and the
normaliser stores them for every source: every token is priced once, cache reads at the
cache-read rate, cache writes at the cache-write rate), times the tenant's multiplier.
``cost_source`` is ``reported`` (the span carried its cost; kept as it is), ``computed``, or
``unknown`` (no price for the model: ``cost_usd`` stays null, and the span is counted in
``agentwatch_cost_unknown_model_spans_total``). A request whose prompt is over
``TIER_TOKENS`` is priced on its own, so long-context price tiers apply.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.component import BaseComponent, Consumer
from core.model import LLM_OPERATIONS
from processors.cost.config import Config

log = logging.getLogger("agentwatch.cost")

TYPE = "cost"
TIER_TOKENS = 100_000
"""Prompts above this are priced one by one (price tiers by prompt size start at 128k-200k)."""
PROBE = 1000
"""Tokens of a probe: a unit price is the price of this many tokens over this many."""
CACHE_SIZE = 4096
# Canonical providers (the normaliser's) → the price library's provider ids.
PROVIDERS = {
    "gcp.vertex_ai": "google", "gcp.gemini": "google", "gemini": "google", "google": "google",
    "aws.bedrock": "aws", "bedrock": "aws", "az.ai.openai": "azure", "azure": "azure",
    "az.ai.inference": "azure", "openai": "openai", "anthropic": "anthropic", "mistral_ai": "mistral",
    "cohere": "cohere", "deepseek": "deepseek", "groq": "groq", "x_ai": "x-ai", "perplexity": "perplexity",
}  # fmt: skip


@dataclass(frozen=True)
class UnitPrice:
    """US dollars per token, and per request (a fixed fee some providers charge)."""

    input: float
    output: float
    cached: float
    request: float = 0.0
    cache_write: float | None = None
    """Per token written to a prompt cache; None: the input price."""


class CostProcessor(BaseComponent):
    def __init__(self, config: Config, next_consumer: Consumer) -> None:
        self.config = config
        self.next_consumer = next_consumer
        self._prices: OrderedDict[tuple[str, ...], UnitPrice | None] = OrderedDict()
        self._lock = threading.Lock()
        self._unknown = 0

    def consume(self, batch: pa.Table) -> None:
        self.next_consumer.consume(self.price(batch))

    def take_counts(self) -> dict[str, int]:
        with self._lock:
            unknown, self._unknown = self._unknown, 0
        return {"cost_unknown_model_spans": unknown}

    def price(self, table: pa.Table) -> pa.Table:
        """``table`` with ``cost_usd`` and ``cost_source`` set for its priceable spans."""
        tokens = pc.or_(pc.is_valid(table["input_tokens"]), pc.is_valid(table["output_tokens"]))
        wanted = pc.and_(
            pc.and_(pc.is_null(table["cost_usd"]), pc.is_in(table["operation"], pa.array(LLM_OPERATIONS))),
            pc.and_(tokens, pc.is_valid(table["model"])),
        )
        rows = np.flatnonzero(wanted.to_numpy(zero_copy_only=False))
        if not rows.size:
            return table
        sub = table.take(pa.array(rows)).select(
            [
                "tenant",
                "provider",
                "model",
                "start_time",
                "input_tokens",
                "output_tokens",
                "cached_tokens",
                "cache_write_tokens",
            ]
        )
        day = pc.strftime(pc.cast(sub["start_time"], pa.timestamp("us", "UTC")), "%Y-%m-%d")
        # The distinct (provider, model, day) keys, each column encoded on its own (names are
        # data: no separator can be assumed absent from them).
        columns = [pc.dictionary_encode(pc.fill_null(c, "")).combine_chunks() for c in
                   (sub["provider"], sub["model"], day)]  # fmt: skip
        codes = [c.indices.to_numpy().astype(np.int64) for c in columns]
        sizes = [len(c.dictionary) for c in columns]
        combined = (codes[0] * sizes[1] + codes[1]) * sizes[2] + codes[2]
        distinct, row_key = np.unique(combined, return_inverse=True)
        names = [c.dictionary.to_pylist() for c in columns]
        keys = [
            (
                names[0][int(k) // (sizes[1] * sizes[2])],
                names[1][int(k) // sizes[2] % sizes[1]],
                names[2][int(k) % sizes[2]],
            )
            for k in distinct
        ]
        units = [self._unit(*k) for k in keys]
        per_key = np.array(
            [
                [u.input, u.output, u.cached, u.request, u.input if u.cache_write is None else u.cache_write]
                if u
                else [np.nan] * 5
                for u in units
            ]
        ).reshape(len(units), 5)
        price = per_key[row_key]
        inp = _counts(sub["input_tokens"])
        out = _counts(sub["output_tokens"])
        cached = _counts(sub["cached_tokens"])
        written = _counts(sub["cache_write_tokens"])
        # The input counts the cache reads and writes (the GenAI conventions' meaning, which the
        # normaliser gives usage objects that count them apart): each token is priced once.
        cached = np.minimum(cached, inp)
        written = np.minimum(written, inp - cached)
        cost = (
            (inp - cached - written) * price[:, 0] + cached * price[:, 2] + written * price[:, 4]
            + out * price[:, 1] + price[:, 3]
        )  # fmt: skip
        for i in np.flatnonzero(inp > TIER_TOKENS):  # long prompts: the library's tiers apply
            provider, model, when = keys[int(row_key[i])]
            if self._override(model, provider) is None:
                single = self._library(
                    provider, model, when, int(inp[i]), int(out[i]), int(cached[i]), int(written[i])
                )
                if single is not None:
                    cost[i] = single
        cost *= self._multipliers(sub["tenant"])
        known = ~np.isnan(cost)
        with self._lock:
            self._unknown += int((~known).sum())
        costs = _scatter(table["cost_usd"], rows, np.where(known, cost, 0.0), known)
        sources = _scatter_text(table["cost_source"], rows, known)
        index = table.schema.get_field_index
        table = table.set_column(index("cost_usd"), "cost_usd", costs)
        return table.set_column(index("cost_source"), "cost_source", sources)

    # -- prices ---------------------------------------------------------------------------------
    def _unit(self, provider: str, model: str, day: str) -> UnitPrice | None:
        key = (provider, model, day)
        with self._lock:
            if key in self._prices:
                self._prices.move_to_end(key)
                return self._prices[key]
        unit = self._override(model, provider)
        if unit is None:
            # The price of no tokens is the per-request fee; each probe less it, per token.
            usages = (
                (0, 0, 0, 0),
                (PROBE, 0, 0, 0),
                (0, PROBE, 0, 0),
                (PROBE, 0, PROBE, 0),
                (PROBE, 0, 0, PROBE),
            )  # fee, input, output, cache read, cache write
            probe = [self._library(provider, model, day, *usage) for usage in usages]
            found = [p for p in probe if p is not None]
            if len(found) == len(probe):
                fee = found[0]
                _, per_input, per_output, per_cached, per_written = ((p - fee) / PROBE for p in found)
                unit = UnitPrice(per_input, per_output, per_cached, fee, per_written)
        with self._lock:
            self._prices[key] = unit
            while len(self._prices) > CACHE_SIZE:
                self._prices.popitem(last=False)
        if unit is None:
            log.debug("no price for model %r of provider %r", model, provider)
        return unit

    def _override(self, model: str, provider: str) -> UnitPrice | None:
        price = self.config.models.get(model)
        if price is None or (price.provider is not None and price.provider != provider):
            return None
        cached = price.input if price.cached_input is None else price.cached_input
        written = price.input if price.cache_write_input is None else price.cache_write_input
        return UnitPrice(price.input / 1e6, price.output / 1e6, cached / 1e6, 0.0, written / 1e6)

    def _library(
        self, provider: str, model: str, day: str, inp: int, out: int, cached: int, written: int = 0
    ) -> float | None:
        """The price library's price of one request, in dollars; None when it knows no price.
        ``inp`` counts the cache reads and writes (``cached``, ``written``), as the library does."""
        from genai_prices import Usage, calc_price

        when = datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC)
        usage = Usage(
            input_tokens=inp, output_tokens=out, cache_read_tokens=cached, cache_write_tokens=written
        )
        for provider_id in dict.fromkeys((PROVIDERS.get(provider, provider or None), None)):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = calc_price(usage, model, provider_id=provider_id, genai_request_timestamp=when)
            except LookupError:
                continue
            return float(result.total_price)
        return None

    def _multipliers(self, tenants: pa.ChunkedArray) -> np.ndarray | float:
        if not self.config.tenant_multipliers:
            return 1.0
        encoded = pc.dictionary_encode(tenants).combine_chunks()
        multipliers = self.config.tenant_multipliers
        factors = np.array([multipliers.get(t, 1.0) for t in encoded.dictionary.to_pylist()])
        by_row: np.ndarray = factors[encoded.indices.to_numpy()]
        return by_row


def _counts(column: pa.ChunkedArray) -> np.ndarray:
    """Token counts as floats, a missing or negative one 0 (a count below 0 is no count)."""
    counts: np.ndarray = np.maximum(pc.fill_null(column, 0).to_numpy().astype(np.float64), 0.0)
    return counts


def _scatter(column: pa.ChunkedArray, rows: np.ndarray, values: np.ndarray, valid: np.ndarray) -> pa.Array:
    """``column`` with ``values`` (null where not ``valid``) at ``rows``."""
    data = pc.fill_null(column, 0.0).to_numpy().astype(np.float64)
    mask = pc.is_valid(column).to_numpy(zero_copy_only=False).copy()
    data[rows] = values
    mask[rows] = valid
    return pa.array(data, pa.float64(), mask=~mask)


def _scatter_text(column: pa.ChunkedArray, rows: np.ndarray, known: np.ndarray) -> pa.Array:
    """``column`` with ``computed`` (``known``) or ``unknown`` at ``rows``."""
    index = np.full(len(column), -1, dtype=np.int64)
    index[rows] = np.where(known, 0, 1)
    chosen = pc.take(pa.array(["computed", "unknown"]), pa.array(index, mask=index < 0))
    return pc.coalesce(chosen, column.combine_chunks())
