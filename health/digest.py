"""What a converter worker hands back of each batch it stored, for the health aggregate.

A ``Digest`` of a batch has three tables:

- ``traces``: per ``(tenant, trace_id)``, whether the trace's root span was in the batch
  (``has_root``: its run can be counted) and its steps: the tool calls (client side: the server
  span of an MCP call is its other end) and model calls, each with its end time, whether it
  failed and its failure type;
- ``runs``: the run of each trace whose root is here, as the one read model builds it
  (``storage.runs.runs_sql``) from this batch's spans (``RUN_COLUMNS``): built here, in the
  worker's process, so the API process only counts;
- ``parts``: the batch's run partials (``storage.runs.parts_sql``; those the Parquet exporter
  computed for its files, so they are computed once), from which the API process builds the run
  of a trace whose spans came in several batches; without the columns runs' health does not
  read (``UNREAD_PART_COLUMNS``).

``HealthTap`` sits last in every pipeline, after the exporters: a batch is digested once it is
stored. The digest travels to the API process as Arrow IPC (``pack``, ``unpack``).
"""

from __future__ import annotations

import struct
import threading
from typing import NamedTuple, Protocol, runtime_checkable

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from core.component import BaseComponent
from core.model import LLM_OPERATIONS, TOOL_OPERATIONS
from storage.runs import AGENT_SQL, parts_sql, runs_sql, span_failed_sql, sql_list

STEP_TYPE = pa.struct([
    ("at", pa.timestamp("us", "UTC")), ("tool", pa.bool_()), ("name", pa.string()), ("failed", pa.bool_()),
    ("failure_type", pa.string()),
])  # fmt: skip
"""One step of a trace's ``steps``."""
_TOOLS = f"operation IN ({sql_list(TOOL_OPERATIONS)})"
_LLMS = f"operation IN ({sql_list(LLM_OPERATIONS)})"

TRACES_SQL = f"""
SELECT tenant, trace_id,
    bool_or(parent_span_id IS NULL) AS has_root,
    coalesce(list({{
        'at': end_time, 'tool': {_TOOLS},
        'name': CASE WHEN {_TOOLS} THEN tool_name ELSE model END,
        'failed': {span_failed_sql()}, 'failure_type': failure_type
    }} ORDER BY end_time) FILTER (
        WHERE ({_TOOLS} AND tool_name IS NOT NULL AND kind IS DISTINCT FROM 'server')
           OR ({_LLMS} AND model IS NOT NULL)
    ), []) AS steps
FROM _rows GROUP BY tenant, trace_id
"""

RUN_COLUMNS = ("agent", "agent_name", "outcome", "failure_type", "duration_ms", "ended", "synthetic")
"""A run of ``Digest.runs``, beside ``tenant`` and ``trace_id`` (``ended``: epoch seconds)."""


def run_rows_sql(parts: str, single_partials: bool = False) -> str:
    """SQL: the runs of the partials ``parts`` (a query) in ``RUN_COLUMNS`` (``single_partials``:
    no trace has two, see ``storage.runs.runs_sql``)."""
    return f"""
    SELECT tenant, trace_id, {AGENT_SQL} AS agent, agent_name, outcome, failure_type, duration_ms,
           epoch(start_time) + coalesce(duration_ms, 0) / 1000.0 AS ended,
           coalesce(synthetic, false) AS synthetic
    FROM ({runs_sql(parts, single_partials)})
    """


class Digest(NamedTuple):
    traces: pa.Table
    runs: pa.Table
    parts: pa.Table


UNREAD_PART_COLUMNS = (
    "agent_version", "agent_owner", "user_id", "session_id", "service_name", "eval_run_id",
    "eval_case_id", "team", "org", "workspace", "project", "workflow", "span_count", "tool_calls",
    "tool_errors", "open_calls", "input_tokens", "output_tokens", "cached_tokens", "total_tokens",
    "cost_usd", "models", "agents",
)  # fmt: skip
"""Partial columns the runs of ``RUN_COLUMNS`` are not built from: they travel as nulls."""


