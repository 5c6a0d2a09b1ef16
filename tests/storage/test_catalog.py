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

T0 = 1_763_800_000_000_000_000  # 2025-11-22T08:26:40Z


def row(
    trace: str, span: str, parent: str | None, operation: str, start_ms: int, dur_ms: int, **kw: Any
) -> dict[str, Any]:
    start = T0 + start_ms * 1_000_000
    end = start + dur_ms * 1_000_000
    base: dict[str, Any] = {name: None for name in SPAN_SCHEMA.names}
    base.update(
        tenant="acme",
        trace_id=trace * 32,
        span_id=span * 16,
        parent_span_id=parent and parent * 16,
        name=operation,
        operation=operation,
        start_time=start // 1000,
        end_time=end // 1000,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        duration_ms=float(dur_ms),
        status="ok",
        synthetic=False,
        attributes="{}",
        resource_attributes="{}",
    )
    base.update(kw)
    return base


def fixture_rows() -> list[dict[str, Any]]:
    agent = {"agent_id": "expense-bot", "agent_owner": "alice@acme.com"}
    return [
        # trace a: success, tokens only on the leaf chat span
        row("a", "1", None, "agent_run", 0, 1000, user_id="alice@acme.com", **agent),
        row(
            "a",
            "2",
            "1",
            "chat",
            10,
            500,
            model="gpt-4o",
            input_tokens=100,
            output_tokens=20,
            total_tokens=120,
            cost_usd=0.01,
        ),
        # trace b: the run fails because a tool timed out under it
        row("b", "1", None, "agent_run", 100, 30000, status="error", user_id="bob@acme.com", **agent),
        row(
            "b", "2", "1", "chat", 110, 400, model="gpt-4o", input_tokens=50, output_tokens=5, total_tokens=55
        ),
        row(
            "b",
            "3",
            "1",
            "tool",
            600,
            29000,
            status="error",
            failure_type="tool_timeout",
            error_message="deadline exceeded",
        ),
        # trace c: a failed MCP call under a run that still answered → degraded
        row("c", "1", None, "agent_run", 200, 2000, user_id="carol@acme.com", session_id="s9", **agent),
        row("c", "2", "1", "mcp", 300, 100, status="error", failure_type="tool_error"),
        row("c", "3", "1", "mcp", 500, 100),
        # trace d: no agent_run span: the root is the run; another tenant and day
        row("d", "1", None, "workflow", 86_400_000, 10, tenant="globex", status="error"),
    ]


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
