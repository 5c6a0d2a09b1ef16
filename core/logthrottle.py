"""Rate-limit repeated log lines, so an error storm cannot fill the disk.

``LogThrottle`` is a filter on a handler: of the records with the same logger, level and
message template (its first line: asyncio's messages come pre-formatted with the socket on the
next lines), the first ``burst`` of every ``interval`` go through; the rest are counted, and
when the interval is over one summary line says how many were left out::

    socket.accept() out of system resource ... repeated 20380 more times in the last 60s

Install it on the root logger's handlers once logging is configured::

    install_log_throttle()          # burst 10 per 60 s; summaries flushed by a daemon thread
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core.periodic import Periodic

SUMMARY_ATTR = "agentwatch_throttle_summary"
"""Set on the summary records, which the filter always lets through."""

Key = tuple[str, int, str]


@dataclass
class _Window:
    start: float
    sample: logging.LogRecord
    """The first record of the window: the summary takes its logger, level and source line."""
    passed: int = 1
    suppressed: int = 0


def _first_line(record: logging.LogRecord) -> str:
    return str(record.msg).split("\n", 1)[0]


def _summary(window: _Window, now: float) -> logging.LogRecord:
    sample = window.sample
    seconds = max(1, math.ceil(now - window.start))
    record = logging.LogRecord(
        sample.name,
        sample.levelno,
        sample.pathname,
        sample.lineno,
        "%s ... repeated %d more times in the last %ds",
        (_first_line(sample), window.suppressed, seconds),
        None,
        sample.funcName,
    )
    setattr(record, SUMMARY_ATTR, True)
    return record


class LogThrottle(logging.Filter):
    """Let ``burst`` records per (logger, level, template) and ``interval`` through, summarise the rest."""

    def __init__(
        self,
        handler: logging.Handler,
        burst: int = 10,
        interval: float = 60.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if burst < 1 or interval <= 0 or max_keys < 1:
            raise ValueError("LogThrottle: burst and max_keys must be at least 1, interval positive")
        self.handler = handler
        self.burst = burst
        self.interval = interval
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[Key, _Window] = {}  # insertion order is start order
        self.suppressed_total = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, SUMMARY_ATTR, False):
            return True
        now = self._clock()
        with self._lock:
            ended = self._expire(now)
            allowed = self._admit(record, now, ended)
        self._emit(ended, now)
        return allowed

    def tick(self) -> None:
        """Write the summaries of the windows that are over (the ticker thread calls this)."""
        now = self._clock()
        with self._lock:
            ended = self._expire(now)
        self._emit(ended, now)

    def flush(self) -> None:
        """Write every pending summary now and start afresh."""
        now = self._clock()
        with self._lock:
            ended, self._windows = list(self._windows.values()), {}
        self._emit(ended, now)

    def _admit(self, record: logging.LogRecord, now: float, ended: list[_Window]) -> bool:
        key = (record.name, record.levelno, _first_line(record))
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= self.max_keys:
                ended.append(self._windows.pop(next(iter(self._windows))))
            self._windows[key] = _Window(now, record)
            return True
        if window.passed < self.burst:
            window.passed += 1
            return True
        window.suppressed += 1
        self.suppressed_total += 1
        return False

    def _expire(self, now: float) -> list[_Window]:
        ended = []
        while self._windows:
            key, window = next(iter(self._windows.items()))
            if now - window.start < self.interval:
                break
            ended.append(self._windows.pop(key))
        return ended

    def _emit(self, ended: list[_Window], now: float) -> None:
        for window in ended:
            if window.suppressed:
                self.handler.handle(_summary(window, now))


@dataclass
class Throttling:
    """The filters ``install_log_throttle`` put on, and the loop writing their summaries (a
    ``core.periodic`` loop every ``period`` seconds, on a supervised thread)."""

    filters: list[LogThrottle]
    period: float
    _loop: Periodic | None = field(default=None, init=False)

    def start(self) -> None:
        self._loop = Periodic("log-throttle", self.period, self._tick)
        self._loop.start()

    def _tick(self) -> None:
        for throttle in self.filters:
            throttle.tick()

    def stop(self) -> None:
        """Remove the filters and write what they still hold."""
        if self._loop is not None:
            self._loop.stop()
            self._loop = None
        for throttle in self.filters:
            throttle.handler.removeFilter(throttle)
            throttle.flush()


def install_log_throttle(
    burst: int = 10, interval: float = 60.0, handlers: list[logging.Handler] | None = None
) -> Throttling:
    """Put a ``LogThrottle`` on each handler (the root logger's by default) that has none yet."""
    targets = logging.getLogger().handlers if handlers is None else handlers
    filters = []
    for handler in targets:
        if any(isinstance(f, LogThrottle) for f in handler.filters):
            continue
        throttle = LogThrottle(handler, burst, interval)
        handler.addFilter(throttle)
        filters.append(throttle)
    throttling = Throttling(filters, period=min(5.0, max(0.1, interval / 10)))
    if filters:
        throttling.start()
    return throttling
