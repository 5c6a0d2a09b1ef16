"""OTLP logs benchmark: log records over gRPC and HTTP against a real `agentwatch serve` process.

Prints acknowledged and stored log records/s (stored: every record queryable in the ``logs``
view), ack latency p50/p99 and peak server RSS. A quarter of the records are agent events (an
``agent.request.completed`` per run and the tool and model steps under it), which also become
spans and runs; the rest are plain log lines with a few attributes. Requests are pre-encoded.

    .venv/bin/python bench/logs.py --records 300000 --concurrency 8
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.ingest import RssSampler, percentile, send_grpc, send_http
from tests.helpers.server import ServerProcess

LOGS_EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


def _kv(key: str, value: str | int | float) -> KeyValue:
    if isinstance(value, str):
        return KeyValue(key=key, value=AnyValue(string_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(double_value=value))


def build_request(rng: random.Random, records: int, number: int, t0: int) -> bytes:
    """Runs of 1 request event, 1 tool event, 1 step event and 9 log lines each."""
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.append(_kv("service.name", "bench-agent"))
    scope = rl.scope_logs.add()
    scope.scope.name = "bench"
    run = 0
    while len(scope.log_records) < records:
        trace = number.to_bytes(4, "big") + run.to_bytes(4, "big") + rng.randbytes(8)
        run += 1
        start = t0 + rng.randrange(3_600_000_000_000)
        user = f"user{rng.randrange(500)}@acme.com"
        common = {"trace_id": trace.hex(), "agent_id": f"agent-{rng.randrange(20)}", "user_id": user}
        failed = rng.random() < 0.1
        events: list[tuple[str, dict[str, str | int | float]]] = [
            ("agent.tool.failed" if failed else "agent.tool.called",
             {**common, "tool_name": "search_docs", "latency_ms": float(rng.randrange(20, 400))}),
            ("agent.step.completed",
             {**common, "model": "gpt-4o", "tokens_prompt": rng.randrange(200, 4000),
              "tokens_completion": rng.randrange(20, 600), "latency_ms": float(rng.randrange(200, 3000))}),
            ("agent.request.completed",
             {**common, "status": "error" if failed else "ok",
              "latency_ms": float(rng.randrange(500, 6000))}),
        ]  # fmt: skip
        for i, (name, fields) in enumerate(events):
            item = scope.log_records.add(
                time_unix_nano=start + i * 1_000_000, trace_id=trace, event_name=name
            )
            item.attributes.extend(_kv(k, v) for k, v in fields.items())
        for i in range(9):
            item = scope.log_records.add(time_unix_nano=start + i * 100_000, trace_id=trace)
            item.severity_number, item.severity_text = 9, "INFO"
            item.body.string_value = f"step {i} of run {run}: fetched {rng.randrange(50)} documents"
            item.attributes.extend([_kv("user.id", user), _kv("code.function", "handle")])
    del scope.log_records[records:]
    return req.SerializeToString()


def send(server: ServerProcess, protocol: str, payloads: list[bytes], concurrency: int) -> list[float]:
    if protocol == "grpc":
        return send_grpc(server, payloads, concurrency, LOGS_EXPORT)
    return send_http(server, payloads, concurrency, f"http://127.0.0.1:{server.http_port}/v1/logs")


def run(protocol: str, total: int, batch: int, concurrency: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    t0 = time.time_ns() - 3_600_000_000_000
    requests = total // batch
    payloads = [build_request(rng, batch, i, t0) for i in range(requests)]
    sent = requests * batch
    with tempfile.TemporaryDirectory(prefix="aw-bench-logs-") as tmp:
        server = ServerProcess(Path(tmp), flush_interval="1s", http_max_body_mib=64).start()
        sampler = RssSampler(server.proc.pid)  # type: ignore[union-attr]
        sampler.start()
        started = time.perf_counter()
        latencies = send(server, protocol, payloads, concurrency)
        acked = time.perf_counter()
        server.wait_for_count("SELECT count(*) FROM logs", sent, timeout=600)
        stored = time.perf_counter()
        runs = server.query("SELECT count(*) FROM runs")[0][0]
        sampler.running = False
        assert server.stop() == 0, server.log()
    return {
        "records": sent,
        "runs": float(runs),  # type: ignore[arg-type]
        "ack_per_s": sent / (acked - started),
        "stored_per_s": sent / (stored - started),
        "ack_p50_ms": percentile(latencies, 0.5) * 1000,
        "ack_p99_ms": percentile(latencies, 0.99) * 1000,
        "peak_rss_mib": sampler.peak / (1 << 20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=512, help="log records per export request")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--protocol", choices=["grpc", "http", "both"], default="both")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for protocol in ["grpc", "http"] if args.protocol == "both" else [args.protocol]:
        r = run(protocol, args.records, args.batch, args.concurrency, args.seed)
        print(
            f"{protocol:5} {r['records']:>9,.0f} log records ({r['runs']:,.0f} runs)  "
            f"ack {r['ack_per_s']:>9,.0f}/s  stored {r['stored_per_s']:>9,.0f}/s  "
            f"ack p50 {r['ack_p50_ms']:.1f} ms  p99 {r['ack_p99_ms']:.1f} ms  "
            f"peak RSS {r['peak_rss_mib']:.0f} MiB",
            flush=True,
        )
    print(f"machine: {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
