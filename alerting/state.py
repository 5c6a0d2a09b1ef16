"""Which alerts are firing, and what each pass must say about them.

A finding not yet active **fires**; an active one is **repeated** once its cooldown has passed
since the last message (unless it says it does not repeat); an active one no longer found is
**resolved** (silently when it says it does not resolve). The state survives restarts: it is
rebuilt from the stored ``alert_events`` (the last event per alert).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from alerting.rules import Finding

FIRING, REPEAT, RESOLVED = "firing", "repeat", "resolved"


@dataclass
class Active:
    finding: Finding
    fired_at: datetime
    last_sent: datetime


@dataclass(frozen=True)
class Transition:
    state: str  # firing | repeat | resolved
    finding: Finding
    """For ``resolved``: the finding as it was last reported."""
    fired_at: datetime
    silent: bool = False
    """Recorded, not sent (the resolution of an alert that does not resolve)."""
    now_text: str | None = None
    """For ``resolved``: what the rule measures now, in words (``RuleEvaluator.now_text``)."""


class AlertState:
    def __init__(self) -> None:
        self.active: dict[str, Active] = {}

    def restore(self, last_events: Iterable[tuple[str, str, datetime, datetime, Finding]]) -> None:
        """From (key, state, fired_at, time, finding) of each alert's last stored event."""
        for key, state, fired_at, time, finding in last_events:
            if state in (FIRING, REPEAT):
                self.active[key] = Active(finding, fired_at, time)

    def step(
        self, findings: list[Finding], now: datetime, cooldown: Callable[[str], float],
        evaluated: set[str] | None = None,
    ) -> list[Transition]:  # fmt: skip
        """Transitions at ``now``. ``evaluated``: the rules this pass evaluated; alerts of other
        rules (one that failed to evaluate) are left as they are, neither repeated nor resolved."""
        out: list[Transition] = []
        current = {f.key: f for f in findings}
        for key, finding in current.items():
            active = self.active.get(key)
            if active is None:
                self.active[key] = Active(finding, now, now)
                out.append(Transition(FIRING, finding, now))
            elif finding.repeats and now - active.last_sent >= timedelta(seconds=cooldown(finding.rule)):
                active.finding, active.last_sent = finding, now
                out.append(Transition(REPEAT, finding, active.fired_at))
            else:
                active.finding = finding
        for key in [k for k in self.active if k not in current]:
            active = self.active[key]
            if evaluated is not None and active.finding.rule not in evaluated:
                continue
            del self.active[key]
            out.append(
                Transition(RESOLVED, active.finding, active.fired_at, silent=not active.finding.resolves)
            )
        return out
