"""The stage between the write-ahead log and the pipelines.

Committed log records queue here; at most every ``flush_interval`` (or sooner once
``max_batch_spans`` wait) they go through each pipeline that lists their receiver, in one
batch, and only after every pipeline has consumed the batch (its exporters have committed
Parquet) is the log released. A pipeline that fails is retried with backoff: nothing is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from agentwatch.model import OtlpBatch, OtlpRecord
from agentwatch.pipeline import Pipeline
from storage.wal import Committed, WalPosition, WriteAheadLog

log = logging.getLogger("agentwatch.drain")


def _span_count(record: OtlpRecord) -> int:
    return sum(len(ss.spans) for rs in record.request.resource_spans for ss in rs.scope_spans)


class Drain:
    def __init__(self, pipelines: Sequence[Pipeline], flush_interval: float, max_batch_spans: int) -> None:
        self._pipelines = list(pipelines)
        self._flush_interval = flush_interval
        self._max_batch_spans = max_batch_spans
        self._cond = threading.Condition()
        self._queue: Committed = []
        self._queued_spans = 0
        self._first_at = 0.0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.wal: WriteAheadLog | None = None
        self.spans_written = 0
        self.batches_failed = 0

    @property
    def queued_spans(self) -> int:
        return self._queued_spans

    def on_commit(self, committed: Committed) -> None:
        spans = sum(_span_count(rec) for rec, _ in committed)
        with self._cond:
            if not self._queue:
                self._first_at = time.monotonic()
            self._queue += committed
            self._queued_spans += spans
            if self._queued_spans >= self._max_batch_spans:
                self._cond.notify()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="agentwatch-drain", daemon=True)
        self._thread.start()

    def _take(self) -> tuple[Committed, int] | None:
        with self._cond:
            while True:
                if self._queue:
                    due = self._first_at + self._flush_interval
                    now = time.monotonic()
                    if self._stopping or self._queued_spans >= self._max_batch_spans or now >= due:
                        batch, spans = self._queue, self._queued_spans
                        self._queue, self._queued_spans = [], 0
                        return batch, spans
                    self._cond.wait(due - now)
                elif self._stopping:
                    return None
                else:
                    self._cond.wait()

    def _run(self) -> None:
        while (taken := self._take()) is not None:
            batch, spans = taken
            self._deliver([rec for rec, _ in batch], batch[-1][1])
            self.spans_written += spans

    def _deliver(self, records: list[OtlpRecord], upto: WalPosition) -> None:
        delay = 0.1
        for pipeline in self._pipelines:
            mine = [rec for rec in records if rec.receiver in pipeline.receivers]
            if not mine:
                continue
            while True:
                try:
                    pipeline.consume(OtlpBatch(mine))
                    break
                except Exception:
                    # Keep the batch and retry: the log still holds it, so a crash here loses nothing.
                    self.batches_failed += 1
                    log.exception("pipeline %s failed on a batch of %d requests; retrying in %.1fs",
                                  pipeline.id, len(mine), delay)
                    time.sleep(delay)
                    delay = min(delay * 2, 10.0)
        if self.wal is not None:
            self.wal.release(upto)

    def stop(self) -> None:
        """Deliver everything queued, then stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
