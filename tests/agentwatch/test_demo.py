"""``agentwatch demo`` against real OTLP endpoints: a local HTTP server and an in-process gRPC server.

The test endpoints decode exactly what the SDK's exporters sent, so every assertion is about the
bytes on the wire, not about the generator's internals.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from agentwatch.demo import DemoExportError, DemoSummary, run_demo

END_NS = 1_750_000_000_000_000_000  # a fixed "now", so runs are comparable byte for byte
TWO_HOURS_NS = 2 * 3600 * 1_000_000_000
REFUSAL = "I'm sorry, but I can't help with that request."


# ---------------------------------------------------------------------------------------------
# Test endpoints


@dataclass
class Sink:
    """Everything one endpoint received."""

    requests: list[ExportTraceServiceRequest] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request: ExportTraceServiceRequest, headers: dict[str, str], path: str) -> None:
        with self.lock:
            self.requests.append(request)
            self.headers.append(headers)
            self.paths.append(path)


class _OtlpHttpServer(ThreadingHTTPServer):
    def __init__(self, sink: Sink, status: int) -> None:
        super().__init__(("127.0.0.1", 0), _OtlpHttpHandler)
        self.sink = sink
        self.status = status


class _OtlpHttpHandler(BaseHTTPRequestHandler):
    server: _OtlpHttpServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        assert self.headers["Content-Type"] == "application/x-protobuf"
        if self.server.status == 200:
            request = ExportTraceServiceRequest.FromString(body)
            self.server.sink.add(request, {k.lower(): v for k, v in self.headers.items()}, self.path)
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        return


@contextmanager
def http_endpoint(status: int = 200) -> Iterator[tuple[str, Sink]]:
    sink = Sink()
    server = _OtlpHttpServer(sink, status)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def Export(
        self, request: ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> ExportTraceServiceResponse:
        metadata = {str(k): str(v) for k, v in context.invocation_metadata()}
        self.sink.add(request, metadata, "TraceService/Export")
        return ExportTraceServiceResponse()


@contextmanager
def grpc_endpoint() -> Iterator[tuple[str, Sink]]:
    sink = Sink()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(sink), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", sink
    finally:
        server.stop(None).wait()


# ---------------------------------------------------------------------------------------------
# Reading what arrived


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    return getattr(value, kind) if kind else None


def _attrs(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


@dataclass(frozen=True)
class Got:
    service: str
    resource: dict[str, Any]
    scope: str
    span: Span
    attrs: dict[str, Any]

    @property
    def duration_ms(self) -> float:
        return (self.span.end_time_unix_nano - self.span.start_time_unix_nano) / 1e6

    @property
    def is_error(self) -> bool:
        return self.span.status.code == Status.STATUS_CODE_ERROR

    def exception_types(self) -> list[str]:
        return [
            str(_attrs(e.attributes)["exception.type"]) for e in self.span.events if e.name == "exception"
        ]


def spans_of(sink: Sink) -> list[Got]:
    got = []
    for request in sink.requests:
        for rs in request.resource_spans:
            resource = _attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    got.append(
                        Got(resource["service.name"], resource, ss.scope.name, span, _attrs(span.attributes))
                    )
    return got


def canonical(sink: Sink) -> list[tuple[str, bytes]]:
    """Every span with its service, as sorted bytes: equal lists mean identical traffic."""
    return sorted((g.service, g.span.SerializeToString(deterministic=True)) for g in spans_of(sink))


def traces_of(spans: list[Got]) -> dict[bytes, list[Got]]:
    traces: dict[bytes, list[Got]] = defaultdict(list)
    for got in spans:
        traces[got.span.trace_id].append(got)
    return traces


def root_of(trace: list[Got]) -> Got:
    roots = [g for g in trace if not g.span.parent_span_id]
    assert len(roots) == 1
    return roots[0]


def answer_of(root: Got) -> str | None:
    """The run's final answer in whichever convention the root speaks."""
    if "glean.run.output" in root.attrs:
        return str(root.attrs["glean.run.output"])
    if "output.value" in root.attrs:
        return str(root.attrs["output.value"])
    if "gen_ai.output.messages" in root.attrs:
        message = json.loads(root.attrs["gen_ai.output.messages"])[0]
        return "".join(part["content"] for part in message["parts"])
    return None


