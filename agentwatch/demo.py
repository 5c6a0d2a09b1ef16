"""``agentwatch demo``: send realistic agent traffic to an OTLP endpoint, so a new user sees data at once.

The traffic goes out through the OpenTelemetry Python SDK's own OTLP exporters (gRPC or HTTP), the
same path a real instrumented agent takes, so the demo also proves the receiver end to end. What the
agents do - the catalog, the failures, the span shapes - lives in ``agentwatch.demo_scenarios``; this
module only turns those span trees into SDK spans and makes sure every one of them was delivered.
Then the runs' users say what they thought of some of them (``demo_scenarios.feedback``: thumbs,
ratings, comments), through the server's own ``POST /api/v1/feedback``, as a client app would.

Everything is deterministic for a given ``seed`` and ``start_time_ns``: span content, timestamps and
trace/span ids. The ids also depend on ``start_time_ns`` on purpose: the receiver deduplicates on
``(trace_id, span_id)``, so a second ``agentwatch demo`` an hour later must not reuse the first one's
ids, while an exact replay (same seed, same start) is rightly recognised as the same spans.
"""

from __future__ import annotations

import functools
import logging
import random
import socket
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

from opentelemetry import trace
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.sdk.version import __version__ as sdk_version
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue

from agentwatch.demo_scenarios import (
    AGENTS,
    DEGRADING,
    Agent,
    ErrorSpec,
    RunPlan,
    SpanSpec,
    build_run,
    plan_runs,
)
from agentwatch.demo_scenarios.feedback import FeedbackPlan, plan_feedback

BATCH_SIZE = 512
# Flush a provider once this many spans wait in its queue. It stays well under the SDK's default
# queue of 2048, past which the batch processor silently drops spans.
FLUSH_EVERY_SPANS = 1024
FLUSH_TIMEOUT_MS = 60_000


@dataclass(frozen=True)
class DemoSummary:
    """What was sent. ``failed_runs`` ended in an error; ``degraded_runs`` answered, but badly
    (a tool failed, or the answer was empty or a refusal). ``by_failure`` counts both by kind."""

    runs: int
    spans: int
    failed_runs: int
    degraded_runs: int
    by_failure: dict[str, int]
    agents: tuple[str, ...]
    users: tuple[str, ...]
    tenants: tuple[str, ...]
    feedback: int = 0
    """Pieces of the users' feedback posted to the API, ``negative_feedback`` of them negative."""
    negative_feedback: int = 0
    log_records: int = 0
    """Log records sent beside the spans (an error log line, in the failing span's context, per
    failing span): the trace page shows them."""


class DemoExportError(RuntimeError):
    """The endpoint did not accept every span the demo produced."""


class SeededIdGenerator(IdGenerator):
    """Trace and span ids from a seeded ``random.Random`` instead of the process-wide one."""

    def __init__(self, seed: str) -> None:
        self._rng = random.Random(seed)
        # Spans are created on the caller's thread only, but the lock keeps the stream well-defined
        # should a provider ever ask for an id from another thread.
        self._lock = threading.Lock()

    def _nonzero(self, bits: int) -> int:
        with self._lock:
            value = 0
            while value == 0:  # zero is the "invalid id" of the W3C trace context
                value = self._rng.getrandbits(bits)
            return value

    def generate_span_id(self) -> int:
        return self._nonzero(64)

    def generate_trace_id(self) -> int:
        return self._nonzero(128)

    def is_trace_id_random(self) -> bool:
        return True


class RecordingExporter(SpanExporter):
    """Wraps an OTLP exporter and remembers how each export went.

    The batch processor only logs a failed export; the demo must instead tell its user that the
    data never arrived, so it needs the result of every call.
    """

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._aborted = False
        self.exported_spans = 0
        self.failed_spans = 0
        self.failures: list[str] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._aborted:
            # The demo already failed; don't make the user wait for retries against a dead endpoint.
            return SpanExportResult.FAILURE
        try:
            result = self._inner.export(spans)
        except Exception as exc:  # the processor would swallow it; keep it for the report instead
            self._record(len(spans), f"{type(exc).__name__}: {exc}")
            return SpanExportResult.FAILURE
        self._record(len(spans), None if result is SpanExportResult.SUCCESS else "export failed")
        return result

    def _record(self, count: int, failure: str | None) -> None:
        with self._lock:
            if failure is None:
                self.exported_spans += count
            else:
                self.failed_spans += count
                self.failures.append(failure)

    def abort(self) -> None:
        self._aborted = True

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


