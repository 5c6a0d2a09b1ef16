"""The alert loop inside ``agentwatch serve``: every ``alerts.interval`` it evaluates the rules
over the stored data, steps the alert state, sends the messages and stores one ``alert_events``
row per message (with which notifiers delivered it).

A rule that fails to evaluate is logged and counted, and its alerts are left as they are; a
notifier that fails is logged and counted, and the other notifiers still deliver. Neither stops
the loop. The clock is injected, so tests step time instead of sleeping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import orjson

from alerting import notifiers as notifier_factory
from alerting.config import AlertsConfig
from alerting.messages import Message, agent_url
from alerting.notifiers import Delivery, Notifier
from alerting.rules import Finding, RuleEvaluator, lookback
from alerting.state import RESOLVED, AlertState, Transition
from core.agents import AgentConfig
from core.periodic import Periodic
from feedback.implicit import ImplicitConfig
from spend.budgets import Budget
from storage.tables import AlertEventRow, write_rows

log = logging.getLogger("agentwatch.alerts")


@dataclass
class AlertingStats:
    passes: int = 0
    messages: int = 0
    deliveries_failed: int = 0
    rule_failures: int = 0


class Alerting:
    def __init__(
        self, config: AlertsConfig, agents: tuple[AgentConfig, ...], data_dir: Path,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        notifiers: dict[str, Notifier] | None = None, budgets: dict[str, Budget] | None = None,
        implicit: ImplicitConfig | None = None,
    ) -> None:  # fmt: skip
        self.config = config
        self.agents = agents
        self.budgets = budgets or {}
        self.implicit = implicit or ImplicitConfig()
        """How requeries are read (the config's ``feedback:``), for ``requery_rate`` rules."""
        self.data_dir = data_dir
        self.clock = clock
        self.notifiers = notifiers if notifiers is not None else {
            name: notifier_factory.create(name, n) for name, n in config.notifiers.items()
        }  # fmt: skip
        self.state = AlertState()
        self.stats = AlertingStats()
        self._restored = False
        self._loop = Periodic("agentwatch-alerts", config.interval, self.run_once, (OSError, duckdb.Error),
                              _failed)  # fmt: skip

    def run_once(self) -> list[Transition]:
        """One pass at ``clock()``: the transitions it made (sent or not)."""
        from storage.catalog import connect
        from storage.runs import USAGE, Scope, runs_in

        now = self.clock()
        con = connect(self.data_dir)
        try:
            if not self._restored:
                self.state.restore(_last_events(con))
                self._restored = True
            if not self.config.rules:
                return []
            longest = max(lookback(rule, now) for rule in self.config.rules)
            # requery_rate reads the sessions too (the implicit feedback's columns).
            requery = any(rule.kind == "requery_rate" for rule in self.config.rules)
            extra = (*USAGE, "session_id") if requery else USAGE
            runs = runs_in(con, Scope(now - timedelta(seconds=longest), now), extra)
            evaluator = RuleEvaluator(runs, now, self.agents, self.budgets, self.implicit)
            findings: list[Finding] = []
            evaluated: set[str] = set()
            for rule in self.config.rules:
                try:
                    findings += evaluator.findings(rule)
                except duckdb.Error as exc:
                    self.stats.rule_failures += 1
                    log.error(
                        "alert rule %r failed to evaluate; its alerts are kept as they are: %s",
                        rule.name,
                        exc,
                    )
                    continue
                evaluated.add(rule.name)
            evaluator.load_names()
        finally:
            con.close()
        transitions = [
            replace(
                t,
                finding=replace(t.finding, agent_name=evaluator.agent_name(*_who(t.finding))),
                now_text=evaluator.now_text(t.finding, self.config.rule(t.finding.rule))
                if t.state == RESOLVED
                else None,
            )
            for t in self.state.step(findings, now, self._cooldown, evaluated)
        ]
        rows = [self._deliver(t, now) for t in transitions]
        by_tenant: dict[str, list[AlertEventRow]] = {}
        for transition, row in zip(transitions, rows, strict=True):
            by_tenant.setdefault(transition.finding.tenant, []).append(row)
        for tenant, tenant_rows in by_tenant.items():
            write_rows(self.data_dir, tenant, now, tenant_rows)
        self.stats.passes += 1
        return transitions

    def message(self, transition: Transition, now: datetime) -> Message:
        f = transition.finding
        url = agent_url(self.config.public_url, f.tenant, f.agent) if f.agent != "*" else None
        return Message(transition.state, f, now, transition.fired_at, url, transition.now_text,
                       self.config.public_url)  # fmt: skip

    def send(self, message: Message, targets: tuple[str, ...]) -> list[Delivery]:
        deliveries = []
        for name in targets:
            delivery = self.notifiers[name].send(message)
            deliveries.append(delivery)
            if not delivery.ok:
                self.stats.deliveries_failed += 1
                log.error("alert %s [%s] to %s failed after %d attempts: %s", message.state,
                          message.finding.rule, name, delivery.attempts, delivery.error)  # fmt: skip
        self.stats.messages += 1
        return deliveries

    def _deliver(self, transition: Transition, now: datetime) -> AlertEventRow:
        rule = self.config.rule(transition.finding.rule)
        deliveries = (
            [] if transition.silent or rule is None else self.send(self.message(transition, now), rule.notify)
        )
        f = transition.finding
        return AlertEventRow(
            time=now, state=transition.state, rule=f.rule, kind=f.kind, agent=f.agent, alert_key=f.key,
            fired_at=transition.fired_at, value=f.value, threshold=f.threshold, summary=f.summary,
            runs=f.runs, affected_users=f.affected_users,
            top_failure_types=orjson.dumps(f.top_failure_types).decode(),
            example_trace_ids=orjson.dumps(f.example_trace_ids).decode(),
            repeats=f.repeats, resolves=f.resolves,
            delivered=orjson.dumps([d.notifier for d in deliveries if d.ok]).decode(),
            failed=orjson.dumps({d.notifier: d.error for d in deliveries if not d.ok}).decode(),
            agent_name=f.agent_name,
        )  # fmt: skip

    def _cooldown(self, rule_name: str) -> float:
        rule = self.config.rule(rule_name)
        return rule.cooldown if rule is not None and rule.cooldown is not None else self.config.cooldown

    # -- in the background -------------------------------------------------------------------
    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
        for notifier in self.notifiers.values():
            notifier.close()


def _who(finding: Finding) -> tuple[str, str]:
    return finding.tenant, finding.agent


def _failed(exc: Exception) -> None:
    log.error("alert evaluation failed; retrying next interval: %s", exc)


def _last_events(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, datetime, datetime, Finding]]:
    rows = con.execute(
        """SELECT alert_key, state, fired_at, time, rule, kind, tenant, agent, value, threshold, summary,
                  runs, affected_users, top_failure_types, example_trace_ids, repeats, resolves
           FROM alert_events QUALIFY row_number() OVER (PARTITION BY alert_key ORDER BY time DESC) = 1"""
    ).fetchall()
    out = []
    for (key, state, fired_at, time, rule, kind, tenant, agent, value, threshold, summary, runs, users,
         types, examples, repeats, resolves) in rows:  # fmt: skip
        finding = Finding(
            rule, kind, tenant, agent, value, threshold, summary, key_extra=key.split("|", 3)[3], runs=runs,
            affected_users=users, top_failure_types=tuple((t, n) for t, n in orjson.loads(types)),
            example_trace_ids=tuple(orjson.loads(examples)), repeats=repeats, resolves=resolves,
        )  # fmt: skip
        out.append((key, state, fired_at, time, finding))
    return out
