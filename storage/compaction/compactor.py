"""Compaction and retention of span (and log) partitions: tiered, in bounded memory, safe for readers.

The drain writes one small file per partition per flush; compaction merges them (deduplicated on
``trace_id, span_id``, sorted by time: ``storage.compaction.spanmerge``) so a day of steady traffic leaves a
handful of files, not thousands.

**Tiers.** A partition's files under half of ``target_file_mib`` are grouped by size: the first
tier holds the files under ``first_tier_mib``, each tier above files up to ``min_files`` times
larger than the one below. Once a tier has ``min_files`` files (2 on past days) they are merged,
oldest first and up to ``target_file_mib`` of input, into one file about ``min_files`` times
larger, which lands in a tier above. So each span is rewritten about once per tier, a number
that grows with the log of the day's size, and never with the whole day each pass. A pass
merges until no tier is full; files of half the target or more are left alone.

**Memory.** Merges run in a child process (``storage.compaction.worker``) that holds the rows in
memory to ``memory_limit_mib`` (its resident memory peaks at about that plus 150-200 MiB of
interpreter, Arrow and DuckDB, whatever the merge's size) and sorts the rest in temporary files
under ``<data_dir>/.compaction-tmp`` (lz4 Arrow: about three times the merge's input on disk, for
a merge that does not fit). If it dies, the server carries on and the next pass retries: nothing
the child does is visible until the server commits it. ``stop`` kills it. A merge that raises (an
unreadable input) leaves its partition alone for the rest of the pass; the others go on.

**Readers.** Files can't be swapped atomically as a set, so a merge commits in an order that
keeps every reader exact:

1. the worker writes ``.compact-<id>.parquet.tmp`` (and the partials' likewise) and fsyncs them;
2. the server writes ``compact-<id>.json`` listing the files it replaces (atomically);
3. it renames the partials into place, then the merged file: this is the commit;
4. after ``grace`` (queries already running may still read them), it deletes the inputs (and
   their partials), then the sidecar.

``storage.catalog.live_files`` reads the sidecars: a file named by the sidecar of a committed
merge is no longer live, so before step 3 a reader sees the inputs, after it the merged file,
and never both. At start, a sidecar whose merged file never appeared (a crash between 2 and 3)
is deleted with the temporaries, and committed merges are finished. Retention removes whole day
partitions older than ``retention`` (of spans, run partials and logs), by renaming the directory
out of sight first. Log partitions are merged too, more simply (``storage.compaction.logmerge``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa

from core.configmodel import STRICT
from core.periodic import Periodic
from core.units import Duration
from storage.catalog import live_files
from storage.compaction.logmerge import commit_logs, merge_logs, plan_logs
from storage.compaction.spanmerge import MergeError
from storage.compaction.worker import (
    InlineWorker,
    Job,
    MergeTask,
    PartsTask,
    TaskResult,
    Worker,
    WorkerDied,
    WorkerProcess,
)
from storage.layout import LOGS, SPANS, fsync_dir, table_dir
from storage.runparts import RUN_PARTS, parts_path

log = logging.getLogger("agentwatch.compaction")
MIB = 1024 * 1024
TMP_DIR = ".compaction-tmp"
"""Under the data directory: the worker's sort runs, one directory per job."""


@dataclass(frozen=True)
class CompactionConfig:
    __pydantic_config__ = STRICT
    interval: Duration = 60.0
    """How often partitions are checked."""
    min_files: int = 8
    """A tier of a partition is merged once it has this many files (past days: from 2); each
    tier's files are up to this many times larger than the tier below's."""
    target_file_mib: float = 128.0
    """Files at least half this size are left alone; merges stop adding inputs past it."""
    first_tier_mib: float = 1.0
    """Files smaller than this make up the first tier."""
    memory_limit_mib: float = 256.0
    """Rows a merge holds in memory (the worker process adds 150-200 MiB of interpreter and
    libraries); past it, they are sorted in temporary files under the data directory."""
    worker: Literal["process", "inline"] = "process"
    """``process``: merges run in a child process, whose memory cannot take the receivers down
    and which ``stop`` kills at once; ``inline``: on the compaction thread (tests)."""
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
        if self.first_tier_mib <= 0:
            problems.append("first_tier_mib: must be positive")
        if self.memory_limit_mib < 32:
            problems.append("memory_limit_mib: must be at least 32")
        if self.retention and self.retention < 86400:
            problems.append("retention: must be at least 1d (partitions are days), or 0 to keep everything")
        return problems


