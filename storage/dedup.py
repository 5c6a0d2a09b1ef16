"""Which spans are already stored: a bounded index of recent ``(tenant, trace_id, span_id)`` keys
(and of log records: ``(tenant, record digest)``, ``log_key``).

Duplicates reach a receiver two ways: a client retries an export whose acknowledgement it never
received (the first copy was durable), and, after a crash, the log replays records that had
already been converted. Both are recent, so a bounded first-in-first-out index of recently
stored keys catches them: the receivers check it on the acknowledgement path (they touch every
span's ids there anyway), add keys once the log has committed them, and start-up seeds it from
the newest Parquet files and the replayed log. Compaction removes any duplicate that slips
past it (two copies racing in concurrent requests), so the guarantee is exact in the end.

The tenant in a key is the tenant the span is stored under (the ingest token's, else the one its
attributes name, else ``default``; see ``receiver.otlp.handler.TenantKeys``), so one tenant can
never suppress another's spans by sending their ids, with or without ingest tokens.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path

import pyarrow.parquet as pq
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from storage.layout import LOGS, SPANS, table_dir

log = logging.getLogger("agentwatch.dedup")


def span_key(tenant: str, trace_id: bytes, span_id: bytes) -> bytes:
    return b"".join((tenant.encode(), b"\0", trace_id, span_id))


def record_digest(resource: bytes, record: LogRecord) -> bytes:
    """16 bytes that tell one log record from another: its serialized form with its resource's
    (the ``record_id`` column of ``logs``). A record identical in every field, its time included,
    to one already stored is a duplicate. A record without a time of its own is told apart by its
    content, not by when it was observed: the receiver gives it an observed time on arrival, and
    a client's retry of it must still be a duplicate."""
    if record.time_unix_nano == 0 and record.observed_time_unix_nano != 0:
        record = LogRecord.FromString(record.SerializeToString())
        record.observed_time_unix_nano = 0
    return hashlib.blake2b(resource + b"\0" + record.SerializeToString(), digest_size=16).digest()


def log_key(tenant: str, digest: bytes) -> bytes:
    """A log record's key in the index (a marker byte apart from span keys, whose ids follow a NUL)."""
    return b"".join((tenant.encode(), b"\1", digest))


class RecentSpans:
    """Keys of recently stored spans, the oldest forgotten first past ``capacity``.

    Used only from the receivers' event loop and from start-up, so it takes no lock.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._keys: set[bytes] = set()
        self._order: deque[bytes] = deque()

    def __contains__(self, key: bytes) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add_all(self, keys: Iterable[bytes]) -> None:
        for key in keys:
            if key in self._keys:
                continue
            self._keys.add(key)
            self._order.append(key)
        while len(self._order) > self.capacity:
            self._keys.discard(self._order.popleft())


def seed_from_parquet(recent: RecentSpans, data_dir: Path, since: float) -> int:
    """Add the keys of span and log files committed since ``since`` (epoch seconds); how many
    were read.

    The newest files are chosen until they hold ``capacity`` keys, then read oldest first, so
    the keys a replay or a retry needs most (the newest) are the last added and the last the
    index forgets. Files are read in batches of the key columns: seeding costs the index's size,
    not the files'.
    """
    candidates = sorted(
        (
            (p.stat().st_mtime, p, table)
            for table in (SPANS, LOGS)
            for p in table_dir(data_dir, table).glob("tenant=*/date=*/*.parquet")
            if p.stat().st_mtime >= since
        ),
        reverse=True,
    )
    chosen: list[tuple[Path, str]] = []
    rows = 0
    for _, path, table in candidates:
        if rows >= recent.capacity:
            break
        rows += pq.ParquetFile(path).metadata.num_rows
        chosen.append((path, table))
    added = 0
    started = time.monotonic()
    for path, table in reversed(chosen):
        tenant = path.parent.parent.name.removeprefix("tenant=")
        columns = ["trace_id", "span_id"] if table == SPANS else ["record_id"]
        for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536, columns=columns):
            if table == SPANS:
                traces, spans = batch.column(0).to_pylist(), batch.column(1).to_pylist()
                recent.add_all(
                    span_key(tenant, bytes.fromhex(t), bytes.fromhex(s))
                    for t, s in zip(traces, spans, strict=True)
                )
            else:
                recent.add_all(log_key(tenant, bytes.fromhex(r)) for r in batch.column(0).to_pylist())
            added += batch.num_rows
    if chosen:
        log.info(
            "deduplication index: %d keys from the %d newest of %d recent files in %.2fs",
            added,
            len(chosen),
            len(candidates),
            time.monotonic() - started,
        )
    return added
