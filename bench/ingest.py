"""Ingest benchmark: OTLP load over gRPC and HTTP against a real `agentwatch serve` process.

Prints acknowledged spans/s, ack latency p50/p99, peak server RSS, bytes per span on disk and
the delay until every span is queryable. Requests are pre-encoded so the load generator spends
its CPU on sending, not on building spans.

    .venv/bin/python bench/ingest.py --spans 500000 --concurrency 8
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import psutil
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers.server import ServerProcess

MODELS = ["gpt-4o", "claude-sonnet-4", "gemini-2.5-pro"]
TOOLS = ["search_docs", "create_ticket", "lookup_user"]


def build_request(rng: random.Random, spans: int, t0: int, spread_ns: int = 3_600_000_000_000) -> bytes:
    """One request: agent runs of 1 agent_run + 2 chat + 1 mcp span, ~10 attributes each."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name", value=AnyValue(string_value="bench-agent"))
    ss = rs.scope_spans.add()
    ss.scope.name = "bench"
    while len(ss.spans) < spans:
        trace = rng.randbytes(16)
        root = rng.randbytes(8)
        user = f"user{rng.randrange(500)}@acme.com"
        start = t0 + rng.randrange(spread_ns)
        for i, kind in enumerate(("agent_run", "chat", "chat", "mcp")):
            span = ss.spans.add()
            span.trace_id = trace
            span.span_id = root if i == 0 else rng.randbytes(8)
            if i:
                span.parent_span_id = root
            span.name = kind
            span.start_time_unix_nano = start + i * 1_000_000
            span.end_time_unix_nano = span.start_time_unix_nano + rng.randrange(1, 3_000) * 1_000_000
            attrs: dict[str, str | int] = {
                "user.id": user,
                "session.id": f"s{rng.randrange(9999)}",
                "gen_ai.agent.id": f"agent-{rng.randrange(20)}",
            }
            if kind == "chat":
                attrs |= {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": rng.choice(MODELS),
                    "gen_ai.usage.input_tokens": rng.randrange(4000),
                    "gen_ai.usage.output_tokens": rng.randrange(800),
                    "server.address": "api.openai.com",
                    "gen_ai.response.finish_reasons": "stop",
                }
            elif kind == "mcp":
                attrs |= {
                    "mcp.method.name": "tools/call",
                    "gen_ai.tool.name": rng.choice(TOOLS),
                    "jsonrpc.request.id": str(rng.randrange(10**6)),
                    "network.transport": "pipe",
                }
            else:
                attrs |= {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Bench Agent"}
            for key, value in attrs.items():
                av = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
                span.attributes.add(key=key, value=av)
            if len(ss.spans) == spans:
                break
    return req.SerializeToString()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)


TRACES_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def send_grpc(
    server: ServerProcess, payloads: list[bytes], concurrency: int, method: str = TRACES_EXPORT
) -> list[float]:
    """Each payload exported once (``method``: the gRPC export method), ``concurrency`` at a
    time; the latency of each."""
    channel = grpc.insecure_channel(
        f"127.0.0.1:{server.grpc_port}", options=[("grpc.max_send_message_length", 64 << 20)]
    )
    export = channel.unary_unary(method)

    def one(body: bytes) -> float:
        started = time.perf_counter()
        export(body, timeout=60)
        return time.perf_counter() - started

    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, payloads))
    channel.close()
    return latencies


def send_http(
    server: ServerProcess, payloads: list[bytes], concurrency: int, url: str | None = None
) -> list[float]:
    """The same over OTLP/HTTP (``url``: default the server's traces URL)."""
    client = httpx.Client(limits=httpx.Limits(max_connections=concurrency), timeout=60)
    headers = {"content-type": "application/x-protobuf"}
    target = url or server.http_url

    def one(body: bytes) -> float:
        started = time.perf_counter()
        response = client.post(target, content=body, headers=headers)
        response.raise_for_status()
        return time.perf_counter() - started

    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, payloads))
    client.close()
    return latencies


