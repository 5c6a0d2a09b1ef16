"""The overview and the agents list: the report's per-agent health (``report.health``), ranked
for a lead, with the period before for comparison, open alerts, regressions and latency."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import duckdb
import orjson

from dashboard.history import eval_events
from dashboard.reader import Reader
from dashboard.window import Window
from report.formats import agent_dict
from report.health import HealthReport, bucket_seconds, build_report
from storage.catalog import rows_of
from storage.runs import FAILED_SQL, SUCCEEDED_SQL, RunSet

FAILING_NOW = 10


def health(reader: Reader, con: duckdb.DuckDBPyConnection, window: Window) -> HealthReport:
    return build_report(reader.runs(con, window), reader.agents)


def agents_view(reader: Reader, window: Window) -> dict[str, Any]:
    """Every agent of the window with the report's numbers and its failure-rate trend."""
    with reader.connection() as con:
        report = health(reader, con, window)
    agents = []
    for a in report.agents:
        doc = agent_dict(a)
        doc["trend"] = [b["failure_rate"] for b in doc.pop("buckets")]
        agents.append(doc)
    return {"window": window.as_dict(), "bucket_seconds": report.bucket_seconds, "agents": agents}


def overview_view(reader: Reader, window: Window) -> dict[str, Any]:
    with reader.connection() as con:
        # Both periods' runs loaded once; the report and the trend read this window's.
        both_periods = Window(window.previous().since, window.until, window.tenant, window.label)
        both = reader.runs(con, both_periods, extra=("cost_usd",))
        runs_now = both.within(window.since, window.until)
        report = build_report(runs_now, reader.agents)
        previous = _totals(both.within(window.previous().since, window.since))
        now = _totals(runs_now)
        latency = _p95_trend(runs_now, window)
        alerts = _open_alerts(con, window)
        events = eval_events(con, window, None, 20)
        incidents = _incidents(con, window)
    runs = report.runs
    failures = sum(a.failures for a in report.agents)
    succeeded = runs - failures - sum(a.degraded for a in report.agents)
    failing = sorted(
        (a for a in report.agents if a.failures),
        key=lambda a: (-(a.failure_rate * max(a.affected_users, 1)), a.tenant, a.agent),
    )
    return {
        "window": window.as_dict(),
        "runs": {"now": runs, "previous": previous["runs"]},
        "success_rate": {"now": succeeded / runs if runs else None, "previous": previous["success_rate"]},
        "failures": {"now": failures, "previous": previous["failures"]},
        "degraded": {"now": sum(a.degraded for a in report.agents), "previous": previous["degraded"]},
        "spend_usd": {"now": now["spend_usd"], "previous": previous["spend_usd"]},
        "failing_agents": [
            {
                "tenant": a.tenant,
                "agent": a.agent,
                "agent_name": a.agent_name,
                "runs": a.runs,
                "failures": a.failures,
                "failure_rate": a.failure_rate,
                "affected_users": a.affected_users,
                "score": a.failure_rate * max(a.affected_users, 1),
                "top_failure_type": a.failure_types[0].failure_type if a.failure_types else None,
                "cross_user": a.cross_user.flag,
                "cross_user_loud": a.cross_user.loud,
            }
            for a in failing[:FAILING_NOW]
        ],
        "cross_user": [
            {
                "tenant": a.tenant,
                "agent": a.agent,
                "agent_name": a.agent_name,
                "owner": a.owner,
                "loud": a.cross_user.loud,
                "message": a.cross_user.message,
                "others": a.cross_user.other_users_failing,
                "owner_runs": a.cross_user.owner_runs,
            }
            for a in report.agents
            if a.cross_user.flag
        ],
        "open_alerts": alerts,
        "regressions": events,
        "incidents": incidents,
        "latency_p95": latency,
        "bucket_seconds": report.bucket_seconds,
    }


def _totals(runs: RunSet) -> dict[str, Any]:
    ((total, failed, succeeded, spend),) = runs.query(
        f"""SELECT count(*), count(*) FILTER (WHERE {FAILED_SQL}), count(*) FILTER (WHERE {SUCCEEDED_SQL}),
                   sum(cost_usd) FROM runs"""
    )
    return {
        "runs": total,
        "failures": failed,
        "degraded": total - failed - succeeded,
        "spend_usd": spend,
        "success_rate": succeeded / total if total else None,
    }


def _p95_trend(runs: RunSet, window: Window) -> list[dict[str, Any]]:
    """Run latency p95 per bucket over all agents (the report's bucket sizes), empty ones null."""
    size = bucket_seconds(window.length.total_seconds())
    found = {
        int(b): (int(n), q)
        for b, n, q in runs.query(
            """SELECT (epoch_us(start_time) - epoch_us($since::TIMESTAMPTZ)) // $size AS b, count(*),
                      quantile_cont(duration_ms, 0.95) FROM runs GROUP BY b""",
            {"since": window.since, "size": size * 1_000_000},
        )
    }
    count = math.ceil(window.length.total_seconds() / size)
    return [
        {
            "start": window.since + timedelta(seconds=b * size),
            "runs": found.get(b, (0, None))[0],
            "p95_ms": found.get(b, (0, None))[1],
        }
        for b in range(count)
    ]


def _open_alerts(con: duckdb.DuckDBPyConnection, window: Window) -> list[dict[str, Any]]:
    """Alerts whose last message is firing or repeat: they have not resolved."""
    tenant, params = window.tenant_clause()
    rows = rows_of(
        con,
        f"""SELECT time, fired_at, state, rule, kind, tenant, agent, agent_name, value, threshold, summary,
                   example_trace_ids
            FROM alert_events WHERE true{tenant}
            QUALIFY row_number() OVER (PARTITION BY alert_key ORDER BY time DESC) = 1
            ORDER BY time DESC""",
        params,
    )
    out = []
    for doc in rows:
        if doc["state"] in ("firing", "repeat") and doc["kind"] not in ("budget", "eval_regression"):
            doc["example_trace_ids"] = orjson.loads(doc["example_trace_ids"] or "[]")
            out.append(doc)
    return out


def _incidents(con: duckdb.DuckDBPyConnection, window: Window) -> int:
    """Alerts that fired in the window (a repeat or resolution of one is the same incident)."""
    tenant, params = window.tenant_clause()
    ((count,),) = con.execute(
        f"""SELECT count(*) FROM alert_events WHERE state = 'firing' AND time >= $since AND time < $until
            {tenant}""",
        params | {"since": window.since, "until": window.until},
    ).fetchall()
    return int(count)
