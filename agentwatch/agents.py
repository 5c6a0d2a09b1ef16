"""The ``agents:`` section: the agents agentwatch watches, who owns them, their thresholds.

agents:
  - id: expense-bot                # matches the span's agent_id (else agent_name)
    owner: alice@acme.com          # wins over the owner the spans report (agent_owner)
    tenant: acme                   # optional: only this tenant's agent of that id
    thresholds:                    # read by alerting; all optional
      failure_rate: 0.2
      p99_latency_ms: 30000
      min_runs: 5
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentwatch.configmodel import STRICT, build_config


@dataclass(frozen=True)
class Thresholds:
    __pydantic_config__ = STRICT
    failure_rate: float | None = None
    """Share of runs that failed (0-1) above which the agent is unhealthy."""
    p99_latency_ms: float | None = None
    min_runs: int | None = None
    """Runs a window needs before a rate means anything."""

    def validate(self) -> list[str]:
        problems = []
        if self.failure_rate is not None and not 0 <= self.failure_rate <= 1:
            problems.append("failure_rate: must be between 0 and 1 (a share of runs)")
        if self.p99_latency_ms is not None and self.p99_latency_ms <= 0:
            problems.append("p99_latency_ms: must be positive")
        if self.min_runs is not None and self.min_runs < 1:
            problems.append("min_runs: must be at least 1")
        return problems


@dataclass(frozen=True)
class AgentConfig:
    __pydantic_config__ = STRICT
    id: str
    owner: str | None = None
    tenant: str | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)

    def validate(self) -> list[str]:
        problems = [] if self.id.strip() else ["id: must not be empty"]
        if self.owner is not None and not self.owner.strip():
            problems.append("owner: must not be empty (leave it out when unknown)")
        problems.extend(f"thresholds.{p}" for p in self.thresholds.validate())
        return problems


def build_agents(data: Any) -> tuple[tuple[AgentConfig, ...], list[str]]:
    """The ``agents:`` list and its problems (``index.key: message``)."""
    if data is None:
        return (), []
    if not isinstance(data, list):
        return (), ["(section): must be a list of agents (- id: ...)"]
    agents: list[AgentConfig] = []
    problems: list[str] = []
    seen: dict[tuple[str | None, str], int] = {}
    for i, item in enumerate(data):
        agent, found = build_config(AgentConfig, item)
        problems.extend(f"{i}.{p}" for p in found)
        if agent is None:
            continue
        key = (agent.tenant, agent.id)
        if key in seen:
            problems.append(f"{i}.id: {agent.id!r} is already defined at agents.{seen[key]}")
        seen[key] = i
        agents.append(agent)
    return tuple(agents), problems


def owners(agents: tuple[AgentConfig, ...]) -> dict[tuple[str | None, str], str]:
    """(tenant or None, agent id) → configured owner."""
    return {(a.tenant, a.id): a.owner for a in agents if a.owner}
