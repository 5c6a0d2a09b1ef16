"""OTLP requests for tests: a small agent run made by the OpenTelemetry SDK (``make_trace``), hand
built OTLP/JSON (``otlp_json``, ``json_span``) and protobuf requests of named spans (``request``)."""

from __future__ import annotations

import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

T0 = 1_763_800_000_000_000_000  # 2025-11-22T08:26:40Z


def make_trace(service: str = "expense-bot-svc") -> list[ReadableSpan]:
    """A small agent run: invoke_agent → chat (with an event) → execute_tool that fails."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "deployment.environment": "prod"})
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("agent-sdk", "1.2.3")
    with tracer.start_as_current_span(
        "invoke_agent expense-bot",
        kind=SpanKind.INTERNAL,
        start_time=T0,
        end_on_exit=False,
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.id": "expense-bot",
            "gen_ai.agent.name": "Expense Bot",
            "user.id": "carol@acme.com",
            "session.id": "s-1",
        },
    ) as run:
        with tracer.start_as_current_span(
            "chat gpt-4o",
            kind=SpanKind.CLIENT,
            start_time=T0 + 1_000_000,
            end_on_exit=False,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 30,
                "retries": [1, 2],
                "temperature": 0.25,
                "stream": False,
            },
        ) as chat:
            chat.add_event("gen_ai.choice", {"index": 0}, timestamp=T0 + 2_000_000)
            chat.end(end_time=T0 + 501_000_000)
        with tracer.start_as_current_span(
            "execute_tool lookup_receipt",
            start_time=T0 + 600_000_000,
            end_on_exit=False,
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_receipt"},
        ) as tool:
            tool.set_status(Status(StatusCode.ERROR, "receipt service returned 503"))
            tool.end(end_time=T0 + 700_000_000)
        run.set_status(Status(StatusCode.OK))
        run.end(end_time=T0 + 900_000_000)
    provider.shutdown()
    return list(memory.get_finished_spans())


def otlp_json(*spans: dict[str, object]) -> dict[str, object]:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": "json-svc"}},
                        {"key": "agentwatch.tenant", "value": {"stringValue": "acme"}},
                    ]
                },
                "scopeSpans": [{"scope": {"name": "hand"}, "spans": list(spans)}],
            }
        ]
    }


def json_span(trace_id: str, span_id: str, name: str = "agent_run", **extra: object) -> dict[str, object]:
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": "1763800000000000000",
        "endTimeUnixNano": "1763800001500000000",
        "status": {"code": 2, "message": "boom"},
        "unknownField": {"ignored": True},
        **extra,
    }


PROTO = {"content-type": "application/x-protobuf"}
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
NOW_NS = time.time_ns()


def request(
    names: list[str], trace: int = 1, start: int = NOW_NS, tenant: str | None = None
) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    if tenant is not None:
        rs.resource.attributes.add(key="tenant.id").value.string_value = tenant
    scope = rs.scope_spans.add()
    for i, name in enumerate(names):
        span = scope.spans.add()
        span.trace_id = trace.to_bytes(16, "big")
        span.span_id = (i + 1).to_bytes(8, "big")
        span.name = name
        span.start_time_unix_nano = start + i
        span.end_time_unix_nano = start + i + 1_000_000
    return req
