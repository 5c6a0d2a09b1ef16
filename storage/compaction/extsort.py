"""Sorting more Arrow rows than fit in memory: sorted runs in temporary files, merged k at a time.

``ExternalSorter`` holds at most about a third of its ``budget`` of added rows; past it, they are
sorted and written to a run file (an Arrow IPC file, lz4, in record batches of
``budget / 3 / FAN_IN`` bytes). ``sorted()`` then merges the runs reading one batch of each at a
time, so the rows in memory stay under the budget whatever the total: a third for the batches
being merged, a third for the output step and its sort (a sort copies the rows it orders). More
runs than ``FAN_IN`` are first merged in groups into longer runs. Rows that never filled a run
are sorted in memory and nothing touches the disk (the common case: most merges are small).

Sort keys are compared as Python values, so they must not be null.
"""

from __future__ import annotations

import itertools
import shutil
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

FAN_IN = 16
"""Runs merged at once; more are merged in groups first."""
MIN_BLOCK_BYTES = 64 * 1024
RUN_COMPRESSION = "lz4"

Key = tuple[Any, ...]


class ExternalSorter:
    def __init__(self, keys: Sequence[str], budget: int, tmp_dir: Path) -> None:
        self.keys = list(keys)
        self.order = [(k, "ascending") for k in self.keys]
        self.run_bytes = max(budget // 3, FAN_IN * MIN_BLOCK_BYTES)
        self.block_bytes = self.run_bytes // FAN_IN
        self.tmp_dir = tmp_dir / f"sort-{uuid.uuid4().hex[:12]}"
        self.runs_written = 0
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._runs: list[Path] = []

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self._buffer.append(table)
        self._buffered += table.nbytes
        if self._buffered >= self.run_bytes:
            self._runs.append(self._write_run([self._sorted_buffer()]))

    def sorted(self) -> Iterator[pa.Table]:
        """All rows added, in key order, in tables of at most about ``block_bytes`` (in memory) or
        one merge step (from runs). The sorter is spent afterwards; its run files are deleted."""
        try:
            if not self._runs:
                if self._buffer:
                    yield from blocks(self._sorted_buffer(), self.block_bytes)
                return
            if self._buffer:
                self._runs.append(self._write_run([self._sorted_buffer()]))
            runs = self._runs
            while len(runs) > FAN_IN:
                runs = [self._write_run(self._merge(group)) for group in _groups(runs, FAN_IN)]
            yield from self._merge(runs)
        finally:
            self._buffer, self._runs = [], []
            shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def _sorted_buffer(self) -> pa.Table:
        table = pa.concat_tables(self._buffer)
        self._buffer, self._buffered = [], 0
        return table.sort_by(self.order)

    def _write_run(self, tables: Iterable[pa.Table]) -> Path:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        path = self.tmp_dir / f"run-{self.runs_written:05d}.arrow"
        self.runs_written += 1
        options = ipc.IpcWriteOptions(compression=RUN_COMPRESSION)
        writer: ipc.RecordBatchFileWriter | None = None
        with pa.OSFile(str(path), "wb") as sink:
            try:
                for table in tables:
                    writer = writer or ipc.new_file(sink, table.schema, options=options)
                    for block in blocks(table, self.block_bytes):
                        writer.write_table(block)
            finally:
                if writer is not None:
                    writer.close()
        return path

    def _merge(self, runs: list[Path]) -> Iterator[pa.Table]:
        """The rows of sorted ``runs`` in order: each step takes, from every run's current batch,
        the rows up to the smallest last key among them (no row still to be read can sort before
        those), and orders them."""
        cursors = [_Cursor(run, self.keys) for run in runs]
        try:
            while live := [c for c in cursors if c.ready()]:
                bound = min(c.last_key() for c in live)
                pieces = [c.take_through(bound) for c in live]
                yield pa.concat_tables(pieces).sort_by(self.order)
        finally:
            for cursor in cursors:
                cursor.close()
            for run in runs:
                run.unlink(missing_ok=True)


class _Cursor:
    """A sorted run read one record batch at a time.

    Keys are compared as tuples of Python values, found by binary search. When the first key is
    a number or a time, its column is viewed as a NumPy array (no copy) and searched there; only
    rows tied on it are then compared on the other keys."""

    def __init__(self, run: Path, keys: list[str]) -> None:
        self.source = pa.OSFile(str(run))  # read, not mapped: only the current batch is in memory
        self.reader = ipc.open_file(self.source)
        self.keys = keys
        self.next_batch = 0
        self.table: pa.Table | None = None
        self.first: np.ndarray | None = None
        self.pos = 0

    def ready(self) -> bool:
        """Whether rows are left, loading the next batch when the current one is used up."""
        while self.table is None or self.pos >= self.table.num_rows:
            if self.next_batch >= self.reader.num_record_batches:
                self.table = None
                return False
            self.table = pa.Table.from_batches([self.reader.get_batch(self.next_batch)])
            self.first = _searchable(self.table.column(self.keys[0]))
            self.next_batch += 1
            self.pos = 0
        return True

    def key(self, row: int) -> Key:
        assert self.table is not None
        if self.first is None:
            return tuple(self.table.column(k)[row].as_py() for k in self.keys)
        return (self.first[row], *(self.table.column(k)[row].as_py() for k in self.keys[1:]))

    def last_key(self) -> Key:
        assert self.table is not None
        return self.key(self.table.num_rows - 1)

    def take_through(self, bound: Key) -> pa.Table:
        """The rows from the current position whose key is at most ``bound`` (a prefix)."""
        assert self.table is not None
        low, high = self.pos, self.table.num_rows
        if self.first is not None:
            low += int(np.searchsorted(self.first[self.pos :], bound[0], "left"))
            high = self.pos + int(np.searchsorted(self.first[self.pos :], bound[0], "right"))
        while low < high:  # among the rows tied on the first key: the first one past the bound
            middle = (low + high) // 2
            if self.key(middle) <= bound:
                low = middle + 1
            else:
                high = middle
        piece = self.table.slice(self.pos, low - self.pos)
        self.pos = low
        return piece

    def close(self) -> None:
        self.table = None
        self.source.close()


def _searchable(column: pa.ChunkedArray) -> np.ndarray | None:
    """``column`` as a NumPy array when that costs no copy (numbers, times), else None."""
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_timestamp(kind):
        values: np.ndarray = column.combine_chunks().to_numpy()
        return values
    return None


def blocks(table: pa.Table, max_bytes: int) -> Iterator[pa.Table]:
    """``table`` in slices of about ``max_bytes`` or less (at least one row each)."""
    if table.num_rows == 0:
        return
    rows = max(1, int(table.num_rows * max_bytes / max(table.nbytes, 1)))
    for start in range(0, table.num_rows, rows):
        yield table.slice(start, rows)


def _groups(runs: list[Path], size: int) -> Iterator[list[Path]]:
    iterator = iter(runs)
    while group := list(itertools.islice(iterator, size)):
        yield group
