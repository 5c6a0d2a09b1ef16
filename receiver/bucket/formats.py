"""Records of the formats a bucket holds → OTLP: log records, or spans for OTLP JSON traces.

- ``cloud_logging``: Google Cloud Logging's export of ``LogEntry`` JSON lines. ``timestamp`` is
  the record's time, ``receiveTimestamp`` its observed time, ``severity`` its severity (text and
  number), ``jsonPayload`` (a map) or ``textPayload`` (a string) or ``protoPayload`` its body,
  ``labels`` its attributes (with ``insertId`` as ``log.record.uid`` and ``logName`` as
  ``gcp.log_name``), ``trace`` (``projects/P/traces/ID``) and ``spanId`` its ids, and
  ``resource`` (``type``, ``labels``) its resource (``cloud.provider: gcp``,
  ``gcp.resource.type``, ``gcp.resource.labels.<name>``).
- ``jsonl``: any JSON object per line. The object is the body; ``timestamp`` (or ``time``,
  ``ts``, ``@timestamp``) its time, ``severity`` (or ``level``) its severity, ``trace_id`` /
  ``traceId`` and ``span_id`` / ``spanId`` its ids. An object naming an agent event
  (``event_name``, ``event.name``, ``name`` or ``event``) is that event: its name is the
  record's ``event_name`` and the model's fields are copied into its attributes.
- ``otlp_json``: what the Collector's file exporter writes, an ``ExportTraceServiceRequest`` or
  ``ExportLogsServiceRequest`` in OTLP/JSON per line (a trace dump of Tempo's API, ``{"batches":
  [...]}``, and the older ``instrumentationLibrarySpans`` are read too).
- ``parquet``: each row as a JSON object (Cloud Logging shaped rows as ``cloud_logging``).

``auto`` tells them apart record by record. A configured mapping (``receiver.bucket.mapping``)
makes matching records agent events. Everything here is deterministic: the same line makes
the same bytes, so a record read twice has the same digest and is stored once.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from core.errors import DecodeError
from events.model import EVENT_NAMES, FIELDS, NAME_KEYS
from receiver.bucket.mapping import (
    Compiled,
    Mapped,
    MappingConfig,
    apply,
    compile_mapping,
    span_hex,
    time_ns,
    trace_hex,
)
from receiver.otlp.otlp_json import parse_json_logs_request, parse_json_request

Format = Literal["auto", "cloud_logging", "jsonl", "otlp_json", "parquet"]
FORMATS: tuple[str, ...] = ("auto", "cloud_logging", "jsonl", "otlp_json", "parquet")
SCOPE = "agentwatch.bucket"
"""The instrumentation scope of the log records this receiver makes."""

SEVERITY = {
    "TRACE": 1, "DEBUG": 5, "INFO": 9, "NOTICE": 10, "WARN": 13, "WARNING": 13, "ERROR": 17,
    "CRITICAL": 18, "FATAL": 21, "ALERT": 19, "EMERGENCY": 21,
}  # fmt: skip
"""Severity text (Cloud Logging's ``LogSeverity`` and the usual level names) → OTel severity number.
Cloud Logging's ``DEFAULT`` is unspecified (0)."""

TIME_KEYS = ("timestamp", "time", "ts", "@timestamp")
LEVEL_KEYS = ("severity", "level", "levelname")
_INT64 = (1 << 63) - 1


class BadRecord(ValueError):
    """A line or row that cannot be read as a record of its format: quarantined and skipped."""


def fill(out: AnyValue, value: Any) -> None:
    """Set ``out`` to plain JSON ``value`` in place (maps as kvlists, lists as arrays; null leaves
    it empty)."""
    kind = type(value)
    if kind is str:
        out.string_value = value
    elif kind is dict:
        values = out.kvlist_value.values
        for k, v in value.items():
            kv = values.add()
            kv.key = str(k)
            fill(kv.value, v)
    elif kind is bool:
        out.bool_value = value
    elif kind is int:
        if -_INT64 - 1 <= value <= _INT64:
            out.int_value = value
        else:
            out.string_value = str(value)
    elif kind is float:
        if math.isfinite(value):
            out.double_value = value
        else:
            out.string_value = str(value)
    elif value is None:
        return
    elif isinstance(value, Mapping):
        fill(out, dict(value))
    elif isinstance(value, list | tuple):
        array = out.array_value.values
        for item in value:
            fill(array.add(), item)
    else:
        out.string_value = str(value)


def any_value(value: Any) -> AnyValue:
    out = AnyValue()
    fill(out, value)
    return out


def key_value(key: str, value: Any) -> KeyValue:
    return KeyValue(key=key, value=any_value(value))


def set_attributes(record: LogRecord, attributes: dict[str, Any]) -> None:
    target = record.attributes
    for key, value in attributes.items():
        kv = target.add()
        kv.key = key
        fill(kv.value, value)


def _severity(value: Any) -> tuple[str, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return "", value if 0 <= value <= 24 else 0
    if not isinstance(value, str):
        return "", 0
    return value, SEVERITY.get(value.strip().upper(), 0)


def _set_time(record: LogRecord, when: Any, observed: Any, fallback_ns: int) -> None:
    t = time_ns(when) if when is not None else None
    o = time_ns(observed) if observed is not None else None
    record.time_unix_nano = t if t is not None and t <= _INT64 else 0
    record.observed_time_unix_nano = o if o is not None and o <= _INT64 else fallback_ns


def _set_ids(record: LogRecord, trace: str | None, span: str | None) -> None:
    if trace is not None:
        record.trace_id = bytes.fromhex(trace)
    if span is not None:
        record.span_id = bytes.fromhex(span)


def _apply_event(record: LogRecord, mapped: Mapped | None, attributes: dict[str, Any]) -> None:
    if mapped is None:
        return
    record.event_name = mapped.event
    attributes.update(mapped.attributes)
    if mapped.trace_id is not None:
        record.trace_id = bytes.fromhex(mapped.trace_id)
    if mapped.span_id is not None:
        record.span_id = bytes.fromhex(mapped.span_id)
    if mapped.time_unix_nano is not None and not record.time_unix_nano:
        record.time_unix_nano = mapped.time_unix_nano


def _event_in_body(obj: Mapping[str, Any]) -> Mapped | None:
    """An object that names an agent event itself: the event, its model fields as attributes."""
    name = next((obj[k] for k in NAME_KEYS if isinstance(obj.get(k), str)), None)
    if name not in EVENT_NAMES:
        return None
    assert isinstance(name, str)
    fields = {
        k: v for k, v in obj.items() if k in FIELDS and not isinstance(v, dict | list) and v is not None
    }
    return Mapped(name, fields, trace_hex(obj.get("trace_id")), span_hex(obj.get("span_id")), None)


@dataclass(frozen=True)
class Made:
    """One log record and the resource it belongs to (``resource_key``: its identity)."""

    resource_key: bytes
    resource: Resource
    record: LogRecord


_NO_RESOURCE = Resource()


def cloud_logging_record(
    entry: Mapping[str, Any], mapping: MappingConfig | Compiled | None, observed_ns: int
) -> Made:
    """A Cloud Logging ``LogEntry`` → a log record (an agent event when ``mapping`` matches)."""
    record = LogRecord()
    _set_time(record, entry.get("timestamp"), entry.get("receiveTimestamp"), observed_ns)
    text, number = _severity(entry.get("severity"))
    record.severity_text, record.severity_number = text, number  # type: ignore[assignment]
    for key in ("jsonPayload", "textPayload", "protoPayload"):
        if entry.get(key) is not None:
            fill(record.body, entry[key])
            break
    _set_ids(record, trace_hex(entry.get("trace")), span_hex(entry.get("spanId")))
    if entry.get("traceSampled") is True:
        record.flags = 1
    attributes: dict[str, Any] = {}
    labels = entry.get("labels")
    if isinstance(labels, Mapping):
        attributes.update({str(k): v for k, v in labels.items() if not isinstance(v, dict | list)})
    if entry.get("insertId") is not None:
        attributes["log.record.uid"] = str(entry["insertId"])
    if entry.get("logName") is not None:
        attributes["gcp.log_name"] = str(entry["logName"])
    _apply_event(record, apply(mapping, entry) if mapping is not None else None, attributes)
    set_attributes(record, attributes)
    identity, resource = _cloud_resource(entry.get("resource"))
    return Made(identity, resource, record)


_RESOURCES: dict[bytes, Resource] = {}
"""Resources made lately, by their entry's ``resource`` as JSON (an export holds a handful)."""


def _cloud_resource(value: Any) -> tuple[bytes, Resource]:
    if not isinstance(value, dict):
        return b"", _NO_RESOURCE
    identity = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    found = _RESOURCES.get(identity)
    if found is None:
        if len(_RESOURCES) >= 1024:
            _RESOURCES.clear()
        found = _RESOURCES[identity] = _make_resource(value)
    return identity, found


def _make_resource(value: dict[str, Any]) -> Resource:
    attributes: dict[str, Any] = {"cloud.provider": "gcp"}
    if value.get("type") is not None:
        attributes["gcp.resource.type"] = str(value["type"])
    labels = value.get("labels")
    if isinstance(labels, Mapping):
        for k, v in labels.items():
            if not isinstance(v, dict | list):
                attributes[f"gcp.resource.labels.{k}"] = v
        if labels.get("project_id") is not None:
            attributes["cloud.account.id"] = str(labels["project_id"])
    return Resource(attributes=[key_value(k, v) for k, v in attributes.items()])


def json_record(obj: Mapping[str, Any], mapping: MappingConfig | Compiled | None, observed_ns: int) -> Made:
    """A plain JSON object → a log record: the object is the body."""
    record = LogRecord()
    when = next((obj[k] for k in TIME_KEYS if obj.get(k) is not None), None)
    _set_time(record, when, None, observed_ns)
    level = next((obj[k] for k in LEVEL_KEYS if obj.get(k) is not None), None)
    text, number = _severity(level)
    record.severity_text, record.severity_number = text, number  # type: ignore[assignment]
    fill(record.body, obj)
    trace = trace_hex(obj.get("trace_id", obj.get("traceId")))
    _set_ids(record, trace, span_hex(obj.get("span_id", obj.get("spanId"))))
    attributes: dict[str, Any] = {}
    mapped = apply(mapping, obj) if mapping is not None else None
    _apply_event(record, mapped or _event_in_body(obj), attributes)
    set_attributes(record, attributes)
    return Made(b"", _NO_RESOURCE, record)


def is_cloud_logging(obj: Mapping[str, Any]) -> bool:
    payload = any(k in obj for k in ("jsonPayload", "textPayload", "protoPayload"))
    return "logName" in obj or ("insertId" in obj and payload)


def otlp_kind(obj: Mapping[str, Any]) -> Literal["traces", "logs"] | None:
    if any(k in obj for k in ("resourceSpans", "resource_spans", "batches")):
        return "traces"
    if any(k in obj for k in ("resourceLogs", "resource_logs")):
        return "logs"
    return None


_ID_SIZES = {"traceId": 16, "trace_id": 16, "spanId": 8, "span_id": 8, "parentSpanId": 8, "parent_span_id": 8}


def _hex_id(value: Any, size: int) -> Any:
    """An id as OTLP/JSON writes it (hex), or as protobuf's own JSON mapping writes it (base64:
    Tempo's trace API, ``GET /api/traces/<id>``, answers so), as hex; anything else unchanged
    (validation names it)."""
    if not isinstance(value, str) or len(value) == 2 * size:
        return value
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value
    return raw.hex() if len(raw) == size else value


def _hex_ids(obj: dict[str, Any]) -> None:
    for key, size in _ID_SIZES.items():
        if key in obj:
            obj[key] = _hex_id(obj[key], size)


def traces_of(obj: dict[str, Any]) -> ExportTraceServiceRequest:
    """An OTLP/JSON traces document (Tempo's ``batches`` and ``instrumentationLibrarySpans`` too;
    its ids hex, or base64 as Tempo's API writes them)."""
    if "batches" in obj and "resourceSpans" not in obj:
        obj = {"resourceSpans": obj["batches"]}
    for rs in obj.get("resourceSpans") or obj.get("resource_spans") or []:
        if isinstance(rs, dict) and "instrumentationLibrarySpans" in rs and "scopeSpans" not in rs:
            rs["scopeSpans"] = rs.pop("instrumentationLibrarySpans")
            for ss in rs["scopeSpans"]:
                if isinstance(ss, dict) and "instrumentationLibrary" in ss:
                    ss["scope"] = ss.pop("instrumentationLibrary")
        for ss in (rs.get("scopeSpans") or rs.get("scope_spans") or []) if isinstance(rs, dict) else []:
            for span in (ss.get("spans") or []) if isinstance(ss, dict) else []:
                if isinstance(span, dict):
                    _hex_ids(span)
                    for link in span.get("links") or []:
                        if isinstance(link, dict):
                            _hex_ids(link)
    try:
        return parse_json_request(orjson.dumps(obj))
    except DecodeError as exc:
        raise BadRecord(str(exc)) from None


def logs_of(obj: dict[str, Any]) -> ExportLogsServiceRequest:
    try:
        return parse_json_logs_request(orjson.dumps(obj))
    except DecodeError as exc:
        raise BadRecord(str(exc)) from None


@dataclass
class Chunk:
    """Records on their way to the door, at most ``max_records`` or ``max_bytes`` of source."""

    logs: ExportLogsServiceRequest = field(default_factory=ExportLogsServiceRequest)
    traces: ExportTraceServiceRequest = field(default_factory=ExportTraceServiceRequest)
    log_records: int = 0
    spans: int = 0
    source_bytes: int = 0
    records: int = 0
    """Source records (lines, rows) in it."""
    _scopes: dict[bytes, ScopeLogs] = field(default_factory=dict)

    def add_made(self, made: Made) -> None:
        scope = self._scopes.get(made.resource_key)
        if scope is None:
            resource_logs: ResourceLogs = self.logs.resource_logs.add()
            resource_logs.resource.CopyFrom(made.resource)
            scope = resource_logs.scope_logs.add()
            scope.scope.name = SCOPE
            self._scopes[made.resource_key] = scope
        scope.log_records.append(made.record)
        self.log_records += 1

    def add_logs(self, request: ExportLogsServiceRequest) -> None:
        self.logs.resource_logs.extend(request.resource_logs)
        self.log_records += sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)

    def add_traces(self, request: ExportTraceServiceRequest) -> None:
        self.traces.resource_spans.extend(request.resource_spans)
        self.spans += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)

    @property
    def empty(self) -> bool:
        return not self.log_records and not self.spans


