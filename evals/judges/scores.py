"""What a judge produces: scores on dimensions, each a categorical label mapped to 0-10, with a
weight; ``overall_score`` is the weighted mean of the scored dimensions. ``latency`` and
``tool_call_count`` (and, for a case with an ``expected`` answer, ``golden_token_f1``) are direct
metrics, stored beside the scores, outside the overall score. An ensemble's score also carries
its votes and how much they disagreed; every judge call is a ``JudgeCall`` (the judge ledger).
A multi-turn case also has ``turns_used`` (``evals.conversation``), set by the runner."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

import orjson

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
    "golden": {"match": 10.0, "mostly": 7.5, "partial": 5.0, "minimal": 2.5, "contradicts": 0.0},
}
WEIGHTS: dict[str, float] = {
    "topical_coverage": 3.0,
    "response_quality": 2.0,
    "groundedness": 2.0,
    "hallucination_risk": 2.0,
    "factual_accuracy": 1.0,
    "golden": 2.0,
}
METRICS = ("latency_ms", "tool_call_count", "golden_token_f1", "turns_used")
OVERALL = "overall_score"
"""The weighted mean of a judgement's dimensions, named as a score beside them."""


@dataclass(frozen=True)
class Vote:
    """One ensemble member's score of a dimension."""

    judge: str
    label: str
    value: float


@dataclass(frozen=True)
class Score:
    dimension: str
    label: str
    value: float
    explanation: str
    votes: tuple[Vote, ...] = ()
    """An ensemble's votes, in member order; () for a single judge."""
    spread: float | None = None
    """An ensemble's highest vote less its lowest (0: all agree); None for a single judge."""
    dissent: float | None = None
    """The share of an ensemble's votes whose label is not the combined label; None for a single judge."""


@dataclass(frozen=True)
class JudgeCall:
    """One call a judge made: a line of the judge ledger (``storage.tables.JudgeCallRow``)."""

    member: str
    """The judge that made it (an ensemble's member; a fact checker: ``<judge>/fact_checker:<name>``)."""
    dimension: str
    model: str
    attempt: int
    ok: bool
    problem: str | None
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float
    cost_usd: float | None = None
    cost_source: str | None = None


@dataclass(frozen=True)
class Judgement:
    scores: tuple[Score, ...]
    overall_score: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    judge_model: str = "heuristic"
    problems: tuple[str, ...] = ()
    """Why dimensions the judge was asked are missing (a failed or unparseable judge call)."""
    calls: tuple[JudgeCall, ...] = ()
    """Every call the judge made for this judgement, in order (none for the heuristic judge)."""

    def value(self, dimension: str) -> float | None:
        """A dimension's score, or ``overall_score``; None when not scored."""
        if dimension == OVERALL:
            return self.overall_score
        return next((s.value for s in self.scores if s.dimension == dimension), None)


def score(
    dimension: str, label: str, explanation: str, scales: Mapping[str, Mapping[str, float]] = SCALES
) -> Score:
    return Score(dimension, label, scales[dimension][label], explanation)


def overall(scores: tuple[Score, ...], weights: Mapping[str, float] | None = None) -> float | None:
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

    rows = [
        replace(
            row(evaluator, s.dimension, s.value, s.label, s.explanation), spread=s.spread, dissent=s.dissent,
            votes=orjson.dumps([[v.judge, v.label, v.value] for v in s.votes]).decode() if s.votes else None,
        )
        for s in judgement.scores
    ]  # fmt: skip
    if with_metrics:
        rows += [row("metric", metric, value, None, None) for metric, value in judgement.metrics.items()]
    return rows


def retrieved(case: Case, result: TargetResult) -> list[str]:
    """What the run had to go on: its tool outputs, its citations, the content of the documents
    it cited or retrieved (when known) and the case's context."""
    parts = [*(c.output or "" for c in result.tool_calls), *result.citations,
             *(d.content or "" for d in result.documents), case.context or ""]  # fmt: skip
    return [p for p in parts if p.strip()]


def metrics(result: TargetResult, case: Case | None = None) -> dict[str, float]:
    """The direct metrics; with a ``case`` that has an ``expected`` answer, also
    ``golden_token_f1`` (``evals.judges.similarity``)."""
    found = {"latency_ms": round(result.latency_ms, 3), "tool_call_count": float(len(result.tool_calls))}
    if case is not None and case.expected:
        from evals.judges.similarity import token_set_f1

        found["golden_token_f1"] = token_set_f1(result.output or "", case.expected)
    return found


class Judge:
    """A judge backend: ``judge(case, result) -> Judgement``; ``close`` frees its connections.
    ``wants_documents``: the runner fetches the content of cited documents before judging (from
    a target that is a ``DocumentSource``)."""

    name: str
    wants_documents: bool = False

    def judge(self, case: Case, result: TargetResult) -> Judgement:
        raise NotImplementedError

    def close(self) -> None:
        return None
