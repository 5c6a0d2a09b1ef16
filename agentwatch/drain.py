"""The stage between the write-ahead log and the pipelines.

Committed log records queue here; at most every ``flush_interval`` (or sooner once
``max_batch_spans`` wait) they are cut into a batch and handed to the converter, which runs
each pipeline that lists the records' receiver. Up to ``parallelism`` batches convert at once
(one per converter worker process); the log is released only up to the last batch of an
unbroken run of finished ones, so a crash never loses a batch that finished out of order. A
batch that fails is retried with backoff when the failure is not the data's (a full disk), and
otherwise bisected so that one bad record never holds up the rest (``agentwatch.isolation``):
what still fails alone is quarantined in the dead-letter file (``storage.deadletter``). Nothing
is dropped and nothing is stuck.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from agentwatch.converter import Converter
from agentwatch.isolation import IsolationStats, Isolator
from core import supervision
from core.admission import Admission
from core.model import OtlpRecord
from storage.deadletter import DeadLetters
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
        dead_letters: DeadLetters | None = None,
        pipeline_names: Sequence[str] = (),
        max_batch_bytes: int = 32 << 20,
    ) -> None:
        self._converter = converter
        self._routes = list(routes)
        """For each pipeline, by index, the receivers it takes records from."""
        self._names = list(pipeline_names) or [str(i) for i in range(len(self._routes))]
        self._dead_letters = dead_letters
        self._flush_interval = flush_interval
        self._max_batch_spans = max_batch_spans
        self._cond = threading.Condition()
        self._queue: Committed = []
        self._queued_spans = 0
        self._queued_bytes = 0
        self._max_bytes = max_batch_bytes
        self._first_at = 0.0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._admission = admission
        self._slots = threading.Semaphore(parallelism)
        self._workers = ThreadPoolExecutor(parallelism, thread_name_prefix="agentwatch-convert")
        self._in_flight: list[list[object]] = []  # [position, done] in log order
        self.wal: WriteAheadLog | None = None
        self.spans_written = 0
        self.isolation = IsolationStats()
        self.component_counts: dict[str, int] = {}
        """The pipeline components' own counters (``component.Counted``), added up."""
        self.on_digest: Callable[[bytes], None] | None = None
        """Handed the health digest of each stored batch (``health.board.HealthBoard.offer``)."""

    @property
    def queued_spans(self) -> int:
        return self._queued_spans

    def on_commit(self, committed: Committed) -> None:
        spans = sum(rec.spans for rec, _ in committed)
        size = sum(len(rec.payload) for rec, _ in committed)
        with self._cond:
            was_empty = not self._queue
            if was_empty:
                self._first_at = time.monotonic()
            self._queue += committed
            self._queued_spans += spans
            self._queued_bytes += size
            # Wake the drain to start its flush_interval clock, or to flush a full batch now.
            if (
                was_empty
                or self._queued_spans >= self._max_batch_spans
                or self._queued_bytes >= self._max_bytes
            ):
                self._cond.notify()

    def start(self) -> None:
        self._thread = supervision.start_thread("agentwatch-drain", self._run)

    def _take(self) -> tuple[Committed, int] | None:
        """The next batch from the head of the queue: at most ``max_batch_spans`` spans and
        ``max_batch_bytes`` bytes (one record at least), once it is full or due."""
        with self._cond:
            while True:
                if self._queue:
                    due = self._first_at + self._flush_interval
                    now = time.monotonic()
                    full = (
                        self._queued_spans >= self._max_batch_spans or self._queued_bytes >= self._max_bytes
                    )
                    if self._stopping or full or now >= due:
                        return self._cut()
                    self._cond.wait(due - now)
                elif self._stopping:
                    return None
                else:
                    self._cond.wait()

    def _cut(self) -> tuple[Committed, int]:
        count = spans = size = 0
        for record, _ in self._queue:
            if count and (
                spans + record.spans > self._max_batch_spans or size + len(record.payload) > self._max_bytes
            ):
                break
            count, spans, size = count + 1, spans + record.spans, size + len(record.payload)
        batch, self._queue = self._queue[:count], self._queue[count:]
        self._queued_spans -= spans
        self._queued_bytes -= size
        self._first_at = time.monotonic()  # what is left waits at most another interval
        return batch, spans

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

    @property
    def batches_failed(self) -> int:
        return self.isolation.failures

    def _deliver(self, records: list[OtlpRecord], spans: int, entry: list[object]) -> None:
        try:
            for index, receivers in enumerate(self._routes):
                mine = [rec for rec in records if rec.receiver in receivers]
                if mine:
                    self._convert_until_done(index, mine)
            self._finished(entry, spans)
            if self._admission is not None:
                self._admission.give_back(sum(len(rec.payload) for rec in records))
        except BaseException as exc:  # a bug: the log stays unreleased past this batch
            supervision.crashed("agentwatch-convert", exc)
        finally:
            self._slots.release()

    def _convert_until_done(self, index: int, records: list[OtlpRecord]) -> None:
        def convert(group: list[OtlpRecord]) -> None:
            converted = self._converter.convert(index, group)
            with self._cond:
                for name, value in converted.counts.items():
                    self.component_counts[name] = self.component_counts.get(name, 0) + value
            if converted.digest is not None and self.on_digest is not None:
                self.on_digest(converted.digest)

        def quarantine(record: OtlpRecord, reason: str) -> None:
            if self._dead_letters is None:
                raise RuntimeError(f"no dead-letter file to quarantine a record in ({reason})")
            self._dead_letters.quarantine(self._names[index], record, reason)

        Isolator(convert, quarantine, self.isolation).run(records)

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
