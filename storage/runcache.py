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

import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable
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
STEP_COLUMNS = ("operation", "step", "model", "failed", "failure_type", "duration_ms")
"""A step row: a span of a run as the agent page counts its steps (the span's tool, else its name)."""
STEP_SQL = (
    f"operation, coalesce(tool_name, name) AS step, model, {span_failed_sql()} AS failed, failure_type,"
    " duration_ms"
)
_STEPS = f"""
    SELECT s.tenant, r.agent, r.start_time AS run_start, r.h, {STEP_SQL}
    FROM __SPANS__ s JOIN (SELECT tenant, {{label}} AS agent, start_time, {{hash}} AS h FROM out.runs) r
      ON hash(s.tenant, s.trace_id) = r.h
    ORDER BY s.tenant, r.agent, r.start_time"""
"""The cache's ``steps``: every closed-day span's step row, with its run's tenant, agent label,
start and trace hash (sorted so one agent's window is a few row groups)."""
_MODEL_SQL = (
    f"places, {runs_sql('__PARTS__')}\n{parts_sql('tenant, date, trace_id', '__SOURCE__')}\n{SPAN_SETS}"
    f"\n{_STEPS}"
)
_LAYOUT = 2
"""The cache file's own layout (its tables, columns and sort): raised when ``_build`` changes."""
_MODEL = hashlib.blake2b(
    f"{_MODEL_SQL}\n{CACHED_COLUMNS}\n{duckdb.__version__}\n{_LAYOUT}".encode(), digest_size=8
).hexdigest()
"""The run model's SQL, the cached columns, DuckDB's version (its ``hash``) and the layout: any
changed, every key changes."""
_HASH = "trace_hash"
_LABEL = "label"
"""The cached runs' agent label (``AGENT_SQL``), a column to filter one agent's runs on: they are
sorted by tenant, day, label and start, so a window's days, and one agent's runs in each, are
a few row groups and vectors."""
_DATE = re.compile(r"/date=(\d{4}-\d{2}-\d{2})/")
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
        self, data_dir: Path, clock: Callable[[], datetime] | None = None, wait: bool = False
    ) -> None:
        """``clock``: now, whose UTC date is the first open day (tests and the benchmark set it).
        ``wait``: a view finding the cache missing merges it first; by default it is merged on a
        background thread (seconds on millions of runs) and views read the partials meanwhile,
        as ``storage.runs.runs_in`` does."""
        self.data_dir = Path(data_dir)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.wait = wait
        self.directory = self.data_dir / CACHE_DIR
        self._lock = threading.Lock()
        self._merging: threading.Thread | None = None
        self.builds = 0
        """How many times this object merged the closed days (tests read it)."""

    def cutoff(self) -> date:
        """The first open day: today (UTC)."""
        return self.clock().astimezone(UTC).date()

    def closed(self, cutoff: date | None = None) -> Path:
        """The cache file of the closed days before ``cutoff`` (today), merged now if missing."""
        cutoff = cutoff or self.cutoff()
        path, files = self._current(cutoff)
        with self._lock:
            if not path.exists():
                self._build(path, files)
        return path

    def join(self, timeout: float | None = None) -> None:
        """Wait for a background merge, if one runs (tests)."""
        merging = self._merging
        if merging is not None:
            merging.join(timeout)

    def _ready(self, con: duckdb.DuckDBPyConnection, cutoff: date) -> str | None:
        """The cache attached to ``con`` (its name there), or None while it is being merged."""
        if self.wait:
            return self._attach(con, cutoff)
        path, files = self._current(cutoff)
        if path.exists():
            return self._attach(con, cutoff, path)
        with self._lock:
            if self._merging is None or not self._merging.is_alive():
                self._merging = threading.Thread(
                    target=self._merge_aside, args=(path, files), name="run-cache", daemon=True
                )
                self._merging.start()
        return None

    def _merge_aside(self, path: Path, files: list[tuple[str, bool]]) -> None:
        try:
            with self._lock:
                if not path.exists():
                    self._build(path, files)
        except (duckdb.Error, OSError):
            # Views go on reading the partials; the next view that finds it missing tries again.
            log.exception("run cache: merging the closed days into %s failed", path)

    def _current(self, cutoff: date) -> tuple[Path, list[tuple[str, bool]]]:
        """The cache file the closed days' files make now (maybe not merged yet), and the files."""
        files = _closed_span_files(self.data_dir, cutoff)
        digest = hashlib.blake2b(f"{_MODEL}\n{cutoff}".encode(), digest_size=16)
        for name, has_parts in files:
            digest.update(f"{name}\t{has_parts}\n".encode())
        return self.directory / f"{digest.hexdigest()}.duckdb", files

    def places(self, con: duckdb.DuckDBPyConnection, trace_id: str) -> list[tuple[str, date]]:
        """The (tenant, date) partitions holding partials of ``trace_id``: of the closed days from
        the cache (by a hash of the id: a collision only adds a place), of the open days from
        their partials; every partial scanned when the cache is not merged yet (a trace page
        never waits for the merge)."""
        cutoff = self.cutoff()
        path, _ = self._current(cutoff)
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
        cache = self._ready(con, cutoff)
        if cache is None:
            return runs_in(con, scope, extra, base)
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
        if materialize:
            con.execute(f"DROP TABLE {live}")
        made = CachedRuns(cache, cutoff, split, scope.since, scope.until, scope.tenant, label)
        return RunSet(con, scope, tuple(selected), view, _view=not materialize, cached=made)

    def steps(self, con: duckdb.DuckDBPyConnection, runs: RunSet) -> str:
        """SQL of the step rows (``STEP_COLUMNS``) of the spans of ``runs``' traces, reading
        ``runs`` as the relation ``runs`` (for ``runs.rows``): of the closed days from the
        cache's ``steps`` when the set came from the cache, else (and of the open days) from
        ``spans``, of the partitions from the day before the set's window on."""
        tenant = "" if runs.scope.tenant is None else f" AND tenant = '{_quote(runs.scope.tenant)}'"
        made = runs.cached
        first = since_date(runs.scope.since)
        if made is None:
            return f"""SELECT {STEP_SQL} FROM spans SEMI JOIN runs USING (tenant, trace_id)
                       WHERE date >= '{first.isoformat()}'::DATE{tenant}"""
        # Pruned by the set's own scope (a narrowed set's runs are among them; sorted so), exact
        # by the traces' hashes; the split traces' closed spans by hash alone.
        hint = (
            f"run_start >= '{made.since.isoformat()}'::TIMESTAMPTZ"
            f" AND run_start < '{made.until.isoformat()}'::TIMESTAMPTZ"
        )
        if made.tenant is not None:
            hint += f" AND tenant = '{_quote(made.tenant)}'"
        if made.agent is not None:
            hint += f" AND agent = '{_quote(made.agent)}'"
        ours = "h IN (SELECT hash(tenant, trace_id) FROM runs)"
        closed = f"SELECT {', '.join(STEP_COLUMNS)} FROM {made.alias}.steps WHERE "
        pieces = [closed + f"{hint} AND {ours}"]
        if made.split is not None:
            pieces[0] += f" AND h NOT IN (SELECT h FROM {made.split})"
            pieces.append(closed + f"h IN (SELECT h FROM {made.split}) AND {ours}")
        pieces.append(
            f"""SELECT {STEP_SQL} FROM spans SEMI JOIN runs USING (tenant, trace_id)
                WHERE date >= '{max(first, made.cutoff).isoformat()}'::DATE{tenant}"""
        )
        return " UNION ALL ".join(pieces)

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
        cache = self._ready(con, cutoff) if first < cutoff else None
        if cache is None:
            every = f"(SELECT * FROM spans WHERE {where})"
            con.execute(f"CREATE TEMP VIEW {view} AS {sql.replace('__SPANS__', every)}")
            return view
        live = f"(SELECT * FROM spans WHERE {where} AND date >= '{cutoff.isoformat()}'::DATE)"
        con.execute(
            f"""CREATE TEMP VIEW {view} AS SELECT * FROM {cache}.{which} WHERE {where}
                UNION ALL BY NAME {sql.replace("__SPANS__", live)}"""
        )
        return view

    def _attach(self, con: duckdb.DuckDBPyConnection, cutoff: date, known: Path | None = None) -> str | None:
        """Attach the cache (merged first if need be; ``known``: that file only, never merged)
        to ``con``, read-only; its name there (None: ``known`` is gone)."""
        for _ in range(1 if known else 3):
            path = known or self.closed(cutoff)
            alias = f"run_cache_{path.stem[:16]}"
            if _attached(con, alias):
                return alias
            try:
                con.execute(f"ATTACH '{_quote(str(path))}' AS {alias} (READ_ONLY)")
                return alias
            except duckdb.IOException:
                continue  # replaced by a newer merge between the listing and here: list again
            except duckdb.Error:
                # Another cursor of the same catalog attached it between the look and here.
                if _attached(con, alias):
                    return alias
                raise
        return None

    def _build(self, path: Path, files: list[tuple[str, bool]]) -> None:
        """Merge the closed days' partials into ``path`` (written aside, renamed into place), and
        remove older keys' files (a connection holding one attached keeps reading it)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{path.name}.tmp"
        for left in (tmp, tmp.with_name(f"{tmp.name}.wal")):  # a merge killed half-way
            left.unlink(missing_ok=True)
        con = duckdb.connect(":memory:")
        try:
            con.execute("SET enable_progress_bar = false")
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
            places = "SELECT DISTINCT hash(trace_id) AS th, tenant, date FROM parts ORDER BY th"
            con.execute(f"CREATE TABLE out.places AS {places}")
            spans = _spans_source([name for name, _ in files])
            steps = _STEPS.replace("__SPANS__", spans).replace("{hash}", _HASH).replace("{label}", _LABEL)
            con.execute(f"CREATE TABLE out.steps AS {steps}")
            for table, sql in SPAN_SETS.items():
                con.execute(
                    f"CREATE TABLE out.{table} AS {sql.replace('__SPANS__', spans)} ORDER BY start_time"
                )
            con.execute("DETACH out")
        finally:
            con.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(self.directory)
        self.builds += 1
        for old in self.directory.glob("*.duckdb"):
            if old != path:
                old.unlink(missing_ok=True)


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


def _attached(con: duckdb.DuckDBPyConnection, alias: str) -> bool:
    found = con.execute("SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [alias])
    return bool(found.fetchall()[0][0])


def _closed_span_files(data_dir: Path, cutoff: date) -> list[tuple[str, bool]]:
    """The live span files of dates before ``cutoff``, each with whether its partials exist."""
    out = []
    for name in live_files(data_dir, SPANS):
        found = _DATE.search(name)
        if found is None or date.fromisoformat(found.group(1)) >= cutoff:
            continue
        out.append((name, parts_path(data_dir, Path(name)).exists()))
    return out


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
