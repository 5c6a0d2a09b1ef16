"""Soak test: mixed hostile load for --minutes against one server, kill -9 every few minutes.

All at once, against one data directory (the server is restarted on the same ports after every
kill, as a supervisor would):

- steady OTLP clients: gRPC, and HTTP with protobuf, gzip, JSON and gzip'd JSON bodies; every
  request has unique ids and is retried (the same body) on refusals, timeouts and connection
  errors until acknowledged, like an OTLP exporter;
- impatient gRPC clients with 5-50 ms deadlines that give up, retry the same request a little
  later, and sometimes abandon it (those spans may be durable without being acknowledged:
  stored at most once);
- poison records: spans with times >= 2**63 among good ones (a partial success: the good ones
  acknowledged and stored, the poison never);
- odd dates: requests whose spans fall on hundreds of different days, decades old and ahead
  (those days ahead are past ``max_future_skew``: rejected at the door, a partial success);
- idle connections: a few hundred raw TCP sockets held open on the HTTP and gRPC ports (silent,
  half a request line, an HTTP/2 preface), reopened whenever the server closes them;
- large requests of several MiB now and then (two threads, so they sometimes overlap);
- ``kill -9`` of the server every --kill-every seconds (jittered +-50%), then a restart.

RSS is sampled throughout (server process, each converter worker, the compaction worker, the
whole tree; also the kernel's high-water mark of the server process). At the end the server is
stopped with SIGTERM (exit 0 expected) and the catalog checked: every acknowledged span stored
exactly once, no span stored twice, no poison stored; if duplicates remain, compaction is run to
a fixed point and everything is checked again. The memory bound is the one
``tests/agentwatch/test_memory_bound.py`` checks, computed from this run's config.

    .venv/bin/python bench/soak.py                              # 30 minutes, kill -9 every ~3
    .venv/bin/python bench/soak.py --minutes 3 --kill-every 45  # a quick look

Exits 1 if any check fails. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import random
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import grpc
import httpx
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.memory import TreeSampler
from receiver.otlp.otlp_json import request_to_json
from storage.catalog import connect
from storage.compaction.compactor import CompactionConfig, Compactor
from tests.helpers.server import ServerProcess

MIB = 1 << 20
DAY_NS = 86_400 * 10**9
HOUR_NS = 3_600 * 10**9
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
TENANTS = ("acme", "globex", "initech")
MODELS = ("gpt-4o", "claude-sonnet-4", "gemini-2.5-pro")
TOOLS = ("search_docs", "create_ticket", "lookup_user")
GIVE_UP_S = 180.0
"""A steady client gives up on a request the server has not taken in this long (a failure)."""

# The server's budgets for this run: small enough that overload and the bound are exercised.
QUEUE_MIB, DECODING_MIB, BATCH_MIB, BATCH_SPANS, WORKERS = 64, 32, 8, 5000, 2
DEDUP_WINDOW = 1_000_000
SHUTDOWN_TIMEOUT_S = 30
BODY_LIMIT_MIB = 16


def storage_config(compaction_mib: float) -> str:
    """This run's ``storage:`` keys (budgets small enough that overload and the bound are exercised)."""
    return f"""  max_queue_mib: {QUEUE_MIB}
  max_decoding_mib: {DECODING_MIB}
  max_batch_mib: {BATCH_MIB}
  max_batch_spans: {BATCH_SPANS}
  converter_workers: {WORKERS}
  dedup_window_spans: {DEDUP_WINDOW}
  shutdown_timeout: {SHUTDOWN_TIMEOUT_S}s
  compaction:
    interval: 20s
    grace: 10s
    memory_limit_mib: {compaction_mib}"""


