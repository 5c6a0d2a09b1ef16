"""Runs: the one read model. What a run is, how runs are built from spans, and how readers get them.

A *run* is one agent run: per trace, the outermost ``agent_run`` span (the earliest), or the
trace's root span when it has none; a trace of MCP protocol traffic only (``mcp_protocol``
spans, maybe ``other`` ones) is no run. Its outcome rolls up from every span of the trace:
``failure`` when the run span itself or any ``agent_run`` span failed (error status or a
classified failure), ``degraded`` when they succeeded but a step failed (a failed tool under a
run that still answered), else ``success``. A judge's mark (``run_marks``) turns a successful
run degraded.

Root cause, not the wrapper: a run whose own span has no specific failure type (none, or the
generic ``other_error``) takes the type of the likeliest root cause among the trace's other
failing spans: a specifically classified one first, then a step doing work (a model or tool
call) before a wrapper (``agent_run``, ``workflow``) that failed because a span under it did,
then the earliest; ``failing_span_id`` and the message are that span's. A run span with a
specific type of its own keeps it, unless that step's error is the one it reports (the same
type, or its message within the run span's: an exception passed up).

The agent: an agent name attribute (explicit) wins over a name derived from a span, Traceloop
entity or Langfuse trace name (``agent_name_derived``): the run's ``agent_name`` is the earliest
explicit one, else the earliest derived one; ``agent_id`` the earliest; ``agents`` the agents of
the trace named explicitly (handoffs, sub-agents), the derived ones only when none is. Tool
calls count a remote call once when both its client span and the server span under it arrive
(MCP), in any partials. ``models``: the models of LLM calls (``chat``, ``embedding``).

Readers of windowed runs (``runs_in``) get production runs unless their ``Scope`` asks for
synthetic ones: eval traffic never counts as production.

Runs are built in two steps, both here:

1. ``parts_sql``: per span file, one *partial* per trace (``storage.runparts`` writes them beside
   the file; the catalog rolls up files without partials on the fly).
2. ``runs_sql``: partials merged per ``(tenant, trace_id)``.

Readers get runs three ways:

- ``create_runs_view``: the ``runs`` view of every catalog connection (``agentwatch query``).
- ``runs_in(con, scope)``: the runs of a time window, maybe one agent or tenant, loaded once
  with the few columns a reader needs, as a ``RunSet``. The report, signals, case export,
  alerting, production judging, spend, implicit feedback, the dashboard and the health API's
  baseline query it as ``runs`` (``run_set.rows("SELECT … FROM runs")``) and never see where it
  is kept.
- ``runs_of_trace(con, trace_id)``: one run, with every column of the view.
- ``runs_sql(parts)``: runs of partials held anywhere, e.g. in memory: the health API counts the
  runs of the spans just stored with it (``health.board``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.model import (
    AGENT_OPERATION,
    EVENT_SCOPE,
    LLM_OPERATIONS,
    PROTOCOL_OPERATIONS,
    TOOL_OPERATIONS,
    WRAPPER_OPERATIONS,
)
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

# The fields whose first non-null value (by span start) the run takes. ``agent_name``: the first
# explicit one (an agent name attribute); ``derived_name`` holds the first derived one.
FIRST_SEEN = (
    "agent_id", "agent_name", "agent_version", "agent_owner", "user_id", "session_id", "service_name",
    "eval_run_id", "eval_case_id", "team", "org", "workspace", "project", "workflow",
)  # fmt: skip
SUMS = ("input_tokens", "output_tokens", "cached_tokens", "total_tokens", "cost_usd")

# What a partial's spans are, at most (``work``; merged by ``max``): a trace whose spans are only
# protocol traffic (and ``other`` spans, e.g. its HTTP transport) is not a run.
OTHER_ONLY, PROTOCOL_ONLY, WORK = 0, 1, 2

_FAILED = span_failed_sql()
_EXPLICIT = "agent_name_derived IS NOT TRUE"  # null: written before the column existed
_FIRST_SEEN = ",\n    ".join(
    f"min({{'at': start_time, 'v': {c}}}) FILTER (WHERE {c} IS NOT NULL"
    + (f" AND {_EXPLICIT})" if c == "agent_name" else ")")
    + f" AS {c}"
    for c in FIRST_SEEN
)
_RUN_TEMPLATE = mask_sql("error_message")
_STEP_TEMPLATE = mask_sql("coalesce(error_message, status_message)")
_SUMS = ",\n    ".join(f"sum({c}) AS {c}" for c in SUMS)
_SPECIFIC = f"failure_type IS NOT NULL AND failure_type <> '{GENERIC_FAILURE}'"


def sql_list(values: Iterable[str]) -> str:
    """SQL: ``'a', 'b'``, the values quoted (constants of the code, never data)."""
    return ", ".join(f"'{v}'" for v in values)


def since_date(since: datetime) -> date:
    """The first file date holding spans of the runs started since ``since``: a trace can start
    the day before its spans' file date (one day of slack)."""
    return (since - timedelta(days=1)).date()


