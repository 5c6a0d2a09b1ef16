"""Seer-compatible scoring (issue 18, item 2): a judge's ``scale: seer`` asks for Seer's labels and
scores them under the names and weights of ``evals.seer.dimensions`` (worked examples, by hand);
``agentwatch eval import-seer`` reads a Seer SQLite database (snake_case or camelCase columns,
``--column`` overrides, a clear error naming a missing table or column) into datasets, runs,
results and scores, pins baselines, duplicates nothing when run twice, and prints the config that
makes a new run comparable; an imported baseline diffs against a new run judged by a fake
OpenAI-compatible server."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from agentwatch.cli import main
from agentwatch.config import parse_config
from core.errors import ConfigError
from evals.config import EvalsConfig, JudgeConfig, SeerConfig, SeerDimension
from evals.datasets import Case, load_dataset
from evals.judges.factory import build_judge
from evals.judges.seer import GRADED, RISK
from evals.targets import TargetResult
from storage.catalog import connect
from tests.evals.fakes import OpenAIJudge, verdict

GUIDANCE = "Mentions Concur and the 30-day limit"
CASE = Case("c1", "How do I file expenses?", eval_guidance=GUIDANCE)
ANSWER = TargetResult("File it in Concur within 30 days.", 5.0)


def seer_judge(url: str, dimensions: dict[str, SeerDimension] | None = None) -> EvalsConfig:
    judge = JudgeConfig(type="openai", url=f"{url}/v1", model="judge-1", backoff=0.01, scale="seer")
    return EvalsConfig(judges={"j": judge}, seer=SeerConfig(dimensions or {}))


# -- the scale: worked examples ------------------------------------------------------------------


def test_seer_labels_are_the_issues_points() -> None:
    assert dict(GRADED) == {"full": 10.0, "substantial": 7.5, "partial": 5.0, "minimal": 2.5, "failure": 0.0}
    assert dict(RISK) == {"low": 10.0, "medium": 5.0, "high": 0.0}


def test_worked_example_under_configured_seer_names_and_weights() -> None:
    # Weights from the config: Coverage 4, Quality 1, Risk 5.
    dimensions = {"Coverage": SeerDimension("topical_coverage", 4.0), "Quality": SeerDimension("response_quality", 1.0),
                  "Risk": SeerDimension("hallucination_risk", 5.0)}  # fmt: skip
    labels = {"topical_coverage": "substantial", "response_quality": "partial", "hallucination_risk": "low"}
    with OpenAIJudge(labels) as model:
        evals = seer_judge(model.url, dimensions)
        assert evals.validate() == []
        judgement = build_judge("j", evals).judge(CASE, ANSWER)
    # Only the configured dimensions are asked (groundedness has no evidence here anyway), each
    # with Seer's labels, under agentwatch's question for it.
    assert [c.dimension for c in model.calls] == ["topical_coverage", "response_quality", "hallucination_risk"]
    assert "Labels: full | substantial | partial | minimal | failure" in model.calls[0].prompt
    assert "Labels: low | medium | high" in model.calls[2].prompt
    assert [(s.dimension, s.label, s.value) for s in judgement.scores] == [
        ("Coverage", "substantial", 7.5), ("Quality", "partial", 5.0), ("Risk", "low", 10.0),
    ]  # fmt: skip
    assert judgement.overall_score == 8.5  # (4*7.5 + 1*5 + 5*10) / 10
    assert [c.dimension for c in judgement.calls] == ["Coverage", "Quality", "Risk"]  # the ledger: Seer's names


def test_worked_example_without_seer_dimensions_keeps_the_builtin_names_and_weights() -> None:
    labels = {"topical_coverage": "full", "response_quality": "minimal", "hallucination_risk": "medium"}
    with OpenAIJudge(labels, bad={"topical_coverage": [verdict("most")]}) as model:
        judgement = build_judge("j", seer_judge(model.url)).judge(CASE, ANSWER)
    # "most" is a label of the default scale, not Seer's: said back and asked again.
    assert model.calls[1].body["messages"][-1]["content"] == (
        "That reply is invalid: 'most' is not one of full, substantial, partial, minimal, failure. "
        "Reply again with only the JSON object."
    )
    assert [(s.dimension, s.label, s.value) for s in judgement.scores] == [
        ("topical_coverage", "full", 10.0), ("response_quality", "minimal", 2.5),
        ("hallucination_risk", "medium", 5.0),
    ]  # fmt: skip
    assert judgement.overall_score == 6.4286  # agentwatch's weights 3, 2, 2: (30 + 5 + 10) / 7


def test_an_empty_answer_is_seers_failure_under_the_seer_name() -> None:
    evals = seer_judge("http://127.0.0.1:9", {"Quality": SeerDimension("response_quality", 2.0)})
    judgement = build_judge("j", evals).judge(CASE, TargetResult("", 5.0))
    assert [(s.dimension, s.label, s.value) for s in judgement.scores] == [("Quality", "failure", 0.0)]
    assert judgement.overall_score == 0.0


def test_an_ensemble_of_seer_judges_combines_under_seer_names_and_weights() -> None:
    # Weights from the config: Cov 3, Risk 1 (response_quality is not one of Seer's dimensions here).
    one = {"topical_coverage": "full", "response_quality": "partial", "hallucination_risk": "low"}
    two = {"topical_coverage": "partial", "response_quality": "partial", "hallucination_risk": "high"}
    with OpenAIJudge(one) as a, OpenAIJudge(two) as b:
        judges = {name: JudgeConfig(type="openai", url=f"{m.url}/v1", model="m", backoff=0.01, scale="seer")
                  for name, m in (("a", a), ("b", b))}  # fmt: skip
        judges["panel"] = JudgeConfig(type="ensemble", members=["a", "b"], scale="seer")
        evals = EvalsConfig(judges=judges, seer=SeerConfig({"Cov": SeerDimension("topical_coverage", 3.0),
                                                            "Risk": SeerDimension("hallucination_risk", 1.0)}))  # fmt: skip
        assert evals.validate() == []
        judgement = build_judge("panel", evals).judge(CASE, ANSWER)
    assert [c.dimension for c in a.calls] == ["topical_coverage", "hallucination_risk"]
    # Cov: mean(10, 5) = 7.5, Seer's nearest label substantial; Risk: mean(10, 0) = 5, medium.
    assert [(s.dimension, s.label, s.value, s.spread) for s in judgement.scores] == [
        ("Cov", "substantial", 7.5, 5.0), ("Risk", "medium", 5.0, 10.0)]  # fmt: skip
    assert judgement.overall_score == 6.875  # (3*7.5 + 1*5) / 4


def test_scale_and_seer_dimension_errors_name_the_yaml_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            "evals:\n  judges:\n    h: {type: heuristic, scale: seer}\n"
            "    o: {type: openai, url: http://x/v1, model: m, scale: Seer}\n"
            "    p: {type: ensemble, members: [o, q], scale: seer}\n"
            "    q: {type: openai, url: http://x/v1, model: m, scale: seer}\n"
            "  seer:\n    dimensions:\n      overall: {dimension: groundedness, weight: 1}\n"
            "      groundedness: {dimension: topical_coverage, weight: -1}\n"
            "      Accuracy: {dimension: nope, weight: 1}\n"
            "      topicalCoverage: {dimension: groundedness, weight: 2}\n",
            "c.yaml",
        )
    assert str(caught.value).splitlines() == [
        "c.yaml:3: evals.judges.h.scale: the heuristic judge scores its own labels; seer is for openai, glean "
        "and ensemble judges",
        "c.yaml:4: evals.judges.o.scale: 'Seer' is not one of default, seer",
        "c.yaml:5: evals.judges.p.members: 'o' does not score on the ensemble's scale (seer): give it scale: seer",
        "c.yaml:9: evals.seer.dimensions.overall: 'overall' is the overall score or a metric, not a dimension",
        "c.yaml:10: evals.seer.dimensions.groundedness: a built-in dimension's name can only be that dimension",
        "c.yaml:10: evals.seer.dimensions.groundedness.weight: must be a finite number, not negative",
        "c.yaml:11: evals.seer.dimensions.Accuracy.dimension: 'nope' is not a dimension (one of topical_coverage, "
        "response_quality, groundedness, hallucination_risk, factual_accuracy, golden)",
        "c.yaml:12: evals.seer.dimensions.topicalCoverage.dimension: 'groundedness' is judged already, for 'overall'",
    ]


# -- import-seer -----------------------------------------------------------------------------------

SNAKE = """
CREATE TABLE eval_sets (id TEXT PRIMARY KEY, name TEXT);
CREATE TABLE eval_cases (id TEXT PRIMARY KEY, eval_set_id TEXT, query TEXT, expected_answer TEXT);
CREATE TABLE eval_criteria (id TEXT PRIMARY KEY, name TEXT, weight REAL, rubric TEXT, scale_type TEXT);
CREATE TABLE eval_runs (id TEXT PRIMARY KEY, eval_set_id TEXT, created_at, overall_score REAL);
CREATE TABLE eval_results (id TEXT PRIMARY KEY, eval_run_id TEXT, eval_case_id TEXT, output TEXT,
                           overall_score REAL);
