"""The stage between the write-ahead log and the pipelines.

Committed log records queue here; at most every ``flush_interval`` (or sooner once
``max_batch_spans`` wait) they are cut into a batch and handed to the converter, which runs
each pipeline that lists the records' receiver. Up to ``parallelism`` batches convert at once
(one per converter worker process); the log is released only up to the last batch of an
unbroken run of finished ones, so a crash never loses a batch that finished out of order. A
batch that fails is retried with backoff: nothing is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from agentwatch.admission import Admission
from agentwatch.converter import Converter
from agentwatch.model import OtlpRecord
from storage.wal import Committed, WalPosition, WriteAheadLog

log = logging.getLogger("agentwatch.drain")


class Drain:
    def __init__(
        self,
        converter: Converter,
        routes: Sequence[frozenset[str]],
        flush_interval: float,
        max_batch_spans: int,
        parallelism: int = 1,
        admission: Admission | None = None,
    ) -> None:
        self._converter = converter
        self._routes = list(routes)
        """For each pipeline, by index, the receivers it takes records from."""
        self._flush_interval = flush_interval
        self._max_batch_spans = max_batch_spans
        self._cond = threading.Condition()
        self._queue: Committed = []
        self._queued_spans = 0
        self._first_at = 0.0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._admission = admission
        self._slots = threading.Semaphore(parallelism)
        self._workers = ThreadPoolExecutor(parallelism, thread_name_prefix="agentwatch-convert")
        self._in_flight: list[list[object]] = []  # [position, done] in log order
        self.wal: WriteAheadLog | None = None
        self.spans_written = 0
        self.batches_failed = 0
        self.component_counts: dict[str, int] = {}
        """The pipeline components' own counters (``component.Counted``), added up."""

    @property
    def queued_spans(self) -> int:
        return self._queued_spans

    def on_commit(self, committed: Committed) -> None:
        spans = sum(rec.spans for rec, _ in committed)
        with self._cond:
            was_empty = not self._queue
            if was_empty:
                self._first_at = time.monotonic()
            self._queue += committed
            self._queued_spans += spans
            # Wake the drain to start its flush_interval clock, or to flush a full batch now.
            if was_empty or self._queued_spans >= self._max_batch_spans:
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
        while True:
            self._slots.acquire()
            taken = self._take()
            if taken is None:
                self._slots.release()
                return
            batch, spans = taken
            entry: list[object] = [batch[-1][1], False]
            with self._cond:
                self._in_flight.append(entry)
            self._workers.submit(self._deliver, [rec for rec, _ in batch], spans, entry)

    @property
    def in_flight_batches(self) -> int:
        return len(self._in_flight)

    def _deliver(self, records: list[OtlpRecord], spans: int, entry: list[object]) -> None:
        try:
            for index, receivers in enumerate(self._routes):
                mine = [rec for rec in records if rec.receiver in receivers]
                if mine:
                    self._convert_until_done(index, mine)
            self._finished(entry, spans)
            if self._admission is not None:
                self._admission.give_back(sum(len(rec.payload) for rec in records))
        finally:
            self._slots.release()

    def _convert_until_done(self, index: int, records: list[OtlpRecord]) -> None:
        delay = 0.1
        while True:
            try:
                counts = self._converter.convert(index, records)
                with self._cond:
                    for name, value in counts.items():
                        self.component_counts[name] = self.component_counts.get(name, 0) + value
                return
            except Exception:
                # Keep the batch and retry: the log still holds it, so a crash here loses nothing.
                self.batches_failed += 1
                log.exception(
                    "pipeline %d failed on a batch of %d requests; retrying in %.1fs",
                    index,
                    len(records),
                    delay,
                )
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _finished(self, entry: list[object], spans: int) -> None:
        release: WalPosition | None = None
        with self._cond:
            entry[1] = True
            self.spans_written += spans
            while self._in_flight and self._in_flight[0][1]:
                position = self._in_flight.pop(0)[0]
                assert isinstance(position, WalPosition)
                release = position
        if release is not None and self.wal is not None:
            self.wal.release(release)

    def stop(self) -> None:
        """Deliver everything queued, then stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._workers.shutdown(wait=True)
