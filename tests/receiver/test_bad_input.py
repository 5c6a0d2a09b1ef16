"""A corpus of bad input, and mutated requests: the right status, never a 5xx, never a bad row."""

from __future__ import annotations

import gzip
import random
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from core.model import OPERATIONS
from tests.helpers.server import ServerProcess

pytestmark = pytest.mark.process  # real servers

PROTO = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}


def valid_request(spans: int = 3, seed: int = 1) -> ExportTraceServiceRequest:
    rng = random.Random(seed)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name", value=AnyValue(string_value="svc"))
    scope = rs.scope_spans.add()
    for i in range(spans):
        span = scope.spans.add()
        span.trace_id, span.span_id = rng.randbytes(16), rng.randbytes(8)
        span.name = f"chat {i}"
        span.kind = 3
        span.start_time_unix_nano = 1_763_800_000_000_000_000 + i
        span.end_time_unix_nano = span.start_time_unix_nano + 5_000_000
        span.attributes.add(key="gen_ai.request.model", value=AnyValue(string_value="gpt-4o"))
        span.attributes.add(key="gen_ai.usage.input_tokens", value=AnyValue(int_value=12))
        span.status.code = 1
    return req


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def nested_wire(depth: int) -> bytes:
    """AnyValue{kvlist{KeyValue{"k", ...}}} ``depth`` deep, encoded by hand: the protobuf API
    itself refuses to build what its decoder would refuse."""
    value = _field(1, b"leaf")
    for _ in range(depth):
        value = _field(6, _field(1, _field(1, b"k") + _field(2, value)))
    return value


def request_with_attribute_wire(value: bytes) -> bytes:
    span = valid_request(1, seed=10).resource_spans[0].scope_spans[0].spans[0].SerializeToString()
    span += _field(9, _field(1, b"deep") + _field(2, value))  # Span.attributes += KeyValue
    return _field(1, _field(2, _field(2, span)))  # request.resource_spans.scope_spans.spans


def nested(depth: int) -> AnyValue:
    value = AnyValue(string_value="leaf")
    for _ in range(depth):
        outer = AnyValue()
        outer.kvlist_value.values.add(key="k", value=value)
        value = outer
    return value


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("bad")).start()
    yield server
    server.kill()


CORPUS: list[tuple[str, bytes, dict[str, str], int]] = [
    ("truncated protobuf", valid_request().SerializeToString()[:-7], PROTO, 400),
    ("random bytes", random.Random(7).randbytes(512), PROTO, 400),
    ("json that is a list", b"[1, 2, 3]", JSON, 400),
    ("json with wrong field types", b'{"resourceSpans": "nope"}', JSON, 400),
    ("wrong content type", b"{}", {"content-type": "text/csv"}, 415),
    ("missing content type", b"{}", {}, 415),
    ("gzip lie", b"not gzip at all", {**PROTO, "content-encoding": "gzip"}, 400),
    (
        "truncated gzip",
        gzip.compress(valid_request().SerializeToString())[:-12],
        {**PROTO, "content-encoding": "gzip"},
        400,
    ),
    ("unknown encoding", b"x", {**PROTO, "content-encoding": "zstd"}, 415),
    ("oversized body", b"\x0a" * (1024 * 1024 + 10), PROTO, 413),
    ("gzip bomb", gzip.compress(b"\x00" * (64 * 1024 * 1024)), {**PROTO, "content-encoding": "gzip"}, 413),
    (
        "invalid utf-8 in json",
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "\xff\xfe"}]}]}]}',
        JSON,
        400,
    ),
]


