"""Synthetic runs are traced like production traffic: the runner's OpenTelemetry SDK spans are
encoded as OTLP, exactly as a client would send them, and handed to a pipeline in this process
(normalize → classify → parquet), so they land in ``spans`` and ``runs`` with ``synthetic``
set and their eval run and case ids."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from core.component import Consumer
from core.model import OtlpBatch, OtlpRecord

RECEIVER = "synthetic"


class PipelineSpanExporter(SpanExporter):
    def __init__(self, consumer: Consumer, tenant: str | None = None) -> None:
        self.consumer = consumer
        self.tenant = tenant
        self.spans_exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        payload = encode_spans(spans).SerializeToString()
        self.consumer.consume(OtlpBatch([OtlpRecord(payload, self.tenant, RECEIVER, len(spans))]))
        self.spans_exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
