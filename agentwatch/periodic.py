"""A pass repeated every ``interval`` seconds on a daemon thread, for the background stages of
``serve`` (compaction, production judging, alerting).

A pass that raises one of the ``retryable`` exceptions is handed to ``on_error`` and the next
pass tries again; anything else is a bug and ends the thread loudly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Periodic:
    def __init__(
        self, name: str, interval: float, work: Callable[[], object],
        retryable: tuple[type[Exception], ...], on_error: Callable[[Exception], None],
    ) -> None:  # fmt: skip
        self.name = name
        self.interval = interval
        self.work = work
        self.retryable = retryable
        self.on_error = on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.work()
            except self.retryable as exc:
                self.on_error(exc)

    def stop(self) -> None:
        """Wait for a running pass to finish; no pass starts after this."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
