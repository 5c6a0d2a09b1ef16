"""Internal threads that must never die silently.

agentwatch's stages (the write-ahead log's writer, the drain, the background loops) run on
threads of their own. Such a thread ending on an exception is a bug, and a process that goes on
answering ``/readyz`` while one of them is gone is a zombie: exports hang, nothing is stored.
So every internal thread is started through ``start_thread``; if its target raises, the failure
is logged with its traceback and handed to whoever ``watch``es (``agentwatch serve`` marks itself
not ready and exits non-zero, so a supervisor restarts it: nothing acknowledged is lost, it is in
the write-ahead log).

Work that runs on pools rather than threads of its own reports its own unexpected failures with
``crashed``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("core.supervision")

Watcher = Callable[[str, BaseException], None]

_watchers: list[Watcher] = []
_lock = threading.Lock()


def watch(watcher: Watcher) -> Callable[[], None]:
    """Call ``watcher(where, exc)`` whenever an internal thread dies; returns the undo."""
    with _lock:
        _watchers.append(watcher)

    def unwatch() -> None:
        with _lock:
            if watcher in _watchers:
                _watchers.remove(watcher)

    return unwatch


def crashed(where: str, exc: BaseException) -> None:
    """An internal stage failed in a way it cannot recover from."""
    log.critical("internal failure in %s: %s", where, exc, exc_info=exc)
    with _lock:
        watchers = list(_watchers)
    for watcher in watchers:
        watcher(where, exc)


def start_thread(name: str, target: Callable[[], None]) -> threading.Thread:
    """A daemon thread whose death by exception is reported through ``crashed``."""

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # reported, with its traceback, instead of dying unseen
            crashed(name, exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
