"""Canonical span rows written in process by the parquet exporter: the small hand-computed
fixture of the catalog, run partial and read-model tests (``row`` fills the columns not given)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from core.component import ExporterSettings
from core.model import SPAN_SCHEMA
from exporters import parquet

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


def export(data_dir: Path, *batches: list[dict[str, Any]]) -> None:
    exporter = parquet.create(parquet.Config(), ExporterSettings("parquet", data_dir))
    for rows in batches:
        exporter.consume(pa.Table.from_pylist(rows, schema=SPAN_SCHEMA))


def split_rows() -> list[dict[str, Any]]:
    """Trace e over three batches: a failing step first, the run span last, a late chat span."""
    return [
        row("e", "2", "1", "tool", 50, 10, status="error", failure_type="tool_error", error_message="boom 1"),
        row(
            "e", "3", "1", "tool", 70, 10, status="error", failure_type="tool_timeout", error_message="late 2"
        ),
        row("e", "1", None, "agent_run", 0, 500, user_id="erin@acme.com", agent_id="expense-bot"),
        row("e", "4", "1", "chat", 90, 10, model="claude", input_tokens=7, total_tokens=7, cost_usd=0.5),
    ]
