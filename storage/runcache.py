"""Runs of closed days, merged once and kept on disk: the all-agents views' way to ``runs_in``.

Merging a week of run partials into runs (``storage.runs.runs_sql``) is most of what an
all-agents view costs, and the days before today rarely change. ``RunCache`` merges the
partials of the *closed* days (every date partition before the cut-off, today's UTC date) once,
with the same ``runs_sql``, and keeps the runs (the columns of ``runs`` the views read,
judges' marks not applied) in ``<data_dir>/.run-cache/<key>.duckdb``: a DuckDB file, compressed,
sorted by tenant and start time (its zone maps skip what a window leaves out), attached read-only
by each catalog connection that reads it. The key is a digest of the closed days' live span
files (and whether each has its partials), the run model's SQL, the cached columns and DuckDB's
version: a file added to or removed from a closed day (late data, compaction, retention, a
backfilled partial) makes a new key, and the next view that needs it merges again.

``RunCache.runs_in`` answers as ``storage.runs.runs_in`` does, for a window of all agents
(one tenant or all): the cached runs of the window, and the runs of the open days merged live
from their partials. A trace with partials on both sides (a run across midnight, a late span) is
merged live from all its partials, and its cached run is left out: the cache keeps the hash of
every closed trace (``traces``) to find them. Marks are applied to both at query time
(``run_marks`` changes without a span file changing). One agent's runs (its own partial filter),
the case export's texts and columns the cache does not keep go to ``storage.runs.runs_in``.

One difference from ``storage.runs.runs_in``, for the better: the cache merges a trace's
partials of every closed day, while ``runs_in`` reads partials from the day before the window
on. They differ only for a trace whose spans started more than a day before the window.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np

from core.model import SPAN_SCHEMA
from storage.catalog import live_files, read_parquet_sql
from storage.layout import RUN_PARTS, SPANS, fsync_dir
from storage.runparts import parts_path
from storage.runs import (
    AGENT_SQL,
    BASE_COLUMNS,
    CachedRuns,
    RunSet,
    Scope,
    has_split_traces,
    marked,
    parts_sql,
    projection_sql,
    resolve_agent,
    run_set_columns,
    runs_in,
    runs_sql,
    since_date,
    span_failed_sql,
    traces_naming_sql,
)

CACHE_DIR = ".run-cache"
CACHED_COLUMNS = (
    "trace_id", "span_id", "tenant", "agent_id", "agent_name", "agent_owner", "user_id", "session_id",
    "team", "org", "workspace", "project", "workflow", "start_time", "duration_ms", "outcome",
    "failure_type", "failing_span_id", "error_message", "error_template", "input_tokens", "output_tokens",
    "cached_tokens", "cost_usd", "synthetic",
)  # fmt: skip
"""The columns of ``runs`` the cache keeps: what the all-agents views read (and the marks
rewrite); a ``RunSet`` asking for another goes to ``storage.runs.runs_in``."""
TODAY_DIR = "today"
"""Where the snapshots of the open days' files are (under ``CACHE_DIR``)."""
SNAPSHOT_SECONDS = 120.0
"""How old a snapshot of the open days may grow, while files come after it, before it is merged
again: what it does not hold whole is made live, so the live work is at most this much data."""
DERIVED_CHUNK_RUNS = 200_000
"""Runs whose derived rows (``Derived``) are made at once while merging the cache."""
BUILD_MEMORY_MIB = 1024
"""DuckDB's memory limit while merging the closed days (it spills past it)."""
_SOURCES = {*CACHED_COLUMNS, "agent"}
"""What a ``RunSet`` column can be made of here: a cached column, or ``agent`` (``AGENT_SQL``
over agent_id and agent_name)."""
SPAN_SETS = {
    # Spans with a model, tool or provider, once per kind of key (latency by model, tool, provider).
    "latency": """
        SELECT tenant, date, start_time, duration_ms, g.kind AS kind, g.key AS key FROM (
            SELECT tenant, date, start_time, duration_ms,
                   unnest([{'kind': 'model', 'key': model}, {'kind': 'tool', 'key': tool_name},
                           {'kind': 'provider', 'key': provider}]) AS g
            FROM __SPANS__
            WHERE NOT coalesce(synthetic, false) AND coalesce(model, tool_name, provider) IS NOT NULL
        ) WHERE g.key IS NOT NULL""",
    # Failing spans (few): the heatmap and the retry storms.
    "failing": f"""
        SELECT tenant, date, operation, tool_name, model, start_time, trace_id,
               coalesce(failure_type, error_type) AS kind
        FROM __SPANS__ WHERE NOT coalesce(synthetic, false) AND {span_failed_sql()}""",
}
"""Production spans (never synthetic) the operations page aggregates, cached per closed day like
the runs: ``RunCache.spans`` gives those of a window, cached and live alike."""


