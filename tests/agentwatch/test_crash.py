"""Nothing acknowledged is lost, nothing is stored twice: retries, replays, kill -9."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.helpers.server import ServerProcess

pytestmark = pytest.mark.process  # real servers, kill -9

PROTO = {"content-type": "application/x-protobuf"}
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


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


def test_retried_request_is_stored_once(server: ServerProcess) -> None:
    body = request(0, 1)
    for _ in range(3):
        assert httpx.post(server.http_url, content=body, headers=PROTO).status_code == 200
    assert server.wait_for_count("SELECT count(*) FROM spans", 50) == 50
    time.sleep(0.3)  # a duplicate would have been flushed by now
    assert server.query("SELECT count(*), count(DISTINCT span_id || trace_id) FROM spans") == [(50, 50)]
    metrics = httpx.get(f"http://127.0.0.1:{server.api_port}/metrics").text
    assert "agentwatch_spans_deduplicated_total 100.0" in metrics


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


def test_kill_9_mid_stream_loses_no_acknowledged_span_and_stores_none_twice(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, flush_interval="100ms").start()
    clients = [Client(i, server, 120, "http" if i % 2 else "grpc") for i in range(4)]
    try:
        for client in clients:
            client.start()
        # Let load build up, then kill the server with no chance to clean up.
        while sum(len(c.acknowledged) for c in clients) < 150:
            time.sleep(0.01)
        acknowledged_before_kill = {(c.number, n) for c in clients for n in c.acknowledged}
        server.kill()
        time.sleep(0.5)
        server.start()
        for client in clients:
            client.join(timeout=120)
            assert not client.is_alive()
        total = 4 * 120 * 50
        assert server.wait_for_count("SELECT count(*) FROM spans", total, timeout=60) == total
        rows = server.query("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans")
        assert rows == [(total, total)]
        # Every request acknowledged before the kill is there, all 50 spans of it.
        stored = {
            (int(trace[:2], 16) - 1, int(trace[2:10], 16))
            for (trace,) in server.query("SELECT trace_id FROM spans GROUP BY trace_id HAVING count(*) = 50")
        }
        assert acknowledged_before_kill <= stored
        assert len(stored) == 4 * 120
        assert sum(c.errors for c in clients) > 0  # the kill did interrupt the clients
        assert server.stop() == 0
    finally:
        server.kill()
