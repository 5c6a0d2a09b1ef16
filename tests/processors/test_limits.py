"""Limits: over-long values and keys are cut, surplus attributes, array elements and events dropped,
all counted, never rejected."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from core.model import OtlpBatch, OtlpRecord
from processors.normalize import processor as normalize
from tests.helpers.otlp_gen import any_values, reencode, requests, varint
from tests.helpers.protobuf_reference import PROFILE, mechanical_rows, reference_rows


def limited_processor(
    length: int, count: int, key: int = 1024, array: int = 10_000, events: int = 1024
) -> normalize.NormalizeProcessor:
    config = normalize.Config(
        max_attribute_value_length=length,
        max_attribute_count=count,
        max_attribute_key_length=key,
        max_array_length=array,
        max_events_per_span=events,
    )
    return normalize.create(config, None)  # type: ignore[arg-type]  # to_table only


def default_processor() -> normalize.NormalizeProcessor:
    return normalize.create(normalize.Config(), None)  # type: ignore[arg-type]  # to_table only


def counted(
    values: int = 0, attributes: int = 0, keys: int = 0, arrays: int = 0, events: int = 0
) -> dict[str, int]:
    """``take_counts()`` as it should be."""
    return {
        "attribute_values_truncated": values,
        "attributes_dropped": attributes,
        "attribute_keys_truncated": keys,
        "array_values_dropped": arrays,
        "span_events_dropped": events,
    }


def one_span_request() -> tuple[ExportTraceServiceRequest, Span]:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(name="chat", trace_id=b"\1" * 16)
    span.span_id = b"\2" * 8
    return request, span


def array(*values: AnyValue) -> AnyValue:
    value = AnyValue()
    value.array_value.SetInParent()  # an empty array is an array, not an empty value
    value.array_value.values.extend(values)
    return value


def ints(*numbers: int) -> list[AnyValue]:
    return [AnyValue(int_value=n) for n in numbers]


def only_row(processor: normalize.NormalizeProcessor, request: ExportTraceServiceRequest) -> dict[str, Any]:
    rows = processor.to_table(OtlpBatch([OtlpRecord(request.SerializeToString())])).to_pylist()
    assert len(rows) == 1
    row: dict[str, Any] = rows[0]
    return row


def request_with_long_values() -> bytes:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "svc-abcdef"
    rs.resource.attributes.add(key="deployment.environment").value.string_value = "prod"
    rs.resource.attributes.add(key="host.name").value.string_value = "h"  # dropped: 3rd of 3
    span = rs.scope_spans.add().spans.add(trace_id=b"\1" * 16, span_id=b"\2" * 8, name="agent_run")
    span.attributes.add(key="user.id").value.string_value = "ñandú@acme.com"  # cut to 5 characters
    array = span.attributes.add(key="tags").value.array_value
    array.values.add(string_value="alpha-long")
    array.values.add(string_value="b")
    array.values.add(int_value=7)
    span.attributes.add(key="gen_ai.agent.name").value.string_value = "late"  # dropped
    span.attributes.add(key="x").value.string_value = "y"  # dropped
    event = span.events.add(name="exception", time_unix_nano=5)
    event.attributes.add(key="exception.type").value.string_value = "TimeoutError"
    event.attributes.add(key="exception.message").value.string_value = "deadline"
    event.attributes.add(key="extra").value.string_value = "z"  # dropped
    payload: bytes = request.SerializeToString()
    return payload


def test_values_are_cut_by_characters_and_surplus_attributes_dropped() -> None:
    processor = limited_processor(5, 2)
    table = processor.to_table(OtlpBatch([OtlpRecord(request_with_long_values())]))
    row = table.to_pylist()[0]
    assert orjson.loads(row["attributes"]) == {"user.id": "ñandú", "tags": ["alpha", "b", 7]}
    assert orjson.loads(row["resource_attributes"]) == {
        "service.name": "svc-a",
        "deployment.environment": "prod",
    }
    assert orjson.loads(row["events"]) == [
        {
            "name": "exception",
            "time_unix_nano": 5,
            "attributes": {"exception.type": "Timeo", "exception.message": "deadl"},
        }
    ]
    # The canonical columns read the same cut values, and never a dropped attribute.
    assert row["user_id"] == "ñandú"
    assert row["service_name"] == "svc-a"
    assert row["agent_name"] is None
    assert row["error_type"] == "Timeo"
    # Cut: user.id, tags (one array), service.name, exception.type, exception.message.
    # Dropped: host.name, gen_ai.agent.name, x, extra.
    assert processor.take_counts() == counted(values=5, attributes=4)
    assert processor.take_counts() == counted()


def test_default_limits_change_nothing_and_count_nothing() -> None:
    processor = default_processor()
    row = processor.to_table(OtlpBatch([OtlpRecord(request_with_long_values())])).to_pylist()[0]
    assert orjson.loads(row["attributes"])["user.id"] == "ñandú@acme.com"
    assert len(orjson.loads(row["attributes"])) == 4
    assert processor.take_counts() == counted()


def test_default_limits() -> None:
    config = normalize.Config()
    assert (
        config.max_attribute_value_length,
        config.max_attribute_count,
        config.max_attribute_key_length,
        config.max_array_length,
        config.max_events_per_span,
    ) == (65536, 1024, 1024, 10_000, 1024)


def test_limits_must_be_positive() -> None:
    config = normalize.Config(
        max_attribute_value_length=0,
        max_attribute_count=0,
        max_attribute_key_length=0,
        max_array_length=-1,
        max_events_per_span=0,
    )
    assert config.validate() == [
        "max_attribute_value_length: must be at least 1",
        "max_attribute_count: must be at least 1",
        "max_attribute_key_length: must be at least 1",
        "max_array_length: must be at least 1",
        "max_events_per_span: must be at least 1",
    ]
    assert (
        normalize.Config(max_array_length=1, max_events_per_span=1, max_attribute_key_length=1).validate()
        == []
    )


def test_a_span_with_2000_events_keeps_the_first_max_events_per_span() -> None:
    request, span = one_span_request()
    for i in range(2000):
        event = span.events.add(name=f"e{i}", time_unix_nano=i)
        event.attributes.add(key="i").value.int_value = i
    # Past the limit: an answer (output text) and an exception (error type): neither is seen.
    span.events.add(name="gen_ai.choice").attributes.add(key="message").value.string_value = "late answer"
    span.events.add(name="exception").attributes.add(key="exception.type").value.string_value = "Late"
    processor = default_processor()
    row = only_row(processor, request)
    assert orjson.loads(row["events"]) == [
        {"name": f"e{i}", "time_unix_nano": i, "attributes": {"i": i}} for i in range(1024)
    ]
    assert (row["output_text"], row["error_type"], row["error_message"]) == (None, None, None)
    # A dropped event's attributes are not counted as dropped attributes.
    assert processor.take_counts() == counted(events=2000 + 2 - 1024)


def test_rules_reading_events_see_the_cut_event_attributes() -> None:
    request, span = one_span_request()
    span.status.code = 2
    event = span.events.add(name="exception")
    event.attributes.add(key="exception.type").value.string_value = "TimeoutError"
    event.attributes.add(key="exception.message").value.string_value = "late"
    processor = limited_processor(5, 1024)
    row = only_row(processor, request)
    assert (row["error_type"], row["error_message"]) == ("Timeo", "late")
    assert processor.take_counts() == counted(values=1)
    processor = limited_processor(65536, 1024, key=13)  # "exception.typ", "exception.mes"
    row = only_row(processor, request)
    assert (row["error_type"], row["error_message"]) == (None, None)
    assert processor.take_counts() == counted(keys=2)


def test_rules_reading_whole_spans_see_the_cut_span_attributes() -> None:
    request, span = one_span_request()
    span.attributes.add(key="gen_ai.prompt.0.role").value.string_value = "user"
    span.attributes.add(key="gen_ai.prompt.0.content").value.string_value = "hello world"
    processor = limited_processor(5, 1024)
    assert only_row(processor, request)["input_text"] == "hello"
    assert processor.take_counts() == counted(values=1)


def test_events_of_several_spans_keep_their_own_first_ones() -> None:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for s, (n_events, answer_at) in enumerate([(5, 4), (2, 1), (0, -1), (4, 2)]):
        span = spans.add(name="chat", trace_id=b"\1" * 16, span_id=bytes([s + 1]) * 8)
        for i in range(n_events):
            event = span.events.add(name="gen_ai.choice" if i == answer_at else f"s{s}e{i}", time_unix_nano=i)
            event.attributes.add(key="message").value.string_value = f"answer {s}.{i}"
            event.attributes.add(key="extra").value.string_value = "x"  # dropped: count 1
    processor = limited_processor(65536, 1, events=3)
    rows = processor.to_table(OtlpBatch([OtlpRecord(request.SerializeToString())])).to_pylist()
    names = [[e["name"] for e in orjson.loads(row["events"] or "[]")] for row in rows]
    assert names == [
        ["s0e0", "s0e1", "s0e2"],
        ["s1e0", "gen_ai.choice"],
        [],
        ["s3e0", "s3e1", "gen_ai.choice"],
    ]
    assert orjson.loads(rows[3]["events"])[2]["attributes"] == {"message": "answer 3.2"}
    assert [row["output_text"] for row in rows] == [None, "answer 1.1", None, "answer 3.2"]
    assert processor.take_counts() == counted(attributes=3 + 2 + 3, events=2 + 1)


def test_an_array_of_50000_ints_keeps_the_first_max_array_length() -> None:
    request, span = one_span_request()
    span.attributes.add(key="vector").value.CopyFrom(array(*ints(*range(50_000))))
    letters = array(*(AnyValue(string_value=c) for c in "abcd"))
    span.attributes.add(key="nested").value.kvlist_value.values.add(key="inner").value.CopyFrom(
        array(array(), letters, array())
    )
    processor = default_processor()
    assert orjson.loads(only_row(processor, request)["attributes"])["vector"] == list(range(10_000))
    assert processor.take_counts() == counted(arrays=40_000)
    processor = limited_processor(65536, 1024, array=2)
    attributes = orjson.loads(only_row(processor, request)["attributes"])
    assert attributes == {"vector": [0, 1], "nested": {"inner": [[], ["a", "b"]]}}
    assert processor.take_counts() == counted(arrays=49_998 + 1 + 2)


def test_a_5000_character_key_is_cut_to_max_attribute_key_length_characters() -> None:
    request, span = one_span_request()
    span.attributes.add(key="é" * 4000 + "😀" * 1000).value.string_value = "kept"
    span.attributes.add(key="k" * 1024).value.string_value = "exactly the limit"
    inner = span.attributes.add(key="map").value.kvlist_value.values
    inner.add(key="ü" * 5000).value.int_value = 1
    processor = default_processor()
    attributes = orjson.loads(only_row(processor, request)["attributes"])
    assert attributes == {"é" * 1024: "kept", "k" * 1024: "exactly the limit", "map": {"ü" * 1024: 1}}
    assert processor.take_counts() == counted(keys=2)
    processor = limited_processor(65536, 1024, key=4002)  # the cut falls inside the emoji
    attributes = orjson.loads(only_row(processor, request)["attributes"])
    assert attributes == {
        "é" * 4000 + "😀😀": "kept",
        "k" * 1024: "exactly the limit",
        "map": {"ü" * 4002: 1},
    }
    assert processor.take_counts() == counted(keys=2)


def test_a_cut_key_is_the_key_the_columns_read() -> None:
    request, span = one_span_request()
    span.attributes.add(key="user.id-and-more").value.string_value = "dave"
    processor = normalize.create(
        normalize.Config(max_attribute_key_length=7, attributes={"user_id": ["user.id"]}),
        None,  # type: ignore[arg-type]
    )
    row = only_row(processor, request)
    assert (row["user_id"], orjson.loads(row["attributes"])) == ("dave", {"user.id": "dave"})
    assert processor.take_counts() == counted(keys=1)


def test_kvlist_entries_past_max_attribute_count_are_dropped() -> None:
    request, span = one_span_request()
    pairs = span.attributes.add(key="map").value.kvlist_value.values
    for i in range(5):
        pairs.add(key=f"k{i}").value.kvlist_value.values.extend(
            KeyValue(key=f"n{j}", value=AnyValue(int_value=j)) for j in range(i)
        )
    processor = limited_processor(65536, 3)
    attributes = orjson.loads(only_row(processor, request)["attributes"])
    assert attributes == {"map": {"k0": {}, "k1": {"n0": 0}, "k2": {"n0": 0, "n1": 1}}}
    assert processor.take_counts() == counted(attributes=2)  # k3, k4 (their own entries unseen)


def _len(field: int, body: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(body)) + body


def test_a_nested_value_protobuf_would_merge_is_counted_as_protobuf_reads_it() -> None:
    """An array element whose array_value is sent in two parts is one array of both parts."""
    element = array(*ints(0, 1, 2)).SerializeToString() * 2  # array_value sent twice: one array of 6
    elements = _len(1, element) + _len(1, AnyValue(string_value="long text").SerializeToString())
    key_value = _len(1, b"tags") + _len(2, _len(5, elements))
    span = _len(1, b"\1" * 16) + _len(2, b"\2" * 8) + _len(5, b"chat") + _len(9, key_value)
    payload = _len(1, _len(2, _len(2, span)))
    processor = limited_processor(4, 1024, array=4)
    row = processor.to_table(OtlpBatch([OtlpRecord(payload)])).to_pylist()[0]
    assert orjson.loads(row["attributes"]) == {"tags": [[0, 1, 2, 0], "long"]}
    assert processor.take_counts() == counted(values=1, arrays=2)


# --- against an independent reference -------------------------------------------------------


@dataclass(frozen=True)
class Caps:
    length: int
    count: int
    key: int
    array: int
    events: int


def _cut_value(value: AnyValue, caps: Caps, totals: Counter[str]) -> bool:
    """Whether a string in ``value`` was cut (surplus array elements and kvlist entries are
    dropped first, and not looked at)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        if len(value.string_value) > caps.length:
            value.string_value = value.string_value[: caps.length]
            return True
        return False
    if kind == "array_value":
        items = value.array_value.values
        totals["array_values_dropped"] += max(0, len(items) - caps.array)
        del items[caps.array :]
        return sum(_cut_value(item, caps, totals) for item in items) > 0
    if kind == "kvlist_value":
        return _cut_pairs(value.kvlist_value.values, caps, totals) > 0
    return False


