"""Backpressure: a bound on the bytes acknowledged but not yet converted to Parquet.

Receivers ask before logging a request; past the bound they refuse with a retryable status
(HTTP 503 + Retry-After, gRPC UNAVAILABLE + RetryInfo), so OTLP clients back off and retry
instead of dropping, and the server's memory stays bounded however hard it is pushed. The
bytes are given back once the drain has written them to Parquet.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Future

from core.component import DurableSink
from core.errors import Overloaded
from core.model import OtlpRecord


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


class DecodeBudget:
    """A bound on the bytes of request bodies being read and decoded at once.

    Decoding a request costs about three times its size until its spans are screened; with
    clients free to send many large requests at once, that is the receivers' largest use of
    memory. A request waits up to ``wait`` seconds for room, then is refused retryably. One
    request is always let in when none is being decoded, however large (it is under the body
    limit). Used from the receivers' event loop only.
    """

    def __init__(self, limit_bytes: int, wait: float = 2.0) -> None:
        self.limit = limit_bytes
        self.wait = wait
        self.held = 0
        self.refused = 0
        self._room: asyncio.Condition | None = None

    def _fits(self, size: int) -> bool:
        return self.held == 0 or self.held + size <= self.limit

    @contextlib.asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        if self._room is None:
            self._room = asyncio.Condition()
        async with self._room:
            try:
                await asyncio.wait_for(self._room.wait_for(lambda: self._fits(size)), self.wait)
            except TimeoutError:
                self.refused += 1
                raise Overloaded(
                    f"agentwatch is decoding {self.held} bytes of requests (limit {self.limit}); retry soon"
                ) from None
            self.held += size
        try:
            yield
        finally:
            async with self._room:
                self.held -= size
                self._room.notify_all()
