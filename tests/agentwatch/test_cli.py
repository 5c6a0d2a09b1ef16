"""The command line against a real server: demo traffic in, query results out, config checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

from storage.catalog import connect
from tests.helpers.otlp import make_trace
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
    logs = int(first.split(" spans, ")[1].split(" log records")[0])
    assert first.startswith(
        f"sent 40 runs, {spans} spans, {logs} log records to {server.grpc_endpoint} (grpc)"
    )
    assert server.wait_for_count("SELECT count(*) FROM spans", spans) == spans
    assert server.wait_for_count("SELECT count(*) FROM runs", 40) == 40
    # One error log line per failing span, in that span's context: every one joins its span.
    failing = server.query("SELECT count(*) FROM spans WHERE status = 'error'")[0][0]
    assert logs == failing > 0
    assert server.wait_for_count("SELECT count(*) FROM logs", logs) == logs
    joined = server.query(
        "SELECT count(*) FROM logs l JOIN spans s USING (tenant, trace_id, span_id) "
        "WHERE s.status = 'error' AND l.severity_text = 'ERROR' AND l.body LIKE s.name || ' failed: %'"
    )
    assert joined == [(logs,)]

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
    assert all(str(o) in as_table.stdout for o, _ in expected)
    assert {o for o, _ in expected} == {"success", "failure", "degraded"}


def test_query_errors_are_reported_not_raised(server: ServerProcess, tmp_path: Path) -> None:
    data_dir = str(server.data_dir)
    HttpExporter(endpoint=server.http_url).export(make_trace())
    assert server.wait_for_count("SELECT count(*) FROM spans", 3) == 3
    bad = agentwatch("query", "--data-dir", data_dir, "SELECT nope FROM spans")
    assert bad.returncode == 1
    assert bad.stderr.startswith("agentwatch query: Binder Error")
    empty = agentwatch("query", "--data-dir", str(tmp_path), "--format", "json", "SELECT count(*) FROM runs")
    assert (empty.returncode, empty.stdout) == (1, "")
    assert empty.stderr == (
        f"agentwatch query: nothing stored in {tmp_path} yet "
        "(send some with `agentwatch demo`, or pass the server's --data-dir)\n"
    )
    missing = agentwatch("query", "--data-dir", str(tmp_path / "nope"), "SELECT 1")
    assert (missing.returncode, missing.stdout) == (2, "")  # a usage error, as for every command
    assert missing.stderr == (
        f"agentwatch query: {tmp_path / 'nope'} does not exist: nothing stored there yet "
        "(the server writes elsewhere? --data-dir)\n"
    )
    a_file = tmp_path / "spans.parquet"
    a_file.write_bytes(b"PAR1")
    not_dir = agentwatch("query", "--data-dir", str(a_file), "SELECT 1")
    assert (not_dir.returncode, not_dir.stdout) == (2, "")
    assert not_dir.stderr == (
        f"agentwatch query: {a_file} is not a directory (--data-dir names the directory `agentwatch serve` writes)\n"
    )


def test_select_star_from_runs_is_readable_in_120_columns(server: ServerProcess) -> None:
    HttpExporter(endpoint=server.http_url).export(make_trace())
    assert server.wait_for_count("SELECT count(*) FROM runs", 1) == 1
    env = {**os.environ, "COLUMNS": "120"}
    shown = subprocess.run(
        [sys.executable, "-m", "agentwatch", "query", "--data-dir", str(server.data_dir), "SELECT * FROM runs LIMIT 10"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert max(map(len, lines)) <= 120
    columns = server.query("SELECT * FROM runs LIMIT 0")
    names = [d[0] for d in connect(server.data_dir).execute("SELECT * FROM runs LIMIT 0").description]
    assert columns == []
    assert lines[0].startswith("─[ row 1 ]")
    assert [line.split(" │ ")[0].strip() for line in lines[1 : 1 + len(names)]] == names
    assert lines[-1] == "(1 row)"


def test_validate(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("storage:\n  data_dir: /tmp/x\n")
    ok = agentwatch("validate", str(good))
    assert (ok.returncode, ok.stdout) == (
        0,
        f"{good}: valid (1 receivers, 3 processors, 1 exporters; pipelines: traces)\n",
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
        # The users' feedback, posted to its API, joins their runs under each agent's tenant
        # (no ingest tokens: the items name it, as the spans do): 38 pieces, 26 negative.
        joined = "SELECT count(*) FROM feedback f JOIN runs r USING (tenant, trace_id)"
        assert server.wait_for_count(joined, 38) == 38
        assert server.query(
            "SELECT r.tenant, count(*), count(*) FILTER (WHERE f.negative) FROM feedback f JOIN runs r "
            "USING (tenant, trace_id) GROUP BY ALL ORDER BY ALL"
        ) == [("acme", 30, 22), ("globex", 8, 4)]
        assert server.stop() == 0
        assert "demo: sent 300 runs (" in server.log()
        assert "and 38 pieces of their users' feedback" in server.log()
    finally:
        server.kill()


def test_warmup_compiles_the_kernels() -> None:
    done = agentwatch("warmup")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("agentwatch warmup: the normaliser's kernels are compiled and cached (")


def test_query_reads_a_data_directory_holding_only_log_records(tmp_path: Path) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from core.component import ExporterSettings
    from core.model import OtlpRecord
    from exporters import parquet
    from processors.normalize.logs import log_rows

    request = ExportLogsServiceRequest()
    item = request.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=1_796_032_800 * 10**9)
    item.body.string_value = "only a log line"
    exporter = parquet.create(parquet.Config(), ExporterSettings("parquet", tmp_path))
    exporter.consume_logs(log_rows([OtlpRecord.from_logs_request(request)]))
    found = agentwatch("query", "--data-dir", str(tmp_path), "--format", "json", "SELECT tenant, body FROM logs")
    assert (found.returncode, found.stderr) == (0, "")
    assert json.loads(found.stdout) == [{"tenant": "default", "body": "only a log line"}]
