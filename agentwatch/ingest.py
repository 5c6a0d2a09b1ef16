"""The durable ingest path, in one piece: what makes a request durable and turns it into Parquet.

    ExportHandler ──► AdmittingSink ──► WriteAheadLog ──commit──► Drain ──► Converter ──► Parquet
    (screen, dedup)   (queue limit)     (group commit, fsync)     (batches)  (the pipelines)

``agentwatch serve`` runs it behind its receivers (``agentwatch.service``); ``agentwatch eval
run`` runs it for its own eval spans when no server is running on the data directory, so an
eval's spans are logged, deduplicated and converted exactly like any export. One process at a
time writes a data directory's log (``storage.wallock``): ``start`` takes the lock, ``stop``
gives it back once everything is in Parquet.

When a server holds the lock, ``eval_span_sink`` sends the eval's spans to that server's
OTLP/HTTP receiver instead (the address the server wrote into the lock file), waiting for each
acknowledgement: its write-ahead log and deduplication, not a second writer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentwatch.config import AgentwatchConfig
from agentwatch.converter import Converter, InlineConverter
from agentwatch.drain import Drain
from agentwatch.pipeline import assemble, tenant_names
from core.admission import Admission, AdmittingSink, DecodeBudget
from core.configmodel import parse_endpoint
from core.errors import StorageError
from core.model import OtlpRecord
from evals.tracing import OtlpHttpSink, SpanSink, SpanSinkError
from receiver.otlp.auth import AuthConfig
from receiver.otlp.handler import ExportHandler, ExportResult, TenantKeys, screen_logs, screen_spans
from storage.deadletter import DeadLetters
from storage.dedup import RecentSpans, seed_from_parquet
from storage.layout import remove_stale_temporaries
from storage.wal import Committed, ReplayStats, WriteAheadLog, read_segment
from storage.wallock import WalLock

log = logging.getLogger("agentwatch.ingest")
MIB = 1024 * 1024


class Ingest:
    """The write-ahead log, the drain, the converter and the deduplication index of one data
    directory. ``sink`` is where receivers hand requests (``ExportHandler``); ``export`` is the
    same path for a producer in this process without an event loop."""

    def __init__(
        self,
        config: AgentwatchConfig,
        converter: Converter,
        command: str,
        refuse_unrouted: bool = False,
        lock: WalLock | None = None,
    ) -> None:
        self.config = config
        self.command = command
        self.data_dir = Path(config.storage.data_dir)
        self.converter = converter
        storage = config.storage
        self.routes = [frozenset(p.receivers) for p in config.pipelines.values()]
        parallel = storage.converter_workers if storage.converter == "process" else 1
        self.admission = Admission(int(storage.max_queue_mib * MIB))
        self.decode_budget = DecodeBudget(int(storage.max_decoding_mib * MIB))
        self.dead_letters = DeadLetters(self.data_dir)
        self.drain = Drain(
            converter,
            self.routes,
            storage.flush_interval,
            storage.max_batch_spans,
            parallel,
            self.admission,
            self.dead_letters,
            list(config.pipelines),
            int(storage.max_batch_mib * MIB),
        )
        self.wal = WriteAheadLog(
            self.data_dir / "wal",
            int(storage.wal.segment_size_mib * MIB),
            self.drain.on_commit,
            int(storage.wal.min_free_disk_mib * MIB),
        )
        self.drain.wal = self.wal
        self.lock = lock or WalLock(self.data_dir / "wal")
        """Taken by ``start`` unless already held (``eval_span_sink`` takes it before building this)."""
        self.sink = AdmittingSink(self.wal, self.admission)
        self.recent = RecentSpans(storage.dedup_window_spans)
        self.tenant_keys = TenantKeys(tenant_names(config))
        self.replay = ReplayStats()
        self.replay_duplicates = 0
        self.refuse_unrouted = refuse_unrouted
        """Refuse to start when the log holds records no pipeline of this config takes (a server
        with another config wrote them): converting them here would drop them."""
        self._handlers: dict[str, ExportHandler] = {}
        self._started = False
        self._stopped = False

    def start(self) -> None:
        if not self.lock.try_acquire(command=self.command):
            holder = self.lock.holder() or {}
            who = f"pid {holder['pid']}, agentwatch {holder.get('command', '?')}" if "pid" in holder else "?"
            raise StorageError(
                f"another process ({who}) is writing the write-ahead log of {self.data_dir}; "
                "one process at a time may: stop it, or wait for it to finish"
            )
        try:
            self._start()
        except BaseException:
            self.stop()  # whatever started, and the lock
            raise

    def _start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if removed := remove_stale_temporaries(self.data_dir):
            log.info("removed %d unfinished temporary files left by an earlier process", removed)
        if self.refuse_unrouted:
            self._check_routes()
        self.converter.start()
        replayed, self.replay = self.wal.open()
        self._started = True
        self._seed_dedup_index()
        if replayed:
            replayed = self._without_stored_spans(replayed)
            self.admission.take_anyway(sum(len(rec.payload) for rec, _ in replayed))
            log.info(
                "replaying %d acknowledged requests from the write-ahead log (%d spans already stored)",
                len(replayed),
                self.replay_duplicates,
            )
            self.drain.on_commit(replayed)
        self.drain.start()

    def _check_routes(self) -> None:
        routed = frozenset().union(*self.routes)
        unrouted: set[str] = set()
        for path in sorted((self.data_dir / "wal").glob("wal-*.log")):
            records, _ = read_segment(path, 0)
            unrouted |= {rec.receiver for rec, _ in records if rec.receiver not in routed}
        if unrouted:
            raise StorageError(
                f"the write-ahead log of {self.data_dir} holds requests of receivers this config has no "
                f"pipeline for ({', '.join(sorted(unrouted))}): start agentwatch serve with the config "
                "that received them, so they are stored first"
            )

    def _seed_dedup_index(self) -> None:
        since = time.time() - self.config.storage.dedup_lookback
        if self.replay.oldest_created is not None:
            # Replayed records may have been converted any time after their segment was begun.
            since = min(since, self.replay.oldest_created - 1)
        seed_from_parquet(self.recent, self.data_dir, since)

    def _without_stored_spans(self, replayed: Committed) -> Committed:
        """Drop replayed spans (and log records) that were converted before the crash (their log
        was not yet released)."""
        out: Committed = []
        for record, position in replayed:
            request: ExportTraceServiceRequest | ExportLogsServiceRequest
            if record.signal == "logs":
                request = record.parse_logs()
                screened = screen_logs(request, self.recent, record.tenant, self.tenant_keys)
            else:
                request = record.parse()
                screened = screen_spans(request, self.recent, record.tenant, self.tenant_keys, record.payload)
            self.recent.add_all(screened.keys)
            if screened.rejected:
                # Logged by an older version that let it in: it could never be converted. Kept
                # whole in the dead-letter file; its other items are stored as usual.
                what = "log record(s)" if record.signal == "logs" else "span(s)"
                reason = f"{screened.rejected} {what} cannot be stored: {screened.problem}"
                self.dead_letters.quarantine("replay", record, reason)
            if screened.duplicates or screened.rejected:
                self.replay_duplicates += screened.duplicates
                record = OtlpRecord(
                    request.SerializeToString(), record.tenant, record.receiver, screened.kept, record.signal
                )
            out.append((record, position))
        return out

    def handler(self, receiver_id: str) -> ExportHandler:
        """The export handler of a producer in this process (``export``). No decode budget: it
        is bound to one event loop, and such a producer sends its own spans one batch at a time."""
        if receiver_id not in self._handlers:
            self._handlers[receiver_id] = ExportHandler(self.sink, receiver_id, self.recent, self.tenant_keys)
        return self._handlers[receiver_id]

    def export(self, payload: bytes, receiver_id: str, tenant: str | None = None) -> ExportResult:
        """One OTLP protobuf request through the handler (screened, deduplicated, logged); returns
        once it is durable. From a thread without a running event loop."""
        return asyncio.run(self.handler(receiver_id).export(payload, "protobuf", tenant))

    def stop(self) -> None:
        """Close the log (nothing more is accepted), drain everything into Parquet, unlock. Once."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self._started:
                self.wal.close()
                self.drain.stop()
            self.converter.shutdown()
        finally:
            self.lock.release()


