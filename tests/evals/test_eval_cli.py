"""``agentwatch eval run / baseline pin / diff`` end to end, with in-process agents: a drop on
every case is a regression on the right dimensions; jitter on two cases is not. Runs are
traced into spans (synthetic, with their eval ids) and scores join spans on trace_id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storage.catalog import connect
from tests.helpers.evals import agentwatch, dataset, eval_run

pytestmark = pytest.mark.process  # the CLI as a subprocess


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("evals")
    data, cases = tmp / "data", dataset(tmp)
    runs = {name: str(eval_run(data, cases, name)["run_id"]) for name in ("good", "worse", "jitter")}
    return data, runs


def test_run_summary_spans_and_scores(history: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    data, runs = history
    con = connect(data)
    assert con.execute(
        "SELECT kind, cases, errors, overall_score FROM eval_runs WHERE run_id = $r", {"r": runs["worse"]}
    ).fetchall() == [("manual", 8, 0, round(20 / 7, 4))]  # refusals: (3*0 + 2*0 + 2*10) / 7
    # Every case is a synthetic agent_run span with its run and case ids, and its scores join it.
    assert con.execute(
        "SELECT count(*), count(DISTINCT eval_case_id), bool_and(synthetic), min(agent_id), min(operation)"
        " FROM spans WHERE eval_run_id = $r",
        {"r": runs["good"]},
    ).fetchall() == [(8, 8, True, "expense-bot", "agent_run")]
    assert con.execute(
        "SELECT s.dimension, count(*), min(s.value), max(s.value) FROM scores s JOIN spans USING (trace_id, span_id)"
        " WHERE s.eval_run_id = $r AND s.evaluator = 'heuristic' GROUP BY ALL ORDER BY ALL",
        {"r": runs["worse"]},
    ).fetchall() == [
        ("hallucination_risk", 8, 10.0, 10.0),
        ("response_quality", 8, 0.0, 0.0),
        ("topical_coverage", 8, 0.0, 0.0),
    ]


def test_drop_on_every_case_is_a_regression(history: tuple[Path, dict[str, str]]) -> None:
    data, runs = history
    pinned = agentwatch("eval", "baseline", "pin", runs["good"], "--data-dir", str(data))
    assert pinned.returncode == 0, pinned.stderr
    assert pinned.stdout.strip() == f"pinned {runs['good']} as the baseline of expense-bot"
    result = agentwatch(
        "eval", "diff", runs["good"], runs["worse"], "--data-dir", str(data), "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["regression"] is True
    assert doc["regressed_dimensions"] == ["overall", "response_quality", "topical_coverage"]
    coverage = next(d for d in doc["dimensions"] if d["dimension"] == "topical_coverage")
    assert coverage == {"dimension": "topical_coverage", "cases": 8, "baseline": 10.0, "candidate": 0.0,
                        "delta": -10.0, "p_value": 0.003906, "regressed": True,  # 1/2**8
                        "rule": "signed-rank", "reason": "the mean fell 10.00 points (more than 1), p = 0.0039 < 0.05",
                        # a single judge: no disagreement to show
                        "unstable_cases": 0, "max_spread": None, "baseline_unstable_cases": 0,
                        "baseline_max_spread": None}  # fmt: skip
    assert len(doc["worse_cases"]) == 8
    latest = agentwatch("eval", "baseline", "pin", "--agent", "expense-bot", "--data-dir", str(data))
    assert latest.stdout.strip() == f"pinned {runs['jitter']} as the baseline of expense-bot"
    pinned = agentwatch("eval", "baseline", "pin", runs["good"], "--data-dir", str(data))
    failing = agentwatch(
        "eval", "diff", "--agent", "expense-bot", "--data-dir", str(data), "--fail-on-regression"
    )
    # latest run (jitter) vs the pinned baseline (good): no regression, exit 0
    assert failing.returncode == 0, failing.stdout + failing.stderr
    assert failing.stdout.strip().endswith("no regression")


def test_jitter_is_not_a_regression(history: tuple[Path, dict[str, str]]) -> None:
    data, runs = history
    result = agentwatch(
        "eval", "diff", runs["good"], runs["jitter"], "--data-dir", str(data), "--format", "json"
    )
    doc = json.loads(result.stdout)
    assert doc["regression"] is False
    assert doc["regressed_dimensions"] == []
    coverage = next(d for d in doc["dimensions"] if d["dimension"] == "topical_coverage")
    assert (coverage["delta"], coverage["p_value"], coverage["regressed"]) == (-0.625, 0.25, False)
    assert [c["case_id"] for c in doc["worse_cases"]] == ["c3", "c6"]


def test_diff_errors_are_clear(history: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    data, _ = history
    result = agentwatch("eval", "diff", "nope", "--data-dir", str(data))
    assert result.returncode == 2
    assert result.stderr.strip() == "agentwatch eval diff: no eval run 'nope' in this data directory"
    empty = agentwatch("eval", "diff", "--agent", "x", "--data-dir", str(tmp_path))
    assert empty.stderr.strip() == (
        "agentwatch eval diff: agent 'x' has no pinned baseline: pin one with agentwatch eval baseline pin RUN_ID"
        " (or --agent x for its latest run)"
    )
    neither = agentwatch("eval", "baseline", "pin", "--data-dir", str(data))
    assert neither.returncode == 2
    assert "name the run to pin (RUN_ID), or --agent to pin its latest run" in neither.stderr
    no_runs = agentwatch("eval", "baseline", "pin", "--agent", "x", "--data-dir", str(data))
    assert no_runs.returncode == 2
    assert "Invalid value for --agent: agent 'x' has no eval runs" in no_runs.stderr
    bad = agentwatch("eval", "run", "--agent", "a", "--dataset", str(tmp_path / "none.csv"), "--target", "python:x:y",
                     "--data-dir", str(tmp_path))  # fmt: skip
    assert bad.returncode == 2
    assert "cannot read dataset" in bad.stderr
