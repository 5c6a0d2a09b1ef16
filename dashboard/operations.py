"""The SRE's views: runs and failures per minute, a heatmap of failing steps by agent, span
latency by model, tool and provider, the error taxonomy, retry storms; and the history pages'
data (eval runs, alert events)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import orjson

from dashboard.history import eval_events, eval_runs
from dashboard.reader import Reader
from dashboard.window import Window
from storage.catalog import rows_of
from storage.runs import FAILED_SQL, FAILURE_TYPE_SQL, UNSUCCESSFUL_SQL

MAX_POINTS = 180
STORM_PER_MINUTE = 5
"""Failed spans of one tool or model within one minute that make a retry storm."""
LATENCY_GROUPS = 8
_LABEL = (  # an agent as the UI writes it: "expense-bot (agt_7f3a9c21)", or its id alone
    "CASE WHEN r.agent_name IS NOT NULL AND r.agent_name <> r.agent"
    " THEN r.agent_name || ' (' || r.agent || ')' ELSE r.agent END"
)


def _step_seconds(window: Window) -> int:
    return max(60, -(-int(window.length.total_seconds()) // MAX_POINTS // 60) * 60)


def operations_view(reader: Reader, window: Window) -> dict[str, Any]:
    step = _step_seconds(window)
    with reader.connection() as con:
        runs = reader.runs(con, window)
        per_step = {
            int(b): (int(n), int(f))
            for b, n, f in runs.query(
                f"""SELECT (epoch_us(start_time) - epoch_us($since::TIMESTAMPTZ)) // $size AS b, count(*),
                           count(*) FILTER (WHERE {FAILED_SQL}) FROM runs GROUP BY b""",
                {"since": window.since, "size": step * 1_000_000},
            )
        }
        taxonomy = runs.rows(
            f"""SELECT {FAILURE_TYPE_SQL} AS failure_type, count(*) AS runs, count(DISTINCT agent) AS agents,
                       list_sort(list(DISTINCT {{'tenant': tenant, 'agent': agent, 'name': agent_name}}))[1:5]
                           AS agent_list,
                       list(trace_id ORDER BY start_time DESC)[1:3] AS example_trace_ids
                FROM runs WHERE {UNSUCCESSFUL_SQL} GROUP BY ALL ORDER BY runs DESC, failure_type"""
        )
        # The failing spans once (few), for the heatmap and the retry storms.
        failing_spans = reader.spans(con, "failing", window)
        con.execute(
            f"""CREATE TEMP TABLE failing AS
                SELECT tenant, operation, tool_name, model, start_time, trace_id, kind FROM {failing_spans}"""
        )
        # Each failing span under its run's agent (a span names its agent only sometimes).
        heat = runs.query(
            f"""SELECT {_LABEL} AS agent, coalesce(f.tool_name, f.operation) AS step, count(*) AS failed
                FROM failing f JOIN runs r ON f.trace_id = r.trace_id AND f.tenant = r.tenant
                WHERE f.operation <> 'agent_run' GROUP BY ALL ORDER BY failed DESC, agent, step LIMIT 400"""
        )
        storms = con.execute(
            f"""SELECT coalesce(tool_name, model) AS target, date_trunc('minute', start_time) AS minute,
                       count(*) AS failed, count(DISTINCT trace_id) AS traces, mode(kind) AS failure_type
                FROM failing WHERE coalesce(tool_name, model) IS NOT NULL
                GROUP BY ALL HAVING count(*) >= {STORM_PER_MINUTE}
                ORDER BY minute DESC, failed DESC LIMIT 50"""
        ).fetchall()
        # Span latency by model, tool and provider in one pass over the window's spans.
        latency = con.execute(
            f"""SELECT kind, key, count(*) AS n, quantile_cont(duration_ms, [0.5, 0.9, 0.99]) AS q,
                       histogram(round(duration_ms / 100) * 100) AS bins
                FROM {reader.spans(con, "latency", window)}
                GROUP BY kind, key
                QUALIFY row_number() OVER (PARTITION BY kind ORDER BY n DESC, key) <= {LATENCY_GROUPS}
                ORDER BY kind, n DESC, key"""
        ).fetchall()
    count = math.ceil(window.length.total_seconds() / step)
    return {
        "window": window.as_dict(),
        "step_seconds": step,
        "per_step": [
            {
                "start": window.since + timedelta(seconds=b * step),
                "runs": per_step.get(b, (0, 0))[0],
                "failures": per_step.get(b, (0, 0))[1],
            }
            for b in range(count)
        ],
        "taxonomy": taxonomy,
        "heatmap": [{"agent": a, "step": s, "failed": int(n)} for a, s, n in heat],
        "latency": [
            {
                "kind": k,
                "key": key,
                "spans": int(n),
                "p50_ms": q[0],
                "p90_ms": q[1],
                "p99_ms": q[2],
                "histogram": sorted(
                    ({"ms": float(ms), "spans": int(c)} for ms, c in bins.items()), key=lambda b: b["ms"]
                ),
            }
            for k, key, n, q, bins in latency
        ],
        "retry_storms": [
            {"target": t, "minute": m, "failed": int(n), "traces": int(tr), "failure_type": ft}
            for t, m, n, tr, ft in storms
        ],
        "storm_threshold_per_minute": STORM_PER_MINUTE,
    }


def evals_view(reader: Reader, window: Window) -> dict[str, Any]:
    tenant_sql, params = window.tenant_clause()
    with reader.connection() as con:
        runs = eval_runs(con, window, None, 500)
        pins = rows_of(
            con,
            f"""SELECT tenant, agent, kind, run_id, pinned_at FROM eval_baselines WHERE true{tenant_sql}
                QUALIFY row_number() OVER (PARTITION BY tenant, agent, kind ORDER BY pinned_at DESC) = 1
                ORDER BY tenant, agent, kind""",
            params,
        )
        events = eval_events(con, window, None, 200)
    return {"window": window.as_dict(), "runs": runs, "baselines": pins, "events": events}


def alerts_view(reader: Reader, window: Window) -> dict[str, Any]:
    tenant_sql, params = window.tenant_clause()
    with reader.connection() as con:
        events = rows_of(
            con,
            f"""SELECT time, state, rule, kind, tenant, agent, agent_name, value, threshold, summary, runs,
                       affected_users, example_trace_ids, fired_at, delivered, failed FROM alert_events
                WHERE time >= $since AND time < $until{tenant_sql}
                ORDER BY time DESC, rule, agent LIMIT 1000""",
            params | {"since": window.since, "until": window.until},
        )
    for doc in events:
        for key in ("example_trace_ids", "delivered", "failed"):
            doc[key] = orjson.loads(doc[key] or ("{}" if key == "failed" else "[]"))
    return {"window": window.as_dict(), "events": events}