CREATE TABLE eval_scores (id INTEGER PRIMARY KEY, eval_result_id TEXT, criteria_id TEXT, score REAL,
                          label TEXT, explanation TEXT);
"""
CAMEL = """
CREATE TABLE eval_sets (setId TEXT PRIMARY KEY, title TEXT);
CREATE TABLE eval_cases (caseId TEXT PRIMARY KEY, evalSetId TEXT, prompt TEXT, goldenAnswer TEXT);
CREATE TABLE eval_criteria (criterionId TEXT PRIMARY KEY, name TEXT, weight REAL, description TEXT,
                            scaleType TEXT);
CREATE TABLE eval_runs (runId TEXT PRIMARY KEY, evalSetId TEXT, startedAt, overallScore REAL);
CREATE TABLE eval_results (resultId TEXT PRIMARY KEY, evalRunId TEXT, evalCaseId TEXT, response TEXT,
                           overallScore REAL);
CREATE TABLE eval_scores (scoreId INTEGER PRIMARY KEY, evalRunId TEXT, evalCaseId TEXT, criterionId TEXT,
                          value REAL, label TEXT, reasoning TEXT);
"""
"""camelCase, and scores that name their run and case instead of a result."""
SETS = [("s1", "Expense bot"), ("s2", "Travel bot")]
CASES = [("c1", "s1", "How do I file expenses?", "In Concur within 30 days."), ("c2", "s1", "Who approves?", None),
         ("c3", "s2", "Book a flight to Paris", None)]  # fmt: skip
CRITERIA = [("k1", "topicalCoverage", 3.0, "Covers the guidance?", "graded"),
            ("k2", "hallucinationRisk", 2.0, "Invented facts?", "risk"),
            ("k3", "citesPolicy", 1.0, "Does the answer cite the policy?", "graded")]  # fmt: skip
# r1: ISO text with its own overall score; r2: epoch seconds (2026-05-05T10:00:00Z); r3: epoch ms
# (2026-05-06T10:00:00Z).
RUNS = [("r1", "s1", "2026-05-01T10:00:00Z", 7.5), ("r2", "s1", 1777975200, None), ("r3", "s2", 1778061600000, None)]
RESULTS = [("res1", "r1", "c1", "File it in Concur.", None), ("res2", "r1", "c2", "Your manager.", 7.0),
           ("res3", "r2", "c1", "Concur, 30 days.", None), ("res4", "r2", "c2", "Ask HR.", None),
           ("res5", "r3", "c3", "Booked.", None)]  # fmt: skip
SCORES = [
    ("res1", "k1", None, "substantial", "mostly covered"),  # a label only: 7.5 on Seer's scale
    ("res1", "k2", 10.0, "low", None), ("res1", "k3", 5.0, "partial", None),
    ("res2", "k1", 10.0, "full", None), ("res2", "k2", 5.0, "high", None),  # the stored 5 wins over high (0)
    ("res3", "k1", None, "full", None), ("res3", "k2", None, "low", None), ("res3", "k3", None, "failure", None),
    ("res4", "k1", None, "partial", None), ("res4", "k2", None, "medium", None), ("res4", "k3", None, "minimal", None),
    ("res5", "k1", None, "minimal", None), ("res5", "k2", None, "low", None),
    ("res5", "k3", None, "meh", None),  # neither a value nor a Seer label: left out
]  # fmt: skip


P = "seer-4c44f7db"
"""The run ids' prefix of these tests' database in the default tenant: seer- and a digest of its
first run (r1, 2026-05-01T10:00:00+00:00) and the tenant."""
Rr1, Rr2, Rr3 = f"{P}-r1", f"{P}-r2", f"{P}-r3"


def seer_db(path: Path, schema: str = SNAKE, drop: tuple[str, str] | None = None) -> Path:
    """The Seer-like database of these tests; ``drop``: (table, column) renamed to ``text``."""
    if drop is not None:
        table, column = drop
        lines = schema.splitlines()
        schema = "\n".join(re.sub(rf"\b{column}\b", "text", ln) if f"TABLE {table} " in ln else ln for ln in lines)
    con = sqlite3.connect(path)
    con.executescript(schema)
    for table, rows in (("eval_sets", SETS), ("eval_cases", CASES), ("eval_criteria", CRITERIA),
                        ("eval_runs", RUNS), ("eval_results", RESULTS)):  # fmt: skip
        con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)
    if "evalRunId TEXT, evalCaseId" in schema:
        of = {result: (run, case) for result, run, case, _, _ in RESULTS}
        con.executemany("INSERT INTO eval_scores VALUES (NULL, ?, ?, ?, ?, ?, ?)",
                        [(*of[result], *rest) for result, *rest in SCORES])  # fmt: skip
    else:
        con.executemany("INSERT INTO eval_scores VALUES (NULL, ?, ?, ?, ?, ?)", SCORES)
    con.commit()
    con.close()
    return path


def import_seer(tmp_path: Path, db: Path, *args: str) -> Result:
    argv = ["eval", "import-seer", str(db), "--data-dir", str(tmp_path / "data"),
            "--datasets-dir", str(tmp_path / "datasets"), *args]  # fmt: skip
    return CliRunner().invoke(main, argv, catch_exceptions=False)


SNIPPET = """evals:
  seer:
    dimensions:
      topicalCoverage: {dimension: topical_coverage, weight: 3}
      hallucinationRisk: {dimension: hallucination_risk, weight: 2}
      citesPolicy: {dimension: cites_policy, weight: 1}
  criteria:
    cites_policy:
      rubric: "Does the answer cite the policy?"
      scale: {full: 10, substantial: 7.5, partial: 5, minimal: 2.5, failure: 0}
      weight: 1
