"""Group commit for the small tables (``storage.tables``): many writers, few fsyncs.

A small-table file costs two fsyncs (the file and its directory), and fsyncs queue at the
filesystem's journal: posting feedback one request at a time wrote about 150 files a second
whatever the number of clients. ``GroupCommit.write`` hands its rows to one writer thread and
blocks until they are durable; the writer takes every row waiting and writes one file per
table, tenant and day. A caller is answered only once every one of its files is fsynced; a
failed write fails every caller whose rows it held. Files appear by atomic rename, so none is
half-written, but a caller whose rows span two days may see one day's file committed and the
other's failed: it is told of the failure, and a retry is read once (feedback is deduplicated
by its id). The writer thread is supervised (``core.supervision``): if it dies the service
exits for a restart rather than leave callers waiting.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, cast

from core import supervision
from storage.tables import Row, write_rows


class _Timed(Protocol):
    time: datetime


def _day_of(row: Row) -> str:
    """The day partition of a row (its ``time``, UTC)."""
    return cast(_Timed, row).time.astimezone(UTC).date().isoformat()


@dataclass
class _Waiting:
    tenant: str
    rows: Sequence[Row]
    done: Future[None]


class GroupCommit:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._cond = threading.Condition()
        self._waiting: list[_Waiting] = []
        self._thread: threading.Thread | None = None
        self.files_written = 0

    def write(self, tenant: str, rows: Sequence[Row]) -> None:
        """Store ``rows`` (of one table) under ``tenant``, each in its day's partition (by the
        row's ``time``), durably; return once they are, or raise the write's error."""
        if not rows:
            return
        done: Future[None] = Future()
        with self._cond:
            self._waiting.append(_Waiting(tenant, rows, done))
            if self._thread is None:
                self._thread = supervision.start_thread("agentwatch-groupcommit", self._run)
            self._cond.notify()
        done.result()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting:
                    self._cond.wait()
                taken, self._waiting = self._waiting, []
            self._commit(taken)

    def _commit(self, taken: list[_Waiting]) -> None:
        groups: dict[tuple[type[Row], str, str], list[Row]] = defaultdict(list)
        callers: dict[tuple[type[Row], str, str], list[Future[None]]] = defaultdict(list)
        for waiting in taken:
            for row in waiting.rows:
                key = (type(row), waiting.tenant, _day_of(row))
                groups[key].append(row)
                if not callers[key] or callers[key][-1] is not waiting.done:
                    callers[key].append(waiting.done)
        failed: dict[int, BaseException] = {}
        for key, rows in groups.items():
            try:
                write_rows(self.data_dir, key[1], cast(_Timed, rows[0]).time.astimezone(UTC), rows)
                self.files_written += 1
            except Exception as exc:  # handed to every caller whose rows it held, not swallowed
                for done in callers[key]:
                    failed.setdefault(id(done), exc)
        for waiting in taken:
            error = failed.get(id(waiting.done))
            if error is None:
                waiting.done.set_result(None)
            else:
                waiting.done.set_exception(error)
