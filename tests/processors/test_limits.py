"""Attribute limits: over-long values are cut and surplus attributes dropped, counted, never rejected."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from agentwatch.model import OtlpBatch, OtlpRecord
from processors import normalize
from tests.processors.otlp_gen import requests
from tests.processors.test_columnar import PROFILE, mechanical_rows, reference_rows


def limited_processor(length: int, count: int) -> normalize.NormalizeProcessor:
    config = normalize.Config(max_attribute_value_length=length, max_attribute_count=count)
    return normalize.create(config, None)  # type: ignore[arg-type]  # to_table only


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
    assert processor.take_counts() == {"attribute_values_truncated": 5, "attributes_dropped": 4}
    assert processor.take_counts() == {"attribute_values_truncated": 0, "attributes_dropped": 0}


def test_default_limits_change_nothing_and_count_nothing() -> None:
    processor = normalize.create(normalize.Config(), None)  # type: ignore[arg-type]
    row = processor.to_table(OtlpBatch([OtlpRecord(request_with_long_values())])).to_pylist()[0]
    assert orjson.loads(row["attributes"])["user.id"] == "ñandú@acme.com"
    assert len(orjson.loads(row["attributes"])) == 4
    assert processor.take_counts() == {"attribute_values_truncated": 0, "attributes_dropped": 0}


def test_limits_must_be_positive() -> None:
    config = normalize.Config(max_attribute_value_length=0, max_attribute_count=0)
    assert config.validate() == [
        "max_attribute_value_length: must be at least 1",
        "max_attribute_count: must be at least 1",
    ]


# --- against an independent reference -------------------------------------------------------


def _cut(value: AnyValue, length: int) -> int:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        if len(value.string_value) > length:
            value.string_value = value.string_value[:length]
            return 1
        return 0
    nested: list[AnyValue] = []
    if kind == "array_value":
        nested = list(value.array_value.values)
    elif kind == "kvlist_value":
        nested = [pair.value for pair in value.kvlist_value.values]
    return 1 if sum(_cut(item, length) for item in nested) else 0


def _limit(pairs: Any, length: int, count: int) -> tuple[int, int]:
    dropped = max(0, len(pairs) - count)
    kept: list[KeyValue] = list(pairs)[:count]
    del pairs[count:]
    return sum(_cut(pair.value, length) for pair in kept), dropped


def reference_limited(payload: bytes, length: int, count: int) -> tuple[ExportTraceServiceRequest, list[int]]:
    request = ExportTraceServiceRequest.FromString(payload)
    totals = [0, 0]
    sets = []
    for rs in request.resource_spans:
        sets.append(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                sets.append(span.attributes)
                sets.extend(event.attributes for event in span.events)
    for pairs in sets:
        cut, dropped = _limit(pairs, length, count)
        totals[0] += cut
        totals[1] += dropped
    return request, totals


@PROFILE
@given(requests(), st.integers(1, 6), st.integers(1, 4))
def test_limited_columns_equal_a_limited_protobuf_decode(
    request: ExportTraceServiceRequest, length: int, count: int
) -> None:
    payload = request.SerializeToString()
    expected_request, (cut, dropped) = reference_limited(payload, length, count)
    processor = limited_processor(length, count)
    try:
        table = processor.to_table(OtlpBatch([OtlpRecord(payload)]))
    except OverflowError:  # as in test_columnar: a token count past int64 fails the batch
        return
    assert mechanical_rows(table) == reference_rows(expected_request)
    assert processor.take_counts() == {"attribute_values_truncated": cut, "attributes_dropped": dropped}
