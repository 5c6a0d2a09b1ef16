"""An application that emits only agent events gets the same runs and the same per-agent report as
one that emits the same behaviour as spans; a trace sent both ways counts once.

Both are sent by the OpenTelemetry SDK's own exporters to a real server: the spans with the GenAI
semantic conventions, the events as log records named ``agent.*``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

from report.formats import to_json_dict
from report.health import build_report
from storage.catalog import connect
from storage.runs import Scope, runs_in
from tests.helpers.server import ServerProcess

pytestmark = pytest.mark.process  # a real server

MS = 1_000_000


@dataclass(frozen=True)
class Run:
    """What one run did, sent either way."""

    trace: int
    user: str
    agent: str
    start: int
    latency_ms: int
    tool_failed: bool
    tokens: tuple[int, int]
    cost: float

    @property
    def failed(self) -> bool:
        return self.tool_failed


def behaviour(base: int, seed: int) -> list[Run]:
    out = []
    for i in range(12):
        agent = "expense-bot" if i % 3 else "travel-bot"
        out.append(
            Run(
                trace=(seed << 64) + i + 1,
                user=f"user-{i % 5}",
                agent=agent,
                start=base + i * 2_000 * MS,
                latency_ms=800 + 137 * i,
                tool_failed=i % 4 == 1 or (agent == "travel-bot" and i % 2 == 0),
                tokens=(900 + 10 * i, 100 + i),
                cost=round(0.001 * (i + 1), 6),
            )
        )
    return out


def send_spans(server: ServerProcess, runs: list[Run], tenant: str) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "agents", "tenant.id": tenant}))
    exporter = OTLPSpanExporter(endpoint=server.grpc_endpoint, insecure=True)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("agent-app")
    for run in runs:
        parent = set_span_in_context(
            NonRecordingSpan(SpanContext(run.trace, 0xABC, False, TraceFlags(TraceFlags.SAMPLED)))
        )
        end = run.start + run.latency_ms * MS
        agent = tracer.start_span(
            f"invoke_agent {run.agent}",
            context=parent,
            start_time=run.start,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.id": run.agent,
                "user.id": run.user,
            },
        )
        # (the fake remote parent gives the agent span a parent; the run is still its agent span)
        inside = set_span_in_context(agent)
        tool = tracer.start_span(
            "execute_tool search_expenses",
            context=inside,
            start_time=run.start + 80 * MS,
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search_expenses"},
        )
        if run.tool_failed:
            tool.set_attribute("error.type", "RateLimitError")
            tool.set_status(Status(StatusCode.ERROR, "RateLimitError"))
        else:
            tool.set_status(Status(StatusCode.OK))
        tool.end(end_time=run.start + 200 * MS)
        chat = tracer.start_span(
            "chat gpt-4o",
            context=inside,
            start_time=run.start + 300 * MS,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.provider.name": "openai",
                "gen_ai.usage.input_tokens": run.tokens[0],
                "gen_ai.usage.output_tokens": run.tokens[1],
                "gen_ai.usage.cost": run.cost,
            },
        )
        chat.set_status(Status(StatusCode.OK))
        chat.end(end_time=run.start + 900 * MS)
        if run.failed:
            agent.set_attribute("error.type", "RateLimitError")
            agent.set_status(Status(StatusCode.ERROR, "RateLimitError"))
        else:
            agent.set_status(Status(StatusCode.OK))
        agent.end(end_time=end)
    provider.shutdown()


def send_events(server: ServerProcess, runs: list[Run], tenant: str) -> None:
    provider = LoggerProvider(resource=Resource.create({"service.name": "agents", "tenant.id": tenant}))
    provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=server.grpc_endpoint, insecure=True))
    )
    logger = provider.get_logger("agent-app")

    def emit(name: str, at: int, run: Run, **fields: Any) -> None:
        attributes = {"trace_id": f"{run.trace:032x}", "agent_id": run.agent, "user_id": run.user, **fields}
        logger.emit(LogRecord(timestamp=at, event_name=name, attributes=attributes))

    for run in runs:
        emit("agent.request.started", run.start, run)
        tool: dict[str, Any] = {"tool_name": "search_expenses", "latency_ms": 120}
        if run.tool_failed:
            emit("agent.tool.failed", run.start + 200 * MS, run, error_type="RateLimitError", **tool)
        else:
            emit("agent.tool.called", run.start + 200 * MS, run, status="ok", **tool)
        emit(
            "agent.step.completed",
            run.start + 900 * MS,
            run,
            model="gpt-4o",
            provider="openai",
            tokens_prompt=run.tokens[0],
            tokens_completion=run.tokens[1],
            cost_usd=run.cost,
            latency_ms=600,
        )
        done: dict[str, Any] = {"latency_ms": run.latency_ms, "status": "error" if run.failed else "ok"}
        if run.failed:
            done["error_type"] = "RateLimitError"
        emit("agent.request.completed", run.start + run.latency_ms * MS, run, **done)
    provider.shutdown()


RUN_COLUMNS = (
    "agent_id", "user_id", "start_time", "duration_ms", "status", "outcome", "failure_type", "error_message",
    "tool_calls", "tool_errors", "input_tokens", "output_tokens", "cost_usd", "models",
)  # fmt: skip


def runs_of(server: ServerProcess, tenant: str) -> list[tuple[Any, ...]]:
    columns = ", ".join(RUN_COLUMNS)
    return server.query(
        f"SELECT right(trace_id, 8), {columns} FROM runs WHERE tenant = '{tenant}' ORDER BY trace_id"
    )


def report_of(server: ServerProcess, tenant: str, now: datetime) -> list[dict[str, Any]]:
    con = connect(server.data_dir)
    runs = runs_in(con, Scope.last(timedelta(hours=3), tenant=tenant, now=now))
    agents = to_json_dict(build_report(runs, ()), [])["agents"]
    for agent in agents:
        agent.pop("tenant")
    return sorted(agents, key=lambda a: a["agent"])


def test_events_only_give_the_same_runs_and_report_as_spans(server: ServerProcess) -> None:
    base = time.time_ns() - 40 * 60 * 10**9
    as_spans = behaviour(base, seed=1)
    as_events = behaviour(base, seed=1)  # the same behaviour, the same trace ids, another tenant
    send_spans(server, as_spans, "spans")
    send_events(server, as_events, "events")
    assert server.wait_for_count("SELECT count(*) FROM runs", 24) == 24
    from_spans = runs_of(server, "spans")
    from_events = runs_of(server, "events")
    assert from_events == from_spans
    failed = [r for r in from_spans if r[6] == "failure"]
    assert [int(r[0], 16) & 0xFF for r in failed] == [1, 2, 6, 7, 10]  # runs 0, 1, 5, 6 and 9
    assert {r[7] for r in failed} == {"rate_limit"}
    now = datetime.now(UTC)
    events_report, spans_report = report_of(server, "events", now), report_of(server, "spans", now)
    assert [a["agent"] for a in events_report] == ["expense-bot", "travel-bot"]
    for events_agent, spans_agent in zip(events_report, spans_report, strict=True):
        for key, value in spans_agent.items():
            assert (key, events_agent[key]) == (key, value)
    expense = events_report[0]
    # runs 1, 2, 4, 5, 7, 8, 10, 11; failed: 1 (user-1) and 5 (user-0)
    assert (expense["runs"], expense["failures"], expense["affected_users"]["count"]) == (8, 2, 2)
    # The health API counts the event-only runs as they are converted, like any other.
    url = f"http://127.0.0.1:{server.api_port}/api/v1/agents/expense-bot/health?window=1h&tenant=events"
    deadline = time.monotonic() + 10
    while (health := httpx.get(url).json())["runs"] < 8 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (health["runs"], health["failures"], health["failure_types"]) == (8, 2, {"rate_limit": 2})
    assert [(t["name"], t["calls"], t["errors"]) for t in health["tools"]] == [("search_expenses", 8, 2)]


def test_a_trace_sent_as_spans_and_as_events_is_counted_once(server: ServerProcess) -> None:
    base = time.time_ns() - 30 * 60 * 10**9
    runs = behaviour(base, seed=2)[:4]
    send_spans(server, runs, "acme")
    assert server.wait_for_count("SELECT count(*) FROM runs", 4) == 4
    only_spans = runs_of(server, "acme")
    send_events(server, runs, "acme")  # the same traces again, as events: in other files
    assert server.wait_for_count("SELECT count(*) FROM logs", 16) == 16
    time.sleep(0.5)
    assert runs_of(server, "acme") == only_spans
    assert server.query("SELECT count(*), sum(span_count) FROM runs") == [(4, 12)]
    # Events first, then spans of another trace set: the same again in the other order.
    later = behaviour(base + 10**9, seed=3)[:3]
    send_events(server, later, "acme")
    assert server.wait_for_count("SELECT count(*) FROM runs", 7) == 7
    send_spans(server, later, "acme")
    assert server.wait_for_count("SELECT count(*) FROM spans WHERE scope_name = 'agent-app'", 21) == 21
    time.sleep(0.5)
    assert server.query("SELECT count(*), sum(span_count) FROM runs") == [(7, 21)]