def evidence_kind(trace: list[Got]) -> str | None:
    """A deliberately small classifier: which failure does the evidence on the wire show?"""
    messages = " ".join(g.span.status.message for g in trace)
    error_types = {str(g.attrs.get("error.type")) for g in trace if "error.type" in g.attrs}
    exceptions = {t for g in trace for t in g.exception_types()}
    if "maximum context length exceeded" in messages:
        return "context_overflow"
    if "429" in error_types or any(t.endswith("RateLimitError") for t in exceptions):
        return "rate_limit"
    if "TimeoutError" in error_types or "TimeoutError" in exceptions:
        return "timeout"
    if "401" in error_types:
        return "auth_failed"
    tool_results = " ".join(str(g.attrs.get("gen_ai.tool.call.result", "")) for g in trace)
    if (
        any(g.attrs.get("rpc.jsonrpc.error_code") == -32603 for g in trace)
        or '"isError": true' in tool_results
    ):
        return "tool_error"
    root = root_of(trace)
    assert not root.is_error
    finish_reasons = {r for g in trace for r in g.attrs.get("gen_ai.response.finish_reasons", ())}
    if "content_filter" in finish_reasons or answer_of(root) == REFUSAL:
        return "blocked_response"
    if answer_of(root) == "":
        return "empty_response"
    return None


# ---------------------------------------------------------------------------------------------
# The 200-run demo, sent once over OTLP/HTTP and shared by the tests that read it


@dataclass(frozen=True)
class Sent:
    summary: DemoSummary
    sink: Sink
    spans: list[Got]
    progress: list[int]


@pytest.fixture(scope="module")
def sent() -> Sent:
    calls: list[int] = []
    with http_endpoint() as (url, sink):
        summary = run_demo(
            url,
            protocol="http",
            runs=200,
            seed=7,
            tenant="acme",
            headers={"Authorization": "Bearer demo-token"},
            start_time_ns=END_NS,
            progress=calls.append,
        )
    return Sent(summary, sink, spans_of(sink), calls)


def test_every_span_arrives_once_per_run(sent: Sent) -> None:
    assert len(sent.spans) == sent.summary.spans
    assert len({(g.span.trace_id, g.span.span_id) for g in sent.spans}) == sent.summary.spans
    assert len(traces_of(sent.spans)) == 200
    assert sum(1 for g in sent.spans if not g.span.parent_span_id) == 200
    assert sent.summary.runs == 200
    assert sent.progress == list(range(1, 201))


def test_http_requests_carry_path_headers_and_tenant(sent: Sent) -> None:
    assert set(sent.sink.paths) == {"/v1/traces"}
    assert {h["authorization"] for h in sent.sink.headers} == {"Bearer demo-token"}
    assert {g.resource["agentwatch.tenant"] for g in sent.spans} == {"acme"}
    assert {g.service for g in sent.spans} == set(sent.summary.agents)
    assert sent.summary.agents == ("expense-bot", "it-helpdesk", "sales-research", "hr-policy")


def test_users_and_sessions(sent: Sent) -> None:
    roots = [root_of(t) for t in traces_of(sent.spans).values()]
    assert tuple(sorted({str(r.attrs["user.id"]) for r in roots})) == sent.summary.users
    assert len(sent.summary.users) == 16  # 10 of acme's people and 6 of globex's
    assert sent.summary.tenants == ("acme",)  # tenant="acme" put every run there
    runs_per_session = Counter(str(r.attrs["session.id"]) for r in roots)
    assert len(runs_per_session) < 200
    assert max(runs_per_session.values()) > 1


def test_failure_evidence_matches_summary(sent: Sent) -> None:
    kinds = {tid: evidence_kind(trace) for tid, trace in traces_of(sent.spans).items()}
    by_kind = Counter(k for k in kinds.values() if k is not None)
    assert dict(by_kind) == sent.summary.by_failure
    assert set(by_kind) == {
        "auth_failed",
        "blocked_response",
        "context_overflow",
        "empty_response",
        "rate_limit",
        "timeout",
        "tool_error",
    }
    failed = sum(1 for t in traces_of(sent.spans).values() if root_of(t).is_error)
    assert failed == sent.summary.failed_runs
    assert sent.summary.failed_runs + sent.summary.degraded_runs == sum(by_kind.values())


