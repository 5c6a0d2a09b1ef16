"""Usage and cost views for analysts: who spends what, when, and on what, in plain SQL.

``agentwatch query`` has them (``storage.catalog.connect(..., analyst_views=True)``). Each money
column is the sum of the model calls' ``cost_usd`` (the cost processor's, or the one a span
reported), so every view reconciles with every other and with ``runs.cost_usd``. Times are UTC.
A call or a run is attributed to its run's agent, user, session and organisational dimensions
(``team``, ``org``, ``workspace``, ``project``, ``workflow``: resource or span attributes, mapped
in the normalize processor's ``attributes``), the call's own value first.

=====================  ==============================================================================
view                   one row per
=====================  ==============================================================================
``usage``              model call (``chat``, ``embedding``...): time buckets, every dimension, tokens,
                       cost, ``cost_source`` and the outcome of its run
``spend_hourly``       hour x tenant x team x org x workspace x project x agent x workflow x model x
                       provider x user: calls, tokens, cache-hit ratio, spend (roll up to days, weeks
                       and months with ``date_trunc``)
``run_costs``          run: its dimensions, outcome, spend and tokens (cost per run, per successful
                       run; a run is one user action)
``sessions``           session (``session_id``): user, agent, runs, failures, start, end, length, spend
``requests_per_minute``  minute x tenant x agent: runs, failed runs, unique users
``daily_activity``     day x tenant: runs, unique users, unique agents, sessions, spend
``tool_calls``         tool or MCP call: time, tenant, run's agent, tool, failed, duration
``concurrency``        minute x tenant: the most runs in flight at once in that minute (minutes in
                       which a run starts or ends)
=====================  ==============================================================================

Production and eval traffic are both there: filter ``NOT synthetic`` for production only.
"""

from __future__ import annotations

import duckdb

from core.model import LLM_OPERATIONS, TOOL_OPERATIONS
from storage.runs import AGENT_SQL, FAILED_SQL, SUCCEEDED_SQL, span_failed_sql, sql_list

DIMENSIONS = ("team", "org", "workspace", "project", "workflow")
"""The organisational dimensions: a call's own value, else its run's."""

_UTC = "timezone('UTC', {t})"
_END = "start_time + to_microseconds(CAST(duration_ms * 1000 AS BIGINT))"
"""When a run ended."""


def _buckets(column: str) -> str:
    at = _UTC.format(t=column)
    return ", ".join(
        f"date_trunc('{unit}', {at}) AS {unit}" for unit in ("minute", "hour", "day", "week", "month")
    )


# The run of each trace, with the columns calls take from it (one row per tenant and trace).
_RUN_OF_TRACE = f"""
    SELECT tenant, trace_id, {AGENT_SQL} AS agent, agent_name, user_id, session_id, outcome,
           {", ".join(DIMENSIONS)}
    FROM runs
"""
_CALL_AGENT = "coalesce(r.agent, coalesce(s.agent_id, s.agent_name))"
"""A call's agent: its run's (``AGENT_SQL``), else the span's own id or name, else null (not
``UNKNOWN_AGENT``: a call the join finds no run for keeps no label)."""

