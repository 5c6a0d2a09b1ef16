"""The synthetic receiver inside a real ``agentwatch serve``: it runs the agent's dataset, its
spans go through the write-ahead log into ``spans``, the run is stored, and a run worse than the
pinned baseline becomes an ``eval_events`` row."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from storage.catalog import connect
from storage.tables import EvalBaselineRow, write_rows
from tests.helpers.evals import TOPICS, dataset, eval_run
from tests.helpers.server import ServerProcess

pytestmark = pytest.mark.process  # a real server


def synthetic_receiver(cases: Path, function: str) -> str:
    """A sibling of receivers.otlp in ServerProcess's config (two-space indent)."""
    return f"""  synthetic/expense:
    agent: expense-bot
    dataset: {cases}
    target: python:tests.helpers.agents:{function}
    schedule: "0 0 1 1 *"
    run_on_start: true
"""


SERVICE = """
service:
  pipelines:
    traces:
      receivers: [otlp, synthetic/expense]
      processors: [normalize, classify]
      exporters: [parquet]
"""


def wait_for(data: Path, sql: str, expected: object, timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    value: object = None
    while time.monotonic() < deadline:
        value = connect(data).execute(sql).fetchall()
        if value == expected:
            return value
        time.sleep(0.2)
    return value


def test_scheduled_run_is_traced_stored_and_compared(tmp_path: Path) -> None:
    cases = dataset(tmp_path)
    server = ServerProcess(tmp_path)
    # A good baseline first, pinned, from the command line into the same data directory.
    baseline = str(eval_run(server.data_dir, cases, "good")["run_id"])
    now = datetime.now(UTC)
    write_rows(server.data_dir, "default", now, [EvalBaselineRow("expense-bot", "baseline", baseline, now)])
    server.otlp_extra = synthetic_receiver(cases, "worse")
    server.extra_config = SERVICE
    server.start()
    try:
        runs = "SELECT kind, cases, errors FROM eval_runs WHERE kind = 'scheduled'"
        assert wait_for(server.data_dir, runs, [("scheduled", len(TOPICS), 0)]) == [
            ("scheduled", len(TOPICS), 0)
        ]
        spans = "SELECT count(*) FROM spans WHERE synthetic AND eval_run_id <> '" + baseline + "'"
        assert wait_for(server.data_dir, spans, [(len(TOPICS),)]) == [(len(TOPICS),)]
        events = "SELECT event, agent, baseline_run FROM eval_events"
        assert wait_for(server.data_dir, events, [("eval_regression", "expense-bot", baseline)]) == [
            ("eval_regression", "expense-bot", baseline)
        ]
        (dimensions,) = connect(server.data_dir).execute("SELECT dimensions FROM eval_events").fetchone() or (
            "",
        )
        assert json.loads(dimensions) == {
            "overall": -7.1429,
            "response_quality": -10.0,
            "topical_coverage": -10.0,
        }
        metrics = connect(server.data_dir)  # the receiver's spans were acknowledged like any export
        assert metrics.execute("SELECT count(*) FROM spans WHERE synthetic").fetchall() == [
            (2 * len(TOPICS),)
        ]
    finally:
        assert server.stop() == 0


def test_scheduled_runs_price_the_agents_tokens_with_the_configs_prices(tmp_path: Path) -> None:
    cases = dataset(tmp_path)
    prices = "processors:\n  cost:\n    models:\n      acme-llm: {input: 2.0, output: 10.0}\n"
    server = ServerProcess(
        tmp_path, otlp_extra=synthetic_receiver(cases, "priced"), extra_config=SERVICE + prices
    )
    server.start()
    try:
        # Per case 1,000 input tokens at $2/M and 200 output at $10/M: $0.004.
        runs = (
            "SELECT cases, agent_input_tokens, agent_output_tokens, round(agent_cost_usd, 9) FROM eval_runs"
        )
        expected = [(len(TOPICS), 1000 * len(TOPICS), 200 * len(TOPICS), round(0.004 * len(TOPICS), 9))]
        assert wait_for(server.data_dir, runs, expected) == expected
    finally:
        assert server.stop() == 0


def test_scheduled_runs_carry_multi_turn_cases_with_the_configs_simulator(tmp_path: Path) -> None:
    from tests.evals.test_multi_turn import Fake

    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps({"id": "c1", "query": "Book me a flight to Paris", "turns": 2}) + "\n")
    with Fake(["Tuesday"]) as fake:
        evals = f"""evals:
  targets:
    bot: {{spec: "openai:{fake.url}/v1#agent-model", retries: 0}}
    user-sim: {{spec: "openai:{fake.url}/v1#sim-model", retries: 0}}
  multi_turn: {{simulator: user-sim}}
"""
        receiver = synthetic_receiver(cases, "good").replace(
            "target: python:tests.helpers.agents:good", "target: bot"
        )
        server = ServerProcess(tmp_path, otlp_extra=receiver, extra_config=SERVICE + evals)
        server.start()
        try:
            # The agent answered twice (A1, A2), the simulator once between: the transcript is the output.
            results = "SELECT case_id, error, output FROM eval_results"
            expected = [
                ("c1", None, "User: Book me a flight to Paris\n\nAgent: A1\n\nUser: Tuesday\n\nAgent: A2")
            ]
            assert wait_for(server.data_dir, results, expected) == expected
            turns = "SELECT value FROM scores WHERE dimension = 'turns_used'"
            assert wait_for(server.data_dir, turns, [(2.0,)]) == [(2.0,)]
        finally:
            assert server.stop() == 0
    assert fake.order() == ["agent-model", "sim-model", "agent-model"]
