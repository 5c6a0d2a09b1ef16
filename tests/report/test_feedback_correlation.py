"""Feedback beside what spans and judges say of the same runs: negative feedback per failure type,
the judges' scores on runs users rated down beside the others, and negative feedback over time.
Hand-computed on a fixture of five runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from report.formats import feedback_line
from report.health import NAME_COLUMNS, FeedbackBucket, FeedbackByJudge, FeedbackByType, build_report
from storage.catalog import connect
from storage.runs import Scope, runs_in
from storage.tables import FeedbackRow, ScoreRow, write_rows
from tests.helpers.span_rows import T0, export, row

START = datetime.fromtimestamp(T0 / 1e9, UTC)


def _feedback(
    trace: str, n: int, value: float, negative: bool, minute: int, kind: str = "thumbs"
) -> FeedbackRow:
    at = START + timedelta(minutes=minute)
    return FeedbackRow(
        feedback_id=f"{trace}-{n}", trace_id=trace * 32, span_id=None, user_id="u", name="user",
        kind=kind, value=value, score=value, negative=negative, label=None, comment=None, time=at,
        received_at=at, source="api", metadata=None,
    )  # fmt: skip


def _score(trace: str, dimension: str, value: float) -> ScoreRow:
    return ScoreRow(
        trace_id=trace * 32, span_id=trace * 16, evaluator="judge", dimension=dimension,
        value=value, label=None, explanation=None, judge_model="m", time=START, eval_run_id=None,
        eval_case_id=None,
    )  # fmt: skip


def test_negative_feedback_by_failure_type_judge_scores_and_time(tmp_path: Path) -> None:
    agent = {"agent_id": "bot"}
    minute = 60_000
    export(
        tmp_path,
        [
            row("a", "1", None, "agent_run", 0, 100, **agent),  # success
            row("b", "1", None, "agent_run", 1 * minute, 100, **agent),  # success
            row("c", "1", None, "agent_run", 2 * minute, 100, status="error", failure_type="timeout", **agent),
            row("d", "1", None, "agent_run", 31 * minute, 100, status="error", failure_type="timeout", **agent),
            row("e", "1", None, "agent_run", 32 * minute, 100, status="error", failure_type="rate_limit", **agent),
        ],
    )  # fmt: skip
    write_rows(
        tmp_path,
        "acme",
        START,
        [
            _feedback("a", 1, 4, False, 1, "rating"),
            _feedback("b", 1, 0, True, 2),
            _feedback("c", 1, 0, True, 3),
            _feedback("c", 2, 0, True, 4),
            _feedback("d", 1, 1, False, 40),
            _feedback("e", 1, 0, True, 41),
        ],
    )
    write_rows(
        tmp_path,
        "acme",
        START,
        [_score("a", "groundedness", 9.0), _score("b", "groundedness", 3.0), _score("c", "groundedness", 2.0),
         _score("d", "groundedness", 8.0), _score("b", "groundedness", 5.0), _score("z", "groundedness", 0.0)],
    )  # fmt: skip
    scope = Scope(START, START + timedelta(hours=1), tenant="acme")
    (bot,) = build_report(runs_in(connect(tmp_path), scope, NAME_COLUMNS), ()).agents
    f = bot.feedback
    assert f is not None
    assert (f.pieces, f.negative, f.runs_with_feedback, f.runs_with_negative) == (6, 4, 5, 3)
    # Most pieces first: none (a, b) 2 pieces; timeout (c twice, d) 3; rate_limit (e) 1.
    assert f.by_failure_type == [
        FeedbackByType("timeout", 3, 2, 2 / 3),
        FeedbackByType("none", 2, 1, 0.5),
        FeedbackByType("rate_limit", 1, 1, 1.0),
    ]
    # Rated down: b (3 and 5: 4.0), c (2.0) → mean 3.0 over 2 runs; e has no score. The others: a 9, d 8.
    assert f.judge_scores == [FeedbackByJudge("groundedness", 3.0, 2, 8.5, 2)]
    # An hour's report has 5-minute buckets (by the run's start): a, b, c in the first; d, e at 31-32 min.
    assert len(f.buckets) == 12
    assert f.buckets[0] == FeedbackBucket(START, 4, 3, 0.75, 4.0)  # a's rating of 4
    assert f.buckets[6] == FeedbackBucket(START + timedelta(minutes=30), 2, 1, 0.5)
    assert [b.pieces for b in f.buckets] == [4, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0]
    assert feedback_line(f) == (
        "6 pieces on 5 runs, 4 negative (66.7%), mean rating 4.0; negative on failed runs 75.0%, on successful runs 50.0%; "
        "negative by failure type: timeout 66.7% (2 of 3), none 50.0% (1 of 2), rate_limit 100.0% (1 of 1); "
        "judge groundedness: 3.00 on runs rated down (2), 8.50 on the others (2)"
    )
