"""Store OpenTelemetry SDK spans the way ``agentwatch serve`` would, without starting it.

The spans are encoded as the SDK's OTLP exporter sends them (one export request), then run
through the pipelines assembled from the config with the inline converter (normalize, classify,
the Parquet exporter), so the data directory holds exactly what a server given the same config
and the same request writes: same tenant, times and ids. For tests that need stored data, not
a server (the report, alerting and judging fixtures, the recordings of real libraries).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan

from agentwatch.config import load_config
from agentwatch.converter import InlineConverter
from agentwatch.pipeline import assemble
from core.model import OtlpRecord


def store_spans(config_path: Path, spans: Sequence[ReadableSpan], receiver: str = "otlp") -> int:
    """Convert ``spans`` into Parquet under the config's ``storage.data_dir``, through every
    pipeline that takes records from ``receiver``; returns the number of spans stored."""
    return store_request(config_path, encode_spans(spans).SerializePartialToString(), len(spans), receiver)


def store_request(config_path: Path, body: bytes, span_count: int, receiver: str = "otlp") -> int:
    """The same for an OTLP ``ExportTraceServiceRequest`` as a client sent it (``body``, e.g. a
    recording of a real instrumentation library) holding ``span_count`` spans."""
    config = load_config(config_path)
    record = OtlpRecord(body, None, receiver, span_count)
    converter = InlineConverter(assemble(config), config.storage.max_batch_spans)
    converter.start()
    try:
        for index, pipeline in enumerate(converter.assembly.pipelines):
            if receiver in pipeline.receivers:
                converter.convert(index, [record])
    finally:
        converter.shutdown()
    return span_count


def digest_spans(config_path: Path, spans: Sequence[ReadableSpan]) -> bytes | None:
    """Store ``spans`` as ``store_spans`` does and return the health digest the converter hands
    back of them (``health.digest``), as a server's drain would receive it."""
    config = load_config(config_path)
    record = OtlpRecord(encode_spans(spans).SerializePartialToString(), None, "otlp", len(spans))
    converter = InlineConverter(assemble(config), config.storage.max_batch_spans)
    converter.start()
    try:
        return converter.convert(0, [record]).digest
    finally:
        converter.shutdown()
