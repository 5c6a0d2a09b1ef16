"""Merging span files, and rolling a span file up into run partials, in bounded memory.

A merge reads its inputs once, in batches, never whole, tagging each row with its input and
position, and feeds two external sorts (``storage.compaction.extsort``):

1. **By trace**: every column but the texts (what the run partials need), sorted by
   ``trace_id, span_id``, input, position. A span that occurs more than once is kept once, its
   first occurrence (by input order, then position); the positions of the others are remembered
   (8 bytes each). The kept rows go, in chunks that end at a trace boundary, through the
   exporter's roll-up SQL (``runs.parts_sql``: a trace's spans are always rolled up in one
   call), and the partials are written sorted by agent then trace, in row groups of
   ``PARTS_ROW_GROUP``, as the exporter writes them.
2. **By time**: every column, sorted by ``start_time`` (then ``trace_id, span_id``), less the
   remembered duplicates, written in row groups of bounded bytes with the inputs' Arrow schema
   (their union when an older input lacks a column), so the merged file reads back with exactly
   the types of the files it replaces.

``Budget.total`` bounds the rows held in memory at once, DuckDB's roll-up included; what does not
fit is sorted in temporary files under ``tmp_dir``. Two things are outside it: the remembered
duplicate positions, and a single trace too large for a partials chunk (it is rolled up whole).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.model import SPAN_SCHEMA
from storage.compaction.extsort import ExternalSorter
from storage.runparts import PARTS_ROW_GROUP
from storage.runs import has_event_spans, parts_sql

TEXT_COLUMNS = ("input_text", "output_text", "attributes", "resource_attributes", "events")
"""Columns the run partials never read (most of a span's bytes): left out of the trace sort."""
POSITION = ("_src", "_row")
"""Added to every row read: its input's index and its row number there."""
SPAN_ORDER = ("start_time", "trace_id", "span_id")
TRACE_ORDER = ("trace_id", "span_id", *POSITION)
PARTS_ORDER = ("_no_agent", "_agent", "trace_id")
"""The exporter's order (``PartsWriter.write``): by agent, runs without one last (those by their
derived agent), then trace."""
SPAN_ROW_GROUP = 131_072
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 3
ROW_BITS = 40
"""A position packs into one int64 as ``input << ROW_BITS | row``."""


class MergeError(RuntimeError):
    """A merge whose two sorts disagree on the rows: nothing is committed."""


@dataclass(frozen=True)
class Budget:
    """How ``total`` bytes of rows in memory are shared out (phases run one after the other:
    reading feeds both sorts; then the trace sort is merged and rolled up; then the time sort is
    merged and written)."""

    total: int

    @property
    def read(self) -> int:
        """One batch read from an input."""
        return max(self.total // 16, 1 << 20)

    @property
    def trace_sort(self) -> int:
        return self.total // 4

    @property
    def span_sort(self) -> int:
        return self.total // 2

    @property
    def trace_chunk(self) -> int:
        """Rows rolled up into partials in one call."""
        return self.total // 16

    @property
    def roll_up(self) -> int:
        """DuckDB's memory limit for rolling a chunk up (its hash tables take several times it)."""
        return self.total // 4

    @property
    def parts_sort(self) -> int:
        return self.total // 4

    @property
    def row_group(self) -> int:
        """A row group of an output file, buffered before it is written."""
        return self.total // 8


@dataclass
class MergeCounts:
    rows_in: int = 0
    rows_out: int = 0


def merge_span_files(
    inputs: Sequence[Path], output: Path, parts_output: Path, budget: Budget, tmp_dir: Path,
    roller: PartsRoller,
) -> MergeCounts:  # fmt: skip
    """Write the merge of ``inputs`` to ``output`` and its partials to ``parts_output`` (both
    fsynced; committing them is the caller's business)."""
    schema = unified_schema(inputs)
    narrow = narrow_schema(schema)
    by_trace = ExternalSorter(TRACE_ORDER, budget.trace_sort, tmp_dir)
    by_time = ExternalSorter(SPAN_ORDER, budget.span_sort, tmp_dir)
    rows_in = 0
    for table in read_positioned(inputs, schema, budget.read):
        by_trace.add(conform(table, narrow))
        by_time.add(table)
        rows_in += table.num_rows
    duplicates = Duplicates()
    write_parts(by_trace.sorted(), duplicates, parts_output, narrow, budget, tmp_dir, roller)
    rows_out = write_spans(by_time.sorted(), duplicates, output, schema, budget)
    if rows_out != rows_in - duplicates.count:
        raise MergeError(f"{rows_in} rows read, {duplicates.count} duplicates, but {rows_out} written")
    return MergeCounts(rows_in, rows_out)


def build_parts(
    span_file: Path, parts_output: Path, budget: Budget, tmp_dir: Path, roller: PartsRoller
) -> int:
    """Write the partials of one span file (all its rows, as the exporter would have); return
    how many rows it holds."""
    narrow = narrow_schema(unified_schema([span_file]))
    by_trace = ExternalSorter(TRACE_ORDER, budget.trace_sort, tmp_dir)
    rows = 0
    for table in read_positioned([span_file], narrow, budget.read):
        by_trace.add(table)
        rows += table.num_rows
    write_parts(by_trace.sorted(), None, parts_output, narrow, budget, tmp_dir, roller)
    return rows


def unified_schema(paths: Sequence[Path]) -> pa.Schema:
    """The inputs' Arrow schema; columns missing from some of them become nullable."""
    schemas = [pq.read_schema(p) for p in paths]
    unified = pa.unify_schemas(schemas)
    everywhere = set.intersection(*(set(s.names) for s in schemas))
    fields = [f if f.name in everywhere else f.with_nullable(True) for f in unified]
    return pa.schema(fields, metadata=unified.metadata)


def narrow_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` less the texts, plus any span column it lacks (an older file), nullable."""
    fields = [f for f in schema if f.name not in TEXT_COLUMNS]
    missing = [
        f.with_nullable(True)
        for f in SPAN_SCHEMA
        if f.name not in schema.names and f.name not in TEXT_COLUMNS and f.name != "tenant"
    ]
    return pa.schema(fields + missing)


class PartsRoller:
    """``PartsWriter.parts_of`` (the same SQL) on a DuckDB connection held to ``memory`` bytes."""

    def __init__(self, memory: int) -> None:
        self._con = duckdb.connect(":memory:")
        self._con.execute(f"SET memory_limit = '{max(memory >> 20, 16)}MiB'")
        self._con.execute("SET threads = 1")

    def parts_of(self, rows: pa.Table) -> pa.Table:
        self._con.register("_rows", rows)
        try:
            table: pa.Table = self._con.sql(
                parts_sql("trace_id", "_rows", has_event_spans(rows))
            ).to_arrow_table()
            return table
        finally:
            self._con.unregister("_rows")

    def close(self) -> None:
        self._con.close()


# -- reading ---------------------------------------------------------------------------------
class BatchReader:
    """Reads span files in batches of about ``max_bytes`` in memory, conformed to a schema.

    Batches are sized by the bytes per row seen so far (the first of 1,024 rows), per row group."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes_per_row = 0.0

    def batches(self, path: Path, schema: pa.Schema) -> Iterator[pa.Table]:
        file = pq.ParquetFile(path)
        try:
            names = set(file.schema_arrow.names)
            present = [name for name in schema.names if name in names]
            for group in range(file.num_row_groups):
                rows = self._rows_per_batch()
                for batch in file.iter_batches(batch_size=rows, row_groups=[group], columns=present):
                    if batch.num_rows:
                        table = conform(pa.Table.from_batches([batch]), schema)
                        self.bytes_per_row = max(self.bytes_per_row, table.nbytes / table.num_rows)
                        yield table
        finally:
            file.close()

    def _rows_per_batch(self) -> int:
        if not self.bytes_per_row:
            return 1024
        return max(16, int(self.max_bytes / self.bytes_per_row))


def read_positioned(inputs: Sequence[Path], schema: pa.Schema, max_bytes: int) -> Iterator[pa.Table]:
    """The inputs' rows as ``schema`` has them, in batches, with ``_src`` and ``_row`` added."""
    reader = BatchReader(max_bytes)
    for src, path in enumerate(inputs):
        row = 0
        for table in reader.batches(path, schema):
            n = table.num_rows
            positioned = table.append_column("_src", pa.array(np.full(n, src, np.int32)))
            yield positioned.append_column("_row", pa.array(np.arange(row, row + n, dtype=np.int64)))
            row += n


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table``'s columns as ``schema`` has them (cast, in order, missing ones null), then its
    position columns if it has them."""
    fields = [*schema, *(table.schema.field(p) for p in POSITION if p in table.column_names)]
    have = set(table.column_names)
    arrays = [table[f.name] if f.name in have else pa.nulls(table.num_rows, f.type) for f in fields]
    return pa.Table.from_arrays(arrays, names=[f.name for f in fields]).cast(pa.schema(fields))


# -- the trace sort: duplicates and partials -------------------------------------------------------
@dataclass
class Duplicates:
    """Positions of span copies dropped in favour of an earlier one (``input << ROW_BITS | row``)."""

    found: list[np.ndarray] = field(default_factory=list)
    count: int = 0
    _last: tuple[str, str] | None = None
    _sorted: np.ndarray | None = None

    def keep(self, table: pa.Table) -> pa.Table:
        """The rows of ``table`` (sorted by trace, span, input, position, following the tables
        before it) that are not copies of the row before them."""
        trace, span = table["trace_id"], table["span_id"]
        n = table.num_rows
        repeated = pc.and_(
            pc.equal(trace.slice(1), trace.slice(0, n - 1)), pc.equal(span.slice(1), span.slice(0, n - 1))
        )
        first = self._last == (trace[0].as_py(), span[0].as_py())
        dropped = pa.chunked_array([pa.array([first]), *repeated.chunks], pa.bool_()).combine_chunks()
        self._last = (trace[n - 1].as_py(), span[n - 1].as_py())
        if not pc.any(dropped).as_py():
            return table
        copies = table.filter(dropped)
        self.found.append(packed_positions(copies))
        self.count += copies.num_rows
        return table.filter(pc.invert(dropped))

    def kept_mask(self, table: pa.Table) -> pa.Array | None:
        """Which rows of ``table`` (with positions) are not dropped copies; None: all are kept."""
        if not self.found:
            return None
        if self._sorted is None:
            self._sorted = np.sort(np.concatenate(self.found))
        positions = packed_positions(table)
        at = np.searchsorted(self._sorted, positions).clip(max=len(self._sorted) - 1)
        return pa.array(self._sorted[at] != positions)


def packed_positions(table: pa.Table) -> np.ndarray:
    src = table["_src"].to_numpy().astype(np.int64)
    packed: np.ndarray = (src << ROW_BITS) | table["_row"].to_numpy()
    return packed


class TraceChunks:
    """Rows sorted by trace, handed on in chunks of about ``max_bytes`` that end at a trace
    boundary (a chunk holding a single trace grows until the trace ends)."""

    def __init__(self, max_bytes: int, sink: Callable[[pa.Table], None]) -> None:
        self.max_bytes = max_bytes
        self.sink = sink
        self._pending: list[pa.Table] = []
        self._bytes = 0

    def add(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._bytes += table.nbytes
        if self._bytes >= self.max_bytes:
            rows = pa.concat_tables(self._pending)
            last_trace = rows["trace_id"][rows.num_rows - 1]
            cut = pc.index(rows["trace_id"], last_trace).as_py()
            if cut > 0:
                self.sink(rows.slice(0, cut))
                tail = rows.slice(cut)
                self._pending, self._bytes = [tail], tail.nbytes

    def finish(self) -> None:
        if self._pending:
            self.sink(pa.concat_tables(self._pending))
        self._pending, self._bytes = [], 0


def write_parts(
    by_trace: Iterable[pa.Table], duplicates: Duplicates | None, parts_output: Path, narrow: pa.Schema,
    budget: Budget, tmp_dir: Path, roller: PartsRoller,
) -> None:  # fmt: skip
    """Roll rows sorted by trace up into partials, written to ``parts_output``; drop copies of
    a span (into ``duplicates``) first when given one."""
    by_agent = ExternalSorter(PARTS_ORDER, budget.parts_sort, tmp_dir)

    def roll_up(rows: pa.Table) -> None:
        by_agent.add(_with_order(roller.parts_of(rows.drop_columns(list(POSITION)))))

    chunks = TraceChunks(budget.trace_chunk, roll_up)
    for table in by_trace:
        chunks.add(duplicates.keep(table) if duplicates is not None else table)
    chunks.finish()
    schema = roller.parts_of(narrow.empty_table()).schema
    writer = RowGroupWriter(parts_output, schema, PARTS_ROW_GROUP, budget.row_group)
    try:
        for table in by_agent.sorted():
            writer.write(table.drop_columns(list(PARTS_ORDER[:2])))
    finally:
        writer.close()


def _with_order(parts: pa.Table) -> pa.Table:
    agent = parts["agent"]
    with_flag = parts.append_column("_no_agent", pc.is_null(agent))
    return with_flag.append_column("_agent", pc.fill_null(pc.coalesce(agent, parts["derived_agent"]), ""))


# -- the time sort: the merged file ---------------------------------------------------------------
def write_spans(
    by_time: Iterable[pa.Table], duplicates: Duplicates, output: Path, schema: pa.Schema, budget: Budget
) -> int:
    """Write rows sorted by time, less ``duplicates``, to ``output``; return how many."""
    writer = RowGroupWriter(output, schema, SPAN_ROW_GROUP, budget.row_group)
    try:
        for table in by_time:
            kept = duplicates.kept_mask(table)
            writer.write((table if kept is None else table.filter(kept)).drop_columns(list(POSITION)))
    finally:
        writer.close()
    return writer.rows


# -- writing ----------------------------------------------------------------------------------
class RowGroupWriter:
    """A Parquet file written in row groups of ``max_rows`` rows, fewer when that is more than
    about ``max_bytes`` in memory; fsynced when closed."""

    def __init__(self, path: Path, schema: pa.Schema, max_rows: int, max_bytes: int) -> None:
        self.path = path
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.rows = 0
        self._writer = pq.ParquetWriter(
            path, schema, compression=COMPRESSION, compression_level=COMPRESSION_LEVEL
        )
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._pending_bytes = 0

    def write(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self._pending_bytes += table.nbytes
        while self._pending_rows >= self.max_rows or self._pending_bytes >= self.max_bytes:
            rows = pa.concat_tables(self._pending)
            size = min(self.max_rows, max(1, int(rows.num_rows * self.max_bytes / max(rows.nbytes, 1))))
            self._write_group(rows.slice(0, size))
            rest = rows.slice(size)
            self._pending = [rest] if rest.num_rows else []
            self._pending_rows, self._pending_bytes = rest.num_rows, rest.nbytes

    def close(self) -> None:
        if self._pending_rows:
            self._write_group(pa.concat_tables(self._pending))
        self._pending = []
        self._writer.close()
        with open(self.path, "rb") as handle:
            os.fsync(handle.fileno())

    def _write_group(self, rows: pa.Table) -> None:
        self._writer.write_table(rows, row_group_size=rows.num_rows)
        self.rows += rows.num_rows