def slim(parts: pa.Table) -> pa.Table:
    """``parts`` with the ``UNREAD_PART_COLUMNS`` nulled (compressed to nothing by ``pack``)."""
    for name in UNREAD_PART_COLUMNS:
        if name in parts.column_names:
            index = parts.column_names.index(name)
            parts = parts.set_column(index, name, pa.nulls(parts.num_rows, parts.schema.field(name).type))
    return parts


def trace_keys(table: pa.Table) -> pa.ChunkedArray:
    """``tenant`` NUL ``trace_id`` of each row: one string per trace."""
    keys: pa.ChunkedArray = pc.binary_join_element_wise(table["tenant"], table["trace_id"], "\x00")
    return keys


def digest_of(con: duckdb.DuckDBPyConnection, rows: pa.Table, parts: pa.Table | None = None) -> Digest:
    """The digest of canonical span rows (``core.model.SPAN_SCHEMA``, with ``tenant``);
    ``parts``: their run partials with ``tenant``, when the exporter computed them already."""
    con.register("_rows", rows)
    try:
        if parts is None:
            parts = con.sql(parts_sql("tenant, trace_id", "_rows")).to_arrow_table()
        traces = con.sql(TRACES_SQL).to_arrow_table()
    finally:
        con.unregister("_rows")
    rooted = pc.filter(trace_keys(traces), traces["has_root"])
    # A trace has two partials only when the batch split it over two dates' files.
    single = len(parts) == traces.num_rows
    con.register("_rooted", parts.filter(pc.is_in(trace_keys(parts), rooted)))
    try:
        runs = con.sql(run_rows_sql("SELECT * FROM _rooted", single)).to_arrow_table()
    finally:
        con.unregister("_rooted")
    return Digest(traces, runs, slim(parts))


_COMPRESSED = pa.ipc.IpcWriteOptions(compression="lz4")
"""LZ4: the null and repeated values of a digest shrink to little, at a cost of milliseconds."""


def pack(digests: list[Digest]) -> bytes | None:
    """The digests as one message: each of the three tables, concatenated, as an Arrow IPC
    stream after its length (None when there is nothing)."""
    digests = [d for d in digests if d.traces.num_rows]
    if not digests:
        return None
    out = bytearray()
    for tables in zip(*digests, strict=True):
        table = pa.concat_tables(tables, promote_options="permissive")
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema, options=_COMPRESSED) as writer:
            writer.write_table(table)
        data = sink.getvalue().to_pybytes()
        out += struct.pack("<Q", len(data)) + data
    return bytes(out)


def unpack(data: bytes) -> Digest:
    tables = []
    offset = 0
    buffer = pa.py_buffer(data)
    for _ in Digest._fields:
        (size,) = struct.unpack_from("<Q", data, offset)
        with pa.ipc.open_stream(buffer.slice(offset + 8, size)) as reader:
            tables.append(reader.read_all())
        offset += 8 + size
    return Digest(*tables)


@runtime_checkable
class PartsSource(Protocol):
    """An exporter that keeps the run partials it wrote (``exporters.parquet``)."""

    keep_parts: bool

    def take_parts(self) -> pa.Table | None: ...


class HealthTap(BaseComponent):
    """The last consumer of a pipeline: digests each stored batch (see the module), with the
    partials ``parts`` kept of it when given (else it computes them)."""

    def __init__(self, parts: PartsSource | None = None) -> None:
        self._con = duckdb.connect(":memory:", config={"threads": 1})
        self._lock = threading.Lock()
        self._digests: list[Digest] = []
        self._parts = parts
        if parts is not None:
            parts.keep_parts = True

    def consume(self, batch: pa.Table) -> None:
        if batch.num_rows == 0:
            return
        parts = self._parts.take_parts() if self._parts is not None else None
        with self._lock:
            self._digests.append(digest_of(self._con, batch, parts))

    def take_digest(self) -> bytes | None:
        """The digests of the batches since the last call, packed (``unpack``)."""
        with self._lock:
            taken, self._digests = self._digests, []
        return pack(taken)

    def shutdown(self) -> None:
        self._con.close()
