"""OTLP clients that retry until acknowledged, like an SDK exporter, for the crash and shutdown
tests (and bench/sigterm.py): each sends numbered requests of 50 spans in order."""

from __future__ import annotations

import threading
import time

import grpc
import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

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


class Client(threading.Thread):
    """Sends its requests in order; a request is retried until acknowledged, like an OTLP exporter."""

    def __init__(self, number: int, server: ServerProcess, requests: int, transport: str) -> None:
        super().__init__(daemon=True)
        self.number, self.server, self.requests, self.transport = number, server, requests, transport
        self.acknowledged: list[int] = []
        self.errors = 0
        self.halt = threading.Event()

    def send(self, body: bytes) -> bool:
        try:
            if self.transport == "http":
                return (
                    httpx.post(self.server.http_url, content=body, headers=PROTO, timeout=5).status_code
                    == 200
                )
            with grpc.insecure_channel(f"127.0.0.1:{self.server.grpc_port}") as channel:
                channel.unary_unary(EXPORT)(body, timeout=5)
                return True
        except (httpx.HTTPError, grpc.RpcError):
            return False

    def run(self) -> None:
        for number in range(self.requests):
            body = request(self.number, number)
            deadline = time.monotonic() + 60
            while not self.send(body):
                if self.halt.is_set():
                    return
                self.errors += 1
                assert time.monotonic() < deadline, "server never came back"
                time.sleep(0.05)
            self.acknowledged.append(number)
