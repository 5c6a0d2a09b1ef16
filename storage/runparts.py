"""Run roll-up partials: one row per trace per span file, so ``runs`` never re-reads every span.

A run's outcome rolls up from every span of its trace, and a trace's spans can land in several
files. Each span file ``spans/tenant=T/date=D/X.parquet`` gets a partial file
``run_parts/tenant=T/date=D/X.parquet``: per trace, the aggregates of that file's spans that
merge exactly (minimums of ``{at, value}`` structs, counts, sums, the two earliest failing
spans). ``runs`` merges the partials of the live span files per ``(tenant, trace_id)``: about
a fifth of the rows of ``spans`` and a handful of columns.

Texts (``input_text``/``output_text``) stay out of the partials: they are most of a span's
bytes and only the case export reads them (from ``spans``, by the run's ``span_id``).

Partials are an index, never the truth: the exporter writes a file's partials right after the
file; a span file without partials (a crash in between, data from an older version) is rolled
up on the fly by the catalog, and the compactor backfills it. Compaction writes the merged
file's partials before it commits the merge and deletes the inputs' partials with the inputs.
"""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from storage.layout import SPANS, table_dir, write_atomically
from storage.message_template import NO_MESSAGE, mask_sql

RUN_PARTS = "run_parts"
PARTS_ROW_GROUP = 16_384

# The fields whose first non-null value (by span start) the run takes.
FIRST_SEEN = (
    "agent_id", "agent_name", "agent_version", "agent_owner", "user_id", "session_id", "service_name",
    "eval_run_id", "eval_case_id",
)  # fmt: skip
SUMS = ("input_tokens", "output_tokens", "cached_tokens", "total_tokens", "cost_usd")

_FAILED = "(status = 'error' OR failure_type IS NOT NULL)"
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
        'at': start_time, 'span_id': span_id, 'failure_type': coalesce(failure_type, 'other_error'),
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
        run.status = 'error' OR run.failure_type IS NOT NULL AS run_failed,
        -- The earliest failing span under the run (at most one of the two is the run span).
        -- (len first: most runs have no failing span, and the list lookups cost on 2 M rows)
        CASE WHEN len(failing) = 0 THEN NULL
             WHEN failing[1].span_id <> run.span_id THEN failing[1] ELSE failing[2] END AS step
    FROM unified
)
SELECT
    trace_id, run.span_id AS span_id, tenant, {_VALUES},
    run.name AS name, run.start_time AS start_time, run.duration_ms AS duration_ms, run.status AS status,
    CASE WHEN run_failed THEN 'failure' WHEN step IS NOT NULL THEN 'degraded' ELSE 'success' END AS outcome,
    CASE WHEN run.failure_type IS NOT NULL THEN run.failure_type
         WHEN run.status = 'error' THEN coalesce(step.failure_type, 'other_error')
         ELSE step.failure_type END AS failure_type,
    CASE WHEN run_failed THEN coalesce(step.span_id, run.span_id) ELSE step.span_id END AS failing_span_id,
    coalesce(run.error_message, failing[1].message) AS error_message,
    coalesce(CASE WHEN run.error_message IS NOT NULL THEN run.error_template ELSE failing[1].template END,
             '{NO_MESSAGE}') AS error_template,
    tool_calls, tool_errors, span_count,
    input_tokens, output_tokens, cached_tokens, total_tokens, cost_usd, models, synthetic
FROM judged
"""


# Marks a judge gave runs after the fact (``run_marks``, see ``evals.judges.marks``): a run
# that succeeded becomes degraded with the mark's failure type; a failed run keeps its own.
MARKED_SQL = """
SELECT r.* REPLACE (
    CASE WHEN m.failure_type IS NOT NULL AND r.outcome = 'success' THEN 'degraded'
         ELSE r.outcome END AS outcome,
    CASE WHEN m.failure_type IS NOT NULL AND r.outcome = 'success' THEN m.failure_type
         ELSE r.failure_type END AS failure_type,
    CASE WHEN m.failure_type IS NOT NULL AND r.outcome = 'success' THEN r.span_id
         ELSE r.failing_span_id END AS failing_span_id,
    CASE WHEN m.failure_type IS NOT NULL AND r.outcome = 'success' THEN m.reason
         ELSE r.error_message END AS error_message,
    CASE WHEN m.failure_type IS NOT NULL AND r.outcome = 'success' THEN 'judge: ' || m.failure_type
         ELSE r.error_template END AS error_template
)
FROM (__RUNS__) r LEFT JOIN (
    SELECT tenant, trace_id, min(failure_type) AS failure_type, min(reason) AS reason
    FROM run_marks GROUP BY tenant, trace_id
) m ON m.tenant = r.tenant AND m.trace_id = r.trace_id
"""


def with_marks(runs: str) -> str:
    """``runs`` (a query of runs rows) with the ``run_marks`` relation applied."""
    return MARKED_SQL.replace("__RUNS__", runs)


def parts_sql(keys: str, source: str) -> str:
    """Partials of the spans in ``source`` (a relation), one row per distinct ``keys``."""
    return PARTS_SQL.replace("__KEYS__", keys).replace("__SOURCE__", source)


def runs_sql(parts: str, single_partials: bool = False) -> str:
    """``runs`` rows merged from the partials in ``parts`` (a query).

    ``single_partials``: the caller has checked that no trace has two partials in ``parts``
    (``has_split_traces``), so every partial is a run as it is and nothing is grouped."""
    unified = "SELECT * EXCLUDE (trace_hash, agent) FROM parts" if single_partials else MERGE_SQL
    return RUNS_SQL.replace("__UNIFIED__", unified).replace("__PARTS__", parts)


def split_traces_sql(parts: str) -> str:
    """One 8-byte hash per partial in ``parts`` (for ``has_split_traces``)."""
    return f"SELECT hash(tenant, trace_id) AS h FROM ({parts})"


def has_split_traces(hashes: np.ndarray) -> bool:
    """Whether any trace hash occurs twice (a sort of 8-byte ints: cheaper than a SQL group-by)."""
    ordered = np.sort(hashes)
    return bool((ordered[1:] == ordered[:-1]).any())


def parts_path(data_dir: Path, span_file: Path) -> Path:
    """Where the partials of ``span_file`` (under ``data_dir``/spans) live."""
    relative = span_file.relative_to(table_dir(data_dir, SPANS))
    return table_dir(data_dir, RUN_PARTS) / relative


class PartsWriter:
    """Rolls span tables (one tenant and day, without the partition columns) up into partials."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._con = duckdb.connect(":memory:")
        self._lock = threading.Lock()

    def parts_of(self, rows: pa.Table) -> pa.Table:
        with self._lock:
            cursor = self._con.cursor()
        try:
            cursor.register("_rows", rows)
            table: pa.Table = cursor.sql(parts_sql("trace_id", "_rows")).to_arrow_table()
            return table
        finally:
            cursor.close()

    def write(self, rows: pa.Table, span_file: Path) -> Path:
        """Write the partials of ``rows``, which are (or will be) the contents of ``span_file``.

        Sorted by agent, in small row groups: a one-agent report reads only that agent's."""
        target = parts_path(self.data_dir, span_file)
        parts = self.parts_of(rows).sort_by([("agent", "ascending"), ("trace_id", "ascending")])
        return write_atomically(
            parts, target.parent, "zstd", 3, name=target.name, row_group_size=PARTS_ROW_GROUP
        )

    def close(self) -> None:
        self._con.close()
