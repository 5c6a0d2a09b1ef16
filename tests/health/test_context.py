"""``health.context``: the facts read from storage, hand-computed on stored runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from health.config import HealthConfig
from health.context import Baseline, HealthContext
from spend.budgets import Budget
from storage.tables import AlertEventRow, FeedbackRow, ScoreRow, write_rows
from tests.helpers.agent_runs import NOW, Spans
from tests.helpers.store import store_spans

DAY = 86_400
WHEN = datetime.fromtimestamp(NOW, UTC)  # 12:00:30 UTC


def score(trace_id: str, dimension: str, value: float, eval_run: str | None = None) -> ScoreRow:
    return ScoreRow(
        trace_id, "0" * 16, "heuristic", dimension, value, None, None, "heuristic", WHEN, eval_run, None
    )


def feedback(trace_id: str, n: int, negative: bool) -> FeedbackRow:
    return FeedbackRow(
        f"fb{n}", trace_id, None, "erin", "user", "thumbs", 0.0 if negative else 1.0, 0.0 if negative else 1.0,
        negative, None, None, WHEN, WHEN, "api", None,
    )  # fmt: skip


def alert(key: str, state: str, at: datetime) -> AlertEventRow:
    return AlertEventRow(
        at, state, "failing", "failure_rate", "expense-bot", key, at, 0.5, 0.2, "failure rate 50% > 20%", 10, 2,
        "[]", "[]", False, state == "resolved", "[]", "{}",
    )  # fmt: skip


def test_baseline_scores_feedback_alerts_and_budgets(tmp_path: Path) -> None:
    config = tmp_path / "agentwatch.yaml"
    data = tmp_path / "data"
    config.write_text(f"storage:\n  data_dir: {data}\n")
    spans = Spans()
    # The baseline of 12:00 UTC: yesterday and the day before at 12:xx; not 11:xx, not today.
    spans.run(-DAY + 60, 1000)
    spans.run(-DAY + 120, 3000, fail=True)
    spans.run(-2 * DAY + 60, 2000)
    spans.run(-2 * DAY + 120, 4000)
    spans.run(-DAY - 1800, 9000, fail=True)  # 11:30 yesterday
    spans.run(-8 * DAY, 9000, fail=True)  # before the 7 days
    # Today's runs: judged, rated, and priced.
    judged = spans.run(-300, 500, model=("gpt-4o", None), tokens=(1_000_000, 0))
    other = spans.run(-200, 500)
    store_spans(config, spans.take())
    write_rows(data, "acme", WHEN, [
        score(judged, "groundedness", 4.0), score(judged, "hallucination_risk", 5.0),
        score(other, "groundedness", 6.0),
        score(other, "groundedness", 0.0, eval_run="er_1"),  # an eval's score: not production
    ])  # fmt: skip
    write_rows(
        data, "acme", WHEN, [feedback(judged, 1, True), feedback(other, 2, False), feedback(other, 3, False)]
    )
    write_rows(data, "acme", WHEN, [
        alert("k1", "firing", WHEN - timedelta(minutes=10)),
        alert("k2", "firing", WHEN - timedelta(minutes=30)), alert("k2", "resolved", WHEN - timedelta(minutes=5)),
    ])  # fmt: skip
    budgets = {"bot": Budget(monthly_usd=1.0, agent="expense-bot"), "globex": Budget(1.0, tenant="globex")}
    context = HealthContext(HealthConfig(), data, budgets)
    context.refresh(WHEN)
    facts = context.of("acme", "expense-bot", None, (12,))
    # quantile_cont of 1,000, 2,000, 3,000, 4,000 ms.
    assert facts.baseline is not None and facts.baseline.p95_ms is not None
    assert facts.baseline == Baseline(4, 2, 0.25, 2500.0, facts.baseline.p95_ms)
    assert round(facts.baseline.p95_ms, 6) == 3850.0
    # Two hours of day: runs added, rates and latencies weighted by runs.
    both = context.of("acme", "expense-bot", None, (11, 12)).baseline
    assert both is not None and (both.runs, both.failure_rate) == (5, 0.4)
    assert (facts.judged_runs, facts.groundedness, facts.hallucination_risk) == (2, 5.0, 5.0)
    assert (facts.feedback, facts.negative_feedback, facts.negative_feedback_rate) == (3, 1, 1 / 3)
    assert [(a["kind"], a["summary"]) for a in facts.open_alerts] == [
        ("failure_rate", "failure rate 50% > 20%")
    ]
    # gpt-4o: a million input tokens at $2.50 a million.
    (bot,) = facts.budgets
    assert (bot.name, round(bot.spend_usd, 2)) == ("bot", 2.5)
    assert context.of("acme", "faq-bot", None, (12,)).baseline is None
    assert context.version == 1


def test_an_agent_asked_for_by_name_is_found_by_its_id_in_the_baseline(tmp_path: Path) -> None:
    config = tmp_path / "agentwatch.yaml"
    data = tmp_path / "data"
    config.write_text(f"storage:\n  data_dir: {data}\n")
    spans = Spans()
    spans.run(-DAY + 60, 1000, agent="expense-bot", agent_id="agt_7f3a9c21", fail=True)
    spans.run(-DAY + 120, 3000, agent="expense-bot", agent_id="agt_7f3a9c21")
    store_spans(config, spans.take())
    context = HealthContext(HealthConfig(), data)
    context.refresh(WHEN)
    assert context.label("acme", "expense-bot") == "agt_7f3a9c21"
    assert context.label("globex", "expense-bot") == "expense-bot"
    baseline = context.of("acme", context.label("acme", "expense-bot"), None, (12,)).baseline
    assert baseline is not None and (baseline.runs, baseline.failure_rate) == (2, 0.5)
