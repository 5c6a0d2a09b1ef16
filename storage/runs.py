"""Which runs a report, a signal list or a case export looks at: a time window, maybe one agent
or tenant. ``load_runs`` materialises exactly those runs once, with the few columns the
reports read, so every query after it runs over a small in-memory table.

The window and agent filters are applied to the run partials before they are merged (see
``storage.runparts``), so one agent's report never merges the other agents' runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb

from storage.catalog import has_marks
from storage.runparts import has_split_traces, runs_sql, split_traces_sql, with_marks

RUNS_TABLE = "scoped_runs"
UNKNOWN_AGENT = "(unknown)"


@dataclass(frozen=True)
class Scope:
    since: datetime
    until: datetime
    agent: str | None = None
    tenant: str | None = None

    @classmethod
    def last(cls, window: timedelta, agent: str | None = None, tenant: str | None = None,
             now: datetime | None = None) -> Scope:  # fmt: skip
        until = now or datetime.now(UTC)
        return cls(until - window, until, agent, tenant)

    @property
    def seconds(self) -> float:
        return (self.until - self.since).total_seconds()


def load_runs(
    con: duckdb.DuckDBPyConnection, scope: Scope, with_text: bool = False, with_usage: bool = False
) -> int:
    """Create the temp table ``scoped_runs`` from the catalog connection ``con``; its row count.

    Columns: tenant, agent, agent_owner, user_id, trace_id, span_id, start_time, duration_ms,
    outcome, failure_type, error_message, error_template, failing_span_id; with ``with_usage``
    also ``synthetic`` and ``cost_usd`` (alerting and judging; the report leaves them out, every
    column costs on millions of runs); and with ``with_text`` the run span's input_text and
    output_text, read from ``spans`` for runs that did not succeed (case export needs them; the
    report does not, and run partials do not carry them).
    """
    params: dict[str, object] = {
        "since": scope.since,
        "until": scope.until,
        # A trace can start the day before its partials' file date: one day of slack.
        "since_date": (scope.since - timedelta(days=1)).date(),
    }
    where = ["date >= $since_date"]
    if scope.tenant is not None:
        where.append("tenant = $tenant")
        params["tenant"] = scope.tenant
    if scope.agent is not None:
        # The agent's partials, and agent-less partials of the same traces (spans of a run
        # that reached a file without the span naming the agent).
        where.append(
            "(agent = $agent OR agent IS NULL) AND trace_id IN"
            " (SELECT trace_id FROM run_parts WHERE date >= $since_date AND agent = $agent)"
        )
        params["agent"] = scope.agent
    parts = f"SELECT * FROM run_parts WHERE {' AND '.join(where)}"
    part_params = {k: v for k, v in params.items() if k not in ("since", "until")}
    hashes = con.execute(split_traces_sql(parts), part_params).fetchnumpy()["h"]
    single = not has_split_traces(hashes)
    if single:  # a partial's run span is then the run's: the window filter can skip it early
        parts += " AND run.start_time >= $since AND run.start_time < $until"
    agent_filter = "AND coalesce(agent_id, agent_name) = $agent" if scope.agent is not None else ""
    usage = ", coalesce(synthetic, false) AS synthetic, cost_usd" if with_usage else ""
    runs = runs_sql(parts, single_partials=single)
    if has_marks(con):
        runs = with_marks(runs)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {RUNS_TABLE} AS
        SELECT tenant, coalesce(agent_id, agent_name, '{UNKNOWN_AGENT}') AS agent, agent_owner, user_id,
               trace_id, span_id, start_time, duration_ms, outcome, failure_type, error_message,
               error_template, failing_span_id {usage}
        FROM ({runs})
        WHERE start_time >= $since AND start_time < $until {agent_filter}
        """,
        params,
    )
    if with_text:
        # The run span's texts, from spans: partials do not carry them. Only failed runs need
        # them, and only days of the window are read.
        con.execute(f"DROP TABLE IF EXISTS _bare_runs; ALTER TABLE {RUNS_TABLE} RENAME TO _bare_runs")
        con.execute(
            f"""
            CREATE TEMP TABLE {RUNS_TABLE} AS
            SELECT r.*, s.input_text, s.output_text
            FROM _bare_runs r LEFT JOIN (
                SELECT tenant, trace_id, span_id, input_text, output_text FROM spans
                WHERE date >= $since_date
                  AND trace_id IN (SELECT trace_id FROM _bare_runs WHERE outcome <> 'success')
            ) s USING (tenant, trace_id, span_id)
            """,
            {"since_date": params["since_date"]},
        )
    ((count,),) = con.execute(f"SELECT count(*) FROM {RUNS_TABLE}").fetchall()
    return int(count)