def test_seed_7_summary_is_pinned(sent: Sent) -> None:
    # A golden value: any change to what the demo sends shows up here and must be deliberate.
    # 52 of 200 runs (26%) go wrong, about the intended quarter; expense-bot's auth failures
    # (everyone but its owner) are the most.
    assert sent.summary == DemoSummary(
        runs=200,
        spans=853,
        failed_runs=42,
        degraded_runs=10,
        by_failure={
            "auth_failed": 28,
            "blocked_response": 2,
            "context_overflow": 3,
            "empty_response": 3,
            "rate_limit": 9,
            "timeout": 2,
            "tool_error": 5,
        },
        agents=("expense-bot", "it-helpdesk", "sales-research", "hr-policy"),
        users=tuple(
            sorted(
                [f"{n}@acme.com" for n in ("alice", "bob", "carol", "dave", "erin", "frank", "grace")]
                + [f"{n}@acme.com" for n in ("heidi", "ivan", "judy")]
                + [f"{n}@globex.com" for n in ("hank", "kim", "lena", "marge", "nina", "otto")]
            )
        ),
        tenants=("acme",),
        log_records=103,  # one error line per failing span
    )
    assert sum(1 for span in sent.spans if span.is_error) == 103


def test_expense_bot_fails_only_for_users_other_than_its_owner(sent: Sent) -> None:
    outcomes: Counter[tuple[bool, bool]] = Counter()
    for trace in traces_of(sent.spans).values():
        root = root_of(trace)
        if root.service != "expense-bot":
            continue
        assert root.attrs["glean.agent.creator"] == "alice@acme.com"
        outcomes[(root.attrs["user.id"] == "alice@acme.com", evidence_kind(trace) is not None)] += 1
    assert outcomes[(True, True)] == 0  # the owner never sees a failure
    assert outcomes[(True, False)] > 0
    assert outcomes[(False, True)] > outcomes[(False, False)] / 2


def test_each_convention_is_present(sent: Sent) -> None:
    names = {g.span.name for g in sent.spans}
    assert {"agent_run", "chat", "mcp", "invoke_agent it-helpdesk", "invoke_agent hr-policy"} <= names
    assert {"AgentExecutor", "ChatAnthropic", "VectorStoreRetriever"} <= names
    mcp_calls = [
        g for g in sent.spans if g.attrs.get("mcp.method.name") == "tools/call" and g.service == "it-helpdesk"
    ]
    assert all(g.span.name == f"tools/call {g.attrs['gen_ai.tool.name']}" for g in mcp_calls)
    assert all(g.attrs["jsonrpc.request.id"] for g in mcp_calls)
    kinds = {g.attrs.get("openinference.span.kind") for g in sent.spans} - {None}
    assert kinds == {"AGENT", "RETRIEVER", "LLM", "TOOL"}
    providers = {
        str(p)
        for g in sent.spans
        for p in (
            g.attrs.get("gen_ai.provider.name"),
            g.attrs.get("gen_ai.system"),
            g.attrs.get("llm.provider"),
        )
        if p
    }
    assert providers == {"openai", "anthropic", "gcp.vertex_ai"}
    llm_with_tokens = [g for g in sent.spans if g.span.name.startswith("chat ") and not g.is_error]
    assert all(g.attrs["gen_ai.usage.input_tokens"] > 0 for g in llm_with_tokens)
    assert all(json.loads(g.attrs["gen_ai.input.messages"]) for g in llm_with_tokens)


def _is_llm(got: Got) -> bool:
    return got.span.name in ("chat", "ChatAnthropic") or got.span.name.startswith("chat ")


def _is_tool(got: Got) -> bool:
    return (
        got.span.name == "mcp"
        or got.attrs.get("openinference.span.kind") == "TOOL"
        or (got.span.name.startswith("tools/call "))
    )


