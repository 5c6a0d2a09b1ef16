"""One writer per write-ahead log: ``<data_dir>/wal/.lock``.

Two processes appending to and releasing the same log would each replay and delete the other's
records. So whoever writes a data directory's log (``agentwatch serve`` for its lifetime,
``agentwatch eval run`` while it runs with no server) holds an exclusive ``flock`` on
``wal/.lock`` and writes into it who it is, as JSON: ``pid``, ``command`` and, once a server
listens, where it receives OTLP (so a second process sends its spans there instead). The kernel
drops the lock when its holder dies, however it dies; a lock file left by a killed process is
simply taken over.

The file is removed on release (so a stopped server leaves ``wal/`` empty). Taking the lock
checks that the file locked is still the one at the path, so a process that opened the file
just before its holder removed it cannot hold a lock on a file no one else sees.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

import orjson

LOCK_NAME = ".lock"


class WalLock:
    def __init__(self, wal_dir: Path) -> None:
        self.path = wal_dir / LOCK_NAME
        self._fd: int | None = None
        self._info: dict[str, Any] = {}

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self, **info: Any) -> bool:
        """Take the lock if no other process holds it, and say who holds it now (``info``)."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # its holder removed it between our open and our lock: try again
        self._fd = fd
        self._info = {}
        self.describe(pid=os.getpid(), **info)
        return True

    def describe(self, **info: Any) -> None:
        """Add to what the holder says about itself (e.g. its OTLP endpoints, once listening)."""
        if self._fd is None:
            return
        self._info.update(info)
        data = orjson.dumps(self._info)
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def holder(self) -> dict[str, Any] | None:
        """What the process holding the lock wrote about itself; None when unreadable (it is
        being written, or no one holds the lock)."""
        try:
            doc = orjson.loads(self.path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        return doc if isinstance(doc, dict) else None

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # before unlocking: see the module's docstring
        os.close(self._fd)
        self._fd = None