# -- where a server receives OTLP/HTTP, as it tells other processes ------------------------------


def otlp_http_endpoints(config: AgentwatchConfig, ports: Mapping[str, int]) -> list[dict[str, Any]]:
    """For each listening OTLP/HTTP receiver (``ports``: receiver id → bound port): its URL and
    whether it wants an ingest token. Written into the lock file by ``serve``."""
    out = []
    for receiver_id, port in ports.items():
        settings = config.receivers[receiver_id].config
        http = getattr(getattr(settings, "protocols", None), "http", None)
        if http is None:
            continue
        host, _ = parse_endpoint(http.endpoint)
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if http.tls is not None else "http"
        auth = getattr(settings, "auth", None) is not None
        out.append({"receiver": receiver_id, "url": f"{scheme}://{host}:{port}{http.traces_url_path}",
                    "auth": auth})  # fmt: skip
    return out


# -- the eval CLI's spans ---------------------------------------------------------------------


class IngestSink:
    """Eval spans through this process's own ``Ingest``: durable once ``submit`` returns."""

    def __init__(self, ingest: Ingest, receiver_id: str, tenant: str) -> None:
        self.ingest, self.receiver_id, self.tenant = ingest, receiver_id, tenant

    def submit(self, payload: bytes, spans: int) -> None:
        result = self.ingest.export(payload, self.receiver_id, self.tenant)
        if result.rejected:
            raise SpanSinkError(result.message)


