"""The one OTLP export handler. gRPC and HTTP are thin transport shells over ``ExportHandler``.

An export is answered only once its spans are durable (the sink's future resolved). Spans that
cannot be stored (ids of the wrong length, all-zero ids, times past what the int64 time columns
hold) are dropped from the request and reported back as a partial success, as the OTLP
specification asks; the rest are kept. Whatever passes here converts: nothing acknowledged may
fail conversion later and hold other spans up. So are spans the store would not keep or that
would scatter it over the calendar (``TimeWindow``): started before the retention window (the
next compaction pass would delete them) or further in the future than clocks drift.

Decoding and screening a large or JSON body runs on a worker thread, not the event loop every
port shares. A client that gives up while its export waits for the write-ahead log (a gRPC
deadline, a dropped connection) is simply not answered; its spans still become durable and are
remembered for deduplication, so its retry is not stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Literal

from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from core.admission import DecodeBudget
from core.component import DurableSink, ReceiverCounters, StoredIndex
from core.errors import (
    DecodeError,
    RequestError,
)
from core.model import DEFAULT_TENANT, OtlpRecord, Signal, as_str
from core.tenants import TENANT_ATTRIBUTES, sanitize_tenant
from core.units import format_duration
from receiver.otlp.otlp_json import parse_json_logs_request, parse_json_request
from storage.dedup import log_key, record_digest, span_key

Encoding = Literal["protobuf", "json"]


_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
MAX_TIME_UNIX_NANO = (1 << 63) - 1
"""The latest time the int64 nanosecond columns hold (2262-04-11T23:47:16Z)."""
OFF_LOOP_BYTES = 256 * 1024
"""Protobuf bodies larger than this are decoded on a worker thread; JSON bodies always are."""


@dataclass(frozen=True)
class ExportResult:
    accepted: int
    rejected: int
    message: str
    signal: Signal = "traces"

    def response(self) -> ExportTraceServiceResponse | ExportLogsServiceResponse:
        """The export's answer: a partial success names how many spans (or log records) were
        rejected and why."""
        if self.signal == "logs":
            logs = ExportLogsServiceResponse()
            if self.rejected:
                logs.partial_success.rejected_log_records = self.rejected
                logs.partial_success.error_message = self.message
            return logs
        response = ExportTraceServiceResponse()
        if self.rejected:
            response.partial_success.rejected_spans = self.rejected
            response.partial_success.error_message = self.message
        return response


def decode_request(body: bytes, encoding: Encoding) -> ExportTraceServiceRequest:
    if encoding == "json":
        return parse_json_request(body)
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (ProtobufDecodeError, RuntimeError, ValueError) as exc:
        raise DecodeError(f"request body is not a valid protobuf ExportTraceServiceRequest: {exc}") from None
    return request


def decode_logs_request(body: bytes, encoding: Encoding) -> ExportLogsServiceRequest:
    if encoding == "json":
        return parse_json_logs_request(body)
    request = ExportLogsServiceRequest()
    try:
        request.ParseFromString(body)
    except (ProtobufDecodeError, RuntimeError, ValueError) as exc:
        raise DecodeError(f"request body is not a valid protobuf ExportLogsServiceRequest: {exc}") from None
    return request


def _span_problem(trace_id: bytes, span_id: bytes, parent: bytes, start: int, end: int) -> str | None:
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
        return f"invalid trace_id {trace_id.hex()!r}: must be 16 bytes, not all zero"
    if len(span_id) != 8 or span_id == _ZERO_SPAN:
        return f"invalid span_id {span_id.hex()!r}: must be 8 bytes, not all zero"
    if parent and len(parent) != 8:
        return f"invalid parent_span_id {parent.hex()!r}: must be empty or 8 bytes"
    if start > MAX_TIME_UNIX_NANO or end > MAX_TIME_UNIX_NANO:
        return (
            f"start_time_unix_nano {start} / end_time_unix_nano {end}: times after "
            f"{MAX_TIME_UNIX_NANO} (2262-04-11) cannot be stored"
        )
    return None


@dataclass(frozen=True)
class TimeWindow:
    """The span start times the door accepts, around the receiving server's clock.

    Spans are stored in partitions by their start day. One started before the retention window
    would be acknowledged and then deleted by the next compaction pass; spans dated anywhere on
    the calendar (1971, 2250) each open a partition of their own. ``max_age`` is the retention
    (``storage.compaction.retention``; 0 keeps everything, so any age is accepted); spans starting
    more than ``max_future`` after the server's clock are rejected too (None: no bound).
    """

    max_age: float = 0.0
    max_future: float | None = 3600.0

    def bounds(self, now_ns: int) -> tuple[int, int]:
        """The earliest and latest start times accepted at ``now_ns`` (both inclusive)."""
        earliest = now_ns - int(self.max_age * 1e9) if self.max_age else 0
        latest = MAX_TIME_UNIX_NANO if self.max_future is None else now_ns + int(self.max_future * 1e9)
        return earliest, min(latest, MAX_TIME_UNIX_NANO)

    def problem(self, start: int, now_ns: int, field: str = "start_time_unix_nano") -> str | None:
        """Why a span starting at ``start`` (or a log record of that ``field``) is outside the
        window at ``now_ns``; None if it is not."""
        earliest, latest = self.bounds(now_ns)
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(min(start, MAX_TIME_UNIX_NANO) // 10**9))
        if start < earliest:
            return (
                f"{field} {start} ({when}) is older than the retention window "
                f"(storage.compaction.retention: {format_duration(self.max_age)}), so it would be deleted"
            )
        if start > latest and self.max_future is not None:
            return (
                f"{field} {start} ({when}) is more than {format_duration(self.max_future)} "
                "ahead of the server's clock (the receiver's max_future_skew)"
            )
        return None


@dataclass
class Screened:
    kept: int = 0
    rejected: int = 0
    duplicates: int = 0
    problem: str = ""
    keys: list[bytes] = field(default_factory=list)
    """Dedup keys of the kept spans, to remember once they are durable."""
    changed: bool = False
    """Screening changed a kept item (a log record given its observed time)."""
    seen: set[bytes] = field(default_factory=set)
    """Keys kept so far, so an item repeated in the request is a duplicate too."""

    def reject(self, problem: str) -> None:
        """Count an item that cannot be stored; the first problem is the one the answer names."""
        self.rejected += 1
        self.problem = self.problem or problem

    def admit(self, key: bytes, recent: StoredIndex | None) -> bool:
        """Whether the item of ``key`` is kept: neither stored already nor earlier in the request."""
        if key in self.seen or (recent is not None and key in recent):
            self.duplicates += 1
            return False
        self.seen.add(key)
        self.keys.append(key)
        return True


class TenantKeys:
    """Which tenant a span will be stored under, as far as the door can tell cheaply.

    Deduplication keys include the tenant, so one tenant's span ids never suppress another's.
    The ingest token's tenant is exact. Without one, the tenant comes from the attributes the
    normalize processor reads (configured names first, then ``agentwatch.tenant``, ``tenant.id``,
    ``tenant``): the resource's, or (only when the resource has none and the request mentions
    such a key at all) the span's own. A span-level tenant that overrides its resource's is not
    seen here; its duplicates are removed by compaction instead.
    """

    def __init__(self, names: Sequence[str] = ()) -> None:
        self.names: tuple[str, ...] = tuple(dict.fromkeys([*names, *TENANT_ATTRIBUTES]))
        self._needles = [name.encode() for name in self.names]

    def mentioned_in(self, body: bytes) -> bool:
        return any(needle in body for needle in self._needles)

    def find(self, attributes: Iterable[KeyValue]) -> str | None:
        found: dict[str, str] = {}
        for kv in attributes:
            if kv.key in self.names and kv.key not in found:
                value = _scalar(kv)
                if value is not None:
                    found[kv.key] = value
        for name in self.names:
            if name in found:
                return sanitize_tenant(found[name])
        return None


def _scalar(kv: KeyValue) -> str | None:
    kind = kv.value.WhichOneof("value")
    if kind in ("string_value", "int_value", "double_value", "bool_value"):
        return as_str(getattr(kv.value, kind))
    return None


def screen_spans(
    request: ExportTraceServiceRequest,
    recent: StoredIndex | None = None,
    tenant: str | None = None,
    tenant_keys: TenantKeys | None = None,
    body: bytes = b"",
    window: TimeWindow | None = None,
) -> Screened:
    """Remove spans that cannot be stored and spans already stored (or repeated in the request).
    With a ``window`` (at the door, never when replaying the log: what was acknowledged is kept),
    also spans starting outside it."""
    out = Screened()
    fixed = sanitize_tenant(tenant) if tenant is not None else None
    tenants = tenant_keys or TenantKeys()
    look_in_spans = fixed is None and tenants.mentioned_in(body) if body else fixed is None
    now = time.time_ns()
    earliest, latest = window.bounds(now) if window is not None else (0, MAX_TIME_UNIX_NANO)
    for rs in request.resource_spans:
        resource_tenant = fixed or tenants.find(rs.resource.attributes)
        for ss in rs.scope_spans:
            drop = []
            for index, span in enumerate(ss.spans):
                trace_id, span_id = span.trace_id, span.span_id
                start = span.start_time_unix_nano
                problem = _span_problem(
                    trace_id, span_id, span.parent_span_id, start, span.end_time_unix_nano
                )
                if problem is None and window is not None and not earliest <= start <= latest:
                    problem = window.problem(start, now)
                if problem is not None:
                    drop.append(index)
                    out.reject(f"span {span.name!r}: {problem}")
                    continue
                owner = resource_tenant
                if owner is None and look_in_spans:
                    owner = tenants.find(span.attributes)
                if not out.admit(span_key(owner or DEFAULT_TENANT, trace_id, span_id), recent):
                    drop.append(index)
            for index in reversed(drop):
                del ss.spans[index]
    out.kept = len(out.keys)
    return out


def _log_problem(item: LogRecord) -> str | None:
    if len(item.trace_id) not in (0, 16):
        return f"invalid trace_id {item.trace_id.hex()!r}: must be empty or 16 bytes (32 hex digits)"
    if len(item.span_id) not in (0, 8):
        return f"invalid span_id {item.span_id.hex()!r}: must be empty or 8 bytes (16 hex digits)"
    if item.time_unix_nano > MAX_TIME_UNIX_NANO or item.observed_time_unix_nano > MAX_TIME_UNIX_NANO:
        return (
            f"time_unix_nano {item.time_unix_nano} / observed_time_unix_nano "
            f"{item.observed_time_unix_nano}: times after {MAX_TIME_UNIX_NANO} (2262-04-11) cannot be stored"
        )
    return None


def screen_logs(
    request: ExportLogsServiceRequest,
    recent: StoredIndex | None = None,
    tenant: str | None = None,
    tenant_keys: TenantKeys | None = None,
    window: TimeWindow | None = None,
) -> Screened:
    """``screen_spans`` for log records: remove those that cannot be stored (ids of the wrong
    length, times past the int64 columns, with a ``window`` times outside it) and those already
    stored or repeated in the request (the same record digest, ``storage.dedup.record_digest``).

    A record with neither a time nor an observed time is given the observed time of its arrival
    (the logs data model has the receiver set it); its time is then its observed time."""
    out = Screened()
    fixed = sanitize_tenant(tenant) if tenant is not None else None
    tenants = tenant_keys or TenantKeys()
    now = time.time_ns()
    earliest, latest = window.bounds(now) if window is not None else (0, MAX_TIME_UNIX_NANO)
    for rl in request.resource_logs:
        resource_tenant = fixed or tenants.find(rl.resource.attributes)
        resource = rl.resource.SerializeToString()
        for sl in rl.scope_logs:
            drop = []
            for index, item in enumerate(sl.log_records):
                problem = _log_problem(item)
                if problem is None and not (item.time_unix_nano or item.observed_time_unix_nano):
                    item.observed_time_unix_nano = now
                    out.changed = True
                when = item.time_unix_nano or item.observed_time_unix_nano
                if problem is None and window is not None and not earliest <= when <= latest:
                    problem = window.problem(when, now, "time_unix_nano")
                if problem is not None:
                    drop.append(index)
                    out.reject(f"log record {index}: {problem}")
                    continue
                owner = resource_tenant or tenants.find(item.attributes)
                if not out.admit(log_key(owner or DEFAULT_TENANT, record_digest(resource, item)), recent):
                    drop.append(index)
            for index in reversed(drop):
                del sl.log_records[index]
    out.kept = len(out.keys)
    return out


@dataclass(frozen=True)
class Prepared:
    """A decoded, screened request on its way to the write-ahead log."""

    screened: Screened
    payload: bytes
    tenant: str | None
    signal: Signal = "traces"


@dataclass
class ItemCounts:
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0


class ExportHandler:
    """Decode, validate, make durable, answer. Shared by every OTLP transport."""

    def __init__(
        self,
        sink: DurableSink,
        receiver_id: str,
        recent: StoredIndex | None = None,
        tenant_keys: TenantKeys | None = None,
        budget: DecodeBudget | None = None,
        window: TimeWindow | None = None,
    ) -> None:
        self._budget = budget
        self._window = window
        self._sink = sink
        self._receiver_id = receiver_id
        self._recent = recent
        self._tenant_keys = tenant_keys or TenantKeys()
        self.spans = ItemCounts()
        self.logs = ItemCounts()
        """Log records, counted as spans are."""
        self.refused: Counter[str] = Counter()
        """Requests refused whole, by reason (``decode_error``, ``unauthenticated``, ...)."""

    def counters(self) -> ReceiverCounters:
        spans, logs = self.spans, self.logs
        return ReceiverCounters(
            spans.accepted,
            spans.rejected,
            spans.duplicates,
            dict(self.refused),
            logs.accepted,
            logs.rejected,
            logs.duplicates,
        )

    def note_refusal(self, exc: RequestError) -> None:
        """Transports report every request they refuse, wherever in the request it happened."""
        self.refused[exc.reason] += 1

    def _screen(
        self, body: bytes, encoding: Encoding, tenant: str | None, signal: Signal
    ) -> tuple[Screened, bytes]:
        """Decode and screen; the payload to log (the original bytes when nothing changed)."""
        request: ExportTraceServiceRequest | ExportLogsServiceRequest
        if signal == "logs":
            request = decode_logs_request(body, encoding)
            screened = screen_logs(request, self._recent, tenant, self._tenant_keys, self._window)
        else:
            request = decode_request(body, encoding)
            screened = screen_spans(request, self._recent, tenant, self._tenant_keys, body, self._window)
        if screened.kept == 0:
            return screened, b""
        unchanged = (
            encoding == "protobuf"
            and not screened.rejected
            and not screened.duplicates
            and not screened.changed
        )
        return screened, body if unchanged else request.SerializeToString()

    def hold(self, size: int) -> contextlib.AbstractAsyncContextManager[None]:
        """Room in the decode budget for a body of ``size`` bytes (read and decoded inside)."""
        return self._budget.hold(size) if self._budget is not None else contextlib.nullcontext()

    async def export(
        self, body: bytes, encoding: Encoding, tenant: str | None = None, signal: Signal = "traces"
    ) -> ExportResult:
        async with self.hold(len(body)):
            prepared = await self.prepare(body, encoding, tenant, signal)
        return await self.commit(prepared)

    async def prepare(
        self, body: bytes, encoding: Encoding, tenant: str | None = None, signal: Signal = "traces"
    ) -> Prepared:
        """Decode and screen (off the event loop when large): what ``commit`` makes durable."""
        if encoding == "json" or len(body) > OFF_LOOP_BYTES:
            screened, payload = await asyncio.to_thread(self._screen, body, encoding, tenant, signal)
        else:
            screened, payload = self._screen(body, encoding, tenant, signal)
        return Prepared(screened, payload, tenant, signal)

    async def commit(self, prepared: Prepared) -> ExportResult:
        """Make the screened spans durable; answer once they are."""
        screened, signal = prepared.screened, prepared.signal
        rejected = screened.rejected
        what = "log record(s)" if signal == "logs" else "span(s)"
        message = f"{rejected} {what} rejected; first: {screened.problem}" if rejected else ""
        counts = self.logs if signal == "logs" else self.spans
        counts.rejected += rejected
        counts.duplicates += screened.duplicates
        if screened.kept == 0:
            # Duplicates are already stored: for the client that is a success.
            return ExportResult(0, rejected, message, signal)
        record = OtlpRecord(prepared.payload, prepared.tenant, self._receiver_id, screened.kept, signal)
        durable = self._sink.submit(record)
        try:
            await asyncio.shield(asyncio.wrap_future(durable))
        except asyncio.CancelledError:
            # The caller gave up; the log still commits the record. Remember its keys once it
            # has, so the caller's retry is recognised as a duplicate.
            loop = asyncio.get_running_loop()
            durable.add_done_callback(lambda f: self._remember_later(loop, f, screened))
            raise
        self._remember(screened)
        counts.accepted += screened.kept
        return ExportResult(screened.kept, rejected, message, signal)

    def _remember(self, screened: Screened) -> None:
        # Remembered only once durable: a refused request's retry must not look like a duplicate.
        if self._recent is not None:
            self._recent.add_all(screened.keys)

    def _remember_later(
        self, loop: asyncio.AbstractEventLoop, durable: Future[None], screened: Screened
    ) -> None:
        if durable.exception() is None and not loop.is_closed():
            loop.call_soon_threadsafe(self._remember, screened)