"""


def stored(data: Path) -> dict[str, Any]:
    con = connect(data)
    return {
        "runs": con.execute(
            "SELECT run_id, agent, kind, dataset, judge, started_at::VARCHAR, cases, errors, overall_score,"
            " dimension_scores FROM eval_runs ORDER BY run_id"
        ).fetchall(),
        "results": con.execute(
            "SELECT run_id, case_id, query, output, overall_score, latency_ms FROM eval_results ORDER BY 1, 2"
        ).fetchall(),
        "scores": con.execute(
            "SELECT eval_run_id, eval_case_id, dimension, value, label, evaluator FROM scores ORDER BY 1, 2, 3"
        ).fetchall(),
        "baselines": con.execute("SELECT agent, kind, run_id FROM eval_baselines ORDER BY 1").fetchall(),
    }


def expected_rows(datasets: Path) -> dict[str, Any]:
    expense, travel = str(datasets / "expense-bot.jsonl"), str(datasets / "travel-bot.jsonl")
    return {
        "runs": [
            (Rr1, "Expense bot", "seer", expense, "seer", "2026-05-01 10:00:00+00", 2, 0, 7.5,
             '{"topicalCoverage":8.75,"hallucinationRisk":7.5,"citesPolicy":5.0}'),
            # (8.3333 + 4.5833) / 2: no overall stored for the run, the mean of its results'
            (Rr2, "Expense bot", "seer", expense, "seer", "2026-05-05 10:00:00+00", 2, 0, 6.4583,
             '{"topicalCoverage":7.5,"hallucinationRisk":7.5,"citesPolicy":1.25}'),
            (Rr3, "Travel bot", "seer", travel, "seer", "2026-05-06 10:00:00+00", 1, 0, 5.5,
             '{"topicalCoverage":2.5,"hallucinationRisk":10.0}'),
        ],
        "results": [
            (Rr1, "c1", "How do I file expenses?", "File it in Concur.", 7.9167, None),  # (3*7.5+2*10+5)/6
            (Rr1, "c2", "Who approves?", "Your manager.", 7.0, None),  # stored
            (Rr2, "c1", "How do I file expenses?", "Concur, 30 days.", 8.3333, None),  # (30+20+0)/6
            (Rr2, "c2", "Who approves?", "Ask HR.", 4.5833, None),  # (15+10+2.5)/6
            (Rr3, "c3", "Book a flight to Paris", "Booked.", 5.5, None),  # (3*2.5+2*10)/5
        ],
        "scores": [
            (Rr1, "c1", "citesPolicy", 5.0, "partial", "seer"),
            (Rr1, "c1", "hallucinationRisk", 10.0, "low", "seer"),
            (Rr1, "c1", "topicalCoverage", 7.5, "substantial", "seer"),
            (Rr1, "c2", "hallucinationRisk", 5.0, "high", "seer"),
            (Rr1, "c2", "topicalCoverage", 10.0, "full", "seer"),
            (Rr2, "c1", "citesPolicy", 0.0, "failure", "seer"),
            (Rr2, "c1", "hallucinationRisk", 10.0, "low", "seer"),
            (Rr2, "c1", "topicalCoverage", 10.0, "full", "seer"),
            (Rr2, "c2", "citesPolicy", 2.5, "minimal", "seer"),
            (Rr2, "c2", "hallucinationRisk", 5.0, "medium", "seer"),
            (Rr2, "c2", "topicalCoverage", 5.0, "partial", "seer"),
            (Rr3, "c3", "hallucinationRisk", 10.0, "low", "seer"),
            (Rr3, "c3", "topicalCoverage", 2.5, "minimal", "seer"),
        ],
        "baselines": [("Expense bot", "baseline", Rr2), ("Travel bot", "baseline", Rr3)],
    }


def test_import_writes_datasets_runs_results_scores_and_pins_baselines_once(tmp_path: Path) -> None:
    db = seer_db(tmp_path / "seer.db")
    first = import_seer(tmp_path, db, "--pin-baseline")
    assert first.exit_code == 0, first.output
    datasets = tmp_path / "datasets"
    assert [(c.id, c.query, c.expected) for c in load_dataset(datasets / "expense-bot.jsonl")] == [
        ("c1", "How do I file expenses?", "In Concur within 30 days."), ("c2", "Who approves?", None)]  # fmt: skip
    assert [(c.id, c.query) for c in load_dataset(datasets / "travel-bot.jsonl")] == [("c3", "Book a flight to Paris")]
    assert stored(tmp_path / "data") == expected_rows(datasets)
    lines = first.stdout.splitlines()
    assert lines[:6] == [
        f"imported {db}: 2 eval sets, 3 runs, 13 scores (0 runs stored already)",
        f"  dataset {datasets / 'expense-bot.jsonl'}: 2 cases (eval set Expense bot)",
        f"  dataset {datasets / 'travel-bot.jsonl'}: 1 case (eval set Travel bot)",
        f"pinned {Rr2} as the baseline of Expense bot",
        f"pinned {Rr3} as the baseline of Travel bot",
        "note: 1 eval_scores rows have neither a value nor a Seer label: left out",
    ]
    assert first.stdout.endswith(
        "# Seer's dimensions, read from seer.db (eval_criteria: id, name, weight, rubric, scale_type).\n"
        "# A judge with scale: seer (under evals.judges) scores new runs under these names and weights.\n"
        + SNIPPET
    )
    again = import_seer(tmp_path, db, "--pin-baseline")
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[0] == f"imported {db}: 2 eval sets, 0 runs, 0 scores (3 runs stored already)"
    assert "pinned" not in again.output
    assert stored(tmp_path / "data") == expected_rows(datasets)  # nothing duplicated


def test_camel_case_columns_import_the_same_rows(tmp_path: Path) -> None:
    db = seer_db(tmp_path / "camel.db", CAMEL)
    result = import_seer(tmp_path, db, "--pin-baseline")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[6:12] == [
        "columns of eval_sets: id=setId, name=title",
        "columns of eval_cases: id=caseId, set=evalSetId, query=prompt, expected=goldenAnswer",
        "columns of eval_criteria: id=criterionId, name=name, weight=weight, rubric=description, scale=scaleType",
        "columns of eval_runs: id=runId, set=evalSetId, started=startedAt, overall=overallScore",
        "columns of eval_results: id=resultId, run=evalRunId, case=evalCaseId, output=response, overall=overallScore",
        "columns of eval_scores: run=evalRunId, case=evalCaseId, dimension=criterionId, value=value, label=label,"
        " explanation=reasoning",
    ]
    assert stored(tmp_path / "data") == expected_rows(tmp_path / "datasets")


def test_a_missing_column_or_table_is_named_and_column_overrides_it(tmp_path: Path) -> None:
    db = seer_db(tmp_path / "seer.db", drop=("eval_cases", "query"))
    missing = CliRunner().invoke(main, ["eval", "import-seer", str(db), "--data-dir", str(tmp_path / "data"),
                                        "--datasets-dir", str(tmp_path / "datasets")])  # fmt: skip
    assert missing.exit_code == 2 and missing.exception is not None and isinstance(missing.exception, SystemExit)
    assert missing.stdout == ""
    assert missing.stderr == (
        f"agentwatch eval import-seer: {db}: table eval_cases has no column for query (looked for query, input,"
        " prompt, question; found id, eval_set_id, text, expected_answer); name it with --column"
        " eval_cases.query=COLUMN\n"
    )
    assert not (tmp_path / "datasets").exists()
    fixed = import_seer(tmp_path, db, "--column", "eval_cases.query=text", "--pin-baseline")
    assert fixed.exit_code == 0, fixed.output
    assert stored(tmp_path / "data") == expected_rows(tmp_path / "datasets")
    bad = import_seer(tmp_path, db, "--column", "eval_cases.question=text", "--column", "eval_scores.value=nope")
    assert bad.exit_code == 2
    assert bad.stderr.splitlines() == [
        "agentwatch eval import-seer: --column 'eval_cases.question=text': eval_cases has no 'question' (one of"
        " id, set, query, expected, guidance)",
    ]
    con = sqlite3.connect(tmp_path / "other.db")
    con.executescript(SNAKE.replace("CREATE TABLE eval_scores", "CREATE TABLE scores"))
    con.close()
    no_table = import_seer(tmp_path, tmp_path / "other.db")
    assert no_table.exit_code == 2
    assert no_table.stdout == ""
    assert no_table.stderr == (
        f"agentwatch eval import-seer: {tmp_path / 'other.db'}: no table eval_scores (its tables: eval_cases,"
        " eval_criteria, eval_results, eval_runs, eval_sets, scores)\n"
    )


# -- an imported baseline against a new run ------------------------------------------------------


def agent(query: str, fields: dict[str, Any]) -> str:
    """The python target of the new run."""
    return "File it in Concur within 30 days; your manager approves."


def test_an_imported_baseline_diffs_against_a_new_seer_run(tmp_path: Path) -> None:
    db = seer_db(tmp_path / "seer.db")
    imported = import_seer(tmp_path, db, "--pin-baseline", "--agent", "s1=expense-bot",
                           "--write-config", str(tmp_path / "seer.yaml"))  # fmt: skip
    assert imported.exit_code == 0, imported.output
    assert f"pinned {Rr2} as the baseline of expense-bot" in imported.output
    labels = {"topical_coverage": "partial", "hallucination_risk": "medium", "cites_policy": "full"}
    with OpenAIJudge(labels) as model:
        config = tmp_path / "agentwatch.yaml"
        config.write_text(
            f'storage: {{data_dir: "{tmp_path / "data"}"}}\n'
            + (tmp_path / "seer.yaml").read_text()
            + f"  judges:\n    seer-judge: {{type: openai, url: {model.url}/v1, model: judge-1, scale: seer}}\n"
        )
        run = CliRunner().invoke(main, [
            "eval", "run", "--agent", "expense-bot", "--dataset", str(tmp_path / "datasets" / "expense-bot.jsonl"),
            "--target", "python:tests.evals.test_seer:agent", "--judge", "seer-judge", "--config", str(config),
            "--format", "json",
        ], catch_exceptions=False)  # fmt: skip
    assert run.exit_code == 0, run.output
    # c1 (an expected answer, the guidance): topical_coverage, hallucination_risk, cites_policy; c2
    # (no guidance): no topical_coverage. Only Seer's dimensions are asked (no golden, no quality).
    assert [c.dimension for c in model.calls] == ["topical_coverage", "hallucination_risk", "cites_policy",
                                                  "hallucination_risk", "cites_policy"]  # fmt: skip
    doc = json.loads(run.output)
    # c1: (3*5 + 2*5 + 1*10) / 6 = 5.8333; c2: (2*5 + 1*10) / 3 = 6.6667
    assert (doc["overall_score"], doc["dimensions"]) == (
        6.25, {"topicalCoverage": 5.0, "hallucinationRisk": 5.0, "citesPolicy": 10.0})  # fmt: skip
    assert (doc["baseline_run"], doc["regression"]) == (Rr2, True)
    assert doc["regressed_dimensions"] == ["overall", "hallucinationRisk", "topicalCoverage"]
    diff = CliRunner().invoke(main, ["eval", "diff", "--agent", "expense-bot", "--config", str(config),
                                     "--format", "json"])  # fmt: skip
    assert diff.exit_code == 0, diff.output
    dimensions = {d["dimension"]: (d["cases"], d["baseline"], d["candidate"], d["delta"], d["reason"])
                  for d in json.loads(diff.output)["dimensions"]}  # fmt: skip
    assert dimensions == {
        # c1: 8.3333 → 5.8333, c2: 4.5833 → 6.6667 (a two-case canary: the small-sample rule)
        "overall": (2, 6.4583, 6.25, -0.2083, "case c1 went from pass to fail (8.3333 to 5.8333; the mark is 7)"),
        "citesPolicy": (2, 1.25, 10.0, 8.75, None),  # failure, minimal → full, full
        "hallucinationRisk": (2, 7.5, 5.0, -2.5, "the mean fell 2.50 points (more than 2)"),  # low, medium → medium
        "topicalCoverage": (1, 10.0, 5.0, -5.0, "the mean fell 5.00 points (more than 2)"),  # full → partial (c1)
    }


def test_the_config_snippet_says_what_it_could_not_read_and_keeps_your_mapping(tmp_path: Path) -> None:
    from evals.judges.seer import config_snippet
    from evals.seer import SeerCriterion, SeerDatabase, SeerScore

    db = SeerDatabase(tmp_path / "seer.db", columns={"eval_criteria": {"id": "id", "name": "name"}})
    db.criteria = [
        SeerCriterion("k1", "Groundedness", None, None, None, None),  # no weight: agentwatch's, said so
        SeerCriterion("k2", "Tone", None, None, None, None),  # no weight, no rubric, no match: a comment
        SeerCriterion("k3", "Risk level", 4.0, "How risky?", "low/medium/high", "s1"),
        SeerCriterion("k3b", "Risk level", 6.0, "How risky?", "low/medium/high", "s2"),  # a second weight
        SeerCriterion("k4", "Brevity", 2.0, None, None, None),  # mapped in your config already
    ]
    db.scores = [SeerScore("res1", None, None, "Style", 5.0, None, None)]  # a name only eval_scores has
    evals = EvalsConfig(seer=SeerConfig({"Brevity": SeerDimension("response_quality", 9.0)}))
    assert config_snippet(db, evals) == (
        "# Seer's dimensions, read from seer.db (eval_criteria: id, name).\n"
        "# A judge with scale: seer (under evals.judges) scores new runs under these names and weights.\n"
        "# note: Risk level: eval_criteria gives it weights 4, 6: the first, 4, is used\n"
        "evals:\n"
        "  seer:\n"
        "    dimensions:\n"
        "      Groundedness: {dimension: groundedness, weight: 2}  # weight not in the database: agentwatch's"
        " for groundedness\n"
        "      # Tone: no dimension here has its name and the database has no rubric: map it with"
        " {dimension: NAME, weight: 1}\n"
        '      "Risk level": {dimension: risk_level, weight: 4}\n'
        "      Brevity: {dimension: response_quality, weight: 2}\n"
        "      # Style: no dimension here has its name and the database has no rubric: map it with"
        " {dimension: NAME, weight: 1}\n"
        "  criteria:\n"
        "    risk_level:\n"
        '      rubric: "How risky?"\n'
        "      scale: {low: 10, medium: 5, high: 0}\n"
        "      weight: 4\n"
    )


# -- hostile databases ---------------------------------------------------------------------------


def small_db(
    path: Path, runs: list[tuple[Any, ...]], results: list[tuple[Any, ...]], scores: list[tuple[Any, ...]],
    *, sets: list[tuple[Any, ...]] | None = None, cases: list[tuple[Any, ...]] | None = None,
    criteria: list[tuple[Any, ...]] | None = None, schema: str = SNAKE,
) -> Path:  # fmt: skip
    """A database of SNAKE's tables: runs (id, set, created_at, overall), results (id, run, case,
    output, overall), scores (result, criterion, score, label, explanation); sets, cases and
    criteria default to these tests' (criteria: their first two)."""
    con = sqlite3.connect(path)
    con.executescript(schema)
    rows = {"eval_sets": SETS if sets is None else sets, "eval_cases": CASES if cases is None else cases,
            "eval_criteria": CRITERIA[:2] if criteria is None else criteria, "eval_runs": runs,
            "eval_results": results}  # fmt: skip
    for table, values in rows.items():
        for row in values:
            con.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * len(row))})", row)
    con.executemany("INSERT INTO eval_scores VALUES (NULL, ?, ?, ?, ?, ?)", scores)
    con.commit()
    con.close()
    return path


