"""Write-ahead log: an export is acknowledged only once its bytes are fsynced here.

Segments are append-only files ``wal-<seq>-<created unix time>.log`` of length-prefixed,
checksummed records::

    <u32 body length> <u32 crc32(body)> body
    body = <u8 version> <u16 tenant length | 0xFFFF for none> tenant <u16 receiver length> receiver
           <OTLP ExportTraceServiceRequest protobuf>

One writer thread does group commit: every request waiting when it wakes is written and shares
one fsync. Committed records go to ``on_commit`` in log order; once the stage after it has made
them durable elsewhere (Parquet) it calls ``release`` and whole segments are deleted. On open,
segments left by an earlier process are read back; a torn or corrupt tail is detected by its
checksum, counted and logged, and never stops start-up.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentwatch.errors import StorageFull
from agentwatch.model import OtlpRecord
from storage.layout import fsync_dir

log = logging.getLogger("agentwatch.wal")

_FRAME = struct.Struct("<II")
_VERSION = 1
_NO_TENANT = 0xFFFF


@dataclass(frozen=True, order=True)
class WalPosition:
    segment: int
    offset: int
    """Byte offset just past the record."""


Committed = list[tuple[OtlpRecord, WalPosition]]


@dataclass
class ReplayStats:
    segments: int = 0
    records: int = 0
    corrupt_tails: int = 0
    oldest_created: float | None = None
    """When the oldest replayed segment was begun: its records were converted after that, if at all."""


def encode_record(record: OtlpRecord) -> bytes:
    tenant = (record.tenant or "").encode()
    receiver = record.receiver.encode()
    head = struct.pack("<BH", _VERSION, _NO_TENANT if record.tenant is None else len(tenant))
    body = b"".join((head, tenant, struct.pack("<H", len(receiver)), receiver, record.payload))
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


def decode_body(body: bytes) -> OtlpRecord:
    version, tenant_len = struct.unpack_from("<BH", body, 0)
    if version != _VERSION:
        raise ValueError(f"unknown record version {version}")
    pos = 3
    tenant: str | None = None
    if tenant_len != _NO_TENANT:
        tenant = body[pos : pos + tenant_len].decode()
        pos += tenant_len
    (receiver_len,) = struct.unpack_from("<H", body, pos)
    pos += 2
    receiver = body[pos : pos + receiver_len].decode()
    payload = body[pos + receiver_len :]
    request = ExportTraceServiceRequest.FromString(payload)  # also proves the payload decodes
    spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    return OtlpRecord(payload, tenant, receiver, spans)


def read_segment(path: Path, seq: int) -> tuple[Committed, bool]:
    """Records of one segment, and whether it ended in a torn or corrupt record."""
    data = path.read_bytes()
    out: Committed = []
    pos = 0
    while pos < len(data):
        if pos + _FRAME.size > len(data):
            return out, True
        length, crc = _FRAME.unpack_from(data, pos)
        body = data[pos + _FRAME.size : pos + _FRAME.size + length]
        if len(body) != length or zlib.crc32(body) != crc:
            return out, True
        pos += _FRAME.size + length
        try:
            out.append((decode_body(body), WalPosition(seq, pos)))
        except (ValueError, UnicodeDecodeError, struct.error, ProtobufDecodeError):
            return out, True
    return out, False


def _created(path: Path) -> float:
    parts = path.stem.split("-")
    return float(parts[2]) if len(parts) > 2 and parts[2].isdigit() else path.stat().st_mtime


class WriteAheadLog:
    def __init__(
        self,
        directory: Path,
        segment_size: int,
        on_commit: Callable[[Committed], None],
        min_free_bytes: int = 0,
    ) -> None:
        self.directory = directory
        self.segment_size = segment_size
        self.min_free_bytes = min_free_bytes
        self._on_commit = on_commit
        self._cond = threading.Condition()
        self._pending: list[tuple[OtlpRecord, Future[None]]] = []
        self._closing = False
        self._thread: threading.Thread | None = None
        self._file: int | None = None
        self._seq = 0
        self._size = 0
        self._closed_segments: dict[int, int] = {}  # seq -> final size, for segments no longer written
        self._released = WalPosition(0, 0)
        self._paths: dict[int, Path] = {}
        self.bytes_written = 0
        self.write_failures = 0

    # -- start-up ---------------------------------------------------------------------------
    def _segments(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.directory.glob("wal-*.log"):
            try:
                found.append((int(path.stem.split("-")[1]), path))
            except ValueError:
                log.warning("ignoring unexpected file in the write-ahead log directory: %s", path)
        return sorted(found)

    def open(self) -> tuple[Committed, ReplayStats]:
        """Read back what an earlier process left, then start writing a new segment."""
        self.directory.mkdir(parents=True, exist_ok=True)
        stats = ReplayStats()
        replayed: Committed = []
        for seq, path in self._segments():
            records, torn = read_segment(path, seq)
            stats.segments += 1
            stats.records += len(records)
            if torn:
                stats.corrupt_tails += 1
                log.warning(
                    "write-ahead log %s: torn or corrupt record after %d good ones; skipped",
                    path.name,
                    len(records),
                )
            replayed += records
            self._paths[seq] = path
            self._closed_segments[seq] = path.stat().st_size
            created = _created(path)
            if stats.oldest_created is None or created < stats.oldest_created:
                stats.oldest_created = created
            self._seq = max(self._seq, seq)
        self._open_segment(self._seq + 1)
        self._thread = threading.Thread(target=self._run, name="agentwatch-wal", daemon=True)
        self._thread.start()
        return replayed, stats

    def _open_segment(self, seq: int) -> None:
        path = self.directory / f"wal-{seq:016d}-{int(time.time())}.log"
        self._paths[seq] = path
        self._file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._seq, self._size = seq, 0
        fsync_dir(self.directory)

    # -- the acknowledgement path -------------------------------------------------------------
    def submit(self, record: OtlpRecord) -> Future[None]:
        future: Future[None] = Future()
        with self._cond:
            if self._closing:
                future.set_exception(RuntimeError("write-ahead log is closed"))
                return future
            self._pending.append((record, future))
            self._cond.notify()
        return future

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                batch, self._pending = self._pending, []
                if not batch and self._closing:
                    return
            self._commit(batch)

    def _commit(self, batch: list[tuple[OtlpRecord, Future[None]]]) -> None:
        assert self._file is not None
        frames = [encode_record(rec) for rec, _ in batch]
        committed: Committed = []
        offset = self._size
        for (rec, _), frame in zip(batch, frames, strict=True):
            offset += len(frame)
            committed.append((rec, WalPosition(self._seq, offset)))
        data = b"".join(frames)
        try:
            free = shutil.disk_usage(self.directory).free
            if free - len(data) < self.min_free_bytes:
                raise StorageFull(
                    f"only {free >> 20} MiB free under {self.directory}; refusing until space is freed"
                )
            os.write(self._file, data)
            os.fdatasync(self._file)
        except (OSError, StorageFull) as exc:
            # Nothing of this group is acknowledged; truncate back so the log stays well-formed.
            self.write_failures += 1
            log.error("write-ahead log append refused: %s", exc)
            try:
                os.ftruncate(self._file, self._size)
            except OSError as trunc:
                log.error("could not truncate the write-ahead log after a failed append: %s", trunc)
            refused = (
                exc if isinstance(exc, StorageFull) else StorageFull(f"write-ahead log append failed: {exc}")
            )
            for _, future in batch:
                future.set_exception(refused)
            return
        self._size = offset
        self.bytes_written += sum(len(f) for f in frames)
        self._on_commit(committed)
        if self._size >= self.segment_size:
            self._rotate()
        for _, future in batch:
            future.set_result(None)

    def _rotate(self) -> None:
        assert self._file is not None
        os.close(self._file)
        self._mark_closed(self._seq, self._size)
        self._open_segment(self._seq + 1)

    def _mark_closed(self, seq: int, size: int) -> None:
        with self._cond:
            self._closed_segments[seq] = size
        self.release(self._released)

    # -- after Parquet is committed -----------------------------------------------------------
    def release(self, upto: WalPosition) -> None:
        """Everything up to and including ``upto`` is durable elsewhere: drop whole segments."""
        with self._cond:
            self._released = max(self._released, upto)
            done = [
                s
                for s, size in self._closed_segments.items()
                if s < upto.segment or (s == upto.segment and upto.offset >= size)
            ]
            for seq in done:
                del self._closed_segments[seq]
        for seq in done:
            self._paths.pop(seq).unlink(missing_ok=True)

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._file is not None:
            os.close(self._file)
            self._file = None
            if self._size == 0:
                self._paths.pop(self._seq).unlink(missing_ok=True)
            else:
                self._mark_closed(self._seq, self._size)
