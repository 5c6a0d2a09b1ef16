"""The ``alerts:`` section: rules over the stored data, and where their messages go.

alerts:
  interval: 10s                  # how often serve evaluates the rules
  cooldown: 1h                   # a firing alert is repeated at most this often
  public_url: https://agentwatch.acme.com   # links to the agent's page in messages (optional)
  rules:
    - name: failing-agents
      kind: failure_rate         # see KINDS
      threshold: 0.2             # share of runs that failed
      window: 15m
      min_runs: 5
      agent: expense-bot         # optional: one agent (default: every agent)
      tenant: acme               # optional: one tenant
      notify: [slack]
  notifiers:
    slack:
      type: slack                # slack | webhook
      webhook_url: ${env:SLACK_WEBHOOK_URL}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from core.configmodel import STRICT
from core.units import Duration

Kind = Literal[
    "failure_rate", "success_rate", "failure_type_spike", "p99_latency", "cross_user", "spend_spike",
    "budget", "eval_regression", "forecast_overrun", "negative_feedback_rate", "requery_rate",
]  # fmt: skip
KINDS: tuple[str, ...] = Kind.__args__  # type: ignore[attr-defined]

# What ``threshold`` means per kind, and its default (None: the rule must give one).
THRESHOLDS: dict[str, tuple[str, float | None]] = {
    "failure_rate": ("share of runs that failed (0-1)", None),
    "success_rate": ("share of runs that succeeded (0-1), per minute", None),
    "failure_type_spike": ("times the trailing baseline", 3.0),
    "p99_latency": ("p99 run latency in milliseconds", None),
    "cross_user": ("users other than the owner who saw failures", 1.0),
    "spend_spike": ("percent over the trailing daily average", 50.0),
    "budget": ("budget in USD for the calendar month; left out, each of the config's budgets:", 0.0),
    "eval_regression": ("(unused: every regression or canary drop event fires)", 0.0),
    "forecast_overrun": (
        "(unused: each of the config's budgets: whose forecast's lower bound is over it)",
        0.0,
    ),
    "negative_feedback_rate": ("share of feedback on the window's runs that is negative (0-1)", None),
    "requery_rate": ("share of the window's runs their user asked again, similarly (0-1)", None),
}


@dataclass(frozen=True)
class RuleConfig:
    __pydantic_config__ = STRICT
    name: str
    kind: Kind
    threshold: float | None = None
    """Meaning per kind: see ``THRESHOLDS``."""
    window: Duration = 900.0
    min_runs: int = 5
    """Runs a window needs before a rate or percentile means anything."""
    agent: str | None = None
    tenant: str | None = None
    notify: tuple[str, ...] = ()
    cooldown: Duration | None = None
    """Overrides ``alerts.cooldown`` for this rule."""
    minutes: int = 5
    """success_rate: consecutive minutes the rate must stay under the threshold. A minute without
    runs keeps the rate of the last minute with runs, for up to ``window`` (so quiet minutes of an
    agent that does not run every minute neither break nor make the streak)."""
    failure_type: str | None = None
    """failure_type_spike: one type (default: every type)."""
    min_count: int = 3
    """failure_type_spike: failures of the type the window needs before a ratio means anything;
    negative_feedback_rate: pieces of feedback it needs."""
    baseline_days: int = 7
    """failure_type_spike and spend_spike: trailing days compared with (same hour of day)."""
    levels: tuple[float, ...] = (0.5, 0.8, 1.0)
    """budget: shares of the budget that each send a message once crossed."""

    def threshold_value(self) -> float:
        default = THRESHOLDS[self.kind][1]
        value = self.threshold if self.threshold is not None else default
        assert value is not None  # validated
        return value

    def validate(self) -> list[str]:
        problems = [] if self.name.strip() else ["name: must not be empty"]
        meaning, default = THRESHOLDS[self.kind]
        if self.threshold is None and default is None:
            problems.append(f"threshold: a {self.kind} rule needs one ({meaning})")
        shares = ("failure_rate", "success_rate", "negative_feedback_rate", "requery_rate")
        if self.kind in shares and self.threshold is not None:
            if not 0 <= self.threshold <= 1:
                problems.append(f"threshold: must be between 0 and 1 ({meaning})")
        elif self.threshold is not None and self.threshold < 0:
            problems.append("threshold: must not be negative")
        if self.window <= 0:
            problems.append("window: must be positive")
        if self.min_runs < 1:
            problems.append("min_runs: must be at least 1")
        if self.minutes < 1:
            problems.append("minutes: must be at least 1")
        if self.baseline_days < 1:
            problems.append("baseline_days: must be at least 1")
        if not self.levels or any(not level > 0 for level in self.levels):
            problems.append("levels: must be positive shares of the budget, e.g. [0.5, 0.8, 1.0]")
        return problems


@dataclass(frozen=True)
class NotifierConfig:
    __pydantic_config__ = STRICT
    type: Literal["slack", "webhook"]
    webhook_url: str
    """Slack incoming-webhook URL, or any URL that takes a JSON POST. Use ${env:VAR}."""
    headers: dict[str, str] = field(default_factory=dict)
    """webhook: extra headers (e.g. Authorization: Bearer ${env:TOKEN})."""
    timeout: Duration = 10.0
    retries: int = 3
    backoff: Duration = 1.0

    def validate(self) -> list[str]:
        problems = []
        if not self.webhook_url.startswith(("http://", "https://")):
            problems.append("webhook_url: must be an http(s) URL")
        if self.retries < 0:
            problems.append("retries: must not be negative")
        return problems


@dataclass(frozen=True)
class AlertsConfig:
    __pydantic_config__ = STRICT
    interval: Duration = 30.0
    cooldown: Duration = 3600.0
    public_url: str | None = None
    rules: tuple[RuleConfig, ...] = ()
    notifiers: dict[str, NotifierConfig] = field(default_factory=dict)

    def validate(self) -> list[str]:
        problems = [] if self.interval > 0 else ["interval: must be positive"]
        seen: dict[str, int] = {}
        for i, rule in enumerate(self.rules):
            problems += [f"rules.{i}.{p}" for p in rule.validate()]
            if rule.name in seen:
                problems.append(
                    f"rules.{i}.name: {rule.name!r} is already the name of rules.{seen[rule.name]}"
                )
            seen.setdefault(rule.name, i)
            for j, target in enumerate(rule.notify):
                if target not in self.notifiers:
                    known = ", ".join(sorted(self.notifiers)) or "none defined"
                    problems.append(
                        f"rules.{i}.notify.{j}: {target!r} is not under alerts.notifiers ({known})"
                    )
        for name, notifier in self.notifiers.items():
            problems += [f"notifiers.{name}.{p}" for p in notifier.validate()]
        return problems

    def rule(self, name: str) -> RuleConfig | None:
        return next((r for r in self.rules if r.name == name), None)
