"""``agentwatch serve``: the running service.

    receivers ──submit──► write-ahead log ──commit──► drain ──batch──► pipelines ──► exporters
     (ack once fsynced)      (group commit)          (flush_interval)  (normalize, ...)  (Parquet)

The network servers run on one asyncio loop in a thread of their own; the main thread only
waits for a signal. Shutdown is upstream-first: stop accepting, let in-flight exports finish,
close the log, drain everything into Parquet, shut components down.

If an internal thread dies (``core.supervision``), the service stops saying it is ready
and ``failure`` is set: ``agentwatch serve`` then exits non-zero so a supervisor restarts it.
Nothing acknowledged is lost by that: it is in the write-ahead log.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute

from agentwatch.api import create_api
from agentwatch.config import AgentwatchConfig
from agentwatch.converter import Converter, InlineConverter, ProcessConverter
from agentwatch.feedback_api import feedback_routes
from agentwatch.health_api import health_routes
from agentwatch.ingest import Ingest, otlp_http_endpoints
from agentwatch.ingest_tokens import IngestTokens
from agentwatch.metrics import registry_for, render
from agentwatch.pipeline import assemble
from agentwatch.registry import component_module
from alerting.alerting import Alerting
from core import supervision
from core.component import Receiver, ReceiverSettings
from core.configmodel import parse_endpoint
from core.httpserver import AsgiServer
from evals.production import ProductionJudge
from health.board import HealthBoard
from health.context import HealthContext
from storage.compaction.compactor import Compactor
from storage.wal import ReplayStats

log = logging.getLogger("agentwatch.service")


@dataclass
class Endpoints:
    receivers: dict[str, dict[str, int]] = field(default_factory=dict)
    """Bound ports by receiver id, then protocol (``Receiver.endpoints``)."""
    api: int = 0

    def first(self, protocol: str) -> int | None:
        """The port of the first receiver listening on ``protocol`` (``grpc``, ``http``)."""
        return next((ports[protocol] for ports in self.receivers.values() if protocol in ports), None)


class Service:
    def __init__(self, config: AgentwatchConfig, converter: Converter | None = None) -> None:
        """``converter``: one already started (``serve`` starts its workers before it imports
        the rest, so they warm up meanwhile); by default the one ``storage.converter`` names."""
        self.config = config
        self.data_dir = Path(config.storage.data_dir)
        self.converter: Converter = converter or make_converter(config)
        # The durable ingest path (log, drain, converter, dedup index), and its parts by name.
        self.ingest = Ingest(config, self.converter, "serve")
        self.admission = self.ingest.admission
        self.decode_budget = self.ingest.decode_budget
        self.dead_letters = self.ingest.dead_letters
        self.drain = self.ingest.drain
        self.wal = self.ingest.wal
        self.sink = self.ingest.sink
        self.recent = self.ingest.recent
        self.tenant_keys = self.ingest.tenant_keys
        self.compactor = Compactor(config.storage.compaction, self.data_dir)
        self.judging = ProductionJudge(config.evals, self.data_dir)
        self.alerting = Alerting(config.alerts, config.agents, self.data_dir, budgets=config.budgets,
                                 implicit=config.feedback)  # fmt: skip
        # The health API's in-memory aggregate, fed the digests of what the drain stored.
        self.health: HealthBoard | None = None
        self.health_context: HealthContext | None = None
        if config.health.enabled:
            self.health = HealthBoard(config.health)
            self.health_context = HealthContext(
                config.health, self.data_dir, config.budgets, config.api.query_memory_mib
            )
            self.drain.on_digest = self.health.offer
        self.receivers: dict[str, Receiver] = {}
        self.endpoints = Endpoints()
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._api: AsgiServer | None = None
        self._ready = False
        self.failure: str | None = None
        """Set when an internal thread died: the process must exit (non-zero) and be restarted."""
        self.failed = threading.Event()
        self._stopping = threading.Event()
        self._background_lock = threading.Lock()
        self._unwatch = supervision.watch(self._internal_failure)

    def _internal_failure(self, where: str, exc: BaseException) -> None:
        self._ready = False
        self.failure = self.failure or f"{where}: {type(exc).__name__}: {exc}"
        self.failed.set()

    @property
    def replay(self) -> ReplayStats:
        return self.ingest.replay

    @property
    def replay_duplicates(self) -> int:
        return self.ingest.replay_duplicates

    def readiness(self) -> tuple[bool, str]:
        if self.failure is not None:
            return False, f"failed: {self.failure}"
        if not self._ready:
            return False, "starting"
        if not self.converter.ready():
            # The ports are open and exports are logged; conversion starts when workers are warm.
            return False, "starting: converter workers warming up"
        return True, "ready"

    def _run(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result()

    def start(self) -> None:
        if self.health is not None:
            self.health.start()  # before the log replays: replayed spans count too
        self.ingest.start()  # raises StorageError, starting nothing, when another process writes the log
        self._thread = supervision.start_thread("agentwatch-io", self._loop.run_forever)
        try:
            self._run(self._start_servers())
        except BaseException:
            self.stop()
            raise
        # Where this server receives OTLP/HTTP, for `agentwatch eval run` on the same data directory.
        http = {r: ports["http"] for r, ports in self.endpoints.receivers.items() if "http" in ports}
        self.ingest.lock.describe(otlp_http=otlp_http_endpoints(self.config, http))
        self._ready = True
        supervision.start_thread("agentwatch-background-start", self._start_background)

    def _start_background(self) -> None:
        """Start the background passes (compaction, production judging, alerting) once the
        converter workers are warm: they would compete with the warm-up for the cores."""
        while not self.converter.ready():
            if self._stopping.wait(0.05) or self.failed.is_set():
                return
        with self._background_lock:
            if self._stopping.is_set():
                return
            self.compactor.start()
            if self.config.evals.production.sample_rate > 0:
                self.judging.start()
            if self.config.alerts.rules:
                self.alerting.start()
            if self.health_context is not None:
                self.health_context.start()

    async def _start_servers(self) -> None:
        host, port = parse_endpoint(self.config.api.endpoint)
        registry = registry_for(self)
        routes = feedback_routes(self.config)
        if self.health is not None and self.health_context is not None:
            routes += health_routes(self.config, self.health, self.health_context)
        routes += dashboard_routes(self.config)
        app = create_api(self.readiness, self.stats, lambda: render(registry), routes)
        self._api = AsgiServer(app, host, port, "api.endpoint")
        await self._api.start()
        self.endpoints.api = self._api.port
        # What the synthetic receiver reads beside its own section: the evals, and the cost
        # processor's prices (its judge's and its agents' tokens are priced as spans are).
        cost = self.config.processors.get("cost")
        sections: dict[str, object] = {"evals": self.config.evals}
        if cost is not None:
            sections["prices"] = cost.config
        for rec_id, rec in self.config.receivers.items():
            if not any(rec_id in p.receivers for p in self.config.pipelines.values()):
                continue
            settings = ReceiverSettings(
                rec_id,
                self.sink,
                self.recent,
                self.data_dir,
                sections,
                self.decode_budget,
                self.tenant_keys.names,
                retention=self.config.storage.compaction.retention,
            )
            receiver: Receiver = component_module("receivers", rec.type).create(rec.config, settings)
            await receiver.start()
            self.receivers[rec_id] = receiver
            self.endpoints.receivers[rec_id] = receiver.endpoints()

    async def _stop_servers(self, grace: float) -> None:
        for receiver in self.receivers.values():
            await receiver.shutdown(grace)
        self.receivers.clear()

    async def _stop_api(self) -> None:
        if self._api is not None:
            await self._api.stop()

    def stats(self) -> dict[str, object]:
        return {
            "spans_written": self.drain.spans_written,
            "queued_spans": self.drain.queued_spans,
            "queue_bytes": self.admission.held,
            "queue_limit_bytes": self.admission.limit,
            "refused_overloaded": self.admission.refused + self.decode_budget.refused,
            "decoding_bytes": self.decode_budget.held,
            "wal_write_failures": self.wal.write_failures,
            "wal_bytes_written": self.wal.bytes_written,
            "replayed_records": self.replay.records,
            "corrupt_wal_tails": self.replay.corrupt_tails,
            "damaged_wal_regions": self.replay.damaged_regions,
            "quarantined_spans": self.dead_letters.spans,
            "failure": self.failure,
        }

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, finish in-flight exports, write everything to Parquet."""
        self._ready = False
        with self._background_lock:
            self._stopping.set()  # background passes not started yet never will be
        if self._thread is not None and self._thread.is_alive():
            self._run(self._stop_servers(grace))
        self.compactor.stop()
        self.judging.stop()
        self.alerting.stop()
        if self.health_context is not None:
            self.health_context.stop()
        self.ingest.stop()  # close the log, drain into Parquet, shut the converter down, unlock
        if self.health is not None:
            self.health.stop()
        if self._thread is not None and self._thread.is_alive():
            self._run(self._stop_api())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._unwatch()


def make_converter(config: AgentwatchConfig) -> Converter:
    """The converter ``storage.converter`` names: worker processes, or in this process."""
    if config.storage.converter == "process":
        return ProcessConverter(config)
    return InlineConverter(assemble(config), config.storage.max_batch_spans)


def dashboard_routes(config: AgentwatchConfig) -> list[BaseRoute]:
    """The dashboard over the data directory, with read tokens required when ingest tokens are."""
    from dashboard.access import Access
    from dashboard.app import Dashboard, routes
    from dashboard.reader import Reader

    access = Access(list(config.api.auth.tokens), required=IngestTokens(config).configured)
    note = None
    if not access.required:
        note = (f"No read tokens: anyone who can reach {config.api.endpoint} reads every tenant's data "
                "(api.endpoint binds to loopback by default; configure receivers.otlp.auth and "
                "api.auth.tokens before exposing it).")  # fmt: skip
    reader = Reader(Path(config.storage.data_dir), config.agents, config.api.query_memory_mib)
    return routes(Dashboard(reader, access, note, config.budgets, config.feedback))
