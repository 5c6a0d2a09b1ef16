"""Where every dashboard view reads from: one catalog connection per request over the data
directory, the runs of a window (``storage.runs.runs_in``, as the report and alerting load
them), and a cache of answers that new data invalidates."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from core.agents import AgentConfig
from dashboard.window import Window
from report.health import NAME_COLUMNS
from storage.layout import table_dir
from storage.runs import RunSet, Scope, runs_in
from storage.tables import SCHEMAS

CACHE_ENTRIES = 256


class Reader:
    """Reads the data directory for the views; ``cached`` answers a repeated view from memory
    until a file is added to or removed from the data directory (a flush, a compaction, an
    alert or eval row)."""

    def __init__(self, data_dir: Path, agents: tuple[AgentConfig, ...] = ()) -> None:
        self.data_dir = Path(data_dir)
        self.agents = agents
        self._cache: OrderedDict[tuple[Any, ...], tuple[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        from storage.catalog import connect

        con = connect(self.data_dir)
        try:
            yield con
        finally:
            con.close()

    def runs(
        self,
        con: duckdb.DuckDBPyConnection,
        window: Window,
        agent: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> RunSet:
        """Production runs of ``window`` (its tenant), with the agents' names."""
        scope = Scope(window.since, window.until, agent, window.tenant)
        return runs_in(con, scope, (*NAME_COLUMNS, *extra))

    def version(self) -> str:
        """Changes whenever a data file is added or removed (names only: files never change)."""
        digest = hashlib.blake2b(digest_size=12)
        for table in ("spans", "run_parts", *SCHEMAS):
            root = table_dir(self.data_dir, table)
            if root.is_dir():
                for path in sorted(root.glob("tenant=*/date=*/*")):
                    digest.update(str(path).encode())
        return digest.hexdigest()

    def cached(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        version = self.version()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == version:
                self._cache.move_to_end(key)
                return hit[1]
        value = compute()
        with self._lock:
            self._cache[key] = (version, value)
            self._cache.move_to_end(key)
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return value
