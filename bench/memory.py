"""Memory under overload: large OTLP requests from many clients at once, RSS sampled throughout.

Clients send requests of ``--request-spans`` spans (200,000 spans is about 14 MiB) over gRPC and
HTTP as fast as the server takes them, retrying what it refuses (503 / UNAVAILABLE), for
``--seconds``. The server process and each converter worker are sampled every 50 ms; the bound
to compare with is the README's ("Bounded memory").

    .venv/bin/python bench/memory.py --seconds 60 --clients 8
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import httpx
import psutil
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.ingest import build_request
from tests.helpers.server import ServerProcess

MIB = 1 << 20


class TreeSampler(threading.Thread):
    """Peak RSS of the server process, of its largest child, and of the whole tree."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.main = self.child = self.tree = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            try:
                main = self.proc.memory_info().rss
                children = [c.memory_info().rss for c in self.proc.children(recursive=True)]
            except psutil.Error:
                time.sleep(0.05)
                continue
            self.main = max(self.main, main)
            self.child = max(self.child, max(children, default=0))
            self.tree = max(self.tree, main + sum(children))
            time.sleep(0.05)


def client(
    server: ServerProcess, bodies: list[bytes], protocol: str, until: float, stats: dict[str, int]
) -> None:
    channel = grpc.insecure_channel(
        f"127.0.0.1:{server.grpc_port}", options=[("grpc.max_send_message_length", 64 * MIB)]
    )
    export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
    http = httpx.Client(timeout=60)
    i = 0
    while time.monotonic() < until:
        body = bodies[i % len(bodies)]
        i += 1
        try:
            if protocol == "grpc":
                export(body, timeout=60)
            else:
                headers = {"content-type": "application/x-protobuf"}
                http.post(server.http_url, content=body, headers=headers).raise_for_status()
            stats["acked"] += 1
        except (grpc.RpcError, httpx.HTTPError):
            stats["refused"] += 1
            time.sleep(0.2)
    channel.close()
    http.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--request-spans", type=int, default=200_000)
    parser.add_argument("--storage", default="", help="extra storage: keys, e.g. '  max_queue_mib: 128'")
    args = parser.parse_args()
    rng = random.Random(1)
    t0 = time.time_ns() - 3_600_000_000_000
    template = build_request(rng, args.request_spans, t0)
    bodies = []
    for n in range(4):
        req = ExportTraceServiceRequest.FromString(template)
        for span in req.resource_spans[0].scope_spans[0].spans:
            span.trace_id = n.to_bytes(4, "big") + span.trace_id[4:]
        bodies.append(req.SerializeToString())
    print(
        f"requests of {args.request_spans:,} spans, {len(bodies[0]) / MIB:.1f} MiB each; "
        f"{args.clients} clients"
    )
    with tempfile.TemporaryDirectory(prefix="aw-mem-") as tmp:
        server = ServerProcess(
            Path(tmp), flush_interval="1s", http_max_body_mib=64, storage_extra=args.storage
        )
        server.grpc_extra = "        max_recv_msg_size_mib: 64"
        server.start()
        assert server.proc is not None
        sampler = TreeSampler(server.proc.pid)
        sampler.start()
        stats = {"acked": 0, "refused": 0}
        until = time.monotonic() + args.seconds
        threads = [
            threading.Thread(target=client, args=(server, bodies, "grpc" if i % 2 else "http", until, stats))
            for i in range(args.clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(3)
        sampler.running = False
        code = server.stop(timeout=120)
    print(
        f"acknowledged {stats['acked']} requests ({stats['acked'] * args.request_spans:,} spans), "
        f"refused (retried) {stats['refused']}; exit {code}"
    )
    print(
        f"peak RSS: server process {sampler.main / MIB:.0f} MiB, largest converter worker "
        f"{sampler.child / MIB:.0f} MiB, whole tree {sampler.tree / MIB:.0f} MiB"
    )


if __name__ == "__main__":
    main()
