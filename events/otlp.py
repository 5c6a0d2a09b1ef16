"""Agent events in OTLP: log records and span events named like them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from events.model import NAME_KEYS, AgentEvent, event_of, is_agent_event, with_ids
from events.spans import request_spans

NEEDLE = b"agent."
"""Every event name starts so: a request without these bytes holds no agent event."""


def plain(value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as plain Python (maps as dicts, arrays as lists, bytes as hex)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "kvlist_value":
        return {kv.key: plain(kv.value) for kv in value.kvlist_value.values}
    if kind == "array_value":
        return [plain(v) for v in value.array_value.values]
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def attributes_of(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        out.setdefault(kv.key, plain(kv.value))
    return out


def log_event_name(record: LogRecord, attributes: Mapping[str, Any] | None = None) -> str | None:
    """The event a log record is: its ``event_name``, else an ``event.name`` attribute."""
    if record.event_name:
        return record.event_name
    found = (attributes if attributes is not None else attributes_of(record.attributes)).get("event.name")
    return found if isinstance(found, str) and found else None


def event_of_log(record: LogRecord) -> AgentEvent | None:
    """The agent event a log record carries (None: it is no agent event). Fields are its
    attributes, and the keys of a map body where no attribute names them."""
    attributes = attributes_of(record.attributes)
    name = log_event_name(record, attributes)
    if not is_agent_event(name):
        body = plain(record.body) if record.HasField("body") else None
        if not isinstance(body, dict):
            return None
        name = next((body[k] for k in NAME_KEYS if isinstance(body.get(k), str)), None)
        if not is_agent_event(name):
            return None
    assert name is not None
    body = plain(record.body) if record.HasField("body") else None
    fields = {**body, **attributes} if isinstance(body, dict) else attributes
    when = record.time_unix_nano or record.observed_time_unix_nano
    return with_ids(event_of(name, fields, when), record.trace_id, record.span_id)


def events_of_logs(request: ExportLogsServiceRequest) -> list[tuple[Resource, list[AgentEvent]]]:
    """The agent events of a logs request, grouped by resource."""
    out = []
    for rl in request.resource_logs:
        found = [e for sl in rl.scope_logs for r in sl.log_records if (e := event_of_log(r)) is not None]
        if found:
            out.append((rl.resource, found))
    return out


def derived_spans_of_logs(payload: bytes) -> ExportTraceServiceRequest | None:
    """The spans the agent events of a serialized logs request stand for (None: it has none)."""
    if NEEDLE not in payload:
        return None
    request = ExportLogsServiceRequest.FromString(payload)
    groups = events_of_logs(request)
    if not groups:
        return None
    spans = request_spans(groups)
    return spans if spans.resource_spans else None
