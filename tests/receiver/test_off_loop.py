"""Large bodies are decoded and inflated off the event loop every port shares (issue 10).

Each test holds one export's decoding (JSON, a large protobuf) or gzip inflation at a gate, on
whatever thread runs it, and checks that meanwhile small exports on both ports are answered:
had that work run on the event loop, the gate would hold the loop and nothing else would be
answered. No timing is compared, so a loaded machine cannot make it flaky. A last test sends a
real 16 MiB OTLP/JSON export and checks its decoding ran on a worker thread.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from core.component import ReceiverSettings
from core.model import OtlpRecord
from receiver.otlp import handler as handler_module
from receiver.otlp import http_transport
from receiver.otlp import receiver as otlp
from receiver.otlp.otlp_json import parse_json_request, request_to_json
from tests.helpers.otlp import EXPORT, PROTO, request

JSON = {"content-type": "application/json"}
BIG = 300_000  # bytes: past handler.OFF_LOOP_BYTES


class ImmediateSink:
    def __init__(self) -> None:
        self.spans = 0

    def submit(self, record: OtlpRecord) -> Future[None]:
        self.spans += record.spans
        done: Future[None] = Future()
        done.set_result(None)
        return done


@contextmanager
def running() -> Iterator[tuple[int, int, threading.Thread, ImmediateSink]]:
    """An OTLP receiver (gRPC and HTTP, 32 MiB bodies) on an event loop of its own thread: its
    ports, that thread, its sink."""
    limits = otlp.Protocols(
        otlp.GrpcConfig(endpoint="127.0.0.1:0", max_recv_msg_size_mib=32),
        otlp.HttpConfig(endpoint="127.0.0.1:0", max_request_body_size_mib=32),
    )
    sink = ImmediateSink()
    receiver = otlp.create(otlp.Config(limits), ReceiverSettings("otlp", sink))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="event-loop", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(receiver.start(), loop).result(10)
        ports = receiver.endpoints()
        yield ports["grpc"], ports["http"], thread, sink
    finally:
        asyncio.run_coroutine_threadsafe(receiver.shutdown(1.0), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


class Gate:
    """Wraps a function: calls for which ``held(args)`` is true wait at the gate until it opens,
    noting the thread they run on."""

    def __init__(self, real: Callable[..., Any], held: Callable[..., bool]) -> None:
        self.real, self.held = real, held
        self.entered = threading.Event()
        self.open = threading.Event()
        self.threads: list[threading.Thread] = []

    def __call__(self, *args: Any) -> Any:
        if self.held(*args):
            self.threads.append(threading.current_thread())
            self.entered.set()
            self.open.wait(30)
        return self.real(*args)


def small_exports_are_answered(grpc_port: int, http_port: int, trace: int) -> None:
    body = request(["small"], trace=trace).SerializeToString()
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        assert channel.unary_unary(EXPORT)(body, timeout=5) == b""
    url = f"http://127.0.0.1:{http_port}/v1/traces"
    assert httpx.post(url, content=body, headers=PROTO, timeout=5).status_code == 200


def big_request(spans: int, trace: int = 100) -> ExportTraceServiceRequest:
    req = request([f"span-{i}" for i in range(spans)], trace=trace)
    for span in req.resource_spans[0].scope_spans[0].spans:
        span.attributes.add(key="gen_ai.prompt").value.string_value = "x" * 200
    return req


@pytest.mark.parametrize("transport", ["http-json", "grpc-protobuf", "http-protobuf"])
def test_a_large_body_being_decoded_holds_up_no_other_export(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    req = big_request(1500)
    body = request_to_json(req) if transport == "http-json" else req.SerializeToString()
    assert len(body) > BIG
    gate = Gate(handler_module.decode_request, lambda data, encoding: len(data) > BIG)
    monkeypatch.setattr(handler_module, "decode_request", gate)
    with running() as (grpc_port, http_port, loop_thread, sink):
        answers: list[object] = []

        def send() -> None:
            if transport == "grpc-protobuf":
                with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                    answers.append(channel.unary_unary(EXPORT)(body, timeout=60))
            else:
                headers = JSON if transport == "http-json" else PROTO
                url = f"http://127.0.0.1:{http_port}/v1/traces"
                answers.append(httpx.post(url, content=body, headers=headers, timeout=60).status_code)

        big = threading.Thread(target=send)
        big.start()
        try:
            assert gate.entered.wait(20)
            small_exports_are_answered(grpc_port, http_port, trace=1)
            assert gate.threads[0] is not loop_thread
        finally:
            gate.open.set()
            big.join(60)
        assert answers == [b""] if transport == "grpc-protobuf" else answers == [200]
        assert sink.spans == 1500 + 2


def test_a_gzip_body_being_inflated_holds_up_no_other_export(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, inflate ran on the event loop: a body inflating to 16 MiB held every port meanwhile."""
    gate = Gate(http_transport.inflate, lambda data, limit: True)
    monkeypatch.setattr(http_transport, "inflate", gate)
    body = gzip.compress(big_request(500).SerializeToString())
    with running() as (grpc_port, http_port, loop_thread, sink):
        answers: list[int] = []
        url = f"http://127.0.0.1:{http_port}/v1/traces"
        headers = {**PROTO, "content-encoding": "gzip"}
        big = threading.Thread(
            target=lambda: answers.append(
                httpx.post(url, content=body, headers=headers, timeout=60).status_code
            )
        )
        big.start()
        try:
            assert gate.entered.wait(20)
            small_exports_are_answered(grpc_port, http_port, trace=2)
            assert gate.threads[0] is not loop_thread
        finally:
            gate.open.set()
            big.join(60)
        assert answers == [200]
        assert sink.spans == 500 + 2


def test_a_16_mib_json_export_is_decoded_on_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    req = big_request(37_000)
    body = request_to_json(req)
    assert 15 * 2**20 < len(body) < 16 * 2**20
    threads: list[threading.Thread] = []
    real = parse_json_request

    def noted(data: bytes) -> ExportTraceServiceRequest:
        threads.append(threading.current_thread())
        return real(data)

    monkeypatch.setattr(handler_module, "parse_json_request", noted)
    with running() as (_, http_port, loop_thread, sink):
        url = f"http://127.0.0.1:{http_port}/v1/traces"
        assert httpx.post(url, content=body, headers=JSON, timeout=120).status_code == 200
        assert len(threads) == 1 and threads[0] is not loop_thread
        assert sink.spans == 37_000