_TOOLS = f"operation IN ({sql_list(TOOL_OPERATIONS)})"
_LLMS = f"operation IN ({sql_list(LLM_OPERATIONS)})"
_PROTOCOL = f"operation IN ({sql_list(PROTOCOL_OPERATIONS)})"
_WRAPPERS = f"operation IN ({sql_list(WRAPPER_OPERATIONS)})"


def _paired(column: str, ends: str) -> str:
    """SQL: ``column`` (a count of tool calls or errors) less the calls counted twice in ``ends``."""
    failed = column == "tool_errors"
    return (
        f"CASE WHEN coalesce(len({ends}), 0) < 2 THEN {column}"
        f" ELSE {column} - {_matched(ends, failed)} END AS {column}"
    )


def _matched(ends: str, failed: bool = False) -> str:
    """SQL: how many server ends in the list ``ends`` have their client end there too (one call
    counted twice); ``failed``: only pairs whose two ends both failed (one error counted twice)."""
    side = " AND c.failed" if failed else ""
    both = " AND e.failed" if failed else ""
    return (
        f"len([e FOR e IN {ends} IF e.server{both}"
        f" AND list_contains([c.id FOR c IN {ends} IF NOT c.server{side}], e.id)])"
    )


def _unmatched(ends: str) -> str:
    """SQL: the ends of the list ``ends`` whose other end is not in it."""
    return f"[e FOR e IN {ends} IF NOT list_contains([o.id FOR o IN {ends} IF o.server <> e.server], e.id)]"


# Spans made from agent events (``events.spans``) stand in for a trace's spans only when it has
# none of its own: where both were sent, the derived ones are left out (here within a partial,
# and in ``MERGE_SQL`` across partials, by the partial's ``derived`` flag).
_DERIVED = f"scope_name IS NOT DISTINCT FROM '{EVENT_SCOPE}'"
_ONLY_OWN_SPANS = f"QUALIFY NOT {_DERIVED} OR NOT bool_or(NOT {_DERIVED}) OVER (PARTITION BY __KEYS__)"