VIEWS: dict[str, str] = {
    "usage": f"""
        SELECT s.start_time AS time, {_buckets("s.start_time")}, s.tenant,
               {", ".join(f"coalesce(s.{d}, r.{d}) AS {d}" for d in DIMENSIONS)},
               {_CALL_AGENT} AS agent,
               coalesce(r.agent_name, s.agent_name) AS agent_name,
               coalesce(s.user_id, r.user_id) AS user_id, coalesce(s.session_id, r.session_id) AS session_id,
               s.model, s.provider, s.operation, s.trace_id, s.span_id,
               coalesce(s.input_tokens, 0) AS input_tokens, coalesce(s.output_tokens, 0) AS output_tokens,
               coalesce(s.cached_tokens, 0) AS cached_tokens,
               coalesce(s.cache_write_tokens, 0) AS cache_write_tokens,
               coalesce(s.total_tokens, 0) AS total_tokens, s.cost_usd, s.cost_source,
               r.outcome AS run_outcome, s.synthetic
        FROM spans s LEFT JOIN ({_RUN_OF_TRACE}) r ON r.tenant = s.tenant AND r.trace_id = s.trace_id
        WHERE s.operation IN ({sql_list(LLM_OPERATIONS)})
    """,
    "spend_hourly": f"""
        SELECT hour, tenant, {", ".join(DIMENSIONS)}, agent, model, provider, user_id, synthetic,
               count(*) AS calls,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
               sum(cached_tokens) AS cached_tokens, sum(cache_write_tokens) AS cache_write_tokens,
               sum(cached_tokens) / nullif(sum(input_tokens), 0) AS cache_hit_ratio,
               coalesce(sum(cost_usd), 0) AS spend_usd,
               count(*) FILTER (WHERE cost_source = 'unknown') AS unpriced_calls
        FROM usage GROUP BY ALL
    """,
    "run_costs": f"""
        SELECT start_time AS time, {_buckets("start_time")}, tenant, {", ".join(DIMENSIONS)},
               {AGENT_SQL} AS agent, agent_name, user_id, session_id, trace_id, outcome,
               {SUCCEEDED_SQL} AS succeeded, duration_ms, coalesce(cost_usd, 0) AS spend_usd,
               coalesce(input_tokens, 0) AS input_tokens, coalesce(output_tokens, 0) AS output_tokens,
               coalesce(cached_tokens, 0) AS cached_tokens, tool_calls, synthetic
        FROM runs
    """,
    "sessions": f"""
        SELECT tenant, session_id, min(user_id) AS user_id, min({AGENT_SQL}) AS agent,
               count(*) AS runs, count(*) FILTER (WHERE {FAILED_SQL}) AS failed_runs,
               min(start_time) AS started, max({_END}) AS ended,
               epoch(max({_END}) - min(start_time)) AS length_s,
               coalesce(sum(cost_usd), 0) AS spend_usd, bool_or(synthetic) AS synthetic
        FROM runs WHERE session_id IS NOT NULL GROUP BY tenant, session_id
    """,
    "requests_per_minute": f"""
        SELECT date_trunc('minute', {_UTC.format(t="start_time")}) AS minute, tenant, {AGENT_SQL} AS agent,
               count(*) AS runs, count(*) FILTER (WHERE {FAILED_SQL}) AS failed_runs,
               count(DISTINCT user_id) AS users, synthetic
        FROM runs GROUP BY ALL
    """,
    "daily_activity": f"""
        SELECT date_trunc('day', {_UTC.format(t="start_time")}) AS day, tenant, synthetic, count(*) AS runs,
               count(DISTINCT user_id) AS users, count(DISTINCT {AGENT_SQL}) AS agents,
               count(DISTINCT session_id) AS sessions, coalesce(sum(cost_usd), 0) AS spend_usd
        FROM runs GROUP BY ALL
    """,
    "tool_calls": f"""
        SELECT s.start_time AS time, date_trunc('minute', {_UTC.format(t="s.start_time")}) AS minute,
               s.tenant,
               {_CALL_AGENT} AS agent, s.tool_name, s.name,
               s.operation, s.kind, {span_failed_sql("s.")} AS failed,
               s.failure_type, s.duration_ms, s.trace_id, s.span_id, s.synthetic
        FROM spans s LEFT JOIN ({_RUN_OF_TRACE}) r ON r.tenant = s.tenant AND r.trace_id = s.trace_id
        WHERE s.operation IN ({sql_list(TOOL_OPERATIONS)})
    """,
    "concurrency": f"""
        WITH edges AS (
            SELECT tenant, start_time AS edge, 1 AS step FROM runs
            UNION ALL
            SELECT tenant, {_END}, -1 FROM runs
        ),
        running AS (
            SELECT tenant, edge, step, sum(step) OVER (PARTITION BY tenant ORDER BY edge, step
                                               ROWS UNBOUNDED PRECEDING) AS in_flight
            FROM edges
        )
        -- The level before an edge held inside the edge's minute too (from the minute's start or
        -- the edge before): a run ending in a minute was in flight in it.
        SELECT date_trunc('minute', {_UTC.format(t="edge")}) AS minute, tenant,
               max(greatest(in_flight, in_flight - step)) AS peak_runs
        FROM running GROUP BY ALL
    """,
}


def create_usage_views(con: duckdb.DuckDBPyConnection) -> None:
    """The views above, on a catalog connection that has ``spans`` and ``runs``."""
    for name, sql in VIEWS.items():
        con.execute(f"CREATE VIEW {name} AS {sql}")