@dataclass(frozen=True)
class Derived:
    """A table a view reads beside the runs, which the cache keeps for the closed days: ``sql``
    reads ``__SPANS__`` (span rows) and ``__RUNS__`` (run rows: the columns of the ``RunSet``
    it is asked for, which it may only use, and ``agent``) and gives rows with ``tenant`` and
    ``trace_id`` (of a run of ``__RUNS__``). ``derived_rows`` gives a set's rows of it, from the
    cache and live alike (``trace_id`` as ``h``: ``hash(tenant, trace_id)``). ``order``: what
    the cache sorts its rows by after the tenant, of their columns and ``run_agent`` (the run's
    agent label) and ``run_start``."""

    name: str
    sql: str
    order: tuple[str, ...] = ("run_start",)


_MODEL_SQL = (
    f"places, {runs_sql('__PARTS__')}\n{parts_sql('tenant, date, trace_id', '__SOURCE__')}\n{SPAN_SETS}"
)
_LAYOUT = 4
"""The cache file's own layout (its tables, columns and sort): raised when ``_build`` changes."""
_MODEL = hashlib.blake2b(
    f"{_MODEL_SQL}\n{CACHED_COLUMNS}\n{duckdb.__version__}\n{_LAYOUT}".encode(), digest_size=8
).hexdigest()
"""The run model's SQL, the cached columns, DuckDB's version (its ``hash``) and the layout: any
changed, every key changes."""
_HASH = "trace_hash"
_DERIVED = "derived_"
_SYNTHETIC: dict[bool | None, str] = {
    False: "NOT coalesce(synthetic, false)", True: "coalesce(synthetic, false)", None: "true"
}
_LABEL = "label"
"""The cached runs' agent label (``AGENT_SQL``), a column to filter one agent's runs on: they are
sorted by tenant, day, label and start, so a window's days, and one agent's runs in each, are
a few row groups and vectors."""
_DATE = re.compile(r"/date=(\d{4}-\d{2}-\d{2})/")
_PARTITION = re.compile(r"/tenant=([^/]+)/date=(\d{4}-\d{2}-\d{2})/")
log = logging.getLogger(__name__)
_names = iter(range(1 << 62))
_names_lock = threading.Lock()


def _name(prefix: str) -> str:
    with _names_lock:
        return f"{prefix}{next(_names)}"