def baselines(data: Path) -> list[tuple[Any, ...]]:
    con = connect(data)
    sql = "SELECT tenant, agent, run_id, pinned_by FROM eval_baselines ORDER BY pinned_at, tenant, agent"
    return con.execute(sql).fetchall()


def run_ids(data: Path) -> list[tuple[Any, ...]]:
    return connect(data).execute("SELECT tenant, run_id, agent FROM eval_runs ORDER BY 1, 2").fetchall()


def test_a_second_database_and_another_tenant_take_none_of_the_first_ones_runs(tmp_path: Path) -> None:
    first = seer_db(tmp_path / "seer.db")
    # Another database with the same run ids (r2, r3) and set names, other results.
    other = small_db(tmp_path / "other.db", [("r2", "s1", "2026-06-01T10:00:00Z", None),
                                             ("r3", "s2", "2026-06-02T10:00:00Z", None)],
                     [("x1", "r2", "c1", "Concur.", 9.0), ("x2", "r3", "c3", "Paris.", 4.0)], [])  # fmt: skip
    assert import_seer(tmp_path, first, "--pin-baseline").exit_code == 0
    second = import_seer(tmp_path, other, "--pin-baseline")
    assert second.exit_code == 0, second.output
    q = "seer-ea6886f2"  # the digest of other.db's first run (r2, 2026-06-01T10:00:00+00:00) and the tenant
    assert second.stdout.splitlines()[0] == f"imported {other}: 2 eval sets, 2 runs, 0 scores (0 runs stored already)"
    assert second.stdout.splitlines()[3:5] == [f"pinned {q}-r2 as the baseline of Expense bot",
                                               f"pinned {q}-r3 as the baseline of Travel bot"]  # fmt: skip
    data = tmp_path / "data"
    assert run_ids(data) == [("default", x, agent) for x, agent in (
        (Rr1, "Expense bot"), (Rr2, "Expense bot"), (Rr3, "Travel bot"), (f"{q}-r2", "Expense bot"),
        (f"{q}-r3", "Travel bot"))]  # fmt: skip
    # The first import's pins were an import's: replaced by the second's latest runs.
    assert baselines(data)[2:] == [("default", "Expense bot", f"{q}-r2", "import-seer"),
                                   ("default", "Travel bot", f"{q}-r3", "import-seer")]  # fmt: skip
    # The same file into another tenant: its own runs and baselines.
    acme = import_seer(tmp_path, first, "--pin-baseline", "--tenant", "acme")
    assert acme.exit_code == 0, acme.output
    a = "seer-4f9ab475"
    assert acme.stdout.splitlines()[0] == f"imported {first}: 2 eval sets, 3 runs, 13 scores (0 runs stored already)"
    assert [r for r in run_ids(data) if r[0] == "acme"] == [
        ("acme", f"{a}-r1", "Expense bot"), ("acme", f"{a}-r2", "Expense bot"), ("acme", f"{a}-r3", "Travel bot")]
    assert baselines(data)[4:] == [("acme", "Expense bot", f"{a}-r2", "import-seer"),
                                   ("acme", "Travel bot", f"{a}-r3", "import-seer")]  # fmt: skip
    again = import_seer(tmp_path, first, "--pin-baseline", "--tenant", "acme")
    assert again.stdout.splitlines()[0] == f"imported {first}: 2 eval sets, 0 runs, 0 scores (3 runs stored already)"
    assert "pinned" not in again.stdout


