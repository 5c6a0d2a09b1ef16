"""Where every dashboard view reads from: a cursor per request of a catalog over the data
directory, the runs of a window (``storage.runs.runs_in``, as the report and alerting load
them), and a cache of answers that new data invalidates."""

from __future__ import annotations

import atexit
import hashlib
import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

from core import supervision
from core.agents import AgentConfig
from dashboard.derived import DERIVED
from dashboard.window import Window
from report.health import NAME_COLUMNS
from storage.layout import table_dir
from storage.runcache import RunCache
from storage.runs import BASE_COLUMNS, RunSet, Scope
from storage.tables import SCHEMAS

CACHE_BYTES = 64 * 1024 * 1024
"""Answers (JSON bytes) kept for repeated views."""
WARM_SECONDS = 600.0
"""How long after the last view the catalog of new data files is still bound as they appear."""
WARM_POLL_SECONDS = 1.0
"""How often the data directory is looked at for new files meanwhile."""
log = logging.getLogger(__name__)


_exiting = threading.Event()
_warmers: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


@atexit.register
def _stop_warming() -> None:
    """Let a catalog being bound finish before the interpreter goes (a DuckDB call still running
    in a daemon thread at teardown can abort the process)."""
    _exiting.set()
    for thread in list(_warmers):
        thread.join(5.0)


def _warm(ref: weakref.ref[Reader]) -> None:
    """``Reader.keep_warm``'s thread: every ``WARM_POLL_SECONDS``, bind the catalog of the data
    files as they are, until the reader is gone or has not been asked for a view for
    ``WARM_SECONDS``."""
    while not _exiting.wait(WARM_POLL_SECONDS):
        reader = ref()
        if reader is None:
            return
        with reader._catalog_lock:
            if time.monotonic() - reader._last_use > WARM_SECONDS:
                reader._warmer = None
                return
        try:
            reader._release(reader._catalog_of(reader.version()))
        except (duckdb.Error, OSError) as exc:  # a file gone while binding: the next poll binds again
            log.info("dashboard: binding the catalog failed (%s); trying again", exc)
        del reader


@dataclass
class _Catalog:
    """A catalog connection (``storage.catalog.connect``) of one version of the data files."""

    con: duckdb.DuckDBPyConnection
    version: str
    users: int = 0
    retired: bool = False
    """A newer version's catalog replaced it: closed when its last user is done."""


