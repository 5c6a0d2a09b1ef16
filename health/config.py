"""The ``health:`` section: the in-memory health aggregate behind ``/api/v1/agents/{agent}/health``.

health:
  enabled: true          # keep the aggregate (the converter workers digest what they store)
  max_window: 1h         # the longest ?window= the API answers (minute buckets kept this long)
  refresh_interval: 30s  # how often the facts read from storage are refreshed
  baseline_days: 7       # the baseline: the same hours of this many previous days
  settle: 60s            # a trace whose root span has not come is counted as a run after this
  max_pending_traces: 100000  # traces waiting for their root span, at most (oldest counted first)

Advice rules are per agent, in the ``agents:`` section (``core.agents.Advice``).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.configmodel import STRICT
from core.units import Duration


@dataclass(frozen=True)
class HealthConfig:
    __pydantic_config__ = STRICT
    enabled: bool = True
    """Keep the aggregate. Off: the health endpoint answers 404 and workers digest nothing."""
    max_window: Duration = 3600.0
    """The longest window the health endpoint answers; minute buckets are kept this long."""
    refresh_interval: Duration = 30.0
    """How often the baseline, judge scores, feedback, open alerts and budgets are re-read."""
    baseline_days: int = 7
    """The baseline of a window: the runs of the same hours of this many previous days."""
    settle: Duration = 60.0
    """A trace whose root span has not arrived this long after its first spans counts as a run."""
    max_pending_traces: int = 100_000
    """Traces held waiting for their root span; past it, the oldest are counted as runs."""

    def validate(self) -> list[str]:
        problems = []
        if not 60 <= self.max_window <= 86_400:
            problems.append("max_window: must be between 1m and 24h")
        if self.refresh_interval <= 0:
            problems.append("refresh_interval: must be positive")
        if not 1 <= self.baseline_days <= 60:
            problems.append("baseline_days: must be between 1 and 60")
        if self.settle <= 0:
            problems.append("settle: must be positive")
        if self.max_pending_traces < 1:
            problems.append("max_pending_traces: must be at least 1")
        return problems
