"""Failure types a judge gives a run after the fact: a groundedness score under the threshold
marks the run ``groundedness_drop``. Stored spans are immutable, so marks are rows of their own
(``run_marks``) that the ``runs`` view applies: a run that succeeded becomes ``degraded`` with
the mark's failure type; a run that already failed keeps its own."""

from __future__ import annotations

from datetime import datetime

from evals.judges.scores import Judgement
from storage.tables import RunMarkRow

GROUNDEDNESS_DROP = "groundedness_drop"


def marks(
    trace_id: str, span_id: str, judgement: Judgement, threshold: float, source: str, when: datetime
) -> list[RunMarkRow]:
    value = judgement.value("groundedness")
    if value is None or value >= threshold:
        return []
    reason = f"groundedness {value:g} < {threshold:g} ({judgement.judge_model})"
    return [RunMarkRow(trace_id, span_id, GROUNDEDNESS_DROP, reason, source, when)]
