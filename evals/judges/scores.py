"""What a judge produces: scores on dimensions, each a categorical label mapped to 0-10, with a
weight; ``overall_score`` is the weighted mean of the scored dimensions. ``latency`` and
``tool_call_count`` are direct metrics, stored beside the scores, outside the overall score."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from evals.datasets import Case
from evals.targets import TargetResult
from storage.tables import ScoreRow

# dimension → (label → value), in the order reports show them.
SCALES: dict[str, dict[str, float]] = {
    "topical_coverage": {"full": 10.0, "most": 7.5, "partial": 5.0, "minimal": 2.5, "none": 0.0},
    "response_quality": {"good": 10.0, "adequate": 7.0, "terse": 3.0, "refusal": 0.0, "empty": 0.0},
    "groundedness": {"grounded": 10.0, "mostly": 7.0, "weak": 4.0, "ungrounded": 0.0},
    "hallucination_risk": {"low": 10.0, "medium": 5.0, "high": 0.0},
    "factual_accuracy": {"correct": 10.0, "partly": 5.0, "wrong": 0.0},
}
WEIGHTS: dict[str, float] = {
    "topical_coverage": 3.0,
    "response_quality": 2.0,
    "groundedness": 2.0,
    "hallucination_risk": 2.0,
    "factual_accuracy": 1.0,
}
METRICS = ("latency_ms", "tool_call_count")
OVERALL = "overall_score"
"""The weighted mean of a judgement's dimensions, named as a score beside them."""


@dataclass(frozen=True)
class Score:
    dimension: str
    label: str
    value: float
    explanation: str


@dataclass(frozen=True)
class Judgement:
    scores: tuple[Score, ...]
    overall_score: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    judge_model: str = "heuristic"
    problems: tuple[str, ...] = ()
    """Why dimensions the judge was asked are missing (a failed or unparseable judge call)."""

    def value(self, dimension: str) -> float | None:
        """A dimension's score, or ``overall_score``; None when not scored."""
        if dimension == OVERALL:
            return self.overall_score
        return next((s.value for s in self.scores if s.dimension == dimension), None)


def score(dimension: str, label: str, explanation: str) -> Score:
    return Score(dimension, label, SCALES[dimension][label], explanation)


def overall(scores: tuple[Score, ...], weights: dict[str, float] | None = None) -> float | None:
    weights = weights or WEIGHTS
    weighted = [(weights.get(s.dimension, 0.0), s.value) for s in scores]
    total = sum(w for w, _ in weighted)
    return None if total == 0 else round(sum(w * v for w, v in weighted) / total, 4)


def score_rows(
    judgement: Judgement, trace_id: str, span_id: str, evaluator: str, when: datetime,
    eval_run_id: str | None = None, eval_case_id: str | None = None, with_metrics: bool = False,
) -> list[ScoreRow]:  # fmt: skip
    """Rows of the ``scores`` table for one judged run span; ``with_metrics`` adds the direct
    metrics (evaluator ``metric``, no label)."""

    def row(evaluator: str, dimension: str, value: float, label: str | None, why: str | None) -> ScoreRow:
        return ScoreRow(trace_id=trace_id, span_id=span_id, evaluator=evaluator, dimension=dimension,
                        value=value, label=label, explanation=why, judge_model=judgement.judge_model,
                        time=when, eval_run_id=eval_run_id, eval_case_id=eval_case_id)  # fmt: skip

    rows = [row(evaluator, s.dimension, s.value, s.label, s.explanation) for s in judgement.scores]
    if with_metrics:
        rows += [row("metric", metric, value, None, None) for metric, value in judgement.metrics.items()]
    return rows


def retrieved(case: Case, result: TargetResult) -> list[str]:
    """What the run had to go on: its tool outputs, its citations and the case's context."""
    parts = [*(c.output or "" for c in result.tool_calls), *result.citations, case.context or ""]
    return [p for p in parts if p.strip()]


def metrics(result: TargetResult) -> dict[str, float]:
    return {"latency_ms": round(result.latency_ms, 3), "tool_call_count": float(len(result.tool_calls))}


class Judge:
    """A judge backend: ``judge(case, result) -> Judgement``; ``close`` frees its connections."""

    name: str

    def judge(self, case: Case, result: TargetResult) -> Judgement:
        raise NotImplementedError

    def close(self) -> None:
        return None
