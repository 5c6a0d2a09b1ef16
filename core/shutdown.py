"""How ``agentwatch serve`` stops: always, within its timeout, and exit 0 when it stopped cleanly.

The handlers are installed before anything else starts, so a SIGTERM during start-up is a
request to stop, not a kill (exit -15). The first SIGTERM/SIGINT asks for a graceful stop and,
in the handler itself, arms a watchdog that no stuck thread can hold up: ``faulthandler``'s
timer runs in C, outside the interpreter lock, and after ``timeout`` seconds dumps every
thread's stack to stderr and exits 1. Nothing acknowledged is lost by that exit; it is in the
write-ahead log and replayed at the next start. A second signal exits at once (status 130).
"""

from __future__ import annotations

import faulthandler
import os
import signal
import threading
import time
from types import FrameType

DEFAULT_TIMEOUT = 30.0
"""``storage.shutdown_timeout``'s default, until the config is read."""
EXIT_FORCED = 130
EXIT_INTERNAL_FAILURE = 70
"""``EX_SOFTWARE``: an internal thread died; a supervisor should restart the service."""


class ShutdownSignals:
    """The handlers of SIGTERM and SIGINT. A handler runs in the main thread between two of its
    bytecodes, possibly while that thread holds a lock (an ``Event``'s, a stream's): it takes
    none. It sets a plain flag, writes with ``os.write`` and arms the watchdog; ``wait`` polls
    the flag (setting an ``Event`` from the handler deadlocked when the signal landed while the
    main thread was inside that ``Event``'s own ``wait``)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.signals = 0
        self._signalled = False

    @property
    def requested(self) -> bool:
        """Whether a signal asked the process to stop."""
        return self._signalled

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals > 1:
            os.write(2, b"agentwatch: second signal; exiting now (the write-ahead log keeps the rest)\n")
            os._exit(EXIT_FORCED)
        self.arm_watchdog()
        self._signalled = True

    def arm_watchdog(self) -> None:
        """From now on the process ends within ``timeout`` seconds, whatever happens."""
        os.write(
            2,
            f"agentwatch: shutting down, flushing to Parquet (at most {self.timeout:g}s; past that it "
            "exits 1 and the write-ahead log replays the rest at the next start)...\n".encode(),
        )
        faulthandler.dump_traceback_later(self.timeout, exit=True)

    def wait(self, failed: threading.Event, poll: float = 0.05) -> bool:
        """Until a signal or an internal failure; True when it was a signal."""
        while not self._signalled:
            if failed.is_set():
                return False
            time.sleep(poll)  # a signal interrupts the sleep; its handler only sets the flag
        return True


_early: ShutdownSignals | None = None


def install_early(noted: list[int] | None = None) -> ShutdownSignals:
    """Install the handlers now (the entry point does, before importing anything heavy). ``noted``
    holds the signals that arrived before, under the entry point's first handler: they are acted
    on as if they came now (one asks for a stop, a second exits at once)."""
    global _early
    if _early is None:
        _early = ShutdownSignals(DEFAULT_TIMEOUT)
        _early.install()
        # From here on the real handler takes every signal; those noted before are only read.
        for signum in list(noted or ()):
            _early._handle(signum, None)
    return _early
