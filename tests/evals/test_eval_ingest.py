"""One way to run, trace and record an eval (``evals.runner.run_and_record``), and its spans on
the durable ingest path.

``agentwatch eval run`` logs its spans in the data directory's write-ahead log (deduplicated,
replaying what a crashed server left) when no server is running, and sends them to the server's
OTLP receiver when one is; it checks the run against the pinned baseline like the synthetic
receiver does; and the synthetic receiver and the CLI record the same rows for the same run.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentwatch.cli import main
from agentwatch.config import parse_config
from agentwatch.converter import InlineConverter
from agentwatch.ingest import Ingest
from agentwatch.pipeline import assemble
from agentwatch.service import Service
from core.component import ReceiverSettings
from core.errors import StorageError
from core.model import OtlpRecord
from receiver.synthetic import receiver as synthetic
from storage.catalog import connect
from storage.wal import WriteAheadLog, encode_record
from storage.wallock import WalLock
from tests.helpers.evals import TOPICS, dataset
from tests.helpers.server import ServerProcess

CASES = len(TOPICS)


def eval_run(*args: str) -> Result:
    """``agentwatch eval run`` in this process (the python: targets are in tests.helpers.agents)."""
    return CliRunner().invoke(main, ["eval", "run", "--agent", "expense-bot", *args], catch_exceptions=False)


def target(name: str) -> tuple[str, str]:
    return "--target", f"python:tests.helpers.agents:{name}"


def left_by_a_crash(wal: Path) -> None:
    """One acknowledged request a killed server left in the log: a span named ``left-behind``."""
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = bytes(range(1, 17)), bytes(range(1, 9)), "left-behind"
    span.start_time_unix_nano = time.time_ns() - 10**9
    span.end_time_unix_nano = time.time_ns()
    wal.mkdir(parents=True)
    record = OtlpRecord(request.SerializeToString(), None, "otlp", 1)
    (wal / "wal-0000000000000001-1700000000.log").write_bytes(encode_record(record))


def test_cli_run_goes_through_the_write_ahead_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    left_by_a_crash(data / "wal")
    logged: list[tuple[str, str | None, int]] = []
    submit = WriteAheadLog.submit

    def spy(self: WriteAheadLog, record: OtlpRecord) -> Any:
        logged.append((record.receiver, record.tenant, record.spans))
        return submit(self, record)

    monkeypatch.setattr(WriteAheadLog, "submit", spy)
    result = eval_run("--dataset", str(dataset(tmp_path)), "--data-dir", str(data), *target("good"))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-2] == f"spans: {CASES} of {CASES} stored through the write-ahead log {data / 'wal'} " + (
        "(deduplicated; no server is running on it)"
    )
    run_id = re.findall(r"\d{8}T\d{6}Z-[0-9a-f]{8}", result.output)[0]
    assert lines[-1] == (
        f"no baseline pinned: pin this run with agentwatch eval baseline pin {run_id}"
        " (or --agent expense-bot for the agent's latest run)"
    )
    # Every eval span was logged (as the OTLP receiver's, for the default config's pipeline)...
    assert sum(spans for _, _, spans in logged) == CASES
    assert {(receiver, tenant) for receiver, tenant, _ in logged} == {("otlp", "default")}
    # ...converted into Parquet before the command returned, with what a crashed server left.
    run_id = re.search(r"eval run (\S+):", result.output).group(1)  # type: ignore[union-attr]
    con = connect(data)
    assert con.execute(
        "SELECT count(*), count(DISTINCT span_id), bool_and(synthetic), min(tenant), min(service_name)"
        " FROM spans WHERE eval_run_id = $r",
        {"r": run_id},
    ).fetchall() == [(CASES, CASES, True, "default", "agentwatch-synthetic")]
    assert con.execute("SELECT count(*) FROM spans WHERE name = 'left-behind'").fetchall() == [(1,)]
    assert sorted(p.name for p in (data / "wal").iterdir()) == []  # released, and unlocked


def test_cli_run_records_a_regression_against_the_pinned_baseline(tmp_path: Path) -> None:
    data, cases = str(tmp_path / "data"), str(dataset(tmp_path))
    good = eval_run("--dataset", cases, "--data-dir", data, *target("good"), "--format", "json")
    baseline = json.loads(good.output)["run_id"]
    pinned = CliRunner().invoke(main, ["eval", "baseline", "pin", baseline, "--data-dir", data])
    assert pinned.exit_code == 0, pinned.output
    worse = eval_run("--dataset", cases, "--data-dir", data, *target("worse"), "--fail-on-regression")
    assert worse.exit_code == 1, worse.output
    assert worse.output.splitlines()[-1] == (
        f"REGRESSION against the baseline {baseline}: overall, response_quality, topical_coverage"
    )
    con = connect(data)
    (regressed_run,) = con.execute("SELECT run_id FROM eval_runs WHERE overall_score < 3").fetchone() or ("",)
    events = con.execute("SELECT event, agent, run_id, baseline_run, dimensions FROM eval_events").fetchall()
    assert [e[:4] for e in events] == [("eval_regression", "expense-bot", regressed_run, baseline)]
    assert json.loads(str(events[0][4])) == {
        "overall": -7.1429,
        "response_quality": -10.0,
        "topical_coverage": -10.0,
    }
    jitter = eval_run("--dataset", cases, "--data-dir", data, *target("jitter"), "--format", "json")
    assert jitter.exit_code == 0, jitter.output
    doc = json.loads(jitter.output)
    assert (doc["baseline_run"], doc["regression"], doc["regressed_dimensions"]) == (baseline, False, [])
    assert doc["spans"] == {
        "made": CASES,
        "stored": CASES,
        "route": "log",
        "via": f"{data}/wal",
        "problem": None,
    }
    assert connect(data).execute("SELECT count(*) FROM eval_events").fetchall() == [(1,)]


TOKEN = "acme-ingest-token-0123456789"
AUTH = f"""    auth:
      tokens:
        - token: {TOKEN}
          tenant: acme
