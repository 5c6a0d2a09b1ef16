"""Write-ahead log: an export is acknowledged only once its bytes are fsynced here.

Segments are append-only files ``wal-<seq>-<created unix time>.log`` of framed, checksummed
records::

    <4 bytes magic A7 'AWR'> <u32 body length> <u32 crc32(length bytes + body)> body
    body = <u8 version> <u16 tenant length | 0xFFFF for none> tenant <u16 receiver length> receiver
           [version 2: <u8 signal: 0 traces, 1 logs>]
           <OTLP ExportTraceServiceRequest | ExportLogsServiceRequest protobuf>

Version 1 records (written before logs were received) are traces; traces are still written as
version 1, so a log written by this version is readable by the one before it unless it holds logs.

One writer thread does group commit: every request waiting when it wakes is written and shares
one fsync. Committed records go to ``on_commit`` in log order; once the stage after it has made
them durable elsewhere (Parquet) it calls ``release`` and whole segments are deleted.

Every record can be recovered on its own. On open, segments left by an earlier process are read
back; a damaged record (a flipped byte, a zeroed page) fails its checksum and the reader
resynchronises on the next frame whose magic, length and checksum are valid, so one bad byte
costs one record, not the rest of the segment. What was skipped is reported exactly (segment,
byte range) and the damaged segment is kept aside under ``wal/damaged/`` for inspection. A torn
last record (a crash mid-append; never acknowledged) is counted as a torn tail.

The writer thread never dies of a caller's state: futures are marked running before they are
queued, so a caller that gives up (a gRPC deadline, a cancelled task) cannot make resolving
them fail. If the thread dies anyway, every waiting export is refused retryably, later ones are
refused at once, and the failure is reported through ``core.supervision``.
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
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.message import DecodeError as ProtobufDecodeError

from core import supervision
from core.errors import StorageFull, Unavailable
from core.model import SIGNALS, OtlpRecord, count_items
from storage.layout import fsync_dir

log = logging.getLogger("agentwatch.wal")

MAGIC = b"\xa7AWR"
_HEAD = struct.Struct("<4sII")  # magic, body length, crc32(length bytes + body)
_LEGACY_FRAME = struct.Struct("<II")  # before record magics: body length, crc32(body)
_VERSION = 1
_VERSION_SIGNAL = 2
"""Records with a signal byte (logs); traces are written as version 1."""
_NO_TENANT = 0xFFFF
MAX_BODY = 1 << 31
"""No record is larger (requests are limited to tens of MiB); a larger length is damage."""
DAMAGED_DIR = "damaged"
_IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024) if hasattr(os, "sysconf") else 16
REFUSAL_SUMMARY_SECONDS = 60.0
"""While appends are refused (disk full), one summary line this often, not one per export."""


@dataclass(frozen=True, order=True)
class WalPosition:
    segment: int
    offset: int
    """Byte offset just past the record."""


Committed = list[tuple[OtlpRecord, WalPosition]]


@dataclass(frozen=True)
class Damage:
    """Bytes of a segment that held no recoverable record."""

    segment: str
    start: int
    end: int
    tail: bool
    """A torn last record (nothing valid after it), as a crash mid-append leaves."""

    def describe(self) -> str:
        where = "torn tail" if self.tail else "damaged records"
        size = self.end - self.start
        return f"{self.segment}: {where} at bytes {self.start}-{self.end} ({size} bytes) skipped"


@dataclass
class ReplayStats:
    segments: int = 0
    records: int = 0
    corrupt_tails: int = 0
    """Segments ending in a torn or corrupt record."""
    damaged_regions: int = 0
    """Damaged stretches in the middle of segments, skipped to the next valid record."""
    damaged_bytes: int = 0
    """Bytes skipped in all (damaged regions and torn tails)."""
    kept_aside: list[str] = field(default_factory=list)
    """Damaged segments kept under ``wal/damaged/`` for inspection."""
    oldest_created: float | None = None
    """When the oldest replayed segment was begun: its records were converted after that, if at all."""


def frame_parts(record: OtlpRecord) -> tuple[bytes, bytes]:
    """A record's frame as (header, payload): written side by side, the payload never copied."""
    tenant = (record.tenant or "").encode()
    receiver = record.receiver.encode()
    traces = record.signal == "traces"
    version = _VERSION if traces else _VERSION_SIGNAL
    head = struct.pack("<BH", version, _NO_TENANT if record.tenant is None else len(tenant))
    signal = b"" if traces else bytes((SIGNALS.index(record.signal),))
    prefix = b"".join((head, tenant, struct.pack("<H", len(receiver)), receiver, signal))
    length = len(prefix) + len(record.payload)
    crc = zlib.crc32(record.payload, zlib.crc32(prefix, zlib.crc32(struct.pack("<I", length))))
    return _HEAD.pack(MAGIC, length, crc) + prefix, record.payload


