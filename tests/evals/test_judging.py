"""Judging beyond the heuristic default: a named target and an openai judge from the config's
``evals:`` section, groundedness_drop marks applied by ``runs``, a concurrency limit shared by
every run of a target, and production runs judged by a real ``agentwatch serve``."""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import set_span_in_context

from evals.datasets import Case
from evals.judges.heuristic import HeuristicJudge
from evals.runner import run_eval
from evals.targets.python import PythonTarget
from storage.catalog import connect
from storage.runs import Scope, runs_in
from tests.helpers import agents
from tests.helpers.agents import POLICY
from tests.helpers.evals import agentwatch
from tests.helpers.fake_http import FakeServer, Reply
from tests.helpers.server import ServerProcess


def chat(content: dict[str, object]) -> Reply:
    return Reply(200, {"choices": [{"message": {"role": "assistant", "content": json.dumps(content)}}]})


def answer() -> list[Reply]:
    """topical_coverage, then response_quality."""
    return [
        chat({"label": "full", "explanation": "all themes"}),
        chat({"label": "good", "explanation": "clear"}),
    ]


def grounding(label: str) -> list[Reply]:
    """groundedness, then hallucination_risk."""
    return [chat({"label": label, "explanation": f"{label} in the policy"}),
            chat({"label": "low", "explanation": "nothing invented"})]  # fmt: skip


@pytest.mark.process
def test_named_target_openai_judge_and_groundedness_drop(tmp_path: Path) -> None:
    cases = tmp_path / "cases.jsonl"
    cases.write_text(
        json.dumps({"id": "grounded", "query": "How do I file expenses?", "eval_guidance": "Concur, 30 days",
                    "fields": {"grounded": True}}) + "\n"
        + json.dumps({"id": "invented", "query": "How do I file expenses?", "eval_guidance": "Concur, 30 days",
                      "fields": {"grounded": False}}) + "\n"
    )  # fmt: skip
    data = tmp_path / "data"
    with FakeServer() as fake:
        config = tmp_path / "agentwatch.yaml"
        config.write_text(f"""storage:
  data_dir: {data}
evals:
  targets:
    expense-py:
      spec: python:tests.helpers.agents:retrieving
      concurrency: 1
  judges:
    openai:
      type: openai
      url: {fake.url}/v1
      model: judge-1
      api_key: ${{env:JUDGE_KEY}}
""")
        # concurrency 1: the cases are judged in order, one call per dimension.
        fake.script("/v1/chat/completions", *answer(), *grounding("grounded"), *answer(),
                    *grounding("ungrounded"))  # fmt: skip
        os.environ["JUDGE_KEY"] = "sk-judge"
        try:
            result = agentwatch("eval", "run", "--agent", "expense-bot", "--dataset", str(cases), "--config",
                                str(config), "--target", "expense-py", "--judge", "openai", "--format", "json")  # fmt: skip
        finally:
            del os.environ["JUDGE_KEY"]
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["judge"] == "openai" and summary["judge_problems"] == 0
    assert summary["dimensions"] == {"topical_coverage": 10.0, "response_quality": 10.0, "groundedness": 5.0,
                                     "hallucination_risk": 10.0}  # fmt: skip
    assert len(fake.seen) == 8 and fake.seen[0].headers["Authorization"] == "Bearer sk-judge"
    con = connect(data)
    assert con.execute("SELECT DISTINCT target FROM eval_runs").fetchall() == [("expense-py",)]
    assert con.execute(
        "SELECT r.eval_case_id, s.dimension, s.label, s.value, s.judge_model FROM scores s"
        " JOIN runs r USING (trace_id, span_id) WHERE s.dimension = 'groundedness' ORDER BY 1"
    ).fetchall() == [
        ("grounded", "groundedness", "grounded", 10.0, "openai:judge-1"),
        ("invented", "groundedness", "ungrounded", 0.0, "openai:judge-1"),
    ]
    # Tool calls the target reported are child spans whose output is the evidence judged.
    assert con.execute(
        "SELECT count(*), min(output_text) FROM spans WHERE operation = 'tool' AND synthetic"
    ).fetchall() == [(2, POLICY)]
    # The ungrounded run is degraded with groundedness_drop, in the view and in the reports' runs.
    expected = [
        ("grounded", "success", None, None),
        ("invented", "degraded", "groundedness_drop", "groundedness 0 < 5 (openai:judge-1)"),
    ]
    assert (
        con.execute(
            "SELECT eval_case_id, outcome, failure_type, error_message FROM runs ORDER BY 1"
        ).fetchall()
        == expected
    )
    assert con.execute(
        "SELECT count(*) FROM runs WHERE outcome = 'degraded' AND failing_span_id = span_id"
    ).fetchall() == [(1,)]
    # (eval runs: a run set holds them when its scope asks for synthetic runs)
    assert runs_in(con, Scope.last(timedelta(hours=1), synthetic=True)).query(
        "SELECT outcome, failure_type, error_template FROM runs ORDER BY outcome"
    ) == [
        ("degraded", "groundedness_drop", "judge: groundedness_drop"),
        ("success", None, None),
    ]