def _cut_pairs(pairs: Any, caps: Caps, totals: Counter[str]) -> int:
    """Values with a string cut, of the pairs kept."""
    totals["attributes_dropped"] += max(0, len(pairs) - caps.count)
    del pairs[caps.count :]
    cut = 0
    for pair in pairs:
        if len(pair.key) > caps.key:
            pair.key = pair.key[: caps.key]
            totals["attribute_keys_truncated"] += 1
        cut += _cut_value(pair.value, caps, totals)
    return cut


def reference_limited(payload: bytes, caps: Caps) -> tuple[ExportTraceServiceRequest, dict[str, int]]:
    request = ExportTraceServiceRequest.FromString(payload)
    totals: Counter[str] = Counter()
    sets = []
    for rs in request.resource_spans:
        sets.append(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                sets.append(span.attributes)
                totals["span_events_dropped"] += max(0, len(span.events) - caps.events)
                del span.events[caps.events :]
                sets.extend(event.attributes for event in span.events)
    for pairs in sets:
        totals["attribute_values_truncated"] += _cut_pairs(pairs, caps, totals)
    return request, counted(
        totals["attribute_values_truncated"],
        totals["attributes_dropped"],
        totals["attribute_keys_truncated"],
        totals["array_values_dropped"],
        totals["span_events_dropped"],
    )


caps = st.builds(
    Caps, st.integers(1, 6), st.integers(1, 4), st.integers(1, 6), st.integers(1, 3), st.integers(1, 2)
)


@PROFILE
@given(requests(), caps, st.none() | st.integers(0, 2**32), st.sampled_from([0.02, 0.2]))
def test_limited_columns_equal_a_limited_protobuf_decode(
    request: ExportTraceServiceRequest, caps: Caps, seed: int | None, split: float
) -> None:
    """With ``seed``, the payload is another encoding of the request (nested values sent in
    parts, say): the limits are those of the message, whatever its encoding."""
    payload = request.SerializeToString()
    expected_request, counts = reference_limited(payload, caps)
    if seed is not None:
        payload = reencode(payload, "Request", random.Random(seed), split)
    processor = limited_processor(caps.length, caps.count, caps.key, caps.array, caps.events)
    try:
        table = processor.to_table(OtlpBatch([OtlpRecord(payload)]))
    except OverflowError:  # as in test_columnar: a token count past int64 fails the batch
        return
    assert mechanical_rows(table) == reference_rows(expected_request)
    assert processor.take_counts() == counts
    # Every column, the rules that read whole spans (events) included, is that of the limited request.
    assert table.equals(
        default_processor().to_table(OtlpBatch([OtlpRecord(expected_request.SerializeToString())]))
    )


def _nested_reencoded(value: AnyValue, rng: random.Random) -> bytes:
    """``value`` canonical at the top (the scanner reads it as is), re-encoded inside."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return _len(5, reencode(value.array_value.SerializeToString(), "ArrayValue", rng, 0.5))
    if kind == "kvlist_value":
        return _len(6, reencode(value.kvlist_value.SerializeToString(), "KeyValueList", rng, 0.5))
    encoded: bytes = value.SerializeToString()
    return encoded


@PROFILE
@given(
    st.lists(st.lists(any_values(), max_size=4).map(lambda v: array(*v)) | any_values(), max_size=4),
    caps,
    st.integers(0, 2**32),
)
def test_nested_values_are_limited_as_protobuf_reads_them_whatever_their_encoding(
    values: list[AnyValue], caps: Caps, seed: int
) -> None:
    """Arrays and kvlists whose elements protobuf merges (sent in parts, a value member sent
    twice) are counted by protobuf; the others by the kernel: the same either way."""
    rng = random.Random(seed)
    attributes = b"".join(
        _len(9, _len(1, f"k{i}".encode()) + _len(2, _nested_reencoded(value, rng)))
        for i, value in enumerate(values)
    )
    span = _len(1, b"\1" * 16) + _len(2, b"\2" * 8) + _len(5, b"chat") + attributes
    payload = _len(1, _len(2, _len(2, span)))
    expected_request, counts = reference_limited(payload, caps)
    processor = limited_processor(caps.length, caps.count, caps.key, caps.array, caps.events)
    table = processor.to_table(OtlpBatch([OtlpRecord(payload)]))
    assert mechanical_rows(table) == reference_rows(expected_request)
    assert processor.take_counts() == counts
    # Every column, the rules that read whole spans (events) included, is that of the limited request.
    assert table.equals(
        default_processor().to_table(OtlpBatch([OtlpRecord(expected_request.SerializeToString())]))
    )
