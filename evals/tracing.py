"""Eval runs are traced like production traffic: the runner's OpenTelemetry SDK spans are encoded
as OTLP, exactly as a client would send them, and handed to a sink, so they land in ``spans``
and ``runs`` with ``synthetic`` set and their eval run and case ids.

One span exporter (``SinkSpanExporter``), with the sink deciding where the bytes go:

- the synthetic receiver's sink hands them to its OTLP export handler inside ``serve``
  (screened, deduplicated, in the write-ahead log when ``submit`` returns);
- ``agentwatch eval run``'s sink is the same durable path in its own process
  (``agentwatch.ingest``), or, when a server is running on the data directory, that server's
  OTLP/HTTP receiver (``OtlpHttpSink``: answered once the server's log has them);
- ``PipelineSink`` hands them straight to a pipeline (no log, no deduplication): for tests and
  tools that build a data directory in one process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import httpx
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from core.component import Consumer
from core.httpclient import CallFailed, RetryPolicy, post
from core.model import OtlpBatch, OtlpRecord

log = logging.getLogger("agentwatch.eval")

SERVICE_NAME = "agentwatch-synthetic"
TENANT_ATTRIBUTE = "agentwatch.tenant"
"""Set on the resource, so a server's receiver stores the spans under the run's tenant too."""


class SpanSink(Protocol):
    def submit(self, payload: bytes, spans: int) -> None:
        """Take one OTLP ``ExportTraceServiceRequest`` (protobuf) of ``spans`` spans; return once
        it is durable, raise when it cannot be made so."""


class SpanSinkError(Exception):
    """A sink that refused spans, or could not reach where they go."""


class SinkSpanExporter(SpanExporter):
    """SDK spans → OTLP protobuf bytes → the sink. Counts what the sink took and what it did not
    (the SDK only logs a failed export), so the runner can say when spans are missing."""

    def __init__(self, sink: SpanSink) -> None:
        self.sink = sink
        self.spans_exported = 0
        self.spans_failed = 0
        self.problem: str | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        payload = encode_spans(spans).SerializeToString()
        try:
            self.sink.submit(payload, len(spans))
        except Exception as exc:  # the SDK would only log it: counted, and said by the runner
            self.spans_failed += len(spans)
            self.problem = self.problem or f"{type(exc).__name__}: {exc}"
            log.error("%d eval spans could not be stored: %s", len(spans), exc)
            return SpanExportResult.FAILURE
        self.spans_exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def tracer_provider(sink: SpanSink, tenant: str | None = None) -> tuple[TracerProvider, SinkSpanExporter]:
    """A provider whose spans go to ``sink`` in batches (``force_flush`` then ``shutdown`` when done)."""
    attributes = {"service.name": SERVICE_NAME}
    if tenant is not None:
        attributes[TENANT_ATTRIBUTE] = tenant
    provider = TracerProvider(resource=Resource.create(attributes))
    exporter = SinkSpanExporter(sink)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, exporter


class PipelineSink:
    """Straight into a pipeline in this process: nothing logged, nothing deduplicated."""

    def __init__(self, consumer: Consumer, tenant: str | None = None, receiver: str = "synthetic") -> None:
        self.consumer, self.tenant, self.receiver = consumer, tenant, receiver

    def submit(self, payload: bytes, spans: int) -> None:
        self.consumer.consume(OtlpBatch([OtlpRecord(payload, self.tenant, self.receiver, spans)]))


OTLP_POLICY = RetryPolicy(timeout=30.0, retries=8, backoff=0.5, max_backoff=10.0)
"""A busy server answers 503 with Retry-After: about a minute of retries before giving up."""


class OtlpHttpSink:
    """POST to an OTLP/HTTP receiver, answered (200) once the receiving server's write-ahead log
    has the spans; retried on 429, 5xx and transport errors."""

    def __init__(
        self, url: str, headers: dict[str, str] | None = None, policy: RetryPolicy = OTLP_POLICY
    ) -> None:
        self.url = url
        self.headers = {"Content-Type": "application/x-protobuf", **(headers or {})}
        self.policy = policy
        self.client = httpx.Client()

    def submit(self, payload: bytes, spans: int) -> None:
        try:
            response, _ = post(self.client, self.url, payload, self.policy, self.headers)
        except CallFailed as exc:
            raise SpanSinkError(f"{self.url}: {exc}") from None
        answer = ExportTraceServiceResponse.FromString(response.content)
        partial = answer.partial_success
        if partial.rejected_spans:
            problem = f"rejected {partial.rejected_spans} span(s): {partial.error_message}"
            raise SpanSinkError(f"{self.url} {problem}")

    def close(self) -> None:
        self.client.close()
