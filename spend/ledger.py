"""The chargeback ledger of a month: what each tenant, team, agent and model spent, at list
price, with the tenant's discount or markup, less the credits the config grants.

    chargeback:
      credits:
        - {tenant: acme, month: 2026-11, usd: 50, note: "pilot credit"}
        - {tenant: acme, team: search, month: 2026-11, usd: 10}

One usage line per (tenant, team, agent, model) from the ``usage`` view (``storage.usage``:
production model calls of the month, by the call's UTC start), so the ledger reconciles with the
views and the cost report by construction: a tenant's ``net_usd`` is the sum of its calls'
``cost_usd``. ``list_usd`` is that spend before the tenant's multiplier (the cost processor's
``tenant_multipliers``, which it applied to computed costs; reported costs are billed as
reported), ``adjustment_usd`` the discount (negative) or markup (positive), ``net_usd`` the sum.
Each credit is a line of its own with ``billed_usd`` = -``usd``; every other line bills its
``net_usd``. A tenant's bill is the sum of its lines' ``billed_usd`` (it can be negative when a
credit is larger than the month's spend: the ledger does not carry credits over).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import duckdb

from core.configmodel import STRICT

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
NONE = "(none)"
"""A line's team, agent or model when its calls name none."""


@dataclass(frozen=True)
class Credit:
    __pydantic_config__ = STRICT
    tenant: str
    month: str
    """``YYYY-MM``."""
    usd: float
    team: str | None = None
    note: str = ""

    def validate(self) -> list[str]:
        problems = [] if self.usd > 0 else ["usd: must be more than 0"]
        return problems + ([] if _MONTH.match(self.month) else [f"month: {self.month!r} is not YYYY-MM"])


@dataclass(frozen=True)
class ChargebackConfig:
    """The ``chargeback:`` section. Default: no credits."""

    __pydantic_config__ = STRICT
    credits: list[Credit] = field(default_factory=list)

    def validate(self) -> list[str]:
        return [f"credits.{i}.{p}" for i, credit in enumerate(self.credits) for p in credit.validate()]


@dataclass(frozen=True)
class LedgerLine:
    month: str
    kind: str
    """``usage`` or ``credit``."""
    tenant: str
    team: str
    agent: str
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    list_usd: float
    adjustment_usd: float
    net_usd: float
    credits_usd: float
    billed_usd: float
    note: str = ""


LEDGER_COLUMNS = tuple(LedgerLine.__dataclass_fields__)


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """``[first instant, first instant of the next month)`` of ``YYYY-MM``, UTC."""
    if not _MONTH.match(month):
        raise ValueError(f"month: {month!r} is not YYYY-MM")
    year, number = int(month[:4]), int(month[5:])
    start = date(year, number, 1)
    end = date(year + number // 12, number % 12 + 1, 1)
    return datetime.combine(start, datetime.min.time(), UTC), datetime.combine(end, datetime.min.time(), UTC)


_USAGE_SQL = f"""
SELECT tenant, coalesce(team, '{NONE}') AS team, coalesce(agent, '{NONE}') AS agent,
       coalesce(model, '{NONE}') AS model, count(*) AS calls,
       sum(input_tokens), sum(output_tokens), sum(cached_tokens), sum(cache_write_tokens),
       coalesce(sum(cost_usd) FILTER (WHERE cost_source = 'computed'), 0) AS computed,
       coalesce(sum(cost_usd) FILTER (WHERE cost_source IS DISTINCT FROM 'computed'), 0) AS reported
FROM usage
WHERE time >= $start AND time < $end AND NOT synthetic AND ($tenant IS NULL OR tenant = $tenant)
GROUP BY ALL
ORDER BY tenant, team, agent, model
"""


def ledger(
    con: duckdb.DuckDBPyConnection,
    month: str,
    multipliers: dict[str, float] | None = None,
    credits: list[Credit] | None = None,
    tenant: str | None = None,
) -> list[LedgerLine]:
    """The month's ledger lines (of ``tenant``, when given), each tenant's usage lines then its
    credits; ``con`` is a catalog connection with the analyst views (``connect(...,
    analyst_views=True)``). ``multipliers``: the cost processor's ``tenant_multipliers``."""
    start, end = month_bounds(month)
    multipliers = multipliers or {}
    lines: list[LedgerLine] = []
    found = con.execute(_USAGE_SQL, {"start": start, "end": end, "tenant": tenant}).fetchall()
    for t, team, agent, model, calls, i, o, c, w, computed, reported in found:
        factor = multipliers.get(t, 1.0)
        computed_list = float(computed) / factor if factor else float(computed)
        net = float(computed) + float(reported)
        listed = computed_list + float(reported)
        lines.append(
            LedgerLine(
                month,
                "usage",
                t,
                team,
                agent,
                model,
                int(calls),
                int(i),
                int(o),
                int(c),
                int(w),
                listed,
                net - listed,
                net,
                0.0,
                net,
            )
        )
    granted = [c for c in credits or () if c.month == month and tenant in (None, c.tenant)]
    tenants = sorted({line.tenant for line in lines} | {c.tenant for c in granted})
    ordered: list[LedgerLine] = []
    for t in tenants:
        ordered += [line for line in lines if line.tenant == t]
        ordered += [
            LedgerLine(
                month,
                "credit",
                t,
                c.team or NONE,
                NONE,
                NONE,
                0,
                0,
                0,
                0,
                0,
                0.0,
                0.0,
                0.0,
                c.usd,
                -c.usd,
                c.note,
            )
            for c in granted
            if c.tenant == t
        ]
    return ordered


@dataclass(frozen=True)
class Invoice:
    """One tenant's bill for the month (the invoice preview)."""

    tenant: str
    month: str
    lines: list[LedgerLine]
    list_usd: float
    adjustment_usd: float
    net_usd: float
    credits_usd: float
    billed_usd: float


def invoices(lines: list[LedgerLine]) -> list[Invoice]:
    out = []
    for tenant in sorted({line.tenant for line in lines}):
        mine = [line for line in lines if line.tenant == tenant]
        out.append(
            Invoice(
                tenant,
                mine[0].month,
                mine,
                sum(x.list_usd for x in mine),
                sum(x.adjustment_usd for x in mine),
                sum(x.net_usd for x in mine),
                sum(x.credits_usd for x in mine),
                sum(x.billed_usd for x in mine),
            )
        )
    return out


def line_dict(line: LedgerLine) -> dict[str, Any]:
    return dict(line.__dict__)
