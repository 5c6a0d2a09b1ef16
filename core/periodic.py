"""A pass repeated every ``interval`` seconds on a supervised daemon thread, for the background
stages of ``serve`` (compaction, production judging, alerting, the eval scheduler's ticks) and
the log throttle's summaries.

A pass that raises one of the ``retryable`` exceptions (none by default) is handed to
``on_error`` (by default, logged) and the next pass tries again; anything else is a bug: the
thread ends and reports it through ``core.supervision`` (``serve`` then exits non-zero for a
restart).

``stop`` waits for a running pass at most ``stop_timeout`` seconds: a pass stuck on a slow
webhook or model must not hold up shutdown. An abandoned pass is a daemon thread that ends with
the process; passes only ever commit by atomic rename, so it leaves nothing half-written.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from core import supervision

log = logging.getLogger("core.periodic")


class Periodic:
    def __init__(
        self, name: str, interval: float, work: Callable[[], object],
        retryable: tuple[type[Exception], ...] = (), on_error: Callable[[Exception], None] | None = None,
        stop_timeout: float = 5.0,
    ) -> None:  # fmt: skip
        self.name = name
        self.interval = interval
        self.work = work
        self.retryable = retryable
        self.on_error = on_error or self._failed
        self.stop_timeout = stop_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = supervision.start_thread(self.name, self._run)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.work()
            except self.retryable as exc:
                self.on_error(exc)

    def _failed(self, exc: Exception) -> None:
        log.warning("%s: a pass failed (%s); the next pass tries again", self.name, exc)

    @property
    def stopping(self) -> threading.Event:
        """Set once ``stop`` is called: long passes may check it and return early."""
        return self._stop

    def stop(self) -> None:
        """Wait (bounded) for a running pass to finish; no pass starts after this."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.stop_timeout)
            if self._thread.is_alive():
                log.warning("%s: abandoning a pass still running after %gs", self.name, self.stop_timeout)
            self._thread = None