"""


@pytest.mark.process
def test_cli_run_sends_its_spans_to_the_running_server(tmp_path: Path) -> None:
    cases = str(dataset(tmp_path))
    server = ServerProcess(tmp_path, otlp_extra=AUTH).start()
    assert server.proc is not None
    pid = server.proc.pid
    try:
        data = str(server.data_dir)
        # The server wants a token: without the server's config the CLI has none, and says so.
        refused = eval_run("--dataset", cases, "--data-dir", data, *target("good"), "--tenant", "acme")
        assert refused.exit_code == 2
        assert "wants an ingest token, and this config has none for tenant 'acme'" in refused.output
        result = eval_run(
            "--dataset",
            cases,
            "--config",
            str(server.config_path),
            *target("good"),
            "--tenant",
            "acme",
            "--format",
            "json",
        )
        assert result.exit_code == 0, result.output
        doc = json.loads(result.output)
        assert doc["spans"] == {
            "made": CASES,
            "stored": CASES,
            "route": "server",
            "problem": None,
            "via": f"{server.http_url} (pid {pid})",
        }
        # Received, logged and converted by the server, once, under the tenant of the token.
        sql = f"SELECT count(*) FROM spans WHERE eval_run_id = '{doc['run_id']}' AND synthetic AND tenant = 'acme'"
        assert server.wait_for_count(sql, CASES) == CASES
        assert server.query(
            f"SELECT count(DISTINCT span_id) FROM spans WHERE eval_run_id = '{doc['run_id']}'"
        ) == [(CASES,)]
        metrics = httpx.get(f"http://127.0.0.1:{server.api_port}/metrics").text
        assert f'agentwatch_receiver_accepted_spans_total{{receiver="otlp"}} {float(CASES)}' in metrics
        assert server.query("SELECT count(*) FROM eval_runs WHERE run_id = '" + doc["run_id"] + "'") == [(1,)]
    finally:
        assert server.stop() == 0
    assert sorted(p.name for p in (server.data_dir / "wal").iterdir()) == []


def test_a_server_does_not_start_while_another_process_writes_the_log(tmp_path: Path) -> None:
    config = parse_config(
        f"storage: {{data_dir: '{tmp_path}', converter: inline, compaction: {{worker: inline}}}}\n"
        "api: {endpoint: '127.0.0.1:0'}\n"
        "receivers: {otlp: {protocols: {http: {endpoint: '127.0.0.1:0'}}}}\n",
        "test",
    )
    cli = WalLock(tmp_path / "wal")
    assert cli.try_acquire(command="eval run")
    service = Service(config)
    try:
        with pytest.raises(StorageError) as refused:
            service.start()
        assert str(refused.value) == (
            f"another process (pid {os.getpid()}, agentwatch eval run) is writing the write-ahead log of "
            f"{tmp_path}; one process at a time may: stop it, or wait for it to finish"
        )
    finally:
        cli.release()
    service.start()  # once the log is free
    try:
        holder = WalLock(tmp_path / "wal").holder()
        assert holder is not None
        assert holder["command"] == "serve"
        assert holder["otlp_http"] == [
            {
                "receiver": "otlp",
                "url": f"http://127.0.0.1:{service.endpoints.first('http')}/v1/traces",
                "auth": False,
            }
        ]
    finally:
        service.stop()


SYNTHETIC = """
receivers:
  otlp:
    protocols:
      http: {{endpoint: "127.0.0.1:0"}}
  synthetic/expense:
    agent: expense-bot
    dataset: {cases}
    target: python:tests.helpers.agents:worse
    schedule: "0 0 1 1 *"
