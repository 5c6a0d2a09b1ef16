"""SIGTERM ends ``agentwatch serve`` with exit 0 within its timeout at every stage; a second
signal ends it at once; an internal thread's death ends it non-zero so it is restarted.

Each stage runs once here; ``bench/sigterm.py`` runs every stage 50 times in a loop.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.helpers.clients import Client
from tests.helpers.server import ServerProcess

pytestmark = pytest.mark.process  # real servers and signals

PROTO = {"content-type": "application/x-protobuf"}
TIMEOUT = 20.0


class Hanging(BaseHTTPRequestHandler):
    """A webhook, model or agent that never answers (until the test ends)."""

    release = threading.Event()

    def do_POST(self) -> None:
        Hanging.release.wait(120)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def hanging_url() -> Iterator[str]:
    Hanging.release.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hanging)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    Hanging.release.set()
    server.shutdown()


def failing_run(trace: int = 1) -> bytes:
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = trace.to_bytes(16, "big"), bytes(range(1, 9)), "agent_run"
    span.start_time_unix_nano = time.time_ns() - 1_000_000_000
    span.end_time_unix_nano = span.start_time_unix_nano + 1_000_000
    span.status.code = 2
    span.attributes.add(key="agent.id").value.string_value = "bot"
    return req.SerializeToString()


def terminate(server: ServerProcess) -> tuple[int, float]:
    assert server.proc is not None
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(TIMEOUT + 10)
    server.proc = None
    return code, time.monotonic() - started


def test_sigterm_while_starting_exits_zero(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    server.write_config()
    log = open(tmp_path / "server.log", "ab")  # noqa: SIM115 - the child's
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentwatch", "serve", "--config", str(server.config_path)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    time.sleep(0.3)  # well before the converter workers are up
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(TIMEOUT + 10) == 0, server.log()
    assert "agentwatch: stopped cleanly" in server.log()


def test_sigterm_as_early_as_it_can_be_caught_exits_zero(tmp_path: Path) -> None:
    """The entry module's first statements catch SIGTERM: a signal right after pip's wrapper has
    imported ``main`` (before anything else of agentwatch is imported) is a request to stop, not
    a kill. Before, the handler came inside ``main``, after ``core.shutdown``'s imports: -15."""
    server = ServerProcess(tmp_path)
    server.write_config()
    child = (
        "import os, signal, sys\n"
        f"sys.argv = ['agentwatch', 'serve', '--config', {str(server.config_path)!r}]\n"
        "from agentwatch.entry import main  # as pip's generated wrapper does\n"
        "ours = sorted(m for m in sys.modules if m.split('.')[0] in ('agentwatch', 'core'))\n"
        "assert ours == ['agentwatch', 'agentwatch.entry'], ours\n"
        "assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN)\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "main()\n"
    )
    log = open(tmp_path / "server.log", "ab")  # noqa: SIM115 - the child's
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=log, stderr=subprocess.STDOUT)
    assert proc.wait(TIMEOUT + 10) == 0, server.log()
    assert "agentwatch: stopped cleanly" in server.log()


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (``SigCgt`` of /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as status:
        mask = next(line for line in status if line.startswith("SigCgt:")).split()[1]
    return bool(int(mask, 16) & (1 << (signal.SIGTERM - 1)))


@pytest.mark.parametrize(
    ("how", "after"),
    [("command", 0.0), ("module", 0.0), ("command", 0.2)],
)
def test_sigterm_at_any_moment_of_start_up_once_caught_exits_zero(
    tmp_path: Path, how: str, after: float
) -> None:
    """The installed command and ``python -m agentwatch``: SIGTERM the moment the process has a
    handler (polled in /proc), or a little later in its start-up, always ends with exit 0. (The
    interpreter's own start-up, before any of agentwatch's code runs, cannot be covered.) The
    converter is inline: stopping is quicker than with workers still warming up."""
    server = ServerProcess(tmp_path, storage_extra="  converter: inline")
    server.write_config()
    command = (
        [str(Path(sys.executable).parent / "agentwatch")]
        if how == "command"
        else [sys.executable, "-m", "agentwatch"]
    )
    log = open(tmp_path / "server.log", "ab")  # noqa: SIM115 - the child's
    proc = subprocess.Popen(
        [*command, "serve", "--config", str(server.config_path)], stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while not _catches_sigterm(proc.pid):
        assert proc.poll() is None and time.monotonic() < deadline, server.log()
        time.sleep(0.0005)
    time.sleep(after)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(TIMEOUT + 10) == 0, server.log()
    assert "agentwatch: stopped cleanly" in server.log()


def test_sigterm_when_idle_exits_zero(server: ServerProcess) -> None:
    code, took = terminate(server)
    assert (code, took < TIMEOUT) == (0, True)


def test_sigterm_under_load_stores_every_acknowledged_span_once(tmp_path: Path) -> None:
    """Four clients (gRPC and HTTP) keep sending while the server is told to stop: exit 0 within
    the timeout, every request acknowledged before or during the stop stored whole and once, the
    write-ahead log empty."""
    server = ServerProcess(tmp_path, flush_interval="100ms").start()
    clients = [Client(i, server, 2000, "http" if i % 2 else "grpc") for i in range(4)]
    try:
        for client in clients:
            client.start()
        while sum(len(c.acknowledged) for c in clients) < 100:
            time.sleep(0.01)
        code, took = terminate(server)  # the clients are still sending
        for client in clients:
            client.halt.set()
        for client in clients:
            client.join(timeout=30)
            assert not client.is_alive()
        assert code == 0, server.log()
        assert took < TIMEOUT
        assert all(len(c.acknowledged) < c.requests for c in clients)  # the stop cut the load short
        acknowledged = {(c.number, n) for c in clients for n in c.acknowledged}
        per_request = server.query(
            "SELECT trace_id, count(*), count(DISTINCT span_id) FROM spans GROUP BY trace_id"
        )
        assert all(n == distinct == 50 for _, n, distinct in per_request)  # whole, and once
        stored = {(int(str(trace)[:2], 16) - 1, int(str(trace)[2:10], 16)) for trace, _, _ in per_request}
        assert acknowledged <= stored
        assert len(stored - acknowledged) <= len(clients)  # at most the request each had in flight
        assert sorted(p.name for p in (server.data_dir / "wal").iterdir()) == []
    finally:
        for client in clients:
            client.halt.set()
        server.kill()


def test_sigterm_mid_alert_pass_with_a_hanging_webhook(tmp_path: Path, hanging_url: str) -> None:
    alerts = f"""
alerts:
  interval: 100ms
  rules:
    - {{name: failing, kind: failure_rate, threshold: 0.1, window: 1h, min_runs: 1, notify: [hook]}}
  notifiers:
    hook: {{type: webhook, webhook_url: "{hanging_url}", timeout: 60s, retries: 0}}
"""
    server = ServerProcess(tmp_path, extra_config=alerts).start()
    assert httpx.post(server.http_url, content=failing_run(), headers=PROTO).status_code == 200
    assert server.wait_for_count("SELECT count(*) FROM runs WHERE outcome = 'failure'", 1) == 1
    time.sleep(1.0)  # the alert pass is now waiting on the webhook
    code, took = terminate(server)
    assert code == 0, server.log()
    assert took < TIMEOUT


def test_sigterm_mid_eval_with_a_hanging_target(tmp_path: Path, hanging_url: str) -> None:
    dataset = tmp_path / "cases.csv"
    dataset.write_text("query,eval_guidance\n" + "".join(f"question {i},say {i}\n" for i in range(20)))
    synthetic = f"""
  synthetic/slow:
    agent: slow-bot
    dataset: {dataset}
    target: http:{hanging_url}
    timeout: 60s
    retries: 0
    run_on_start: true
"""
    server = ServerProcess(tmp_path, otlp_extra=synthetic, extra_config=_pipeline_with("synthetic/slow"))
    server.start()
    time.sleep(1.0)  # the eval run is now calling its target
    code, took = terminate(server)
    assert code == 0, server.log()
    assert took < TIMEOUT
    assert server.query("SELECT count(*) FROM eval_runs") == [(0,)]  # a partial run is not recorded


def test_a_second_signal_exits_at_once(tmp_path: Path, hanging_url: str) -> None:
    dataset = tmp_path / "cases.csv"
    dataset.write_text("query,eval_guidance\nq,g\n")
    synthetic = f"""
  synthetic/slow:
    agent: slow-bot
    dataset: {dataset}
    target: http:{hanging_url}
    run_on_start: true
"""
    server = ServerProcess(
        tmp_path,
        otlp_extra=synthetic,
        extra_config=_pipeline_with("synthetic/slow"),
        storage_extra="  shutdown_timeout: 60s",
    ).start()
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(10) == 130
    assert time.monotonic() - started < 5
    server.proc = None


def test_an_internal_thread_dying_exits_non_zero(tmp_path: Path) -> None:
    """A fault injected into the log's writer: the process must not live on as a zombie."""
    server = ServerProcess(tmp_path)
    server.write_config()
    inject = (
        "import storage.wal as w\n"
        "real = w.WriteAheadLog._commit\n"
        "calls = []\n"
        "def commit(self, batch):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 2:\n"
        "        raise MemoryError('injected')\n"
        "    real(self, batch)\n"
        "w.WriteAheadLog._commit = commit\n"
        "from agentwatch.cli import main\n"
        f"main(['serve', '--config', {str(server.config_path)!r}])\n"
    )
    log = open(tmp_path / "server.log", "ab")  # noqa: SIM115 - the child's
    proc = subprocess.Popen([sys.executable, "-c", inject], stdout=log, stderr=subprocess.STDOUT)
    server.proc = proc
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{server.api_port}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    assert httpx.post(server.http_url, content=failing_run(), headers=PROTO).status_code == 200
    second = httpx.post(server.http_url, content=failing_run(2), headers=PROTO)
    assert second.status_code == 503  # refused retryably: never acknowledged, never lost
    assert proc.wait(TIMEOUT + 10) == 70
    server.proc = None
    assert "internal failure in agentwatch-wal: injected" in server.log()


def _pipeline_with(receiver: str) -> str:
    return f"""
service:
  pipelines:
    traces:
      receivers: [otlp, {receiver}]
      processors: [normalize, classify]
      exporters: [parquet]
"""
