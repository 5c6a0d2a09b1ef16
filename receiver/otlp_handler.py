"""The one OTLP export handler. gRPC and HTTP are thin transport shells over ``ExportHandler``.

An export is answered only once its spans are durable (the sink's future resolved). Spans that
cannot be stored (ids of the wrong length, all-zero ids) are dropped from the request and
reported back as a partial success, as the OTLP specification asks; the rest are kept.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from agentwatch.component import DurableSink
from agentwatch.errors import (
    DecodeError,
    Overloaded,
    PayloadTooLarge,
    RequestError,
    StorageFull,
    Unauthenticated,
    UnsupportedMediaType,
)
from agentwatch.model import OtlpRecord
from receiver.otlp_json import parse_json_request

Encoding = Literal["protobuf", "json"]

_REASONS: dict[type[RequestError], str] = {
    DecodeError: "decode_error",
    UnsupportedMediaType: "unsupported_media_type",
    PayloadTooLarge: "payload_too_large",
    Unauthenticated: "unauthenticated",
    Overloaded: "overloaded",
    StorageFull: "storage_full",
}

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


@dataclass(frozen=True)
class ExportResult:
    accepted: int
    rejected: int
    message: str

    def response(self) -> ExportTraceServiceResponse:
        response = ExportTraceServiceResponse()
        if self.rejected:
            response.partial_success.rejected_spans = self.rejected
            response.partial_success.error_message = self.message
        return response


def decode_request(body: bytes, encoding: Encoding) -> ExportTraceServiceRequest:
    if encoding == "json":
        return parse_json_request(body)
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (ProtobufDecodeError, RuntimeError, ValueError) as exc:
        raise DecodeError(f"request body is not a valid protobuf ExportTraceServiceRequest: {exc}") from None
    return request


def _span_problem(trace_id: bytes, span_id: bytes, parent: bytes) -> str | None:
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
        return f"invalid trace_id {trace_id.hex()!r}: must be 16 bytes, not all zero"
    if len(span_id) != 8 or span_id == _ZERO_SPAN:
        return f"invalid span_id {span_id.hex()!r}: must be 8 bytes, not all zero"
    if parent and len(parent) != 8:
        return f"invalid parent_span_id {parent.hex()!r}: must be empty or 8 bytes"
    return None


def drop_invalid_spans(request: ExportTraceServiceRequest) -> tuple[int, int, str]:
    """Remove spans that cannot be stored; return (kept, rejected, first problem)."""
    kept = rejected = 0
    first = ""
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            bad = []
            for index, span in enumerate(ss.spans):
                problem = _span_problem(span.trace_id, span.span_id, span.parent_span_id)
                if problem is None:
                    kept += 1
                    continue
                bad.append(index)
                first = first or f"span {span.name!r}: {problem}"
            for index in reversed(bad):
                del ss.spans[index]
            rejected += len(bad)
    return kept, rejected, first


class ExportHandler:
    """Decode, validate, make durable, answer. Shared by every OTLP transport."""

    def __init__(self, sink: DurableSink, receiver_id: str) -> None:
        self._sink = sink
        self._receiver_id = receiver_id
        self.accepted_spans = 0
        self.rejected_spans = 0
        self.refused: Counter[str] = Counter()
        """Requests refused whole, by reason (``decode_error``, ``unauthenticated``, ...)."""

    def note_refusal(self, exc: RequestError) -> None:
        """Transports report every request they refuse, wherever in the request it happened."""
        self.refused[_REASONS.get(type(exc), "other")] += 1

    async def export(self, body: bytes, encoding: Encoding, tenant: str | None = None) -> ExportResult:
        request = decode_request(body, encoding)
        kept, rejected, problem = drop_invalid_spans(request)
        message = f"{rejected} span(s) rejected; first: {problem}" if rejected else ""
        self.rejected_spans += rejected
        if kept == 0:
            return ExportResult(0, rejected, message)
        # The original bytes are what we log, unless spans were dropped or it came as JSON.
        payload = body if encoding == "protobuf" and not rejected else request.SerializeToString()
        record = OtlpRecord(payload, tenant, self._receiver_id, kept)
        await asyncio.wrap_future(self._sink.submit(record))
        self.accepted_spans += kept
        return ExportResult(kept, rejected, message)