def encode_record(record: OtlpRecord) -> bytes:
    return b"".join(frame_parts(record))


def decode_body(body: bytes) -> OtlpRecord:
    version, tenant_len = struct.unpack_from("<BH", body, 0)
    if version not in (_VERSION, _VERSION_SIGNAL):
        raise ValueError(f"unknown record version {version}")
    pos = 3
    tenant: str | None = None
    if tenant_len != _NO_TENANT:
        tenant = body[pos : pos + tenant_len].decode()
        pos += tenant_len
    (receiver_len,) = struct.unpack_from("<H", body, pos)
    pos += 2
    receiver = body[pos : pos + receiver_len].decode()
    pos += receiver_len
    signal = SIGNALS[0]
    if version == _VERSION_SIGNAL:
        signal = SIGNALS[body[pos]]  # an unknown signal byte: IndexError, treated as damage
        pos += 1
    payload = body[pos:]
    items = count_items(signal, payload)  # also proves the payload decodes
    return OtlpRecord(payload, tenant, receiver, items, signal)


def _frame_at(data: bytes, pos: int) -> tuple[OtlpRecord, int] | None:
    """The record framed at ``pos`` and the offset just past it, if the frame is whole and valid."""
    if pos + _HEAD.size > len(data):
        return None
    magic, length, crc = _HEAD.unpack_from(data, pos)
    end = pos + _HEAD.size + length
    if magic != MAGIC or length > MAX_BODY or end > len(data):
        return None
    body = data[pos + _HEAD.size : end]
    if zlib.crc32(body, zlib.crc32(data[pos + 4 : pos + 8])) != crc:
        return None
    try:
        return decode_body(body), end
    except (ValueError, IndexError, UnicodeDecodeError, struct.error, ProtobufDecodeError):
        return None


def _resync(data: bytes, pos: int) -> tuple[OtlpRecord, int, int] | None:
    """The next valid frame after a damaged one at ``pos``: (record, its start, its end)."""
    search = pos + 1
    while (start := data.find(MAGIC, search)) >= 0:
        found = _frame_at(data, start)
        if found is not None:
            return found[0], start, found[1]
        search = start + 1
    return None


def read_segment(path: Path, seq: int) -> tuple[Committed, list[Damage]]:
    """Records of one segment, and the stretches that held no valid record."""
    data = path.read_bytes()
    if data and not data.startswith(MAGIC):
        return _read_legacy(data, path, seq)
    out: Committed = []
    damage: list[Damage] = []
    pos = 0
    while pos < len(data):
        found = _frame_at(data, pos)
        if found is not None:
            out.append((found[0], WalPosition(seq, found[1])))
            pos = found[1]
            continue
        resynced = _resync(data, pos)
        if resynced is None:
            damage.append(Damage(path.name, pos, len(data), tail=True))
            break
        record, start, end = resynced
        damage.append(Damage(path.name, pos, start, tail=False))
        out.append((record, WalPosition(seq, end)))
        pos = end
    return out, damage


