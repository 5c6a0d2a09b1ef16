"""The dimensions an LLM judge scores, each asked in a call of its own: the built-in ones and the
custom criteria of the config's ``evals.criteria`` (a rubric, a scale of labels and points, a
weight). ``Rubrics`` is the set a judge works with: every dimension's scale, weight, question and
whether its call sees the case's guidance (response_quality never does, so the answer's quality
is judged without being anchored on what a good answer should say)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from evals.config import EvalsConfig
from evals.judges.scores import SCALES, WEIGHTS, Score, overall

ASKS: dict[str, str] = {
    "topical_coverage": "How much of what the guidance asks for does the answer cover?",
    "response_quality": "Is the answer clear, complete and useful (a refusal or an empty answer is not)?",
    "groundedness": (
        "Is every claim of the answer supported by the documents and text the agent retrieved "
        "(its reasoning steps show how it used them)?"
    ),
    "hallucination_risk": "How likely is the answer to contain invented facts, names or numbers?",
    "factual_accuracy": "Are the answer's facts correct? Search to check each claim.",
    "golden": "How well does the answer agree with the expected (golden) answer, in substance?",
}
NO_GUIDANCE = frozenset({"response_quality", "factual_accuracy"})
"""Built-in dimensions whose call does not see the case's guidance."""


@dataclass(frozen=True)
class Criterion:
    name: str
    ask: str
    scale: Mapping[str, float]
    weight: float
    guidance: bool
    """Whether the call sees the case's guidance (``eval_guidance``, else ``expected``)."""
    asks_for: str | None = None
    """The built-in dimension or custom criterion whose question this is, when its scores are
    stored under another name (Seer's: ``evals.judges.seer``); None: ``name``."""

    @property
    def asked(self) -> str:
        """The dimension the judge call asks about (what its prompt names)."""
        return self.asks_for or self.name


@dataclass(frozen=True)
class Rubrics:
    """Every dimension a judge may score: the built-in ones (by built-in name; a criterion's
    ``name`` is what its scores are stored under), then the custom criteria."""

    custom: tuple[Criterion, ...] = ()
    builtin: Mapping[str, Criterion] = field(
        default_factory=lambda: {
            name: Criterion(name, ASKS[name], scale, WEIGHTS[name], name not in NO_GUIDANCE)
            for name, scale in SCALES.items()
        }
    )

    def get(self, name: str) -> Criterion:
        found = self.builtin.get(name) or next((c for c in self.custom if c.name == name), None)
        if found is None:
            raise KeyError(name)
        return found

    @property
    def scales(self) -> dict[str, Mapping[str, float]]:
        return {c.name: c.scale for c in (*self.builtin.values(), *self.custom)}

    @property
    def weights(self) -> dict[str, float]:
        return {c.name: c.weight for c in (*self.builtin.values(), *self.custom)}

    def ordered(self, scores: list[Score]) -> tuple[Score, ...]:
        """Scores in the order reports show them: built-in dimensions, then custom criteria."""
        order = [c.name for c in (*self.builtin.values(), *self.custom)]
        rank = {name: i for i, name in enumerate(order)}
        return tuple(sorted(scores, key=lambda s: rank.get(s.dimension, len(order))))

    def overall(self, scores: tuple[Score, ...]) -> float | None:
        return overall(scores, self.weights)


def rubrics_of(evals: EvalsConfig) -> Rubrics:
    """The built-in dimensions and the config's custom criteria, in the config's order."""
    return Rubrics(
        tuple(
            Criterion(name, c.rubric.strip(), dict(c.scale), c.weight, c.guidance)
            for name, c in evals.criteria.items()
        )
    )
