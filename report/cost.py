"""Spend by a dimension: the cost report behind ``agentwatch cost``.

By ``tenant``, ``agent``, ``user`` or an organisational dimension (``team``, ``org``, ``workspace``,
``project``, ``workflow``: see ``storage.usage``) it reads the runs (``storage.runs``: a run's ``cost_usd`` is
the sum of its spans', so nothing is counted twice): spend, runs, spend per run and per
successful run, tokens and the cache-hit ratio. By ``model`` or ``provider`` it reads the model
calls themselves (spans), with the calls counted. Either way it lists the models with no known
price (``cost_source = 'unknown'``) and how many calls each had: never a silent zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from core.agents import NAME_FROM_SPANS_SQL, agent_label
from core.model import LLM_OPERATIONS
from spend.forecast import Forecast, month_end_forecast
from storage.runs import KEY_COLUMNS, SUCCEEDED_SQL, RunSet, since_date
from storage.usage import DIMENSIONS as ORG_DIMENSIONS

RUN_DIMENSIONS = {
    "tenant": "tenant", "agent": "agent", "user": "coalesce(user_id, '(unknown)')",
    **{d: f"coalesce({d}, '(none)')" for d in ORG_DIMENSIONS},
}  # fmt: skip
_NAMES = {"agent": NAME_FROM_SPANS_SQL}
"""Per dimension, the name shown beside the key (an agent's name beside its id)."""
SPAN_DIMENSIONS = {"model": "model", "provider": "coalesce(provider, '(unknown)')"}
DIMENSIONS = (*RUN_DIMENSIONS, *SPAN_DIMENSIONS)
COST_COLUMNS = ("cost_usd", "input_tokens", "output_tokens", "cached_tokens", "agent_name")
"""The columns of runs the cost report reads beyond the base ones (``runs_in``'s ``extra``)."""
COST_BASE = (*KEY_COLUMNS, "user_id", "outcome")
"""The base columns of runs the cost report reads (``runs_in``'s ``base``): no error columns."""


def cost_columns(by: str) -> tuple[str, ...]:
    """The columns of runs the cost report by ``by`` reads beyond the base ones (an
    organisational dimension only when it is the one asked for: each costs on millions of runs)."""
    return (*COST_COLUMNS, by) if by in ORG_DIMENSIONS else COST_COLUMNS


@dataclass(frozen=True)
class CostRow:
    key: str
    spend_usd: float
    share: float | None
    count: int
    """Runs (by tenant, agent, user) or model calls (by model, provider)."""
    spend_per_count: float | None
    spend_per_successful_run: float | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cache_hit_ratio: float | None
    """Cached input tokens over input tokens."""
    id: str = ""
    """The key as stored (an agent's id, where ``key`` reads ``name (id)``)."""


@dataclass(frozen=True)
class CostReport:
    by: str
    total_usd: float
    rows: list[CostRow]
    unknown_models: list[tuple[str, int]]
    """(model, calls) of the model calls with tokens and no known price."""
    forecasts: dict[str, Forecast] | None = None
    """Per row key, this month's spend to date and where it will end (``--forecast``)."""


def cost_report(runs: RunSet, by: str) -> CostReport:
    """Spend of ``runs`` (loaded with ``cost_columns(by)``) by ``by`` (one of ``DIMENSIONS``)."""
    if by not in DIMENSIONS:
        raise ValueError(f"by: one of {', '.join(DIMENSIONS)}, not {by!r}")
    if by in RUN_DIMENSIONS:
        rows = runs.rows(
            f"""SELECT {RUN_DIMENSIONS[by]} AS key, {_NAMES.get(by, "NULL")} AS name,
                       coalesce(sum(cost_usd), 0) AS spend, count(*) AS n,
                       count(*) FILTER (WHERE {SUCCEEDED_SQL}) AS succeeded,
                       coalesce(sum(input_tokens), 0) AS i, coalesce(sum(output_tokens), 0) AS o,
                       coalesce(sum(cached_tokens), 0) AS c
                FROM runs GROUP BY key ORDER BY spend DESC, key"""
        )
    else:
        rows = runs.rows(
            f"""SELECT {SPAN_DIMENSIONS[by]} AS key, NULL AS name, coalesce(sum(s.cost_usd), 0) AS spend,
                       count(*) AS n,
                       NULL AS succeeded, coalesce(sum(s.input_tokens), 0) AS i,
                       coalesce(sum(s.output_tokens), 0) AS o, coalesce(sum(s.cached_tokens), 0) AS c
                FROM spans s SEMI JOIN runs r ON s.trace_id = r.trace_id AND s.tenant = r.tenant
                WHERE s.date >= $since_date AND s.operation IN {LLM_OPERATIONS} AND s.model IS NOT NULL
                GROUP BY key ORDER BY spend DESC, key""",
            {"since_date": since_date(runs.scope.since)},
        )
    total = float(sum(r["spend"] for r in rows))
    out = [
        CostRow(
            key=agent_label(str(r["key"]), r["name"]),
            spend_usd=float(r["spend"]),
            share=float(r["spend"]) / total if total else None,
            count=int(r["n"]),
            spend_per_count=float(r["spend"]) / r["n"] if r["n"] else None,
            spend_per_successful_run=(float(r["spend"]) / r["succeeded"]) if r["succeeded"] else None,
            input_tokens=int(r["i"]),
            output_tokens=int(r["o"]),
            cached_tokens=int(r["c"]),
            cache_hit_ratio=int(r["c"]) / int(r["i"]) if r["i"] else None,
            id=str(r["key"]),
        )
        for r in rows
    ]
    return CostReport(by, total, out, _unknown_models(runs))


def forecasts(runs: RunSet, by: str, today: date) -> dict[str, Forecast]:
    """Each key's month-end forecast from its daily spend (``runs``: at least the month so far
    and ``HISTORY_DAYS`` before today, loaded with ``cost_columns(by)``); run dimensions only."""
    if by not in RUN_DIMENSIONS:
        raise ValueError(f"by: a forecast is by {', '.join(RUN_DIMENSIONS)}, not {by!r}")
    key_sql = RUN_DIMENSIONS[by]
    name_sql = _NAMES.get(by, "NULL")
    names = {str(k): n for k, n in runs.query(f"SELECT {key_sql} AS key, {name_sql} FROM runs GROUP BY key")}
    daily: dict[str, dict[date, float]] = {}
    for key, day, spend in runs.query(
        f"""SELECT {key_sql} AS key, CAST(timezone('UTC', start_time) AS DATE) AS day, sum(cost_usd)
            FROM runs WHERE cost_usd IS NOT NULL GROUP BY ALL"""
    ):
        daily.setdefault(agent_label(str(key), names.get(str(key))), {})[day] = float(spend)
    return {key: month_end_forecast(days, today) for key, days in daily.items()}


def _unknown_models(runs: RunSet) -> list[tuple[str, int]]:
    found = runs.query(
        """SELECT s.model, count(*) AS n
           FROM spans s SEMI JOIN runs r ON s.trace_id = r.trace_id AND s.tenant = r.tenant
           WHERE s.date >= $since_date AND s.cost_source = 'unknown'
           GROUP BY s.model ORDER BY n DESC, s.model""",
        {"since_date": since_date(runs.scope.since)},
    )
    return [(str(model), int(n)) for model, n in found]


def report_dict(report: CostReport) -> dict[str, Any]:
    """The JSON form (``agentwatch.cost/v1``)."""
    return {
        "schema": "agentwatch.cost/v1",
        "by": report.by,
        "total_usd": report.total_usd,
        "rows": [dict(row.__dict__) for row in report.rows],
        "cost_unknown_model": [{"model": m, "calls": n} for m, n in report.unknown_models],
        **(
            {}
            if report.forecasts is None
            else {"forecast": {k: dict(f.__dict__) for k, f in sorted(report.forecasts.items())}}
        ),
    }


def render_cost_csv(report: CostReport) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    fields = list(CostRow.__dataclass_fields__)
    writer.writerow([report.by if f == "key" else f for f in fields])
    for row in report.rows:
        writer.writerow([printable_cell(getattr(row, f)) for f in fields])
    return out.getvalue()


def printable_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.10g}"
    return csv_safe(str(value))


