"""The facts of an agent's health that change slowly, read from storage every
``health.refresh_interval`` on a background thread (never on a request):

- the **baseline**: per agent and UTC hour of day, the runs of the previous ``baseline_days``
  days (today left out): runs, failure rate, p50 and p95 latency (re-read once a day);
- **judge scores** of production runs that ended in the last ``max_window``: the mean
  groundedness and hallucination-risk scores (0-10) and how many runs were judged;
- **feedback** on those runs: pieces and the share that is negative;
- **open alerts**: alerts whose last message fired or repeated;
- **budgets** the agent falls under (its tenant's, its own, global ones), spend this month
  against them (re-read every tenth refresh: they read the month's runs).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import duckdb

from core import supervision
from core.periodic import Periodic
from health.config import HealthConfig
from spend.budgets import Budget, BudgetState, budget_states
from storage.catalog import connect
from storage.runs import FAILED_SQL, KEY_COLUMNS, Scope, runs_in

log = logging.getLogger("health.context")

BUDGET_EVERY = 10
"""Budgets are re-read every this many refreshes."""


@dataclass(frozen=True)
class Baseline:
    runs: int
    days: int
    failure_rate: float | None
    p50_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True)
class AgentContext:
    """What storage says of an agent (see the module); empty when it says nothing."""

    baseline: Baseline | None = None
    judged_runs: int = 0
    groundedness: float | None = None
    hallucination_risk: float | None = None
    """The mean hallucination-risk score: 10 is low risk, 0 high."""
    feedback: int = 0
    negative_feedback: int = 0
    open_alerts: tuple[dict[str, Any], ...] = ()
    budgets: tuple[BudgetState, ...] = ()

    @property
    def negative_feedback_rate(self) -> float | None:
        return self.negative_feedback / self.feedback if self.feedback else None


EMPTY = AgentContext()


@dataclass
class _Facts:
    baselines: dict[tuple[str, str, int], Baseline] = field(default_factory=dict)
    baseline_day: str | None = None
    scores: dict[tuple[str, str], tuple[int, float | None, float | None]] = field(default_factory=dict)
    feedback: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    alerts: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    budgets: list[BudgetState] = field(default_factory=list)


class HealthContext:
    def __init__(
        self, config: HealthConfig, data_dir: Path, budgets: dict[str, Budget] | None = None,
        memory_mib: int | None = None,
    ) -> None:  # fmt: skip
        self.config = config
        self.data_dir = data_dir
        self.budgets = budgets or {}
        self.memory_mib = memory_mib
        self._facts = _Facts()
        self._lock = threading.Lock()
        self._refreshes = 0
        self._baseline_names: dict[tuple[str, str], str] = {}
        self.version = 0
        self._loop = Periodic(
            "agentwatch-health-context", config.refresh_interval, self.refresh, (duckdb.Error, OSError),
            lambda exc: log.warning("health: reading storage failed (%s); the next pass tries again", exc),
        )  # fmt: skip

    def start(self) -> None:
        supervision.start_thread("agentwatch-health-first", self._first_refresh)
        self._loop.start()

    def _first_refresh(self) -> None:
        try:
            self.refresh()
        except (duckdb.Error, OSError) as exc:
            log.warning("health: reading storage failed (%s); the next pass tries again", exc)

    def stop(self) -> None:
        self._loop.stop()

    def label(self, tenant: str, agent: str) -> str:
        """The label (id) of the agent named ``agent`` in the baseline's runs (``agent`` when
        none is named so): an agent asked for by its name with no recent runs in memory."""
        return self._baseline_names.get((tenant, agent), agent)

    def of(self, tenant: str, agent: str, name: str | None, hours: tuple[int, ...]) -> AgentContext:
        """The facts of an agent (by its label; ``name`` too, for budgets set by name), with the
        baseline of the UTC ``hours`` of day its window covers."""
        facts = self._facts
        key = (tenant, agent)
        baselines = [b for h in hours if (b := facts.baselines.get((tenant, agent, h))) is not None]
        judged, grounded, risk = facts.scores.get(key, (0, None, None))
        pieces, negative = facts.feedback.get(key, (0, 0))
        budgets = tuple(
            s for s in facts.budgets
            if s.budget.tenant in (None, tenant) and s.budget.team is None
            and s.budget.agent in (None, agent, *((name,) if name else ()))
        )  # fmt: skip
        return AgentContext(
            _merged(baselines, self.config.baseline_days), judged, grounded, risk, pieces, negative,
            tuple(facts.alerts.get(key, ())), budgets,
        )  # fmt: skip

    def refresh(self, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        con = connect(self.data_dir)
        try:
            if self.memory_mib:
                con.execute(f"SET memory_limit = '{int(self.memory_mib)}MB'")
            old = self._facts
            facts = _Facts(baseline_day=old.baseline_day, baselines=old.baselines, budgets=old.budgets)
            today = now.date().isoformat()
            if facts.baseline_day != today:
                facts.baselines, facts.baseline_day = self._baselines(con, now), today
            self._recent(con, now, facts)
            facts.alerts = _open_alerts(con)
            if self.budgets and self._refreshes % BUDGET_EVERY == 0:
                facts.budgets = budget_states(con, self.budgets, now, forecast=False)
        finally:
            con.close()
        with self._lock:
            self._facts = facts
            self._refreshes += 1
            self.version += 1

    def _baselines(
        self, con: duckdb.DuckDBPyConnection, now: datetime
    ) -> dict[tuple[str, str, int], Baseline]:
        midnight = datetime.combine(now.date(), time(), UTC)
        scope = Scope(midnight - timedelta(days=self.config.baseline_days), midnight)
        runs = runs_in(con, scope, ("agent_name",), base=(*KEY_COLUMNS, "outcome", "duration_ms"))
        try:
            self._baseline_names = {
                (t, n): a
                for t, n, a in runs.query(
                    "SELECT tenant, agent_name, mode(agent) FROM runs"
                    " WHERE agent_name IS NOT NULL AND agent_name <> agent GROUP BY ALL"
                )
            }
            found = runs.query(
                f"""SELECT tenant, agent, hour(timezone('UTC', start_time)) AS hour, count(*),
                           count(DISTINCT CAST(timezone('UTC', start_time) AS DATE)),
                           avg(CASE WHEN {FAILED_SQL} THEN 1.0 ELSE 0.0 END),
                           quantile_cont(duration_ms, 0.5), quantile_cont(duration_ms, 0.95)
                    FROM runs GROUP BY ALL"""
            )
        finally:
            runs.drop()
        return {(t, a, int(h)): Baseline(int(n), int(d), r, p50, p95) for t, a, h, n, d, r, p50, p95 in found}

    def _recent(self, con: duckdb.DuckDBPyConnection, now: datetime, facts: _Facts) -> None:
        """Judge scores and feedback of the runs of the last ``max_window``."""
        scope = Scope(now - timedelta(seconds=self.config.max_window), now)
        runs = runs_in(con, scope, base=KEY_COLUMNS)
        try:
            for tenant, agent, judged, grounded, risk in runs.query(
                """SELECT r.tenant, r.agent, count(DISTINCT r.trace_id),
                          avg(s.value) FILTER (WHERE s.dimension = 'groundedness'),
                          avg(s.value) FILTER (WHERE s.dimension = 'hallucination_risk')
                   FROM runs r JOIN scores s ON s.tenant = r.tenant AND s.trace_id = r.trace_id
                   WHERE s.eval_run_id IS NULL AND s.dimension IN ('groundedness', 'hallucination_risk')
                   GROUP BY ALL"""
            ):
                facts.scores[(tenant, agent)] = (int(judged), grounded, risk)
            for tenant, agent, pieces, negative in runs.query(
                """SELECT r.tenant, r.agent, count(*), count(*) FILTER (WHERE f.negative)
                   FROM runs r JOIN feedback f ON f.tenant = r.tenant AND f.trace_id = r.trace_id
                   GROUP BY ALL"""
            ):
                facts.feedback[(tenant, agent)] = (int(pieces), int(negative))
        finally:
            runs.drop()


def _open_alerts(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Per agent, the alerts whose last message fired or repeated (they have not resolved)."""
    found: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    rows = con.execute(
        """SELECT tenant, agent, rule, kind, fired_at, value, threshold, summary FROM alert_events
           QUALIFY row_number() OVER (PARTITION BY alert_key ORDER BY time DESC) = 1
               AND state IN ('firing', 'repeat')
           ORDER BY fired_at DESC"""
    ).fetchall()
    for tenant, agent, rule, kind, fired_at, value, threshold, summary in rows:
        found[(tenant, agent)].append({
            "rule": rule, "kind": kind, "fired_at": fired_at.isoformat(), "value": value,
            "threshold": threshold, "summary": summary,
        })  # fmt: skip
    return found


def _merged(baselines: list[Baseline], days: int) -> Baseline | None:
    """The baseline of several hours of day: runs added up, rates and latencies weighted by runs."""
    if not baselines:
        return None
    if len(baselines) == 1:
        return baselines[0]
    runs = sum(b.runs for b in baselines)

    def weighted(values: list[tuple[int, float | None]]) -> float | None:
        known = [(n, v) for n, v in values if v is not None]
        total = sum(n for n, _ in known)
        return sum(n * v for n, v in known) / total if total else None

    return Baseline(
        runs, max(b.days for b in baselines), weighted([(b.runs, b.failure_rate) for b in baselines]),
        weighted([(b.runs, b.p50_ms) for b in baselines]), weighted([(b.runs, b.p95_ms) for b in baselines]),
    )  # fmt: skip
