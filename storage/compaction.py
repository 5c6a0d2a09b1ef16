"""Compaction and retention of span partitions, safe for readers querying at the same time.

The drain writes one small file per partition per flush; compaction merges a partition's small
files into one (deduplicated on ``trace_id, span_id``, sorted by time) so a day of steady
traffic leaves a handful of files, not thousands. Files can't be swapped atomically as a set,
so a merge commits in an order that keeps every reader exact:

1. write ``compact-<id>.parquet`` under a temporary name and fsync it;
2. write ``compact-<id>.json`` listing the files it replaces (atomically);
3. rename the merged file into place: this is the commit;
4. after ``grace`` (queries already running may still read them), delete the inputs, then the
   sidecar.

``storage.catalog.live_files`` reads the sidecars: a file named by the sidecar of a committed
merge is no longer live, so before step 3 a reader sees the inputs, after it the merged file,
and never both. Retention removes whole day partitions older than ``retention``, by renaming
the directory out of sight first.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from agentwatch.configmodel import STRICT
from agentwatch.periodic import Periodic
from agentwatch.units import Duration
from storage.catalog import live_files
from storage.layout import SPANS, fsync_dir, table_dir
from storage.runparts import RUN_PARTS, PartsWriter, parts_path

log = logging.getLogger("agentwatch.compaction")
MIB = 1024 * 1024


@dataclass(frozen=True)
class CompactionConfig:
    __pydantic_config__ = STRICT
    interval: Duration = 60.0
    """How often partitions are checked."""
    min_files: int = 8
    """A partition is merged once it has this many small files (older days: from 2)."""
    target_file_mib: float = 128.0
    """Files at least half this size are left alone; merges stop adding inputs past it."""
    grace: Duration = 60.0
    """Replaced files are deleted this long after the merge commits (queries still running)."""
    retention: Duration = 0.0
    """Day partitions older than this are deleted; 0 keeps everything."""

    def validate(self) -> list[str]:
        problems = []
        if self.min_files < 2:
            problems.append("min_files: must be at least 2")
        if self.target_file_mib <= 0:
            problems.append("target_file_mib: must be positive")
        if self.retention and self.retention < 86400:
            problems.append("retention: must be at least 1d (partitions are days), or 0 to keep everything")
        return problems


@dataclass
class CompactionStats:
    merges: int = 0
    files_merged: int = 0
    duplicates_removed: int = 0
    partitions_expired: int = 0
    parts_backfilled: int = 0
    pending: list[tuple[float, Path]] = field(default_factory=list)


def _sidecar_inputs(sidecar: Path) -> list[str]:
    try:
        names = json.loads(sidecar.read_text())["replaces"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [str(n) for n in names]


def merge_files(partition: Path, inputs: list[Path], parts: PartsWriter) -> tuple[Path, int]:
    """Commit one merged file replacing ``inputs``; return it and how many duplicates it dropped."""
    table = pa.concat_tables([pq.read_table(p) for p in inputs], promote_options="default")
    import polars as pl  # here, not at the top: every CLI command imports this module's config

    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    unique = frame.unique(subset=["trace_id", "span_id"], keep="first", maintain_order=True).sort(
        "start_time"
    )
    name = f"compact-{uuid.uuid4().hex}"
    tmp = partition / f".{name}.parquet.tmp"
    # Back to the inputs' exact types (polars hands strings back as large_string).
    merged = unique.to_arrow().cast(table.schema)
    pq.write_table(merged, tmp, compression="zstd", compression_level=3)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    sidecar = partition / f"{name}.json"
    sidecar_tmp = partition / f".{name}.json.tmp"
    sidecar_tmp.write_text(json.dumps({"replaces": [p.name for p in inputs]}))
    with open(sidecar_tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(sidecar_tmp, sidecar)
    final = partition / f"{name}.parquet"
    parts.write(merged, final)  # unread until the merged file is live
    os.replace(tmp, final)  # the commit
    fsync_dir(partition)
    return final, frame.height - unique.height


class Compactor:
    def __init__(self, config: CompactionConfig, data_dir: Path) -> None:
        self.config = config
        self.data_dir = data_dir
        self.root = table_dir(data_dir, SPANS)
        self.parts = PartsWriter(data_dir)
        self.stats = CompactionStats()
        self._loop: Periodic | None = None

    # -- one pass --------------------------------------------------------------------------
    def run_once(self, now: float | None = None) -> CompactionStats:
        now = time.time() if now is None else now
        self._finish_pending(now)
        if not self.root.is_dir():
            return self.stats
        if self.config.retention:
            self._expire(now)
        today = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
        for partition in sorted(self.root.glob("tenant=*/date=*")):
            self._compact_partition(partition, partition.name != f"date={today}", now)
        self.sync_parts()
        return self.stats

    def sync_parts(self) -> None:
        """Backfill missing run partials of live span files; delete partials of vanished files."""
        live = {Path(name) for name in live_files(self.data_dir, SPANS)}
        for span_file in sorted(live):
            if not parts_path(self.data_dir, span_file).exists():
                self.parts.write(pq.read_table(span_file, partitioning=None), span_file)
                self.stats.parts_backfilled += 1
        parts_root = table_dir(self.data_dir, RUN_PARTS)
        for part in parts_root.glob("tenant=*/date=*/*.parquet") if parts_root.is_dir() else []:
            if not (self.root / part.relative_to(parts_root)).exists():
                part.unlink(missing_ok=True)

    def _compact_partition(self, partition: Path, closed_day: bool, now: float) -> None:
        replaced = {name for sidecar in partition.glob("compact-*.json") for name in _sidecar_inputs(sidecar)}
        half_target = self.config.target_file_mib * MIB / 2
        small = sorted(
            (
                p
                for p in partition.glob("*.parquet")
                if p.name not in replaced and p.stat().st_size < half_target
            ),
            key=lambda p: p.stat().st_mtime,
        )
        if len(small) < (2 if closed_day else self.config.min_files):
            return
        inputs, size = [], 0
        for path in small:
            inputs.append(path)
            size += path.stat().st_size
            if size >= self.config.target_file_mib * MIB:
                break
        merged, duplicates = merge_files(partition, inputs, self.parts)
        self.stats.merges += 1
        self.stats.files_merged += len(inputs)
        self.stats.duplicates_removed += duplicates
        self.stats.pending.append((now + self.config.grace, merged.with_suffix(".json")))
        log.info(
            "merged %d files of %s into %s (%d duplicates dropped)",
            len(inputs),
            partition.relative_to(self.root),
            merged.name,
            duplicates,
        )

    def _finish_pending(self, now: float) -> None:
        """Delete inputs of merges whose grace has passed (and of merges left by an earlier run)."""
        due = [s for t, s in self.stats.pending if t <= now]
        self.stats.pending = [(t, s) for t, s in self.stats.pending if t > now]
        for sidecar in due:
            finish_merge(sidecar, self.data_dir)

    def _expire(self, now: float) -> None:
        cutoff = (datetime.fromtimestamp(now, UTC) - timedelta(seconds=self.config.retention)).strftime(
            "%Y-%m-%d"
        )
        partitions = [
            *self.root.glob("tenant=*/date=*"),
            *table_dir(self.data_dir, RUN_PARTS).glob("tenant=*/date=*"),
        ]
        for partition in partitions:
            if partition.name.removeprefix("date=") < cutoff:
                hidden = partition.parent / f".expired-{partition.name}-{uuid.uuid4().hex[:8]}"
                os.replace(partition, hidden)  # out of every reader's sight at once
                shutil.rmtree(hidden, ignore_errors=True)
                self.stats.partitions_expired += partition.is_relative_to(self.root)  # spans only
                log.info("retention: deleted %s", partition.relative_to(self.data_dir))

    # -- background ------------------------------------------------------------------------
    def recover(self) -> None:
        """At start: finish merges an earlier process committed, drop ones it never committed."""
        for sidecar in self.root.glob("tenant=*/date=*/compact-*.json") if self.root.is_dir() else []:
            if sidecar.with_suffix(".parquet").exists():
                self.stats.pending.append((time.time() + self.config.grace, sidecar))
            else:
                sidecar.unlink(missing_ok=True)

    def start(self) -> None:
        from polars.exceptions import PolarsError  # not at the top: see _merge

        self.recover()
        retryable = (OSError, pa.ArrowException, PolarsError)
        self._loop = Periodic(
            "agentwatch-compaction", self.config.interval, self.run_once, retryable, _failed
        )
        self._loop.start()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.stop()


def _failed(exc: Exception) -> None:
    # A failed merge committed nothing (the rename is the commit); try again next time.
    log.error("compaction pass failed: %s", exc)


def finish_merge(sidecar: Path, data_dir: Path) -> None:
    for name in _sidecar_inputs(sidecar):
        (sidecar.parent / name).unlink(missing_ok=True)
        parts_path(data_dir, sidecar.parent / name).unlink(missing_ok=True)
    sidecar.unlink(missing_ok=True)
