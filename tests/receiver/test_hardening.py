"""Issue 10's repros, each scaled to run in seconds: no request, client or record stops ingestion.

- an impatient gRPC client whose deadline expires while its export waits for the log's fsync;
- a span whose times do not fit the int64 columns (rejected at the door, partial success);
- a record that reached the log before the door checked it (replayed at start: quarantined in
  the dead-letter file, its neighbours stored);
- one request with spans on 5,000 different days (bounded partitions, bystanders not delayed);
- a gzip body of several members (RFC 1952): every member is stored;
- two tenants sending the same span ids without ingest tokens: both are stored.
"""

from __future__ import annotations

import gzip
import threading
import time
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from agentwatch.config import parse_config
from agentwatch.service import Service
from core.model import OtlpRecord
from storage.catalog import connect
from storage.deadletter import read_quarantined
from storage.wal import encode_record
from tests.helpers.otlp import EXPORT, NOW_NS, PROTO, request
from tests.helpers.server import ServerProcess, free_port


def grpc_export(port: int, body: bytes, timeout: float) -> bytes:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(EXPORT)
        response: bytes = call(body, timeout=timeout)
        return response


def test_a_deadline_expiring_during_fsync_does_not_stop_ingest(tmp_path: Path, monkeypatch: object) -> None:
    import storage.wal as walmod

    grpc_port, api_port = free_port(), free_port()
    config = parse_config(
        f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}"}}
