"""The DuckDB catalog: views over the Parquet files, so analysts query plain SQL.

Each connection resolves the live files once (see ``live_files``), so its queries see one
consistent snapshot even while the server writes (files appear by atomic rename) and compacts
(replaced files stay until readers are done); open a new connection to see newer data.

``runs`` has one row per agent run (what a run is and how it is built: ``storage.runs``). It is
merged from per-file partials (``storage.runparts``); ``run_parts`` is that view, one row per
trace and span file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from core.model import LOG_SCHEMA, SPAN_SCHEMA
from storage.feedback import create_feedback_view
from storage.layout import LOGS, RUN_PARTS, SPANS, table_dir
from storage.runparts import parts_path
from storage.runs import create_runs_view, parts_sql
from storage.tables import SCHEMAS as EVAL_SCHEMAS
from storage.usage import create_usage_views


def live_files(data_dir: Path, table: str) -> list[str]:
    """The table's committed files, less those replaced by a committed compaction.

    Resolved once per connection: the connection's queries see one consistent set of files.
    """
    root = table_dir(data_dir, table)
    if not root.is_dir():
        return []
    by_dir: dict[Path, set[str]] = {}  # names are unique per directory only
    for path in root.glob("tenant=*/date=*/*.parquet"):
        by_dir.setdefault(path.parent, set()).add(path.name)
    live = []
    for directory, names in by_dir.items():
        replaced: set[str] = set()
        for sidecar in directory.glob("compact-*.json"):
            if sidecar.with_suffix(".parquet").name in names:
                replaced.update(_replaced_by(sidecar))
        live += [str(directory / n) for n in sorted(names - replaced)]
    return sorted(live)


def _replaced_by(sidecar: Path) -> list[str]:
    try:
        return [str(n) for n in json.loads(sidecar.read_text())["replaces"]]
    except FileNotFoundError:
        return []  # the merge finished while we listed: its inputs are gone too


def connect(
    data_dir: Path | str, *, read_only: bool = True, analyst_views: bool = False
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the agentwatch views over ``data_dir``.

    ``analyst_views``: the usage and cost views too (``storage.usage``: ``agentwatch query`` and
    the ledger read them); binding them costs about 0.1 s, which the report, the dashboard and
    alerting do not pay."""
    data_dir = Path(data_dir)
    con = duckdb.connect(":memory:")
    # Parquet footers read once per connection, not once per query (files are never changed in
    # place: a new file gets a new name). Readers of runs query the partials three times.
    # Global: the connection's cursors (a dashboard view's) share it.
    con.execute("SET GLOBAL parquet_metadata_cache = true")
    files = live_files(data_dir, SPANS)
    # Every span column, typed, whatever the files hold: no data yet, or only files written before
    # a column existed (it reads null), and queries and tools still work.
    empty_table(con, "_empty_spans", SPAN_SCHEMA.remove(SPAN_SCHEMA.get_field_index("tenant")))
    typed = "SELECT *, NULL::VARCHAR AS tenant, NULL::DATE AS date FROM _empty_spans"
    read = f" UNION ALL BY NAME SELECT * FROM {read_parquet_sql(files)}" if files else ""
    con.execute(f"CREATE VIEW spans AS {typed}{read}")
    parts: list[str] = []
    missing: list[str] = []
    for name in files:
        part = parts_path(data_dir, Path(name))
        (parts if part.exists() else missing).append(name)
    # Span files without partials yet are rolled up here, on the fly; every span column is
    # there (null) even when the files were written before it existed.
    empty_table(con, "_span_columns", SPAN_SCHEMA.remove(SPAN_SCHEMA.get_field_index("tenant")))
    source = read_parquet_sql(missing) if missing else "(SELECT * FROM spans LIMIT 0)"
    with_every_column = f"(SELECT * FROM {source} UNION ALL BY NAME SELECT * FROM _span_columns)"
    rolled = parts_sql("tenant, date, trace_id", with_every_column)
    listed = [str(parts_path(data_dir, Path(name))) for name in parts]
    union = f"SELECT * FROM {read_parquet_sql(listed)} UNION ALL BY NAME {rolled}" if listed else rolled
    con.execute(f"CREATE VIEW {RUN_PARTS} AS {union}")
    _logs_view(con, data_dir)
    for table, schema in EVAL_SCHEMAS.items():
        _table_view(con, data_dir, table, schema)
    create_runs_view(con)
    create_feedback_view(con)
    if analyst_views:
        create_usage_views(con)
    return con


def empty_table(con: duckdb.DuckDBPyConnection, name: str, schema: pa.Schema) -> None:
    """An empty table ``name`` of ``schema``'s columns, typed: a table of the database, so the
    connection's cursors (``con.cursor()``) see it too, as they do not a registered one."""
    con.register("_empty_arrow", schema.empty_table())
    try:
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM _empty_arrow")
    finally:
        con.unregister("_empty_arrow")


def _table_view(con: duckdb.DuckDBPyConnection, data_dir: Path, table: str, schema: pa.Schema) -> None:
    """A view over a small append-only table (eval runs, scores...), typed even when empty."""
    root = table_dir(data_dir, table)
    files = sorted(str(p) for p in root.glob("tenant=*/date=*/*.parquet")) if root.is_dir() else []
    empty_table(con, f"_empty_{table}", schema)
    partition = "NULL::VARCHAR AS tenant, NULL::DATE AS date"
    typed = f"SELECT *, {partition} FROM _empty_{table}"
    # By name with the typed empty table: a column added later reads null in older files.
    read = f" UNION ALL BY NAME SELECT * FROM {read_parquet_sql(files)}" if files else ""
    con.execute(f"CREATE VIEW {table} AS {typed}{read}")


def _logs_view(con: duckdb.DuckDBPyConnection, data_dir: Path) -> None:
    """``logs``: every log record (``core.model.LOG_SCHEMA``), typed even before any is stored."""
    empty_table(con, "_empty_logs", LOG_SCHEMA.remove(LOG_SCHEMA.get_field_index("tenant")))
    typed = "SELECT *, NULL::VARCHAR AS tenant, NULL::DATE AS date FROM _empty_logs"
    files = live_files(data_dir, LOGS)
    read = f" UNION ALL BY NAME SELECT * FROM {read_parquet_sql(files)}" if files else ""
    con.execute(f"CREATE VIEW logs AS {typed}{read}")


def read_parquet_sql(files: list[str]) -> str:
    """SQL reading ``files`` (hive-partitioned by tenant and date) as one relation."""
    listed = ", ".join(f"'{_quote(f)}'" for f in files)
    return (
        f"read_parquet([{listed}], hive_partitioning = true, union_by_name = true, "
        "hive_types = {'tenant': VARCHAR, 'date': DATE})"
    )


def _quote(text: str) -> str:
    return text.replace("'", "''")


Row = dict[str, Any]


def rows_of(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
    """Result rows as dicts (results here are small: fetched as Python values, no Arrow)."""
    cursor = con.execute(sql, params or {})
    columns = [d[0] for d in cursor.description or []]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
