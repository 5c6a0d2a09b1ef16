"""Compaction in ``agentwatch serve``: merges run in a worker process; the server outlives it and
SIGTERM ends it without committing anything."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import psutil
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from storage.catalog import connect, live_files
from storage.layout import SPANS
from tests.helpers.otlp import make_trace
from tests.helpers.server import ServerProcess
from tests.helpers.span_files import day_start, write_small_files

pytestmark = pytest.mark.process  # a real server and its compaction worker

COMPACTION = "  compaction:\n    interval: 200ms\n    min_files: 2\n    grace: 0s\n"
DATE = "2025-11-21"  # a past day: its tiers merge from 2 files


def compaction_worker(server: ServerProcess, timeout: float = 60.0) -> psutil.Process:
    assert server.proc is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(server.proc.pid).children(recursive=True):
            try:
                if "storage.compaction.worker" in child.cmdline():
                    return child
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.02)
    raise AssertionError(f"no compaction worker started:\n{server.log()}")


def acme(server: ServerProcess) -> list[str]:
    return [f for f in live_files(server.data_dir, SPANS) if "tenant=acme" in f]


def test_the_server_outlives_its_compaction_worker_and_sigterm_ends_a_merge(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, storage_extra=COMPACTION)
    partition = server.data_dir / SPANS / "tenant=acme" / f"date={DATE}"
    files = len(write_small_files(partition, 50_000, 1000, day_start(DATE)))
    server.start()
    try:
        compaction_worker(server).kill()  # as the OOM killer would
        assert httpx.get(f"http://127.0.0.1:{server.api_port}/readyz", timeout=5).status_code == 200
        assert HttpExporter(endpoint=server.http_url).export(make_trace()) == SpanExportResult.SUCCESS
        worker = compaction_worker(server)  # the next pass tries again
        started = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - started < 15
        assert not worker.is_running()
        # Killed twice mid-job: nothing committed, nothing left behind.
        assert len(acme(server)) == files
        assert [p.name for p in server.data_dir.rglob("*") if "compact" in p.name or p.suffix == ".tmp"] == []
        assert connect(server.data_dir).execute("SELECT count(*) FROM spans").fetchall() == [(50_003,)]

        server.start()
        deadline = time.monotonic() + 90
        while len(acme(server)) != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [Path(f).name[:8] for f in acme(server)] == ["compact-"]
        assert connect(server.data_dir).execute(
            "SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans WHERE tenant = 'acme'"
        ).fetchall() == [(50_000, 50_000)]
        assert "the compaction worker exited with SIGKILL" in server.log()
    finally:
        server.stop()
