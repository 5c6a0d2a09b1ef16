"""Backpressure: a bound on the bytes acknowledged but not yet converted to Parquet.

Receivers ask before logging a request; past the bound they refuse with a retryable status
(HTTP 503 + Retry-After, gRPC UNAVAILABLE + RetryInfo), so OTLP clients back off and retry
instead of dropping, and the server's memory stays bounded however hard it is pushed. The
bytes are given back once the drain has written them to Parquet.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

from agentwatch.component import DurableSink
from agentwatch.errors import Overloaded
from agentwatch.model import OtlpRecord


class Admission:
    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes
        self._held = 0
        self._lock = threading.Lock()
        self.refused = 0

    @property
    def held(self) -> int:
        return self._held

    def try_take(self, size: int) -> bool:
        with self._lock:
            # An empty queue always admits one request, however large: a request under the
            # body limit must never be refused forever.
            if self._held and self._held + size > self.limit:
                self.refused += 1
                return False
            self._held += size
            return True

    def take_anyway(self, size: int) -> None:
        """For data already durable (a replayed log): counted, never refused."""
        with self._lock:
            self._held += size

    def give_back(self, size: int) -> None:
        with self._lock:
            self._held = max(0, self._held - size)


class AdmittingSink:
    """A DurableSink that refuses, retryably, when too much is waiting for conversion."""

    def __init__(self, inner: DurableSink, admission: Admission) -> None:
        self._inner = inner
        self._admission = admission

    def submit(self, record: OtlpRecord) -> Future[None]:
        size = len(record.payload)
        if not self._admission.try_take(size):
            raise Overloaded(
                f"agentwatch is converting {self._admission.held} bytes of acknowledged data "
                f"(limit {self._admission.limit}); retry shortly"
            )
        future = self._inner.submit(record)
        future.add_done_callback(lambda f: self._give_back_if_failed(f, size))
        return future

    def _give_back_if_failed(self, future: Future[None], size: int) -> None:
        if future.cancelled() or future.exception() is not None:
            self._admission.give_back(size)