def _read_legacy(data: bytes, path: Path, seq: int) -> tuple[Committed, list[Damage]]:
    """Segments written before records carried a magic: readable up to the first damage."""
    out: Committed = []
    pos = 0
    while pos < len(data):
        if pos + _LEGACY_FRAME.size > len(data):
            break
        length, crc = _LEGACY_FRAME.unpack_from(data, pos)
        body = data[pos + _LEGACY_FRAME.size : pos + _LEGACY_FRAME.size + length]
        if len(body) != length or zlib.crc32(body) != crc:
            break
        try:
            record = decode_body(body)
        except (ValueError, IndexError, UnicodeDecodeError, struct.error, ProtobufDecodeError):
            break
        pos += _LEGACY_FRAME.size + length
        out.append((record, WalPosition(seq, pos)))
    damage = [Damage(path.name, pos, len(data), tail=True)] if pos < len(data) else []
    return out, damage


def _settle(future: Future[None], exc: BaseException | None) -> None:
    """Resolve a submitted future; never raises, whatever its caller did with it."""
    try:
        if exc is None:
            future.set_result(None)
        else:
            future.set_exception(exc)
    except InvalidStateError:
        log.debug("an export's future was already resolved")


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
        self.failed: BaseException | None = None
        """Set if the writer thread died: every later submit is refused at once."""
        self._refusing_since: float | None = None
        self._refused_since_summary = 0
        self._last_summary = 0.0

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
            records, damage = read_segment(path, seq)
            stats.segments += 1
            stats.records += len(records)
            self._report_damage(path, len(records), damage, stats)
            replayed += records
            self._paths[seq] = path
            self._closed_segments[seq] = path.stat().st_size
            created = _created(path)
            if stats.oldest_created is None or created < stats.oldest_created:
                stats.oldest_created = created
            self._seq = max(self._seq, seq)
        self._open_segment(self._seq + 1)
        self._thread = supervision.start_thread("agentwatch-wal", self._run)
        return replayed, stats

    def _report_damage(self, path: Path, recovered: int, damage: list[Damage], stats: ReplayStats) -> None:
        for found in damage:
            stats.damaged_bytes += found.end - found.start
            if found.tail:
                stats.corrupt_tails += 1
            else:
                stats.damaged_regions += 1
            log.warning("write-ahead log %s", found.describe())
        if any(not found.tail for found in damage):
            kept = self._keep_aside(path)
            stats.kept_aside.append(str(kept))
            log.warning(
                "write-ahead log %s: %d records recovered around the damage; the segment is kept as %s",
                path.name,
                recovered,
                kept,
            )

    def _keep_aside(self, path: Path) -> Path:
        """A second name for a damaged segment, which outlives the segment's release."""
        aside = self.directory / DAMAGED_DIR
        aside.mkdir(exist_ok=True)
        target = aside / path.name
        if not target.exists():
            try:
                os.link(path, target)
            except OSError:
                shutil.copyfile(path, target)
        return target

    def _open_segment(self, seq: int) -> None:
        path = self.directory / f"wal-{seq:016d}-{int(time.time())}.log"
        self._paths[seq] = path
        self._file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._seq, self._size = seq, 0
        fsync_dir(self.directory)

    # -- the acknowledgement path -------------------------------------------------------------
    def submit(self, record: OtlpRecord) -> Future[None]:
        future: Future[None] = Future()
        # Running from the start: a caller that gives up can no longer cancel it, so resolving it
        # here never fails. Its export is simply not acknowledged to that caller.
        future.set_running_or_notify_cancel()
        with self._cond:
            if self.failed is not None:
                future.set_exception(Unavailable("the write-ahead log writer stopped; retry shortly"))
                return future
            if self._closing:
                future.set_exception(RuntimeError("write-ahead log is closed"))
                return future
            self._pending.append((record, future))
            self._cond.notify()
        return future

    def _run(self) -> None:
        batch: list[tuple[OtlpRecord, Future[None]]] = []
        try:
            while True:
                with self._cond:
                    while not self._pending and not self._closing:
                        self._cond.wait()
                    batch, self._pending = self._pending, []
                    if not batch and self._closing:
                        return
                self._commit(batch)
                batch = []
        except BaseException as exc:
            with self._cond:
                self.failed = exc
                waiting, self._pending = batch + self._pending, []
            refused = Unavailable("the write-ahead log writer stopped; retry shortly")
            for _, future in waiting:
                _settle(future, refused)
            raise

    def _commit(self, batch: list[tuple[OtlpRecord, Future[None]]]) -> None:
        assert self._file is not None
        try:
            parts = [part for rec, _ in batch for part in frame_parts(rec)]
            committed: Committed = []
            offset = self._size
            for index, (rec, _) in enumerate(batch):
                offset += len(parts[2 * index]) + len(parts[2 * index + 1])
                committed.append((rec, WalPosition(self._seq, offset)))
            self._append(parts, offset - self._size)
        except (OSError, StorageFull) as exc:
            self._refuse(batch, exc)
            return
        except BaseException as exc:
            for _, future in batch:
                _settle(future, Unavailable(f"write-ahead log append failed: {exc}"))
            raise
        self._accepting_again()
        self.bytes_written += offset - self._size
        self._size = offset
        try:
            self._on_commit(committed)
            if self._size >= self.segment_size:
                self._rotate()
        finally:
            for _, future in batch:
                _settle(future, None)

    def _append(self, parts: list[bytes], size: int) -> None:
        assert self._file is not None
        free = shutil.disk_usage(self.directory).free
        if free - size < self.min_free_bytes:
            raise StorageFull(
                f"only {free >> 20} MiB free under {self.directory}; refusing until space is freed"
            )
        for start in range(0, len(parts), _IOV_MAX):  # writev, in as few calls as the OS allows
            chunk = parts[start : start + _IOV_MAX]
            done = os.writev(self._file, chunk)
            if done != sum(len(p) for p in chunk):
                raise OSError(f"short write to the write-ahead log ({done} bytes)")
        os.fdatasync(self._file)

    def _refuse(self, batch: list[tuple[OtlpRecord, Future[None]]], exc: BaseException) -> None:
        """Nothing of this group is acknowledged; truncate back so the log stays well-formed."""
        assert self._file is not None
        self.write_failures += 1
        self._note_refusal(exc)
        try:
            os.ftruncate(self._file, self._size)
        except OSError as trunc:
            log.error("could not truncate the write-ahead log after a failed append: %s", trunc)
        refused = (
            exc if isinstance(exc, StorageFull) else StorageFull(f"write-ahead log append failed: {exc}")
        )
        for _, future in batch:
            _settle(future, refused)

    def _note_refusal(self, exc: BaseException) -> None:
        """Log when refusing starts, then a summary now and then: never one line per export."""
        now = time.monotonic()
        self._refused_since_summary += 1
        if self._refusing_since is None:
            self._refusing_since = self._last_summary = now
            self._refused_since_summary = 0
            log.error("write-ahead log: refusing exports (retryably) until this clears: %s", exc)
        elif now - self._last_summary >= REFUSAL_SUMMARY_SECONDS:
            log.error(
                "write-ahead log: still refusing, %d appends refused in the last %.0fs: %s",
                self._refused_since_summary,
                now - self._last_summary,
                exc,
            )
            self._last_summary, self._refused_since_summary = now, 0

    def _accepting_again(self) -> None:
        if self._refusing_since is not None:
            log.warning(
                "write-ahead log: appends succeed again after %.0fs of refusals",
                time.monotonic() - self._refusing_since,
            )
            self._refusing_since = None

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
