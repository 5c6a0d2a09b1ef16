"""What a converter worker hands back of each batch it stored, for the health aggregate.

Per ``(tenant, trace_id)`` of the batch: the trace's run partial (``storage.runs.parts_sql``, the
one read model's first step, so the aggregate's runs are the read model's runs), whether the
trace's root span was in the batch (``has_root``: the run can be counted), and its steps: the
tool calls (client side: the server span of an MCP call is its other end) and model calls, each
with its end time, whether it failed and its failure type.

``HealthTap`` sits last in every pipeline, after the exporters: a batch is digested once it is
stored. The digest travels to the API process as an Arrow IPC stream (``take_digest``).
"""

from __future__ import annotations

import threading

import duckdb
import pyarrow as pa

from core.component import BaseComponent
from core.model import LLM_OPERATIONS, TOOL_OPERATIONS
from storage.runs import parts_sql, span_failed_sql, sql_list

_TOOLS = f"operation IN ({sql_list(TOOL_OPERATIONS)})"
_LLMS = f"operation IN ({sql_list(LLM_OPERATIONS)})"

DIGEST_SQL = f"""
SELECT p.*, x.has_root, x.steps
FROM ({parts_sql("tenant, trace_id", "_rows")}) p
JOIN (
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
) x USING (tenant, trace_id)
"""


def digest_of(con: duckdb.DuckDBPyConnection, rows: pa.Table) -> pa.Table:
    """The digest of canonical span rows (``core.model.SPAN_SCHEMA``, with ``tenant``)."""
    con.register("_rows", rows)
    try:
        table: pa.Table = con.sql(DIGEST_SQL).to_arrow_table()
        return table
    finally:
        con.unregister("_rows")


def to_ipc(tables: list[pa.Table]) -> bytes | None:
    """One Arrow IPC stream of ``tables`` (None when there are none)."""
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return None
    table = pa.concat_tables(tables, promote_options="permissive")
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def from_ipc(data: bytes) -> pa.Table:
    with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
        return reader.read_all()


class HealthTap(BaseComponent):
    """The last consumer of a pipeline: digests each stored batch (see the module)."""

    def __init__(self) -> None:
        self._con = duckdb.connect(":memory:", config={"threads": 1})
        self._lock = threading.Lock()
        self._digests: list[pa.Table] = []

    def consume(self, batch: pa.Table) -> None:
        if batch.num_rows == 0:
            return
        with self._lock:
            self._digests.append(digest_of(self._con, batch))

    def take_digest(self) -> bytes | None:
        """The digests of the batches since the last call, as one Arrow IPC stream."""
        with self._lock:
            taken, self._digests = self._digests, []
        return to_ipc(taken)

    def shutdown(self) -> None:
        self._con.close()
