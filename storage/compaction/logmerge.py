"""Compaction of log partitions: the drain writes a small file per partition per flush, as for
spans; a pass merges a partition's small files into one, deduplicated on ``record_id`` (the
record's digest) and sorted by time.

Log records carry no run partials, so a merge is one DuckDB ``COPY`` on the compaction thread,
held to ``memory_limit_mib`` (DuckDB spills past it into ``<data_dir>/.compaction-tmp``), and
commits as span merges do (``storage.compaction.compactor``): the merged file is written under a
temporary name, a ``compact-<id>.json`` sidecar names the files it replaces, the rename is the
commit, and the inputs are deleted after ``grace``. ``storage.catalog.live_files`` reads the
sidecars, so a reader sees the inputs or the merged file, never both.

Which files merge: those under half of ``target_file_mib``, once a partition has ``min_files``
of them (2 on past days), the oldest first, up to ``target_file_mib`` of input.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb

from storage.layout import fsync_dir

log = logging.getLogger("agentwatch.compaction")

MIB = 1024 * 1024


@dataclass(frozen=True)
class LogMerge:
    partition: Path
    inputs: tuple[Path, ...]
    id: str

    @property
    def output(self) -> Path:
        return self.partition / f"compact-{self.id}.parquet"

    @property
    def output_tmp(self) -> Path:
        return self.partition / f".compact-{self.id}.parquet.tmp"

    @property
    def sidecar(self) -> Path:
        return self.partition / f"compact-{self.id}.json"


def plan_logs(
    partition: Path, replaced: set[str], closed_day: bool, min_files: int, target_mib: float
) -> LogMerge | None:
    """The merge due in one log partition, if any."""
    target = target_mib * MIB
    small = sorted(
        (stat.st_mtime, path.name, path, stat.st_size)
        for path in partition.glob("*.parquet")
        if path.name not in replaced and (stat := path.stat()).st_size < target / 2
    )
    if len(small) < (2 if closed_day else min_files):
        return None
    inputs: list[Path] = []
    size = 0
    for _, _, path, file_size in small:
        if inputs and size + file_size > target:
            break
        inputs.append(path)
        size += file_size
    return LogMerge(partition, tuple(inputs), uuid.uuid4().hex[:12]) if len(inputs) >= 2 else None


def merge_logs(merge: LogMerge, memory_mib: float, spill_dir: Path) -> tuple[int, int]:
    """Write the merged file under its temporary name; (rows read, rows written)."""
    spill_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"SET memory_limit = '{max(int(memory_mib), 32)}MiB'")
        con.execute("SET threads = 1")
        con.execute("SET temp_directory = ?", [str(spill_dir)])
        listed = [str(p) for p in merge.inputs]
        source = "read_parquet($files, union_by_name = true, hive_partitioning = false)"
        rows_in = con.execute(f"SELECT count(*) FROM {source}", {"files": listed}).fetchone()
        con.execute(
            f"""COPY (
                SELECT * FROM {source}
                QUALIFY row_number() OVER (PARTITION BY record_id ORDER BY time) = 1
                ORDER BY time
            ) TO '{_quoted(merge.output_tmp)}' (FORMAT parquet, COMPRESSION zstd)""",
            {"files": listed},
        )
        rows_out = con.execute(
            "SELECT count(*) FROM read_parquet($file)", {"file": str(merge.output_tmp)}
        ).fetchone()
    finally:
        con.close()
    with open(merge.output_tmp, "rb") as handle:
        os.fsync(handle.fileno())
    return (rows_in[0] if rows_in else 0), (rows_out[0] if rows_out else 0)


def commit_logs(merge: LogMerge) -> None:
    """Make the merged file live (the rename is the commit; its sidecar is already written)."""
    try:
        os.replace(merge.output_tmp, merge.output)
    except OSError:
        merge.sidecar.unlink(missing_ok=True)
        raise
    fsync_dir(merge.partition)


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