def test_pin_baseline_keeps_a_users_pin_and_never_pins_a_run_without_results(tmp_path: Path) -> None:
    db = small_db(tmp_path / "seer.db", [("r1", "s1", "2026-05-01T10:00:00Z", None),
                                         ("r2", "s1", "2026-05-02T10:00:00Z", None),
                                         ("r3", "s1", "2026-05-03T10:00:00Z", None)],  # r3: failed, no results
                  [("x1", "r1", "c1", "a", 5.0), ("x2", "r2", "c1", "b", 6.0)], [])  # fmt: skip
    p = P  # the same first run as seer_db's
    first = import_seer(tmp_path, db, "--pin-baseline")
    assert first.exit_code == 0, first.output
    assert f"pinned {p}-r2 as the baseline of Expense bot" in first.stdout.splitlines()
    data = tmp_path / "data"
    user = CliRunner().invoke(main, ["eval", "baseline", "pin", f"{p}-r1", "--data-dir", str(data)])
    assert user.exit_code == 0, user.output
    again = import_seer(tmp_path, db, "--pin-baseline")
    assert again.exit_code == 0, again.output
    assert not [line for line in again.stdout.splitlines() if line.startswith("pinned")]
    assert (f"note: agent Expense bot: its baseline {p}-r1 was pinned by a user: kept (pin the import's latest"
            f" run with agentwatch eval baseline pin {p}-r2)") in again.stdout.splitlines()  # fmt: skip
    assert baselines(data) == [("default", "Expense bot", f"{p}-r2", "import-seer"),
                               ("default", "Expense bot", f"{p}-r1", None)]  # fmt: skip


