"""Runs: the one read model. What a run is, how runs are built from spans, and how readers get them.

A *run* is one agent run: per trace, the outermost ``agent_run`` span (the earliest), or the
trace's root span when it has none. Its outcome rolls up from every span of the trace:
``failure`` when the run span itself failed (error status or a classified failure),
``degraded`` when it succeeded but a step under it failed (a failed tool under a run that still
answered), else ``success``. A judge's mark (``run_marks``) turns a successful run degraded.

Runs are built in two steps, both here:

1. ``parts_sql``: per span file, one *partial* per trace (``storage.runparts`` writes them beside
   the file; the catalog rolls up files without partials on the fly).
2. ``runs_sql``: partials merged per ``(tenant, trace_id)``.

Readers get runs three ways:

- ``create_runs_view``: the ``runs`` view of every catalog connection (``agentwatch query``).
- ``runs_in(con, scope)``: the runs of a time window, maybe one agent or tenant, loaded once
  with the few columns a reader needs, as a ``RunSet``. The report, signals, case export,
  alerting and production judging query it as ``runs`` (``run_set.rows("SELECT … FROM runs")``)
  and never see where it is kept.
- ``runs_of_trace(con, trace_id)``: one run, with every column of the view.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from storage.layout import RUN_PARTS
from storage.message_template import NO_MESSAGE, mask_sql

# -- what a run is ---------------------------------------------------------------------------

SUCCESS = "success"
DEGRADED = "degraded"
FAILURE = "failure"
OUTCOMES = (SUCCESS, DEGRADED, FAILURE)
GENERIC_FAILURE = "other_error"
"""The failure type of a failed span or run that names none."""
UNKNOWN_AGENT = "(unknown)"
"""The agent of a run whose spans name none."""


def span_failed_sql(of: str = "") -> str:
    """SQL: whether a span failed (error status or a classified failure). ``of`` prefixes the
    columns (``"run."``: the fields of a struct holding the span)."""
    return f"({of}status = 'error' OR {of}failure_type IS NOT NULL)"


# SQL over run rows, for the readers of ``runs`` and of a ``RunSet``.
FAILED_SQL = f"outcome = '{FAILURE}'"
DEGRADED_SQL = f"outcome = '{DEGRADED}'"
SUCCEEDED_SQL = f"outcome = '{SUCCESS}'"
UNSUCCESSFUL_SQL = f"outcome <> '{SUCCESS}'"
"""Failed or degraded: the runs that signals and case exports are made of."""
FAILURE_TYPE_SQL = f"coalesce(failure_type, '{GENERIC_FAILURE}')"
"""A run's failure type, the generic one when it has none."""
AGENT_SQL = f"coalesce(agent_id, agent_name, '{UNKNOWN_AGENT}')"
"""A run's agent label: its agent id, else its agent name, else ``UNKNOWN_AGENT``."""

# -- step 1: partials, one row per trace per span file ------------------------------------------

# The fields whose first non-null value (by span start) the run takes.
FIRST_SEEN = (
    "agent_id", "agent_name", "agent_version", "agent_owner", "user_id", "session_id", "service_name",
    "eval_run_id", "eval_case_id",
)  # fmt: skip
SUMS = ("input_tokens", "output_tokens", "cached_tokens", "total_tokens", "cost_usd")

_FAILED = span_failed_sql()
_FIRST_SEEN = ",\n    ".join(
    f"min({{'at': start_time, 'v': {c}}}) FILTER (WHERE {c} IS NOT NULL) AS {c}" for c in FIRST_SEEN
)
_RUN_TEMPLATE = mask_sql("error_message")
_STEP_TEMPLATE = mask_sql("coalesce(error_message, status_message)")
_AGENT = (
    "coalesce(min({'at': start_time, 'v': agent_id}) FILTER (WHERE agent_id IS NOT NULL),"
    " min({'at': start_time, 'v': agent_name}) FILTER (WHERE agent_name IS NOT NULL)).v"
)
_SUMS = ",\n    ".join(f"sum({c}) AS {c}" for c in SUMS)