@dataclass
class CompactionStats:
    merges: int = 0
    log_merges: int = 0
    files_merged: int = 0
    duplicates_removed: int = 0
    partitions_expired: int = 0
    parts_backfilled: int = 0
    tasks_failed: int = 0
    """Merges and backfills that raised (an unreadable input...); the others went on."""
    worker_failures: int = 0
    """Jobs whose worker process died before finishing (their uncommitted work is redone)."""
    peak_worker_rss_mib: float = 0.0
    """The largest peak resident memory a worker reported."""
    pending: list[tuple[float, Path]] = field(default_factory=list)


def tier(size: int, first_tier: float, factor: int) -> int:
    """0 for files under ``first_tier`` bytes, then one more each time the size is ``factor``
    times larger."""
    level, bound = 0, first_tier
    while size >= bound:
        level += 1
        bound *= factor
    return level


@dataclass(frozen=True)
class PlannedMerge:
    partition: Path
    inputs: tuple[Path, ...]
    parts_dir: Path
    tier: int
    name: str = field(default_factory=lambda: f"compact-{uuid.uuid4().hex}")

    @property
    def output_tmp(self) -> Path:
        return self.partition / f".{self.name}.parquet.tmp"

    @property
    def output(self) -> Path:
        return self.partition / f"{self.name}.parquet"

    @property
    def sidecar(self) -> Path:
        return self.partition / f"{self.name}.json"

    @property
    def parts_tmp(self) -> Path:
        return self.parts_dir / f".{self.name}.parquet.tmp"

    @property
    def parts(self) -> Path:
        return self.parts_dir / f"{self.name}.parquet"