def notes(result: Result) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("note: ")]


def test_times_and_scores_out_of_range_are_left_out_with_a_note(tmp_path: Path) -> None:
    runs = [("r1", "s1", "2026-05-01T10:00:00Z", "NaN"), ("big", "s1", 1e20, None), ("huge", "s1", 1e300, None),
            ("late", "s1", "9999-12-31T23:59:59-01:00", None), ("early", "s1", "0001-01-01T00:00:00+01:00", None)]
    results = [("x1", "r1", "c1", "a", None), ("x2", "r1", "c2", "b", "inf")]
    scores = [("x1", "k1", "NaN", None, None), ("x1", "k2", 10.0, None, None), ("x2", "k1", 85, None, None),
              ("x2", "k2", -3, "low", None), ("x2", "k1", None, "partial", None)]  # fmt: skip
    db = small_db(tmp_path / "seer.db", runs, results, scores)
    result = import_seer(tmp_path, db)
    assert result.exit_code == 0, result.output
    assert notes(result) == [
        "note: eval_runs r1: its overall score 'NaN' is not a number from 0 to 10: left out",
        "note: eval_runs big: its time 1e+20 is not ISO text or epoch seconds or ms in years 1-9999: left out",
        "note: eval_runs huge: its time 1e+300 is not ISO text or epoch seconds or ms in years 1-9999: left out",
        "note: eval_runs late: its time '9999-12-31T23:59:59-01:00' is not ISO text or epoch seconds or ms in"
        " years 1-9999: left out",
        "note: eval_runs early: its time '0001-01-01T00:00:00+01:00' is not ISO text or epoch seconds or ms in"
        " years 1-9999: left out",
        "note: eval_results x2: its overall score 'inf' is not a number from 0 to 10: left out",
        "note: eval_scores of x1 for k1: its score 'NaN' is not a number from 0 to 10: left out",
        "note: eval_scores of x2 for k1: its score 85.0 is not a number from 0 to 10: left out",
        "note: eval_scores of x2 for k2: its score -3.0 is not a number from 0 to 10: left out",
    ]
    p = P  # r1 starts first, as in seer_db
    # x1: only k2 (10) is left: its overall 10; x2: only k1's label partial (5); the run: their mean.
    assert stored(tmp_path / "data")["results"] == [(f"{p}-r1", "c1", "How do I file expenses?", "a", 10.0, None),
                                                    (f"{p}-r1", "c2", "Who approves?", "b", 5.0, None)]  # fmt: skip
    assert stored(tmp_path / "data")["runs"][0][8:] == (7.5, '{"hallucinationRisk":10.0,"topicalCoverage":5.0}')