@dataclass(frozen=True)
class Route:
    """Where a command's records went, for the CLI to say (``eval run``'s spans, ``import``'s
    records)."""

    kind: str
    """``log`` (this process's write-ahead log) or ``server`` (a running server's receiver)."""
    where: str

    def describe(self) -> str:
        if self.kind == "server":
            return f"through the running server's receiver {self.where} (its write-ahead log, deduplicated)"
        return f"through the write-ahead log {self.where} (deduplicated; no server is running on it)"


SpanRoute = Route
"""The name ``eval run`` knows it by."""

WAIT_NOTICE_SECONDS = 2.0


@dataclass(frozen=True)
class LogHolder:
    """The running server that writes a data directory's write-ahead log, as its lock file says:
    its pid, and the OTLP/HTTP receivers it listens on (``otlp_http_endpoints``; may be none)."""

    pid: object
    endpoints: list[dict[str, Any]]


def take_log(
    config: AgentwatchConfig, command: str, notice: Callable[[str], None], wait: float = 60.0
) -> WalLock | LogHolder:
    """The data directory's write-ahead log for a short-lived ``command`` (``eval run``,
    ``import``): its lock, held (this process writes the log, ``start_ingest``), or the server
    that holds it. Another command holding the log is waited for (``notice`` says so after a
    moment), a server that has not yet said where it receives OTLP for at most ``wait`` seconds."""
    lock = WalLock(Path(config.storage.data_dir) / "wal")
    since = time.monotonic()
    noticed = False
    while not lock.try_acquire(command=command):
        holder = lock.holder() or {}
        who = f"pid {holder.get('pid', '?')}, agentwatch {holder.get('command', '?')}"
        endpoints = holder.get("otlp_http")
        if holder.get("command") == "serve" and isinstance(endpoints, list):
            return LogHolder(holder.get("pid"), endpoints)
        if holder.get("command") == "serve" and time.monotonic() - since > wait:
            raise StorageError(f"the server ({who}) writing {config.storage.data_dir} did not say where it "
                               f"receives OTLP within {wait:g}s")  # fmt: skip
        if not noticed and time.monotonic() - since > WAIT_NOTICE_SECONDS:
            noticed = True
            notice(f"waiting for {who} to finish writing the write-ahead log of {config.storage.data_dir}")
        time.sleep(0.1)
    return lock


