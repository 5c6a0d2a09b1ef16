"""The one OTLP export handler. gRPC and HTTP are thin transport shells over ``ExportHandler``.

An export is answered only once its spans are durable (the sink's future resolved). Spans that
cannot be stored (ids of the wrong length, all-zero ids) are dropped from the request and
reported back as a partial success, as the OTLP specification asks; the rest are kept.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from agentwatch.component import DurableSink, StoredIndex
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
from storage.dedup import span_key

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


@dataclass
class Screened:
    kept: int = 0
    rejected: int = 0
    duplicates: int = 0
    problem: str = ""
    keys: list[bytes] = field(default_factory=list)
    """Dedup keys of the kept spans, to remember once they are durable."""


def screen_spans(
    request: ExportTraceServiceRequest, recent: StoredIndex | None = None, tenant: str | None = None
) -> Screened:
    """Remove spans that cannot be stored and spans already stored (or repeated in the request)."""
    out = Screened()
    seen: set[bytes] = set()
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            drop = []
            for index, span in enumerate(ss.spans):
                trace_id, span_id = span.trace_id, span.span_id
                problem = _span_problem(trace_id, span_id, span.parent_span_id)
                if problem is not None:
                    drop.append(index)
                    out.rejected += 1
                    out.problem = out.problem or f"span {span.name!r}: {problem}"
                    continue
                key = span_key(tenant, trace_id, span_id)
                if key in seen or (recent is not None and key in recent):
                    drop.append(index)
                    out.duplicates += 1
                    continue
                seen.add(key)
                out.keys.append(key)
            for index in reversed(drop):
                del ss.spans[index]
    out.kept = len(out.keys)
    return out


class ExportHandler:
    """Decode, validate, make durable, answer. Shared by every OTLP transport."""

    def __init__(self, sink: DurableSink, receiver_id: str, recent: StoredIndex | None = None) -> None:
        self._sink = sink
        self._receiver_id = receiver_id
        self._recent = recent
        self.accepted_spans = 0
        self.duplicate_spans = 0
        self.rejected_spans = 0
        self.refused: Counter[str] = Counter()
        """Requests refused whole, by reason (``decode_error``, ``unauthenticated``, ...)."""

    def note_refusal(self, exc: RequestError) -> None:
        """Transports report every request they refuse, wherever in the request it happened."""
        self.refused[_REASONS.get(type(exc), "other")] += 1

    async def export(self, body: bytes, encoding: Encoding, tenant: str | None = None) -> ExportResult:
        request = decode_request(body, encoding)
        screened = screen_spans(request, self._recent, tenant)
        rejected = screened.rejected
        message = f"{rejected} span(s) rejected; first: {screened.problem}" if rejected else ""
        self.rejected_spans += rejected
        self.duplicate_spans += screened.duplicates
        if screened.kept == 0:
            # Duplicates are already stored: for the client that is a success.
            return ExportResult(0, rejected, message)
        # The original bytes are what we log, unless spans were dropped or it came as JSON.
        unchanged = encoding == "protobuf" and not rejected and not screened.duplicates
        payload = body if unchanged else request.SerializeToString()
        record = OtlpRecord(payload, tenant, self._receiver_id, screened.kept)
        await asyncio.wrap_future(self._sink.submit(record))
        # Remembered only once durable: a refused request's retry must not look like a duplicate.
        if self._recent is not None:
            self._recent.add_all(screened.keys)
        self.accepted_spans += screened.kept
        return ExportResult(screened.kept, rejected, message)