PARTS_SQL = f"""
SELECT * EXCLUDE (ends, labels) REPLACE (
        -- A tool call whose client span and server span (its child) are both here counts once.
        {_paired("tool_calls", "ends")},
        {_paired("tool_errors", "ends")}
    ),
    -- The agents: those named explicitly, else (only then) those named by a derived name.
    list_sort(coalesce(nullif([a.v FOR a IN labels IF NOT a.derived], []), [a.v FOR a IN labels], []))
        AS agents,
    -- Ends of such calls whose other end is in another partial: runs_sql pairs them up.
    CASE WHEN coalesce(len(ends), 0) < 2 THEN ends ELSE nullif({_unmatched("ends")}, []) END AS open_calls,
    -- Plain columns to filter by agent (Parquet statistics skip row groups of other agents):
    -- the explicit agent, else (only then) the derived one.
    CASE WHEN agent IS NULL THEN derived_name.v END AS derived_agent
FROM (
SELECT __KEYS__,
    -- The run span: the earliest agent_run span, else the root, else the earliest span.
    min({{
        'rank': CASE WHEN operation = '{AGENT_OPERATION}' THEN 0
                     WHEN parent_span_id IS NULL THEN 1 ELSE 2 END,
        'start_time': start_time, 'span_id': span_id, 'name': name, 'duration_ms': duration_ms,
        'status': status, 'failure_type': failure_type, 'error_message': error_message,
        'status_message': status_message,
        'error_template': {_RUN_TEMPLATE}
    }}) AS run,
    {_FIRST_SEEN},
    min({{'at': start_time, 'v': agent_name}}) FILTER (WHERE agent_name IS NOT NULL AND agent_name_derived)
        AS derived_name,
    bool_or(synthetic) AS synthetic,
    bool_and({_DERIVED}) AS derived,
    count(*) AS span_count,
    count(*) FILTER (WHERE {_TOOLS}) AS tool_calls,
    count(*) FILTER (WHERE {_TOOLS} AND _failed) AS tool_errors,
    -- Both ends of a remote tool call (an MCP client span, the server span under it) by the
    -- client span's id.
    list({{'id': CASE WHEN kind = 'server' THEN parent_span_id ELSE span_id END, 'server': kind = 'server',
           'failed': _failed}})
        FILTER (WHERE {_TOOLS} AND (kind = 'client' OR kind = 'server' AND parent_span_id IS NOT NULL))
        AS ends,
    -- The two likeliest root causes among the failing spans (one may be the run span): a
    -- specific failure type first, then a step that does the work (a model or tool call...)
    -- before a wrapper (agent, workflow) that fails because a span under it did, then the earliest.
    coalesce(list_slice(list_sort(list({{
        'generic': NOT coalesce({_SPECIFIC}, false), 'wrapper': {_WRAPPERS},
        'at': start_time, 'span_id': span_id, 'failure_type': coalesce(failure_type, '{GENERIC_FAILURE}'),
        'message': coalesce(error_message, status_message), 'template': _template
    }}) FILTER (WHERE _failed)), 1, 2), []) AS failing,
    -- A failed agent anywhere in the trace fails the run.
    bool_or(_failed) FILTER (WHERE operation = '{AGENT_OPERATION}') AS agent_failed,
    max(CASE WHEN {_PROTOCOL} THEN {PROTOCOL_ONLY} WHEN operation = 'other' THEN {OTHER_ONLY}
             ELSE {WORK} END)::UTINYINT AS work,
    {_SUMS},
    coalesce(list_distinct(list(model) FILTER (WHERE model IS NOT NULL AND {_LLMS})), []) AS models,
    list_distinct(list({{'derived': agent_id IS NULL AND agent_name_derived IS TRUE,
                        'v': coalesce(agent_id, agent_name)}})
                  FILTER (WHERE coalesce(agent_id, agent_name) IS NOT NULL)) AS labels,
    coalesce(
        min({{'at': start_time, 'v': agent_id}}) FILTER (WHERE agent_id IS NOT NULL),
        min({{'at': start_time, 'v': agent_name}}) FILTER (WHERE agent_name IS NOT NULL AND {_EXPLICIT})
    ).v AS agent
FROM (
    SELECT *, {_FAILED} AS _failed,
        CASE WHEN {_FAILED} THEN {_STEP_TEMPLATE} END AS _template
    FROM __SOURCE__
    __EVENT_SPANS__
)
GROUP BY __KEYS__
)
"""


def parts_sql(keys: str, source: str, event_spans: bool = True) -> str:
    """Partials of the spans in ``source`` (a relation), one row per distinct ``keys``.

    ``event_spans=False``: the caller knows ``source`` holds no spans made from agent events
    (``has_event_spans``), which spares a window over every span."""
    sql = PARTS_SQL.replace("__EVENT_SPANS__", _ONLY_OWN_SPANS if event_spans else "")
    return sql.replace("__KEYS__", keys).replace("__SOURCE__", source)


def has_event_spans(rows: pa.Table) -> bool:
    """Whether span rows hold spans made from agent events (``parts_sql``'s ``event_spans``)."""
    return "scope_name" in rows.column_names and bool(
        pc.any(pc.equal(rows["scope_name"], EVENT_SCOPE)).as_py()
    )


# -- step 2: partials merged into runs ------------------------------------------------------------

_MERGE_FIRST = ", ".join(f"min({c}) AS {c}" for c in FIRST_SEEN)
_MERGE_SUMS = ", ".join(f"sum({c}) AS {c}" for c in SUMS)
_VALUES = ", ".join(
    "coalesce(agent_name, derived_name).v AS agent_name" if c == "agent_name" else f"{c}.v AS {c}"
    for c in FIRST_SEEN
)
_FILTER_COLUMNS = "trace_hash, agent, derived_agent"
"""Partial columns only for finding partials: not carried into runs."""

