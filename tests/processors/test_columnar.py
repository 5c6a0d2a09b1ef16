"""The columnar decoder against protobuf: random requests, re-encodings and malformed payloads.

The reference (``tests.helpers.protobuf_reference``) decodes with protobuf objects, written
independently of processors/: the mechanical columns (ids, names, times, kind, status, scope,
attributes/resource/events JSON) must equal it exactly. The attribute-driven columns are pinned by test_golden.py and the
convention fixtures; here they must at least not change when the bytes are encoded differently.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, reject
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from core.model import SPAN_SCHEMA, OtlpBatch, OtlpRecord
from processors.normalize import processor as normalize
from tests.helpers.otlp_gen import reencode, requests, varint
from tests.helpers.protobuf_reference import PROFILE, mechanical_rows, reference_rows, reference_value


def processor(**config: Any) -> normalize.NormalizeProcessor:
    return normalize.create(normalize.Config(**config), None)  # type: ignore[arg-type]  # to_table only


def to_table(*payloads: bytes, config: dict[str, Any] | None = None) -> pa.Table:
    return processor(**(config or {})).to_table(OtlpBatch([OtlpRecord(p) for p in payloads]))


@PROFILE
@given(requests())
def test_mechanical_columns_equal_a_protobuf_decode(request: ExportTraceServiceRequest) -> None:
    expected = reference_rows(request)
    try:
        table = to_table(request.SerializeToString())
    except OverflowError:  # a token count past int64 (a float 1e19, say) fails the batch, as before
        reject()
    assert table.schema.equals(SPAN_SCHEMA)
    assert mechanical_rows(table) == expected


@PROFILE
@given(requests(), st.integers(0, 2**32), st.sampled_from([0.0, 0.2]))
def test_another_encoding_of_the_same_request_gives_the_same_table(
    request: ExportTraceServiceRequest, seed: int, split: float
) -> None:
    """Field order, unknown fields and groups, padded varints, repeated scalars (the last wins)
    and singular messages sent in parts (protobuf merges them) change nothing."""
    canonical = request.SerializeToString()
    other = reencode(canonical, "Request", random.Random(seed), split)
    reparsed = ExportTraceServiceRequest.FromString(other)
    reparsed.DiscardUnknownFields()
    assert reparsed == request
    config = {"attributes": {"user_id": ["chat"]}, "max_text_length": 5}
    try:
        expected = to_table(canonical, config=config)
    except OverflowError:  # a token count past int64 fails either way
        with pytest.raises(OverflowError):
            to_table(other, config=config)
        return
    assert to_table(other, config=config).equals(expected)


@PROFILE
@given(
    requests(),
    st.randoms(use_true_random=False),
    st.sampled_from(["truncate", "overwrite", "insert", "random"]),
)
def test_a_damaged_payload_raises_value_error_or_decodes(
    request: ExportTraceServiceRequest, rng: random.Random, damage: str
) -> None:
    """Whatever the bytes, the scanner stays inside them: a table or a ValueError, nothing else."""
    data = bytearray(reencode(request.SerializeToString(), "Request", rng))
    if damage == "truncate" and data:
        del data[rng.randrange(len(data)) :]
    elif damage == "overwrite" and data:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif damage == "insert":
        position = rng.randint(0, len(data))
        data[position:position] = rng.randbytes(rng.randint(1, 5))
    else:
        data = bytearray(rng.randbytes(rng.randint(0, 64)))
    with contextlib.suppress(ValueError, OverflowError):  # OverflowError: a "token count" past int64
        to_table(bytes(data))


def test_truncated_payload_is_a_value_error() -> None:
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(name="x", trace_id=b"\1" * 16, span_id=b"\2" * 8)
    payload = request.SerializeToString()
    good = OtlpRecord(payload)
    with pytest.raises(ValueError, match="record 1: payload is not a valid ExportTraceServiceRequest"):
        processor().to_table(OtlpBatch([good, OtlpRecord(payload[:-3])]))


def test_a_status_sent_twice_is_merged_as_protobuf_does() -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(name="x", trace_id=b"\1" * 16)
    span.span_id = b"\2" * 8
    span_bytes = span.SerializeToString()
    # Span = its fields + status{code=ERROR} + status{message="boom"}: one merged status.
    extra = b"\x7a\x02\x18\x02" + b"\x7a\x06\x12\x04boom"
    scope_spans = b"\x12" + varint(len(span_bytes + extra)) + span_bytes + extra
    resource_spans = b"\x12" + varint(len(scope_spans)) + scope_spans
    payload = b"\x0a" + varint(len(resource_spans)) + resource_spans
    row = to_table(payload).to_pylist()[0]
    assert (row["status"], row["status_message"], row["error_message"]) == ("error", "boom", "boom")


def test_attribute_json_is_orjsons_including_escapes_and_duplicate_keys() -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(name="x", trace_id=b"\1" * 16)
    span.span_id = b"\2" * 8
    values = [
        ("k", AnyValue(string_value="first")),
        ('q"\\\n\x01\x7fé😀', AnyValue(string_value="\t\b\f\r\x1f\u2028")),
        ("n", AnyValue(int_value=-(2**63))),
        ("b", AnyValue(bool_value=False)),
        ("e", AnyValue()),
        ("d", AnyValue(double_value=1e20)),
        ("k", AnyValue(string_value="last")),
    ]
    span.attributes.extend(KeyValue(key=k, value=v) for k, v in values)
    expected = orjson.dumps({k: reference_value(v) for k, v in values}).decode()
    assert to_table(request.SerializeToString())["attributes"].to_pylist() == [expected]
    assert expected.startswith('{"k":"last",')


def test_start_compiles_the_kernels_and_converts_a_sample() -> None:
    processor().start()


def test_a_batch_where_every_request_needs_reencoding() -> None:
    requests_ = []
    for i in range(5):
        request = ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.add(key="service.name").value.string_value = f"svc{i}"
        span = resource_spans.scope_spans.add().spans.add(name=f"s{i}", trace_id=bytes([i + 1]) * 16)
        span.span_id = bytes([i + 1]) * 8
        span.status.code = 2
        span.status.message = "boom"
        requests_.append(request.SerializeToString())
    # split=1.0: every resource and status is sent in two parts, which only protobuf can merge.
    mangled = [reencode(r, "Request", random.Random(i), split=1.0) for i, r in enumerate(requests_)]
    assert to_table(*mangled).equals(to_table(*requests_))


@pytest.mark.parametrize("spans", [1, 3])
def test_a_table_does_not_change_when_the_processor_converts_the_next_batch(spans: int) -> None:
    """The decoder's tables are reused from batch to batch: no column may share their memory."""

    def request(seed: int) -> bytes:
        req = ExportTraceServiceRequest()
        resource_spans = req.resource_spans.add()
        resource_spans.resource.attributes.add(key="service.name").value.string_value = f"svc{seed}"
        for i in range(spans):
            span = resource_spans.scope_spans.add().spans.add(name=f"n{seed}", trace_id=bytes([seed]) * 16)
            span.span_id, span.start_time_unix_nano, span.end_time_unix_nano = (
                bytes([i + 1]) * 8,
                seed,
                2 * seed,
            )
            span.attributes.add(key="gen_ai.usage.input_tokens").value.int_value = seed
        return req.SerializeToString()

    normalizer = processor()
    first = normalizer.to_table(OtlpBatch([OtlpRecord(request(1))]))
    expected = first.to_pylist()
    normalizer.to_table(OtlpBatch([OtlpRecord(request(7)), OtlpRecord(request(9))]))
    assert first.to_pylist() == expected


def test_a_cost_that_is_not_a_number_is_no_cost() -> None:
    """Found by the property above: a reported cost of NaN (or infinity) is stored as no cost, so
    the cost processor prices the call instead, and equal requests give equal tables."""
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for i, cost in enumerate((float("nan"), float("inf"), 0.25)):
        span = scope.spans.add(trace_id=b"\xaa" * 16, span_id=bytes([i + 1]) * 8, name="chat", end_time_unix_nano=5)
        span.attributes.append(KeyValue(key="gen_ai.usage.cost", value=AnyValue(double_value=cost)))
    table = to_table(request.SerializeToString())
    assert table.column("cost_usd").to_pylist() == [None, None, 0.25]
    assert table.column("cost_source").to_pylist() == [None, None, "reported"]