def run(
    protocol: str, total_spans: int, batch: int, concurrency: int, seed: int, storage: str, extra: str = "",
    spread: float = 3600.0,
) -> dict[str, float]:  # fmt: skip
    rng = random.Random(seed)
    spread_ns = int(spread * 1e9)
    t0 = time.time_ns() - spread_ns
    requests = total_spans // batch
    distinct = [build_request(rng, batch, t0, spread_ns) for _ in range(min(requests, 64))]
    # Distinct ids per request matter for realism, not for cost: reuse a pool of encoded bodies,
    # re-randomising the ids so every span is stored as its own row.
    payloads = []
    for i in range(requests):
        req = ExportTraceServiceRequest.FromString(distinct[i % len(distinct)])
        for span in req.resource_spans[0].scope_spans[0].spans:
            span.trace_id = i.to_bytes(4, "big") + span.trace_id[4:]
        payloads.append(req.SerializeToString())
    sent = requests * batch
    with tempfile.TemporaryDirectory(prefix="aw-bench-") as tmp:
        server = ServerProcess(
            Path(tmp), flush_interval="1s", http_max_body_mib=64, storage_extra=storage, extra_config=extra
        ).start()
        sampler = RssSampler(server.proc.pid)  # type: ignore[union-attr]
        sampler.start()
        started = time.perf_counter()
        latencies = (send_grpc if protocol == "grpc" else send_http)(server, payloads, concurrency)
        acked = time.perf_counter()
        server.wait_for_count("SELECT count(*) FROM spans", sent, timeout=600)
        stored = time.perf_counter()
        sampler.running = False
        on_disk = sum(p.stat().st_size for p in (server.data_dir / "spans").rglob("*.parquet"))
        code = server.stop()
        assert code == 0, server.log()
    return {
        "spans": sent,
        "ack_spans_per_s": sent / (acked - started),
        "stored_spans_per_s": sent / (stored - started),
        "ack_p50_ms": percentile(latencies, 0.50) * 1000,
        "ack_p99_ms": percentile(latencies, 0.99) * 1000,
        "ack_mean_ms": statistics.fmean(latencies) * 1000,
        "queryable_delay_s": stored - acked,
        "peak_rss_mib": sampler.peak / (1 << 20),
        "bytes_per_span": on_disk / sent,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=512, help="spans per export request")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--protocol", choices=["grpc", "http", "both"], default="both")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--max-batch-spans", type=int, default=20_000, help="storage.max_batch_spans")
    parser.add_argument("--workers", type=int, default=2, help="storage.converter_workers")
    parser.add_argument("--no-health", action="store_true", help="health.enabled: false (no digests)")
    parser.add_argument(
        "--spread", type=float, default=3600.0,
        help="seconds the runs' start times spread over, ending now (3600: a backfill of the last hour; "
        "a few seconds: a live stream)",
    )  # fmt: skip
    args = parser.parse_args()
    extra = "health:\n  enabled: false" if args.no_health else ""
    results = {}
    for protocol in ["grpc", "http"] if args.protocol == "both" else [args.protocol]:
        storage = f"  max_batch_spans: {args.max_batch_spans}\n  converter_workers: {args.workers}"
        results[protocol] = run(
            protocol, args.spans, args.batch, args.concurrency, args.seed, storage, extra, args.spread
        )
        r = results[protocol]
        print(
            f"{protocol:5} {r['spans']:>9,} spans  ack {r['ack_spans_per_s']:>9,.0f}/s  "
            f"stored {r['stored_spans_per_s']:>9,.0f}/s  ack p50 {r['ack_p50_ms']:.1f} ms  "
            f"p99 {r['ack_p99_ms']:.1f} ms  queryable after {r['queryable_delay_s']:.2f} s  "
            f"peak RSS {r['peak_rss_mib']:.0f} MiB  {r['bytes_per_span']:.1f} B/span",
            flush=True,
        )
    print(f"machine: {os.cpu_count()} cores")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
