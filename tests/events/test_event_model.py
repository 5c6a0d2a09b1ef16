"""The agent event model: fields read from every carrier, the spans events stand for, and events on
spans lifted onto them, checked through the real normaliser."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from core.configmodel import build_config
from core.model import EVENT_SCOPE, OtlpBatch, OtlpRecord
from events.model import event_of, hex_id
from events.otlp import derived_spans_of_logs, event_of_log, lift_span_events
from events.spans import kv
from processors.normalize import processor as normalize

TRACE = "0af7651916cd43dd8448eb211c80319c"
T0 = 1_764_000_000_000_000_000


class Sink:
    def __init__(self) -> None:
        self.tables: list[pa.Table] = []

    def consume(self, batch: pa.Table) -> None:
        self.tables.append(batch)


def normalized(request: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    config, problems = build_config(normalize.Config, {})
    assert problems == []
    sink = Sink()
    normalize.create(config, sink).consume(OtlpBatch([OtlpRecord.from_request(request)]))
    rows: list[dict[str, Any]] = pa.concat_tables(sink.tables).to_pylist()
    return sorted(rows, key=lambda r: (r["start_time_unix_nano"], r["name"]))


def test_fields_are_read_whatever_their_spelling() -> None:
    event = event_of(
        "agent.request.completed",
        {
            "timestamp": "2025-11-24T16:00:00.250Z",
            "trace_id": TRACE.upper(),
            "span_id": "00f067aa0ba902b7",
            "agent_id": "expense-bot",
            "latency_ms": "1234.5",
            "tokens_prompt": 10.0,
            "tokens_total": -3,  # negative counts are not counts
            "cost_usd": "nan",
            "status": "FAILED",
            "custom": {"a": 1},
        },
        time_unix_nano=5,
    )
    assert event.time_unix_nano == 1_764_000_000_250_000_000
    assert event.trace_id.hex() == TRACE
    assert event.span_id.hex() == "00f067aa0ba902b7"
    assert event.numbers == {"latency_ms": 1234.5, "tokens_prompt": 10.0}
    assert event.text == {"agent_id": "expense-bot", "status": "FAILED"}
    assert event.extra == {"custom": {"a": 1}}
    assert event.failed
    # Epoch numbers in seconds, milliseconds, microseconds and nanoseconds are told apart.
    for value in (1_764_000_000, 1_764_000_000_000, 1_764_000_000_000_000, T0):
        assert event_of("agent.retry", {"timestamp": value}).time_unix_nano == T0
    assert event_of("agent.retry", {"timestamp": "not a time"}, time_unix_nano=7).time_unix_nano == 7
    assert hex_id("0af7651916cd43dd-8448-eb211c80319c", 16).hex() == TRACE
    assert hex_id("zz", 8) == b"" and hex_id("00" * 8, 8) == b"" and hex_id(12, 8) == b""
    assert not event_of("agent.tool.called", {"status": "success"}).failed
    assert event_of("agent.tool.failed", {}).failed
    assert event_of("agent.step.completed", {"error_type": "Timeout"}).failed


def _logs(*records: dict[str, Any]) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.append(kv("service.name", "agents"))
    scope = rl.scope_logs.add()
    for fields in records:
        item = scope.log_records.add(time_unix_nano=fields.pop("at"))
        name = fields.pop("name", None)
        if name:
            item.event_name = name
        if "body" in fields:
            body = fields.pop("body")
            for key, value in body.items():
                item.body.kvlist_value.values.append(kv(key, value))
        item.attributes.extend(kv(k, v) for k, v in fields.items())
    return request


def test_log_records_name_events_by_event_name_attribute_or_body() -> None:
    request = _logs(
        {"at": T0, "name": "agent.retry", "trace_id": TRACE},
        {"at": T0, "event.name": "agent.tool.failed", "tool_name": "search"},
        {
            "at": T0,
            "body": {"event": "agent.request.started", "agent_id": "a", "user_id": "u"},
            "user_id": "v",
        },
        {"at": T0, "name": "user.login"},
        {"at": T0, "body": {"msg": "hello"}},
    )
    records = request.resource_logs[0].scope_logs[0].log_records
    events = [event_of_log(r) for r in records]
    assert [e.name if e else None for e in events] == [
        "agent.retry", "agent.tool.failed", "agent.request.started", None, None
    ]  # fmt: skip
    third = events[2]
    assert third is not None and third.text == {"agent_id": "a", "user_id": "v"}  # attributes win


def test_events_of_one_run_become_its_spans() -> None:
    ms = 1_000_000
    common = {"trace_id": TRACE, "agent_id": "expense-bot", "user_id": "alice"}
    request = _logs(
        {"at": T0, "name": "agent.request.started", **common},
        {"at": T0 + 200 * ms, "name": "agent.tool.called", "tool_name": "search", "span_id": "1" * 16, **common},
        {"at": T0 + 300 * ms, "name": "agent.tool.failed", "tool_name": "search", "span_id": "1" * 16,
         "error_type": "RateLimitError", "latency_ms": 100, **common},
        {"at": T0 + 900 * ms, "name": "agent.step.completed", "model": "gpt-4o", "tokens_prompt": 100,
         "tokens_completion": 20, "cost_usd": 0.5, "latency_ms": 500, **common},
        {"at": T0 + 950 * ms, "name": "agent.fallback.triggered", "reason": "tool failing", "to": "cache",
         **common},
        {"at": T0 + 1000 * ms, "name": "agent.request.completed", "status": "error", "tokens_total": 999,
         "cost_usd": 9.0, **common},
    )  # fmt: skip
    derived = derived_spans_of_logs(request.SerializeToString())
    assert derived is not None
    assert derived.resource_spans[0].scope_spans[0].scope.name == EVENT_SCOPE
    rows = normalized(derived)
    shown = [
        (r["name"], r["operation"], r["status"], r["start_time_unix_nano"] - T0, r["duration_ms"], r["tool_name"],
         r["model"], r["input_tokens"], r["cost_usd"], r["user_id"], r["agent_id"])
        for r in rows
    ]  # fmt: skip
    # The run's own totals (9.0) are left out: its step carries usage of its own.
    assert shown == [
        ("invoke_agent expense-bot", "agent_run", "error", 0, 1000.0, None, None, None, None, "alice",
         "expense-bot"),
        ("execute_tool search", "tool", "error", 200 * ms, 100.0, "search", None, None, None, "alice",
         "expense-bot"),
        ("chat gpt-4o", "chat", "ok", 400 * ms, 500.0, None, "gpt-4o", 100, 0.5, "alice", "expense-bot"),
        ("agent.fallback.triggered", "other", "unset", 950 * ms, 0.0, None, None, None, None, "alice",
         "expense-bot"),
    ]  # fmt: skip
    run = rows[0]["span_id"]
    assert [r["parent_span_id"] for r in rows] == [None, run, run, run]
    fallback = rows[3]["attributes"]
    assert '"agent.fallback.reason":"tool failing"' in fallback and '"agent.fallback.to":"cache"' in fallback
    # ... and as the event the fallback report reads, so a fallback naming no reason counts too.
    (recorded,) = json.loads(rows[3]["events"])
    assert (recorded["name"], recorded["attributes"]) == (
        "agent.fallback.triggered", {"agent.fallback.reason": "tool failing", "agent.fallback.to": "cache"}
    )


def test_a_run_whose_steps_carry_no_usage_gets_its_totals_as_one_model_call() -> None:
    request = _logs(
        {"at": T0, "name": "agent.request.completed", "trace_id": TRACE, "model": "gpt-4o-mini",
         "tokens_prompt": 70, "tokens_completion": 30, "cost_usd": 0.25, "latency_ms": 2000},
    )  # fmt: skip
    derived = derived_spans_of_logs(request.SerializeToString())
    assert derived is not None
    rows = normalized(derived)
    assert [
        (r["operation"], r["model"], r["input_tokens"], r["output_tokens"], r["cost_usd"]) for r in rows
    ] == [
        ("chat", "gpt-4o-mini", 70, 30, 0.25),  # (the same times: by name)
        ("agent_run", "gpt-4o-mini", None, None, None),
    ]
    # Events without a trace id stand for no span.
    lonely = _logs({"at": T0, "name": "agent.request.completed", "agent_id": "x"})
    assert derived_spans_of_logs(lonely.SerializeToString()) is None


def _span_request(event_name: str, **fields: Any) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(
        trace_id=bytes.fromhex(TRACE), span_id=b"\x01" * 8, name="handle", start_time_unix_nano=T0,
        end_time_unix_nano=T0 + 10**9,
    )  # fmt: skip
    event = span.events.add(name=event_name, time_unix_nano=T0 + 10**9)
    event.attributes.extend(kv(k, v) for k, v in fields.items())
    return request


@pytest.mark.parametrize(
    ("event_name", "fields", "expected"),
    [
        ("agent.request.completed", {"agent_id": "bot", "user_id": "u1", "error_type": "Timeout"},
         ("agent_run", "error", "bot", "u1", None)),
        ("agent.tool.failed", {"tool_name": "search"}, ("tool", "error", None, None, "search")),
        ("agent.tool.called", {"tool_name": "search", "status": "ok"}, ("tool", "unset", None, None, "search")),
        ("agent.retry", {"agent_id": "bot"}, ("other", "unset", "bot", None, None)),
    ],
)  # fmt: skip
def test_an_agent_event_on_a_span_describes_that_span(
    event_name: str, fields: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    lifted = lift_span_events(_span_request(event_name, **fields).SerializeToString())
    assert lifted is not None
    (row,) = normalized(ExportTraceServiceRequest.FromString(lifted))
    assert (row["operation"], row["status"], row["agent_id"], row["user_id"], row["tool_name"]) == expected
    assert row["name"] == "handle"


def test_an_event_never_overrides_what_the_span_says_of_itself() -> None:
    request = _span_request("agent.request.completed", agent_id="from-event", error_type="Timeout")
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.extend([kv("gen_ai.agent.id", "from-span"), kv("openinference.span.kind", "CHAIN")])
    span.status.code = Status.STATUS_CODE_OK
    lifted = lift_span_events(request.SerializeToString())
    (row,) = normalized(ExportTraceServiceRequest.FromString(lifted or b""))
    assert (row["operation"], row["status"], row["agent_id"]) == ("workflow", "ok", "from-span")
    # Requests without agent events are passed on untouched, unparsed.
    plain = ExportTraceServiceRequest()
    plain.resource_spans.add().scope_spans.add().spans.add(
        name="x", trace_id=b"\x01" * 16, span_id=b"\x01" * 8
    )
    assert lift_span_events(plain.SerializeToString()) is None


def test_a_step_with_any_usage_of_its_own_leaves_the_runs_totals_out() -> None:
    # The step reports only a total: the run's totals (tokens and cost) are not summed a second time.
    request = _logs(
        {"at": T0, "name": "agent.step.completed", "trace_id": TRACE, "tokens_total": 120, "latency_ms": 10},
        {"at": T0 + 10**9, "name": "agent.request.completed", "trace_id": TRACE, "tokens_total": 120,
         "cost_usd": 0.5, "latency_ms": 2000},
    )  # fmt: skip
    derived = derived_spans_of_logs(request.SerializeToString())
    assert derived is not None
    rows = normalized(derived)
    assert [(r["operation"], r["total_tokens"], r["cost_usd"]) for r in rows] == [
        ("agent_run", None, None),
        ("chat", 120, None),
    ]