storage: {{data_dir: "{data}", converter: inline}}
service:
  pipelines:
    traces:
      receivers: [otlp, synthetic/expense]
      processors: [normalize, classify]
      exporters: [parquet]
"""


def test_the_synthetic_receiver_and_the_cli_record_the_same_run(tmp_path: Path) -> None:
    """Both are ``run_and_record``: same rows for the same dataset and target, ids and times apart."""
    cases, data = str(dataset(tmp_path)), tmp_path / "data"
    config_path = tmp_path / "agentwatch.yaml"
    config_path.write_text(SYNTHETIC.format(cases=cases, data=data))
    config = parse_config(config_path.read_text(), str(config_path))
    ingest = Ingest(config, InlineConverter(assemble(config)), "test")
    ingest.start()
    try:
        settings = ReceiverSettings(
            "synthetic/expense", ingest.sink, ingest.recent, data, {"evals": config.evals}
        )
        receiver = synthetic.create(config.receivers["synthetic/expense"].config, settings)

        async def scheduled() -> str:
            await receiver.start()
            try:
                loop = asyncio.get_running_loop()
                return (await loop.run_in_executor(None, receiver.run_once, cases, "scheduled")).run_id
            finally:
                await receiver.shutdown()

        by_receiver = asyncio.run(scheduled())
    finally:
        ingest.stop()
    cli = eval_run(
        "--dataset",
        cases,
        "--config",
        str(config_path),
        *target("worse"),
        "--kind",
        "scheduled",
        "--format",
        "json",
    )
    assert cli.exit_code == 0, cli.output
    by_cli = json.loads(cli.output)["run_id"]
    con = connect(data)

    def rows(sql: str, run_id: str) -> list[tuple[Any, ...]]:
        return con.execute(sql, {"r": run_id}).fetchall()

    run_sql = (
        "SELECT agent, kind, dataset, target, judge, cases, errors, overall_score, dimension_scores"
        " FROM eval_runs WHERE run_id = $r"
    )
    assert (
        rows(run_sql, by_receiver)
        == rows(run_sql, by_cli)
        == [
            (
                "expense-bot",
                "scheduled",
                cases,
                "python:tests.helpers.agents:worse",
                "heuristic",
                CASES,
                0,
                2.8571,
                '{"topical_coverage":0.0,"response_quality":0.0,"hallucination_risk":10.0}',
            ),
        ]
    )
    results_sql = (
        "SELECT case_id, query, output, error, tool_call_count, overall_score, judge_problems"
        " FROM eval_results WHERE run_id = $r ORDER BY case_id"
    )
    assert rows(results_sql, by_receiver) == rows(results_sql, by_cli)
    assert len(rows(results_sql, by_cli)) == CASES
    scores_sql = (
        "SELECT eval_case_id, evaluator, dimension, value, label FROM scores WHERE eval_run_id = $r"
        " AND evaluator <> 'metric' ORDER BY ALL"
    )  # latency differs: not compared
    assert rows(scores_sql, by_receiver) == rows(scores_sql, by_cli)
    spans_sql = (
        "SELECT count(*), bool_and(synthetic), min(operation), min(tenant), min(service_name)"
        " FROM spans WHERE eval_run_id = $r"
    )
    assert (
        rows(spans_sql, by_receiver)
        == rows(spans_sql, by_cli)
        == [(CASES, True, "agent_run", "default", "agentwatch-synthetic")]
    )
