"""The health API under load: how fast it answers, and how soon it reflects a span.

Starts ``agentwatch serve`` (converter worker processes, as deployed) on free loopback ports,
then, at the same time:

- **background traffic**: ``--runs-per-second`` agent runs (an ``invoke_agent`` span, a tool
  call and a model call) of ``--agents`` agents over OTLP/HTTP, so the aggregate keeps changing
  (every new digest invalidates the cached answers);
- **readers**: ``--rate`` ``GET /api/v1/agents/{agent}/health`` a second, spread over the
  agents, for ``--seconds``, each timed from when it was due to its full answer (keep-alive
  connections, as an agent's client keeps them).

Then the **freshness**: ``--probes`` times, one run is exported with the SDK's exporter (its
export returns once the span is durable: acknowledged), and the endpoint is polled every 5 ms
until it counts the run.

    .venv/bin/python bench/health.py --rate 1000 --seconds 20

The load generator shares the machine (and its cores) with the server: figures are an upper
bound of what the server alone would show. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode, Tracer

from tests.helpers.server import ServerProcess


def one_run(tracer: Tracer, agent: str, fail: bool) -> None:
    attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent}
    with tracer.start_as_current_span(f"invoke_agent {agent}", attributes=attributes):
        tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}
        with tracer.start_as_current_span("execute_tool search", attributes=tool) as span:
            if fail:
                span.set_status(Status(StatusCode.ERROR, "search: 503"))
        chat = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.system": "openai"}
        with tracer.start_as_current_span("chat gpt-4o", attributes=chat):
            pass


def background(server: ServerProcess, agents: int, per_second: float, stop: threading.Event) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=server.http_url),
                                                   schedule_delay_millis=200))  # fmt: skip
    tracer = provider.get_tracer("bench")
    n = 0
    started = time.monotonic()
    while not stop.is_set():
        one_run(tracer, f"agent-{n % agents}", fail=n % 7 == 0)
        n += 1
        delay = started + n / per_second - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    provider.shutdown()


async def readers(
    port: int, agents: int, rate: float, seconds: float, connections: int = 32
) -> tuple[list[float], int]:
    """Latencies (ms) of ``rate`` requests a second for ``seconds`` over ``connections`` keep-alive
    connections; and how many failed. A bare HTTP/1.1 client on asyncio streams: a Python HTTP
    library would cost the shared cores more than the server it measures."""
    latencies: list[float] = []
    failed = 0
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()

    async def connection() -> None:
        nonlocal failed
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while (job := await queue.get()) is not None:
            i, due = job
            path = f"/api/v1/agents/agent-{i % agents}/health?window=15m"
            writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))  # fmt: skip
            await reader.readexactly(length)
            if head.startswith(b"HTTP/1.1 200"):
                # From when the request was due: time queued behind a busy connection counts.
                latencies.append((time.perf_counter() - due) * 1000)
            else:
                failed += 1
        writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    started = time.perf_counter()
    for i in range(int(rate * seconds)):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return latencies, failed


def freshness(server: ServerProcess, probes: int) -> list[float]:
    """Seconds from an export's acknowledgement to the health API counting its run."""
    provider = TracerProvider(resource=Resource.create({"service.name": "probe"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=server.http_url)))
    tracer = provider.get_tracer("probe")
    url = f"http://127.0.0.1:{server.api_port}/api/v1/agents/probe/health"
    out = []
    with httpx.Client(timeout=5) as client:
        for _ in range(probes):
            before = client.get(url).json()["runs"]
            one_run(tracer, "probe", fail=False)
            acknowledged = time.monotonic()  # the root span's export returned: durable
            while client.get(url).json()["runs"] == before:
                time.sleep(0.005)
            out.append(time.monotonic() - acknowledged)
            time.sleep(0.2)
    provider.shutdown()
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="health requests a second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--runs-per-second", type=float, default=100.0, help="background agent runs a second")
    parser.add_argument("--probes", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        server = ServerProcess(Path(workdir), flush_interval="200ms").start()
        stop = threading.Event()
        feeder = threading.Thread(target=background, args=(server, args.agents, args.runs_per_second, stop))
        try:
            feeder.start()
            time.sleep(3)  # the agents have runs before they are read
            latencies, failed = asyncio.run(readers(server.api_port, args.agents, args.rate, args.seconds))
            stop.set()
            feeder.join()
            fresh = freshness(server, args.probes)
        finally:
            stop.set()
            server.stop()
    answered = len(latencies)
    print(f"health API: {answered} answers in {args.seconds:g} s at {args.rate:g}/s ({failed} failed),"
          f" {args.runs_per_second:g} runs/s of {args.agents} agents arriving meanwhile")  # fmt: skip
    print(f"  latency ms: p50 {percentile(latencies, 0.5):.2f}  p90 {percentile(latencies, 0.9):.2f}"
          f"  p99 {percentile(latencies, 0.99):.2f}  max {max(latencies):.2f}"
          f"  mean {statistics.fmean(latencies):.2f}")  # fmt: skip
    print(f"freshness (acknowledged → counted), {len(fresh)} probes: median {statistics.median(fresh):.3f} s,"
          f" p90 {percentile(fresh, 0.9):.3f} s, max {max(fresh):.3f} s")  # fmt: skip


if __name__ == "__main__":
    main()