storage: {{data_dir: "{tmp_path}", converter: inline, flush_interval: 50ms}}
api: {{endpoint: "127.0.0.1:{api_port}"}}
""",
        "test",
    )
    real = walmod.os.fdatasync
    slow_once = threading.Event()

    def fdatasync(fd: int) -> None:
        if not slow_once.is_set():
            slow_once.set()
            time.sleep(1.0)  # far past the impatient client's deadline
        real(fd)

    walmod.os.fdatasync = fdatasync  # type: ignore[attr-defined]
    service = Service(config)
    try:
        service.start()
        impatient = request(["impatient"], trace=1).SerializeToString()
        try:
            grpc_export(grpc_port, impatient, timeout=0.2)
            raise AssertionError("the export should have outlived its deadline")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # Every later export on every port is still served, and the service is still ready.
        patient = request(["patient"], trace=2).SerializeToString()
        assert grpc_export(grpc_port, patient, timeout=10) == b""
        assert service.readiness() == (True, "ready")
        assert service.wal.failed is None
        # The impatient client's retry is recognised: its span was durable all along.
        time.sleep(1.0)
        assert grpc_export(grpc_port, impatient, timeout=10) == b""
        assert httpx.get(f"http://127.0.0.1:{api_port}/readyz").json() == {"status": "ready"}
    finally:
        service.stop()
        walmod.os.fdatasync = real  # type: ignore[attr-defined]
    rows = (
        connect(tmp_path).execute("SELECT name, count(*) FROM spans GROUP BY name ORDER BY name").fetchall()
    )
    assert rows == [("impatient", 1), ("patient", 1)]


@pytest.mark.process
def test_span_times_past_int64_are_rejected_at_the_door(server: ServerProcess) -> None:
    req = request(["before", "poison", "after"], trace=3)
    req.resource_spans[0].scope_spans[0].spans[1].start_time_unix_nano = 1 << 63
    response = httpx.post(server.http_url, content=req.SerializeToString(), headers=PROTO)
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 1
    assert "start_time_unix_nano 9223372036854775808" in partial.error_message
    grpc_req = request(["g-ok", "g-poison"], trace=4)
    grpc_req.resource_spans[0].scope_spans[0].spans[1].end_time_unix_nano = (1 << 64) - 1
    answer = ExportTraceServiceResponse.FromString(
        grpc_export(server.grpc_port, grpc_req.SerializeToString(), timeout=10)
    )
    assert answer.partial_success.rejected_spans == 1
    assert server.wait_for_count("SELECT count(*) FROM spans", 3) == 3
    assert server.query("SELECT name FROM spans ORDER BY name") == [("after",), ("before",), ("g-ok",)]


@pytest.mark.process
def test_a_logged_record_that_cannot_convert_is_quarantined_not_stuck(tmp_path: Path) -> None:
    """An older version logged a poison span beside good ones; a restart must store the good ones."""
    server = ServerProcess(tmp_path)
    wal = server.data_dir / "wal"
    wal.mkdir(parents=True)
    poison = request(["good-1", "poison", "good-2"], trace=5)
    poison.resource_spans[0].scope_spans[0].spans[1].start_time_unix_nano = (1 << 64) - 1
    neighbour = request(["bystander"], trace=6, tenant="other")
    frames = [
        encode_record(OtlpRecord.from_request(poison)),
        encode_record(OtlpRecord.from_request(neighbour)),
    ]
    (wal / "wal-0000000000000001-1700000000.log").write_bytes(b"".join(frames))
    server.start()
    try:
        assert server.wait_for_count("SELECT count(*) FROM spans", 3) == 3
        assert server.query("SELECT tenant, name FROM spans ORDER BY name") == [
            ("other", "bystander"),
            ("default", "good-1"),
            ("default", "good-2"),
        ]
        quarantined = list((server.data_dir / "deadletter").glob("deadletter-*.jsonl"))
        assert len(quarantined) == 1
        entries = read_quarantined(quarantined[0])
        assert [(e["pipeline"], e["spans"]) for e in entries] == [("replay", 3)]
        assert "1 span(s) cannot be stored" in str(entries[0]["reason"])
        payload = entries[0]["payload"]
        assert isinstance(payload, bytes)
        assert ExportTraceServiceRequest.FromString(payload) == poison
        assert server.stop() == 0
        assert sorted(p.name for p in wal.iterdir()) == []
    finally:
        server.kill()


@pytest.mark.process
def test_spans_on_thousands_of_days_do_not_multiply_files_or_delay_others(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, flush_interval="200ms").start()
    try:
        day = 86_400 * 10**9
        odd = request([f"d{i}" for i in range(5000)], trace=7, tenant="odd")
        for i, span in enumerate(odd.resource_spans[0].scope_spans[0].spans):
            span.start_time_unix_nano = NOW_NS - i * day
            span.end_time_unix_nano = span.start_time_unix_nano + 1
        assert httpx.post(server.http_url, content=odd.SerializeToString(), headers=PROTO).status_code == 200
        started = time.monotonic()
        bystander = request(["bystander"], trace=8, tenant="bystander")
        r = httpx.post(server.http_url, content=bystander.SerializeToString(), headers=PROTO)
        assert r.status_code == 200
        assert server.wait_for_count("SELECT count(*) FROM spans WHERE tenant = 'bystander'", 1) == 1
        assert time.monotonic() - started < 10
        assert server.wait_for_count("SELECT count(*) FROM spans WHERE tenant = 'odd'", 5000) == 5000
        spans = list((server.data_dir / "spans").rglob("*.parquet"))
        assert len(spans) <= 16 + 1 + 1  # the odd tenant's 16 dates, its arrival day, the bystander
        assert server.query("SELECT count(DISTINCT date) FROM spans WHERE tenant = 'odd'") == [(16,)]
        # Every span keeps its own start time, wherever its file lives.
        assert server.query("SELECT count(DISTINCT start_time::DATE) FROM spans WHERE tenant = 'odd'") == [
            (5000,)
        ]
    finally:
        server.kill()


@pytest.mark.process
def test_a_gzip_body_of_several_members_is_stored_whole(server: ServerProcess) -> None:
    first = request(["member-1"], trace=9).SerializeToString()
    second = request(["member-2"], trace=10).SerializeToString()
    # Serialized protobuf messages concatenate into one message holding both spans.
    body = gzip.compress(first) + gzip.compress(second)
    r = httpx.post(server.http_url, content=body, headers={**PROTO, "content-encoding": "gzip"})
    assert r.status_code == 200
    assert server.wait_for_count("SELECT count(*) FROM spans", 2) == 2
    assert server.query("SELECT name FROM spans ORDER BY name") == [("member-1",), ("member-2",)]


@pytest.mark.process
def test_a_gzip_body_with_trailing_garbage_is_refused(server: ServerProcess) -> None:
    body = gzip.compress(request(["x"], trace=11).SerializeToString()) + b"garbage!"
    r = httpx.post(server.http_url, content=body, headers={**PROTO, "content-encoding": "gzip"})
    assert r.status_code == 400
    time.sleep(0.5)
    assert server.query("SELECT count(*) FROM spans") == [(0,)]


@pytest.mark.process
def test_one_tenant_cannot_suppress_anothers_spans_without_tokens(server: ServerProcess) -> None:
    for tenant in ("acme", "globex"):
        body = request([f"run-{tenant}"], trace=12, tenant=tenant).SerializeToString()
        assert httpx.post(server.http_url, content=body, headers=PROTO).status_code == 200
    assert server.wait_for_count("SELECT count(*) FROM spans", 2) == 2
    assert server.query("SELECT tenant, name FROM spans ORDER BY tenant") == [
        ("acme", "run-acme"),
        ("globex", "run-globex"),
    ]
    # A real retry (same tenant, same ids) is still dropped.
    body = request(["run-acme"], trace=12, tenant="acme").SerializeToString()
    assert httpx.post(server.http_url, content=body, headers=PROTO).status_code == 200
    time.sleep(0.5)
    assert server.query("SELECT count(*) FROM spans") == [(2,)]
