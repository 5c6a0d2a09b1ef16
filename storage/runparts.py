"""Run roll-up partials on disk: one row per trace per span file, so runs never re-read every span.

A run's outcome rolls up from every span of its trace, and a trace's spans can land in several
files. Each span file ``spans/tenant=T/date=D/X.parquet`` gets a partial file
``run_parts/tenant=T/date=D/X.parquet``: per trace, the aggregates of that file's spans that
merge exactly (minimums of ``{at, value}`` structs, counts, sums, the two likeliest root causes
among the failing spans, the ends of remote tool calls not paired in the file). Runs merge the
partials of the live span files per ``(tenant, trace_id)``: about a fifth of the rows of
``spans`` and a handful of columns. What a partial holds and how
partials merge into runs is ``storage.runs`` (``parts_sql``, ``runs_sql``); this module says
where partials live and writes them.

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
import pyarrow as pa

from storage.layout import RUN_PARTS, SPANS, table_dir, write_atomically
from storage.runs import has_event_spans, parts_sql

__all__ = ["PARTS_ROW_GROUP", "RUN_PARTS", "PartsWriter", "parts_path"]

PARTS_ROW_GROUP = 16_384


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
            table: pa.Table = cursor.sql(
                parts_sql("trace_id", "_rows", has_event_spans(rows))
            ).to_arrow_table()
            return table
        finally:
            cursor.close()

    def write(self, rows: pa.Table, span_file: Path, parts: pa.Table | None = None) -> Path:
        """Write the partials of ``rows``, which are (or will be) the contents of ``span_file``
        (``parts``: already computed with ``parts_of``).

        Sorted by agent (the explicit one, then the derived one, see ``storage.runs``), in small
        row groups: a one-agent report reads only that agent's."""
        target = parts_path(self.data_dir, span_file)
        order = [("agent", "ascending"), ("derived_agent", "ascending"), ("trace_id", "ascending")]
        parts = (self.parts_of(rows) if parts is None else parts).sort_by(order)
        return write_atomically(
            parts, target.parent, "zstd", 3, name=target.name, row_group_size=PARTS_ROW_GROUP
        )

    def close(self) -> None:
        self._con.close()
