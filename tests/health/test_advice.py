"""``health.advice``: each rule at its threshold and just short of it, hand-computed."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from core.agents import ADVICE_DEFAULTS, Advice
from health.advice import advise
from health.board import AgentFacts, StepFacts
from health.context import AgentContext, Baseline
from spend.budgets import Budget, BudgetState


def facts(**changes: object) -> AgentFacts:
    base = AgentFacts(
        tenant="acme", agent="agt_1", name="expense-bot", window_seconds=900, runs=10, failures=0,
        degraded=0, failure_rate=0.0, p50_ms=800.0, p95_ms=1000.0, consecutive_failures=0,
        failure_types={}, tools=(), models=(),
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def step(
    name: str, calls: int, errors: int, in_a_row: int = 0, limited: int = 0, limited_row: int = 0
) -> StepFacts:
    rate = errors / calls if calls else None
    return StepFacts(name, calls, errors, rate, limited, in_a_row, limited_row, None, None)


def test_no_advice_has_no_id() -> None:
    advice = advise(facts(), AgentContext(), ADVICE_DEFAULTS)
    assert advice.as_dict() == {
        "id": "", "avoid_tools": [], "fallback_model": None, "skip_optional_steps": False,
        "add_disclaimer": False, "human_review": False, "over_budget": False, "reasons": [],
    }  # fmt: skip


def test_avoid_a_tool_failing_in_a_row_or_at_a_rate() -> None:
    tools = (
        step("search", calls=3, errors=3, in_a_row=3),  # 3 in a row: avoid
        step("lookup", calls=4, errors=2, in_a_row=2),  # 2 in a row, 4 calls (< 5): keep
        step("convert", calls=10, errors=5, in_a_row=1),  # 50% of 10: avoid
        step("report", calls=10, errors=4, in_a_row=2),  # 40%: keep
    )
    advice = advise(facts(tools=tools), AgentContext(), ADVICE_DEFAULTS)
    assert advice.avoid_tools == ("convert", "search")
    assert [r.why for r in advice.reasons] == [
        "search: its last 3 calls failed (threshold 3 in a row)",
        "convert: 5 of 10 calls failed in the window (50% ≥ 50%)",
    ]
    assert advice.id.startswith("adv_") and len(advice.id) == 20
    # The same advice has the same id; another agent's, another.
    assert advise(facts(tools=tools), AgentContext(), ADVICE_DEFAULTS).id == advice.id
    assert advise(facts(tools=tools, agent="agt_2"), AgentContext(), ADVICE_DEFAULTS).id != advice.id
    # The agent's own rule.
    stricter = replace(ADVICE_DEFAULTS, avoid_tool_after_failures=2)
    assert advise(facts(tools=tools), AgentContext(), stricter).avoid_tools == (
        "convert",
        "lookup",
        "report",
        "search",
    )


def test_fall_back_from_a_rate_limited_model() -> None:
    models = (step("gpt-4o", calls=9, errors=3, limited=3, limited_row=1), step("small", 5, 0))
    rules = replace(ADVICE_DEFAULTS, fallback_model="gpt-4o-mini")
    advice = advise(facts(models=models), AgentContext(), rules)
    assert advice.fallback_model == {"from": "gpt-4o", "to": "gpt-4o-mini"}
    assert advice.reasons[0].numbers == {
        "model": "gpt-4o", "rate_limited": 3, "calls": 9, "consecutive_rate_limits": 1, "threshold": 3,
        "to": "gpt-4o-mini",
    }  # fmt: skip
    near = (step("gpt-4o", calls=9, errors=2, limited=2, limited_row=2),)
    assert advise(facts(models=near), AgentContext(), rules).fallback_model is None


def test_skip_optional_steps_when_latency_is_over_k_times_the_baseline() -> None:
    baseline = AgentContext(baseline=Baseline(runs=70, days=7, failure_rate=0.1, p50_ms=400.0, p95_ms=500.0))
    slow = advise(facts(p95_ms=1100.0), baseline, ADVICE_DEFAULTS)
    assert slow.skip_optional_steps
    assert slow.reasons[0].why == "p95 latency 1,100 ms over 2x the baseline's 500 ms (10 runs)"
    assert not advise(facts(p95_ms=1000.0), baseline, ADVICE_DEFAULTS).skip_optional_steps  # exactly 2x
    # Too few runs, or no baseline: no advice.
    assert not advise(facts(p95_ms=1100.0, runs=4), baseline, ADVICE_DEFAULTS).skip_optional_steps
    assert not advise(facts(p95_ms=1100.0), AgentContext(), ADVICE_DEFAULTS).skip_optional_steps


def test_disclaimer_and_human_review_from_judge_scores() -> None:
    ungrounded = AgentContext(judged_runs=4, groundedness=4.0, hallucination_risk=7.5)
    advice = advise(facts(), ungrounded, ADVICE_DEFAULTS)
    assert (advice.add_disclaimer, advice.human_review) == (True, False)
    assert advice.reasons[0].why == "mean groundedness 4.0 < 5 over 4 judged runs"
    risky = AgentContext(judged_runs=2, groundedness=7.0, hallucination_risk=2.0)
    advice = advise(facts(), risky, ADVICE_DEFAULTS)
    assert (advice.add_disclaimer, advice.human_review) == (True, True)
    assert [r.flag for r in advice.reasons] == ["add_disclaimer", "human_review"]
    fine = AgentContext(judged_runs=2, groundedness=5.0, hallucination_risk=5.0)  # at the thresholds
    assert not advise(facts(), fine, ADVICE_DEFAULTS).add_disclaimer


def test_over_budget() -> None:
    budget = Budget(monthly_usd=100.0, agent="expense-bot", hard=True)
    spent = BudgetState(
        "bot", budget, "2026-12", 100.0, 1.0, None, True, False, ((date(2026, 12, 1), 100.0),)
    )
    advice = advise(facts(), AgentContext(budgets=(spent,)), ADVICE_DEFAULTS)
    assert advice.over_budget
    assert advice.reasons[0].why == "budget bot: $100.00 spent of $100.00 in 2026-12"
    under = replace(spent, spend_usd=99.99, used=0.9999, over_budget=False)
    assert not advise(facts(), AgentContext(budgets=(under,)), ADVICE_DEFAULTS).over_budget


def test_rules_validate_naming_the_key() -> None:
    assert Advice(
        avoid_tool_after_failures=0, avoid_tool_error_rate=1.5, latency_factor=1.0, groundedness_below=11
    ).validate() == [
        "avoid_tool_after_failures: must be at least 1",
        "avoid_tool_error_rate: must be more than 0 and at most 1 (a share of calls)",
        "latency_factor: must be more than 1 (a multiple of the baseline p95)",
        "groundedness_below: must be between 0 and 10 (judges score 0-10)",
    ]