def test_timestamps_and_durations_are_realistic(sent: Sent) -> None:
    assert min(g.span.start_time_unix_nano for g in sent.spans) >= END_NS - TWO_HOURS_NS
    assert max(g.span.end_time_unix_nano for g in sent.spans) <= END_NS
    for got in sent.spans:
        if _is_llm(got) and got.exception_types() == ["TimeoutError"]:
            assert 30_000 <= got.duration_ms <= 30_250
        elif _is_llm(got):
            assert 300 <= got.duration_ms <= 4_000
        elif _is_tool(got):
            assert 50 <= got.duration_ms <= 2_000
    for trace in traces_of(sent.spans).values():
        root = root_of(trace)
        assert all(root.span.start_time_unix_nano <= g.span.start_time_unix_nano for g in trace)
        assert all(g.span.end_time_unix_nano <= root.span.end_time_unix_nano for g in trace)


def test_exceptions_are_recorded_where_a_client_would_raise(sent: Sent) -> None:
    exception_types = Counter(t for g in sent.spans for t in g.exception_types())
    assert set(exception_types) == {
        "TimeoutError",
        "openai.RateLimitError",
        "anthropic.RateLimitError",
        "anthropic.BadRequestError",
        "openai.BadRequestError",
        "glean.connectors.ConnectorAuthError",
    }
    for trace in traces_of(sent.spans).values():
        recorded = [t for g in trace for t in g.exception_types()]
        # a failed run always carries the exception that ended it; a degraded one raised nothing
        assert bool(recorded) == root_of(trace).is_error


# ---------------------------------------------------------------------------------------------
# Protocols, determinism, failures


def test_grpc_sends_the_same_spans_as_http() -> None:
    with http_endpoint() as (url, http_sink):
        over_http = run_demo(url, protocol="http", runs=60, seed=11, start_time_ns=END_NS)
    with grpc_endpoint() as (url, grpc_sink):
        over_grpc = run_demo(
            url,
            protocol="grpc",
            runs=60,
            seed=11,
            start_time_ns=END_NS,
            headers={"Authorization": "Bearer g"},
        )
    assert over_grpc == over_http
    assert len(spans_of(grpc_sink)) == over_grpc.spans
    assert len(traces_of(spans_of(grpc_sink))) == 60
    assert {h["authorization"] for h in grpc_sink.headers} == {"Bearer g"}
    # Without a tenant, each agent's spans name its own company.
    tenants = {(g.service, g.resource["agentwatch.tenant"]) for g in spans_of(grpc_sink)}
    assert tenants == {
        ("expense-bot", "acme"),
        ("it-helpdesk", "acme"),
        ("hr-policy", "acme"),
        ("sales-research", "globex"),
    }
    assert over_grpc.tenants == ("acme", "globex")
    assert canonical(grpc_sink) == canonical(http_sink)


def test_same_seed_same_spans_other_seed_other_spans() -> None:
    sinks = []
    for seed in (3, 3, 4):
        with http_endpoint() as (url, sink):
            run_demo(url, protocol="http", runs=40, seed=seed, start_time_ns=END_NS)
        sinks.append(sink)
    assert canonical(sinks[0]) == canonical(sinks[1])
    assert len(canonical(sinks[0])) == len(spans_of(sinks[0]))
    assert canonical(sinks[0]) != canonical(sinks[2])


def test_a_later_demo_uses_new_ids() -> None:
    # The receiver deduplicates on (trace_id, span_id): a second demo an hour later must not collide.
    sinks = []
    for end in (END_NS, END_NS + 3600 * 1_000_000_000):
        with http_endpoint() as (url, sink):
            run_demo(url, protocol="http", runs=20, seed=7, start_time_ns=end)
        sinks.append(sink)
    first, second = ({g.span.trace_id for g in spans_of(s)} for s in sinks)
    assert len(first) == 20
    assert first.isdisjoint(second)


def test_rejected_export_raises_a_runtime_error() -> None:
    started = time.monotonic()
    with (
        http_endpoint(status=400) as (url, sink),
        pytest.raises(RuntimeError, match="could not send") as caught,
    ):
        run_demo(url, protocol="http", runs=10, seed=1, start_time_ns=END_NS)
    assert isinstance(caught.value, DemoExportError)
    assert sink.requests == []
    assert time.monotonic() - started < 10