def test_eval_show_prints_a_dash_for_a_nan_stored_before(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from storage.tables import EvalResultRow, EvalRunRow, ScoreRow, write_rows

    when = datetime(2026, 5, 1, tzinfo=UTC)
    nan = float("nan")
    run = EvalRunRow("old", "bot", "seer", "d.jsonl", "seer:x", "seer", when, when, 1, 0, nan, '{"Tone":null}')
    result = EvalResultRow("old", "bot", "c1", "t" * 32, "s" * 16, None, "q", "a", None, None, None, nan, when, None)
    score = ScoreRow("t" * 32, "s" * 16, "seer", "Tone", nan, None, None, "seer", when, "old", "c1")
    for row in (run, result, score):
        write_rows(tmp_path, "default", when, [row])
    shown = CliRunner().invoke(main, ["eval", "show", "old", "--data-dir", str(tmp_path)], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert [lines[2], lines[3]] == ["overall score - / 10", "  Tone                      -"]
    assert lines[-2:] == ["  c1: overall -", "    Tone                 -                -"]


def test_bad_options_are_clean_errors_before_anything_is_written(tmp_path: Path) -> None:
    db = seer_db(tmp_path / "seer.db")
    mine = tmp_path / "my.yaml"
    mine.write_text("storage: {data_dir: x}\n")
    cases = [
        (("--write-config", str(mine)), f"--write-config {mine}: the file exists: not overwritten (name a new file)"),
        (("--write-config", str(tmp_path / "nodir" / "x.yaml")),
         f"--write-config {tmp_path / 'nodir' / 'x.yaml'}: no directory {tmp_path / 'nodir'}"),
        (("--agent", ""), "--agent '': write it [SET=]AGENT, both non-empty"),
        (("--agent", "=foo"), "--agent '=foo': write it [SET=]AGENT, both non-empty"),
        (("--agent", "s1="), "--agent 's1=': write it [SET=]AGENT, both non-empty"),
        (("--prefix", ""), "--prefix '': 1 to 64 of the characters A-Z a-z 0-9 . _ -"),
        (("--prefix", "a/b c"), "--prefix 'a/b c': 1 to 64 of the characters A-Z a-z 0-9 . _ -"),
        (("--prefix", "../../x"), "--prefix '../../x': 1 to 64 of the characters A-Z a-z 0-9 . _ -"),
        (("--agent", "nosuchset=foo"), "--agent nosuchset=...: no eval set has the id or name 'nosuchset'"
                                        " (its sets: s1 (Expense bot), s2 (Travel bot))"),
    ]  # fmt: skip
    for args, error in cases:
        result = import_seer(tmp_path, db, *args)
        assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"agentwatch eval import-seer: {error}\n")
    assert mine.read_text() == "storage: {data_dir: x}\n"
    assert not (tmp_path / "datasets").exists() and not (tmp_path / "data" / "eval_runs").exists()


@pytest.mark.parametrize("crash", range(1, 10))
def test_a_retry_after_an_import_crashed_stores_each_run_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash: int
) -> None:
    import evals.seerimport

    db = seer_db(tmp_path / "seer.db")
    real, calls = evals.seerimport.write_rows, []

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[3][0].TABLE)
        if len(calls) == crash:  # 3 days of runs: results, scores, runs each; the crash on call `crash`
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(evals.seerimport, "write_rows", failing)
    with pytest.raises(OSError, match="disk full"):
        import_seer(tmp_path, db, "--pin-baseline")
    monkeypatch.setattr(evals.seerimport, "write_rows", real)
    retry = import_seer(tmp_path, db, "--pin-baseline")
    assert retry.exit_code == 0, retry.output
    assert stored(tmp_path / "data") == expected_rows(tmp_path / "datasets")
    removed = {1: 0, 2: 1, 3: 2, 4: 0, 5: 1, 6: 2, 7: 0, 8: 1, 9: 2}[crash]  # the crashed day's files
    assert [n for n in notes(retry) if " files " in n] == ([f"note: {removed} files of an import that did not finish were removed (their runs"
                                 " are written again)"] if removed else [])  # fmt: skip


def test_a_run_whose_weights_are_unknown_is_imported_once_the_config_gives_them(tmp_path: Path) -> None:
    schema = "\n".join(line for line in SNAKE.splitlines() if "eval_criteria" not in line)
    db = small_db(tmp_path / "seer.db", [("r1", "s1", "2026-05-01T10:00:00Z", None)],
                  [("x1", "r1", "c1", "a", None)], [("x1", "topicalCoverage", 5.0, None, None)],
                  criteria=[], schema=schema)  # fmt: skip
    first = import_seer(tmp_path, db)
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines()[0] == f"imported {db}: 2 eval sets, 0 runs, 0 scores (0 runs stored already)"
    assert notes(first) == [
        "note: no eval_criteria table: dimensions are named by eval_scores, with no weights",
        "note: eval_runs r1: results without an overall score stored have scores of topicalCoverage, whose"
        " weight is not known: not imported (give them weights in evals.seer.dimensions and import again)",
    ]
    config = tmp_path / "agentwatch.yaml"
    config.write_text("evals:\n  seer:\n    dimensions:\n      topicalCoverage: {dimension: topical_coverage, weight: 2}\n")
    again = import_seer(tmp_path, db, "--config", str(config))
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[0] == f"imported {db}: 2 eval sets, 1 runs, 1 scores (0 runs stored already)"
    assert stored(tmp_path / "data")["results"] == [(f"{P}-r1", "c1", "How do I file expenses?", "a", 5.0, None)]


def test_duplicate_and_missing_ids_and_unknown_criteria_are_noted_and_the_first_kept(tmp_path: Path) -> None:
    db = small_db(
        tmp_path / "seer.db",
        [("r1", "s1", "2026-05-01T10:00:00Z", None), ("r1", "s1", "2026-05-02T10:00:00Z", None),
         (None, "s1", "2026-05-03T10:00:00Z", None), ("r2", None, "2026-05-03T10:00:00Z", None)],
        [("x1", "r1", "c1", "a", None), ("x1", "r1", "c2", "dup", None), ("x2", "r1", "c1", "again", None),
         (None, "r1", "c2", "no id", None), ("x3", "r1", None, "no case", None)],
        [("x1", "k1", 5.0, None, None), ("x1", "k1", 10.0, None, None), ("x2", "k2", 10.0, None, None),
         ("x2", "k7", 4.0, None, None), ("nope", "k1", 5.0, None, None), (None, "k1", 5.0, None, None)],
        sets=[("s1", "Expense bot"), ("s1", "Again"), (None, "Null set")],
        cases=[("c1", "s1", "q1", None), ("c1", "s1", "q1 again", None), ("c2", "s1", "q2", None),
               (None, "s1", "null case", None)],
        criteria=[*CRITERIA[:2], ("k1", "responseQuality", 2.0, None, None)],
        schema=SNAKE.replace("TEXT PRIMARY KEY", "TEXT"),
    )  # fmt: skip
    config = tmp_path / "agentwatch.yaml"
    config.write_text("evals:\n  seer:\n    dimensions:\n      k7: {dimension: response_quality, weight: 1}\n")
    result = import_seer(tmp_path, db, "--config", str(config))
    assert result.exit_code == 0, result.output
    assert notes(result) == [
        "note: eval_sets s1: its id is another row's too: the first is kept",
        "note: eval_sets None: no id: left out",
        "note: eval_cases c1: its id is another row's too: the first is kept",
        "note: eval_cases None: no id: left out",
        "note: eval_criteria k1: its id is another row's too: the first is kept",
        "note: eval_runs r1: its id is another row's too: the first is kept",
        "note: eval_runs None: no id: left out",
        "note: eval_runs r2: no set id: left out",
        "note: eval_results x1: its id is another row's too: the first is kept",
        "note: eval_results None: no id: left out",
        "note: eval_results x3: no case id: left out",
        "note: eval_scores for k1: no result id (nor run and case ids): left out",
        "note: 1 eval_scores rows score a result eval_results does not have: left out",
        "note: eval_scores name criteria eval_criteria does not have: k7 (each kept as a dimension of that name)",
        "note: 1 eval_scores rows score a result on a dimension it has a score for already: the first is kept",
    ]
    # c1 twice in r1 (results x1, x2): each its own trace and span, its own scores.
    assert stored(tmp_path / "data")["results"] == [(f"{P}-r1", "c1", "q1", "a", 5.0, None),
                                                    (f"{P}-r1", "c1", "q1", "again", 8.0, None)]  # (2*10+1*4)/3
    con = connect(tmp_path / "data")
    sql = "SELECT count(DISTINCT trace_id), count(DISTINCT span_id) FROM eval_results"
    assert con.execute(sql).fetchall() == [(2, 2)]
    assert [(c.id, c.query) for c in load_dataset(tmp_path / "datasets" / "expense-bot.jsonl")] == [
        ("c1", "q1"), ("c2", "q2")]  # fmt: skip