class RunCache:
    """The closed days' runs of one data directory, merged on first use and again whenever a
    closed day's files change; on disk, so every reader and process of the directory shares it."""

    def __init__(
        self,
        data_dir: Path,
        clock: Callable[[], datetime] | None = None,
        wait: bool = False,
        derived: tuple[Derived, ...] = (),
    ) -> None:
        """``clock``: now, whose UTC date is the first open day (tests and the benchmark set it).
        ``wait``: a view finding the cache missing merges it first; by default it is merged on a
        background thread (seconds on millions of runs) and views read the partials meanwhile,
        as ``storage.runs.runs_in`` does. ``derived``: the tables kept beside the runs (part of
        the key: caches with other tables are other files)."""
        self.data_dir = Path(data_dir)
        self.derived = derived
        self.clock = clock or (lambda: datetime.now(UTC))
        self.wait = wait
        self.directory = self.data_dir / CACHE_DIR
        self._lock = threading.Lock()
        self._merging: threading.Thread | None = None
        self._building: duckdb.DuckDBPyConnection | None = None
        """The connection merging the cache now, if any (interrupted at exit)."""
        self._exiting = False
        self._snapshot_files: dict[Path, tuple[frozenset[str], str]] = {}
        self.builds = 0
        """How many times this object merged the closed days (tests read it)."""

    def cutoff(self) -> date:
        """The first open day: today (UTC)."""
        return self.clock().astimezone(UTC).date()

    def closed(self, cutoff: date | None = None) -> Path:
        """The cache file of the closed days before ``cutoff`` (today), merged now if missing."""
        cutoff = cutoff or self.cutoff()
        path, files, _ = self._current(cutoff)
        self._build_once(path, files)
        return path

    def _build_once(self, path: Path, files: list[tuple[str, bool]], closed: Path | None = None) -> None:
        """Merge ``files`` into ``path`` now, unless it is there (another merged it meanwhile)."""
        with self._lock:
            if not path.exists():
                self._build(path, files, closed)

    def join(self, timeout: float | None = None) -> None:
        """Wait for a background merge, if one runs (tests)."""
        merging = self._merging
        if merging is not None:
            merging.join(timeout)

    def _ready(
        self, con: duckdb.DuckDBPyConnection, cutoff: date
    ) -> tuple[str, Path, list[tuple[str, bool]]] | None:
        """The cache attached to ``con`` (its name there), its file and the open days' files; None
        while it is being merged (or replaced between the listing and here)."""
        path, files, open_days = self._current(cutoff)
        if not path.exists():
            if not self.wait:
                self._merge_in_background(path, files)
                return None
            self._build_once(path, files)
        alias = self._attach(con, cutoff, path)
        return None if alias is None else (alias, path, open_days)

    def _merge_in_background(
        self, path: Path, files: list[tuple[str, bool]], closed: Path | None = None
    ) -> None:
        """Merge ``files`` into ``path`` on the background thread, unless a merge runs."""
        with self._lock:
            if self._merging is None or not self._merging.is_alive():
                self._merging = threading.Thread(
                    target=self._merge_aside, args=(path, files, closed), name="run-cache", daemon=True
                )
                self._merging.start()

    def _merge_aside(self, path: Path, files: list[tuple[str, bool]], closed: Path | None = None) -> None:
        _merging_caches.add(self)
        try:
            self._build_once(path, files, closed)
        except (duckdb.Error, OSError):
            if self._exiting:
                log.info("run cache: merging the closed days stopped: the process is exiting")
                return
            # Views go on reading the partials; the next view that finds it missing tries again.
            log.exception("run cache: merging the closed days into %s failed", path)
        finally:
            _merging_caches.discard(self)

    def _stop_merging(self, timeout: float) -> None:
        """Interrupt a background merge and wait for it (at most ``timeout``): a DuckDB query
        still running in a daemon thread when the interpreter exits can abort the process."""
        self._exiting = True
        building, merging = self._building, self._merging
        if building is not None:
            building.interrupt()
        if merging is not None:
            merging.join(timeout)

    def _current(self, cutoff: date) -> tuple[Path, list[tuple[str, bool]], list[tuple[str, bool]]]:
        """The cache file the closed days' files make now (maybe not merged yet), those files,
        and the open days' files."""
        files, open_days = _span_files(self.data_dir, cutoff)
        digest = hashlib.blake2b(f"{_MODEL}\n{cutoff}\n{self.derived}".encode(), digest_size=16)
        for name, has_parts in files:
            digest.update(f"{name}\t{has_parts}\n".encode())
        return self.directory / f"{digest.hexdigest()}.duckdb", files, open_days

    def _today(
        self, con: duckdb.DuckDBPyConnection, cutoff: date, closed: Path, files: list[tuple[str, bool]]
    ) -> tuple[str, tuple[str, ...]] | None:
        """The newest snapshot of the open days' files (``TODAY_DIR``) attached to ``con``, and
        the files (partials, else spans) of the open days it does not hold, when it was made
        against the ``closed`` days' cache and every file it holds is still live (None: none
        usable yet). One missing, or older than ``SNAPSHOT_SECONDS`` while files came after it,
        is merged again (aside, or now when ``wait``): the derived rows of the runs it holds
        whole are read from it, not made live (``files``: the open days' files)."""
        names = {name for name, _ in files}
        found = self._newest_snapshot(names, closed.stem)
        stale = found is None or (
            names != found[1] and time.time() - found[0].stat().st_mtime > SNAPSHOT_SECONDS
        )
        if stale and files:
            path = self._snapshot_path(cutoff, files, closed)
            if self.wait:
                self._build_once(path, files, closed)
                found = self._newest_snapshot(names, closed.stem)
            else:
                self._merge_in_background(path, files, closed)
        if found is None:
            return None
        alias = _attach_file(con, found[0], f"run_today_{found[0].stem[:16]}")
        if alias is None:
            return None  # replaced by a newer snapshot between the look and here
        later = [(n, has) for n, has in files if n not in found[1]]
        return alias, tuple(str(parts_path(self.data_dir, Path(n))) if has else n for n, has in later)

    def snapshot(self, cutoff: date | None = None) -> Path | None:
        """The snapshot of the open days' files as they are now, merged now if missing, with
        the closed days' cache first (the benchmark; views merge it aside); None without
        open-day files or derived tables."""
        cutoff = cutoff or self.cutoff()
        closed, closed_files, files = self._current(cutoff)
        if not files or not self.derived:
            return None
        self._build_once(closed, closed_files)
        path = self._snapshot_path(cutoff, files, closed)
        self._build_once(path, files, closed)
        return path

    def _snapshot_path(self, cutoff: date, files: list[tuple[str, bool]], closed: Path) -> Path:
        key = f"{_MODEL}\n{cutoff}\n{self.derived}\n{closed.stem}"
        digest = hashlib.blake2b(key.encode(), digest_size=16)
        for name, has_parts in files:
            digest.update(f"{name}\t{has_parts}\n".encode())
        return self.directory / TODAY_DIR / f"{digest.hexdigest()}.duckdb"

    def _newest_snapshot(self, names: set[str], closed: str) -> tuple[Path, frozenset[str]] | None:
        """The newest snapshot, with its files, if its files are all among ``names`` (live) and
        it was made against the closed days' cache ``closed`` (its file's stem)."""
        for path in sorted((self.directory / TODAY_DIR).glob("*.duckdb"), key=_mtime, reverse=True):
            known = self._snapshot_files.get(path)
            if known is None:
                try:
                    with duckdb.connect(str(path), read_only=True) as con:
                        held = frozenset(r[0] for r in con.execute("SELECT name FROM files").fetchall())
                        known = (held, str(con.execute("SELECT key FROM closed").fetchall()[0][0]))
                except duckdb.Error:
                    continue  # being replaced, or not a snapshot
                self._snapshot_files = {path: known}
            held, against = known
            return (path, held) if held <= names and against == closed else None
        return None

    def places(self, con: duckdb.DuckDBPyConnection, trace_id: str) -> list[tuple[str, date]]:
        """The (tenant, date) partitions holding partials of ``trace_id``: of the closed days from
        the cache (by a hash of the id: a collision only adds a place), of the open days from
        their partials; every partial scanned when the cache is not merged yet (a trace page
        never waits for the merge)."""
        cutoff = self.cutoff()
        path, _, _ = self._current(cutoff)
        lookup = f"SELECT DISTINCT tenant, date FROM {RUN_PARTS} WHERE trace_id = $t"
        params: dict[str, object] = {"t": trace_id}
        cache = self._attach(con, cutoff, path) if path.exists() else None
        if cache is not None:
            lookup += f""" AND date >= $cutoff
                UNION SELECT tenant, date FROM {cache}.places WHERE th = hash($t::VARCHAR)"""
            params["cutoff"] = cutoff
        return [(str(t), d) for t, d in con.execute(f"{lookup} ORDER BY ALL", params).fetchall()]

    def runs_in(
        self,
        con: duckdb.DuckDBPyConnection,
        scope: Scope,
        extra: tuple[str, ...] = (),
        base: tuple[str, ...] = BASE_COLUMNS,
        materialize: bool = False,
    ) -> RunSet:
        """``storage.runs.runs_in(con, scope, extra, base)``, the closed days' runs from the cache.

        ``con`` is a catalog connection over this cache's data directory. The set reads the
        cache in place (a view), unless ``materialize``: copied into a table once, for a reader
        whose queries join the runs with spans (DuckDB plans those joins better on a table)."""
        selected, texts = run_set_columns(extra, base)
        cutoff = self.cutoff()
        uncached = [c for c in selected if c not in _SOURCES]
        if texts or uncached or since_date(scope.since) >= cutoff:
            return runs_in(con, scope, extra, base)
        ready = self._ready(con, cutoff)
        if ready is None:
            return runs_in(con, scope, extra, base)
        cache, closed, open_days = ready
        params: dict[str, object] = {"cutoff": cutoff, "since": scope.since, "until": scope.until}
        tenant = ""
        if scope.tenant is not None:
            tenant = " AND tenant = $tenant"
            params["tenant"] = scope.tenant
        open_parts = f"SELECT * FROM {RUN_PARTS} WHERE date >= $cutoff{tenant}"
        hashes = _name("_open_hashes_")
        con.execute(
            f"CREATE TEMP TABLE {hashes} AS SELECT hash(tenant, trace_id) AS h FROM ({open_parts})",
            {k: v for k, v in params.items() if k in ("cutoff", "tenant")},
        )
        # Traces with partials on both sides: merged live from all their partials.
        split: str | None = _name("_split_")
        con.execute(
            f"CREATE TEMP TABLE {split} AS SELECT DISTINCT h FROM {hashes} SEMI JOIN {cache}.traces USING (h)"
        )
        if not con.execute(f"SELECT count(*) FROM {split}").fetchall()[0][0]:
            con.execute(f"DROP TABLE {split}")
            split = None
        # The cached runs are read in place by each query (a view: copying them would cost more
        # than the queries); the open days' runs, few, are merged once into a table.
        literal = (
            f"start_time >= '{scope.since.isoformat()}'::TIMESTAMPTZ"
            f" AND start_time < '{scope.until.isoformat()}'::TIMESTAMPTZ"
        )
        if scope.tenant is not None:
            literal += f" AND tenant = '{_quote(scope.tenant)}'"
        label: str | None = None
        live_filter = ""
        parts = open_parts
        if scope.agent is not None:
            # One agent's runs: the whole traces' runs labelled so (``storage.runs.runs_in``);
            # live, the open days' partials of the traces that name it.
            label = _label(con, cache, scope)
            params |= {"agent": label, "since_date": cutoff}
            literal += f" AND {_LABEL} = '{_quote(label)}'"
            live_filter = f" AND {AGENT_SQL} = $agent"
            naming = f"trace_id IN ({traces_naming_sql(con, cutoff, label)})"
            if split is not None:
                naming += f" OR hash(tenant, trace_id) IN (SELECT h FROM {split})"
            parts += f" AND ({naming})"
        cached = f"SELECT * EXCLUDE ({_HASH}, {_LABEL}) FROM {cache}.runs WHERE {literal}"
        if split is not None:
            parts += (
                f" UNION ALL BY NAME SELECT * FROM {RUN_PARTS} WHERE date < $cutoff{tenant}"
                f" AND hash(tenant, trace_id) IN (SELECT h FROM {split})"
            )
            cached += f" AND {_HASH} NOT IN (SELECT h FROM {split})"
        own = con.execute(f"SELECT h FROM {hashes}").fetchnumpy()["h"]
        single = split is None and not has_split_traces(np.asarray(own))
        con.execute(f"DROP TABLE {hashes}")
        live = _name("_open_runs_")
        con.execute(
            f"""CREATE TEMP TABLE {live} AS
                SELECT {", ".join(CACHED_COLUMNS)} FROM ({runs_sql(parts, single_partials=single)})
                WHERE start_time >= $since AND start_time < $until{live_filter}""",
            params,
        )
        union = f"{cached} UNION ALL BY NAME SELECT * FROM {live}"
        view = _name("_runs_view_")
        kind = "TABLE" if materialize else "VIEW"
        projection = projection_sql(selected)
        con.execute(f"CREATE TEMP {kind} {view} AS SELECT {projection} FROM ({marked(con, union)})")
        live_from = cutoff
        if split is not None:
            # The split traces' spans are read live, from their first closed day on.
            first = con.execute(
                f"""SELECT min(date) FROM {cache}.places WHERE th IN (
                        SELECT hash(trace_id) FROM {live}
                        WHERE hash(tenant, trace_id) IN (SELECT h FROM {split}))"""
            ).fetchall()[0][0]
            live_from = min(cutoff, first or cutoff)
        kept = frozenset(d.name for d in self.derived)
        today = self._today(con, cutoff, closed, open_days) if self.derived else None
        after = None
        if today is not None and today[1]:
            # The traces with partials in the open days' files that came after the snapshot.
            after = _name("_after_snapshot_")
            con.execute(
                f"CREATE TEMP TABLE {after} AS SELECT DISTINCT hash(tenant, trace_id) AS h"
                f" FROM {read_parquet_sql(list(today[1]))}"
            )
        snapshot = today[0] if today else None
        made = CachedRuns(cache, cutoff, split, live, live_from, scope.tenant, label, kept, snapshot, after)
        return RunSet(con, scope, tuple(selected), view, _view=not materialize, cached=made)

    def spans(
        self, con: duckdb.DuckDBPyConnection, which: str, since: datetime, until: datetime, tenant: str | None
    ) -> str:
        """A view on ``con`` of the ``SPAN_SETS[which]`` rows of the production spans started in
        ``[since, until)`` (of ``tenant``; from day partitions since ``since_date(since)``, as
        the page reads them): the closed days' from the cache, the open days' from ``spans``."""
        cutoff = self.cutoff()
        first = since_date(since)
        where = (
            f"date >= '{first.isoformat()}'::DATE AND start_time >= '{since.isoformat()}'::TIMESTAMPTZ"
            f" AND start_time < '{until.isoformat()}'::TIMESTAMPTZ"
        )
        if tenant is not None:
            where += f" AND tenant = '{_quote(tenant)}'"
        sql = SPAN_SETS[which]
        view = _name(f"_{which}_view_")
        ready = self._ready(con, cutoff) if first < cutoff else None
        if ready is None:
            every = f"(SELECT * FROM spans WHERE {where})"
            con.execute(f"CREATE TEMP VIEW {view} AS {sql.replace('__SPANS__', every)}")
            return view
        live = f"(SELECT * FROM spans WHERE {where} AND date >= '{cutoff.isoformat()}'::DATE)"
        con.execute(
            f"""CREATE TEMP VIEW {view} AS SELECT * FROM {ready[0]}.{which} WHERE {where}
                UNION ALL BY NAME {sql.replace("__SPANS__", live)}"""
        )
        return view

    def _attach(self, con: duckdb.DuckDBPyConnection, cutoff: date, known: Path | None = None) -> str | None:
        """Attach the cache (merged first if need be; ``known``: that file only, never merged)
        to ``con``, read-only; its name there (None: ``known`` is gone)."""
        for _ in range(1 if known else 3):
            path = known or self.closed(cutoff)
            alias = _attach_file(con, path, f"run_cache_{path.stem[:16]}")
            if alias is not None:
                return alias
            # replaced by a newer merge between the listing and here: list again
        return None

    def _build(self, path: Path, files: list[tuple[str, bool]], closed: Path | None = None) -> None:
        """Merge the closed days' partials into ``path`` (written aside, renamed into place), and
        remove older keys' files (a connection holding one attached keeps reading it)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.tmp"
        for left in (tmp, tmp.with_name(f"{tmp.name}.wal")):  # a merge killed half-way
            left.unlink(missing_ok=True)
        con = duckdb.connect(":memory:")
        self._building = con
        try:
            if self._exiting:
                raise duckdb.InterruptException("the process is exiting")
            con.execute("SET enable_progress_bar = false")
            con.execute("SET preserve_insertion_order = false")
            # Bounded like a dashboard view (twice its default), spilling where views spill.
            con.execute(f"SET memory_limit = '{BUILD_MEMORY_MIB}MB'")
            con.execute("SET temp_directory = ?", [str(self.data_dir / ".dashboard-tmp")])
            source = _parts_source(con, self.data_dir, files)
            con.execute(f"CREATE TEMP TABLE parts AS {source}")
            con.execute(f"ATTACH '{_quote(str(tmp))}' AS out")
            con.execute(
                f"""CREATE TABLE out.runs AS
                    SELECT {", ".join(CACHED_COLUMNS)}, hash(tenant, trace_id) AS {_HASH},
                           {AGENT_SQL} AS {_LABEL}
                    FROM ({runs_sql("SELECT * FROM parts")})
                    ORDER BY tenant, date_trunc('day', start_time), {_LABEL}, start_time, trace_id"""
            )
            con.execute("CREATE TABLE out.traces AS SELECT DISTINCT hash(tenant, trace_id) AS h FROM parts")
            if closed is not None:  # a snapshot of the open days: the traces it holds whole, given
                # the closed days' cache it was made against (named in ``closed``)
                con.execute(f"ATTACH '{_quote(str(closed))}' AS closed_days (READ_ONLY)")
                con.execute(
                    "CREATE TABLE out.whole AS SELECT h FROM out.traces"
                    " WHERE h NOT IN (SELECT h FROM closed_days.traces)"
                )
                con.execute("DETACH closed_days")
                con.execute("CREATE TABLE out.closed AS SELECT ? AS key", [closed.stem])
            con.execute("CREATE TABLE out.files (name VARCHAR)")
            if files:
                con.executemany("INSERT INTO out.files VALUES (?)", [[name] for name, _ in files])
            places = "SELECT DISTINCT hash(trace_id) AS th, tenant, date FROM parts ORDER BY th"
            con.execute(f"CREATE TABLE out.places AS {places}")
            spans = _spans_source([name for name, _ in files])
            if self.derived:
                _build_derived(con, self.derived, [name for name, _ in files])
            for table, sql in SPAN_SETS.items():
                con.execute(
                    f"CREATE TABLE out.{table} AS {sql.replace('__SPANS__', spans)} ORDER BY start_time"
                )
            con.execute("DETACH out")
        finally:
            self._building = None
            con.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
        self.builds += 1
        for old in path.parent.glob("*.duckdb"):
            if old != path:
                old.unlink(missing_ok=True)


def held_whole_sql(made: CachedRuns) -> str:
    """SQL: the hashes of the traces the open days' snapshot of ``made`` holds whole (no partial
    in a closed day, or in a file that came after it)."""
    if made.today is None:
        return "SELECT NULL::UBIGINT AS h WHERE false"
    later = "" if made.after is None else f" WHERE h NOT IN (SELECT h FROM {made.after})"
    return f"SELECT h FROM {made.today}.whole{later}"


def derived_rows(runs: RunSet, derived: Derived) -> str:
    """SQL of ``derived``'s rows of the runs of ``runs`` (read as the relation ``runs``, as
    ``RunSet.rows`` defines it), their ``trace_id`` as ``h``, the run's key among the set's
    (``hash(tenant, trace_id)``, to join them on): for a set from the cache, the closed
    days' from the cache's table (by the set's scope, and by the runs themselves when the set
    was narrowed) and the live runs' (the open days', the split traces') from ``spans`` since
    their first day; else every run's from ``spans``, since the day before the set's window."""
    scope, made = runs.scope, runs.cached
    tenant = "" if scope.tenant is None else f" AND tenant = '{_quote(scope.tenant)}'"

    def live(spans_from: date, relation: str) -> str:
        spans = f"(SELECT * FROM spans WHERE date >= '{spans_from.isoformat()}'::DATE{tenant})"
        rows = derived.sql.replace("__SPANS__", spans).replace("__RUNS__", relation)
        return f"SELECT * EXCLUDE (trace_id), hash(tenant, trace_id) AS h FROM ({rows})"

    if made is None or derived.name not in made.derived:  # not from a cache that keeps it
        return live(since_date(scope.since), "runs")
    where = (
        f"run_start >= '{scope.since.isoformat()}'::TIMESTAMPTZ"
        f" AND run_start < '{scope.until.isoformat()}'::TIMESTAMPTZ{tenant}"
    )
    if made.agent is not None:
        where += f" AND run_agent = '{_quote(made.agent)}'"
    if scope.synthetic is not None:
        where += f" AND {'' if scope.synthetic else 'NOT '}run_synthetic"
    hints = where  # the set's scope: a superset of its runs (the rows are sorted so)
    if made.split is not None:
        where += f" AND h NOT IN (SELECT h FROM {made.split})"
    if runs.narrowed:
        where += " AND h IN (SELECT hash(tenant, trace_id) FROM runs)"
    table = f"{made.alias}.{_DERIVED}{derived.name}"
    cached = f"SELECT * EXCLUDE (run_agent, run_start, run_synthetic) FROM {table} WHERE {where}"
    # The live runs of the set: all its scope's (but eval traffic, as the scope says) unless narrowed.
    relation = f"SELECT l.*, {AGENT_SQL} AS agent FROM {made.live} l"
    conditions = []
    if runs.narrowed:
        relation += " SEMI JOIN runs USING (tenant, trace_id)"
    else:
        conditions.append(_SYNTHETIC[scope.synthetic])
    snapshot = ""
    if made.today is not None:
        # The runs the snapshot of the open days holds whole (not across midnight, no partial
        # in a later file), from it; the others made live.
        covered = held_whole_sql(made)
        mine = f"({relation}{' WHERE ' + ' AND '.join(conditions) if conditions else ''})"
        table = f"{made.today}.{_DERIVED}{derived.name}"
        snapshot = f"""UNION ALL BY NAME
            SELECT * EXCLUDE (run_agent, run_start, run_synthetic) FROM {table}
            WHERE {hints} AND h IN ({covered}) AND h IN (SELECT hash(tenant, trace_id) FROM {mine})"""
        conditions.append(f"hash(l.tenant, l.trace_id) NOT IN ({covered})")
    ours = f"({relation}{' WHERE ' + ' AND '.join(conditions) if conditions else ''})"
    return f"{cached} UNION ALL BY NAME {live(made.live_from, ours)} {snapshot}"


def _label(con: duckdb.DuckDBPyConnection, cache: str, scope: Scope) -> str:
    """``storage.runs.resolve_agent`` for ``scope.agent``: the agent itself when a cached run of
    the scope's days, tenant and traffic is labelled so (the common case, a few row groups), else
    resolved on the partials."""
    first = since_date(scope.since)
    where = f"start_time >= '{first.isoformat()}'::TIMESTAMPTZ AND {_LABEL} = $agent"
    if scope.tenant is not None:
        where += f" AND tenant = '{_quote(scope.tenant)}'"
    if scope.synthetic is not None:
        where += f" AND {'' if scope.synthetic else 'NOT '}coalesce(synthetic, false)"
    agent = str(scope.agent)
    found = con.execute(f"SELECT EXISTS (SELECT 1 FROM {cache}.runs WHERE {where})", {"agent": agent})
    if found.fetchall()[0][0]:
        return agent
    return resolve_agent(con, agent, first, scope.tenant, scope.synthetic)


_merging_caches: weakref.WeakSet[RunCache] = weakref.WeakSet()
"""Caches merging on a background thread now."""


@atexit.register
def _stop_merges() -> None:
    for cache in list(_merging_caches):
        cache._stop_merging(timeout=10.0)


def _build_derived(con: duckdb.DuckDBPyConnection, derived: tuple[Derived, ...], files: list[str]) -> None:
    """The ``derived`` tables of the cache being merged (attached as ``out``, its runs and
    places there) from the span ``files``, a few days of runs at a time (every span of those
    runs, from the partitions the places name: memory stays bounded however long the history),
    then sorted into place."""
    con.execute("SET TimeZone = 'UTC'")
    days = con.execute(
        "SELECT tenant, start_time::DATE AS day, count(*) FROM out.runs GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    by_partition: dict[tuple[str, date], list[str]] = {}
    for name in files:
        found = _PARTITION.search(name)
        if found is not None:
            key = (found.group(1), date.fromisoformat(found.group(2)))
            by_partition.setdefault(key, []).append(name)
    made: set[str] = set()
    for chunk in _chunks(days, DERIVED_CHUNK_RUNS):
        keys = ", ".join(f"('{_quote(tenant)}', '{day.isoformat()}'::DATE)" for tenant, day in chunk)
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE chunk_runs AS SELECT *, {_LABEL} AS agent FROM out.runs
                WHERE (tenant, start_time::DATE) IN (VALUES {keys})"""
        )
        places = con.execute(
            """SELECT DISTINCT tenant, date FROM out.places
               WHERE (tenant, th) IN (SELECT (tenant, hash(trace_id)) FROM chunk_runs)"""
        ).fetchall()
        if all((t, d) in by_partition for t, d in places):
            chosen = sorted({name for t, d in places for name in by_partition[t, d]})
        else:  # a partition named otherwise than its directory: every file, to be exact
            chosen = files
        spans = _spans_source(chosen)
        for d in derived:
            rows = d.sql.replace("__SPANS__", spans).replace("__RUNS__", "chunk_runs")
            into = "INSERT INTO" if d.name in made else "CREATE TEMP TABLE"
            con.execute(
                f"""{into} {_DERIVED}{d.name} {"" if d.name in made else "AS"}
                    SELECT x.* EXCLUDE (trace_id), r.{_HASH} AS h, r.{_LABEL} AS run_agent,
                           r.start_time AS run_start, coalesce(r.synthetic, false) AS run_synthetic
                    FROM ({rows}) x JOIN chunk_runs r USING (tenant, trace_id)"""
            )
            made.add(d.name)
    for d in derived:
        if d.name in made:
            con.execute(
                f"""CREATE TABLE out.{_DERIVED}{d.name} AS SELECT * FROM {_DERIVED}{d.name}
                    ORDER BY tenant, {", ".join(d.order)}"""
            )
            con.execute(f"DROP TABLE {_DERIVED}{d.name}")
        else:  # no run: the table's columns, no rows
            rows = d.sql.replace("__SPANS__", _spans_source([])).replace(
                "__RUNS__", f"(SELECT *, {_LABEL} AS agent FROM out.runs)"
            )
            con.execute(
                f"""CREATE TABLE out.{_DERIVED}{d.name} AS
                    SELECT x.* EXCLUDE (trace_id), r.{_HASH} AS h, r.{_LABEL} AS run_agent,
                           r.start_time AS run_start, coalesce(r.synthetic, false) AS run_synthetic
                    FROM ({rows}) x JOIN out.runs r USING (tenant, trace_id) LIMIT 0"""
            )