# Partials of traces with one partial are runs as they are; the others are grouped.
MERGE_SQL = f"""
    SELECT * EXCLUDE ({_FILTER_COLUMNS}) FROM parts ANTI JOIN multi USING (trace_hash)
    UNION ALL BY NAME
    SELECT * EXCLUDE (open_calls) REPLACE (
        -- The two ends of a remote tool call, in two partials: one call.
        {_paired("tool_calls", "open_calls")},
        {_paired("tool_errors", "open_calls")}
    )
    FROM (
        SELECT tenant, trace_id,
            min(run) AS run,
            {_MERGE_FIRST},
            min(derived_name) AS derived_name,
            bool_or(synthetic) AS synthetic,
            bool_and(derived) AS derived,
            sum(span_count) AS span_count,
            sum(tool_calls) AS tool_calls,
            sum(tool_errors) AS tool_errors,
            flatten(list(open_calls)) AS open_calls,
            -- (sorted by explicit keys: partials written before the generic and wrapper
            -- fields have them last, or null)
            [f.v FOR f IN list_slice(list_sort([
                {{'generic': coalesce(x.generic, x.failure_type = '{GENERIC_FAILURE}'),
                  'wrapper': coalesce(x.wrapper, false), 'at': x.at, 'v': x}}
                FOR x IN flatten(list(failing))]), 1, 2)] AS failing,
            bool_or(agent_failed) AS agent_failed,
            max(work) AS work,
            {_MERGE_SUMS},
            list_distinct(flatten(list(models))) AS models,
            list_sort(coalesce(
                nullif(list_distinct(flatten(list(agents) FILTER (WHERE agent IS NOT NULL))), []),
                list_distinct(flatten(list(agents)))
            )) AS agents
        -- A trace with spans of its own leaves out partials of spans made from its events.
        FROM parts JOIN multi USING (trace_hash)
        WHERE NOT (coalesce(parts.derived, false) AND multi.own_spans)
        GROUP BY tenant, trace_id
    )
"""

# Most traces have one partial (compaction rolls a partition's files up into one), and those
# rows are runs as they are: only traces with several partials go through the aggregation.
RUNS_SQL = f"""
WITH parts AS (SELECT *, hash(tenant, trace_id) AS trace_hash FROM (__PARTS__)),
-- Grouping 8-byte hashes is cheaper than 32-character ids. A collision only sends a trace
-- through the merge below, which is exact for any number of partials.
multi AS (
    SELECT trace_hash, bool_or(NOT coalesce(derived, false)) AS own_spans
    FROM parts GROUP BY trace_hash HAVING count(*) > 1
),
unified AS (__UNIFIED__),
judged AS (
    SELECT *,
        {span_failed_sql("run.")} OR coalesce(agent_failed, false) AS run_failed,
        run.failure_type IS NOT NULL AND run.failure_type <> '{GENERIC_FAILURE}' AS own_type,
        -- The likeliest root cause under the run (at most one of the two is the run span).
        -- (len first: most runs have no failing span, and the list lookups cost on 2 M rows)
        CASE WHEN len(failing) = 0 THEN NULL
             WHEN failing[1].span_id <> run.span_id THEN failing[1] ELSE failing[2] END AS cause
    FROM unified
    -- A trace of protocol traffic only (MCP initialize, tools/list...) is no run.
    WHERE work IS DISTINCT FROM {PROTOCOL_ONLY}
),
blamed AS (
    -- The span the run's failure type comes from (null: the run span). Root cause, not the
    -- wrapper: the likeliest root cause under the run (see failing in the partials). A run span
    -- with a specific type of its own keeps it, unless a specifically classified step's error is
    -- the one it reports (the same type, or its message within the run span's: passed up).
    SELECT *,
        CASE WHEN cause IS NULL THEN NULL
             WHEN NOT own_type THEN cause
             WHEN NOT coalesce(cause.generic, cause.failure_type = '{GENERIC_FAILURE}')
                  AND (cause.failure_type = run.failure_type OR contains(
                      coalesce(run.error_message, run.status_message), nullif(cause.message, '')))
                 THEN cause END AS culprit
    FROM judged
),
own AS (
    -- A run blamed on its own span: that span's entry among the failing, for its message.
    SELECT *,
        CASE WHEN culprit IS NOT NULL OR NOT run_failed THEN NULL
             WHEN failing[1].span_id = run.span_id THEN failing[1]
             WHEN failing[2].span_id = run.span_id THEN failing[2] END AS own
    FROM blamed
)
SELECT
    trace_id, run.span_id AS span_id, tenant, {_VALUES},
    run.name AS name, run.start_time AS start_time, run.duration_ms AS duration_ms, run.status AS status,
    CASE WHEN run_failed THEN '{FAILURE}' WHEN cause IS NOT NULL THEN '{DEGRADED}' ELSE '{SUCCESS}' END
        AS outcome,
    CASE WHEN culprit IS NOT NULL THEN culprit.failure_type
         WHEN run_failed THEN coalesce(run.failure_type, '{GENERIC_FAILURE}') END AS failure_type,
    CASE WHEN culprit IS NOT NULL THEN culprit.span_id WHEN run_failed THEN run.span_id END
        AS failing_span_id,
    coalesce(culprit.message, run.error_message, own.message) AS error_message,
    -- A run that succeeded has no error template (null, not NO_MESSAGE).
    CASE WHEN run_failed OR cause IS NOT NULL THEN
        coalesce(CASE WHEN culprit.message IS NOT NULL THEN culprit.template
                      WHEN run.error_message IS NOT NULL THEN run.error_template
                      ELSE own.template END,
                 '{NO_MESSAGE}') END AS error_template,
    tool_calls, tool_errors, span_count,
    input_tokens, output_tokens, cached_tokens, total_tokens, cost_usd, models,
    coalesce(agents, []) AS agents, synthetic
FROM own
"""

