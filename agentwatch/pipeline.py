"""Assemble pipelines from ``service.pipelines``, exporters first, like the Collector.

An exporter used by several pipelines is one instance; processors are instantiated per
pipeline. Shutdown runs upstream-first so every component flushes into a live consumer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agentwatch.config import AgentwatchConfig
from agentwatch.registry import component_module
from core.component import BaseComponent, Component, Consumer, Counted, ExporterSettings, LogsConsumer
from core.model import OtlpBatch, OtlpRecord
from events.otlp import derived_spans, lift_span_events
from health.digest import HealthTap, PartsSource
from processors.normalize.logs import read_logs


class FanOut(BaseComponent):
    """Hands each batch to every exporter of a pipeline."""

    def __init__(self, consumers: Sequence[Consumer]) -> None:
        self._consumers = list(consumers)

    def consume(self, batch: Any) -> None:
        for consumer in self._consumers:
            consumer.consume(batch)


@dataclass
class Pipeline:
    id: str
    receivers: frozenset[str]
    head: Consumer
    processors: list[Component] = field(default_factory=list)
    logs: Sequence[LogsConsumer] = ()
    """The pipeline's exporters that store log records."""
    tenant_names: tuple[str, ...] = ()
    """Attribute names the tenant is read from (the normalize processors' ``attributes.tenant``)."""

    def consume(self, batch: Any) -> None:
        self.head.consume(batch)

    def consume_records(self, records: list[OtlpRecord]) -> None:
        """Spans go down the pipeline. Log records are stored by its logs exporters, and the spans
        their agent events stand for (``events.spans``) go down the pipeline with the spans,
        under the same tenant, so an application that sends only events still gets runs.

        The spans are stored before the log records: after a crash between the two, the replayed
        log records are not yet stored, so they are converted again and their spans are stored a
        second time (compaction removes the copies: their ids are the same). Stored the other
        way round, the replay would find the log records stored, drop them, and their runs would
        be lost."""
        traces = [_lifted(r) for r in records if r.signal == "traces"]
        logs = [r for r in records if r.signal == "logs"]
        read = read_logs(logs, self.tenant_names) if logs else None
        for record, groups in read.events if read is not None else []:
            derived = derived_spans(groups)
            if derived is not None:
                traces.append(OtlpRecord.from_request(derived, record.tenant, record.receiver))
        if traces:
            self.head.consume(OtlpBatch(traces))
        if read is not None:
            for consumer in self.logs:
                consumer.consume_logs(read.rows)


def _lifted(record: OtlpRecord) -> OtlpRecord:
    """``record`` with the fields of agent events on its spans put on the spans (``events.otlp``)."""
    payload = lift_span_events(record.payload)
    return record if payload is None else replace(record, payload=payload)


@dataclass
class Assembly:
    pipelines: list[Pipeline]
    exporters: dict[str, Component]
    tap: HealthTap | None = None
    """Digests what every pipeline stored, for the health aggregate (``health.enabled``)."""

    def components(self) -> list[Component]:
        """Upstream first: every pipeline's processors, then the shared exporters (and the tap)."""
        procs = [p for pipe in self.pipelines for p in pipe.processors]
        return [*procs, *self.exporters.values(), *([self.tap] if self.tap is not None else [])]

    def take_digest(self) -> bytes | None:
        """The health digest of what was stored since the last call (None: nothing, or no tap)."""
        return None if self.tap is None else self.tap.take_digest()

    def take_counts(self) -> dict[str, int]:
        """Every ``Counted`` component's counters since the last call, added up by name."""
        total: dict[str, int] = {}
        for component in self.components():
            if isinstance(component, Counted):
                for name, value in component.take_counts().items():
                    total[name] = total.get(name, 0) + value
        return total

    def start(self) -> None:
        for component in reversed(self.components()):
            component.start()

    def shutdown(self) -> None:
        for component in self.components():
            component.force_flush()
            component.shutdown()


def assemble(config: AgentwatchConfig) -> Assembly:
    data_dir = Path(config.storage.data_dir)
    exporters: dict[str, Component] = {}
    for exp_id, exp in config.exporters.items():
        if any(exp_id in p.exporters for p in config.pipelines.values()):
            module = component_module("exporters", exp.type)
            exporters[exp_id] = module.create(exp.config, ExporterSettings(exp_id, data_dir))
    # The health tap digests what the (first) Parquet exporter stores, from the run partials it
    # computed: last in the pipelines feeding that exporter, so a batch is digested once it is
    # stored, and once (a record a second pipeline sends elsewhere is not digested again).
    stored = next((e_id for e_id, e in exporters.items() if isinstance(e, PartsSource)), None)
    tap = None
    if config.health.enabled and stored is not None:
        source = exporters[stored]
        assert isinstance(source, PartsSource)
        tap = HealthTap(source)
    pipelines = []
    for pipe in config.pipelines.values():
        last: list[Component] = [tap] if tap is not None and stored in pipe.exporters else []
        consumer: Consumer = FanOut([exporters[e] for e in pipe.exporters] + last)
        processors: list[Component] = []
        for proc_id in reversed(pipe.processors):
            proc = config.processors[proc_id]
            component = component_module("processors", proc.type).create(proc.config, consumer)
            processors.insert(0, component)
            consumer = component
        logs = [e for e_id in pipe.exporters if isinstance(e := exporters[e_id], LogsConsumer)]
        pipelines.append(
            Pipeline(pipe.id, frozenset(pipe.receivers), consumer, processors, logs, tenant_names(config))
        )
    return Assembly(pipelines, exporters, tap)


def tenant_names(config: AgentwatchConfig) -> tuple[str, ...]:
    """Attribute names the normalize processors are configured to read the tenant from."""
    names: list[str] = []
    for processor in config.processors.values():
        mapped = getattr(processor.config, "attributes", None)
        if processor.type == "normalize" and isinstance(mapped, dict):
            names += mapped.get("tenant", [])
    return tuple(names)