PARTS_SQL = f"""
SELECT __KEYS__,
    -- The run span: the earliest agent_run span, else the root, else the earliest span.
    min({{
        'rank': CASE WHEN operation = 'agent_run' THEN 0 WHEN parent_span_id IS NULL THEN 1 ELSE 2 END,
        'start_time': start_time, 'span_id': span_id, 'name': name, 'duration_ms': duration_ms,
        'status': status, 'failure_type': failure_type, 'error_message': error_message,
        'status_message': status_message,
        'error_template': {_RUN_TEMPLATE}
    }}) AS run,
    {_FIRST_SEEN},
    bool_or(synthetic) AS synthetic,
    count(*) AS span_count,
    count(*) FILTER (WHERE operation IN ('tool', 'mcp')) AS tool_calls,
    count(*) FILTER (WHERE operation IN ('tool', 'mcp') AND {_FAILED}) AS tool_errors,
    -- The two earliest failing spans: one of them may be the run span itself.
    coalesce(list_slice(list_sort(list({{
        'at': start_time, 'span_id': span_id, 'failure_type': coalesce(failure_type, '{GENERIC_FAILURE}'),
        'message': coalesce(error_message, status_message),
        'template': {_STEP_TEMPLATE}
    }}) FILTER (WHERE {_FAILED})), 1, 2), []) AS failing,
    {_SUMS},
    coalesce(list_distinct(list(model) FILTER (WHERE model IS NOT NULL)), []) AS models,
    -- A plain column to filter by agent (Parquet statistics skip row groups of other agents).
    {_AGENT} AS agent
FROM __SOURCE__
GROUP BY __KEYS__
"""


def parts_sql(keys: str, source: str) -> str:
    """Partials of the spans in ``source`` (a relation), one row per distinct ``keys``."""
    return PARTS_SQL.replace("__KEYS__", keys).replace("__SOURCE__", source)


# -- step 2: partials merged into runs ------------------------------------------------------------

_MERGE_FIRST = ", ".join(f"min({c}) AS {c}" for c in FIRST_SEEN)
_MERGE_SUMS = ", ".join(f"sum({c}) AS {c}" for c in SUMS)
_VALUES = ", ".join(f"{c}.v AS {c}" for c in FIRST_SEEN)

# Partials of traces with one partial are runs as they are; the others are grouped.
MERGE_SQL = f"""
    SELECT * EXCLUDE (trace_hash, agent) FROM parts ANTI JOIN multi USING (trace_hash)
    UNION ALL BY NAME
    SELECT tenant, trace_id,
        min(run) AS run,
        {_MERGE_FIRST},
        bool_or(synthetic) AS synthetic,
        sum(span_count) AS span_count,
        sum(tool_calls) AS tool_calls,
        sum(tool_errors) AS tool_errors,
        list_slice(list_sort(flatten(list(failing))), 1, 2) AS failing,
        {_MERGE_SUMS},
        list_distinct(flatten(list(models))) AS models
    FROM parts SEMI JOIN multi USING (trace_hash)
    GROUP BY tenant, trace_id
"""

# Most traces have one partial (compaction rolls a partition's files up into one), and those
# rows are runs as they are: only traces with several partials go through the aggregation.
RUNS_SQL = f"""
WITH parts AS (SELECT *, hash(tenant, trace_id) AS trace_hash FROM (__PARTS__)),
-- Grouping 8-byte hashes is cheaper than 32-character ids. A collision only sends a trace
-- through the merge below, which is exact for any number of partials.
multi AS (SELECT trace_hash FROM parts GROUP BY trace_hash HAVING count(*) > 1),
unified AS (__UNIFIED__),
judged AS (
    SELECT *,
        {span_failed_sql("run.")} AS run_failed,
        -- The earliest failing span under the run (at most one of the two is the run span).
        -- (len first: most runs have no failing span, and the list lookups cost on 2 M rows)
        CASE WHEN len(failing) = 0 THEN NULL
             WHEN failing[1].span_id <> run.span_id THEN failing[1] ELSE failing[2] END AS step
    FROM unified
)
SELECT
    trace_id, run.span_id AS span_id, tenant, {_VALUES},
    run.name AS name, run.start_time AS start_time, run.duration_ms AS duration_ms, run.status AS status,
    CASE WHEN run_failed THEN '{FAILURE}' WHEN step IS NOT NULL THEN '{DEGRADED}' ELSE '{SUCCESS}' END
        AS outcome,
    CASE WHEN run.failure_type IS NOT NULL THEN run.failure_type
         WHEN run.status = 'error' THEN coalesce(step.failure_type, '{GENERIC_FAILURE}')
         ELSE step.failure_type END AS failure_type,
    CASE WHEN run_failed THEN coalesce(step.span_id, run.span_id) ELSE step.span_id END AS failing_span_id,
    coalesce(run.error_message, failing[1].message) AS error_message,
    coalesce(CASE WHEN run.error_message IS NOT NULL THEN run.error_template ELSE failing[1].template END,
             '{NO_MESSAGE}') AS error_template,
    tool_calls, tool_errors, span_count,
    input_tokens, output_tokens, cached_tokens, total_tokens, cost_usd, models, synthetic
FROM judged
"""