WORKER_GROWTH_MIB = 160
"""What a converter worker may grow by converting max_batch_spans (5,000) spans at a time, as in
tests/agentwatch/test_memory_bound.py."""
SLACK_MIB = 64


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- requests ------------------------------------------------------------------------------------
def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def build(
    rng: random.Random,
    prefix: bytes,
    tenant: str,
    spans: int,
    start_ns: Callable[[], int],
    poison: int = 0,
) -> ExportTraceServiceRequest:
    """Agent runs of agent_run + 2 chat + mcp spans; trace ids start with ``prefix`` (6 bytes:
    the client and the request's number), span ids end with the span's index, so every id is
    unique. ``poison`` spans (times past int64) are mixed in at random places."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([_kv("service.name", "soak-agent"), _kv("tenant.id", tenant)])
    ss = rs.scope_spans.add()
    ss.scope.name = "soak"
    out: list[Span] = []
    trace_no = 0
    while len(out) < spans:
        trace = prefix + trace_no.to_bytes(2, "big") + rng.randbytes(8)
        trace_no += 1
        root = b""
        start = start_ns()
        user = f"user{rng.randrange(500)}@acme.com"
        for i, kind in enumerate(("agent_run", "chat", "chat", "mcp")):
            if len(out) == spans:
                break
            span = Span(trace_id=trace, name=kind, kind=Span.SPAN_KIND_INTERNAL)
            span.span_id = rng.randbytes(6) + (len(out) + 1).to_bytes(2, "big")
            if i == 0:
                root = span.span_id
            else:
                span.parent_span_id = root
            span.start_time_unix_nano = start + i * 1_000_000
            span.end_time_unix_nano = span.start_time_unix_nano + rng.randrange(1, 3000) * 1_000_000
            attrs: list[KeyValue] = [
                _kv("user.id", user),
                _kv("gen_ai.agent.id", f"agent-{rng.randrange(20)}"),
            ]
            if kind == "chat":
                attrs += [
                    _kv("gen_ai.operation.name", "chat"),
                    _kv("gen_ai.provider.name", "openai"),
                    _kv("gen_ai.request.model", rng.choice(MODELS)),
                    _kv("gen_ai.usage.input_tokens", rng.randrange(4000)),
                    _kv("gen_ai.usage.output_tokens", rng.randrange(800)),
                ]
            elif kind == "mcp":
                attrs += [_kv("mcp.method.name", "tools/call"), _kv("gen_ai.tool.name", rng.choice(TOOLS))]
            else:
                attrs += [_kv("gen_ai.operation.name", "invoke_agent")]
            span.attributes.extend(attrs)
            out.append(span)
    for _ in range(poison):
        span = Span(trace_id=prefix + b"\xff\xff" + rng.randbytes(8), name="poison")
        span.span_id = rng.randbytes(7) + b"\x01"
        late = rng.choice([1 << 63, (1 << 63) + rng.randrange(1 << 62), (1 << 64) - 1])
        if rng.random() < 0.5:
            span.start_time_unix_nano, span.end_time_unix_nano = late, late
        else:  # a sane start, an end past int64
            span.start_time_unix_nano, span.end_time_unix_nano = time.time_ns(), late
        out.insert(rng.randrange(len(out) + 1), span)
    ss.spans.extend(out)
    return req


def odd_days(rng: random.Random) -> list[int]:
    """Day offsets from today: 400 between 25 years ago and yesterday, 200 up to 80 years ahead."""
    return rng.sample(range(-9000, 0), 400) + rng.sample(range(2, 29000), 200)


# -- the ledger ----------------------------------------------------------------------------------
@dataclass
class Entry:
    client: str
    tenant: str
    prefix: str
    good: int
    poison: int
    acked: bool = False
    abandoned: str = ""


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    max_ack_s: float = 0.0
    grpc_body_max: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n

    def refused(self, reason: str) -> None:
        with self.lock:
            self.refusals[reason] += 1

    def problem(self, text: str) -> None:
        with self.lock:
            if len(self.problems) < 200:
                self.problems.append(text)
            self.counts["problems"] += 1


class Outcome(NamedTuple):
    status: str  # ok | retry | fatal
    rejected: int = 0
    detail: str = ""
    retry_after: float = 0.0


# Codes a client must not retry: the server judged the request itself invalid.
PERMANENT_GRPC = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.FAILED_PRECONDITION,
}
RETRYABLE_HTTP = {408, 429, 500, 502, 503, 504}


class Transports:
    """One gRPC channel and one HTTP client per load thread; every call has a timeout."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{server.grpc_port}",
            options=[
                ("grpc.max_send_message_length", 64 * MIB),
                ("grpc.max_receive_message_length", 64 * MIB),
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
                ("grpc.enable_retries", 0),
            ],
        )
        self.export = self.channel.unary_unary(EXPORT)
        self.http = httpx.Client(timeout=httpx.Timeout(15.0, connect=3.0))

    def close(self) -> None:
        self.channel.close()
        self.http.close()

    def grpc(self, body: bytes, timeout: float) -> Outcome:
        try:
            answer = ExportTraceServiceResponse.FromString(self.export(body, timeout=timeout))
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            detail = f"grpc {code.name}"
            if code in PERMANENT_GRPC:
                return Outcome("fatal", detail=f"{detail}: {exc.details()}")  # type: ignore[attr-defined]
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                trailers = dict(exc.trailing_metadata() or ())  # type: ignore[attr-defined]
                if "grpc-status-details-bin" not in trailers:  # no RetryInfo: too large
                    return Outcome("fatal", detail=f"{detail}: {exc.details()}")  # type: ignore[attr-defined]
            return Outcome("retry", detail=detail)
        return Outcome("ok", answer.partial_success.rejected_spans)

    def http_post(self, body: bytes, content_type: str, gzipped: bool) -> Outcome:
        headers = {"content-type": content_type}
        if gzipped:
            headers["content-encoding"] = "gzip"
        try:
            r = self.http.post(self.server.http_url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return Outcome("retry", detail=f"http {type(exc).__name__}")
        if r.status_code == 200:
            try:
                if content_type == "application/json":
                    partial = json.loads(r.content or b"{}").get("partialSuccess", {})
                    return Outcome("ok", int(partial.get("rejectedSpans", 0)))
                return Outcome(
                    "ok", ExportTraceServiceResponse.FromString(r.content).partial_success.rejected_spans
                )
            except Exception as exc:  # an answer we cannot read: the request was still taken
                return Outcome("ok", -1, detail=f"unreadable 200 answer: {exc}")
        if r.status_code in RETRYABLE_HTTP:
            try:
                after = float(r.headers.get("retry-after", "0"))
            except ValueError:
                after = 0.0
            return Outcome("retry", detail=f"http {r.status_code}", retry_after=after)
        return Outcome("fatal", detail=f"http {r.status_code}: {r.text[:200]}")


# -- load threads --------------------------------------------------------------------------------
class Soak:
    def __init__(self, server: ServerProcess, seed: int) -> None:
        self.server = server
        self.seed = seed
        self.stats = Stats()
        self.ledger: dict[str, Entry] = {}
        self.ledger_lock = threading.Lock()
        self.ending = threading.Event()  # no new requests
        self.halt = threading.Event()  # stop retrying at once
        self.today = time.time_ns() // DAY_NS * DAY_NS

    def record(self, entry: Entry) -> None:
        with self.ledger_lock:
            self.ledger[entry.prefix] = entry


class LoadThread(threading.Thread):
    """Sends requests until the soak ends; a request is retried until acknowledged."""

    def __init__(self, soak: Soak, cid: int, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.soak, self.cid = soak, cid
        self.rng = random.Random(f"{soak.seed}-{name}")
        self.number = 0
        self.tenant = TENANTS[cid % len(TENANTS)]
        self.crashed: str | None = None

    def next_prefix(self) -> bytes:
        self.number += 1
        return self.cid.to_bytes(2, "big") + self.number.to_bytes(4, "big")

    def run(self) -> None:
        transports = Transports(self.soak.server)
        try:
            while not self.soak.ending.is_set():
                self.one(transports)
        except Exception:
            self.crashed = traceback.format_exc()
            self.soak.stats.problem(f"{self.name} crashed:\n{self.crashed}")
        finally:
            transports.close()

    def one(self, transports: Transports) -> None:
        raise NotImplementedError

    def pause(self, low: float, high: float) -> None:
        self.soak.ending.wait(self.rng.uniform(low, high))

    def new_entry(self, req: ExportTraceServiceRequest, prefix: bytes, good: int, poison: int) -> Entry:
        entry = Entry(self.name, self.tenant, prefix.hex(), good, poison)
        self.soak.record(entry)
        return entry

    def send(self, transports: Transports, body: bytes, how: str, timeout: float) -> Outcome:
        if how == "grpc":
            stats = self.soak.stats
            with stats.lock:
                stats.grpc_body_max[self.name] = max(stats.grpc_body_max.get(self.name, 0), len(body))
            return transports.grpc(body, timeout)
        content_type = "application/json" if how.startswith("json") else "application/x-protobuf"
        return transports.http_post(body, content_type, how.endswith("gzip"))

    def acknowledged(self, entry: Entry, outcome: Outcome, started: float) -> None:
        stats = self.soak.stats
        entry.acked = True
        stats.add("requests_acked")
        stats.add("spans_acked", entry.good)
        if outcome.rejected:
            stats.add("partial_successes")
        if outcome.rejected != entry.poison:
            stats.problem(
                f"{self.name} request {entry.prefix}: partial success said {outcome.rejected} rejected, "
                f"{entry.poison} poison spans were sent {outcome.detail}"
            )
        with stats.lock:
            stats.max_ack_s = max(stats.max_ack_s, time.monotonic() - started)

    def deliver(
        self, transports: Transports, entry: Entry, body: bytes, how: str, timeout: float = 15.0
    ) -> None:
        """Like an OTLP exporter: the same body again on refusals and errors, with backoff."""
        stats = self.soak.stats
        started = time.monotonic()
        backoff = 0.1
        while True:
            outcome = self.send(transports, body, how, timeout)
            stats.add("attempts")
            if outcome.status == "ok":
                self.acknowledged(entry, outcome, started)
                return
            if outcome.status == "fatal":
                entry.abandoned = outcome.detail
                stats.problem(
                    f"{self.name} request {entry.prefix} ({how}, {len(body)} B) refused for good: "
                    f"{outcome.detail}"
                )
                return
            stats.refused(outcome.detail)
            if time.monotonic() - started > GIVE_UP_S:
                entry.abandoned = "gave up"
                stats.problem(f"{self.name} request {entry.prefix}: not taken in {GIVE_UP_S:.0f} s")
                return
            wait = min(5.0, max(outcome.retry_after, backoff * self.rng.uniform(0.5, 1.5)))
            backoff = min(backoff * 2, 2.0)
            if self.soak.halt.wait(wait):
                entry.abandoned = "halted"
                return


HTTP_KINDS = ("proto", "proto", "gzip", "gzip", "json", "json+gzip")


def encode(req: ExportTraceServiceRequest, how: str) -> bytes:
    body = request_to_json(req) if how.startswith("json") else req.SerializeToString()
    return gzip.compress(body, compresslevel=1) if how.endswith("gzip") else body


class Steady(LoadThread):
    def __init__(self, soak: Soak, cid: int, name: str, protocol: str, spans: int = 200) -> None:
        super().__init__(soak, cid, name)
        self.protocol, self.spans = protocol, spans

    def one(self, transports: Transports) -> None:
        prefix = self.next_prefix()
        now = time.time_ns()
        req = build(self.rng, prefix, self.tenant, self.spans, lambda: now - self.rng.randrange(HOUR_NS))
        how = "grpc" if self.protocol == "grpc" else self.rng.choice(HTTP_KINDS)
        entry = self.new_entry(req, prefix, self.spans, 0)
        self.deliver(transports, entry, encode(req, how), how)
        self.pause(0.02, 0.15)


class Impatient(LoadThread):
    """gRPC with 5-50 ms deadlines: gives up, retries later, sometimes abandons the request."""

    def one(self, transports: Transports) -> None:
        prefix = self.next_prefix()
        now = time.time_ns()
        req = build(self.rng, prefix, self.tenant, 100, lambda: now - self.rng.randrange(HOUR_NS))
        entry = self.new_entry(req, prefix, 100, 0)
        body = req.SerializeToString()
        stats = self.soak.stats
        started = time.monotonic()
        for _ in range(3):
            outcome = self.send(transports, body, "grpc", self.rng.uniform(0.005, 0.05))
            stats.add("impatient_attempts")
            if outcome.status == "ok":
                self.acknowledged(entry, outcome, started)
                break
            stats.add("impatient_gave_up")
            if self.soak.ending.wait(self.rng.uniform(0.05, 1.0)):
                break
        else:
            if self.rng.random() < 0.5:
                entry.abandoned = "impatient"
                stats.add("impatient_abandoned")
            else:
                self.deliver(transports, entry, body, "grpc", timeout=10.0)
        if not entry.acked and not entry.abandoned:
            entry.abandoned = "impatient"
            stats.add("impatient_abandoned")
        self.pause(0.05, 0.3)


class Poison(LoadThread):
    def one(self, transports: Transports) -> None:
        prefix = self.next_prefix()
        poison = self.rng.randint(1, 3)
        now = time.time_ns()
        req = build(self.rng, prefix, self.tenant, 50, lambda: now - self.rng.randrange(HOUR_NS), poison)
        how = self.rng.choice(("grpc", *HTTP_KINDS))
        entry = self.new_entry(req, prefix, 50, poison)
        self.soak.stats.add("poison_sent", poison)
        self.deliver(transports, entry, encode(req, how), how)
        self.pause(0.2, 1.0)


class OddDates(LoadThread):
    def __init__(self, soak: Soak, cid: int, name: str) -> None:
        super().__init__(soak, cid, name)
        self.days = odd_days(self.rng)

    def one(self, transports: Transports) -> None:
        prefix = self.next_prefix()
        chosen = self.rng.sample(self.days, 75)  # a day per trace of 4 spans
        days = iter(chosen)
        today = self.soak.today

        def start() -> int:
            return today + next(days, 0) * DAY_NS + self.rng.randrange(DAY_NS - HOUR_NS)

        req = build(self.rng, prefix, self.tenant, 300, start)
        how = self.rng.choice(("grpc", *HTTP_KINDS))
        ahead = 4 * sum(day > 0 for day in chosen)  # days ahead are 2 or more: past max_future_skew
        entry = self.new_entry(req, prefix, 300 - ahead, ahead)
        self.deliver(transports, entry, encode(req, how), how)
        self.pause(0.5, 2.0)


class Large(LoadThread):
    """Every 10-40 s, a request of --large-spans spans (several MiB), gRPC or gzip'd HTTP."""

    def __init__(self, soak: Soak, cid: int, name: str, spans: int) -> None:
        super().__init__(soak, cid, name)
        now = time.time_ns()
        self.template = build(
            self.rng, bytes(6), self.tenant, spans, lambda: now - self.rng.randrange(HOUR_NS)
        )
        self.spans = spans
        self.size = len(self.template.SerializeToString())

    def one(self, transports: Transports) -> None:
        self.pause(10, 40)
        if self.soak.ending.is_set():
            return
        prefix = self.next_prefix()
        req = ExportTraceServiceRequest()
        req.CopyFrom(self.template)
        for span in req.resource_spans[0].scope_spans[0].spans:
            span.trace_id = prefix + span.trace_id[6:]
        how = self.rng.choice(("grpc", "proto", "gzip"))
        entry = self.new_entry(req, prefix, self.spans, 0)
        self.soak.stats.add("large_requests")
        self.deliver(transports, entry, encode(req, how), how, timeout=60.0)


class IdleConnections(threading.Thread):
    """Raw sockets on the OTLP ports, left idle; whatever the server closes is opened again."""

    def __init__(self, soak: Soak, per_port: int) -> None:
        super().__init__(name="idle", daemon=True)
        self.soak, self.per_port = soak, per_port
        self.rng = random.Random(f"{soak.seed}-idle")
        self.stop = threading.Event()
        self.socks: dict[socket.socket, str] = {}
        self.opened = self.closed_by_server = self.connect_failures = self.churned = 0
        self.max_open = 0

    def open_one(self, port_kind: str) -> None:
        server = self.soak.server
        port = server.http_port if port_kind == "http" else server.grpc_port
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=1.0)
        except OSError:
            self.connect_failures += 1
            return
        try:
            style = self.rng.random()
            if port_kind == "http" and style < 0.4:
                sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
            elif port_kind == "grpc" and style < 0.5:
                sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")  # the preface, then silence
            sock.setblocking(False)
        except OSError:
            sock.close()
            self.connect_failures += 1
            return
        self.socks[sock] = port_kind
        self.opened += 1

    def drop(self, sock: socket.socket) -> None:
        self.socks.pop(sock, None)
        sock.close()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                for kind in ("http", "grpc"):
                    missing = self.per_port - sum(1 for k in self.socks.values() if k == kind)
                    for _ in range(min(missing, 50)):  # at most 50 a second per port
                        self.open_one(kind)
                self.max_open = max(self.max_open, len(self.socks))
                if self.socks:
                    readable, _, _ = select.select(list(self.socks), [], [], 0)
                    for sock in readable:
                        try:
                            data = sock.recv(65536)
                        except OSError:
                            data = b""
                        if not data:
                            self.closed_by_server += 1
                            self.drop(sock)
                for sock in self.rng.sample(list(self.socks), k=len(self.socks) // 50):
                    self.churned += 1
                    self.drop(sock)  # a client that gave up on its connection
                self.stop.wait(1.0)
        except Exception:
            self.soak.stats.problem(f"idle connections thread crashed:\n{traceback.format_exc()}")
        finally:
            for sock in list(self.socks):
                self.drop(sock)


# -- memory --------------------------------------------------------------------------------------
def _hwm(pid: int) -> int:
    """The kernel's peak RSS of ``pid`` (VmHWM), in bytes; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def idle_compaction_worker() -> int:
    """Peak RSS of a compaction worker given nothing to do (its interpreter and libraries)."""
    job = {"data_dir": "/nonexistent", "tmp_dir": "/nonexistent", "memory_limit_mib": 64, "tasks": []}
    proc = subprocess.Popen(
        [sys.executable, "-m", "storage.compaction.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(job).encode())
    proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss * 1024  # KiB on Linux


def child_kind(proc: psutil.Process) -> str:
    try:
        cmdline = " ".join(proc.cmdline())
    except psutil.Error:
        return "other"
    if "storage.compaction.worker" in cmdline:
        return "compaction"
    if "multiprocessing.spawn" in cmdline or "spawn_main" in cmdline:
        return "converter"
    return "other"


class SoakSampler(TreeSampler):
    """TreeSampler that follows the server across restarts and tells its children apart."""

    def __init__(self, pid: int) -> None:
        super().__init__(pid)
        self.main_hwm = 0
        self.peaks: Counter[str] = Counter()  # converter / compaction / other: the largest seen
        self.kinds: dict[int, str] = {}

    def attach(self, pid: int) -> None:
        self.proc = psutil.Process(pid)

    def run(self) -> None:
        while self.running:
            proc = self.proc
            try:
                main = proc.memory_info().rss
                children = proc.children(recursive=True)
                sizes = []
                for child in children:
                    try:
                        rss = child.memory_info().rss
                    except psutil.Error:
                        continue
                    kind = self.kinds.get(child.pid) or self.kinds.setdefault(child.pid, child_kind(child))
                    self.peaks[kind] = max(self.peaks[kind], rss, _hwm(child.pid))
                    sizes.append(rss)
            except psutil.Error:
                time.sleep(0.05)
                continue
            self.main = max(self.main, main)
            self.main_hwm = max(self.main_hwm, _hwm(proc.pid))
            self.child = max(self.child, max(sizes, default=0))
            self.tree = max(self.tree, main + sum(sizes))
            time.sleep(0.05)


# -- verification ----------------------------------------------------------------------------------
def ledger_table(ledger: list[Entry]) -> pa.Table:
    return pa.table(
        {
            "prefix": [e.prefix for e in ledger],
            "tenant": [e.tenant for e in ledger],
            "client": [e.client for e in ledger],
            "good": [e.good for e in ledger],
            "poison": [e.poison for e in ledger],
            "acked": [e.acked for e in ledger],
            "abandoned": [e.abandoned for e in ledger],
        }
    )


def verify(data_dir: Path, table: pa.Table) -> dict[str, int]:
    """Compare what is stored with what was acknowledged (requests are told apart by the first
    six bytes of their trace ids)."""
    con = connect(data_dir)
    con.register("ledger", table)
    con.execute(
        """CREATE TEMP TABLE stored AS
           SELECT substr(trace_id, 1, 12) AS prefix, tenant, count(*) AS n_rows,
                  count(DISTINCT (trace_id, span_id)) AS n_keys
           FROM spans WHERE name <> 'poison' GROUP BY ALL"""
    )
    (lost, lost_requests, unacked_stored, unacked_partial, unacked_requests) = con.execute(
        """SELECT
             coalesce(sum(CASE WHEN l.acked THEN greatest(l.good - coalesce(s.n_keys, 0), 0) END), 0),
             count(*) FILTER (WHERE l.acked AND coalesce(s.n_keys, 0) < l.good),
             count(*) FILTER (WHERE NOT l.acked AND s.n_keys = l.good),
             count(*) FILTER (WHERE NOT l.acked AND s.n_keys > 0 AND s.n_keys < l.good),
             count(*) FILTER (WHERE NOT l.acked)
           FROM ledger l LEFT JOIN stored s ON s.prefix = l.prefix AND s.tenant = l.tenant"""
    ).fetchall()[0]
    (unknown,) = con.execute(
        """SELECT coalesce(sum(s.n_rows), 0) FROM stored s
           LEFT JOIN ledger l ON s.prefix = l.prefix AND s.tenant = l.tenant WHERE l.prefix IS NULL"""
    ).fetchall()[0]
    (too_many,) = con.execute(
        "SELECT count(*) FROM stored s JOIN ledger l USING (prefix, tenant) WHERE s.n_keys > l.good"
    ).fetchall()[0]
    (dup_keys, dup_rows, rows, keys) = con.execute(
        """SELECT count(*) FILTER (WHERE c > 1), coalesce(sum(c - 1), 0), coalesce(sum(c), 0), count(*)
           FROM (SELECT tenant, trace_id, span_id, count(*) AS c FROM spans GROUP BY ALL)"""
    ).fetchall()[0]
    (across,) = con.execute(
        """SELECT count(*) FROM (SELECT tenant, trace_id, span_id FROM spans GROUP BY ALL
           HAVING count(DISTINCT date) > 1)"""
    ).fetchall()[0]
    (poison,) = con.execute("SELECT count(*) FROM spans WHERE name = 'poison'").fetchall()[0]
    dates, files = _partitions(data_dir), len(list((data_dir / "spans").rglob("*.parquet")))
    con.close()
    return {
        "rows": int(rows),
        "keys": int(keys),
        "lost_spans": int(lost),
        "lost_requests": int(lost_requests),
        "duplicate_keys": int(dup_keys),
        "duplicate_rows": int(dup_rows),
        "duplicate_keys_across_partitions": int(across),
        "poison_stored": int(poison),
        "unknown_rows": int(unknown),
        "requests_over_stored": int(too_many),
        "unacked_requests": int(unacked_requests),
        "unacked_stored_whole": int(unacked_stored),
        "unacked_stored_partly": int(unacked_partial),
        "partitions": int(dates),
        "parquet_files": int(files),
    }


def _partitions(data_dir: Path) -> int:
    root = data_dir / "spans"
    return sum(1 for _ in root.glob("tenant=*/date=*")) if root.is_dir() else 0


def compact_to_fixed_point(data_dir: Path, memory_limit_mib: float) -> tuple[int, int, int]:
    """Compaction passes as the server runs them (min_files 2, no grace) until one merges nothing;
    returns (passes, merges, duplicates removed)."""
    settings = CompactionConfig(min_files=2, grace=0.0, memory_limit_mib=memory_limit_mib)
    compactor = Compactor(settings, data_dir)
    compactor.recover()
    passes = 0
    for passes in range(1, 21):
        before = compactor.stats.merges
        compactor.run_once(time.time() + passes)
        if compactor.stats.merges == before:
            break
    compactor.run_once(time.time() + passes + 1)  # deletes what the last merges replaced
    return passes, compactor.stats.merges, compactor.stats.duplicates_removed


def check_storage(
    data_dir: Path, ledger: pa.Table, memory_limit_mib: float
) -> tuple[dict[str, int], dict[str, int] | None, tuple[int, int, int], list[str]]:
    """verify() after the stop; if a key is stored twice, compaction to a fixed point and again."""
    failures: list[str] = []
    log("checking the catalog")
    after_stop = verify(data_dir, ledger)
    after_compaction: dict[str, int] | None = None
    compaction = (0, 0, 0)
    if after_stop["duplicate_keys"]:
        log(f"{after_stop['duplicate_keys']} duplicate keys: running compaction to a fixed point")
        try:
            compaction = compact_to_fixed_point(data_dir, memory_limit_mib)
            after_compaction = verify(data_dir, ledger)
        except Exception:
            failures.append(f"compaction after the run failed:\n{traceback.format_exc()}")
    return after_stop, after_compaction, compaction, failures


def print_storage(
    after_stop: dict[str, int], after_compaction: dict[str, int] | None, compaction: tuple[int, int, int]
) -> None:
    print(
        f"not acknowledged: {after_stop['unacked_requests']:,} requests, of which stored whole "
        f"{after_stop['unacked_stored_whole']:,}, partly {after_stop['unacked_stored_partly']:,}"
    )
    print(
        f"lost (acknowledged, not stored): {after_stop['lost_spans']:,} spans in "
        f"{after_stop['lost_requests']:,} requests"
    )
    print(
        f"duplicates after the clean stop: {after_stop['duplicate_keys']:,} keys "
        f"({after_stop['duplicate_rows']:,} extra rows; {after_stop['duplicate_keys_across_partitions']:,} "
        f"keys in two date partitions, which compaction cannot merge)"
    )
    if after_compaction is not None:
        print(
            f"compaction: {compaction[0]} passes, {compaction[1]} merges, {compaction[2]:,} duplicates "
            f"removed; after it: {after_compaction['duplicate_keys']:,} duplicate keys "
            f"({after_compaction['duplicate_keys_across_partitions']:,} across partitions), lost "
            f"{after_compaction['lost_spans']:,}, {after_compaction['rows']:,} rows"
        )


def check_only(workdir: Path, memory_limit_mib: float) -> int:
    """The storage checks on a kept run's directory, against the ledger it saved."""
    path = workdir / "ledger.parquet"
    if not path.exists():
        print(f"{path} is missing: this run ended before its checks")
        return 2
    after_stop, after_compaction, compaction, failures = check_storage(
        workdir / "data", pq.read_table(path), memory_limit_mib
    )
    print_storage(after_stop, after_compaction, compaction)
    final = after_compaction or after_stop
    ok = not failures and final["lost_spans"] == 0 and final["duplicate_keys"] == 0
    ok = ok and final["poison_stored"] == 0 and final["unknown_rows"] == 0
    for text in failures:
        print(f"--- {text}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


# -- the run ---------------------------------------------------------------------------------------
SCRAPED = ("agentwatch_spans_deduplicated_total", "agentwatch_receiver_rejected_spans_total")


def scrape(server: ServerProcess) -> dict[str, float]:
    """The server's counters named in SCRAPED (summed over labels); {} if it does not answer."""
    try:
        text = httpx.get(f"http://127.0.0.1:{server.api_port}/metrics", timeout=2.0).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in SCRAPED:
            with contextlib.suppress(ValueError, IndexError):
                out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def kill_and_restart(server: ServerProcess, rng: random.Random, summary: Counter[str]) -> float:
    """kill -9; the workers must follow on their own (a cgroup kill would take them anyway)."""
    assert server.proc is not None
    try:
        children = psutil.Process(server.proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    killed = time.monotonic()
    server.kill()
    _, alive = psutil.wait_procs(children, timeout=5)
    for proc in alive:
        summary["orphans_after_kill"] += 1
        log(f"worker {proc.pid} outlived the killed server by 5 s; killing it")
        with contextlib.suppress(psutil.Error):
            proc.kill()
    time.sleep(rng.uniform(0.2, 2.0))
    server.start(timeout=180)
    return time.monotonic() - killed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument(
        "--kill-every", type=float, default=180, help="seconds between kill -9s (jittered +-50%%)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--idle-per-port", type=int, default=150, help="idle raw sockets per OTLP port")
    parser.add_argument("--large-spans", type=int, default=40_000, help="spans in each large request")
    parser.add_argument(
        "--compaction-memory-mib", type=float, default=64, help="storage.compaction.memory_limit_mib"
    )
    parser.add_argument("--workdir", type=Path, help="keep the server's directory here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir even when every check passes")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    parser.add_argument(
        "--check", type=Path, metavar="WORKDIR", help="only check a kept run's directory (stopped server)"
    )
    args = parser.parse_args()
    if args.check:
        return check_only(args.check, args.compaction_memory_mib)
    rng = random.Random(args.seed)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="aw-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"workdir {workdir}")
    idle_compactor = idle_compaction_worker()
    server = ServerProcess(
        workdir,
        flush_interval="200ms",
        http_max_body_mib=BODY_LIMIT_MIB,
        storage_extra=storage_config(args.compaction_memory_mib),
    )
    server.grpc_extra = f"        max_recv_msg_size_mib: {BODY_LIMIT_MIB}"
    server.start()
    assert server.proc is not None
    time.sleep(1.0)
    idle_main = psutil.Process(server.proc.pid).memory_info().rss
    idle_worker = max(
        (
            c.memory_info().rss
            for c in psutil.Process(server.proc.pid).children(recursive=True)
            if child_kind(c) == "converter"
        ),
        default=0,
    )
    log(f"server up: idle RSS {idle_main / MIB:.0f} MiB, converter worker {idle_worker / MIB:.0f} MiB")
    sampler = SoakSampler(server.proc.pid)
    sampler.start()
    soak = Soak(server, args.seed)
    threads: list[LoadThread] = [
        Steady(soak, 1, "grpc-1", "grpc"),
        Steady(soak, 2, "grpc-2", "grpc"),
        Steady(soak, 3, "http-1", "http"),
        Steady(soak, 4, "http-2", "http"),
        Impatient(soak, 5, "impatient-1"),
        Impatient(soak, 6, "impatient-2"),
        Poison(soak, 7, "poison"),
        OddDates(soak, 8, "odd-dates"),
        Large(soak, 9, "large-1", args.large_spans),
        Large(soak, 10, "large-2", args.large_spans),
    ]
    large = threads[-1]
    assert isinstance(large, Large)
    log(f"large requests: {args.large_spans:,} spans, {large.size / MIB:.1f} MiB")
    idle = IdleConnections(soak, args.idle_per_port)
    for t in threads:
        t.start()
    idle.start()
    summary: Counter[str] = Counter()
    restarts: list[float] = []
    failures: list[str] = []
    started = time.monotonic()
    deadline = started + args.minutes * 60
    next_kill = started + args.kill_every * rng.uniform(0.5, 1.5)
    last_report = last_scrape = started
    metrics: Counter[str] = Counter()  # the server's counters, summed over its incarnations
    current: Counter[str] | dict[str, float] = Counter()
    aborted = False
    while (now := time.monotonic()) < deadline:
        time.sleep(min(1.0, max(0.0, min(next_kill, deadline) - now)))
        assert server.proc is not None
        if (code := server.proc.poll()) is not None:
            failures.append(f"the server exited on its own with {code}:\n{tail(server.log())}")
            log(f"server exited on its own with {code}; restarting it")
            server.proc = None
            try:
                server.start(timeout=180)
                sampler.attach(server.proc.pid)  # type: ignore[union-attr]
            except RuntimeError as exc:
                failures.append(f"the server did not restart: {tail(str(exc))}")
                aborted = True
                break
        if time.monotonic() - last_scrape >= 5:
            last_scrape = time.monotonic()
            current = scrape(server) or current
        if time.monotonic() >= next_kill and time.monotonic() < deadline:
            current = scrape(server) or current
            metrics.update(current)
            current = Counter()
            summary["kills"] += 1
            log(f"kill -9 #{summary['kills']}")
            try:
                took = kill_and_restart(server, rng, summary)
            except RuntimeError as exc:
                failures.append(f"the server did not restart after kill -9: {tail(str(exc))}")
                aborted = True
                break
            restarts.append(took)
            sampler.attach(server.proc.pid)  # type: ignore[union-attr]
            log(f"restarted, ready {took:.1f} s after the kill")
            next_kill = time.monotonic() + args.kill_every * rng.uniform(0.5, 1.5)
        if time.monotonic() - last_report >= 30:
            last_report = time.monotonic()
            c = soak.stats.counts
            log(
                f"{(last_report - started) / 60:.1f} min: {c['spans_acked']:,} spans acked in "
                f"{c['requests_acked']:,} requests, {sum(soak.stats.refusals.values()):,} refusals, "
                f"{c['problems']} problems; RSS main {sampler.main / MIB:.0f} MiB, "
                f"idle sockets {len(idle.socks)}"
            )
    log("load ends: letting clients finish their requests")
    soak.ending.set()
    if aborted:
        soak.halt.set()
    join_by = time.monotonic() + GIVE_UP_S + 60
    for t in threads:
        t.join(max(0.1, join_by - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        failures.append(f"clients still retrying after {GIVE_UP_S + 60:.0f} s: {stuck}")
        soak.halt.set()
        for t in threads:
            t.join(30)
    idle.stop.set()
    idle.join(30)
    elapsed = time.monotonic() - started
    stop_code: int | None = None
    stop_s = 0.0
    if not aborted:
        metrics.update(scrape(server) or current)
        stop_started = time.monotonic()
        try:
            stop_code = server.stop(timeout=SHUTDOWN_TIMEOUT_S + 30)
        except Exception as exc:
            failures.append(f"SIGTERM did not stop the server: {exc!r}")
            server.kill()
        stop_s = time.monotonic() - stop_started
        if stop_code != 0:
            failures.append(f"clean stop exited {stop_code}:\n{tail(server.log())}")
    else:
        server.kill()
    time.sleep(0.5)
    sampler.running = False
    sampler.join(5)

    stats = soak.stats
    ledger = list(soak.ledger.values())
    wal_left = sorted(p.name for p in (server.data_dir / "wal").glob("*"))
    deadletters = list((server.data_dir / "deadletter").glob("*"))
    table = ledger_table(ledger)
    pq.write_table(table, workdir / "ledger.parquet")  # for --check, after the fact
    after_stop, after_compaction, compaction, more = check_storage(
        server.data_dir, table, args.compaction_memory_mib
    )
    failures += more
    final = after_compaction or after_stop

    # The bound of tests/agentwatch/test_memory_bound.py, with this run's budgets.
    budgets = (QUEUE_MIB + 3 * DECODING_MIB + 2 * WORKERS * BATCH_MIB) * MIB
    grpc_buffers = 2 * sum(stats.grpc_body_max.values())
    spans_sent = sum(e.good for e in ledger)
    dedup_index = min(DEDUP_WINDOW, spans_sent) * 110
    main_bound = idle_main + budgets + grpc_buffers + dedup_index + SLACK_MIB * MIB
    worker_bound = idle_worker + WORKER_GROWTH_MIB * MIB
    compaction_bound = idle_compactor + (args.compaction_memory_mib + SLACK_MIB) * MIB
    tree_bound = main_bound + WORKERS * worker_bound + compaction_bound + 64 * MIB
    main_peak = max(sampler.main, sampler.main_hwm)

    checks = {
        "no acknowledged span lost": final["lost_spans"] == 0 and after_stop["lost_spans"] == 0,
        "no span stored twice (after the clean stop)": after_stop["duplicate_keys"] == 0,
        "no span stored twice (after compaction)": final["duplicate_keys"] == 0,
        "no poison stored": final["poison_stored"] == 0,
        "no unknown rows": final["unknown_rows"] == 0 and final["requests_over_stored"] == 0,
        "clean stop exits 0": stop_code == 0,
        "write-ahead log empty after the clean stop": not wal_left,
        "server process RSS within the bound": main_peak <= main_bound,
        "converter worker RSS within the bound": sampler.peaks["converter"] <= worker_bound,
        "compaction worker RSS within the bound": sampler.peaks["compaction"] <= compaction_bound,
        "whole tree RSS within the bound": sampler.tree <= tree_bound,
        "no client problems (refused for good, wrong partial success, gave up, crashed)": not stats.problems,
        "no unexpected server exits or failed restarts": not failures,
    }
    c = stats.counts
    print()
    print("=" * 78)
    print(
        f"soak: {elapsed / 60:.1f} min, seed {args.seed}, {summary['kills']} kill -9 "
        f"(restart ready in {min(restarts, default=0):.1f}-{max(restarts, default=0):.1f} s), "
        f"{summary['orphans_after_kill']} workers outlived a kill by 5 s"
    )
    print(
        f"acknowledged: {c['requests_acked']:,} requests, {c['spans_acked']:,} spans "
        f"({c['large_requests']} large requests of {large.size / MIB:.1f} MiB); "
        f"slowest acknowledgement {stats.max_ack_s:.1f} s"
    )
    print(
        f"attempts {c['attempts']:,}; refused/failed and retried {sum(stats.refusals.values()):,}: "
        + ", ".join(f"{k} {v:,}" for k, v in stats.refusals.most_common(8))
    )
    print(
        f"partial successes {c['partial_successes']:,} ({c['poison_sent']:,} poison spans sent, "
        f"{final['poison_stored']} stored)"
    )
    print(
        f"impatient: {c['impatient_attempts']:,} short-deadline attempts, {c['impatient_gave_up']:,} "
        f"expired, {c['impatient_abandoned']:,} requests abandoned"
    )
    print(
        f"idle sockets: up to {idle.max_open} open, {idle.opened:,} opened, {idle.closed_by_server:,} "
        f"closed by the server, {idle.churned:,} dropped by us, {idle.connect_failures:,} connect failures"
    )
    print(
        f"stored: {after_stop['rows']:,} rows, {after_stop['keys']:,} distinct keys in "
        f"{after_stop['partitions']:,} partitions, {after_stop['parquet_files']:,} files; "
        f"dead-letter files {len(deadletters)}; write-ahead log left {len(wal_left)} files"
    )
    print(
        "server counters (summed over incarnations, up to 5 s stale at each kill): deduplicated "
        f"{metrics['agentwatch_spans_deduplicated_total']:,.0f} spans, rejected "
        f"{metrics['agentwatch_receiver_rejected_spans_total']:,.0f} spans"
    )
    print(f"clean stop: exit {stop_code} in {stop_s:.1f} s")
    print_storage(after_stop, after_compaction, compaction)
    print(
        f"peak RSS: server process {sampler.main / MIB:.0f} MiB sampled, {sampler.main_hwm / MIB:.0f} MiB "
        f"high-water (bound {main_bound / MIB:.0f} MiB = idle {idle_main / MIB:.0f} + budgets "
        f"{budgets / MIB:.0f} + gRPC buffers {grpc_buffers / MIB:.0f} + dedup index {dedup_index / MIB:.0f} "
        f"+ {SLACK_MIB} slack)"
    )
    print(
        f"          converter worker {sampler.peaks['converter'] / MIB:.0f} MiB (bound "
        f"{worker_bound / MIB:.0f} = idle {idle_worker / MIB:.0f} + {WORKER_GROWTH_MIB}), compaction "
        f"worker {sampler.peaks['compaction'] / MIB:.0f} MiB (bound {compaction_bound / MIB:.0f} = idle "
        f"{idle_compactor / MIB:.0f} + memory_limit_mib {args.compaction_memory_mib:g} + {SLACK_MIB}), "
        f"whole tree {sampler.tree / MIB:.0f} MiB (bound {tree_bound / MIB:.0f})"
    )
    for name, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAIL'}] {name}")
    for text in failures + stats.problems[:20]:
        print(f"--- {text}")
    passed = all(checks.values())
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "minutes": elapsed / 60,
                    "kills": summary["kills"],
                    "counts": dict(c),
                    "refusals": dict(stats.refusals),
                    "server_counters": dict(metrics),
                    "after_stop": after_stop,
                    "after_compaction": after_compaction,
                    "peak_rss_mib": {
                        "main": main_peak / MIB,
                        "converter": sampler.peaks["converter"] / MIB,
                        "compaction": sampler.peaks["compaction"] / MIB,
                        "tree": sampler.tree / MIB,
                    },
                    "bounds_mib": {
                        "main": main_bound / MIB,
                        "worker": worker_bound / MIB,
                        "compaction": compaction_bound / MIB,
                        "tree": tree_bound / MIB,
                    },
                    "checks": checks,
                },
                indent=2,
            )
        )
    if passed and not args.workdir and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"server directory kept: {workdir}")
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
