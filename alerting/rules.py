"""Alert rules evaluated over the stored runs: each rule gives the findings (a tenant and agent
over its threshold) that hold at ``now``. The alert state machine (``alerting.state``)
turns findings into firing, repeated and resolved messages.

Every query runs over one ``RunSet`` (``storage.runs.runs_in``), loaded once per pass for the
longest look-back any rule needs, so a pass reads the run partials once; each rule narrows it
to its own window, agent and tenant, without synthetic runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from alerting.config import RuleConfig
from core.agents import NAME_FROM_SPANS_SQL, OWNER_FROM_SPANS_SQL, AgentConfig, AgentRegistry
from core.units import format_duration
from feedback.implicit import ImplicitConfig, implicit_signals
from spend.budgets import Budget, budget_states
from storage.runs import FAILED_SQL, FAILURE_TYPE_SQL, SUCCEEDED_SQL, RunSet, since_date

DAY = 86400.0


@dataclass(frozen=True)
class Finding:
    rule: str
    kind: str
    tenant: str
    agent: str
    value: float
    threshold: float
    summary: str
    """What crossed which threshold, in words."""
    key_extra: str = ""
    runs: int = 0
    affected_users: int = 0
    top_failure_types: tuple[tuple[str, int], ...] = ()
    example_trace_ids: tuple[str, ...] = ()
    agent_name: str | None = field(default=None, compare=False)
    """The agent's name, shown beside its id (``RuleEvaluator.agent_name``); None when it has none."""
    repeats: bool = True
    """False: one message only (a budget level, an eval regression event)."""
    resolves: bool = True
    """False: no resolved message when it no longer holds."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        return "|".join((self.rule, self.tenant, self.agent, self.key_extra))


def lookback(rule: RuleConfig, now: datetime) -> float:
    """Seconds of runs the rule reads before ``now``."""
    if rule.kind == "success_rate":
        return (rule.minutes + 1) * 60.0 + rule.window
    if rule.kind in ("failure_type_spike", "spend_spike"):
        return rule.baseline_days * DAY + rule.window
    if rule.kind == "budget":
        month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return (now - month_start).total_seconds()
    return rule.window


class RuleEvaluator:
    """Findings of rules over ``runs`` (loaded with the ``USAGE`` columns) at ``now``."""

    def __init__(
        self,
        runs: RunSet,
        now: datetime,
        agents: tuple[AgentConfig, ...],
        budgets: dict[str, Budget] | None = None,
        implicit: ImplicitConfig | None = None,
    ):
        self.runs = runs
        self.now = now
        self.budgets = budgets or {}
        self.implicit = implicit or ImplicitConfig()
        """How requeries are read (``requery_rate``: the runs loaded with ``session_id`` too)."""
        """The config's ``budgets:``: a ``budget`` rule without a threshold, and ``forecast_overrun``."""
        self.registry = AgentRegistry(agents)
        self._labels: dict[str, str] = {}
        self._names: dict[tuple[str, str], str | None] | None = None
        self._below: dict[tuple[str, str, str, str], str] = {}
        """(rule, tenant, agent, key_extra) → what was measured, for those under their threshold now."""

    def findings(self, rule: RuleConfig) -> list[Finding]:
        method = getattr(self, f"_{rule.kind}")
        found: list[Finding] = method(rule)
        return found

    def _label(self, agent: str) -> str:
        """A rule's ``agent:`` (an id or a name) as the runs label it (their id, else name)."""
        if agent not in self._labels:
            self._labels[agent] = self.runs.agent_label(agent)
        return self._labels[agent]

    def load_names(self) -> None:
        """Read the names the runs report for their agents (while the runs can still be read)."""
        span_name = NAME_FROM_SPANS_SQL if "agent_name" in self.runs.columns else "NULL"
        rows = self.runs.query(f"SELECT tenant, agent, {span_name} FROM runs GROUP BY ALL")
        self._names = {(str(t), str(a)): n for t, a, n in rows}

    def agent_name(self, tenant: str, agent: str) -> str | None:
        """The name shown beside ``agent``'s id: its ``agents:`` entry's, else the one its runs
        report most (as in the report); None when it has no name besides its id."""
        if self._names is None:
            self.load_names()
        assert self._names is not None
        info = self.registry.lookup(tenant, agent, name_from_spans=self._names.get((tenant, agent)))
        return info.name if info.name != agent else None

    def now_text(self, finding: Finding, rule: RuleConfig | None) -> str | None:
        """What ``finding``'s rule measures now for its agent, in words, once it no longer holds:
        the current value against the threshold (``failure rate 8% ≤ 20% in the last 15m (2 of
        25 runs)``), or that there was nothing to measure (``no runs in the last 15m``). ``None``
        for the kinds that never resolve with a message (budget levels, forecasts, eval events)."""
        if rule is None or rule.kind not in _NOTHING_MEASURED:
            return None
        said = self._below.get((finding.rule, finding.tenant, finding.agent, finding.key_extra))
        return said if said is not None else _NOTHING_MEASURED[rule.kind](rule, finding)

    def _measured(self, rule: RuleConfig, tenant: str, agent: str, said: str, key_extra: str = "") -> None:
        """Keep what ``rule`` measured for an agent under its threshold (``now_text``)."""
        self._below[(rule.name, tenant, agent, key_extra)] = said

    # -- helpers ---------------------------------------------------------------------------
    def _query(self, sql: str, rule: RuleConfig, since: datetime, **params: Any) -> list[tuple[Any, ...]]:
        """``sql`` over the rule's runs (``runs``: since ``since``, its agent and tenant, no synthetic)."""
        agent = None if rule.agent is None else self._label(rule.agent)
        runs = self.runs.within(since, self.now, agent=agent, tenant=rule.tenant, synthetic=False)
        return runs.query(sql, params)

    def _own(self, tenant: str, agent: str, threshold: str, default: float) -> float:
        return self.registry.threshold(tenant, agent, threshold, default)

    def _details(self, tenant: str, agent: str, since: datetime, owner: str | None = None) -> dict[str, Any]:
        """Affected users (beyond the owner), top failure types and example trace ids."""
        runs = self.runs.within(since, self.now, agent=agent, tenant=tenant, synthetic=False)
        base = f"FROM runs WHERE {FAILED_SQL}"
        users = runs.query(
            f"SELECT count(DISTINCT user_id) {base} AND user_id IS DISTINCT FROM $owner", {"owner": owner}
        )[0][0]
        types = runs.query(
            f"SELECT {FAILURE_TYPE_SQL} AS t, count(*) AS n {base} GROUP BY t ORDER BY n DESC, t LIMIT 3"
        )
        examples = runs.query(f"SELECT trace_id {base} ORDER BY start_time DESC, trace_id LIMIT 3")
        return {"affected_users": int(users), "top_failure_types": tuple((str(t), int(n)) for t, n in types),
                "example_trace_ids": tuple(str(t) for (t,) in examples)}  # fmt: skip

    # -- rule kinds --------------------------------------------------------------------------
    def _failure_rate(self, rule: RuleConfig) -> list[Finding]:
        since = self.now - timedelta(seconds=rule.window)
        rows = self._query(
            f"""SELECT tenant, agent, count(*), count(*) FILTER (WHERE {FAILED_SQL})
               FROM runs GROUP BY ALL ORDER BY ALL""",
            rule, since,
        )  # fmt: skip
        found = []
        for tenant, agent, runs, failures in rows:
            threshold = self._own(tenant, agent, "failure_rate", rule.threshold_value())
            min_runs = self._own(tenant, agent, "min_runs", rule.min_runs)
            rate = failures / runs
            window = format_duration(rule.window)
            if runs < min_runs:
                self._measured(rule, tenant, agent, _too_few(runs, window, min_runs))
                continue
            if rate <= threshold:
                self._measured(rule, tenant, agent, f"failure rate {rate:.0%} ≤ {threshold:.0%} in the last "
                               f"{window} ({failures} of {runs} runs)")  # fmt: skip
                continue
            summary = (f"failure rate {rate:.0%} > {threshold:.0%} "
                       f"({failures} of {runs} runs in the last {format_duration(rule.window)})")  # fmt: skip
            found.append(Finding(rule.name, rule.kind, tenant, agent, round(rate, 4), threshold, summary,
                                 runs=runs, **self._details(tenant, agent, since)))  # fmt: skip
        return found

    def _negative_feedback_rate(self, rule: RuleConfig) -> list[Finding]:
        """The share of negative feedback (``storage.feedback``) on the runs of the window, per
        agent with at least ``min_count`` pieces."""
        since = self.now - timedelta(seconds=rule.window)
        rows = self._query(
            """SELECT r.tenant, r.agent, count(*), count(*) FILTER (WHERE f.negative),
                      count(DISTINCT f.user_id) FILTER (WHERE f.negative),
                      list(DISTINCT r.trace_id ORDER BY r.trace_id) FILTER (WHERE f.negative)
               FROM runs r JOIN feedback f ON f.tenant = r.tenant AND f.trace_id = r.trace_id
               WHERE f.date >= $since_date GROUP BY ALL ORDER BY ALL""",
            rule, since, since_date=since_date(since),
        )  # fmt: skip
        found = []
        window = format_duration(rule.window)
        for tenant, agent, pieces, negative, users, traces in rows:
            rate = negative / pieces
            threshold = self._own(tenant, agent, "negative_feedback_rate", rule.threshold_value())
            if pieces < rule.min_count:
                few = f"{pieces} piece{'s' if pieces != 1 else ''} of feedback on runs of the last {window}"
                self._measured(rule, tenant, agent, f"{few}, fewer than min_count {rule.min_count}")
                continue
            if rate <= threshold:
                said = f"negative feedback {rate:.0%} ≤ {threshold:.0%} on runs of the last {window}"
                self._measured(rule, tenant, agent, f"{said} ({negative} of {pieces} pieces)")
                continue
            summary = (f"negative feedback {rate:.0%} > {threshold:.0%} ({negative} of {pieces} pieces on "
                       f"runs of the last {window})")  # fmt: skip
            found.append(Finding(rule.name, rule.kind, tenant, agent, round(rate, 4), threshold, summary,
                                 runs=int(pieces), affected_users=int(users),
                                 example_trace_ids=tuple((traces or [])[:3])))  # fmt: skip
        return found

    def _requery_rate(self, rule: RuleConfig) -> list[Finding]:
        """The share of the window's runs their user asked again, similarly (``feedback.implicit``),
        per agent with at least ``min_runs`` runs."""
        since = self.now - timedelta(seconds=rule.window)
        agent = None if rule.agent is None else self._label(rule.agent)
        runs = self.runs.within(since, self.now, agent=agent, tenant=rule.tenant, synthetic=False)
        found = []
        window = format_duration(rule.window)
        for (tenant, label), seen in sorted(implicit_signals(runs, self.implicit).items()):
            threshold = self._own(tenant, label, "requery_rate", rule.threshold_value())
            rate = seen.requery_rate
            min_runs = self._own(tenant, label, "min_runs", rule.min_runs)
            if seen.runs < min_runs:
                self._measured(rule, tenant, label, _too_few(seen.runs, window, min_runs))
                continue
            if rate <= threshold:
                said = f"requery rate {rate:.0%} ≤ {threshold:.0%} in the last {window}"
                self._measured(
                    rule, tenant, label, f"{said} ({seen.requeried_runs} of {seen.runs} runs asked again)"
                )
                continue
            said = (f"requery rate {rate:.0%} > {threshold:.0%} ({seen.requeried_runs} of {seen.runs} runs "
                    f"asked again in the last {window})")  # fmt: skip
            found.append(Finding(rule.name, rule.kind, tenant, label, round(rate, 4), threshold, said,
                                 runs=seen.runs))  # fmt: skip
        return found

    def _success_rate(self, rule: RuleConfig) -> list[Finding]:
        """Every one of the last ``minutes`` whole minutes had a success rate under the threshold.
        A minute without runs keeps the rate of the last minute that had runs, up to ``window``
        before it: an agent that runs every few minutes is judged on the runs it has, and a quiet
        minute neither breaks nor makes a streak."""
        end = self.now.replace(second=0, microsecond=0)
        start = end - timedelta(minutes=rule.minutes)
        carry = timedelta(seconds=rule.window)
        rows = self._query(
            f"""SELECT tenant, agent, date_trunc('minute', start_time) AS minute, count(*) AS runs,
                      avg(CASE WHEN {SUCCEEDED_SQL} THEN 1.0 ELSE 0.0 END) AS rate
               FROM runs WHERE start_time < $end GROUP BY ALL ORDER BY ALL""",
            rule, start - carry, end=end,
        )  # fmt: skip
        per_agent: dict[tuple[str, str], list[tuple[datetime, int, float]]] = {}
        for tenant, agent, minute, runs, rate in rows:
            per_agent.setdefault((tenant, agent), []).append((minute, int(runs), float(rate)))
        threshold = rule.threshold_value()
        found = []
        for (tenant, agent), minutes in per_agent.items():
            states = _minute_states(minutes, start, rule.minutes, carry)
            used = _streak(states, threshold)
            if used is None:
                self._measured(rule, tenant, agent, _streak_broken(states, start, carry, threshold))
                continue
            best = max(rate for _, _, rate in used)
            with_runs = sum(1 for minute, _, _ in used if minute >= start)
            summary = f"success rate under {threshold:.0%} for {rule.minutes} minutes in a row"
            summary += f" (best minute {best:.0%}"
            if with_runs < rule.minutes:
                summary += f"; {with_runs} of them had runs, the others keep the rate of the minute"
                summary += " with runs before"
            summary += ")"
            found.append(Finding(rule.name, rule.kind, tenant, agent, round(best, 4), threshold, summary,
                                 runs=sum(runs for _, runs, _ in used),
                                 **self._details(tenant, agent, used[0][0])))  # fmt: skip
        return found

    def _failure_type_spike(self, rule: RuleConfig) -> list[Finding]:
        # Day 0 is the window before now; days 1..N the same hours of the N days before. A run
        # ``age`` seconds old falls on day ceil(age / DAY) - 1, ``age - day * DAY`` into it.
        since = self.now - timedelta(seconds=lookback(rule, self.now))
        type_filter = "AND failure_type = $type" if rule.failure_type else ""
        rows = self._query(
            f"""WITH aged AS (
                   SELECT tenant, agent, failure_type, epoch($now) - epoch(start_time) AS age
                   FROM runs WHERE {FAILED_SQL} AND failure_type IS NOT NULL {type_filter}),
               dated AS (SELECT *, ceil(age / {DAY}) - 1 AS day FROM aged
                         WHERE age - (ceil(age / {DAY}) - 1) * {DAY} <= $window)
               SELECT tenant, agent, failure_type, count(*) FILTER (WHERE day = 0),
                      count(*) FILTER (WHERE day BETWEEN 1 AND $days) / $days
               FROM dated GROUP BY ALL ORDER BY ALL""",
            rule, since, now=self.now, window=rule.window, days=rule.baseline_days,
            **({"type": rule.failure_type} if rule.failure_type else {}),
        )  # fmt: skip
        factor = rule.threshold_value()
        found = []
        window = timedelta(seconds=rule.window)
        for tenant, agent, failure_type, current, baseline in rows:
            ratio = current / baseline if baseline else float(current)
            last = f"in the last {format_duration(rule.window)}"
            if current < rule.min_count:
                said = f"{failure_type} failures {current} {last}, fewer than min_count {rule.min_count}"
                self._measured(rule, tenant, agent, said, str(failure_type))
                continue
            if current <= factor * baseline:
                said = f"{failure_type} x{ratio:.1f} ≤ x{factor:g} {last} ({current} vs {baseline:.2f} a day"
                said += f" at this hour over {rule.baseline_days} days)"
                self._measured(rule, tenant, agent, said, str(failure_type))
                continue
            summary = (
                f"{failure_type} x{ratio:.1f}: {current} in the last {format_duration(rule.window)} vs "
                f"{baseline:.2f} a day at this hour over {rule.baseline_days} days (threshold x{factor:g})"
            )
            found.append(Finding(rule.name, rule.kind, tenant, agent, round(ratio, 4), factor, summary,
                                 key_extra=str(failure_type), runs=int(current),
                                 **self._details(tenant, agent, self.now - window)))  # fmt: skip
        return found

    def _p99_latency(self, rule: RuleConfig) -> list[Finding]:
        since = self.now - timedelta(seconds=rule.window)
        rows = self._query(
            """SELECT tenant, agent, count(*), quantile_cont(duration_ms, 0.99)
               FROM runs WHERE duration_ms IS NOT NULL GROUP BY ALL ORDER BY ALL""",
            rule, since,
        )  # fmt: skip
        found = []
        for tenant, agent, runs, p99 in rows:
            threshold = self._own(tenant, agent, "p99_latency_ms", rule.threshold_value())
            min_runs = self._own(tenant, agent, "min_runs", rule.min_runs)
            window = format_duration(rule.window)
            if runs < min_runs:
                self._measured(rule, tenant, agent, _too_few(runs, window, min_runs))
                continue
            if p99 <= threshold:
                self._measured(rule, tenant, agent, f"p99 latency {p99:,.0f} ms ≤ {threshold:,.0f} ms in the "
                               f"last {window} ({runs} runs)")  # fmt: skip
                continue
            summary = (f"p99 latency {p99:,.0f} ms > {threshold:,.0f} ms over {runs} runs "
                       f"in the last {format_duration(rule.window)}")  # fmt: skip
            value = round(float(p99), 3)
            found.append(Finding(rule.name, rule.kind, tenant, agent, value, threshold, summary,
                                 runs=runs, **self._details(tenant, agent, since)))  # fmt: skip
        return found

    def _cross_user(self, rule: RuleConfig) -> list[Finding]:
        since = self.now - timedelta(seconds=rule.window)
        rows = self._query(
            f"""SELECT tenant, agent, {OWNER_FROM_SPANS_SQL} FROM runs GROUP BY ALL
               HAVING count(*) FILTER (WHERE {FAILED_SQL}) > 0 ORDER BY ALL""",
            rule, since,
        )  # fmt: skip
        found = []
        for tenant, agent, reported in rows:
            owner = self.registry.lookup(tenant, agent, reported).owner
            details = self._details(tenant, agent, since, owner)
            others = details["affected_users"]
            who = f"the owner {owner}" if owner else "the owner (unknown)"
            if others < rule.threshold_value():
                said = f"users other than {who} who saw failures {others} < {rule.threshold_value():g}"
                self._measured(rule, tenant, agent, f"{said} in the last {format_duration(rule.window)}")
                continue
            summary = (f"{others} user{'s' if others != 1 else ''} other than {who} saw failures "
                       f"in the last {format_duration(rule.window)}")  # fmt: skip
            found.append(Finding(rule.name, rule.kind, tenant, agent, float(others), rule.threshold_value(),
                                 summary, extra={"owner": owner}, **details))  # fmt: skip
        return found

    def _spend_spike(self, rule: RuleConfig) -> list[Finding]:
        since = self.now - timedelta(seconds=lookback(rule, self.now))
        rows = self._query(
            f"""WITH dated AS (
                   SELECT tenant, agent, cost_usd, ceil((epoch($now) - epoch(start_time)) / {DAY}) - 1 AS day,
                          epoch($now) - epoch(start_time) AS age
                   FROM runs WHERE cost_usd IS NOT NULL)
               SELECT tenant, agent, coalesce(sum(cost_usd) FILTER (WHERE day = 0), 0),
                      coalesce(sum(cost_usd) FILTER (WHERE day BETWEEN 1 AND $days), 0) / $days
               FROM dated WHERE age - day * {DAY} <= $window GROUP BY ALL ORDER BY ALL""",
            rule, since, now=self.now, window=rule.window, days=rule.baseline_days,
        )  # fmt: skip
        percent = rule.threshold_value()
        found = []
        window = format_duration(rule.window)
        for tenant, agent, spend, baseline in rows:
            if baseline <= 0:
                self._measured(rule, tenant, agent, f"spend ${spend:,.2f} in the last {window}, none at this "
                               f"hour over the {rule.baseline_days} days before to compare with")  # fmt: skip
                continue
            over = (spend / baseline - 1) * 100
            if spend <= baseline * (1 + percent / 100):
                said = f"spend {over:+.0f}% vs the {rule.baseline_days}-day average ≤ +{percent:g}%"
                self._measured(
                    rule, tenant, agent, f"{said} in the last {window} (${spend:,.2f} vs ${baseline:,.2f})"
                )
                continue
            summary = (
                f"spend ${spend:,.2f} in the last {format_duration(rule.window)} is {over:.0f}% over the "
                f"{rule.baseline_days}-day average ${baseline:,.2f} (threshold {percent:g}%)"
            )
            found.append(Finding(rule.name, rule.kind, tenant, agent, round(over, 2), percent, summary))
        return found

    def _budget(self, rule: RuleConfig) -> list[Finding]:
        if rule.threshold is None:
            return self._configured_budgets(rule)
        since = self.now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        rows = self._query(
            "SELECT tenant, coalesce(sum(cost_usd), 0) FROM runs GROUP BY ALL ORDER BY ALL", rule, since
        )
        budget = rule.threshold_value()
        month = since.strftime("%Y-%m")
        found = []
        for tenant, spend in rows:
            for level in sorted(rule.levels):
                if spend < budget * level:
                    continue
                summary = (f"spend ${spend:,.2f} this month ({month}) has reached {level:.0%} of the "
                           f"${budget:,.2f} budget")  # fmt: skip
                share = round(spend / budget, 4)
                found.append(Finding(rule.name, rule.kind, tenant, rule.agent or "*", share, level, summary,
                                     key_extra=f"{month}@{level:g}", repeats=False,
                                     resolves=False))  # fmt: skip
        return found

    def _scoped_budgets(self, rule: RuleConfig) -> dict[str, Budget]:
        return {
            name: b for name, b in self.budgets.items()
            if rule.tenant in (None, b.tenant) and rule.agent in (None, b.agent)
        }  # fmt: skip

    def _configured_budgets(self, rule: RuleConfig) -> list[Finding]:
        """Each budget of the config (of the rule's tenant and agent) past each of the levels."""
        found = []
        for state in budget_states(self.runs.con, self._scoped_budgets(rule), self.now, forecast=False):
            b = state.budget
            for level in sorted(rule.levels):
                if state.used < level:
                    continue
                summary = (
                    f"budget {state.name}: spend ${state.spend_usd:,.2f} this month ({state.month}) has "
                    f"reached {level:.0%} of ${b.monthly_usd:,.2f}" + (" (a hard budget)" if b.hard else "")
                )
                key = f"{state.name}@{state.month}@{level:g}"
                tenant, agent, used = b.tenant or "*", b.agent or "*", round(state.used, 4)
                found.append(Finding(rule.name, rule.kind, tenant, agent, used, level, summary, key_extra=key,
                                     repeats=False, resolves=False))  # fmt: skip
        return found

    def _forecast_overrun(self, rule: RuleConfig) -> list[Finding]:
        """A budget whose month-end forecast's lower bound (the 5th percentile) is over it: once
        a month per budget."""
        found = []
        states = budget_states(self.runs.con, self._scoped_budgets(rule), self.now, forecast=True)
        for state in states:
            f, b = state.forecast, state.budget
            if f is None or f.low <= b.monthly_usd:
                continue
            summary = (
                f"budget {state.name}: the month ({state.month}) is forecast to end at ${f.month_end:,.2f} "
                f"(at least ${f.low:,.2f}) against ${b.monthly_usd:,.2f}; ${state.spend_usd:,.2f} spent"
            )
            found.append(Finding(rule.name, rule.kind, b.tenant or "*", b.agent or "*", round(f.low, 2),
                                 b.monthly_usd, summary, key_extra=f"{state.name}@{state.month}",
                                 repeats=False, resolves=False))  # fmt: skip
        return found

    def _eval_regression(self, rule: RuleConfig) -> list[Finding]:
        since = self.now - timedelta(seconds=rule.window)
        params: dict[str, Any] = {"since": since, "now": self.now}
        where = ["time >= $since", "time < $now", *_scope(rule, params)]
        rows = self.runs.con.execute(
            f"""SELECT tenant, agent, event, run_id, baseline_run, dimensions FROM eval_events
                WHERE {" AND ".join(where)} ORDER BY time, run_id""",
            params,
        ).fetchall()
        found = []
        for tenant, agent, event, run_id, baseline_run, dimensions in rows:
            deltas: dict[str, float] = json.loads(dimensions or "{}")
            worst = min(deltas.values(), default=0.0)
            what = "canary drop" if event == "canary_drop" else "eval regression"
            listed = ", ".join(f"{d} {v:+.2f}" for d, v in sorted(deltas.items()))
            summary = f"{what}: run {run_id} vs baseline {baseline_run}: {listed}"
            found.append(Finding(rule.name, rule.kind, str(tenant), str(agent), worst, 0.0, summary,
                                 key_extra=str(run_id), repeats=False, resolves=False,
                                 extra={"event": event, "run_id": run_id}))  # fmt: skip
        return found