RUN_COLUMNS = (
    "trace_id", "span_id", "tenant", *FIRST_SEEN, "name", "start_time", "duration_ms", "status", "outcome",
    "failure_type", "failing_span_id", "error_message", "error_template", "tool_calls", "tool_errors",
    "span_count", *SUMS, "models", "synthetic",
)  # fmt: skip
"""The columns of ``runs``, in order."""

# Marks a judge gave runs after the fact (``run_marks``, see ``evals.judges.marks``): a run
# that succeeded becomes degraded with the mark's failure type; a failed run keeps its own.
_MARKED = f"m.failure_type IS NOT NULL AND r.outcome = '{SUCCESS}'"
MARKED_SQL = f"""
SELECT r.* REPLACE (
    CASE WHEN {_MARKED} THEN '{DEGRADED}' ELSE r.outcome END AS outcome,
    CASE WHEN {_MARKED} THEN m.failure_type ELSE r.failure_type END AS failure_type,
    CASE WHEN {_MARKED} THEN r.span_id ELSE r.failing_span_id END AS failing_span_id,
    CASE WHEN {_MARKED} THEN m.reason ELSE r.error_message END AS error_message,
    CASE WHEN {_MARKED} THEN 'judge: ' || m.failure_type ELSE r.error_template END AS error_template
)
FROM (__RUNS__) r LEFT JOIN (
    SELECT tenant, trace_id, min(failure_type) AS failure_type, min(reason) AS reason
    FROM run_marks GROUP BY tenant, trace_id
) m ON m.tenant = r.tenant AND m.trace_id = r.trace_id
"""


def runs_sql(parts: str, single_partials: bool = False) -> str:
    """``runs`` rows merged from the partials in ``parts`` (a query), judges' marks not applied.

    ``single_partials``: the caller has checked that no trace has two partials in ``parts``
    (``has_split_traces``), so every partial is a run as it is and nothing is grouped."""
    unified = "SELECT * EXCLUDE (trace_hash, agent) FROM parts" if single_partials else MERGE_SQL
    return RUNS_SQL.replace("__UNIFIED__", unified).replace("__PARTS__", parts)


def _marked(con: duckdb.DuckDBPyConnection, runs: str) -> str:
    """``runs`` (a query of runs rows) with the judges' marks applied, if there are any."""
    return MARKED_SQL.replace("__RUNS__", runs) if has_marks(con) else runs


