"""The running service's process model: converter workers, crash, restart."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.helpers.otlp import make_trace
from tests.helpers.server import ServerProcess

pytestmark = pytest.mark.process  # real servers


def test_workers_die_with_a_killed_server_and_restart_replays(server: ServerProcess) -> None:
    assert server.proc is not None
    children = psutil.Process(server.proc.pid).children(recursive=True)
    workers = [c for c in children if "spawn_main" in " ".join(c.cmdline())]
    assert len(workers) == 2  # storage.converter_workers default
    spans = make_trace()
    assert HttpExporter(endpoint=server.http_url).export(spans) == SpanExportResult.SUCCESS
    server.kill()
    _, alive = psutil.wait_procs(children, timeout=5)
    assert alive == []
    server.start()
    assert server.wait_for_count("SELECT count(DISTINCT span_id) FROM spans", 3) == 3
    assert server.stop() == 0
    assert list((server.data_dir / "wal").iterdir()) == []
    assert list(server.data_dir.rglob("*.tmp")) == []


def test_stale_temporary_files_are_removed_on_start(server: ServerProcess) -> None:
    partition = server.data_dir / "spans" / "tenant=default" / "date=2025-11-22"
    partition.mkdir(parents=True)
    (partition / ".part-dead.parquet.tmp").write_bytes(b"half a file")
    assert server.stop() == 0
    server.start()
    deadline = time.monotonic() + 5
    while list(partition.glob("*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(partition.glob("*.tmp")) == []


def test_sigterm_under_load_finishes_in_flight_exports_and_exits_zero(tmp_path: Path) -> None:
    from tests.helpers.clients import Client

    server = ServerProcess(tmp_path, flush_interval="5s", storage_extra="  shutdown_timeout: 20s").start()
    clients = [Client(i, server, 10_000, "http" if i % 2 else "grpc") for i in range(3)]
    for client in clients:
        client.start()
    while sum(len(c.acknowledged) for c in clients) < 60:
        time.sleep(0.01)
    started = time.monotonic()
    code = server.stop()
    took = time.monotonic() - started
    for client in clients:
        client.halt.set()
        client.join(timeout=10)
    acknowledged = {(c.number, n) for c in clients for n in c.acknowledged}
    assert code == 0
    assert took < 20
    assert "agentwatch: stopped cleanly" in server.log()
    # Everything acknowledged was flushed although the 5 s flush interval had not come round.
    stored = {
        (int(trace[:2], 16) - 1, int(trace[2:10], 16))
        for (trace,) in server.query("SELECT trace_id FROM spans GROUP BY trace_id HAVING count(*) = 50")
    }
    assert acknowledged <= stored
    assert server.query("SELECT count(*) - count(DISTINCT (trace_id, span_id)) FROM spans") == [(0,)]
    assert list((server.data_dir / "wal").iterdir()) == []