def csv_safe(text: str) -> str:
    """Data, never a spreadsheet formula (``=``, ``+``, ``-``, ``@``, a tab or a carriage return
    lead a formula)."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def render_cost_text(report: CostReport, described: str) -> str:
    from io import StringIO

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from core.safetext import cell, printable

    # Every line and title holding data is a Text: rich parses a plain string as markup, and a
    # model (or tenant, or agent) named ``gpt[/]x`` would crash the command.
    table = Table(title=Text(f"spend by {report.by} {printable(described)}: ${report.total_usd:,.2f}"))
    per = "per run" if report.by in RUN_DIMENSIONS else "per call"
    for name in (report.by, "spend", "share", "runs" if report.by in RUN_DIMENSIONS else "calls", per,
                 "per successful run", "input tokens", "output tokens", "cache hits"):  # fmt: skip
        table.add_column(name, justify="left" if name == report.by else "right")
    for r in report.rows:
        table.add_row(
            cell(r.key), f"${r.spend_usd:,.4f}", _pct(r.share), f"{r.count:,}", _usd(r.spend_per_count),
            _usd(r.spend_per_successful_run), f"{r.input_tokens:,}", f"{r.output_tokens:,}",
            _pct(r.cache_hit_ratio),
        )  # fmt: skip
    out = StringIO()
    console = Console(file=out, width=160, force_terminal=False, color_system=None)
    console.print(table)
    if report.unknown_models:
        listed = ", ".join(f"{printable(m)} ({n} calls)" for m, n in report.unknown_models)
        console.print(
            Text(f"cost_unknown_model: {listed}: no price known (processors.cost.models can give one)")
        )
    if not report.rows:
        console.print("no runs in this window")
    if report.forecasts:
        month = Table(title="this month: spend to date and where it will end (90% interval)")
        for name in (report.by, "to date", "month end", "interval"):
            month.add_column(name, justify="left" if name == report.by else "right")
        for key, f in sorted(report.forecasts.items(), key=lambda kv: -kv[1].month_end):
            month.add_row(cell(key), f"${f.month_to_date:,.2f}", f"${f.month_end:,.2f}",
                          f"${f.low:,.2f} to ${f.high:,.2f}")  # fmt: skip
        console.print(month)
        methods = sorted({f.method for f in report.forecasts.values()})
        console.print(Text(f"forecast: {'; '.join(methods)} (spend/forecast.py)"))
    return out.getvalue()


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4f}"


def _signed(value: float) -> str:
    """A variance: under budget positive, over budget negative."""
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def render_budgets(budgets: list[dict[str, Any]]) -> str:
    """The ``--budgets`` table: spend this month against each budget, and the forecast."""
    from io import StringIO

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from core.safetext import cell

    table = Table(title=Text(f"budgets, {budgets[0]['month']}"))
    for name in ("budget", "scope", "monthly", "spent", "used", "variance", "month end (forecast)",
                 "forecast variance", "state"):  # fmt: skip
        table.add_column(name, justify="left" if name in ("budget", "scope", "state") else "right")
    for b in budgets:
        scope = " ".join(f"{k} {b[k]}" for k in ("tenant", "team", "agent") if b[k]) or "all runs"
        f = b["forecast"]
        state = ["OVER BUDGET (hard)"] if b["over_budget"] else []
        state += ["forecast over"] if b["forecast_over"] else []
        table.add_row(
            cell(b["name"]), cell(scope), f"${b['monthly_usd']:,.2f}", f"${b['spend_usd']:,.2f}",
            f"{100 * b['used']:.1f}%", _signed(b["variance_usd"]),
            "-" if f is None else f"${f['month_end']:,.2f}",
            "-" if f is None else _signed(b["forecast_variance_usd"]),
            ", ".join(x for x in state if x) or "ok",
        )  # fmt: skip
    out = StringIO()
    Console(file=out, width=160, force_terminal=False, color_system=None).print(table)
    return out.getvalue()


def render_leaks(leaks: list[dict[str, Any]]) -> str:
    """The ``--leaks`` table (``spend.leaks``): per agent, most wasted first."""
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    from core.safetext import cell

    table = Table(title="where money leaks (spend that bought nothing; unused tool output is an estimate)")
    for name in ("tenant", "agent", "spend", "wasted", "share", "failed runs", "retries", "loops",
                 "oversized", "unused tool output"):  # fmt: skip
        table.add_column(name, justify="left" if name in ("tenant", "agent") else "right")
    for x in leaks:
        table.add_row(
            cell(x["tenant"]), cell(agent_label(x["agent"], x["agent_name"])), _usd(x["spend_usd"]),
            _usd(x["wasted_usd"]),
            _pct(x["wasted_share"]), _usd(x["failed_runs_usd"]),
            f"{_usd(x['retries_usd'])} ({x['retried_calls']})", _usd(x["loops_usd"]),
            f"{_usd(x['oversized_usd'])} ({x['oversized_calls']})",
            f"{_usd(x['unused_tool_output_usd'])} ({x['unused_tool_calls']})",
        )  # fmt: skip
    out = StringIO()
    console = Console(file=out, width=160, force_terminal=False, color_system=None)
    console.print(table)
    if not leaks:
        console.print("no model or tool calls in this window")
    return out.getvalue()