def test_weights_must_be_finite_numbers_not_negative_in_the_config_and_the_database(tmp_path: Path) -> None:
    def problems(weights: str) -> list[str]:
        with pytest.raises(ConfigError) as caught:
            parse_config("evals:\n  seer:\n    dimensions:\n" + weights, "c.yaml")
        return str(caught.value).splitlines()

    assert problems("      A: {dimension: groundedness, weight: true}\n") == [
        "c.yaml:4: evals.seer.dimensions.A.weight: Input should be a valid number"]
    assert problems("      A: {dimension: groundedness, weight: .nan}\n"
                    "      B: {dimension: topical_coverage, weight: .inf}\n") == [
        "c.yaml:4: evals.seer.dimensions.A.weight: must be a finite number, not negative",
        "c.yaml:5: evals.seer.dimensions.B.weight: must be a finite number, not negative",
    ]  # fmt: skip
    assert problems("      A: {dimension: groundedness, weight: 0}\n") == [
        "c.yaml:3: evals.seer.dimensions: at least one weight must be positive"]
    db = small_db(tmp_path / "seer.db", [("r1", "s1", "2026-05-01T10:00:00Z", None)], [], [],
                  criteria=[("k1", "topicalCoverage", -1.0, None, None), ("k2", "hallucinationRisk", "35%", None, None)])
    result = import_seer(tmp_path, db)
    assert notes(result) == [
        "note: eval_criteria k1: its weight -1.0 is not a finite number, not negative: left out",
        "note: eval_criteria k2: its weight '35%' is not a finite number, not negative: left out",
    ]
    assert "weight: -1" not in result.stdout


def test_the_config_snippet_reads_back_as_the_names_it_was_made_of(tmp_path: Path) -> None:
    """YAML's special words are quoted, accents are kept in text and dropped from criterion names,
    and a name the config refuses (a metric's) is a comment, not a line the config rejects."""
    import yaml

    from agentwatch.config import parse_config
    from evals.judges.seer import config_snippet
    from evals.seer import SeerCriterion, SeerDatabase

    db = SeerDatabase(tmp_path / "seer.db", columns={"eval_criteria": {"id": "id", "name": "name"}})
    db.criteria = [
        SeerCriterion("k1", "yes", 1.0, "Is it polite?", None, None),
        SeerCriterion("k2", "null", 2.0, "Is it short?", None, None),
        SeerCriterion("k3", "latency_ms", 1.0, "Fast?", None, None),
        SeerCriterion("k4", "Précision: réponse", 3.0, "La réponse est-elle précise ?", None, None),
    ]
    snippet = config_snippet(db, EvalsConfig())
    assert '"Précision: réponse": {dimension: precision_reponse, weight: 3}' in snippet
    assert 'rubric: "La réponse est-elle précise ?"' in snippet
    assert '# "latency_ms": not a name' not in snippet and "# latency_ms: not a name a dimension can have" in snippet
    loaded = yaml.safe_load(snippet)
    assert list(loaded["evals"]["seer"]["dimensions"]) == ["yes", "null", "Précision: réponse"]
    assert list(loaded["evals"]["criteria"]) == ["yes", "null", "precision_reponse"]
    config = parse_config(snippet, "seer.yaml")  # the snippet is a config agentwatch takes as is
    assert sorted(config.evals.seer.dimensions) == ["Précision: réponse", "null", "yes"]


def test_a_locked_database_says_so_and_one_sqlite_cannot_open_read_only_is_read_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database another program holds a write lock on is named locked (after a short wait);
    one read-only SQLite cannot open (a WAL database in a directory this user cannot write: its
    shared-memory file cannot be made) is read as it is on disk, said in a note."""
    import evals.seer
    from core.errors import DatasetError
    from evals.seer import read_seer

    path = seer_db(tmp_path / "seer.db")
    writer = sqlite3.connect(path)
    writer.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(evals.seer, "LOCK_WAIT_SECONDS", 0.05)
    with pytest.raises(DatasetError) as locked:
        read_seer(path)
    assert locked.value.problems == [f"{path}: the database is locked by another program (Seer writing to it?):"
                                     " import it when that is done, or import a copy"]  # fmt: skip
    writer.rollback()
    writer.close()

    opened: list[str] = []
    real = sqlite3.connect

    def connect_as_in_a_read_only_directory(database: str, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        opened.append(database.rpartition("?")[2])
        if "immutable=1" not in database:
            raise sqlite3.OperationalError("unable to open database file")
        return real(database, *args, **kwargs)

    monkeypatch.setattr(evals.seer.sqlite3, "connect", connect_as_in_a_read_only_directory)
    db = read_seer(path)
    assert opened == ["mode=ro", "mode=ro&immutable=1"]
    assert db.notes[0] == ("seer.db: read as it is on disk (its directory cannot be written, so SQLite cannot"
                           " open it the usual way): changes still in its -wal file are not read")  # fmt: skip
    assert len(db.runs) == len(RUNS)