@pytest.mark.parametrize(("case", "body", "headers", "status"), CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus_gets_the_right_status(
    shared: ServerProcess, case: str, body: bytes, headers: dict[str, str], status: int
) -> None:
    response = httpx.post(shared.http_url, content=body, headers=headers, timeout=30)
    assert response.status_code == status, response.content[:200]
    assert httpx.get(f"http://127.0.0.1:{shared.api_port}/healthz").status_code == 200


def test_invalid_utf8_in_a_protobuf_string_is_refused(shared: ServerProcess) -> None:
    req = valid_request(1)
    raw = bytearray(req.SerializeToString())
    at = raw.index(b"chat 0")
    raw[at : at + 2] = b"\xff\xfe"
    assert httpx.post(shared.http_url, content=bytes(raw), headers=PROTO).status_code == 400


def test_deeply_nested_attribute_values(shared: ServerProcess) -> None:
    # Past protobuf's recursion limit the request does not decode: 400, and the server lives.
    deep = request_with_attribute_wire(nested_wire(200))
    assert httpx.post(shared.http_url, content=deep, headers=PROTO).status_code == 400
    # Within it, the value is stored whole, as nested JSON.
    ok = valid_request(1, seed=12)
    ok.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="deep", value=nested(20))
    assert httpx.post(shared.http_url, content=ok.SerializeToString(), headers=PROTO).status_code == 200
    span_id = ok.resource_spans[0].scope_spans[0].spans[0].span_id.hex()
    assert shared.wait_for_count(f"SELECT count(*) FROM spans WHERE span_id = '{span_id}'", 1) == 1
    depth = shared.query(f"SELECT attributes FROM spans WHERE span_id = '{span_id}'")[0][0]
    assert str(depth).count('{"k":') == 20


def test_ids_of_the_wrong_length_are_partial_success(shared: ServerProcess) -> None:
    req = valid_request(3, seed=13)
    spans = req.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = b"\x01" * 15
    spans[1].span_id = b"\x01" * 9
    response = httpx.post(shared.http_url, content=req.SerializeToString(), headers=PROTO)
    assert response.status_code == 200
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    assert ExportTraceServiceResponse.FromString(response.content).partial_success.rejected_spans == 2


def test_grpc_message_over_the_limit_is_resource_exhausted(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, grpc_extra="        max_recv_msg_size_mib: 1\n").start()
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as info:
            export(b"\x0a" * (1024 * 1024 + 10), timeout=5)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        channel.close()
    finally:
        server.kill()


def mutate(data: bytes, flips: list[tuple[int, int]], cut: int | None, insert: bytes) -> bytes:
    out = bytearray(data)
    for position, value in flips:
        out[position % len(out)] = value
    if cut is not None:
        out = out[: cut % (len(out) + 1)]
    return bytes(out) + insert


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 1000),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    cut=st.none() | st.integers(0, 10_000),
    insert=st.binary(max_size=16),
)
def test_mutated_requests_never_5xx(
    shared: ServerProcess, seed: int, flips: list[tuple[int, int]], cut: int | None, insert: bytes
) -> None:
    body = mutate(valid_request(2, seed=seed + 100).SerializeToString(), flips, cut, insert)
    response = httpx.post(shared.http_url, content=body, headers=PROTO, timeout=30)
    assert response.status_code in (200, 400)


def test_no_malformed_row_was_stored(shared: ServerProcess) -> None:
    """Runs after the property test (same module, same server): everything stored is well-formed."""
    time.sleep(0.5)  # several flush intervals: whatever was accepted is in Parquet
    operations = ", ".join(f"'{o}'" for o in OPERATIONS)
    bad = shared.query(f"""
        SELECT count(*) FROM spans WHERE NOT (
            regexp_full_match(trace_id, '[0-9a-f]{{32}}') AND regexp_full_match(span_id, '[0-9a-f]{{16}}')
            AND (parent_span_id IS NULL OR regexp_full_match(parent_span_id, '[0-9a-f]{{16}}'))
            AND status IN ('ok', 'error', 'unset') AND operation IN ({operations})
            AND duration_ms >= 0 AND json_valid(attributes) AND json_valid(resource_attributes)
            AND tenant IS NOT NULL AND name IS NOT NULL)
    """)
    assert bad == [(0,)]
    assert shared.query("SELECT count(*) > 0 FROM spans") == [(True,)]