def _too_few(runs: int, window: str, min_runs: float) -> str:
    return f"{runs} run{'s' if runs != 1 else ''} in the last {window}, fewer than min_runs {min_runs:g}"


Minute = tuple[datetime, int, float]
"""A minute with runs: (the minute, runs, success rate)."""


def _minute_states(
    minutes: list[Minute], start: datetime, count: int, carry: timedelta
) -> list[Minute | None]:
    """For each of the ``count`` minutes from ``start``, the minute with runs (of ``minutes``, in
    order) it takes its success rate from: itself, else the last one before it, up to ``carry``
    before it; None when unknown (no runs within ``carry`` before it)."""
    by_minute = {minute: (minute, runs, rate) for minute, runs, rate in minutes}
    earlier = [m for m in minutes if m[0] < start]
    state = earlier[-1] if earlier else None
    states: list[Minute | None] = []
    for i in range(count):
        minute = start + timedelta(minutes=i)
        state = by_minute.get(minute, state)
        states.append(None if state is None or minute - state[0] > carry else state)
    return states


def _streak(states: list[Minute | None], threshold: float) -> list[Minute] | None:
    """The minutes with runs the minutes of ``states`` take their rates from (each once, in
    order), when every one of those rates is under ``threshold``; None when a minute's rate is
    at or over it, or unknown."""
    used: list[Minute] = []
    for state in states:
        if state is None or state[2] >= threshold:
            return None
        if not used or used[-1] is not state:
            used.append(state)
    return used