class Decoder:
    """Turns the objects (JSON) of one object's lines or rows into a chunk's contents."""

    def __init__(self, fmt: str, mapping: MappingConfig | None) -> None:
        self.fmt = fmt
        self.mapping = compile_mapping(mapping) if mapping is not None else None

    def add(self, chunk: Chunk, obj: Any, observed_ns: int) -> None:
        """Add one record to ``chunk``; ``BadRecord`` when it is not a record of the format."""
        if not isinstance(obj, dict):
            raise BadRecord(f"a record must be a JSON object, not {type(obj).__name__}")
        fmt = self.fmt
        if fmt in ("auto", "otlp_json", "parquet"):
            kind = otlp_kind(obj)
            if kind == "traces":
                chunk.add_traces(traces_of(obj))
                return
            if kind == "logs":
                chunk.add_logs(logs_of(obj))
                return
            if fmt == "otlp_json":
                raise BadRecord("not an OTLP/JSON request (no resourceSpans or resourceLogs)")
        if fmt == "cloud_logging" or (fmt != "jsonl" and is_cloud_logging(obj)):
            chunk.add_made(cloud_logging_record(obj, self.mapping, observed_ns))
        else:
            chunk.add_made(json_record(obj, self.mapping, observed_ns))


def loads(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BadRecord(f"invalid JSON: {exc}") from None