def test_pacing_spreads_runs_over_time() -> None:
    calls: list[int] = []
    started = time.monotonic()
    with http_endpoint() as (url, sink):
        summary = run_demo(
            url, protocol="http", runs=5, rate_per_s=20, start_time_ns=END_NS, progress=calls.append
        )
    assert time.monotonic() - started >= 4 / 20
    assert calls == [1, 2, 3, 4, 5]
    assert len(spans_of(sink)) == summary.spans


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"protocol": "udp"}, "protocol"),
        ({"runs": -1}, "runs"),
        ({"rate_per_s": 0.0}, "rate_per_s"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_demo("http://127.0.0.1:1", **kwargs)


def test_no_server_listening_is_said_as_such() -> None:
    from tests.helpers.server import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(DemoExportError) as info:
        run_demo(endpoint, runs=2)
    assert str(info.value) == (
        f"no server is reachable at {endpoint} (connection refused): start one with "
        "`agentwatch serve` (or `make run`) first, or pass --endpoint"
    )


def test_demo_target_reads_the_endpoint_and_each_tenants_token() -> None:
    from agentwatch.config import parse_config
    from agentwatch.demo_target import DemoTargetError, demo_target

    config = parse_config(
        """
receivers:
  otlp:
    auth:
      tokens:
        - {token: acme-token-0123456789abcdef, tenant: acme}
        - {token: globex-token-0123456789abcdef, tenant: globex}
    protocols:
      grpc: {endpoint: "0.0.0.0:14317"}
      http: {endpoint: "127.0.0.1:14318"}
""",
        "agentwatch.yaml",
    )
    assert demo_target(config, "grpc", None) == (
        "http://127.0.0.1:14317",
        {
            "acme": {"Authorization": "Bearer acme-token-0123456789abcdef"},
            "globex": {"Authorization": "Bearer globex-token-0123456789abcdef"},
        },
    )
    assert demo_target(config, "http", "globex") == (
        "http://127.0.0.1:14318",
        {"globex": {"Authorization": "Bearer globex-token-0123456789abcdef"}},
    )
    with pytest.raises(DemoTargetError) as missing:
        demo_target(config, "grpc", "initech")
    assert str(missing.value) == (
        "receivers.otlp.auth has no ingest token for tenant 'initech': "
        "add one, or pass --tenant with a tenant that has one"
    )
    open_config = parse_config("receivers:\n  otlp:\n    protocols:\n      http: {}\n", "open.yaml")
    assert demo_target(open_config, "http", None) == ("http://127.0.0.1:4318", {})
    with pytest.raises(DemoTargetError, match=r"no OTLP receiver with grpc enabled"):
        demo_target(open_config, "grpc", None)


# ---------------------------------------------------------------------------------------------
# The runs' users' feedback, posted to the API


class _FeedbackApi(ThreadingHTTPServer):
    """``POST /api/v1/feedback`` as agentwatch answers it: every item accepted under the tenant
    the items name, or ``status`` with an error."""

    def __init__(self, status: int) -> None:
        super().__init__(("127.0.0.1", 0), _FeedbackHandler)
        self.status = status
        self.posts: list[tuple[str, dict[str, str], list[dict[str, Any]]]] = []


class _FeedbackHandler(BaseHTTPRequestHandler):
    server: _FeedbackApi

    def do_POST(self) -> None:
        items = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.posts.append((self.path, {k.lower(): v for k, v in self.headers.items()}, items))
        ok = self.server.status == 200
        reply = json.dumps({"accepted": len(items), "tenant": items[0]["tenant"]} if ok else {"error": "no"})
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply.encode())

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def feedback_api(status: int = 200) -> Iterator[tuple[str, _FeedbackApi]]:
    server = _FeedbackApi(status)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_seed_7_feedback_is_pinned() -> None:
    from agentwatch.demo_scenarios import plan_runs
    from agentwatch.demo_scenarios.catalog import DEGRADING
    from agentwatch.demo_scenarios.feedback import plan_feedback

    plans = plan_runs(200, 7, END_NS)
    rated = plan_feedback(plans, 7)
    assert plan_feedback(plans, 7) == rated  # from the seed alone

    def outcome(index: int) -> str:
        failure = plans[index].failure
        return "success" if failure is None else "degraded" if failure in DEGRADING else "failure"

    # A golden value, as the runs' summary is: 29 pieces on 200 runs, most of them on failures.
    assert Counter((outcome(f.index), f.value) for f in rated) == {
        ("failure", "down"): 13, ("failure", 1): 1, ("failure", 2): 1,
        ("degraded", "down"): 3, ("degraded", 2): 1,
        ("success", "up"): 5, ("success", 4): 3, ("success", "down"): 2,
    }  # fmt: skip
    assert (sum(f.negative for f in rated), sum(f.comment is not None for f in rated)) == (21, 20)
    assert all(20 <= f.delay_s <= 600 for f in rated)
    # expense-bot's users rate its auth failures down, and say so.
    expense = [f for f in rated if plans[f.index].agent.name == "expense-bot" and f.negative]
    assert Counter(plans[f.index].failure for f in expense) == {"auth_failed": 10, None: 1}
    assert Counter(f.comment for f in expense) == {
        None: 3, "failed again, I'll file it by hand": 4, "it never filed my expense": 2,
        "says it is not authorized to reach Concur - works for Alice though?": 1, "that is not what I asked": 1,
    }  # fmt: skip