class Reader:
    """Reads the data directory for the views; ``cached`` answers a repeated view from memory
    until a file is added to or removed from the data directory (a flush, a compaction, an
    alert or eval row)."""

    def __init__(
        self,
        data_dir: Path,
        agents: tuple[AgentConfig, ...] = (),
        memory_mib: int = 512,
        concurrent: int = 2,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``memory_mib``: DuckDB's memory per view (it spills to ``<data_dir>/.dashboard-tmp``
        past it); ``concurrent``: views computed at once (others wait); the views share one
        catalog whose limit is ``memory_mib * concurrent``, all the dashboard holds in the server
        process whatever the window asked;
        ``clock``: now, for the run cache's first open day (``storage.runcache``)."""
        self.data_dir = Path(data_dir)
        self.run_cache = RunCache(self.data_dir, clock, derived=DERIVED)
        self.agents = agents
        self.memory_mib = memory_mib
        self._slots = threading.BoundedSemaphore(concurrent)
        self._concurrent = concurrent
        self._catalog: _Catalog | None = None
        self._last_use = 0.0
        self._catalog_lock = threading.Lock()
        self._warmer: threading.Thread | None = None
        self._cache: OrderedDict[tuple[Any, ...], tuple[str, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one view: a cursor of the catalog of the data files as they are now
        (its views bound once per version of the data directory and shared by the views that
        read it; each cursor's temporary tables are its own and go with it)."""
        self.keep_warm()
        with self._slots:
            catalog = self._catalog_of(self.version())
            try:
                cursor = catalog.con.cursor()
                try:
                    # Global to the catalog: the views computed at once share it.
                    cursor.execute(f"SET memory_limit = '{int(self.memory_mib) * self._concurrent}MB'")
                    yield cursor
                finally:
                    cursor.close()
            finally:
                self._release(catalog)

    def keep_warm(self) -> None:
        """Note a view's use; start the thread that binds each new version's catalog as soon as
        its files appear (a flush, a compaction), while views are asked for: a view then rarely
        binds one itself. The thread ends ``WARM_SECONDS`` after the last view, or with the
        reader."""
        with self._catalog_lock:
            self._last_use = time.monotonic()
            if self._warmer is None:
                ref = weakref.ref(self)
                self._warmer = supervision.start_thread("dashboard-catalog", lambda: _warm(ref))
                _warmers.add(self._warmer)

    def _catalog_of(self, version: str) -> _Catalog:
        """The catalog of ``version``, bound now if the current one is of another (which is
        closed once the views reading it are done)."""
        from storage.catalog import connect

        with self._catalog_lock:
            current = self._catalog
            if current is None or current.version != version:
                con = connect(self.data_dir)
                try:
                    con.execute("SET temp_directory = ?", [str(self.data_dir / ".dashboard-tmp")])
                except duckdb.Error:
                    con.close()
                    raise
                if current is not None:
                    current.retired = True
                    if current.users == 0:
                        current.con.close()
                current = self._catalog = _Catalog(con, version)
            current.users += 1
            return current

    def _release(self, catalog: _Catalog) -> None:
        with self._catalog_lock:
            catalog.users -= 1
            if catalog.retired and catalog.users == 0:
                catalog.con.close()

    def runs(
        self,
        con: duckdb.DuckDBPyConnection,
        window: Window,
        agent: str | None = None,
        extra: tuple[str, ...] = (),
        base: tuple[str, ...] = BASE_COLUMNS,
        materialize: bool = False,
    ) -> RunSet:
        """Production runs of ``window`` (its tenant), with the agents' names (``base``: fewer
        base columns for a view that needs no more, ``storage.runs.runs_in``); the closed days'
        runs of an all-agents view come from the run cache (``storage.runcache``; ``materialize``:
        copied once, for a view joining them with spans)."""
        scope = Scope(window.since, window.until, agent, window.tenant)
        return self.run_cache.runs_in(con, scope, (*NAME_COLUMNS, *extra), base, materialize)

    def spans(self, con: duckdb.DuckDBPyConnection, which: str, window: Window) -> str:
        """A view of the window's production spans of ``storage.runcache.SPAN_SETS[which]``
        (the failing spans, the spans by model, tool and provider): the closed days' from the
        run cache, the open days' from ``spans``."""
        return self.run_cache.spans(con, which, window.since, window.until, window.tenant)

    def places(self, con: duckdb.DuckDBPyConnection, trace_id: str) -> list[tuple[str, date]]:
        """The (tenant, date) partitions holding the partials of ``trace_id`` (the run cache's
        index for closed days, ``storage.runcache``)."""
        return self.run_cache.places(con, trace_id)

    def version(self) -> str:
        """Changes whenever a data file is added or removed (names only: files never change)."""
        digest = hashlib.blake2b(digest_size=12)
        for table in ("spans", "run_parts", *SCHEMAS):
            root = table_dir(self.data_dir, table)
            if root.is_dir():
                for path in sorted(root.glob("tenant=*/date=*/*")):
                    digest.update(str(path).encode())
        return digest.hexdigest()

    def cached(self, key: tuple[Any, ...], compute: Callable[[], bytes]) -> bytes:
        """``compute()``'s answer (a JSON document's bytes), from the cache while the data files
        are the same; the cache holds at most ``CACHE_BYTES`` (the least recently used go)."""
        version = self.version()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == version:
                self._cache.move_to_end(key)
                return hit[1]
        value = compute()
        if len(value) > CACHE_BYTES // 4:
            return value  # one answer never takes most of the cache
        with self._lock:
            old = self._cache.pop(key, None)
            self._bytes -= len(old[1]) if old else 0
            self._cache[key] = (version, value)
            self._bytes += len(value)
            while self._bytes > CACHE_BYTES:
                _, (_, dropped) = self._cache.popitem(last=False)
                self._bytes -= len(dropped)
        return value