def start_ingest(config: AgentwatchConfig, command: str, lock: WalLock) -> Ingest:
    """This process's own ingest path on a log whose lock it holds (``take_log``), started; the
    lock is released if it cannot start."""
    try:
        converter = InlineConverter(assemble(config), config.storage.max_batch_spans)
        ingest = Ingest(config, converter, command, refuse_unrouted=True, lock=lock)
    except BaseException:
        lock.release()
        raise
    ingest.start()  # the lock is already held; released if it fails
    return ingest


@contextmanager
def eval_span_sink(
    config: AgentwatchConfig, tenant: str, notice: Callable[[str], None], wait: float = 60.0
) -> Iterator[tuple[SpanSink, Route]]:
    """A durable sink for an eval run's spans: this process's own ingest path when no other
    process writes the data directory's log (held for the whole run, drained into Parquet on
    exit), else the OTLP/HTTP receiver of the server that does (``take_log``)."""
    taken = take_log(config, "eval run", notice, wait)
    if isinstance(taken, LogHolder):
        remote, route = _server_sink(config, tenant, taken)
        try:
            yield remote, route
        finally:
            remote.close()
        return
    ingest = start_ingest(config, "eval run", taken)
    try:
        yield (
            IngestSink(ingest, receiver_for_records(config), tenant),
            Route("log", str(ingest.wal.directory)),
        )
    finally:
        ingest.stop()


def receiver_for_records(config: AgentwatchConfig) -> str:
    """The receiver id a command's own records (an eval's spans, an import's) are logged under:
    the OTLP receiver they would reach if a server were running (so the same pipelines take
    them), else the first one a pipeline lists."""
    listed = [r for p in config.pipelines.values() for r in p.receivers]
    otlp = [r for r in listed if config.receivers[r].type == "otlp"]
    return (otlp or listed)[0]


def no_otlp_http(holder: LogHolder, config: AgentwatchConfig, doing: str) -> StorageError:
    return StorageError(
        f"a server (pid {holder.pid}) is writing {config.storage.data_dir} but receives no OTLP/HTTP: stop "
        f"it, or enable receivers.otlp.protocols.http, to {doing} on this data directory"
    )


def bearer_for(config: AgentwatchConfig, tenant: str, holder: LogHolder, url: str) -> dict[str, str]:
    """The Authorization header for ``tenant`` when the server's receiver wants an ingest token
    (from this config's ``receivers.otlp.auth``); none when it wants none."""
    if not holder.endpoints[0].get("auth"):
        return {}
    token = ingest_token_for(config, tenant)
    if token is None:
        raise StorageError(
            f"the server (pid {holder.pid}) at {url} wants an ingest token, and this config has "
            f"none for tenant {tenant!r} (receivers.otlp.auth): give the server's config with --config"
        )
    return {"Authorization": f"Bearer {token}"}


def _server_sink(config: AgentwatchConfig, tenant: str, holder: LogHolder) -> tuple[OtlpHttpSink, Route]:
    if not holder.endpoints:
        raise no_otlp_http(holder, config, "run an eval")
    url = str(holder.endpoints[0]["url"])
    return OtlpHttpSink(url, bearer_for(config, tenant, holder, url)), Route(
        "server", f"{url} (pid {holder.pid})"
    )


def ingest_token_for(config: AgentwatchConfig, tenant: str) -> str | None:
    """An ingest token of ``tenant`` from this config's OTLP receivers (``receivers.otlp.auth``)."""
    for component in config.receivers.values():
        auth = getattr(component.config, "auth", None)
        if isinstance(auth, AuthConfig):
            for entry in auth.entries():
                if entry.tenant == tenant:
                    return entry.token
    return None
