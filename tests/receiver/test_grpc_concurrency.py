"""gRPC calls in flight are bounded on the whole server (``max_concurrent_rpcs``, issue 10).

Each call holds its message in memory until it is answered, so the bound on calls is what
bounds gRPC's memory, whatever the number of connections and streams. The receiver runs in
process with a sink that holds every export at a gate (its log "fsync" never completes until
the gate opens), so a call stays in flight exactly as long as the test wants; nothing is timed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from core.component import ReceiverSettings
from core.model import OtlpRecord
from receiver.otlp import receiver as otlp
from tests.helpers.otlp import EXPORT, make_trace, request

REFUSAL = (
    "agentwatch has 1 gRPC calls in flight (receivers.otlp.protocols.grpc.max_concurrent_rpcs: 1); "
    "retry shortly"
)


class GatedSink:
    """Holds every record's durability until ``open`` is set (later records too, once open,
    are made durable at once)."""

    def __init__(self) -> None:
        self.spans: list[int] = []
        self.entered = threading.Event()
        self.open = threading.Event()
        self._held: list[Future[None]] = []
        self._lock = threading.Lock()

    def submit(self, record: OtlpRecord) -> Future[None]:
        done: Future[None] = Future()
        with self._lock:
            self.spans.append(record.spans)
            if self.open.is_set():
                done.set_result(None)
            else:
                self._held.append(done)
        self.entered.set()
        return done

    def release(self) -> None:
        with self._lock:
            self.open.set()
            for done in self._held:
                done.set_result(None)
            self._held.clear()


@contextmanager
def running(max_concurrent_rpcs: int) -> Iterator[tuple[otlp.OtlpReceiver, int, GatedSink]]:
    """An OTLP/gRPC receiver on an event loop of its own thread: the receiver, its port, its sink."""
    protocols = otlp.Protocols(
        otlp.GrpcConfig(endpoint="127.0.0.1:0", max_concurrent_rpcs=max_concurrent_rpcs), None
    )
    sink = GatedSink()
    receiver = otlp.create(otlp.Config(protocols), ReceiverSettings("otlp", sink))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="event-loop", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(receiver.start(), loop).result(10)
        yield receiver, receiver.endpoints()["grpc"], sink
    finally:
        sink.release()
        asyncio.run_coroutine_threadsafe(receiver.shutdown(1.0), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def body(spans: int, trace: int) -> bytes:
    data: bytes = request([f"span-{i}" for i in range(spans)], trace=trace).SerializeToString()
    return data


def in_flight(port: int, data: bytes, answers: list[object]) -> threading.Thread:
    def send() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                answers.append(channel.unary_unary(EXPORT)(data, timeout=30))
            except grpc.RpcError as exc:
                answers.append(exc.code())

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def test_a_call_past_max_concurrent_rpcs_is_refused_retryably_and_the_server_keeps_serving() -> None:
    with running(max_concurrent_rpcs=1) as (receiver, port, sink):
        answers: list[object] = []
        first = in_flight(port, body(3, trace=1), answers)
        assert sink.entered.wait(20)  # the first call is in flight, waiting for its "fsync"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                channel.unary_unary(EXPORT)(body(5, trace=2), timeout=10)
                raise AssertionError("the second call was not refused")
            except grpc.RpcError as exc:
                refused = exc
        assert (refused.code(), refused.details()) == (grpc.StatusCode.UNAVAILABLE, REFUSAL)
        details = dict(refused.trailing_metadata() or ())["grpc-status-details-bin"]
        status = status_pb2.Status.FromString(details)
        retry = error_details_pb2.RetryInfo()
        assert (status.code, status.message, len(status.details)) == (code_pb2.UNAVAILABLE, REFUSAL, 1)
        assert status.details[0].Unpack(retry)
        assert (retry.retry_delay.seconds, retry.retry_delay.nanos) == (1, 0)
        # Refused before its message reached the handler: the sink saw only the first call.
        assert sink.spans == [3]
        assert receiver.counters().refused == {"overloaded": 1}
        assert receiver.grpc is not None and receiver.grpc.limit.active == 1
        sink.release()
        first.join(30)
        assert answers == [b""]
        # The slot was given back before the answer was sent: calls one after another are all
        # served, however fast the client sends the next one.
        assert receiver.grpc.limit.active == 0
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            export = channel.unary_unary(EXPORT)
            assert [export(body(4, trace=3 + n), timeout=10) for n in range(10)] == [b""] * 10
            with pytest.raises(grpc.RpcError) as unknown:
                channel.unary_unary("/no.Such/Method")(b"", timeout=10)
            assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert export(body(1, trace=20), timeout=10) == b""
        assert sink.spans == [3] + [4] * 10 + [1]
        assert receiver.counters().accepted_spans == 44
        assert receiver.counters().refused == {"overloaded": 1}
        assert receiver.grpc.limit.active == 0


def test_a_call_that_gives_up_frees_its_slot_though_its_spans_are_still_being_made_durable() -> None:
    with running(max_concurrent_rpcs=1) as (receiver, port, sink):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                channel.unary_unary(EXPORT)(body(2, trace=1), timeout=0.5)
                raise AssertionError("the held call was answered")
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert sink.spans == [2]
        answers: list[object] = []
        second = in_flight(port, body(6, trace=2), answers)
        for _ in range(200):  # the second call reaches the sink: its slot was free
            if len(sink.spans) == 2:
                break
            second.join(0.05)
        assert sink.spans == [2, 6]
        sink.release()
        second.join(30)
        assert answers == [b""]
        assert receiver.counters().refused == {}


def test_an_otlp_exporter_refused_for_concurrency_retries_and_succeeds() -> None:
    with running(max_concurrent_rpcs=1) as (receiver, port, sink):
        answers: list[object] = []
        first = in_flight(port, body(3, trace=1), answers)
        assert sink.entered.wait(20)
        results: list[SpanExportResult] = []
        exporter = GrpcExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=20)
        sdk = threading.Thread(target=lambda: results.append(exporter.export(make_trace("retried"))))
        sdk.start()
        for _ in range(400):  # refused once, the exporter waits the RetryInfo's second
            if receiver.counters().refused:
                break
            sdk.join(0.05)
        assert receiver.counters().refused == {"overloaded": 1}
        sink.release()
        first.join(30)
        sdk.join(30)
        exporter.shutdown()
        assert (answers, results) == ([b""], [SpanExportResult.SUCCESS])
        assert sink.spans == [3, 3]
        assert receiver.counters().refused == {"overloaded": 1}


def test_max_concurrent_rpcs_defaults_to_16_and_is_validated_with_its_key() -> None:
    from agentwatch.config import parse_config
    from core.errors import ConfigError

    default = parse_config("receivers:\n  otlp:\n    protocols:\n      grpc:\n", "cfg.yaml", {})
    assert default.receivers["otlp"].config.protocols.grpc.max_concurrent_rpcs == 16
    bad = "receivers:\n  otlp:\n    protocols:\n      grpc:\n        max_concurrent_rpcs: 0\n"
    with pytest.raises(ConfigError) as info:
        parse_config(bad, "cfg.yaml", {})
    assert info.value.problems == [
        "cfg.yaml:5: receivers.otlp.protocols.grpc.max_concurrent_rpcs: must be at least 1"
    ]
