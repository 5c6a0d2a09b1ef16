"""Parquet layout and the DuckDB views, on canonical rows written by the parquet exporter."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa

from core.component import ExporterSettings
from core.model import SPAN_SCHEMA
from exporters import parquet
from storage.catalog import connect
from tests.helpers.span_rows import fixture_rows


def write(tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    exporter = parquet.create(parquet.Config(), ExporterSettings("parquet", tmp_path))
    exporter.consume(pa.Table.from_pylist(rows, schema=SPAN_SCHEMA))


def test_partitioned_zstd_files_without_partition_columns(tmp_path: Path) -> None:
    write(tmp_path, fixture_rows())
    files = sorted(str(p.relative_to(tmp_path)).rsplit("/", 1)[0] for p in tmp_path.rglob("*.parquet"))
    assert files == [
        "run_parts/tenant=acme/date=2025-11-22",
        "run_parts/tenant=globex/date=2025-11-23",
        "spans/tenant=acme/date=2025-11-22",
        "spans/tenant=globex/date=2025-11-23",
    ]
    import pyarrow.parquet as pq

    one = next(tmp_path.rglob("spans/tenant=acme/*/*.parquet"))
    meta = pq.ParquetFile(one).metadata
    assert meta.num_rows == 8
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert "tenant" not in pq.read_schema(one).names
    assert not list(tmp_path.rglob("*.tmp"))


def test_spans_view_has_every_canonical_column(tmp_path: Path) -> None:
    write(tmp_path, fixture_rows())
    con = connect(tmp_path)
    columns = [r[0] for r in con.execute("DESCRIBE spans").fetchall()]
    assert set(SPAN_SCHEMA.names) <= set(columns)
    assert con.execute("SELECT tenant, date, count(*) FROM spans GROUP BY ALL ORDER BY ALL").fetchall() == [
        ("acme", dt.date(2025, 11, 22), 8),
        ("globex", dt.date(2025, 11, 23), 1),
    ]


def test_runs_roll_up(tmp_path: Path) -> None:
    write(tmp_path, fixture_rows())
    con = connect(tmp_path)
    got = con.execute(
        "SELECT trace_id[1:1], span_id[1:1], tenant, agent_id, agent_owner, user_id, session_id, duration_ms, "
        "outcome, failure_type, failing_span_id[1:1], tool_errors, input_tokens, output_tokens, "
        "cost_usd, span_count FROM runs ORDER BY trace_id"
    ).fetchall()
    assert got == [
        (
            "a",
            "1",
            "acme",
            "expense-bot",
            "alice@acme.com",
            "alice@acme.com",
            None,
            1000.0,
            "success",
            None,
            None,
            0,
            100,
            20,
            0.01,
            2,
        ),
        (
            "b",
            "1",
            "acme",
            "expense-bot",
            "alice@acme.com",
            "bob@acme.com",
            None,
            30000.0,
            "failure",
            "tool_timeout",
            "3",
            1,
            50,
            5,
            None,
            3,
        ),
        (
            "c",
            "1",
            "acme",
            "expense-bot",
            "alice@acme.com",
            "carol@acme.com",
            "s9",
            2000.0,
            "degraded",
            "tool_error",
            "2",
            1,
            None,
            None,
            None,
            3,
        ),
        (
            "d",
            "1",
            "globex",
            None,
            None,
            None,
            None,
            10.0,
            "failure",
            "other_error",
            "1",
            0,
            None,
            None,
            None,
            1,
        ),
    ]
    columns = {r[0] for r in con.execute("DESCRIBE runs").fetchall()}
    required = {
        "trace_id",
        "span_id",
        "tenant",
        "agent_id",
        "agent_name",
        "agent_owner",
        "user_id",
        "session_id",
        "start_time",
        "duration_ms",
        "outcome",
        "failure_type",
        "failing_span_id",
        "tool_errors",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "cost_usd",
    }
    assert required <= columns


def test_views_work_before_any_data(tmp_path: Path) -> None:
    con = connect(tmp_path / "empty")
    assert con.execute("SELECT count(*) FROM spans").fetchall() == [(0,)]
    assert con.execute("SELECT count(*) FROM runs").fetchall() == [(0,)]


def test_span_files_written_before_a_column_existed_read_it_as_null(tmp_path: Path) -> None:
    """Files without ``cost_source`` (written before the cost processor) still answer queries
    naming it: the view has every span column, typed."""
    import pyarrow.parquet as pq

    older = SPAN_SCHEMA.remove(SPAN_SCHEMA.get_field_index("cost_source")).remove(0)  # and no tenant
    directory = tmp_path / "spans" / "tenant=acme" / "date=2025-03-04"
    directory.mkdir(parents=True)
    pq.write_table(older.empty_table(), directory / "part-old.parquet")
    con = connect(tmp_path)
    assert con.execute("SELECT count(cost_source), count(*) FROM spans").fetchall() == [(0, 0)]
    assert [name for (name, *_) in con.execute("DESCRIBE spans").fetchall()][-3:] == [
        "events",
        "tenant",
        "date",
    ]
