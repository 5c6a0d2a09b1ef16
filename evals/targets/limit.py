"""A concurrency limit per target, shared by every run of it in the process: the scheduled run
and the canary run of one agent API never send it more than ``concurrency`` cases at once."""

from __future__ import annotations

import threading

_lock = threading.Lock()
_limits: dict[tuple[str, int], threading.BoundedSemaphore] = {}


def shared_limit(target: str, concurrency: int) -> threading.BoundedSemaphore:
    with _lock:
        key = (target, max(1, concurrency))
        if key not in _limits:
            _limits[key] = threading.BoundedSemaphore(key[1])
        return _limits[key]
