"""Spans dated far from now are rejected at the door, with a partial success naming the reason,
on gRPC and HTTP alike (issue 10: "bound partitions per flush").

Before, 2,000 spans dated 1971 were acknowledged into a ``date=1971-01-01`` partition of their
own, which retention then deleted; spans dated years ahead opened partitions of their own too.
Now a span that started before the retention window (``storage.compaction.retention``, when set)
or more than ``max_future_skew`` (1h) ahead of the server's clock is rejected; replaying the log
never applies the window (what was acknowledged is kept).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from grpc import aio
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from agentwatch.config import parse_config
from agentwatch.service import Service
from core.component import ReceiverSettings
from core.model import OtlpRecord
from receiver import memory
from receiver.otlp import receiver as otlp
from receiver.otlp.handler import TimeWindow, screen_spans
from receiver.otlp.otlp_json import request_to_json
from tests.helpers.otlp import EXPORT, PROTO, request

HOUR = 3600 * 10**9
DAY = 24 * HOUR
RETENTION = 30 * 86400.0
NANOS_1971 = int(datetime(1971, 1, 1, tzinfo=UTC).timestamp()) * 10**9


class ImmediateSink:
    def __init__(self) -> None:
        self.records: list[OtlpRecord] = []

    def submit(self, record: OtlpRecord) -> Future[None]:
        self.records.append(record)
        done: Future[None] = Future()
        done.set_result(None)
        return done


def dated(starts: dict[str, int], trace: int) -> ExportTraceServiceRequest:
    """One span per name, starting at its time."""
    req = request(list(starts), trace=trace)
    for span in req.resource_spans[0].scope_spans[0].spans:
        span.start_time_unix_nano = starts[span.name]
        span.end_time_unix_nano = starts[span.name] + 1_000_000
    return req


def stored_names(sink: ImmediateSink) -> list[str]:
    return sorted(
        span.name
        for record in sink.records
        for rs in ExportTraceServiceRequest.FromString(record.payload).resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    )


def export_all(
    config: otlp.Config, retention: float, bodies: list[tuple[str, bytes]]
) -> tuple[list[ExportTraceServiceResponse], ImmediateSink]:
    """Each (transport, body) through a real receiver on loopback ports: the answers, the sink."""
    sink = ImmediateSink()
    receiver = otlp.create(config, ReceiverSettings("otlp", sink, retention=retention))

    async def scenario() -> list[ExportTraceServiceResponse]:
        await receiver.start()
        ports = receiver.endpoints()
        answers = []
        try:
            async with (
                httpx.AsyncClient() as client,
                aio.insecure_channel(f"127.0.0.1:{ports['grpc']}") as channel,
            ):
                for transport, body in bodies:
                    if transport == "grpc":
                        answer = await channel.unary_unary(EXPORT)(body, timeout=10)
                        answers.append(ExportTraceServiceResponse.FromString(answer))
                        continue
                    url = f"http://127.0.0.1:{ports['http']}/v1/traces"
                    headers = PROTO if transport == "http" else {"content-type": "application/json"}
                    response = await client.post(url, content=body, headers=headers)
                    assert response.status_code == 200, response.text
                    if transport == "http":
                        answers.append(ExportTraceServiceResponse.FromString(response.content))
                    else:
                        doc = orjson.loads(response.content)
                        answer = ExportTraceServiceResponse()
                        if "partialSuccess" in doc:
                            answer.partial_success.rejected_spans = int(
                                doc["partialSuccess"]["rejectedSpans"]
                            )
                            answer.partial_success.error_message = doc["partialSuccess"]["errorMessage"]
                        answers.append(answer)
        finally:
            await receiver.shutdown(1.0)
        return answers

    return asyncio.run(scenario()), sink


def both_ports() -> otlp.Config:
    return otlp.Config(
        otlp.Protocols(otlp.GrpcConfig(endpoint="127.0.0.1:0"), otlp.HttpConfig(endpoint="127.0.0.1:0"))
    )


@pytest.mark.parametrize("transport", ["grpc", "http", "json"])
def test_spans_older_than_retention_or_far_ahead_are_rejected_with_partial_success(transport: str) -> None:
    now = time.time_ns()
    starts = {
        "now": now,
        "last-week": now - 7 * DAY,
        "in-ten-minutes": now + HOUR // 6,
        "1971": NANOS_1971,
        "before-retention": now - 31 * DAY,
        "tomorrow": now + DAY,
        "2250": int(datetime(2250, 1, 1, tzinfo=UTC).timestamp()) * 10**9,
    }
    req = dated(starts, trace=1)
    body = request_to_json(req) if transport == "json" else req.SerializeToString()
    (answer,), sink = export_all(both_ports(), RETENTION, [(transport, body)])
    assert answer.partial_success.rejected_spans == 4
    assert answer.partial_success.error_message.startswith("4 span(s) rejected; first: span '1971': ")
    assert "(1971-01-01T00:00:00Z) is older than the retention window" in answer.partial_success.error_message
    assert "storage.compaction.retention: 30d" in answer.partial_success.error_message
    assert stored_names(sink) == ["in-ten-minutes", "last-week", "now"]


def test_the_future_bound_is_named_in_the_answer_and_follows_the_config() -> None:
    now = time.time_ns()
    ahead = dated({"in-two-hours": now + 2 * HOUR, "in-ten-hours": now + 10 * HOUR}, trace=2)
    body = ahead.SerializeToString()
    (default,), _ = export_all(both_ports(), 0.0, [("grpc", body)])
    assert default.partial_success.rejected_spans == 2
    assert "is more than 1h ahead of the server's clock (the receiver's max_future_skew)" in (
        default.partial_success.error_message
    )
    wider = otlp.Config(both_ports().protocols, max_future_skew=6 * 3600.0)
    (answer,), sink = export_all(wider, 0.0, [("http", body)])
    assert answer.partial_success.rejected_spans == 1
    assert "more than 6h ahead" in answer.partial_success.error_message
    assert stored_names(sink) == ["in-two-hours"]
    unbounded = otlp.Config(both_ports().protocols, max_future_skew=None)
    (answer,), sink = export_all(unbounded, 0.0, [("http", body)])
    assert answer.partial_success.rejected_spans == 0
    assert stored_names(sink) == ["in-ten-hours", "in-two-hours"]


def test_without_retention_old_spans_are_kept() -> None:
    """``retention: 0`` keeps everything, so no age is too old (the 1971 span is stored)."""
    now = time.time_ns()
    starts = {"1971": NANOS_1971, "years-ago": now - 3000 * DAY, "now": now}
    bodies = [
        ("grpc", dated(starts, trace=3).SerializeToString()),
        ("http", dated(starts, 6).SerializeToString()),
    ]
    (grpc_answer, http_answer), sink = export_all(both_ports(), 0.0, bodies)
    assert grpc_answer.partial_success.rejected_spans == http_answer.partial_success.rejected_spans == 0
    assert stored_names(sink) == ["1971", "1971", "now", "now", "years-ago", "years-ago"]


def test_two_thousand_spans_dated_1971_are_rejected_not_acknowledged() -> None:
    """The audit's case: every span of the request is outside the window, so nothing is logged."""
    req = request([f"s{i}" for i in range(2000)], trace=4, start=NANOS_1971)
    (answer,), sink = export_all(both_ports(), RETENTION, [("http", req.SerializeToString())])
    assert answer.partial_success.rejected_spans == 2000
    assert sink.records == []