def _sidecar_inputs(sidecar: Path) -> list[str]:
    try:
        names = json.loads(sidecar.read_text())["replaces"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [str(n) for n in names]


def committed_replaced(partition: Path) -> set[str]:
    """Names of the files that committed merges of ``partition`` replaced."""
    return {
        name
        for sidecar in partition.glob("compact-*.json")
        if sidecar.with_suffix(".parquet").exists()
        for name in _sidecar_inputs(sidecar)
    }


class Compactor:
    def __init__(self, config: CompactionConfig, data_dir: Path) -> None:
        self.config = config
        self.data_dir = data_dir
        self.root = table_dir(data_dir, SPANS)
        self.logs_root = table_dir(data_dir, LOGS)
        self.stats = CompactionStats()
        self.worker: Worker = WorkerProcess() if config.worker == "process" else InlineWorker()
        self._stopping = threading.Event()
        self._loop: Periodic | None = None

    # -- one pass --------------------------------------------------------------------------
    def run_once(self, now: float | None = None) -> CompactionStats:
        now = time.time() if now is None else now
        self._finish_pending(now)
        if self.config.retention:
            self._expire(now)
        today = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
        self._compact_logs(today, now)
        if not self.root.is_dir():
            return self.stats
        failed: set[Path] = set()  # partitions left alone for the rest of this pass
        while not self._stopping.is_set() and (merges := self.plan(today, failed)):
            if not self._merge(merges, now, failed):
                return self.stats  # the worker died, or was stopped: the next pass goes on
        if not self._stopping.is_set():
            self.sync_parts()
        return self.stats

    def plan(self, today: str, skip: set[Path] | None = None) -> list[PlannedMerge]:
        """The merges due now: one per full tier of each partition (their inputs are disjoint)."""
        merges: list[PlannedMerge] = []
        for partition in sorted(self.root.glob("tenant=*/date=*")):
            if partition not in (skip or set()):
                merges += self._plan_partition(partition, partition.name != f"date={today}")
        return merges

    def _plan_partition(self, partition: Path, closed_day: bool) -> list[PlannedMerge]:
        config = self.config
        target = config.target_file_mib * MIB
        replaced = committed_replaced(partition)
        tiers: dict[int, list[tuple[float, str, Path, int]]] = {}
        for path in partition.glob("*.parquet"):
            stat = path.stat()
            if path.name not in replaced and stat.st_size < target / 2:
                level = tier(stat.st_size, config.first_tier_mib * MIB, config.min_files)
                tiers.setdefault(level, []).append((stat.st_mtime, path.name, path, stat.st_size))
        parts_dir = parts_path(self.data_dir, partition / "x.parquet").parent
        merges = []
        for level, files in sorted(tiers.items()):
            if len(files) >= (2 if closed_day else config.min_files):
                inputs = _up_to(((path, size) for _, _, path, size in sorted(files)), target)
                merges.append(PlannedMerge(partition, inputs, parts_dir, level))
        return merges

    def _merge(self, merges: list[PlannedMerge], now: float, failed: set[Path]) -> bool:
        """Run ``merges`` in the worker, committing each as it is done; whether the worker got
        through them (a merge that raised adds its partition to ``failed``)."""
        tasks = tuple(
            MergeTask(tuple(str(p) for p in m.inputs), str(m.output_tmp), str(m.parts_tmp)) for m in merges
        )
        try:
            return self._run_job(
                tasks,
                lambda result: self._commit(merges[result.task], result, now),
                lambda result: failed.add(merges[result.task].partition),
            )
        finally:
            for merge in merges:  # those not committed (a committed one's temporaries were renamed)
                merge.output_tmp.unlink(missing_ok=True)
                merge.parts_tmp.unlink(missing_ok=True)

    def _run_job(
        self,
        tasks: tuple[MergeTask | PartsTask, ...],
        on_done: Callable[[TaskResult], None],
        on_failed: Callable[[TaskResult], None] | None = None,
    ) -> bool:
        """Run ``tasks`` in the worker, handing each result on as it comes; whether the worker
        got through them all (it did not die, and was not stopped)."""
        tmp_dir = self.data_dir / TMP_DIR / uuid.uuid4().hex[:12]
        job = Job(str(self.data_dir), str(tmp_dir), self.config.memory_limit_mib, tasks, os.getpid())
        try:
            for result in self.worker.run(job):
                self.stats.peak_worker_rss_mib = max(self.stats.peak_worker_rss_mib, result.peak_rss_mib)
                if result.error is None:
                    on_done(result)
                else:
                    self.stats.tasks_failed += 1
                    log.error("%s failed (retried next pass): %s", tasks[result.task], result.error)
                    if on_failed is not None:
                        on_failed(result)
        except WorkerDied as exc:
            self.stats.worker_failures += 1
            log.error("%s; what it had not committed is redone by the next pass", exc)
            return False
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        return not self._stopping.is_set()

    def _commit(self, merge: PlannedMerge, result: TaskResult, now: float) -> None:
        _write_sidecar(merge.sidecar, [p.name for p in merge.inputs])
        try:
            os.replace(merge.parts_tmp, merge.parts)  # unread until the merged file is live
            os.replace(merge.output_tmp, merge.output)  # the commit
        except OSError:
            merge.sidecar.unlink(missing_ok=True)
            raise
        fsync_dir(merge.parts_dir)
        fsync_dir(merge.partition)
        duplicates = result.rows_in - result.rows_out
        self.stats.merges += 1
        self.stats.files_merged += len(merge.inputs)
        self.stats.duplicates_removed += duplicates
        self.stats.pending.append((now + self.config.grace, merge.sidecar))
        log.info(
            "merged %d files (tier %d) of %s into %s: %d spans, %d duplicates dropped",
            len(merge.inputs),
            merge.tier,
            merge.partition.relative_to(self.root),
            merge.output.name,
            result.rows_out,
            duplicates,
        )

    def sync_parts(self) -> None:
        """Backfill missing run partials of live span files; delete partials of vanished files."""
        live = [Path(name) for name in live_files(self.data_dir, SPANS)]
        missing = [f for f in live if not parts_path(self.data_dir, f).exists()]
        if missing:
            self._backfill(missing)
        parts_root = table_dir(self.data_dir, RUN_PARTS)
        for part in parts_root.glob("tenant=*/date=*/*.parquet") if parts_root.is_dir() else []:
            if not (self.root / part.relative_to(parts_root)).exists():
                part.unlink(missing_ok=True)

    def _backfill(self, span_files: list[Path]) -> None:
        targets = [parts_path(self.data_dir, f) for f in span_files]
        temporaries = [t.with_name(f".{t.name}.tmp") for t in targets]
        tasks = tuple(PartsTask(str(f), str(t)) for f, t in zip(span_files, temporaries, strict=True))

        def commit(result: TaskResult) -> None:
            os.replace(temporaries[result.task], targets[result.task])
            fsync_dir(targets[result.task].parent)
            self.stats.parts_backfilled += 1

        try:
            self._run_job(tasks, commit)
        finally:
            for temporary in temporaries:
                temporary.unlink(missing_ok=True)

    def _compact_logs(self, today: str, now: float) -> None:
        """Merge each log partition's small files (``storage.compaction.logmerge``)."""
        for partition in sorted(self.logs_root.glob("tenant=*/date=*")) if self.logs_root.is_dir() else []:
            if self._stopping.is_set():
                return
            closed = partition.name != f"date={today}"
            config = self.config
            merge = plan_logs(
                partition, committed_replaced(partition), closed, config.min_files, config.target_file_mib
            )
            if merge is None:
                continue
            try:
                rows_in, rows_out = merge_logs(
                    merge, config.memory_limit_mib, self.data_dir / TMP_DIR / "logs"
                )
                _write_sidecar(merge.sidecar, [p.name for p in merge.inputs])
                commit_logs(merge)
            except (OSError, duckdb.Error) as exc:
                merge.output_tmp.unlink(missing_ok=True)
                self.stats.tasks_failed += 1
                log.error("merging log files of %s failed: %s", partition.relative_to(self.data_dir), exc)
                continue
            self.stats.log_merges += 1
            self.stats.duplicates_removed += rows_in - rows_out
            self.stats.pending.append((now + config.grace, merge.sidecar))
            log.info(
                "merged %d log files of %s into %s: %d records, %d duplicates dropped",
                len(merge.inputs),
                partition.relative_to(self.data_dir),
                merge.output.name,
                rows_out,
                rows_in - rows_out,
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
            *self.logs_root.glob("tenant=*/date=*"),
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
        shutil.rmtree(self.data_dir / TMP_DIR, ignore_errors=True)
        for directory in (self.root, table_dir(self.data_dir, RUN_PARTS), self.logs_root):
            for temporary in directory.glob("tenant=*/date=*/.compact-*.tmp") if directory.is_dir() else []:
                temporary.unlink(missing_ok=True)
        for root in (self.root, self.logs_root):
            for sidecar in root.glob("tenant=*/date=*/compact-*.json") if root.is_dir() else []:
                if sidecar.with_suffix(".parquet").exists():
                    self.stats.pending.append((time.time() + self.config.grace, sidecar))
                else:
                    sidecar.unlink(missing_ok=True)

    def start(self) -> None:
        self.recover()
        retryable = (OSError, pa.ArrowException, duckdb.Error, MergeError)
        self._loop = Periodic(
            "agentwatch-compaction", self.config.interval, self.run_once, retryable, _failed
        )
        self._loop.start()

    def stop(self) -> None:
        """Kill a running merge (it commits nothing), wait for the pass to return, and run no
        more (an ``inline`` merge is waited for)."""
        self._stopping.set()
        self.worker.close()
        if self._loop is not None:
            self._loop.stop()
            self._loop = None


def _up_to(files: Iterable[tuple[Path, int]], target: float) -> tuple[Path, ...]:
    """The files in order until their sizes add up to ``target``."""
    inputs, size = [], 0
    for path, file_size in files:
        inputs.append(path)
        size += file_size
        if size >= target:
            break
    return tuple(inputs)


def _write_sidecar(sidecar: Path, replaces: list[str]) -> None:
    tmp = sidecar.with_name(f".{sidecar.name}.tmp")
    tmp.write_text(json.dumps({"replaces": replaces}))
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, sidecar)


def _failed(exc: Exception) -> None:
    # A failed merge committed nothing (the rename is the commit); try again next time.
    log.error("compaction pass failed: %s", exc)


def finish_merge(sidecar: Path, data_dir: Path) -> None:
    spans = sidecar.is_relative_to(table_dir(data_dir, SPANS))  # log files have no partials
    for name in _sidecar_inputs(sidecar):
        (sidecar.parent / name).unlink(missing_ok=True)
        if spans:
            parts_path(data_dir, sidecar.parent / name).unlink(missing_ok=True)
    sidecar.unlink(missing_ok=True)
