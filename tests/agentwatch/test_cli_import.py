"""``agentwatch import``: a one-shot backfill through the same readers as the bucket receiver and
the same durable ingest path as ``eval run``; Cloud Logging exports become runs, and OTLP JSON
trace dumps (Tempo's shape too) become runs and then eval cases."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from agentwatch.cli import main
from storage.catalog import connect
from tests.helpers.server import ServerProcess
from tests.receiver.bucket.fixtures import export_lines, gzipped

NOW_NS = time.time_ns() // 1_000_000_000 * 1_000_000_000 - 3_600_000_000_000  # an hour ago, whole seconds


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["import", *args], catch_exceptions=False)


def query(data: Path, sql: str) -> list[tuple[Any, ...]]:
    return connect(data).execute(sql).fetchall()


def export_dir(root: Path) -> Path:
    src = root / "export"
    src.mkdir()
    (src / "10:00:00_10:59:59_S0.json").write_bytes(export_lines(range(0, 30), failed_every=10) + b"{bad\n")
    (src / "11:00:00_11:59:59_S0.json.gz").write_bytes(gzipped(export_lines(range(30, 50), failed_every=10)))
    return src


def test_a_cloud_logging_export_becomes_runs_once(tmp_path: Path) -> None:
    src, data = export_dir(tmp_path), tmp_path / "data"
    result = run(str(src), "--mapping", "workflow_run", "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("read 51 records from 2 objects in ")
    assert lines[0].endswith(f"s through the write-ahead log {data / 'wal'} (deduplicated; no server is running on it)")
    state = next((data / "bucket").iterdir())
    assert lines[1:] == [
        "  50 log records and 0 spans: 50 stored, 0 already stored, 0 rejected",
        f"  1 bad records skipped, quarantined in {state / 'quarantine.jsonl'}",
    ]
    assert query(data, "SELECT count(*), count(DISTINCT record_id) FROM logs") == [(50, 50)]
    assert query(data, "SELECT outcome, agent_id, count(*) FROM runs GROUP BY ALL ORDER BY outcome") == [
        ("failure", "wf-expense", 5),
        ("success", "wf-expense", 45),
    ]
    # Again: the cursor says everything was read.
    again = run(str(src), "--mapping", "workflow_run", "--data-dir", str(data))
    assert (
        again.stdout.splitlines()[1] == "  0 log records and 0 spans: 0 stored, 0 already stored, 0 rejected"
    )
    # --again reads everything again; the deduplication index knows it is stored.
    forced = run(str(src), "--mapping", "workflow_run", "--data-dir", str(data), "--again")
    assert (
        forced.stdout.splitlines()[1]
        == "  50 log records and 0 spans: 0 stored, 50 already stored, 0 rejected"
    )
    assert query(data, "SELECT count(*) FROM logs") == [(50,)]


def test_a_mapping_file_and_a_tenant(tmp_path: Path) -> None:
    src, data = tmp_path / "events", tmp_path / "data"
    src.mkdir()
    lines = [
        {
            "ts": "2026-11-30T10:00:00Z",
            "kind": "run_done",
            "rid": f"r-{n}",
            "bot": "triage",
            "ok": n != 2,
            "ms": 120,
        }
        for n in range(4)
    ]
    (src / "runs.jsonl").write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "mapping:\n"
        "  match: [{path: kind, equals: run_done}]\n"
        "  fields: {run_id: rid, agent_id: bot, status: ok, latency_ms: ms, end_time: ts}\n"
        "  values: {status: {'true': ok, 'false': failed}}\n"
    )
    result = run(
        str(src), "--format", "jsonl", "--mapping", str(mapping), "--tenant", "acme", "--data-dir", str(data)
    )
    assert result.exit_code == 0, result.output
    assert query(data, "SELECT tenant, agent_id, outcome, duration_ms FROM runs ORDER BY outcome") == [
        ("acme", "triage", "failure", 120.0),
        ("acme", "triage", "success", 120.0),
        ("acme", "triage", "success", 120.0),
        ("acme", "triage", "success", 120.0),
    ]
    bad = run(str(src), "--mapping", str(tmp_path / "nope.yaml"), "--data-dir", str(data))
    assert bad.exit_code == 2
    assert (
        "Invalid value for --mapping: '" in bad.output
        and "nope.yaml' is neither a built-in mapping (workflow_run) nor a file" in bad.output
    )
    wrong = run("ftp://host/x", "--data-dir", str(data))
    assert (wrong.exit_code, wrong.stderr) == (
        2,
        "agentwatch import: url: 'ftp://host/x': only gs://, s3:// and local paths are read\n",
    )


def span(
    trace: str, span_id: str, name: str, parent: str = "", error: bool = False, **attributes: str
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": trace,
        "spanId": span_id,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(NOW_NS),
        "endTimeUnixNano": str(NOW_NS + 2_000_000_000),
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attributes.items()],
        "status": {"code": 2, "message": "search timed out"} if error else {"code": 1},
    }
    if parent:
        out["parentSpanId"] = parent
    return out


def trace_dump(trace: str, error: bool) -> list[dict[str, Any]]:
    root = span(trace, trace[:16], "invoke_agent expense-bot", error=error, **{
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "expense-bot",
        "gen_ai.prompt": f"refund order {trace[-2:]}",
    })  # fmt: skip
    tool = span(trace, trace[16:], "execute_tool search", trace[:16], error=error, **{
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
    })  # fmt: skip
    return [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "expense"}}]},
             "scopeSpans": [{"scope": {"name": "tempo-export"}, "spans": [root, tool]}]}]  # fmt: skip


def test_otlp_json_trace_dumps_become_runs_then_eval_cases(tmp_path: Path) -> None:
    dumps, data = tmp_path / "dumps", tmp_path / "data"
    dumps.mkdir()
    failing, fine = "0af7651916cd43dd8448eb211c803101", "0af7651916cd43dd8448eb211c803102"
    # Pretty-printed, as an API or a UI download gives it; and Tempo's {"batches": [...]}.
    (dumps / "failing.json").write_bytes(
        orjson.dumps({"resourceSpans": trace_dump(failing, True)}, option=orjson.OPT_INDENT_2)
    )
    (dumps / "fine.json").write_bytes(
        orjson.dumps({"batches": trace_dump(fine, False)}, option=orjson.OPT_INDENT_2)
    )
    result = run(str(dumps), "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    assert (
        result.stdout.splitlines()[1] == "  0 log records and 4 spans: 4 stored, 0 already stored, 0 rejected"
    )
    assert query(data, "SELECT trace_id, agent_name, outcome FROM runs ORDER BY trace_id") == [
        (failing, "expense-bot", "failure"),
        (fine, "expense-bot", "success"),
    ]
    cases = tmp_path / "cases.jsonl"
    exported = CliRunner().invoke(main, ["cases", "export", "--data-dir", str(data), "-o", str(cases)])
    assert exported.exit_code == 0, exported.output
    assert exported.stderr == f"wrote 1 cases to {cases}\n"
    (case,) = [orjson.loads(line) for line in cases.read_bytes().splitlines()]
    assert (case["id"], case["query"], case["tags"]) == (
        f"prod-{failing}",
        "refund order 01",
        ["production-failure", "tool_timeout"],
    )
    assert (case["metadata"]["agent"], case["metadata"]["error_message"]) == (
        "expense-bot",
        "search timed out",
    )


@pytest.mark.process
def test_with_a_server_running_the_records_go_through_its_receiver(tmp_path: Path) -> None:
    src = export_dir(tmp_path)
    server = ServerProcess(tmp_path).start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "agentwatch", "import", str(src), "--mapping", "workflow_run",
             "--config", str(server.config_path)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert f"s through the running server's receiver {server.http_url} (pid " in lines[0]
        assert lines[1] == (
            "  50 log records and 0 spans: 50 taken by the server (those already stored are not stored again), "
            "0 rejected"
        )
        assert server.wait_for_count("SELECT count(*) FROM logs", 50) == 50
        assert server.wait_for_count("SELECT count(*) FROM runs", 50) == 50
        assert server.query("SELECT count(*) FROM runs WHERE outcome = 'failure'") == [(5,)]
        assert server.stop() == 0
    finally:
        server.kill()


def test_an_s3_bucket_with_an_endpoint_url(tmp_path: Path) -> None:
    from receiver.bucket.source import Bucket
    from tests.receiver.bucket.fixtures import moto_s3

    data = tmp_path / "data"
    with moto_s3() as endpoint:
        fs = Bucket("s3://glean-logs/", endpoint).fs
        fs.mkdir("glean-logs")
        with fs.open("glean-logs/exports/2026/11/30/10:00:00_10:59:59_S0.json.gz", "wb") as f:
            f.write(gzipped(export_lines(range(0, 12), failed_every=4)))
        result = run("s3://glean-logs/exports/", "--endpoint-url", endpoint, "--mapping", "workflow_run",
                     "--data-dir", str(data))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        result.stdout.splitlines()[1]
        == "  12 log records and 0 spans: 12 stored, 0 already stored, 0 rejected"
    )
    assert query(data, "SELECT outcome, count(*) FROM runs GROUP BY ALL ORDER BY outcome") == [
        ("failure", 3),
        ("success", 9),
    ]
