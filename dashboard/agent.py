"""The agent page (for its owner): the report's health of one agent, and what it adds: failure
types over time, every affected user with the owner marked, failure signals, recent failed runs,
the steps that fail most, and the agent's eval runs."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import duckdb

from dashboard.derived import STEPS
from dashboard.history import eval_events, eval_runs
from dashboard.reader import Reader
from dashboard.window import Window
from feedback.implicit import ImplicitConfig, implicit_signals
from report.fallbacks import fallbacks
from report.formats import agent_dict
from report.health import IMPLICIT_COLUMNS, bucket_seconds, build_report
from report.signals import clusters
from storage.runcache import derived_rows
from storage.runs import FAILURE_TYPE_SQL, UNSUCCESSFUL_SQL, RunSet

RECENT_RUNS = 50
STEPS_SHOWN = 15


class NotFound(LookupError):
    """No run of this agent (of this tenant) in the window, and no eval run of it."""


def agent_view(reader: Reader, window: Window, agent: str) -> dict[str, Any]:
    with reader.connection() as con:
        runs = reader.runs(con, window, agent, materialize=True)
        report = build_report(runs, reader.agents)
        mine = [a for a in report.agents if agent in (a.agent, a.agent_name)] or report.agents[:1]
        evals = _evals(con, window, agent, mine[0].agent_name if mine else None)
        if not mine and not evals["runs"]:
            raise NotFound(agent)
        if not mine:
            return {"window": window.as_dict(), "agent": None, "evals": evals}
        found = mine[0]
        narrowed = runs.within(tenant=found.tenant)
        doc = agent_dict(found)
        doc["bucket_seconds"] = report.bucket_seconds
        return {
            "window": window.as_dict(),
            "agent": doc,
            "failure_types_over_time": _types_over_time(narrowed, window, report.bucket_seconds),
            "users": _users(narrowed, found.owner),
            "signals": [_signal(s) for s in clusters(narrowed, 10)],
            "recent_failures": _recent(narrowed),
            "steps": _steps(narrowed),
            "evals": evals,
        }


def implicit_view(reader: Reader, window: Window, agent: str, config: ImplicitConfig) -> dict[str, Any]:
    """The agent's implicit feedback and fallbacks in the window (``feedback.implicit``,
    ``report.fallbacks``): their own endpoint, so the agent page's main answer never waits for
    the spans they read."""
    with reader.connection() as con:
        runs = reader.runs(con, window, agent, IMPLICIT_COLUMNS)
        found = implicit_signals(runs, config, bucket_seconds(runs.scope.seconds))
        fell_back = fallbacks(runs)
    if not found:
        raise NotFound(agent)
    (tenant, label), summary = sorted(found.items())[0]
    f = fell_back.get((tenant, label))
    return {"window": window.as_dict(), "tenant": tenant, "agent": label, "implicit": summary.__dict__,
            "fallbacks": None if f is None else f.__dict__}  # fmt: skip


def _types_over_time(runs: RunSet, window: Window, size: int) -> dict[str, Any]:
    """Failed and degraded runs per bucket and failure type (a stacked chart's series)."""
    rows = runs.query(
        f"""SELECT (epoch_us(start_time) - epoch_us($since::TIMESTAMPTZ)) // $size AS b,
                   {FAILURE_TYPE_SQL} AS t, count(*) FROM runs WHERE {UNSUCCESSFUL_SQL} GROUP BY ALL""",
        {"since": window.since, "size": size * 1_000_000},
    )
    count = math.ceil(window.length.total_seconds() / size)
    series: dict[str, list[int]] = {}
    for b, t, n in rows:
        series.setdefault(str(t), [0] * count)[int(b)] = int(n)
    starts = [window.since + timedelta(seconds=i * size) for i in range(count)]
    return {"starts": starts, "series": dict(sorted(series.items(), key=lambda kv: (-sum(kv[1]), kv[0])))}


def _users(runs: RunSet, owner: str | None) -> list[dict[str, Any]]:
    rows = runs.rows(
        f"""SELECT user_id, count(*) AS runs, count(*) FILTER (WHERE {UNSUCCESSFUL_SQL}) AS failures,
                   max(start_time) FILTER (WHERE {UNSUCCESSFUL_SQL}) AS last_failure_at
            FROM runs GROUP BY user_id ORDER BY failures DESC, runs DESC, user_id NULLS LAST"""
    )
    return [dict(r, is_owner=owner is not None and r["user_id"] == owner) for r in rows]


def _signal(s: Any) -> dict[str, Any]:
    return {
        "id": s.id,
        "failure_type": s.failure_type,
        "template": s.template,
        "count": s.count,
        "first_seen": s.first_seen,
        "last_seen": s.last_seen,
        "affected_users": s.affected_users,
        "example_trace_ids": s.example_trace_ids,
    }


def _recent(runs: RunSet) -> list[dict[str, Any]]:
    return runs.rows(
        f"""SELECT trace_id, start_time, duration_ms, outcome, {FAILURE_TYPE_SQL} AS failure_type,
                   error_message, user_id, failing_span_id
            FROM runs WHERE {UNSUCCESSFUL_SQL} ORDER BY start_time DESC, trace_id LIMIT {RECENT_RUNS}"""
    )


def _steps(runs: RunSet) -> list[dict[str, Any]]:
    """The steps of the agent's runs (span name, tool, model) by how often they failed: the
    closed days' spans from the run cache (``storage.runcache``)."""
    rows = runs.rows(
        f"""SELECT operation, step, model, count(*) AS spans, count(*) FILTER (WHERE failed) AS failed,
                  mode(failure_type) FILTER (WHERE failure_type IS NOT NULL) AS failure_type,
                  quantile_cont(duration_ms, 0.95) AS p95_ms
           FROM ({derived_rows(runs, STEPS)})
           GROUP BY ALL ORDER BY failed DESC, spans DESC, step LIMIT $steps""",
        {"steps": STEPS_SHOWN},
    )
    return [dict(r, failure_rate=r["failed"] / r["spans"] if r["spans"] else None) for r in rows]


def _evals(con: duckdb.DuckDBPyConnection, window: Window, agent: str, name: str | None) -> dict[str, Any]:
    """The agent's eval runs (scheduled, canary, manual) of the window, newest first, with the
    pinned baselines and the regression events (eval runs name the agent as ``eval run`` got it)."""
    names = [n for n in (agent, name) if n]
    tenant, params = window.tenant_clause()
    pins = con.execute(
        f"""SELECT kind, run_id, pinned_at FROM eval_baselines WHERE list_contains($names, agent){tenant}
            QUALIFY row_number() OVER (PARTITION BY kind ORDER BY pinned_at DESC) = 1""",
        params | {"names": names},
    ).fetchall()
    return {
        "runs": eval_runs(con, window, names, 100),
        "baselines": {k: {"run_id": r, "pinned_at": p} for k, r, p in pins},
        "events": eval_events(con, window, names),
    }
