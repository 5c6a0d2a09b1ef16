"""OTLP clients that retry until acknowledged, like an SDK exporter, for the crash and shutdown
tests (and bench/sigterm.py): each sends numbered requests of 50 spans (or log records) in order."""

from __future__ import annotations

import threading
import time

import grpc
import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from tests.helpers.otlp import EXPORT, PROTO
from tests.helpers.server import ServerProcess


def request(client: int, number: int, spans: int = 50) -> bytes:
    req = ExportTraceServiceRequest()
    scope = req.resource_spans.add().scope_spans.add()
    for i in range(spans):
        span = scope.spans.add()
        span.trace_id = bytes([client + 1]) + number.to_bytes(4, "big") + bytes(11)
        span.span_id = (i + 1).to_bytes(8, "big")
        span.name = f"c{client}-r{number}-s{i}"
        span.start_time_unix_nano = 1_763_800_000_000_000_000 + i
        span.end_time_unix_nano = span.start_time_unix_nano + 1_000_000
    return req.SerializeToString()


LOGS_EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


def logs_request(client: int, number: int, records: int = 50) -> bytes:
    """50 log records; the first is an agent event that makes the request's trace a run."""
    req = ExportLogsServiceRequest()
    scope = req.resource_logs.add().scope_logs.add()
    trace_id = bytes([client + 1]) + number.to_bytes(4, "big") + bytes(11)
    for i in range(records):
        item = scope.log_records.add(time_unix_nano=1_763_800_000_000_000_000 + i, trace_id=trace_id)
        item.body.string_value = f"c{client}-r{number}-l{i}"
        if i == 0:
            item.event_name = "agent.request.completed"
            item.attributes.append(KeyValue(key="agent_id"))
            item.attributes[0].value.string_value = f"agent-{client}"
    return req.SerializeToString()


class Client(threading.Thread):
    """Sends its requests in order; a request is retried until acknowledged, like an OTLP exporter."""

    def __init__(
        self, number: int, server: ServerProcess, requests: int, transport: str, signal: str = "traces"
    ) -> None:
        super().__init__(daemon=True)
        self.number, self.server, self.requests, self.transport = number, server, requests, transport
        self.signal = signal
        self.acknowledged: list[int] = []
        self.errors = 0
        self.halt = threading.Event()

    def send(self, body: bytes) -> bool:
        try:
            logs = self.signal == "logs"
            if self.transport == "http":
                url = self.server.http_url.replace("/v1/traces", "/v1/logs") if logs else self.server.http_url
                return httpx.post(url, content=body, headers=PROTO, timeout=5).status_code == 200
            with grpc.insecure_channel(f"127.0.0.1:{self.server.grpc_port}") as channel:
                channel.unary_unary(LOGS_EXPORT if logs else EXPORT)(body, timeout=5)
                return True
        except (httpx.HTTPError, grpc.RpcError):
            return False

    def run(self) -> None:
        for number in range(self.requests):
            body = (logs_request if self.signal == "logs" else request)(self.number, number)
            deadline = time.monotonic() + 60
            while not self.send(body):
                if self.halt.is_set():
                    return
                self.errors += 1
                assert time.monotonic() < deadline, "server never came back"
                time.sleep(0.05)
            self.acknowledged.append(number)
