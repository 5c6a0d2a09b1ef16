"""Agent events in OTLP: log records and span events named like them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from events.model import (
    FALLBACK_TRIGGERED,
    NAME_KEYS,
    STEP_COMPLETED,
    AgentEvent,
    event_of,
    is_agent_event,
    with_ids,
)
from events.spans import (
    OPERATION_OF_EVENT,
    USAGE_ATTRIBUTES,
    as_number,
    attribute_of_field,
    kv,
    request_spans,
    usage_of,
)

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
    for pair in kvs:
        out.setdefault(pair.key, plain(pair.value))
    return out


def log_event_name(record: LogRecord, attributes: Mapping[str, Any] | None = None) -> str | None:
    """The event a log record is: its ``event_name``, else an ``event.name`` attribute."""
    if record.event_name:
        return record.event_name
    found = (attributes if attributes is not None else attributes_of(record.attributes)).get("event.name")
    return found if isinstance(found, str) and found else None


def event_of_log(record: LogRecord, attributes: Mapping[str, Any] | None = None) -> AgentEvent | None:
    """The agent event a log record carries (None: it is no agent event). Fields are its
    attributes (``attributes``: already read), and the keys of a map body where no attribute
    names them."""
    if attributes is None:
        attributes = attributes_of(record.attributes)
    name = log_event_name(record, attributes)
    body: dict[str, Any] = plain(record.body) if record.body.WhichOneof("value") == "kvlist_value" else {}
    if not is_agent_event(name):
        name = next((body[k] for k in NAME_KEYS if isinstance(body.get(k), str)), None)
        if not is_agent_event(name):
            return None
    assert name is not None
    fields = {**body, **attributes}
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
    return derived_spans(events_of_logs(ExportLogsServiceRequest.FromString(payload)))


def derived_spans(groups: list[tuple[Resource, list[AgentEvent]]]) -> ExportTraceServiceRequest | None:
    """The spans of agent events grouped by resource (None: there are none)."""
    if not groups:
        return None
    spans = request_spans(groups)
    return spans if spans.resource_spans else None


# -- agent events on spans ---------------------------------------------------------------------
SPAN_EVENT_NEEDLES = (
    b"agent.request.", b"agent.step.", b"agent.tool.", b"agent.retry", b"agent.policy.decision",
    b"agent.budget.threshold_hit",
)  # fmt: skip
"""A traces request holds an agent event (other than a fallback, read as it is) only if it holds
one of these: most requests are passed on without being parsed."""
KIND_ATTRIBUTES = (
    "gen_ai.operation.name", "openinference.span.kind", "traceloop.span.kind", "llm.request.type",
    "langfuse.observation.type", "mcp.method.name",
)  # fmt: skip
"""Attributes that already say what a span is: an event on it never changes that."""


def lift_span_events(payload: bytes) -> bytes | None:
    """The traces request with the fields of agent events on its spans lifted onto the spans
    (None: it holds none, or nothing changed).

    A span carrying ``agent.request.*`` (``agent.step.completed``, ``agent.tool.*``) is the run
    (the step, the tool call) the event describes: the event's fields become the span's
    attributes where the span has none of that name (``events.spans`` names them), the span is
    what the event says (``invoke_agent``, ``chat``, ``execute_tool``) unless an attribute of
    its own says otherwise, and a failed event fails a span whose status is unset. The span
    stays one span: nothing is counted twice."""
    if not any(needle in payload for needle in SPAN_EVENT_NEEDLES):
        return None
    request = ExportTraceServiceRequest.FromString(payload)
    changed = False
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                for item in span.events:
                    if is_agent_event(item.name) and item.name != FALLBACK_TRIGGERED:
                        event = event_of(item.name, attributes_of(item.attributes), item.time_unix_nano)
                        changed = lift(span, event) or changed
    return request.SerializeToString() if changed else None


def lift(span: Span, event: AgentEvent) -> bool:
    """Put ``event``'s fields on ``span`` where it has none of its own; whether anything changed."""
    present = {kv.key for kv in span.attributes}
    wanted: list[tuple[str, object]] = []
    operation = OPERATION_OF_EVENT.get(event.name)
    if event.name == STEP_COMPLETED and not (event.get("model") or usage_of(event)):
        operation = None
    if operation and not present.intersection(KIND_ATTRIBUTES):
        wanted.append(("gen_ai.operation.name", operation))
    wanted += [(attribute_of_field(name), value) for name, value in event.text.items()]
    wanted += [(USAGE_ATTRIBUTES[name], as_number(name, n)) for name, n in usage_of(event).items()]
    added = [(key, value) for key, value in wanted if key not in present]
    for key, value in added:
        span.attributes.append(kv(key, value))
    failed = event.failed and span.status.code == Status.STATUS_CODE_UNSET
    if failed:
        span.status.code = Status.STATUS_CODE_ERROR
        span.status.message = event.get("error_type") or event.get("status") or "failed"
    return bool(added) or failed