def test_feedback_is_posted_for_the_runs_sent_under_each_tenant() -> None:
    from agentwatch.demo_scenarios import plan_runs
    from agentwatch.demo_scenarios.feedback import plan_feedback

    tokens = {"acme": {"Authorization": "Bearer a"}, "globex": {"Authorization": "Bearer g"}}
    with http_endpoint() as (url, sink), feedback_api() as (api, server):
        summary = run_demo(
            url, protocol="http", runs=60, seed=11, start_time_ns=END_NS, tenant_headers=tokens, api=api
        )
    plans = plan_runs(60, 11, END_NS)
    rated = plan_feedback(plans, 11)
    assert (
        (summary.feedback, summary.negative_feedback)
        == (8, 6)
        == (len(rated), sum(f.negative for f in rated))
    )
    # One request per tenant, with that tenant's token, every item naming it.
    assert [(path, headers["authorization"], {i["tenant"] for i in items}, len(items))
            for path, headers, items in server.posts] == [
        ("/api/v1/feedback", "Bearer a", {"acme"}, 6), ("/api/v1/feedback", "Bearer g", {"globex"}, 2),
    ]  # fmt: skip
    posted = {item["trace_id"]: item for _, _, items in server.posts for item in items}
    roots = {root.span.trace_id.hex(): root for root in map(root_of, traces_of(spans_of(sink)).values())}
    for piece in rated:
        plan = plans[piece.index]
        (trace_id,) = [t for t, r in roots.items() if r.span.start_time_unix_nano == plan.start_ns]
        root = roots[trace_id]
        given = min(root.span.end_time_unix_nano + round(piece.delay_s * 1e9), END_NS)
        expected = {
            "id": f"demo-{trace_id}", "trace_id": trace_id, "user_id": plan.user, "value": piece.value,
            "time": datetime.fromtimestamp(given / 1e9, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "tenant": root.resource["agentwatch.tenant"], "metadata": {"agentwatch.demo": True},
        }  # fmt: skip
        if piece.comment is not None:
            expected["comment"] = piece.comment
        assert posted.pop(trace_id) == expected
        assert root.attrs["user.id"] == plan.user
    assert posted == {}


def test_feedback_the_api_refuses_fails_the_demo_saying_so() -> None:
    with (
        http_endpoint() as (url, sink),
        feedback_api(401) as (api, server),
        pytest.raises(DemoExportError) as refused,
    ):
        run_demo(url, protocol="http", runs=60, seed=11, start_time_ns=END_NS, api=api)
    assert str(refused.value) == (
        f'the spans were sent, but not the users\' feedback: {api}/api/v1/feedback answered HTTP 401: {{"error": "no"}}'
    )
    assert len(traces_of(spans_of(sink))) == 60
    assert len(server.posts) == 1  # a 401 is final: not retried


def test_no_api_listening_is_said_before_any_span_is_sent() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        api = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with http_endpoint() as (url, sink), pytest.raises(DemoExportError) as refused:
        run_demo(url, protocol="http", runs=10, seed=1, start_time_ns=END_NS, api=api)
    assert str(refused.value) == (
        f"no server is reachable at {api} for the users' feedback (connection refused): "
        "pass the server's API with --api, or --no-feedback"
    )
    assert sink.requests == []
