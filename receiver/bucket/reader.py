"""Reading a bucket's objects into the door, exactly once: shared by the ``bucket`` receiver
and ``agentwatch import``.

Each object is streamed (a line, a Parquet row batch at a time; gzip inflated as it is read)
into chunks of at most ``max_records`` records or ``max_chunk_bytes`` of source, each handed to
``submit`` (the door: screened, deduplicated, made durable). Up to ``in_flight`` chunks wait
for the write-ahead log at once; as each is durable, in order, the cursor is committed past it.

Where an object is read from: the start when it is new, when its generation (GCS) or ETag /
version (S3) changed, when it shrank, or (a local file) when its first bytes changed: it was
rewritten. From the cursor's offset when it was read part way, or when it grew and is neither
gzip nor Parquet (appended to). Not at all when it is done and unchanged.

A bad record (invalid JSON, not a record of its format, a line longer than ``max_line_bytes``,
the end of a truncated gzip object) is counted, quarantined with its object, line and offset,
and skipped. An object that cannot be read at all (larger than ``max_object_bytes``, not
Parquet) is quarantined whole. Neither stops the reading.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from core.model import Signal
from receiver.bucket.cursor import Cursor, Position, Quarantine
from receiver.bucket.formats import BadRecord, Chunk, Decoder, loads
from receiver.bucket.source import GZIP_ERRORS, Bucket, Gunzip, Line, ObjectInfo, Readable, lines, skip
from receiver.otlp.handler import ExportResult

log = logging.getLogger("agentwatch.bucket")

Submit = Callable[[bytes, Signal, int], "Future[ExportResult]"]
"""Hand one serialized OTLP request of ``signal`` holding ``items`` items to the door; the future
resolves once it is durable (or raises when it was refused)."""


class Refused(Exception):
    """The door did not take a chunk (overloaded, the log failing): read again from the cursor."""


@dataclass
class Counts:
    objects: int = 0
    """Objects read to their end."""
    rewritten: int = 0
    """Objects read again from the start: a new generation, shrunk, or other first bytes."""
    records: int = 0
    """Source records read (lines, rows), bad ones included."""
    log_records: int = 0
    """Log records handed to the door."""
    spans: int = 0
    """Spans handed to the door (OTLP JSON traces)."""
    accepted: int = 0
    """Log records and spans the door made durable (duplicates and rejected ones left out)."""
    rejected: int = 0
    """Log records and spans the door refused (e.g. older than the retention)."""
    bad_records: int = 0
    bad_objects: int = 0
    bytes: int = 0
    """Source bytes read (decompressed)."""
    errors: int = 0
    """Polls that failed (listing or reading the bucket, the door refusing) and were retried."""

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _Sent:
    futures: list[Future[ExportResult]]
    name: str
    position: Position


@dataclass
class Limits:
    max_records: int = 1000
    max_chunk_bytes: int = 4 << 20
    max_line_bytes: int = 16 << 20
    max_object_bytes: int | None = None
    max_document_bytes: int = 64 << 20
    """A JSON object pretty-printed over many lines (an OTLP trace dump) is read whole, up to this."""
    in_flight: int = 4
    max_records_per_second: float | None = None
    """Read no faster than this (None: as fast as the door takes them)."""


@dataclass
class BucketReader:
    bucket: Bucket
    decoder: Decoder
    cursor: Cursor
    quarantine: Quarantine
    submit: Submit
    limits: Limits = field(default_factory=Limits)
    stopping: threading.Event = field(default_factory=threading.Event)
    progress: Callable[[int], None] | None = None
    """Called with the source bytes of objects read so far (for a progress bar)."""
    counts: Counts = field(default_factory=Counts)
    _sent: deque[_Sent] = field(default_factory=deque)
    _done_bytes: int = 0
    _paced_until: float = 0.0

    # -- which objects, from where --------------------------------------------------------------

    def pending(self, objects: list[ObjectInfo]) -> list[tuple[ObjectInfo, Position]]:
        """The objects with something left to read, each with the position to read it from."""
        out = []
        for info in objects:
            start = self._start(info)
            if start is not None:
                out.append((info, start))
        return out

    def _start(self, info: ObjectInfo) -> Position | None:
        fresh = Position(info.generation, info.size)
        known = self.cursor.get(info.name)
        if known is None:
            return fresh
        if known.generation != info.generation or info.size < known.size:
            self.counts.rewritten += 1
            log.info("%s was rewritten (generation %s, %d bytes): reading it again from the start",
                     info.name, info.generation, info.size)  # fmt: skip
            return fresh
        if known.done and info.size == known.size:
            return None
        if known.head and self.bucket.head_digest(info) != known.head:
            self.counts.rewritten += 1
            return fresh
        if known.done and (info.gzip or info.parquet or self.decoder.fmt == "parquet"):
            self.counts.rewritten += 1  # a compressed or columnar object cannot be appended to
            return fresh
        return Position(info.generation, info.size, known.offset, known.line, False, known.head)

    # -- polling ----------------------------------------------------------------------------------

    def poll(self) -> int:
        """Read every object with something new; the source records read. ``Refused`` when the
        door did not take a chunk (everything before it is committed)."""
        before = self.counts.records
        for info, start in self.pending(self.bucket.list()):
            if self.stopping.is_set():
                break
            self.read(info, start)
        return self.counts.records - before

    def read(self, info: ObjectInfo, start: Position) -> None:
        try:
            if self.limits.max_object_bytes is not None and info.size > self.limits.max_object_bytes:
                reason = f"object of {info.size} bytes is larger than max_object_mib"
                self._bad_object(info, start, reason)
                return
            if info.parquet or self.decoder.fmt == "parquet":
                self._read_parquet(info, start)
            else:
                self._read_lines(info, start)
            self._settle(0)
        except BaseException:
            self._abandon()
            raise
        self._done_bytes += info.size
        self._report(0)

    # -- JSON lines -------------------------------------------------------------------------------

    def _read_lines(self, info: ObjectInfo, start: Position) -> None:
        head = start.head
        if not head and info.generation.startswith("ino:"):
            head = self.bucket.head_digest(info)
        position = Position(info.generation, info.size, start.offset, start.line, False, head)
        with self.bucket.open(info) as raw:
            stream: Readable = Gunzip(raw) if info.gzip else raw
            if start.offset and not info.gzip:
                raw.seek(start.offset)
            elif start.offset:
                try:
                    skip(stream, start.offset)
                except GZIP_ERRORS as exc:
                    self._bad_object(info, position, f"damaged gzip stream: {exc}")
                    return
            chunk = Chunk()
            first = start.offset == 0  # the object's first line with something on it is next
            for line in lines(stream, start.offset, self.limits.max_line_bytes):
                blank = line.problem is None and not line.data.strip()
                if first and not blank:
                    first = False
                    if self._is_document(line) and self._read_document(info, position):
                        return
                position = Position(info.generation, info.size, line.end, position.line + 1, False, head)
                if blank:
                    continue  # no record
                self._add_line(chunk, info, line, position.line)
                if line.damaged:
                    self.counts.bad_objects += 1
                    break
                if self._full(chunk):
                    self._send(chunk, info.name, position)
                    chunk = Chunk()
                    self._report(raw.tell() if info.gzip else line.end)
                    if self.stopping.is_set():
                        return
            self._send(chunk, info.name, Position(position.generation, info.size, position.offset,
                                                  position.line, True, head))  # fmt: skip
            self.counts.objects += 1

    def _add_line(self, chunk: Chunk, info: ObjectInfo, line: Line, number: int) -> None:
        chunk.records += 1
        chunk.source_bytes += len(line.data)
        self.counts.records += 1
        self.counts.bytes += line.end - line.start
        problem = line.problem
        if problem is None:
            try:
                self.decoder.add(chunk, loads(line.data), info.mtime_ns)
                return
            except BadRecord as exc:
                problem = str(exc)
        self._bad(info, number, line.start, problem, line.data)

    @staticmethod
    def _is_document(line: Line) -> bool:
        """A first line that is the start of a JSON document spread over many lines."""
        if line.problem is not None or line.data.lstrip()[:1] not in (b"{", b"["):
            return False
        try:
            loads(line.data)
        except BadRecord:
            return True
        return False

    def _read_document(self, info: ObjectInfo, position: Position) -> bool:
        """One JSON document (an object, or an array of them) spread over many lines, read whole;
        False when the object is none (larger than ``max_document_bytes``, or not JSON as a whole:
        then it is JSON lines whose first line is bad)."""
        limit = self.limits.max_document_bytes
        with self.bucket.open(info) as raw:
            stream: Readable = Gunzip(raw) if info.gzip else raw
            try:
                data = stream.read(limit + 1)
            except GZIP_ERRORS:
                return False
        if len(data) > limit:
            return False
        try:
            doc = loads(data)
        except BadRecord:
            return False
        self.counts.bytes += len(data)
        chunk = Chunk()
        for index, item in enumerate(doc if isinstance(doc, list) else [doc]):
            chunk.records += 1
            self.counts.records += 1
            try:
                self.decoder.add(chunk, item, info.mtime_ns)
            except BadRecord as exc:
                self._bad(info, index + 1, 0, f"document item {index}: {exc}", b"")
        done = Position(info.generation, info.size, len(data), chunk.records, True, position.head)
        self._send(chunk, info.name, done)
        self.counts.objects += 1
        return True

    # -- Parquet ----------------------------------------------------------------------------------

    def _read_parquet(self, info: ObjectInfo, start: Position) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        row = 0
        position = start
        with self.bucket.open(info) as raw:
            try:
                batches: Iterator[pa.RecordBatch] = pq.ParquetFile(raw).iter_batches(
                    batch_size=self.limits.max_records
                )
                for batch in batches:
                    rows = batch.to_pylist()
                    first = max(0, start.offset - row)
                    row += len(rows)
                    if first >= len(rows):
                        continue
                    chunk = Chunk()
                    for number, values in enumerate(rows[first:], start=row - len(rows) + first + 1):
                        chunk.records += 1
                        self.counts.records += 1
                        try:
                            self.decoder.add(chunk, _plain(values), info.mtime_ns)
                        except BadRecord as exc:
                            self._bad(info, number, 0, f"row {number}: {exc}", b"")
                    position = Position(info.generation, info.size, row, row, False, "")
                    self._send(chunk, info.name, position)
                    if self.stopping.is_set():
                        return
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                # Not Parquet, or not a Parquet this reads; the bucket failing (OSError) is retried.
                self._settle(0)
                self._bad_object(info, position, f"not readable as Parquet: {exc}")
                return
        self._send(Chunk(), info.name, Position(info.generation, info.size, row, row, True, ""))
        self.counts.objects += 1

    # -- bad records ------------------------------------------------------------------------------

    def _bad(self, info: ObjectInfo, number: int, offset: int, reason: str, data: bytes) -> None:
        self.counts.bad_records += 1
        self.quarantine.add(info.name, info.generation, number, offset, reason, data)
        if self.counts.bad_records <= 10 or self.counts.bad_records % 1000 == 0:
            log.warning("%s line %d (offset %d): %s; quarantined and skipped (%d so far)",
                        info.name, number, offset, reason, self.counts.bad_records)  # fmt: skip

    def _bad_object(self, info: ObjectInfo, position: Position, reason: str) -> None:
        self.counts.bad_objects += 1
        self.quarantine.add(info.name, info.generation, position.line, position.offset, reason, b"")
        log.warning("%s: %s; quarantined and skipped", info.name, reason)
        done = Position(info.generation, info.size, position.offset, position.line, True, position.head)
        self._send(Chunk(), info.name, done)

    # -- to the door, and the cursor after it -----------------------------------------------------

    def _full(self, chunk: Chunk) -> bool:
        return chunk.records >= self.limits.max_records or chunk.source_bytes >= self.limits.max_chunk_bytes

    def _send(self, chunk: Chunk, name: str, position: Position) -> None:
        futures = []
        if chunk.log_records:
            futures.append(self.submit(chunk.logs.SerializeToString(), "logs", chunk.log_records))
            self.counts.log_records += chunk.log_records
        if chunk.spans:
            futures.append(self.submit(chunk.traces.SerializeToString(), "traces", chunk.spans))
            self.counts.spans += chunk.spans
        self._sent.append(_Sent(futures, name, position))
        self._settle(self.limits.in_flight)
        self._pace(chunk.records)

    def _pace(self, records: int) -> None:
        """Wait as long as ``records`` take at ``max_records_per_second``, from when the last
        chunk's time ran out (or now)."""
        rate = self.limits.max_records_per_second
        if not rate or not records:
            return
        now = time.monotonic()
        self._paced_until = max(self._paced_until, now) + records / rate
        if self._paced_until > now:
            self.stopping.wait(self._paced_until - now)

    def _settle(self, keep: int) -> None:
        """Commit the cursor past every chunk that is durable, in order, until at most ``keep``
        wait (and past those already durable)."""
        while self._sent and (len(self._sent) > keep or all(f.done() for f in self._sent[0].futures)):
            sent = self._sent[0]
            for future in sent.futures:
                try:
                    result = future.result()
                except Exception as exc:
                    raise Refused(f"{type(exc).__name__}: {exc}") from exc
                self.counts.accepted += result.accepted
                self.counts.rejected += result.rejected
                if result.rejected:
                    log.warning("%s: %s", sent.name, result.message)
            self._sent.popleft()
            self.cursor.commit(sent.name, sent.position)

    def _abandon(self) -> None:
        """Forget chunks not committed (they are read again from the cursor); wait for them first,
        so nothing of this reading is in flight when the next one starts."""
        for sent in self._sent:
            for future in sent.futures:
                try:
                    future.result()
                except Exception as exc:  # said once by the caller, which reads again
                    log.debug("an abandoned chunk of %s failed: %s", sent.name, exc)
        self._sent.clear()

    def _report(self, current: int) -> None:
        if self.progress is not None:
            self.progress(self._done_bytes + current)


def _plain(value: Any) -> Any:
    """A Parquet row's values as JSON would give them (times as ISO 8601, bytes as hex)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if all(isinstance(v, tuple) and len(v) == 2 for v in value) and value:
            return {str(k): _plain(v) for k, v in value}  # a Parquet map column
        return [_plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Decimal):
        return float(value)
    return value
