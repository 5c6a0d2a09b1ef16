"""Memory stays bounded under overload with large requests (scaled down from bench/memory.py).

Six clients send 10,000-span requests (about 3 MiB) over gRPC and HTTP as fast as the server
takes them, retrying refusals, against small budgets: a 16 MiB queue, 8 MiB of bodies being
decoded, 4 MiB batches of at most 5,000 spans, gRPC messages of at most 4 MiB and 2 gRPC calls
in flight (the three gRPC clients are refused now and then). The server process may grow above
its idle size by what those budgets allow (README, "Bounded memory"): queue + 3 x decoding + 2 x
workers x batch + the deduplication index + max_concurrent_rpcs x max_recv_msg_size_mib, plus
96 MiB of slack (allocator, interpreter); a converter worker by what converting 5,000 spans at
a time costs. Every acknowledged span is stored exactly once.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import grpc
import httpx
import psutil
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.ingest import build_request
from bench.memory import TreeSampler
from tests.helpers.server import ServerProcess

pytestmark = pytest.mark.process  # a real server under load

MIB = 1 << 20
STORAGE = """  max_queue_mib: 16
  max_decoding_mib: 8
  max_batch_mib: 4
  max_batch_spans: 5000"""
GRPC = """        max_recv_msg_size_mib: 4
        max_concurrent_rpcs: 2"""


def bodies(count: int, spans: int) -> list[bytes]:
    template = build_request(random.Random(3), spans, time.time_ns() - 3_600_000_000_000)
    out = []
    for n in range(count):
        req = ExportTraceServiceRequest.FromString(template)
        for span in req.resource_spans[0].scope_spans[0].spans:
            span.trace_id = n.to_bytes(4, "big") + span.trace_id[4:]
        out.append(req.SerializeToString())
    return out


def test_overload_with_large_requests_stays_within_the_stated_bound(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path, flush_interval="200ms", http_max_body_mib=8, storage_extra=STORAGE, grpc_extra=GRPC
    )
    server.start()
    assert server.proc is not None
    time.sleep(1.0)
    main = psutil.Process(server.proc.pid)
    idle_main = main.memory_info().rss
    idle_worker = max(c.memory_info().rss for c in main.children(recursive=True))
    sampler = TreeSampler(server.proc.pid)
    sampler.start()
    payloads = bodies(24, 10_000)
    acknowledged: list[int] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        http = httpx.Client(timeout=30)
        for n in range(index, len(payloads), 6):
            while True:
                try:
                    if index % 2:
                        export(payloads[n], timeout=30)
                    else:
                        headers = {"content-type": "application/x-protobuf"}
                        http.post(server.http_url, content=payloads[n], headers=headers).raise_for_status()
                    break
                except (grpc.RpcError, httpx.HTTPStatusError):
                    time.sleep(0.2)  # refused retryably: back off and retry, as OTLP exporters do
            with lock:
                acknowledged.append(n)
        channel.close()
        http.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(acknowledged) == list(range(24))
    assert server.wait_for_count("SELECT count(*) FROM spans", 240_000, timeout=120) == 240_000
    sampler.running = False
    assert server.query("SELECT count(DISTINCT (trace_id, span_id)) FROM spans") == [(240_000,)]
    assert server.stop() == 0
    budgets = (16 + 3 * 8 + 2 * 2 * 4) * MIB
    assert len(payloads[0]) < 4 * MIB
    grpc_messages = 2 * 4 * MIB  # max_concurrent_rpcs x max_recv_msg_size_mib
    dedup_index = 240_000 * 110  # storage.dedup_window_spans keys of about 110 bytes
    assert sampler.main - idle_main <= budgets + grpc_messages + dedup_index + 96 * MIB, (
        f"server grew by {(sampler.main - idle_main) / MIB:.0f} MiB"
    )
    assert sampler.child - idle_worker <= 160 * MIB, (
        f"worker grew by {(sampler.child - idle_worker) / MIB:.0f} MiB"
    )
