"""The DuckDB catalog: views over the Parquet files, so analysts query plain SQL.

Each connection resolves the live files once (see ``live_files``), so its queries see one
consistent snapshot even while the server writes (files appear by atomic rename) and compacts
(replaced files stay until readers are done); open a new connection to see newer data.

``runs`` has one row per agent run: per trace, the outermost ``agent_run`` span (the earliest),
or the trace's root span when it has none. Its outcome rolls up from every span of the trace:
``failure`` when the run span itself failed (error status or a classified failure),
``degraded`` when it succeeded but a step under it failed (a failed tool under a run that still
answered), else ``success``.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from agentwatch.model import SPAN_SCHEMA
from storage.layout import SPANS, table_dir

RUNS_SQL = """
CREATE OR REPLACE VIEW runs AS
WITH ranked AS (
    SELECT tenant, trace_id, span_id, start_time, duration_ms, status, failure_type, error_message,
           row_number() OVER (
               PARTITION BY tenant, trace_id
               ORDER BY (operation = 'agent_run') DESC, (parent_span_id IS NULL) DESC, start_time, span_id
           ) AS rank
    FROM spans
),
run_span AS (SELECT * EXCLUDE (rank) FROM ranked WHERE rank = 1),
steps AS (
    SELECT s.tenant, s.trace_id,
        arg_min(s.agent_id, s.start_time) FILTER (WHERE s.agent_id IS NOT NULL) AS agent_id,
        arg_min(s.agent_name, s.start_time) FILTER (WHERE s.agent_name IS NOT NULL) AS agent_name,
        arg_min(s.agent_version, s.start_time) FILTER (WHERE s.agent_version IS NOT NULL) AS agent_version,
        arg_min(s.agent_owner, s.start_time) FILTER (WHERE s.agent_owner IS NOT NULL) AS agent_owner,
        arg_min(s.user_id, s.start_time) FILTER (WHERE s.user_id IS NOT NULL) AS user_id,
        arg_min(s.session_id, s.start_time) FILTER (WHERE s.session_id IS NOT NULL) AS session_id,
        arg_min(s.service_name, s.start_time) AS service_name,
        bool_or(s.synthetic) AS synthetic,
        arg_min(s.eval_run_id, s.start_time) FILTER (WHERE s.eval_run_id IS NOT NULL) AS eval_run_id,
        arg_min(s.eval_case_id, s.start_time) FILTER (WHERE s.eval_case_id IS NOT NULL) AS eval_case_id,
        count(*) AS span_count,
        count(*) FILTER (WHERE s.operation IN ('tool', 'mcp')) AS tool_calls,
        count(*) FILTER (WHERE s.operation IN ('tool', 'mcp')
                         AND (s.status = 'error' OR s.failure_type IS NOT NULL)) AS tool_errors,
        arg_min(s.span_id, s.start_time) FILTER (
            WHERE s.span_id <> r.span_id AND (s.status = 'error' OR s.failure_type IS NOT NULL)
        ) AS failing_step_id,
        arg_min(coalesce(s.failure_type, 'other_error'), s.start_time) FILTER (
            WHERE s.span_id <> r.span_id AND (s.status = 'error' OR s.failure_type IS NOT NULL)
        ) AS step_failure_type,
        arg_min(coalesce(s.error_message, s.status_message), s.start_time) FILTER (
            WHERE s.status = 'error' OR s.failure_type IS NOT NULL
        ) AS first_error_message,
        sum(s.input_tokens) AS input_tokens,
        sum(s.output_tokens) AS output_tokens,
        sum(s.cached_tokens) AS cached_tokens,
        sum(s.total_tokens) AS total_tokens,
        sum(s.cost_usd) AS cost_usd,
        list_distinct(list(s.model) FILTER (WHERE s.model IS NOT NULL)) AS models
    FROM spans s JOIN run_span r USING (tenant, trace_id)
    GROUP BY s.tenant, s.trace_id
)
SELECT
    r.trace_id, r.span_id, r.tenant,
    st.agent_id, st.agent_name, st.agent_version, st.agent_owner, st.user_id, st.session_id,
    st.service_name, r.start_time, r.duration_ms,
    CASE WHEN r.status = 'error' OR r.failure_type IS NOT NULL THEN 'failure'
         WHEN st.failing_step_id IS NOT NULL THEN 'degraded'
         ELSE 'success' END AS outcome,
    CASE WHEN r.failure_type IS NOT NULL THEN r.failure_type
         WHEN r.status = 'error' THEN coalesce(st.step_failure_type, 'other_error')
         ELSE st.step_failure_type END AS failure_type,
    CASE WHEN r.status = 'error' OR r.failure_type IS NOT NULL THEN coalesce(st.failing_step_id, r.span_id)
         ELSE st.failing_step_id END AS failing_span_id,
    coalesce(r.error_message, st.first_error_message) AS error_message,
    st.tool_calls, st.tool_errors, st.span_count,
    st.input_tokens, st.output_tokens, st.cached_tokens, st.total_tokens, st.cost_usd, st.models,
    st.synthetic, st.eval_run_id, st.eval_case_id
FROM run_span r JOIN steps st USING (tenant, trace_id)
"""


def live_files(data_dir: Path, table: str) -> list[str]:
    """The table's committed files, less those replaced by a committed compaction.

    Resolved once per connection: the connection's queries see one consistent set of files.
    """
    root = table_dir(data_dir, table)
    if not root.is_dir():
        return []
    files = {p.name: p for p in root.glob("tenant=*/date=*/*.parquet")}
    by_dir: dict[Path, set[str]] = {}
    for path in files.values():
        by_dir.setdefault(path.parent, set()).add(path.name)
    live = []
    for directory, names in by_dir.items():
        replaced: set[str] = set()
        for sidecar in directory.glob("compact-*.json"):
            if sidecar.with_suffix(".parquet").name in names:
                replaced.update(_replaced_by(sidecar))
        live += [str(directory / n) for n in sorted(names - replaced)]
    return sorted(live)


def _replaced_by(sidecar: Path) -> list[str]:
    try:
        return [str(n) for n in json.loads(sidecar.read_text())["replaces"]]
    except FileNotFoundError:
        return []  # the merge finished while we listed: its inputs are gone too


def connect(data_dir: Path | str, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the agentwatch views over ``data_dir``."""
    data_dir = Path(data_dir)
    con = duckdb.connect(":memory:")
    files = live_files(data_dir, SPANS)
    if files:
        listed = ", ".join(f"'{_quote(f)}'" for f in files)
        con.execute(
            f"CREATE VIEW spans AS SELECT * FROM read_parquet([{listed}], "
            "hive_partitioning = true, union_by_name = true, "
            "hive_types = {'tenant': VARCHAR, 'date': DATE})"
        )
    else:
        # No data yet: the same columns, no rows, so queries and tools still work.
        con.register("_empty_spans", SPAN_SCHEMA.empty_table().drop_columns(["tenant"]))
        con.execute(
            "CREATE VIEW spans AS SELECT *, NULL::VARCHAR AS tenant, NULL::DATE AS date FROM _empty_spans"
        )
    con.execute(RUNS_SQL)
    return con


def _quote(text: str) -> str:
    return text.replace("'", "''")