@pytest.mark.process
def test_config_names_unknown_targets_and_judges(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("""receivers:
  otlp: {}
  synthetic/x:
    agent: a
    dataset: d.jsonl
    target: nowhere
    judge: gpt
evals:
  targets:
    t:
      spec: ftp:somewhere
      concurrency: 0
  judges:
    j:
      type: openai
      url: not-a-url
  production:
    sample_rate: 2
""")
    result = agentwatch("validate", str(config))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "agentwatch: invalid configuration:",
        f"  {config}:6: receivers.synthetic/x.target: 'nowhere' is neither a target under evals.targets (t) "
        "nor a spec (python:…, openai:…, glean:…, http:…)",
        f"  {config}:7: receivers.synthetic/x.judge: 'gpt' is not a judge: use one of heuristic, j (judges are "
        "defined under evals.judges), or a spec openai:URL#model / glean:URL",
        f"  {config}:11: evals.targets.t.spec: 'ftp:somewhere' must start with one of python:, openai:, glean:, "
        "http:",
        f"  {config}:12: evals.targets.t.concurrency: must be at least 1",
        f"  {config}:14: evals.judges.j.model: an openai judge needs a model",
        f"  {config}:16: evals.judges.j.url: openai judges need an http(s) URL",
        f"  {config}:18: evals.production.sample_rate: must be between 0 and 1",
    ]


def test_a_targets_concurrency_limit_is_shared_by_its_runs() -> None:
    agents.PAIRED.update(lock=threading.Lock(), active=0, most=0, barrier=threading.Barrier(2, timeout=20))
    tracer = TracerProvider().get_tracer("test")
    cases = [Case(f"c{i}", f"Question {i}?") for i in range(4)]

    def one_run(_: int) -> int:
        target = PythonTarget("tests.helpers.agents:paired", concurrency=2)
        run = run_eval(cases, target, HeuristicJudge(), tracer, agent="a", dataset="d")
        return run.errors

    with ThreadPoolExecutor(2) as pool:  # two runs at once, as a scheduled and a canary run can be
        errors = list(pool.map(one_run, range(2)))
    assert errors == [0, 0]
    assert agents.PAIRED["most"] == 2


@pytest.mark.process
def test_production_runs_are_sampled_and_judged_in_serve(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    server.extra_config = """
evals:
  groundedness_threshold: 5
  production:
    sample_rate: 1.0
    interval: 0.3s
    settle: 0s
"""
    server.start()
    try:
        provider = TracerProvider(resource=Resource.create({"service.name": "helpdesk"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(server.http_url)))
        tracer = provider.get_tracer("test")
        answers = {
            "grounded": "Expenses are filed in Concur within 30 days and a manager approves.",
            "invented": "Mail the paper form to the travel desk for a cheque refund.",
        }
        trace_ids = {}
        for name, answer in answers.items():
            run = tracer.start_span("agent_run", attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.id": "helpdesk",
                "input.value": "How do I file expenses?", "output.value": answer, "user.id": "bob",
            })  # fmt: skip
            tool = tracer.start_span("execute_tool search", set_span_in_context(run), attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
                "gen_ai.tool.call.result": POLICY,
            })  # fmt: skip
            tool.end()
            run.end()
            trace_ids[name] = format(run.get_span_context().trace_id, "032x")
        provider.shutdown()
        deadline = time.monotonic() + 60
        found: list[tuple[object, ...]] = []
        while time.monotonic() < deadline and len(found) < 2:
            found = (
                connect(server.data_dir)
                .execute("SELECT trace_id, label FROM scores WHERE dimension = 'groundedness' ORDER BY label")
                .fetchall()
            )
            time.sleep(0.2)
        assert found == [(trace_ids["grounded"], "grounded"), (trace_ids["invented"], "ungrounded")]
        con = connect(server.data_dir)
        assert con.execute(
            "SELECT dimension, label, evaluator, judge_model FROM scores WHERE trace_id = $t ORDER BY 1",
            {"t": trace_ids["invented"]},
        ).fetchall() == [
            ("groundedness", "ungrounded", "heuristic", "heuristic"),
            ("hallucination_risk", "medium", "heuristic", "heuristic"),
            ("response_quality", "adequate", "heuristic", "heuristic"),
        ]
        assert con.execute(
            "SELECT trace_id, outcome, failure_type FROM runs ORDER BY outcome"
        ).fetchall() == [
            (trace_ids["invented"], "degraded", "groundedness_drop"),
            (trace_ids["grounded"], "success", None),
        ]
        time.sleep(1.0)  # later passes find nothing new to judge: no double scores
        assert connect(server.data_dir).execute("SELECT count(*) FROM scores").fetchall() == [(6,)]
        metrics = httpx.get(f"http://127.0.0.1:{server.api_port}/metrics").text
        assert "agentwatch_judged_runs_total 2.0" in metrics
        assert "agentwatch_judge_marks_total 1.0" in metrics
    finally:
        server.stop()
