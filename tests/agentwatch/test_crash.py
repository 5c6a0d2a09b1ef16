"""Nothing acknowledged is lost, nothing is stored twice: retries, replays, kill -9."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.clients import Client, request
from tests.helpers.otlp import PROTO
from tests.helpers.server import ServerProcess

pytestmark = pytest.mark.process  # real servers, kill -9


def test_retried_request_is_stored_once(server: ServerProcess) -> None:
    body = request(0, 1)
    for _ in range(3):
        assert httpx.post(server.http_url, content=body, headers=PROTO).status_code == 200
    assert server.wait_for_count("SELECT count(*) FROM spans", 50) == 50
    time.sleep(0.3)  # a duplicate would have been flushed by now
    assert server.query("SELECT count(*), count(DISTINCT span_id || trace_id) FROM spans") == [(50, 50)]
    metrics = httpx.get(f"http://127.0.0.1:{server.api_port}/metrics").text
    assert "agentwatch_spans_deduplicated_total 100.0" in metrics


def kill_9_under_load(server: ServerProcess, clients: list[Client], before: int) -> set[tuple[int, int]]:
    """Start ``clients``, kill the server with no chance to clean up once ``before`` requests are
    acknowledged, restart it, and let the clients finish; (client, request) acknowledged before."""
    for client in clients:
        client.start()
    while sum(len(c.acknowledged) for c in clients) < before:
        time.sleep(0.01)
    acknowledged = {(c.number, n) for c in clients for n in c.acknowledged}
    server.kill()
    time.sleep(0.5)
    server.start()
    for client in clients:
        client.join(timeout=120)
        assert not client.is_alive()
    assert sum(c.errors for c in clients) > 0  # the kill did interrupt the clients
    return acknowledged


def test_kill_9_mid_stream_loses_no_acknowledged_span_and_stores_none_twice(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, flush_interval="100ms").start()
    clients = [Client(i, server, 120, "http" if i % 2 else "grpc") for i in range(4)]
    try:
        acknowledged_before_kill = kill_9_under_load(server, clients, 150)
        total = 4 * 120 * 50
        assert server.wait_for_count("SELECT count(*) FROM spans", total, timeout=60) == total
        rows = server.query("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans")
        assert rows == [(total, total)]
        # Every request acknowledged before the kill is there, all 50 spans of it.
        stored = {
            (int(trace[:2], 16) - 1, int(trace[2:10], 16))
            for (trace,) in server.query("SELECT trace_id FROM spans GROUP BY trace_id HAVING count(*) = 50")
        }
        assert acknowledged_before_kill <= stored
        assert len(stored) == 4 * 120
        assert server.stop() == 0
    finally:
        server.kill()


def test_kill_9_during_otlp_logs_load_stores_every_record_and_run_once(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, flush_interval="100ms").start()
    clients = [Client(i, server, 60, "http" if i % 2 else "grpc", signal="logs") for i in range(4)]
    try:
        acknowledged_before_kill = kill_9_under_load(server, clients, 80)
        total = 4 * 60 * 50
        assert server.wait_for_count("SELECT count(*) FROM logs", total, timeout=60) == total
        assert server.query("SELECT count(*), count(DISTINCT body) FROM logs") == [(total, total)]
        stored = {
            tuple(int(part[1:]) for part in body.split("-")[:2])
            for (body,) in server.query("SELECT body FROM logs WHERE body LIKE '%-l0'")
        }
        assert acknowledged_before_kill <= stored
        # Every request's agent event is one run (a copy stored twice by the crash is one run).
        assert server.wait_for_count("SELECT count(*) FROM runs", 4 * 60, timeout=30) == 4 * 60
        assert server.query("SELECT count(DISTINCT agent_id) FROM runs") == [(4,)]
        assert server.stop() == 0
    finally:
        server.kill()
