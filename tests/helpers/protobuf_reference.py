"""A reference decoder of OTLP requests written with protobuf objects, independently of
processors/: the mechanical span columns (ids, names, times, kind, status, scope, attributes,
resource and events JSON) the columnar decoder must equal exactly (columnar and limits tests),
and the hypothesis settings those property tests share."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pyarrow as pa
from hypothesis import HealthCheck, settings
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

KINDS = (None, "internal", "server", "client", "producer", "consumer")
PROFILE = settings(deadline=None, suppress_health_check=list(HealthCheck))
"""Examples per test from the loaded Hypothesis profile (tests/conftest.py): 150, or fewer in
``make test-fast``."""


def reference_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [reference_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return reference_attrs(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def reference_attrs(pairs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        out[pair.key] = reference_value(pair.value)
    return out


def reference_rows(request: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    rows = []
    for rs in request.resource_spans:
        resource = reference_attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                start, end, code = span.start_time_unix_nano, span.end_time_unix_nano, span.status.code
                events = [
                    {
                        "name": e.name,
                        "time_unix_nano": e.time_unix_nano,
                        "attributes": reference_attrs(e.attributes),
                    }
                    for e in span.events
                ]
                rows.append(
                    {
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex() or None,
                        "scope_name": ss.scope.name or None,
                        "name": span.name,
                        "kind": KINDS[span.kind] if 0 <= span.kind < 6 else None,
                        "start_time": start // 1000,
                        "end_time": end // 1000,
                        "start_time_unix_nano": start,
                        "end_time_unix_nano": end,
                        "duration_ms": (end - start) / 1e6 if end > start else 0.0,
                        "status": ("unset", "ok", "error")[code] if 0 <= code < 3 else "unset",
                        "status_message": span.status.message or None,
                        "attributes": orjson.dumps(reference_attrs(span.attributes)).decode(),
                        "resource_attributes": orjson.dumps(resource).decode(),
                        "events": orjson.dumps(events).decode() if events else None,
                    }
                )
    return rows


def mechanical_rows(table: pa.Table) -> list[dict[str, Any]]:
    table = table.set_column(
        table.schema.get_field_index("start_time"), "start_time", table["start_time"].cast(pa.int64())
    )
    table = table.set_column(
        table.schema.get_field_index("end_time"), "end_time", table["end_time"].cast(pa.int64())
    )
    names = ["trace_id", "span_id", "parent_span_id", "scope_name", "name", "kind", "start_time", "end_time",
             "start_time_unix_nano", "end_time_unix_nano", "duration_ms", "status", "status_message",
             "attributes", "resource_attributes", "events"]  # fmt: skip
    return table.select(names).to_pylist()
