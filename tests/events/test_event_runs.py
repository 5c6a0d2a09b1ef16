"""Runs of an application that sends only agent events, stored through the real pipeline (log
records → the spans they stand for → Parquet), read by the report's own readers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from agentwatch.config import load_config
from agentwatch.pipeline import assemble
from core.model import OtlpRecord
from events.spans import kv
from report.fallbacks import FallbackSummary, fallbacks
from report.health import IMPLICIT_COLUMNS
from storage.catalog import connect
from storage.runs import Scope, runs_in

T = datetime(2026, 11, 30, 9, tzinfo=UTC)


def _store(data: Path, events: list[tuple[str, int, dict[str, Any]]]) -> None:
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    for name, second, fields in events:
        item = scope.log_records.add(time_unix_nano=int((T + timedelta(seconds=second)).timestamp() * 1e9))
        item.event_name = name
        item.attributes.extend(kv(k, v) for k, v in fields.items())
    assembly = assemble(load_config(None).with_data_dir(str(data)))
    assembly.start()
    try:
        assembly.pipelines[0].consume_records([OtlpRecord.from_logs_request(request, "acme")])
    finally:
        assembly.shutdown()


def test_fallbacks_sent_as_events_count_with_or_without_a_reason(tmp_path: Path) -> None:
    def run(n: int, status: str) -> dict[str, Any]:
        return {"trace_id": f"{n:032x}", "agent_id": "planner", "status": status, "latency_ms": 500}

    _store(
        tmp_path,
        [
            ("agent.fallback.triggered", 1, {"trace_id": f"{1:032x}", "agent_id": "planner", "reason": "rate_limit"}),
            ("agent.request.completed", 2, run(1, "ok")),
            ("agent.fallback.triggered", 11, {"trace_id": f"{2:032x}", "agent_id": "planner"}),  # no reason
            ("agent.request.completed", 12, run(2, "error")),
            ("agent.request.completed", 22, run(3, "ok")),
            ("agent.request.completed", 32, run(4, "ok")),
        ],
    )  # fmt: skip
    runs = runs_in(connect(tmp_path), Scope(T, T + timedelta(hours=1)), IMPLICIT_COLUMNS)
    assert runs.count() == 4
    # Two of four runs fell back (one said why, one did not); one of them succeeded; both others did.
    assert fallbacks(runs)[("acme", "planner")] == FallbackSummary(
        runs=4, fell_back=2, activation_rate=0.5, reasons={"rate_limit": 1, "(no reason given)": 1},
        success_rate_with=0.5, success_rate_without=1.0,
    )  # fmt: skip
