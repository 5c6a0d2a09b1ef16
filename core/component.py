"""The one small consumer interface every pipeline component speaks.

Modelled on the OpenTelemetry Collector: a component module exposes ``TYPE`` (its name in the
YAML), a frozen ``Config`` dataclass with documented defaults and a ``validate()`` that names
the offending key, and a ``create(config, next_consumer)`` factory. Components are driven by
three verbs, as in the OpenTelemetry SDK: ``consume`` (export), ``force_flush`` and ``shutdown``;
``start`` is called once before the first batch and ``shutdown`` is safe without it. Receivers
are created with ``create(config, ReceiverSettings)`` and speak ``Receiver``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from core.model import OtlpRecord

if TYPE_CHECKING:
    from core.admission import DecodeBudget


@runtime_checkable
class Consumer(Protocol):
    def consume(self, batch: Any) -> None: ...


@runtime_checkable
class Component(Consumer, Protocol):
    def start(self) -> None: ...

    def force_flush(self) -> None: ...

    def shutdown(self) -> None: ...


@runtime_checkable
class Counted(Protocol):
    """A component with counters of its own (e.g. normalize's truncated attribute values).

    Pipelines may run in worker processes, so counters travel as deltas: ``take_counts``
    returns what happened since its last call, and the service adds them up for ``/metrics``.
    """

    def take_counts(self) -> dict[str, int]: ...


@runtime_checkable
class LogsConsumer(Protocol):
    """An exporter that stores log records: ``consume_logs`` takes rows of ``core.model.LOG_SCHEMA``."""

    def consume_logs(self, rows: Any) -> None: ...


class BaseComponent:
    """Do-nothing lifecycle, so simple components only write ``consume``."""

    def start(self) -> None:
        return None

    def force_flush(self) -> None:
        return None

    def shutdown(self) -> None:
        return None


@dataclass(frozen=True)
class ReceiverCounters:
    """What a receiver counts, exported at ``/metrics`` as ``agentwatch_receiver_*_total`` (and
    ``agentwatch_spans_deduplicated_total``). Totals since the receiver was created."""

    accepted_spans: int = 0
    """Spans acknowledged (durable)."""
    rejected_spans: int = 0
    """Spans dropped from accepted requests (partial success)."""
    duplicate_spans: int = 0
    """Spans already stored (or repeated in their request), dropped and answered as a success."""
    refused: Mapping[str, int] = field(default_factory=dict)
    """Requests refused whole, by reason (``decode_error``, ``unauthenticated``, ...)."""
    accepted_log_records: int = 0
    rejected_log_records: int = 0
    duplicate_log_records: int = 0


@runtime_checkable
class Receiver(Protocol):
    """What the service drives every receiver through, on its event loop.

    ``start`` binds and starts accepting; ``shutdown`` stops accepting and lets in-flight
    exports finish for up to ``grace`` seconds; ``endpoints`` names the bound ports by protocol
    (``{"grpc": 4317, "http": 4318}``; empty for a receiver without a port); ``counters`` is
    read at every scrape of ``/metrics``.
    """

    async def start(self) -> None: ...

    async def shutdown(self, grace: float) -> None: ...

    def endpoints(self) -> dict[str, int]: ...

    def counters(self) -> ReceiverCounters: ...


class DurableSink(Protocol):
    """Where receivers hand acknowledged requests: the future resolves once the data is durable."""

    def submit(self, record: OtlpRecord) -> Future[None]: ...


class StoredIndex(Protocol):
    """Keys of spans already stored (see ``storage.dedup``)."""

    def __contains__(self, key: bytes) -> bool: ...

    def add_all(self, keys: Iterable[bytes]) -> None: ...


@dataclass(frozen=True)
class ExporterSettings:
    """What the service gives every exporter it creates."""

    id: str
    data_dir: Path


@dataclass(frozen=True)
class ReceiverSettings:
    """What the service gives every receiver it creates."""

    id: str
    sink: DurableSink
    stored: StoredIndex | None = None
    data_dir: Path | None = None
    """Where receivers that store results of their own (eval runs) write them."""
    sections: Mapping[str, object] = field(default_factory=dict)
    """Top-level config sections a receiver reads beside its own (the synthetic receiver: ``evals``,
    the named targets and judges; ``prices``, the cost processor's config, for its judge ledger)."""
    budget: DecodeBudget | None = None
    """Bounds the bytes of request bodies being decoded at once, across every receiver."""
    tenant_attributes: tuple[str, ...] = ()
    """Attribute names configured for the tenant (``processors.normalize.attributes.tenant``),
    so deduplication keys name the tenant a span will be stored under."""
    retention: float = 0.0
    """Seconds spans are kept (``storage.compaction.retention``; 0: forever). Receivers reject
    spans that started longer ago than this: they would be deleted by the next compaction pass."""