def _streak_broken(states: list[Minute | None], start: datetime, carry: timedelta, threshold: float) -> str:
    """Why ``states`` make no streak under ``threshold``: the best minute's success rate at or
    over it (the latest of equals), else the first minute whose rate is unknown."""
    known = [s for s in states if s is not None]
    best = max(known, key=lambda s: (s[2], s[0]), default=None)
    if best is not None and best[2] >= threshold:
        minute, runs, rate = best
        said = (
            f"success rate {rate:.0%} ≥ {threshold:.0%} in the minute from {minute.astimezone(UTC):%H:%M} UTC"
        )
        return f"{said} ({round(rate * runs)} of {runs} runs)"
    unknown = start + timedelta(minutes=states.index(None))
    return (f"success rate unknown from {unknown.astimezone(UTC):%H:%M} UTC "
            f"(no runs in the {format_duration(carry.total_seconds())} before it)")  # fmt: skip


def _no_runs(rule: RuleConfig, finding: Finding) -> str:
    return f"no runs in the last {format_duration(rule.window)}"


_NOTHING_MEASURED: dict[str, Callable[[RuleConfig, Finding], str]] = {
    "failure_rate": _no_runs,
    "p99_latency": _no_runs,
    "requery_rate": _no_runs,
    "success_rate": lambda rule, _: f"no runs in the last {format_duration(rule.minutes * 60 + rule.window)}",
    "cross_user": lambda rule, _: f"no failed runs in the last {format_duration(rule.window)}",
    "negative_feedback_rate": lambda rule, _: (
        f"no feedback on runs of the last {format_duration(rule.window)}"
    ),
    "spend_spike": lambda rule, _: f"no spend in the last {format_duration(rule.window)}",
    "failure_type_spike": lambda rule, f: (
        f"no {f.key_extra} failures in the last {format_duration(rule.window)}"
    ),
}
"""What a rule that resolves with a message says when it measured nothing for the agent now
(no row of its own: ``RuleEvaluator.now_text``), per kind."""


def _scope(rule: RuleConfig, params: dict[str, Any]) -> list[str]:
    """Conditions limiting rows to the rule's agent and tenant (their values go into ``params``)."""
    where = []
    for column in ("agent", "tenant"):
        if (value := getattr(rule, column)) is not None:
            where.append(f"{column} = ${column}")
            params[column] = value
    return where
