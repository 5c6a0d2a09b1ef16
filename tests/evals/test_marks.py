"""Marks judges give runs after the fact: groundedness_drop, and quality_regression when a run's
scores drop under ``evals.quality_thresholds``; production judging writes them and ``runs``
shows the run degraded with the mark's type and reason (in process, with the heuristic judge)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from core.configmodel import build_config
from evals.config import EvalsConfig, ProductionJudging
from evals.judges.marks import marks
from evals.judges.scores import Judgement, Score
from evals.production import ProductionJudge
from storage.catalog import connect
from tests.helpers.store import store_spans

WHEN = datetime(2025, 11, 22, 12, 0, tzinfo=UTC)


def judgement(overall: float | None, **values: float) -> Judgement:
    scores = tuple(Score(dimension, "x", value, "why") for dimension, value in values.items())
    return Judgement(scores, overall, judge_model="heuristic")


def marked(j: Judgement, quality_thresholds: Mapping[str, float] | None = None) -> list[tuple[str, str]]:
    found = (
        marks("t", "s", j, 5.0, "heuristic", WHEN)
        if quality_thresholds is None
        else marks("t", "s", j, 5.0, "heuristic", WHEN, quality_thresholds)
    )
    return [(m.failure_type, m.reason) for m in found]


def test_a_score_under_a_quality_threshold_marks_quality_regression() -> None:
    assert marked(judgement(3.5, response_quality=3.0)) == [
        ("quality_regression", "overall_score 3.5 < 4 (heuristic)")
    ]
    assert marked(judgement(4.0, response_quality=3.0)) == []  # the default: overall under 4
    thresholds = {"overall_score": 6.0, "topical_coverage": 5.0}
    assert marked(judgement(5.5, topical_coverage=2.5), quality_thresholds=thresholds) == [
        ("quality_regression", "overall_score 5.5 < 6; topical_coverage 2.5 < 5 (heuristic)")
    ]
    # A dimension the judge did not score is no evidence; {} turns quality marks off.
    assert marked(judgement(8.0, response_quality=10.0), quality_thresholds={"topical_coverage": 5.0}) == []
    assert marked(judgement(0.0, response_quality=0.0), quality_thresholds={}) == []


def test_groundedness_drop_is_the_one_mark_of_an_ungrounded_run() -> None:
    assert marked(judgement(2.0, groundedness=0.0)) == [
        ("groundedness_drop", "groundedness 0 < 5 (heuristic)")
    ]
    assert marked(judgement(2.0, groundedness=7.0)) == [
        ("quality_regression", "overall_score 2 < 4 (heuristic)")
    ]


def test_quality_thresholds_config() -> None:
    config, problems = build_config(EvalsConfig, {})
    assert problems == [] and config is not None
    assert config.quality_thresholds == {"overall_score": 4.0}
    _, problems = build_config(EvalsConfig, {"quality_thresholds": {"helpfulness": 5, "overall_score": 11}})
    assert problems == [
        "quality_thresholds.helpfulness: not a score (one of overall_score, topical_coverage, response_quality, "
        "groundedness, hallucination_risk, factual_accuracy, golden)",
        "quality_thresholds.overall_score: must be between 0 and 10",
    ]


# (trace number, question, answer): a production run each, judged by the heuristic judge.
RUNS = [
    (1, "How do I file an expense report?",
     "Open Concur, choose New Report, attach your receipts and submit the report for approval."),
    (2, "How do I file an expense report?", "Pay 42 or 17."),  # terse, two numbers from nowhere
]  # fmt: skip


@pytest.fixture
def production_data(tmp_path: Path) -> Path:
    config = tmp_path / "agentwatch.yaml"
    config.write_text(f"storage:\n  data_dir: {tmp_path / 'data'}\n")
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "agents"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("production")
    for number, question, answer in RUNS:
        begin = int((WHEN - timedelta(minutes=30 - number)).timestamp()) * 10**9
        attributes = {"gen_ai.agent.id": "expense-bot", "input.value": question, "output.value": answer}
        tracer.start_span("agent_run", start_time=begin, attributes=attributes).end(end_time=begin + 10**9)
    provider.shutdown()
    assert store_spans(config, memory.get_finished_spans()) == len(RUNS)
    return tmp_path / "data"


def test_production_judging_marks_a_poor_run_quality_regression(production_data: Path) -> None:
    evals = EvalsConfig(production=ProductionJudging(sample_rate=1.0))
    judge = ProductionJudge(evals, production_data, clock=lambda: WHEN)
    assert judge.run_once() == 2
    assert judge.stats.marked == 1
    con = connect(production_data)
    got = con.execute(
        "SELECT r.output_text, runs.outcome, runs.failure_type, runs.error_message, runs.error_template"
        " FROM runs JOIN spans r USING (trace_id, span_id) ORDER BY runs.start_time"
    ).fetchall()
    assert got == [
        (RUNS[0][2], "success", None, None, None),
        # response_quality terse (3) and hallucination_risk high (0), weights 2 and 2: overall 1.5
        ("Pay 42 or 17.", "degraded", "quality_regression", "overall_score 1.5 < 4 (heuristic)",
         "judge: quality_regression"),
    ]  # fmt: skip


def test_a_run_with_two_marks_keeps_each_reason_with_its_own_type(production_data: Path) -> None:
    from storage.tables import RunMarkRow, write_rows

    con = connect(production_data)
    trace, span = con.execute("SELECT trace_id, span_id FROM runs ORDER BY start_time LIMIT 1").fetchone()  # type: ignore[misc]
    write_rows(production_data, "default", WHEN, [
        RunMarkRow(trace, span, "quality_regression", "a: overall_score 1 < 4", "judge-z", WHEN),
        RunMarkRow(trace, span, "groundedness_drop", "z: 2 claims not in the sources", "judge-a", WHEN),
    ])  # fmt: skip
    got = (
        connect(production_data)
        .execute("SELECT outcome, failure_type, error_message FROM runs WHERE trace_id = $t", {"t": trace})
        .fetchall()
    )
    assert got == [("degraded", "groundedness_drop", "z: 2 claims not in the sources")]
