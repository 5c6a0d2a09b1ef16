"""Failure types a judge gives a run after the fact: a groundedness score under the threshold
marks the run ``groundedness_drop``; else a score under one of the quality thresholds (the
overall score or a dimension, ``evals.quality_thresholds``) marks it ``quality_regression``.
Stored spans are immutable, so marks are rows of their own (``run_marks``) that the ``runs``
view applies: a run that succeeded becomes ``degraded`` with the mark's failure type; a run that
already failed keeps its own. A judgement gives a run one mark at most."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from evals.config import DEFAULT_QUALITY_THRESHOLDS
from evals.judges.scores import Judgement
from storage.tables import RunMarkRow

GROUNDEDNESS_DROP = "groundedness_drop"
QUALITY_REGRESSION = "quality_regression"


def marks(
    trace_id: str, span_id: str, judgement: Judgement, threshold: float, source: str, when: datetime,
    quality_thresholds: Mapping[str, float] = DEFAULT_QUALITY_THRESHOLDS,
) -> list[RunMarkRow]:  # fmt: skip
    """The mark of one judged run: ``threshold`` is the groundedness threshold."""
    grounded = judgement.value("groundedness")
    if grounded is not None and grounded < threshold:
        reason = f"groundedness {grounded:g} < {threshold:g} ({judgement.judge_model})"
        return [RunMarkRow(trace_id, span_id, GROUNDEDNESS_DROP, reason, source, when)]
    under = [
        f"{name} {value:g} < {limit:g}"
        for name, limit in quality_thresholds.items()
        if (value := judgement.value(name)) is not None and value < limit
    ]
    if not under:
        return []
    reason = f"{'; '.join(under)} ({judgement.judge_model})"
    return [RunMarkRow(trace_id, span_id, QUALITY_REGRESSION, reason, source, when)]
