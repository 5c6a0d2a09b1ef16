"""Monthly budgets (the config's ``budgets:`` section) and where each stands: spend this month to
date, the month-end forecast, and whether a hard budget is spent (``over_budget``: a state a
gateway or the agent itself can act on, on ``/api/v1/budgets``).

    budgets:
      acme:            {tenant: acme, monthly_usd: 500}
      expense-bot:     {tenant: acme, agent: expense-bot, monthly_usd: 100, hard: true}
      search-team:     {tenant: acme, team: search, monthly_usd: 250}

A budget covers the runs of its tenant, team and agent (an agent by its id or its name; a team as
the ``team`` column of runs holds it); with none of them, every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import duckdb

from core.configmodel import STRICT, build_config
from spend.forecast import HISTORY_DAYS, Forecast, month_end_forecast
from storage.runs import Scope, runs_in


@dataclass(frozen=True)
class Budget:
    __pydantic_config__ = STRICT
    monthly_usd: float
    tenant: str | None = None
    agent: str | None = None
    """An agent's id or its name."""
    team: str | None = None
    """A team (the runs' ``team``: a resource attribute, see the normalize processor)."""
    hard: bool = False
    """A hard budget is a limit to enforce: ``over_budget`` once the month's spend reaches it."""

    def validate(self) -> list[str]:
        return [] if self.monthly_usd > 0 else ["monthly_usd: must be more than 0"]


def build_budgets(data: Any) -> tuple[dict[str, Budget], list[str]]:
    """The ``budgets:`` mapping (name → budget) and its problems (``name.key: message``)."""
    if data is None:
        return {}, []
    if not isinstance(data, dict):
        return {}, ["(section): must be a mapping of budget names to budgets (acme: {monthly_usd: 500})"]
    budgets: dict[str, Budget] = {}
    problems: list[str] = []
    for name, item in data.items():
        budget, found = build_config(Budget, item)
        problems.extend(f"{name}.{p}" for p in found)
        if budget is not None:
            budgets[str(name)] = budget
    return budgets, problems


@dataclass(frozen=True)
class BudgetState:
    name: str
    budget: Budget
    month: str
    """``YYYY-MM``."""
    spend_usd: float
    """This month to date, today included."""
    used: float
    """``spend_usd`` over the budget."""
    forecast: Forecast | None
    over_budget: bool
    """A hard budget whose month's spend reached it."""
    forecast_over: bool
    """The month-end forecast is over the budget."""
    burn: tuple[tuple[date, float], ...] = ()
    """Spend to date at the end of each day of the month so far (cumulative)."""


def budget_states(
    con: duckdb.DuckDBPyConnection, budgets: dict[str, Budget], now: datetime, forecast: bool = True
) -> list[BudgetState]:
    """Where each budget stands at ``now`` (production runs; the forecast from the days before
    today, so without statsmodels ``forecast=False`` still gives the spend)."""
    today = now.astimezone(UTC).date()
    first = today.replace(day=1)
    since = min(first, today - timedelta(days=HISTORY_DAYS)) if forecast else first
    out = []
    for name, budget in sorted(budgets.items()):
        scope = Scope(datetime.combine(since, time(), UTC), now, budget.agent, budget.tenant)
        runs = runs_in(con, scope, ("cost_usd", "team"))
        daily: dict[date, float] = {
            day: float(spend)
            for day, spend in runs.query(
                """SELECT CAST(timezone('UTC', start_time) AS DATE) AS day, sum(cost_usd) FROM runs
                   WHERE cost_usd IS NOT NULL AND ($team IS NULL OR team = $team) GROUP BY day""",
                {"team": budget.team},
            )
        }
        runs.drop()
        spend = sum(v for d, v in daily.items() if d >= first)
        predicted = month_end_forecast(daily, today) if forecast else None
        burn, total = [], 0.0
        for day in (first + timedelta(days=i) for i in range((today - first).days + 1)):
            total += daily.get(day, 0.0)
            burn.append((day, total))
        out.append(
            BudgetState(
                name, budget, first.strftime("%Y-%m"), spend, spend / budget.monthly_usd, predicted,
                budget.hard and spend >= budget.monthly_usd,
                predicted is not None and predicted.month_end > budget.monthly_usd, tuple(burn),
            )
        )  # fmt: skip
    return out


def state_dict(state: BudgetState) -> dict[str, Any]:
    f = state.forecast
    return {
        "name": state.name, "tenant": state.budget.tenant, "team": state.budget.team,
        "agent": state.budget.agent,
        "monthly_usd": state.budget.monthly_usd, "hard": state.budget.hard, "month": state.month,
        "spend_usd": state.spend_usd, "used": state.used, "over_budget": state.over_budget,
        # Variance: the budget less the spend (left to spend), and less the forecast month end.
        "variance_usd": state.budget.monthly_usd - state.spend_usd,
        "forecast_variance_usd": None if f is None else state.budget.monthly_usd - f.month_end,
        "forecast": None if f is None else {"month_end": f.month_end, "low": f.low, "high": f.high,
                                            "method": f.method},
        "forecast_over": state.forecast_over,
        "burn": [{"day": day.isoformat(), "spend_usd": spent} for day, spent in state.burn],
    }  # fmt: skip
