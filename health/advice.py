"""Advice: what an agent reading its own health should do now, each flag with why, in numbers.

The rules (thresholds per agent in the ``agents:`` section, ``core.agents.Advice``):

- ``avoid_tools``: a tool whose last ``avoid_tool_after_failures`` calls failed in a row, or
  whose calls in the window (at least ``min_tool_calls``) failed at ``avoid_tool_error_rate`` or more;
- ``fallback_model``: a model rate-limited ``rate_limited_calls`` times in the window, or that
  many times in a row; names the ``fallback_model`` to use (null when none is configured);
- ``skip_optional_steps``: run latency p95 in the window over ``latency_factor`` times the
  baseline's p95 (the same hours of the previous days), with at least ``min_runs`` runs;
- ``add_disclaimer``: the judged runs' mean groundedness under ``groundedness_below``, or their
  mean hallucination-risk score under ``hallucination_below`` (scores 0-10; 10 is low risk);
- ``human_review``: the mean hallucination-risk score under ``human_review_below``;
- ``over_budget``: a budget the agent falls under is spent (this month's spend at or over it).

The advice has an ``id``: the same advice for the same agent has the same id, so an agent that
acts on it can put it on its spans (``core.selfhealing.ADVICE_ID_ATTRIBUTE``) and the fallback report can tell
which advice a fallback followed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.agents import Advice
from health.board import AgentFacts
from health.context import AgentContext


@dataclass(frozen=True)
class Reason:
    flag: str
    why: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"flag": self.flag, "why": self.why, **self.numbers}


@dataclass(frozen=True)
class AdviceResult:
    id: str
    avoid_tools: tuple[str, ...]
    fallback_model: dict[str, Any] | None
    """``{"from": model, "to": the configured fallback or None}``."""
    skip_optional_steps: bool
    add_disclaimer: bool
    human_review: bool
    over_budget: bool
    reasons: tuple[Reason, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "avoid_tools": list(self.avoid_tools), "fallback_model": self.fallback_model,
            "skip_optional_steps": self.skip_optional_steps, "add_disclaimer": self.add_disclaimer,
            "human_review": self.human_review, "over_budget": self.over_budget,
            "reasons": [r.as_dict() for r in self.reasons],
        }  # fmt: skip


def advise(facts: AgentFacts, context: AgentContext, rules: Advice) -> AdviceResult:
    """The advice of an agent's health (``rules``: its merged rules, every field set)."""
    reasons: list[Reason] = []
    avoid: list[str] = []
    for tool in facts.tools:
        why = _tool_reason(tool.name, tool.consecutive_failures, tool.errors, tool.calls, rules)
        if why is not None:
            avoid.append(tool.name)
            reasons.append(why)
    fallback = None
    limit = int(rules.rate_limited_calls or 0)
    for model in facts.models:
        if model.rate_limited >= limit or model.consecutive_rate_limits >= limit:
            fallback = {"from": model.name, "to": rules.fallback_model}
            reasons.append(Reason(
                "fallback_model",
                f"{model.name}: {model.rate_limited} rate-limited calls of {model.calls} in the window, "
                f"{model.consecutive_rate_limits} in a row (threshold {limit})",
                {"model": model.name, "rate_limited": model.rate_limited, "calls": model.calls,
                 "consecutive_rate_limits": model.consecutive_rate_limits, "threshold": limit,
                 "to": rules.fallback_model},
            ))  # fmt: skip
            break
    skip = False
    baseline = context.baseline
    factor = float(rules.latency_factor or 0)
    if (
        baseline is not None and baseline.p95_ms and facts.p95_ms is not None
        and facts.runs >= int(rules.min_runs or 0) and facts.p95_ms > factor * baseline.p95_ms
    ):  # fmt: skip
        skip = True
        reasons.append(Reason(
            "skip_optional_steps",
            f"p95 latency {facts.p95_ms:,.0f} ms over {factor:g}x the baseline's {baseline.p95_ms:,.0f} ms "
            f"({facts.runs} runs)",
            {"p95_ms": facts.p95_ms, "baseline_p95_ms": baseline.p95_ms, "factor": factor,
             "runs": facts.runs},
        ))  # fmt: skip
    disclaimer = review = False
    grounded, risk = context.groundedness, context.hallucination_risk
    if grounded is not None and grounded < float(rules.groundedness_below or 0):
        disclaimer = True
        reasons.append(
            _score_reason("add_disclaimer", "groundedness", grounded, rules.groundedness_below, context)
        )
    if risk is not None and risk < float(rules.hallucination_below or 0):
        disclaimer = True
        reasons.append(
            _score_reason("add_disclaimer", "hallucination_risk", risk, rules.hallucination_below, context)
        )
    if risk is not None and risk < float(rules.human_review_below or 0):
        review = True
        reasons.append(
            _score_reason("human_review", "hallucination_risk", risk, rules.human_review_below, context)
        )
    over = False
    for state in context.budgets:
        if state.spend_usd >= state.budget.monthly_usd:
            over = True
            reasons.append(Reason(
                "over_budget",
                f"budget {state.name}: ${state.spend_usd:,.2f} spent of ${state.budget.monthly_usd:,.2f} "
                f"in {state.month}",
                {"budget": state.name, "spend_usd": state.spend_usd, "monthly_usd": state.budget.monthly_usd,
                 "hard": state.budget.hard},
            ))  # fmt: skip
    flags = {
        "avoid_tools": sorted(avoid), "fallback_model": fallback, "skip_optional_steps": skip,
        "add_disclaimer": disclaimer, "human_review": review, "over_budget": over,
    }  # fmt: skip
    return AdviceResult(
        _advice_id(facts.tenant, facts.agent, flags), tuple(sorted(avoid)), fallback, skip, disclaimer,
        review, over, tuple(reasons),
    )  # fmt: skip


def _tool_reason(name: str, in_a_row: int, errors: int, calls: int, rules: Advice) -> Reason | None:
    after = int(rules.avoid_tool_after_failures or 0)
    rate, least = float(rules.avoid_tool_error_rate or 1), int(rules.min_tool_calls or 0)
    numbers = {"tool": name, "consecutive_failures": in_a_row, "errors": errors, "calls": calls}
    if in_a_row >= after:
        return Reason("avoid_tools", f"{name}: its last {in_a_row} calls failed (threshold {after} in a row)",
                      {**numbers, "threshold": after})  # fmt: skip
    if calls >= least and calls and errors / calls >= rate:
        return Reason(
            "avoid_tools",
            f"{name}: {errors} of {calls} calls failed in the window ({errors / calls:.0%} ≥ {rate:.0%})",
            {**numbers, "error_rate": errors / calls, "threshold": rate},
        )
    return None


def _score_reason(flag: str, dimension: str, value: float, below: float | None, ctx: AgentContext) -> Reason:
    return Reason(
        flag, f"mean {dimension} {value:.1f} < {below:g} over {ctx.judged_runs} judged runs",
        {"dimension": dimension, "score": value, "threshold": below, "judged_runs": ctx.judged_runs},
    )  # fmt: skip


def _advice_id(tenant: str, agent: str, flags: dict[str, Any]) -> str:
    """The same advice for the same agent has the same id; no advice has none (``""``)."""
    if not any(flags.values()):
        return ""
    digest = hashlib.sha256(orjson.dumps([tenant, agent, flags], option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"adv_{digest[:16]}"
