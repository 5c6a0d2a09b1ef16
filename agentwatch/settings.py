"""agentwatch's own top-level sections beside the Collector's: ``storage`` and ``api``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from core.configmodel import STRICT, parse_endpoint
from core.shutdown import DEFAULT_TIMEOUT
from core.units import Duration
from dashboard.access import ApiAuthConfig
from storage.compaction.compactor import CompactionConfig


@dataclass(frozen=True)
class WalConfig:
    __pydantic_config__ = STRICT
    segment_size_mib: float = 32.0
    """A log segment is closed and a new one begun past this size."""
    min_free_disk_mib: float = 100.0
    """Exports are refused (retryably) while the disk has less free space than this."""

    def validate(self) -> list[str]:
        problems = [] if self.segment_size_mib > 0 else ["segment_size_mib: must be positive"]
        if self.min_free_disk_mib < 0:
            problems.append("min_free_disk_mib: must not be negative")
        return problems


@dataclass(frozen=True)
class StorageConfig:
    __pydantic_config__ = STRICT
    data_dir: str = "./agentwatch-data"
    """Parquet tables, the write-ahead log and the catalog live here."""
    flush_interval: Duration = 1.0
    """Acknowledged spans wait at most this long before they are written to Parquet."""
    max_batch_spans: int = 20_000
    """...or sooner, once this many spans are waiting. Also the most spans one conversion holds
    in memory: a larger request is converted in pieces of this size."""
    max_batch_mib: float = 32.0
    """...or sooner, once this many MiB of requests are waiting; a batch holds at most this much
    (or one request, if larger)."""
    dedup_window_spans: int = 1_000_000
    """Keys of this many recently stored spans are remembered to drop retried duplicates (~100 B each)."""
    dedup_lookback: Duration = 900.0
    """At start, the index is seeded from Parquet files written this recently (and since the
    oldest replayed log segment was begun)."""
    max_queue_mib: float = 256.0
    """Backpressure: acknowledged data not yet in Parquet is held to this many MiB; past it
    exports are refused with retryable codes (503 / UNAVAILABLE) until the queue drains."""
    max_decoding_mib: float = 64.0
    """Backpressure at the door: request bodies being read and decoded at once are held to this
    many MiB (decoding costs about three times a body's size); a request that finds no room
    within 2 s is refused retryably (503 / UNAVAILABLE)."""
    wal: WalConfig = field(default_factory=WalConfig)
    compaction: CompactionConfig = field(default_factory=CompactionConfig)
    shutdown_timeout: Duration = DEFAULT_TIMEOUT
    """SIGTERM/SIGINT: stop accepting, finish in-flight exports and flush to Parquet within this
    long; past it the process exits 1 and what is left is replayed from the log at next start."""
    converter: Literal["process", "inline"] = "process"
    """``process``: decode and normalise in a worker process (a core of its own); ``inline``: on a
    thread of the server process (needed to inspect ``memory`` exporters from the same process)."""
    converter_workers: int = 2
    """Worker processes converting batches at once (``process`` mode); about one per core."""

    def validate(self) -> list[str]:
        problems = []
        if not self.data_dir:
            problems.append("data_dir: must not be empty")
        if self.flush_interval <= 0:
            problems.append("flush_interval: must be positive")
        if self.shutdown_timeout <= 0:
            problems.append("shutdown_timeout: must be positive")
        if self.converter_workers < 1:
            problems.append("converter_workers: must be at least 1")
        if self.dedup_window_spans < 0:
            problems.append("dedup_window_spans: must not be negative")
        if self.max_queue_mib <= 0:
            problems.append("max_queue_mib: must be positive")
        if self.max_decoding_mib <= 0:
            problems.append("max_decoding_mib: must be positive")
        if self.max_batch_spans < 1:
            problems.append("max_batch_spans: must be at least 1")
        if self.max_batch_mib <= 0:
            problems.append("max_batch_mib: must be positive")
        problems += [f"wal.{p}" for p in self.wal.validate()]
        problems += [f"compaction.{p}" for p in self.compaction.validate()]
        return problems


@dataclass(frozen=True)
class ApiConfig:
    __pydantic_config__ = STRICT
    endpoint: str = "127.0.0.1:8080"
    """Serves /healthz, /readyz, the dashboard and the JSON API."""
    auth: ApiAuthConfig = field(default_factory=ApiAuthConfig)
    """Read tokens for the dashboard and the API (``dashboard.access``): needed, and only then,
    when the OTLP receivers have ingest tokens."""
    query_memory_mib: int = 512
    """DuckDB's memory per dashboard view (past it, it spills to disk or answers 503); two views
    run at once, so the dashboard holds at most twice this in the server process."""

    def validate(self) -> list[str]:
        problems = [f"auth.{p}" for p in self.auth.validate()]
        if self.query_memory_mib < 64:
            problems.append("query_memory_mib: must be at least 64")
        try:
            parse_endpoint(self.endpoint)
        except ValueError as exc:
            problems.append(f"endpoint: {exc}")
        return problems
