"""The command line against a real server: demo traffic in, query results out, config checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.server import ServerProcess

pytestmark = pytest.mark.process  # the CLI and servers as subprocesses


def agentwatch(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentwatch", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def test_demo_then_query_in_every_format(server: ServerProcess) -> None:
    sent = agentwatch("demo", "--endpoint", server.grpc_endpoint, "--runs", "40", "--seed", "3")
    assert sent.returncode == 0, sent.stderr
    first = sent.stdout.splitlines()[0]
    spans = int(first.split(" runs, ")[1].split(" spans")[0])
    assert first.startswith(f"sent 40 runs, {spans} spans to {server.grpc_endpoint} (grpc)")
    assert server.wait_for_count("SELECT count(*) FROM spans", spans) == spans
    assert server.wait_for_count("SELECT count(*) FROM runs", 40) == 40

    sql = "SELECT outcome, count(*) AS n FROM runs GROUP BY outcome ORDER BY outcome"
    expected = server.query(sql)
    data_dir = str(server.data_dir)
    as_json = agentwatch("query", "--data-dir", data_dir, "--format", "json", sql)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == [{"outcome": o, "n": n} for o, n in expected]
    as_csv = agentwatch("query", "--data-dir", data_dir, "--format", "csv", sql)
    assert as_csv.stdout == "outcome,n\n" + "".join(f"{o},{n}\n" for o, n in expected)
    as_table = agentwatch("query", "--data-dir", data_dir, sql)
    assert as_table.stdout.rstrip().endswith(f"({len(expected)} rows)")
    assert all(o in as_table.stdout for o, _ in expected)
    assert {o for o, _ in expected} == {"success", "failure", "degraded"}


def test_query_errors_are_reported_not_raised(tmp_path: Path) -> None:
    bad = agentwatch("query", "--data-dir", str(tmp_path), "SELECT nope FROM spans")
    assert bad.returncode == 1
    assert bad.stderr.startswith("agentwatch query: Binder Error")
    empty = agentwatch(
        "query", "--data-dir", str(tmp_path), "--format", "json", "SELECT count(*) AS n FROM runs"
    )
    assert json.loads(empty.stdout) == [{"n": 0}]


def test_validate(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("storage:\n  data_dir: /tmp/x\n")
    ok = agentwatch("validate", str(good))
    assert (ok.returncode, ok.stdout) == (
        0,
        f"{good}: valid (1 receivers, 2 processors, 1 exporters; pipelines: traces)\n",
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: localhost:http\n")
    failed = agentwatch("validate", str(bad))
    assert failed.returncode == 2
    assert failed.stderr == (
        "agentwatch: invalid configuration:\n"
        f"  {bad}:5: receivers.otlp.protocols.grpc.endpoint: port 'http' is not a number\n"
    )


def test_serve_refuses_a_busy_port_clearly(server: ServerProcess, tmp_path: Path) -> None:
    config = tmp_path / "busy.yaml"
    config.write_text(
        f"api:\n  endpoint: 127.0.0.1:{server.api_port}\nstorage:\n  data_dir: {tmp_path / 'd'}\n"
    )
    busy = agentwatch("serve", "--config", str(config))
    assert busy.returncode == 2
    assert (
        f"api.endpoint: cannot listen on 127.0.0.1:{server.api_port}: Address already in use" in busy.stderr
    )


def test_serve_demo_feeds_itself(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, serve_args=("--demo",)).start()
    try:
        assert server.wait_for_count("SELECT count(*) FROM runs", 300, timeout=60) == 300
        agents = server.query("SELECT DISTINCT agent_name FROM runs ORDER BY 1")
        assert agents == [("expense-bot",), ("hr-policy",), ("it-helpdesk",), ("sales-research",)]
        assert server.stop() == 0
        assert "demo: sent 300 runs" in server.log()
    finally:
        server.kill()