RUN_COLUMNS = (
    "trace_id", "span_id", "tenant", *FIRST_SEEN, "name", "start_time", "duration_ms", "status", "outcome",
    "failure_type", "failing_span_id", "error_message", "error_template", "tool_calls", "tool_errors",
    "span_count", *SUMS, "models", "agents", "synthetic",
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
    -- One mark per run: the reason goes with its own failure type (the first by type).
    SELECT tenant, trace_id, mark.t AS failure_type, mark.r AS reason FROM (
        SELECT tenant, trace_id, min({{'t': failure_type, 'r': reason}}) AS mark
        FROM run_marks GROUP BY tenant, trace_id
    )
) m ON m.tenant = r.tenant AND m.trace_id = r.trace_id
"""


def runs_sql(parts: str, single_partials: bool = False) -> str:
    """``runs`` rows merged from the partials in ``parts`` (a query), judges' marks not applied.

    ``single_partials``: the caller has checked that no trace has two partials in ``parts``
    (``has_split_traces``), so every partial is a run as it is and nothing is grouped."""
    unified = f"SELECT * EXCLUDE ({_FILTER_COLUMNS}) FROM parts" if single_partials else MERGE_SQL
    return RUNS_SQL.replace("__UNIFIED__", unified).replace("__PARTS__", parts)


def marked(con: duckdb.DuckDBPyConnection, runs: str) -> str:
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
    con.execute(f"CREATE VIEW runs AS {marked(con, runs_sql(f'SELECT * FROM {RUN_PARTS}'))}")


Row = dict[str, Any]


def runs_of_trace(
    con: duckdb.DuckDBPyConnection,
    trace_id: str,
    tenant: str | None = None,
    places: Iterable[tuple[str, date]] | None = None,
) -> list[Row]:
    """The run of ``trace_id`` with every column of ``runs`` and ``agent``: one row per tenant
    holding the trace (one, unless tenants reuse an id), none when no span of it is stored.

    ``places``: the (tenant, date) partitions holding every partial of the trace, when the
    caller knows them: only those files are read."""
    parts = f"SELECT * FROM {RUN_PARTS} WHERE trace_id = $trace_id"
    params: dict[str, object] = {"trace_id": trace_id}
    if tenant is not None:
        parts += " AND tenant = $tenant"
        params["tenant"] = tenant
    if places is not None:
        parts += " AND list_contains($places, {'tenant': tenant, 'date': date})"
        params["places"] = [{"tenant": t, "date": d} for t, d in places]
    sql = f"SELECT *, {AGENT_SQL} AS agent FROM ({marked(con, runs_sql(parts))}) ORDER BY tenant"
    return _rows(con.execute(sql, params))


@dataclass(frozen=True)
class Scope:
    """Which runs: started in ``[since, until)``, of ``agent`` and ``tenant`` (None: any).

    ``synthetic``: eval traffic (runs of agentwatch's own evals, ``synthetic = true``) never
    counts as production: ``False`` (the default) is production runs only, ``True`` synthetic
    runs only, ``None`` both."""

    since: datetime
    until: datetime
    agent: str | None = None
    tenant: str | None = None
    synthetic: bool | None = False

    @classmethod
    def last(cls, window: timedelta, agent: str | None = None, tenant: str | None = None,
             now: datetime | None = None, synthetic: bool | None = False) -> Scope:  # fmt: skip
        until = now or datetime.now(UTC)
        return cls(until - window, until, agent, tenant, synthetic)

    @property
    def seconds(self) -> float:
        return (self.until - self.since).total_seconds()


BASE_COLUMNS = (
    "tenant", "agent", "agent_owner", "user_id", "trace_id", "span_id", "start_time", "duration_ms",
    "outcome", "failure_type", "error_message", "error_template", "failing_span_id", "synthetic",
)  # fmt: skip
"""The columns a ``RunSet`` has by default (``agent``: ``AGENT_SQL``; ``synthetic`` is never null)."""
KEY_COLUMNS = ("tenant", "agent", "trace_id", "start_time", "synthetic")
"""The columns every ``RunSet`` has (``runs_in``'s ``base`` may leave the others out)."""
USAGE = ("cost_usd", "agent_name")
"""Extra columns for alerting and judging (``agent_name``: the name shown beside an agent's id)."""
TEXTS = ("input_text", "output_text")
"""Extra columns for the case export: the run span's texts, for runs that did not succeed."""

_EXPRESSIONS = {"agent": AGENT_SQL, "synthetic": "coalesce(synthetic, false)"}
_SYNTHETIC: dict[bool | None, tuple[str, ...]] = {False: ("NOT synthetic",), True: ("synthetic",), None: ()}
"""The condition on ``synthetic`` of a ``Scope.synthetic`` value."""
_tables = itertools.count()
_PARAM = "__runs_"
_WITH = re.compile(r"\s*WITH\s+(?!RECURSIVE\b)", re.IGNORECASE)


@dataclass(frozen=True)
class CachedRuns:
    """How ``storage.runcache`` made a ``RunSet``: the cache attached as ``alias``, the days
    from ``cutoff`` on merged live, the traces with partials on both sides in the temporary
    table ``split`` (None: none), the runs merged live in the temporary table ``live`` (their
    spans from ``live_from`` on), the set's tenant and agent label."""

    alias: str
    cutoff: date
    split: str | None
    live: str
    live_from: date
    tenant: str | None
    agent: str | None
    derived: frozenset[str] = frozenset()
    """The names of the ``storage.runcache.Derived`` tables the cache keeps."""
    today: str | None = None
    """The snapshot of the open days' files attached, if one is usable."""
    after: str | None = None
    """The temporary table of the traces with partials in the open days' files that came after
    that snapshot (None: none came)."""


@dataclass(frozen=True)
class RunSet:
    """The runs of a scope, loaded once (see ``runs_in``). Query them as the relation ``runs``:
    ``run_set.rows("SELECT agent, count(*) AS n FROM runs GROUP BY agent", params)``.

    ``runs`` holds the runs of ``scope``: production runs only unless the scope says otherwise
    (``Scope.synthetic``). ``within`` narrows them (a shorter window, one agent) without
    reloading; ``synthetic_left_out`` counts the eval runs the scope leaves out.
    """

    con: duckdb.DuckDBPyConnection
    """The catalog connection the runs were read from (its other views stay usable)."""
    scope: Scope
    columns: tuple[str, ...]
    _table: str = field(repr=False)
    _where: tuple[str, ...] = field(default=(), repr=False)
    _params: tuple[tuple[str, object], ...] = field(default=(), repr=False)
    _view: bool = field(default=False, repr=False)
    """``_table`` is a view (``storage.runcache``: closed days' runs and the open days')."""
    cached: CachedRuns | None = field(default=None, repr=False)
    """Where the closed days' runs came from, when from the run cache (``storage.runcache``)."""

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

    def synthetic_left_out(self) -> int:
        """How many synthetic runs of this set's window, agent and tenant its scope leaves out
        (0 when it includes them)."""
        if self.scope.synthetic is not False:
            return 0
        ((count,),) = self.con.execute(
            f"SELECT count(*) FROM {self._table} WHERE {' AND '.join((*self._where, 'synthetic'))}",
            dict(self._params),
        ).fetchall()
        return int(count)

    def within(
        self, since: datetime | None = None, until: datetime | None = None, *, agent: str | None = None,
        tenant: str | None = None, synthetic: bool | None = None,
    ) -> RunSet:  # fmt: skip
        """These runs started in ``[since, until)``, of ``agent`` and ``tenant``, synthetic or not
        (``None``: no condition). Narrowing only: the production runs of a set are not
        synthetic (``within(synthetic=True)`` of a production set has no runs)."""
        where, params = list(self._where), dict(self._params)
        for condition, value in (("start_time >= $", since), ("start_time < $", until), ("agent = $", agent),
                                 ("tenant = $", tenant)):  # fmt: skip
            if value is not None:
                name = f"{_PARAM}{len(params)}"
                where.append(condition + name)
                params[name] = value
        kept = self.scope.synthetic
        if synthetic is not None and kept is not None and synthetic != kept:
            where.append("false")
        scope = Scope(
            self.scope.since if since is None else max(self.scope.since, since),
            self.scope.until if until is None else min(self.scope.until, until),
            agent if agent is not None else self.scope.agent,
            tenant if tenant is not None else self.scope.tenant,
            synthetic if kept is None else kept,
        )
        return replace(self, scope=scope, _where=tuple(where), _params=tuple(params.items()))

    @property
    def narrowed(self) -> bool:
        """Whether ``within`` narrowed these runs past their scope's own conditions."""
        return bool(self._where)

    def agent_label(self, agent: str) -> str:
        """The label (``agent``: the id, else the name) of the agent named ``agent`` by its id or
        its name, among the partials of this set's window (``agent`` when none names it)."""
        first = since_date(self.scope.since)
        return resolve_agent(self.con, agent, first, self.scope.tenant, self.scope.synthetic)

    def drop(self) -> None:
        """Free the loaded runs (they also go with the connection); this set and those narrowed
        from it cannot be queried after."""
        self.con.execute(f"DROP {'VIEW' if self._view else 'TABLE'} IF EXISTS {self._table}")

    def _bound(self, sql: str, params: Mapping[str, object] | None) -> tuple[str, dict[str, object]]:
        """``sql`` with the ``runs`` it reads defined, and its parameters with the set's."""
        conditions = (*self._where, *_SYNTHETIC[self.scope.synthetic])
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        runs = f"runs AS NOT MATERIALIZED (SELECT * FROM {self._table}{where})"
        # A query with its own WITH gets ``runs`` as its first common table expression.
        own = _WITH.match(sql)
        sql = f"WITH {runs}, {sql[own.end() :]}" if own else f"WITH {runs} {sql}"
        params = dict(params or {})
        if any(name.startswith(_PARAM) for name in params):
            raise ValueError(f"parameter names starting with {_PARAM} are the RunSet's own")
        return sql, {**dict(self._params), **params}


def resolve_agent(
    con: duckdb.DuckDBPyConnection,
    agent: str,
    since_date: object,
    tenant: str | None = None,
    synthetic: bool | None = None,
) -> str:
    """The label (``AGENT_SQL``: the id, else the name) of the agent named ``agent``, by id or
    by name, among the partials since ``since_date`` (of ``tenant``, when given: one tenant's
    names never resolve to another's agents; of production or eval traffic as ``synthetic``
    says, so eval runs labelled by a name never hide the production runs labelled by the id):
    ``agent`` itself when runs are labelled so (the common case, a filter row-group statistics
    answer) or when no run names it."""
    recent = f"FROM {RUN_PARTS} WHERE date >= $since_date"
    params: dict[str, object] = {"since_date": since_date, "agent": agent}
    if tenant is not None:
        recent += " AND tenant = $tenant"
        params["tenant"] = tenant
    if synthetic is not None:
        recent += " AND coalesce(synthetic, false)" if synthetic else " AND NOT coalesce(synthetic, false)"
    if con.execute(f"SELECT EXISTS (SELECT 1 {recent} AND agent = $agent)", params).fetchall()[0][0]:
        return agent
    labels = con.execute(
        f"SELECT agent, count(*) AS n {recent} AND agent_name.v = $agent AND agent IS NOT NULL"
        " GROUP BY agent ORDER BY n DESC, agent LIMIT 1",
        params,
    ).fetchall()
    return str(labels[0][0]) if labels else agent


def traces_naming_sql(con: duckdb.DuckDBPyConnection, since_date: object, agent: str) -> str:
    """SQL (params ``$since_date``, ``$agent``): the trace ids whose partials of ``since_date``
    on name the agent labelled ``agent``, explicitly or only by a derived name; a superset of
    the traces whose run is labelled so (``AGENT_SQL``)."""
    recent = f"FROM {RUN_PARTS} WHERE date >= $since_date"
    traces = f"SELECT trace_id {recent} AND agent = $agent"
    lookup = {"since_date": since_date, "agent": agent}
    if con.execute(f"SELECT EXISTS (SELECT 1 {recent} AND derived_agent = $agent)", lookup).fetchall()[0][0]:
        traces += f" UNION ALL SELECT trace_id {recent} AND derived_agent = $agent"
    return traces


def run_set_columns(extra: Iterable[str], base: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """``runs_in``'s columns checked: (the columns of runs it selects, the ``TEXTS`` it adds)."""
    extra = tuple(dict.fromkeys(extra))
    unknown = [c for c in extra if c not in (*RUN_COLUMNS, *TEXTS) or c in base]
    if unknown:
        raise ValueError(f"not an extra column of runs: {', '.join(unknown)}")
    if missing := [c for c in KEY_COLUMNS if c not in base] + [c for c in base if c not in BASE_COLUMNS]:
        raise ValueError(f"base: not the key columns or a base column of runs: {', '.join(missing)}")
    return [c for c in (*base, *extra) if c not in TEXTS], [c for c in extra if c in TEXTS]


def projection_sql(columns: Iterable[str]) -> str:
    """SQL: the select list of a ``RunSet``'s ``columns`` over rows of ``runs`` (``agent`` is
    ``AGENT_SQL``; ``synthetic`` never null)."""
    return ", ".join(f"{_EXPRESSIONS[c]} AS {c}" if c in _EXPRESSIONS else c for c in columns)


def runs_in(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    extra: Iterable[str] = (),
    base: tuple[str, ...] = BASE_COLUMNS,
) -> RunSet:
    """The runs of ``scope`` on the catalog connection ``con``, loaded once into a ``RunSet``.

    Columns: ``base`` (``BASE_COLUMNS``, or fewer: at least ``KEY_COLUMNS``) and ``extra``: any
    other column of ``runs`` (``USAGE`` for alerting and judging: the report leaves them out,
    every column costs on millions of runs) or ``TEXTS``, read from ``spans`` for runs that did
    not succeed (run partials do not carry them; only the case export needs them).

    The window and agent filters apply to the run partials before they are merged, so one
    agent's runs never merge the other agents' partials: an agent's runs read the partials that
    name it and those of the same traces that name no agent or only a derived one (see the
    README, Runs). Every run of the window is loaded, synthetic or not; the set holds those of
    ``scope.synthetic`` (``RunSet.synthetic_left_out`` counts the others).
    """
    selected, texts = run_set_columns(extra, base)
    params: dict[str, object] = {
        "since": scope.since,
        "until": scope.until,
        # A trace can start the day before its partials' file date: one day of slack.
        "since_date": since_date(scope.since),
    }
    where = ["date >= $since_date"]
    if scope.tenant is not None:
        where.append("tenant = $tenant")
        params["tenant"] = scope.tenant
    agent_label: str | None = None
    if scope.agent is not None:
        # The traces whose partials name the agent (explicitly, or only by a derived name), all
        # their partials merged: the run is the whole trace's, as every other view has it, and it
        # is the agent's when its label is (a trace that names another agent first is that
        # one's). Each lookup is a one-column filter that row-group statistics skip on (an OR
        # over two columns would read every row group). The agent is named by its id or its name
        # (its label, the id, is looked up by name only when no run is labelled so).
        agent_label = resolve_agent(con, scope.agent, params["since_date"], scope.tenant, scope.synthetic)
        params["agent"] = agent_label
        where.append(f"trace_id IN ({traces_naming_sql(con, params['since_date'], agent_label)})")
    parts = f"SELECT * FROM {RUN_PARTS} WHERE {' AND '.join(where)}"
    part_params = {k: v for k, v in params.items() if k not in ("since", "until")}
    hashes = con.execute(f"SELECT hash(tenant, trace_id) AS h FROM ({parts})", part_params).fetchnumpy()["h"]
    single = not has_split_traces(hashes)
    if single:  # a partial's run span is then the run's: the window filter can skip it early
        parts += " AND run.start_time >= $since AND run.start_time < $until"
    agent_filter = f"AND {AGENT_SQL} = $agent" if scope.agent is not None else ""
    table = f"_runs_{next(_tables)}"
    bare = f"{table}_bare" if texts else table
    projection = projection_sql(selected)
    con.execute(
        f"""
        CREATE TEMP TABLE {bare} AS
        SELECT {projection}
        FROM ({marked(con, runs_sql(parts, single_partials=single))})
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
