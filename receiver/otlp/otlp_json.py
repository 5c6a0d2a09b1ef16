"""OTLP/JSON → protobuf, per the OTLP specification's JSON encoding.

The JSON encoding differs from protobuf's canonical JSON mapping in one way that matters:
``traceId``/``spanId``/``parentSpanId`` are hex strings, not base64. Everything else (int64 as
strings or numbers, enums as integers or names, lowerCamelCase or original field names,
unknown fields ignored) is what ``json_format.ParseDict`` already accepts.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from core.errors import DecodeError

_ID_KEYS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")


NOT_HEX = b"\x00"
"""What a log record's id that is not hex becomes: an id of the wrong length, so the record is
rejected by validation (a log record's empty id means it has none, so empty will not do)."""


def _hex_to_b64(value: Any, invalid: bytes = b"") -> Any:
    """Turn a hex id into the base64 protobuf's JSON parser expects.

    An id that is not valid hex becomes ``invalid`` (a span's: empty): the item is then rejected
    by validation (a partial success naming the bad id) instead of failing the whole request.
    """
    if not isinstance(value, str):
        return value
    try:
        raw = binascii.unhexlify(value)
    except (binascii.Error, ValueError):
        raw = invalid
    return base64.b64encode(raw).decode("ascii")


def _fix_ids(obj: dict[str, Any], invalid: bytes = b"") -> None:
    for key in _ID_KEYS:
        if key in obj:
            obj[key] = _hex_to_b64(obj[key], invalid)


def _list(obj: dict[str, Any], *keys: str) -> list[Any]:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, list):
            return value
    return []


def _document(body: bytes, top: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DecodeError(f"request body must be a JSON object with {top!r}")
    return doc


def parse_json_request(body: bytes) -> ExportTraceServiceRequest:
    doc = _document(body, "resourceSpans")
    for rs in _list(doc, "resourceSpans", "resource_spans"):
        if not isinstance(rs, dict):
            continue
        for ss in _list(rs, "scopeSpans", "scope_spans"):
            if not isinstance(ss, dict):
                continue
            for span in _list(ss, "spans"):
                if not isinstance(span, dict):
                    continue
                _fix_ids(span)
                for link in _list(span, "links"):
                    if isinstance(link, dict):
                        _fix_ids(link)
    request = ExportTraceServiceRequest()
    _parse(doc, request)
    return request


def parse_json_logs_request(body: bytes) -> ExportLogsServiceRequest:
    doc = _document(body, "resourceLogs")
    for rl in _list(doc, "resourceLogs", "resource_logs"):
        if not isinstance(rl, dict):
            continue
        for sl in _list(rl, "scopeLogs", "scope_logs"):
            if not isinstance(sl, dict):
                continue
            for item in _list(sl, "logRecords", "log_records"):
                if isinstance(item, dict):
                    _fix_ids(item, NOT_HEX)
    request = ExportLogsServiceRequest()
    _parse(doc, request)
    return request


def _parse(doc: dict[str, Any], request: Message) -> None:
    try:
        json_format.ParseDict(doc, request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        name = type(request).__name__
        raise DecodeError(f"request is not a valid OTLP/JSON {name}: {exc}") from None


def response_to_json(response: Message) -> bytes:
    return orjson.dumps(json_format.MessageToDict(response))


def request_to_json(request: ExportTraceServiceRequest) -> bytes:
    """The inverse of ``parse_json_request``: OTLP/JSON with hex ids (used by tests and tools)."""
    doc = json_format.MessageToDict(request)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for obj in [span, *span.get("links", [])]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in obj:
                            obj[key] = base64.b64decode(obj[key]).hex()
    return orjson.dumps(doc)
