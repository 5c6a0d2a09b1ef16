"""Seer-compatible scoring (a judge's ``scale: seer``): Seer's categorical labels, scored under the
dimension names and weights of ``evals.seer.dimensions``.

The labels and their points are Seer's (issue 18): a graded dimension is ``full`` 10,
``substantial`` 7.5, ``partial`` 5, ``minimal`` 2.5 or ``failure`` 0; hallucination risk is
``low`` 10, ``medium`` 5 or ``high`` 0. Seer's dimension names and weights are not known here:
they are the user's, in ``evals.seer.dimensions`` (Seer's name → the built-in dimension or custom
criterion whose question is asked, and its weight), which ``agentwatch eval import-seer`` prints
from a Seer database's ``eval_criteria``. With none configured, the built-in dimensions keep
their names and agentwatch's weights. ``overall_score`` is the weighted mean, as on any scale.
"""

from __future__ import annotations

from collections.abc import Mapping

from evals.config import EvalsConfig
from evals.judges.criteria import Criterion, Rubrics, rubrics_of
from evals.judges.scores import SCALES

GRADED: Mapping[str, float] = {
    "full": 10.0, "substantial": 7.5, "partial": 5.0, "minimal": 2.5, "failure": 0.0,
}  # fmt: skip
RISK: Mapping[str, float] = {"low": 10.0, "medium": 5.0, "high": 0.0}
RISK_DIMENSIONS = frozenset({"hallucination_risk"})
"""Built-in dimensions Seer scores on its risk scale; every other is graded."""


def seer_scale(dimension: str) -> Mapping[str, float]:
    """The Seer labels a built-in dimension is asked for."""
    return RISK if dimension in RISK_DIMENSIONS else GRADED


def label_value(label: str) -> float | None:
    """A Seer label's points (either scale, any case), None for a label of neither."""
    key = label.strip().lower()
    return GRADED.get(key, RISK.get(key))


def seer_rubrics(evals: EvalsConfig) -> Rubrics:
    """What a ``scale: seer`` judge scores: with ``evals.seer.dimensions``, exactly those, each
    under Seer's name and weight (a built-in dimension on Seer's labels, a custom criterion on its
    own scale); without, every built-in dimension on Seer's labels and every custom criterion."""
    base = rubrics_of(evals)
    mapping = evals.seer.dimensions
    if not mapping:
        builtin = {n: Criterion(n, c.ask, seer_scale(n), c.weight, c.guidance)
                   for n, c in base.builtin.items()}  # fmt: skip
        return Rubrics(base.custom, builtin)
    by_builtin = {d.dimension: (name, d.weight) for name, d in mapping.items()}
    builtin = {
        n: Criterion(by_builtin[n][0], c.ask, seer_scale(n), by_builtin[n][1], c.guidance, n)
        for n, c in base.builtin.items()
        if n in by_builtin and n in SCALES
    }
    custom = tuple(
        Criterion(by_builtin[c.name][0], c.ask, c.scale, by_builtin[c.name][1], c.guidance, c.name)
        for c in base.custom
        if c.name in by_builtin
    )
    return Rubrics(custom, builtin)