def test_replaying_the_log_never_applies_the_window() -> None:
    """What an earlier version acknowledged is kept: screen_spans without a window keeps old spans."""
    req = dated({"1971": NANOS_1971, "far-ahead": time.time_ns() + 100 * DAY}, trace=5)
    assert screen_spans(req).rejected == 0
    window = TimeWindow(RETENTION, 3600.0)
    assert screen_spans(dated({"1971": NANOS_1971}, trace=5), window=window).rejected == 1


def test_max_future_skew_is_a_documented_config_key() -> None:
    config = parse_config("receivers:\n  otlp:\n    max_future_skew: 15m\n", "test")
    component = config.receivers["otlp"].config
    assert isinstance(component, otlp.Config)
    assert component.max_future_skew == 900.0
    assert otlp.Config().max_future_skew == 3600.0
    assert "max_future_skew: 1h" in (otlp.__doc__ or "")


def test_the_service_hands_its_receivers_the_retention(tmp_path: Path) -> None:
    config = parse_config(
        f"""
receivers:
  memory:
service:
  pipelines:
    traces: {{receivers: [memory], processors: [normalize], exporters: [parquet]}}
storage:
  data_dir: "{tmp_path}"
  converter: inline
  compaction: {{retention: 30d, worker: inline}}
api: {{endpoint: "127.0.0.1:0"}}
""",
        "test",
    )
    service = Service(config)
    service.start()
    try:
        receiver = service.receivers["memory"]
        assert isinstance(receiver, memory.InMemoryReceiver)
        result = receiver.export(dated({"1971": NANOS_1971, "now": time.time_ns()}, trace=7))
        assert (result.accepted, result.rejected) == (1, 1)
    finally:
        service.stop()
