"""The ``memory`` receiver: no port; the process holding it hands it requests. The test double
beside ``otlp``, as the ``memory`` exporter is beside ``parquet``.

    receivers:
      memory:
    service:
      pipelines:
        traces:
          receivers: [memory]

Requests go through the same export handler as OTLP requests (validation, deduplication,
write-ahead log), so a test or an in-process fixture builds its data directory through the real
ingest path without binding a port or starting a process.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from core.component import ReceiverCounters, ReceiverSettings
from core.configmodel import STRICT
from core.errors import RequestError
from core.units import Duration
from receiver.otlp.handler import ExportHandler, ExportResult, TenantKeys, TimeWindow

TYPE = "memory"


@dataclass(frozen=True)
class Config:
    __pydantic_config__ = STRICT
    max_future_skew: Duration | None = 3600.0
    """As ``receivers.otlp.max_future_skew``: spans starting further ahead are rejected."""

    def validate(self) -> list[str]:
        return []


class InMemoryReceiver:
    def __init__(self, settings: ReceiverSettings, config: Config | None = None) -> None:
        self.handler = ExportHandler(
            settings.sink,
            settings.id,
            settings.stored,
            TenantKeys(settings.tenant_attributes),
            settings.budget,
            TimeWindow(settings.retention, (config or Config()).max_future_skew),
        )
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    def export(self, request: ExportTraceServiceRequest | bytes, tenant: str | None = None) -> ExportResult:
        """Export ``request`` (OTLP protobuf) from any thread but the service's event loop;
        returns once its spans are durable, with what an OTLP client would be answered. A refused
        request raises its ``RequestError`` (``DecodeError``, ``Unavailable``...), counted as the
        transports count theirs. ``tenant`` stands for an ingest token's tenant."""
        if self._loop is None:
            raise RuntimeError("the memory receiver is not started")
        body = request if isinstance(request, bytes) else request.SerializeToString()
        future = asyncio.run_coroutine_threadsafe(self.handler.export(body, "protobuf", tenant), self._loop)
        try:
            return future.result()
        except RequestError as exc:
            self.handler.note_refusal(exc)
            raise

    async def shutdown(self, grace: float = 5.0) -> None:
        self._loop = None

    def endpoints(self) -> dict[str, int]:
        return {}

    def counters(self) -> ReceiverCounters:
        return self.handler.counters()


def create(config: Config, settings: ReceiverSettings) -> InMemoryReceiver:
    return InMemoryReceiver(settings, config)