def has_marks(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether any run has a judge's mark (runs then join them; most data has none)."""
    return bool(con.execute("SELECT EXISTS (SELECT 1 FROM run_marks)").fetchall()[0][0])


def has_split_traces(hashes: np.ndarray) -> bool:
    """Whether any trace hash occurs twice (a sort of 8-byte ints: cheaper than a SQL group-by)."""
    ordered = np.sort(hashes)
    return bool((ordered[1:] == ordered[:-1]).any())


# -- readers ----------------------------------------------------------------------------------


def create_runs_view(con: duckdb.DuckDBPyConnection) -> None:
    """The ``runs`` view over every partial (``run_parts`` and ``run_marks`` must exist)."""
    con.execute(f"CREATE VIEW runs AS {_marked(con, runs_sql(f'SELECT * FROM {RUN_PARTS}'))}")


Row = dict[str, Any]


def runs_of_trace(con: duckdb.DuckDBPyConnection, trace_id: str, tenant: str | None = None) -> list[Row]:
    """The run of ``trace_id`` with every column of ``runs`` and ``agent``: one row per tenant
    holding the trace (one, unless tenants reuse an id), none when no span of it is stored."""
    parts = f"SELECT * FROM {RUN_PARTS} WHERE trace_id = $trace_id"
    params: dict[str, object] = {"trace_id": trace_id}
    if tenant is not None:
        parts += " AND tenant = $tenant"
        params["tenant"] = tenant
    sql = f"SELECT *, {AGENT_SQL} AS agent FROM ({_marked(con, runs_sql(parts))}) ORDER BY tenant"
    return _rows(con.execute(sql, params))


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


BASE_COLUMNS = (
    "tenant", "agent", "agent_owner", "user_id", "trace_id", "span_id", "start_time", "duration_ms",
    "outcome", "failure_type", "error_message", "error_template", "failing_span_id",
)  # fmt: skip
"""The columns every ``RunSet`` has (``agent``: ``AGENT_SQL``)."""
USAGE = ("synthetic", "cost_usd")
"""Extra columns for alerting and judging (``synthetic`` is never null)."""
TEXTS = ("input_text", "output_text")
"""Extra columns for the case export: the run span's texts, for runs that did not succeed."""

_EXPRESSIONS = {"agent": AGENT_SQL, "synthetic": "coalesce(synthetic, false)"}
_tables = itertools.count()
_PARAM = "__runs_"
_WITH = re.compile(r"\s*WITH\s+(?!RECURSIVE\b)", re.IGNORECASE)


@dataclass(frozen=True)
class RunSet:
    """The runs of a scope, loaded once (see ``runs_in``). Query them as the relation ``runs``:
    ``run_set.rows("SELECT agent, count(*) AS n FROM runs GROUP BY agent", params)``.

    ``within`` narrows them (a shorter window, one agent, no synthetic runs) without reloading.
    """

    con: duckdb.DuckDBPyConnection
    """The catalog connection the runs were read from (its other views stay usable)."""
    scope: Scope
    columns: tuple[str, ...]
    _table: str = field(repr=False)
    _where: tuple[str, ...] = field(default=(), repr=False)
    _params: tuple[tuple[str, object], ...] = field(default=(), repr=False)

    def query(self, sql: str, params: Mapping[str, object] | None = None) -> list[tuple[Any, ...]]:
        """Result rows of ``sql``, which reads the runs as ``runs``; ``params`` its ``$names``."""
        return self.con.execute(*self._bound(sql, params)).fetchall()

    def rows(self, sql: str, params: Mapping[str, object] | None = None) -> list[Row]:
        """Like ``query``, each row a dict by column name."""
        return _rows(self.con.execute(*self._bound(sql, params)))

    def arrow(self, sql: str, params: Mapping[str, object] | None = None) -> pa.Table:
        """Like ``query``, as an Arrow table."""
        bound, values = self._bound(sql, params)
        table: pa.Table = self.con.sql(bound, params=values).to_arrow_table()
        return table

    def count(self) -> int:
        ((count,),) = self.query("SELECT count(*) FROM runs")
        return int(count)

    def within(
        self, since: datetime | None = None, until: datetime | None = None, *, agent: str | None = None,
        tenant: str | None = None, synthetic: bool | None = None,
    ) -> RunSet:  # fmt: skip
        """These runs started in ``[since, until)``, of ``agent`` and ``tenant``, synthetic or not
        (``None``: no condition; ``synthetic`` needs the ``USAGE`` columns)."""
        if synthetic is not None and "synthetic" not in self.columns:
            raise ValueError("within(synthetic=...) needs runs loaded with the USAGE columns")
        where, params = list(self._where), dict(self._params)
        for condition, value in (("start_time >= $", since), ("start_time < $", until), ("agent = $", agent),
                                 ("tenant = $", tenant)):  # fmt: skip
            if value is not None:
                name = f"{_PARAM}{len(params)}"
                where.append(condition + name)
                params[name] = value
        if synthetic is not None:
            where.append("synthetic" if synthetic else "NOT synthetic")
        scope = Scope(
            self.scope.since if since is None else max(self.scope.since, since),
            self.scope.until if until is None else min(self.scope.until, until),
            agent if agent is not None else self.scope.agent,
            tenant if tenant is not None else self.scope.tenant,
        )
        return replace(self, scope=scope, _where=tuple(where), _params=tuple(params.items()))

    def drop(self) -> None:
        """Free the loaded runs (they also go with the connection); this set and those narrowed
        from it cannot be queried after."""
        self.con.execute(f"DROP TABLE IF EXISTS {self._table}")

    def _bound(self, sql: str, params: Mapping[str, object] | None) -> tuple[str, dict[str, object]]:
        """``sql`` with the ``runs`` it reads defined, and its parameters with the set's."""
        where = f" WHERE {' AND '.join(self._where)}" if self._where else ""
        runs = f"runs AS NOT MATERIALIZED (SELECT * FROM {self._table}{where})"
        # A query with its own WITH gets ``runs`` as its first common table expression.
        own = _WITH.match(sql)
        sql = f"WITH {runs}, {sql[own.end() :]}" if own else f"WITH {runs} {sql}"
        params = dict(params or {})
        if any(name.startswith(_PARAM) for name in params):
            raise ValueError(f"parameter names starting with {_PARAM} are the RunSet's own")
        return sql, {**dict(self._params), **params}


def runs_in(con: duckdb.DuckDBPyConnection, scope: Scope, extra: Iterable[str] = ()) -> RunSet:
    """The runs of ``scope`` on the catalog connection ``con``, loaded once into a ``RunSet``.

    Columns: ``BASE_COLUMNS`` and ``extra``: any other column of ``runs`` (``USAGE`` for alerting
    and judging: the report leaves them out, every column costs on millions of runs) or
    ``TEXTS``, read from ``spans`` for runs that did not succeed (run partials do not carry
    them; only the case export needs them).

    The window and agent filters apply to the run partials before they are merged, so one
    agent's runs never merge the other agents' partials.
    """
    extra = tuple(dict.fromkeys(extra))
    unknown = [c for c in extra if c not in (*RUN_COLUMNS, *TEXTS) or c in BASE_COLUMNS]
    if unknown:
        raise ValueError(f"not an extra column of runs: {', '.join(unknown)}")
    texts = [c for c in extra if c in TEXTS]
    selected = [c for c in (*BASE_COLUMNS, *extra) if c not in TEXTS]
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
            f"(agent = $agent OR agent IS NULL) AND trace_id IN"
            f" (SELECT trace_id FROM {RUN_PARTS} WHERE date >= $since_date AND agent = $agent)"
        )
        params["agent"] = scope.agent
    parts = f"SELECT * FROM {RUN_PARTS} WHERE {' AND '.join(where)}"
    part_params = {k: v for k, v in params.items() if k not in ("since", "until")}
    hashes = con.execute(f"SELECT hash(tenant, trace_id) AS h FROM ({parts})", part_params).fetchnumpy()["h"]
    single = not has_split_traces(hashes)
    if single:  # a partial's run span is then the run's: the window filter can skip it early
        parts += " AND run.start_time >= $since AND run.start_time < $until"
    agent_filter = f"AND {AGENT_SQL} = $agent" if scope.agent is not None else ""
    table = f"_runs_{next(_tables)}"
    bare = f"{table}_bare" if texts else table
    projection = ", ".join(f"{_EXPRESSIONS[c]} AS {c}" if c in _EXPRESSIONS else c for c in selected)
    con.execute(
        f"""
        CREATE TEMP TABLE {bare} AS
        SELECT {projection}
        FROM ({_marked(con, runs_sql(parts, single_partials=single))})
        WHERE start_time >= $since AND start_time < $until {agent_filter}
        """,
        params,
    )
    if texts:
        # The run span's texts, from spans: partials do not carry them. Only runs that did not
        # succeed need them, and only days of the window are read.
        con.execute(
            f"""
            CREATE TEMP TABLE {table} AS
            SELECT r.*, {", ".join(f"s.{c}" for c in texts)}
            FROM {bare} r LEFT JOIN (
                SELECT tenant, trace_id, span_id, {", ".join(texts)} FROM spans
                WHERE date >= $since_date
                  AND trace_id IN (SELECT trace_id FROM {bare} WHERE {UNSUCCESSFUL_SQL})
            ) s USING (tenant, trace_id, span_id)
            """,
            {"since_date": params["since_date"]},
        )
        con.execute(f"DROP TABLE {bare}")
    return RunSet(con, scope, (*selected, *texts), table)


def _rows(cursor: duckdb.DuckDBPyConnection) -> list[Row]:
    columns = [d[0] for d in cursor.description or []]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