def _chunks(days: list[tuple[str, date, int]], runs: int) -> list[list[tuple[str, date]]]:
    """``days`` (tenant, day, runs) in consecutive groups of about ``runs`` runs (a day more
    than that is a group of its own)."""
    out: list[list[tuple[str, date]]] = [[]]
    count = 0
    for tenant, day, n in days:
        if out[-1] and count + n > runs:
            out.append([])
            count = 0
        out[-1].append((tenant, day))
        count += n
    return out if out[-1] else []


def _attach_file(con: duckdb.DuckDBPyConnection, path: Path, alias: str) -> str | None:
    """``path`` attached to ``con`` read-only as ``alias`` (already, or now); None when the file
    is gone (a newer merge replaced it)."""
    if _attached(con, alias):
        return alias
    try:
        con.execute(f"ATTACH '{_quote(str(path))}' AS {alias} (READ_ONLY)")
    except duckdb.IOException:
        return None
    except duckdb.Error:
        # Another cursor of the same catalog attached it between the look and here.
        if not _attached(con, alias):
            raise
    return alias


def _attached(con: duckdb.DuckDBPyConnection, alias: str) -> bool:
    found = con.execute("SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [alias])
    return bool(found.fetchall()[0][0])


def _span_files(data_dir: Path, cutoff: date) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    """The live span files of dates before ``cutoff`` (closed) and from it on (open), each with
    whether its partials exist: one listing of the data directory."""
    closed: list[tuple[str, bool]] = []
    open_days: list[tuple[str, bool]] = []
    for name in live_files(data_dir, SPANS):
        found = _DATE.search(name)
        if found is not None:
            side = closed if date.fromisoformat(found.group(1)) < cutoff else open_days
            side.append((name, parts_path(data_dir, Path(name)).exists()))
    return closed, open_days


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _spans_source(files: list[str]) -> str:
    """SQL: the spans of ``files``, every span column there (null) however old the file (the
    catalog's ``spans``; ``_span_columns`` registered)."""
    typed = "(SELECT *, NULL::VARCHAR AS tenant, NULL::DATE AS date FROM _span_columns)"
    if not files:
        return typed
    return f"(SELECT * FROM {read_parquet_sql(files)} UNION ALL BY NAME SELECT * FROM {typed})"


def _parts_source(con: duckdb.DuckDBPyConnection, data_dir: Path, files: list[tuple[str, bool]]) -> str:
    """SQL: the partials of ``files`` (span files without partials rolled up here, as the catalog
    does), as ``run_parts`` rows."""
    con.register("_span_columns", SPAN_SCHEMA.empty_table().drop_columns(["tenant"]))
    listed = [str(parts_path(data_dir, Path(name))) for name, has in files if has]
    missing = [name for name, has in files if not has]
    # Rolled from the span files without partials, or from none: either way every partial
    # column is there (null) even when the partial files were written before it existed.
    empty = "(SELECT *, NULL::VARCHAR AS tenant, NULL::DATE AS date FROM _span_columns LIMIT 0)"
    source = f"(SELECT * FROM {read_parquet_sql(missing)})" if missing else empty
    every = f"(SELECT * FROM {source} UNION ALL BY NAME SELECT * FROM _span_columns)"
    pieces = [parts_sql("tenant, date, trace_id", every)]
    if listed:
        pieces.insert(0, f"SELECT * FROM {read_parquet_sql(listed)}")
    return " UNION ALL BY NAME ".join(pieces)


def _quote(text: str) -> str:
    return text.replace("'", "''")
