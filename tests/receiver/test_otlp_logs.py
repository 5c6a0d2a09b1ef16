"""OTLP logs end to end: the OpenTelemetry SDK's own log exporters (gRPC and HTTP) → a real server
→ the ``logs`` view, with the same door as spans (partial success, deduplication, tenants), and
agent events becoming runs."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import httpx
import pytest
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from tests.helpers.auth import AUTH, GLOBEX
from tests.helpers.server import ServerProcess, scrape

pytestmark = pytest.mark.process  # a real server

TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"


def _provider(exporter: GrpcLogExporter | HttpLogExporter, tenant: str) -> LoggerProvider:
    resource = Resource.create({"service.name": "expense-bot-svc", "tenant.id": tenant})
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return provider


def _emit_run(provider: LoggerProvider, trace: str, base_ns: int, user: str, failed: bool) -> None:
    """One run as agent events: request started, a tool call (failed or not), a model step, done."""
    logger = provider.get_logger("expense-agent", "1.0")
    trace_id = int(trace, 16)
    common = {"trace_id": trace, "agent_id": "expense-bot", "user_id": user}
    logger.emit(
        LogRecord(
            timestamp=base_ns,
            event_name="agent.request.started",
            attributes=common,
            trace_id=trace_id,
            severity_number=SeverityNumber.INFO,
        )
    )
    tool = {**common, "tool_name": "search_expenses", "latency_ms": 120.0}
    if failed:
        tool |= {"status": "error", "error_type": "RateLimitError"}
    logger.emit(
        LogRecord(
            timestamp=base_ns + 200_000_000,
            event_name="agent.tool.failed" if failed else "agent.tool.called",
            attributes=tool,
            trace_id=trace_id,
        )
    )
    logger.emit(
        LogRecord(
            timestamp=base_ns + 900_000_000,
            event_name="agent.step.completed",
            attributes={
                **common,
                "model": "gpt-4o",
                "provider": "openai",
                "tokens_prompt": 1000,
                "tokens_completion": 200,
                "cost_usd": 0.0045,
                "latency_ms": 600.0,
            },
            trace_id=trace_id,
        )
    )
    done = {**common, "latency_ms": 1500.0, "status": "error" if failed else "ok"}
    if failed:
        done["error_type"] = "RateLimitError"
    logger.emit(
        LogRecord(
            timestamp=base_ns + 1_500_000_000,
            event_name="agent.request.completed",
            attributes=done,
            trace_id=trace_id,
        )
    )


def test_sdk_log_exporters_over_grpc_and_http_store_records_and_events_become_runs(
    server: ServerProcess,
) -> None:
    now = time.time_ns() - 60_000_000_000
    grpc = _provider(GrpcLogExporter(endpoint=server.grpc_endpoint, insecure=True), "acme")
    http_url = f"http://127.0.0.1:{server.http_port}/v1/logs"
    http = _provider(HttpLogExporter(endpoint=http_url, compression=Compression.Gzip), "globex")
    traces = [f"{i:032x}" for i in range(1, 5)]
    _emit_run(grpc, traces[0], now, "alice", failed=False)
    _emit_run(grpc, traces[1], now + 10**9, "bob", failed=True)
    _emit_run(http, traces[2], now, "carol", failed=True)
    _emit_run(http, traces[3], now + 10**9, "dave", failed=False)
    # A plain log line, with the active span context of a real span.
    grpc.get_logger("app").emit(
        LogRecord(
            timestamp=now,
            body={"msg": "hello", "n": 3},
            severity_text="WARN",
            severity_number=SeverityNumber.WARN,
            trace_id=int(TRACE, 16),
            span_id=int(SPAN, 16),
            attributes={"user.id": "erin", "gen_ai.agent.id": "expense-bot"},
        )
    )
    grpc.shutdown()
    http.shutdown()

    assert server.wait_for_count("SELECT count(*) FROM logs", 17) == 17
    by_tenant = server.query("SELECT tenant, count(*) FROM logs GROUP BY tenant ORDER BY tenant")
    assert by_tenant == [("acme", 9), ("globex", 8)]
    plain = server.query(
        "SELECT severity_number, severity_text, body, event_name, trace_id, span_id, service_name, "
        "scope_name, agent_id, user_id, time_unix_nano FROM logs WHERE event_name IS NULL"
    )
    assert plain == [(13, "WARN", '{"msg":"hello","n":3}', None, TRACE, SPAN, "expense-bot-svc", "app",
                      "expense-bot", "erin", now)]  # fmt: skip
    events = server.query(
        "SELECT event_name, count(*) FROM logs WHERE event_name IS NOT NULL GROUP BY 1 ORDER BY 1"
    )
    assert events == [
        ("agent.request.completed", 4),
        ("agent.request.started", 4),
        ("agent.step.completed", 4),
        ("agent.tool.called", 2),
        ("agent.tool.failed", 2),
    ]
    # The events became runs: one per trace, with outcome, failure type, latency, cost and user.
    assert server.wait_for_count("SELECT count(*) FROM runs", 4) == 4
    runs = server.query(
        "SELECT tenant, trace_id, agent_id, user_id, outcome, failure_type, duration_ms, tool_calls, "
        "tool_errors, input_tokens, output_tokens, round(cost_usd, 6), models, span_count "
        "FROM runs ORDER BY trace_id"
    )
    assert runs == [
        ("acme", traces[0], "expense-bot", "alice", "success", None, 1500.0, 1, 0, 1000, 200, 0.0045, ["gpt-4o"], 3),
        ("acme", traces[1], "expense-bot", "bob", "failure", "rate_limit", 1500.0, 1, 1, 1000, 200, 0.0045,
         ["gpt-4o"], 3),
        ("globex", traces[2], "expense-bot", "carol", "failure", "rate_limit", 1500.0, 1, 1, 1000, 200, 0.0045,
         ["gpt-4o"], 3),
        ("globex", traces[3], "expense-bot", "dave", "success", None, 1500.0, 1, 0, 1000, 200, 0.0045,
         ["gpt-4o"], 3),
    ]  # fmt: skip
    metrics = scrape(server)
    assert metrics[("agentwatch_receiver_accepted_log_records_total", (("receiver", "otlp"),))] == 17


def _request(records: list[dict[str, object]], tenant: str = "acme") -> dict[str, object]:
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "tenant.id", "value": {"stringValue": tenant}}]},
                "scopeLogs": [{"scope": {"name": "t"}, "logRecords": records}],
            }
        ]
    }


def test_bad_records_are_a_partial_success_duplicates_are_stored_once_and_json_works(
    server: ServerProcess,
) -> None:
    url = f"http://127.0.0.1:{server.http_port}/v1/logs"
    now = time.time_ns()
    good = {"timeUnixNano": str(now), "body": {"stringValue": "ok"}, "traceId": TRACE, "spanId": SPAN}
    bad_trace = {"timeUnixNano": str(now), "body": {"stringValue": "bad"}, "traceId": "abcd"}
    future = {"timeUnixNano": str(now + 3 * 3600 * 10**9), "body": {"stringValue": "later"}}
    untimed = {"body": {"stringValue": "no time"}}
    not_hex = {"timeUnixNano": str(now), "body": {"stringValue": "not hex"}, "traceId": "zz" * 16}
    zeros = {
        "timeUnixNano": str(now),
        "body": {"stringValue": "zeros"},
        "traceId": "0" * 32,
        "spanId": "0" * 16,
    }
    body = json.dumps(_request([good, bad_trace, future, untimed, not_hex, zeros])).encode()
    answer = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 200
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "3"
    assert partial["errorMessage"] == (
        "3 log record(s) rejected; first: log record 1: invalid trace_id 'abcd': must be empty or 16 bytes "
        "(32 hex digits)"
    )
    # The same request again (a retry), gzip this time: nothing new is stored.
    again = httpx.post(
        url,
        content=gzip.compress(body),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert again.status_code == 200
    assert server.wait_for_count("SELECT count(*) FROM logs", 3) == 3
    time.sleep(0.5)
    rows = server.query("SELECT body, trace_id, span_id, observed_time IS NOT NULL FROM logs ORDER BY body")
    # All-zero ids are no ids (null); an id that is not hex is rejected, as a span's is.
    assert rows == [("no time", None, None, True), ("ok", TRACE, SPAN, False), ("zeros", None, None, False)]
    # Protobuf, a body that does not decode: 400 and the server keeps serving.
    broken = httpx.post(url, content=b"\x0a\xff\xff", headers={"Content-Type": "application/x-protobuf"})
    assert broken.status_code == 400
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.scope_logs.add().log_records.add(time_unix_nano=now + 1, event_name="agent.retry")
    fine = httpx.post(
        url, content=request.SerializeToString(), headers={"Content-Type": "application/x-protobuf"}
    )
    assert fine.status_code == 200
    assert ExportLogsServiceResponse.FromString(fine.content).partial_success.rejected_log_records == 0
    assert server.wait_for_count("SELECT count(*) FROM logs", 4) == 4


def test_logs_are_stored_under_the_ingest_tokens_tenant_over_grpc_and_http(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f"- token: {GLOBEX}\n  tenant: globex\n")
    server = ServerProcess(tmp_path, otlp_extra=AUTH.replace("TOKENS_FILE", str(tokens))).start()
    try:
        now = time.time_ns()
        # Each request claims tenant "acme" in its resource; only the token decides.
        body = json.dumps(_request([{"timeUnixNano": str(now), "body": {"stringValue": "http"}}])).encode()
        url = f"http://127.0.0.1:{server.http_port}/v1/logs"
        headers = {"Content-Type": "application/json"}
        refused = httpx.post(url, content=body, headers=headers)
        assert refused.status_code == 401
        wrong = httpx.post(url, content=body, headers={**headers, "Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = httpx.post(url, content=body, headers={**headers, "Authorization": f"Bearer {GLOBEX}"})
        assert ok.status_code == 200
        exporter = GrpcLogExporter(
            endpoint=server.grpc_endpoint, insecure=True, headers={"authorization": f"Bearer {GLOBEX}"}
        )
        provider = _provider(exporter, "acme")
        provider.get_logger("app").emit(LogRecord(timestamp=now, body="grpc"))
        provider.shutdown()
        assert server.wait_for_count("SELECT count(*) FROM logs", 2) == 2
        rows = server.query("SELECT tenant, body FROM logs ORDER BY body")
        assert rows == [("globex", "grpc"), ("globex", "http")]
        metrics = scrape(server)
        assert (
            metrics[
                (
                    "agentwatch_receiver_refused_requests_total",
                    (("reason", "unauthenticated"), ("receiver", "otlp")),
                )
            ]
            == 2
        )
    finally:
        server.kill()


def test_genai_evaluation_events_sent_as_log_records_are_feedback(server: ServerProcess) -> None:
    now = time.time_ns() - 10**9
    provider = _provider(GrpcLogExporter(endpoint=server.grpc_endpoint, insecure=True), "acme")
    logger = provider.get_logger("evaluator")
    for name, fields in (
        ("gen_ai.evaluation.result", {"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.2,
                                      "gen_ai.evaluation.explanation": "off topic", "user.id": "alice"}),
        ("gen_ai.evaluation.result", {"gen_ai.evaluation.name": "tone", "gen_ai.evaluation.score.label": "Good"}),
        ("something.else", {"gen_ai.evaluation.name": "ignored"}),
    ):  # fmt: skip
        logger.emit(LogRecord(timestamp=now, event_name=name, attributes=fields, trace_id=int(TRACE, 16),
                              span_id=int(SPAN, 16)))  # fmt: skip
    provider.shutdown()
    assert server.wait_for_count("SELECT count(*) FROM logs", 3) == 3
    rows = server.query(
        "SELECT tenant, trace_id, span_id, user_id, name, kind, value, score, negative, label, comment, source "
        "FROM feedback ORDER BY name"
    )
    assert rows == [
        ("acme", TRACE, SPAN, "alice", "relevance", "score", 0.2, 0.2, True, None, "off topic", "otel_event"),
        ("acme", TRACE, SPAN, None, "tone", "label", None, None, False, "Good", None, "otel_event"),
    ]