class _ExporterLogCapture(logging.Handler):
    """Keeps the OTLP exporters' first complaint: it says *why* (connection refused, 401, ...),
    where the final "failed to export" line only says that it gave up."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.first: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.first is None:
            self.first = record.getMessage()


@dataclass
class _Service:
    """One agent's process, as the SDK sees it: a TracerProvider with its own resource, and a
    LoggerProvider with the same resource for its error log lines."""

    provider: TracerProvider
    recorder: RecordingExporter
    logs: LoggerProvider
    log_exporter: LogRecordExporter
    spans: int = 0
    log_records: int = 0
    pending: int = 0
    tracers: dict[str, trace.Tracer] = field(default_factory=dict)

    def tracer(self, scope: str) -> trace.Tracer:
        if scope not in self.tracers:
            self.tracers[scope] = self.provider.get_tracer(scope)
        return self.tracers[scope]


def run_demo(
    endpoint: str,
    *,
    protocol: Literal["grpc", "http"] = "grpc",
    runs: int = 200,
    seed: int = 7,
    tenant: str | None = None,
    headers: dict[str, str] | None = None,
    tenant_headers: Mapping[str, Mapping[str, str]] | None = None,
    rate_per_s: float | None = None,
    start_time_ns: int | None = None,
    progress: Callable[[int], None] | None = None,
    api: str | None = None,
) -> DemoSummary:
    """Send ``runs`` agent runs, spread over the two hours before ``start_time_ns`` (default: now).

    Each agent's spans name its own tenant (``agentwatch.tenant``: ``acme`` or ``globex``) unless
    ``tenant`` puts them all under one. A receiver with ingest tokens files them under the token's
    tenant instead, whatever they say: ``tenant_headers`` gives the headers (the ingest token)
    each tenant's agents send, beside ``headers``.

    ``api``: the server's API (``http://127.0.0.1:8080``). Once every span is delivered, the users'
    feedback on some of the runs is posted there (``POST /api/v1/feedback``), each tenant's with
    that tenant's headers, naming the tenant; None: no feedback.

    Raises ``DemoExportError`` (a ``RuntimeError``) when the endpoint did not take every span, or
    the API every piece of feedback.
    """
    _validate(protocol, runs, rate_per_s)
    _check_reachable(endpoint)
    if api is not None:
        _check_reachable(api, "for the users' feedback", "pass the server's API with --api, or --no-feedback")
    end_ns = time.time_ns() if start_time_ns is None else start_time_ns
    plans = plan_runs(runs, seed, end_ns)
    ids = SeededIdGenerator(f"agentwatch-demo:{seed}:{end_ns}")
    capture = _ExporterLogCapture()
    exporter_logger = logging.getLogger("opentelemetry.exporter")
    exporter_logger.addHandler(capture)
    services: dict[str, _Service] = {}
    roots: dict[int, tuple[int, int]] = {}
    try:
        for agent in _agents_of(plans):
            own = tenant or agent.tenant
            sent = {**(headers or {}), **(tenant_headers or {}).get(own, {})} or None
            exporter, log_exporter = _make_exporters(endpoint, protocol, sent)
            services[agent.name] = _open_service(agent, own, ids, exporter, log_exporter)
        _send(plans, services, rate_per_s, progress, endpoint, capture, roots)
        _close(services, endpoint, capture)
    except BaseException:
        _abort(services)
        raise
    finally:
        exporter_logger.removeHandler(capture)
    rated: list[FeedbackPlan] = []
    if api is not None:
        rated = plan_feedback(plans, seed)
        _post_feedback(api, rated, plans, roots, end_ns, tenant, headers, tenant_headers)
    return replace(
        _summarise(plans, sum(s.spans for s in services.values()), tenant),
        feedback=len(rated),
        negative_feedback=sum(piece.negative for piece in rated),
        log_records=sum(s.log_records for s in services.values()),
    )


def _check_reachable(
    endpoint: str,
    purpose: str = "",
    advice: str = "start one with `agentwatch serve` (or `make run`) first, or pass --endpoint",
    timeout_s: float = 3.0,
) -> None:
    """Fail at once, saying so, when nothing listens at ``endpoint`` (rather than after the
    exporter's retries, as "spans were rejected")."""
    parsed = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    host = parsed.hostname or "127.0.0.1"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        what = f" {purpose}" if purpose else ""
        raise DemoExportError(
            f"no server is reachable at {endpoint}{what} ({reason.lower()}): {advice}"
        ) from None


def _post_feedback(
    api: str,
    rated: Sequence[FeedbackPlan],
    plans: Sequence[RunPlan],
    roots: Mapping[int, tuple[int, int]],
    end_ns: int,
    tenant: str | None,
    headers: dict[str, str] | None,
    tenant_headers: Mapping[str, Mapping[str, str]] | None,
) -> None:
    """Post the feedback of ``rated`` on the runs sent (``roots``: plan index → (trace id, end)),
    each tenant's in requests of its own, given no later than ``end_ns``. The item's id is the
    trace's: the same demo sent again is the same feedback, read once."""
    import httpx
    import orjson

    from core.httpclient import CallFailed, RetryPolicy, post
    from feedback.items import MAX_ITEMS

    by_tenant: dict[str, list[dict[str, object]]] = {}
    for piece in rated:
        plan = plans[piece.index]
        trace_id, ended_ns = roots[piece.index]
        own = tenant or plan.agent.tenant
        given = datetime.fromtimestamp(min(ended_ns + _ns(piece.delay_s * 1000), end_ns) / 1e9, UTC)
        item: dict[str, object] = {
            "id": f"demo-{trace_id:032x}", "trace_id": f"{trace_id:032x}", "user_id": plan.user,
            "value": piece.value, "time": given.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "tenant": own, "metadata": {"agentwatch.demo": True},
        }  # fmt: skip
        if piece.comment is not None:
            item["comment"] = piece.comment
        by_tenant.setdefault(own, []).append(item)
    url = f"{api if '://' in api else f'http://{api}'}".rstrip("/") + "/api/v1/feedback"
    policy = RetryPolicy(timeout=30.0, retries=2, backoff=0.5)
    with httpx.Client() as client:
        for own, items in sorted(by_tenant.items()):
            sent = {
                **(headers or {}),
                **(tenant_headers or {}).get(own, {}),
                "Content-Type": "application/json",
            }
            for start in range(0, len(items), MAX_ITEMS):
                batch = items[start : start + MAX_ITEMS]
                try:
                    answer, _ = post(client, url, orjson.dumps(batch), policy, sent)
                    said = answer.json()
                except (CallFailed, ValueError) as exc:
                    raise DemoExportError(
                        f"the spans were sent, but not the users' feedback: {url} answered {exc}"
                    ) from None
                if said != {"accepted": len(batch), "tenant": own}:
                    raise DemoExportError(
                        f"the spans were sent, but {url} took the users' feedback for tenant {own} as {said}"
                    )


def _validate(protocol: str, runs: int, rate_per_s: float | None) -> None:
    if protocol not in ("grpc", "http"):
        raise ValueError(f"protocol must be 'grpc' or 'http', not {protocol!r}")
    if runs < 0:
        raise ValueError(f"runs must be >= 0, not {runs}")
    if rate_per_s is not None and rate_per_s <= 0:
        raise ValueError(f"rate_per_s must be > 0, not {rate_per_s}")


def _agents_of(plans: Iterable[RunPlan]) -> list[Agent]:
    used = {plan.agent.name for plan in plans}
    return [agent for agent in AGENTS if agent.name in used]


def _make_exporters(
    endpoint: str, protocol: str, headers: dict[str, str] | None
) -> tuple[SpanExporter, LogRecordExporter]:
    """The OTLP exporters of an agent's spans and of its log lines, to one receiver."""
    if "://" not in endpoint:
        endpoint = f"http://{endpoint}"
    if protocol == "grpc":
        # gRPC refuses metadata keys with capitals, and users will write "Authorization".
        metadata = None if headers is None else {k.lower(): v for k, v in headers.items()}
        insecure = not endpoint.startswith("https://")
        return (
            GrpcSpanExporter(endpoint=endpoint, insecure=insecure, headers=metadata),
            GrpcLogExporter(endpoint=endpoint, insecure=insecure, headers=metadata),
        )
    base = endpoint.rstrip("/").removesuffix("/v1/traces")
    return (
        HttpSpanExporter(endpoint=f"{base}/v1/traces", headers=headers),
        HttpLogExporter(endpoint=f"{base}/v1/logs", headers=headers),
    )


def _open_service(
    agent: Agent, tenant: str, ids: IdGenerator, exporter: SpanExporter, log_exporter: LogRecordExporter
) -> _Service:
    attributes: dict[str, AttributeValue] = {
        "service.name": agent.name,
        "service.version": agent.version,
        "deployment.environment.name": "production",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": sdk_version,
        "agentwatch.demo": True,  # lets a user find (and delete) the demo's data later
        "agentwatch.tenant": tenant,
    }
    if agent.team:
        attributes["team.name"] = agent.team
    # Resource(...) rather than Resource.create(...), and an explicit sampler: OTEL_SERVICE_NAME,
    # OTEL_RESOURCE_ATTRIBUTES or OTEL_TRACES_SAMPLER in the user's shell must not change the demo.
    provider = TracerProvider(
        resource=Resource(attributes), id_generator=ids, sampler=ALWAYS_ON, shutdown_on_exit=False
    )
    recorder = RecordingExporter(exporter)
    provider.add_span_processor(BatchSpanProcessor(recorder, max_export_batch_size=BATCH_SIZE))
    logs = LoggerProvider(resource=Resource(attributes), shutdown_on_exit=False)
    logs.add_log_record_processor(BatchLogRecordProcessor(log_exporter, max_export_batch_size=BATCH_SIZE))
    return _Service(provider, recorder, logs, log_exporter)


def _send(
    plans: Sequence[RunPlan],
    services: dict[str, _Service],
    rate_per_s: float | None,
    progress: Callable[[int], None] | None,
    endpoint: str,
    capture: _ExporterLogCapture,
    roots: dict[int, tuple[int, int]],
) -> None:
    """Send each run of ``plans``; ``roots`` gets each run's (trace id, end) by its plan's index."""
    started = time.monotonic()
    for done, plan in enumerate(plans, start=1):
        if rate_per_s is not None:
            _sleep_until(started + (done - 1) / rate_per_s)
        service = services[plan.agent.name]
        # An empty Context: each run is a new trace, whatever span the caller may have open.
        root = build_run(plan)
        roots[plan.index] = _emit(service, root, Context(), plan.start_ns)
        count = root.count()
        service.spans += count
        service.pending += count
        if service.pending >= FLUSH_EVERY_SPANS:
            # Back-pressure: wait for the endpoint rather than let the SDK's queue overflow.
            service.provider.force_flush(FLUSH_TIMEOUT_MS)
            service.pending = 0
        _raise_on_failure(services.values(), endpoint, capture)
        if progress is not None:
            progress(done)


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _emit(service: _Service, spec: SpanSpec, parent: Context, start_ns: int) -> tuple[int, int]:
    """Create ``spec``'s span and its subtree with explicit timestamps; return its trace id and
    the span's end."""
    span = service.tracer(spec.scope).start_span(
        spec.name, context=parent, kind=spec.kind, attributes=spec.attributes, start_time=start_ns
    )
    context = trace.set_span_in_context(span, parent)
    cursor = start_ns + (_ns(spec.own_ms / 2) if spec.children else 0)
    for child in spec.children:
        _, cursor = _emit(service, child, context, cursor + _ns(child.gap_ms))
    end_ns = cursor + _ns(spec.own_ms / 2 if spec.children else spec.own_ms)
    if spec.error is not None:
        _mark_error(span, spec.error, end_ns)
        _log_error(service, spec, context, end_ns)
    elif spec.status_ok:
        span.set_status(Status(StatusCode.OK))
    span.end(end_time=end_ns)
    return span.get_span_context().trace_id, end_ns


def _ns(ms: float) -> int:
    return round(ms * 1_000_000)


def _mark_error(span: trace.Span, error: ErrorSpec, end_ns: int) -> None:
    span.set_status(Status(StatusCode.ERROR, error.message))
    if error.exception is not None:
        module, name, message = error.exception
        span.record_exception(_exception_class(module, name)(message), timestamp=end_ns)


def _log_error(service: _Service, spec: SpanSpec, context: Context, end_ns: int) -> None:
    """The error log line the agent's process writes as the span fails, in its context."""
    assert spec.error is not None
    attributes: dict[str, AttributeValue] = {"code.function": spec.name}
    if spec.error.exception is not None:
        module, name, _ = spec.error.exception
        attributes["exception.type"] = name if module == "builtins" else f"{module}.{name}"
    service.logs.get_logger(spec.scope).emit(
        LogRecord(
            timestamp=end_ns,
            context=context,
            severity_number=SeverityNumber.ERROR,
            severity_text="ERROR",
            body=f"{spec.name} failed: {spec.error.message}",
            attributes=attributes,
        )
    )
    service.log_records += 1


@functools.cache
def _exception_class(module: str, name: str) -> type[Exception]:
    """A stand-in for the provider SDK's exception, so ``exception.type`` reads e.g. ``openai.RateLimitError``
    without importing (or depending on) that SDK."""
    if module == "builtins" and name == "TimeoutError":
        return TimeoutError
    return type(name, (Exception,), {"__module__": module})


def _raise_on_failure(services: Iterable[_Service], endpoint: str, capture: _ExporterLogCapture) -> None:
    failed = [s.recorder for s in services if s.recorder.failures]
    if not failed:
        return
    spans = sum(r.failed_spans for r in failed)
    cause = capture.first or failed[0].failures[0]
    raise DemoExportError(
        f"could not send the demo's spans to {endpoint}: {spans} spans were rejected ({cause})"
    )


def _close(services: dict[str, _Service], endpoint: str, capture: _ExporterLogCapture) -> None:
    """Flush and shut down every provider, then check that every span made it."""
    for service in services.values():
        flushed = service.provider.force_flush(FLUSH_TIMEOUT_MS)
        _raise_on_failure(services.values(), endpoint, capture)
        if not flushed:
            raise DemoExportError(
                f"timed out after {FLUSH_TIMEOUT_MS} ms sending the demo's spans to {endpoint}"
            )
    for service in services.values():
        service.provider.shutdown()
        service.logs.shutdown()  # flushes its log lines (a server without OTLP logs just drops them)
    _raise_on_failure(services.values(), endpoint, capture)
    for name, service in services.items():
        if service.recorder.exported_spans != service.spans:
            lost = service.spans - service.recorder.exported_spans
            raise DemoExportError(f"{lost} of {name}'s {service.spans} spans were dropped before export")


def _abort(services: dict[str, _Service]) -> None:
    # Stop exporting first, so shutting down doesn't retry a dead endpoint once per provider.
    for service in services.values():
        service.recorder.abort()
        service.log_exporter.shutdown()  # type: ignore[no-untyped-call]  # pending lines dropped, not retried
    for service in services.values():
        service.provider.shutdown()
        service.logs.shutdown()


def _summarise(plans: Sequence[RunPlan], spans: int, tenant: str | None) -> DemoSummary:
    kinds = Counter(plan.failure for plan in plans if plan.failure is not None)
    degraded = sum(count for kind, count in kinds.items() if kind in DEGRADING)
    return DemoSummary(
        runs=len(plans),
        spans=spans,
        failed_runs=sum(kinds.values()) - degraded,
        degraded_runs=degraded,
        by_failure=dict(sorted(kinds.items())),
        agents=tuple(agent.name for agent in _agents_of(plans)),
        users=tuple(sorted({plan.user for plan in plans})),
        tenants=tuple(sorted({tenant or plan.agent.tenant for plan in plans})),
    )
