"""The ``agents:`` section: the agents agentwatch watches, who owns them, their thresholds.

agents:
  - id: expense-bot                # matches the span's agent_id (else agent_name)
    name: Expense bot              # optional: shown beside the id (else the spans' agent_name)
    owner: alice@acme.com          # wins over the owner the spans report (agent_owner)
    tenant: acme                   # optional: only this tenant's agent of that id
    thresholds:                    # read by alerting; all optional
      failure_rate: 0.2
      p99_latency_ms: 30000
      min_runs: 5
    advice:                        # the health API's advice rules; all optional (``Advice``)
      fallback_model: gpt-4o-mini
      avoid_tool_after_failures: 2
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from core.configmodel import STRICT, build_config


@dataclass(frozen=True)
class Thresholds:
    __pydantic_config__ = STRICT
    failure_rate: float | None = None
    """Share of runs that failed (0-1) above which the agent is unhealthy."""
    p99_latency_ms: float | None = None
    min_runs: int | None = None
    """Runs a window needs before a rate means anything."""
    negative_feedback_rate: float | None = None
    """Share of feedback that is negative (0-1) above which the agent is unhealthy."""
    requery_rate: float | None = None
    """Share of runs their user asked again (0-1) above which the agent is unhealthy."""

    def validate(self) -> list[str]:
        problems = []
        if self.failure_rate is not None and not 0 <= self.failure_rate <= 1:
            problems.append("failure_rate: must be between 0 and 1 (a share of runs)")
        if self.negative_feedback_rate is not None and not 0 <= self.negative_feedback_rate <= 1:
            problems.append("negative_feedback_rate: must be between 0 and 1 (a share of feedback)")
        if self.requery_rate is not None and not 0 <= self.requery_rate <= 1:
            problems.append("requery_rate: must be between 0 and 1 (a share of runs)")
        if self.p99_latency_ms is not None and self.p99_latency_ms <= 0:
            problems.append("p99_latency_ms: must be positive")
        if self.min_runs is not None and self.min_runs < 1:
            problems.append("min_runs: must be at least 1")
        return problems


@dataclass(frozen=True)
class Advice:
    """The rules that turn an agent's health into advice (``GET /api/v1/agents/{agent}/health``).

    A field left out takes the next matching ``agents:`` entry's, else the default below."""

    __pydantic_config__ = STRICT
    avoid_tool_after_failures: int | None = None
    """``avoid_tools``: a tool whose last calls failed this many times in a row (default 3)."""
    avoid_tool_error_rate: float | None = None
    """``avoid_tools``: a tool whose calls in the window failed at this share or more (default 0.5),
    once it has ``min_tool_calls`` calls."""
    min_tool_calls: int | None = None
    """Calls of a tool in the window before its error rate counts (default 5)."""
    fallback_model: str | None = None
    """The model to switch to when one is rate-limited (named in the advice; none by default)."""
    rate_limited_calls: int | None = None
    """``fallback_model``: a model rate-limited this many times in the window, or this many times in
    a row (default 3)."""
    latency_factor: float | None = None
    """``skip_optional_steps``: run latency p95 over this many times the baseline's (default 2.0)."""
    min_runs: int | None = None
    """Runs in the window before the latency rule counts (default 5)."""
    groundedness_below: float | None = None
    """``add_disclaimer``: mean groundedness score (0-10) of the judged runs under this (default 5)."""
    hallucination_below: float | None = None
    """``add_disclaimer``: mean hallucination-risk score (10: low risk, 0: high) under this (default 5)."""
    human_review_below: float | None = None
    """``human_review``: mean hallucination-risk score under this (default 2.5)."""

    def validate(self) -> list[str]:
        problems = []
        for name in ("avoid_tool_after_failures", "min_tool_calls", "rate_limited_calls", "min_runs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"{name}: must be at least 1")
        if self.avoid_tool_error_rate is not None and not 0 < self.avoid_tool_error_rate <= 1:
            problems.append("avoid_tool_error_rate: must be more than 0 and at most 1 (a share of calls)")
        if self.latency_factor is not None and self.latency_factor <= 1:
            problems.append("latency_factor: must be more than 1 (a multiple of the baseline p95)")
        for name in ("groundedness_below", "hallucination_below", "human_review_below"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 10:
                problems.append(f"{name}: must be between 0 and 10 (judges score 0-10)")
        if self.fallback_model is not None and not self.fallback_model.strip():
            problems.append("fallback_model: must not be empty (leave it out when there is none)")
        return problems


ADVICE_DEFAULTS = Advice(
    avoid_tool_after_failures=3, avoid_tool_error_rate=0.5, min_tool_calls=5, fallback_model=None,
    rate_limited_calls=3, latency_factor=2.0, min_runs=5, groundedness_below=5.0, hallucination_below=5.0,
    human_review_below=2.5,
)  # fmt: skip
"""The advice rules of an agent no ``agents:`` entry sets them for."""


@dataclass(frozen=True)
class AgentConfig:
    __pydantic_config__ = STRICT
    id: str
    name: str | None = None
    """Shown beside the id in reports; wins over the name the spans report (``agent_name``)."""
    owner: str | None = None
    tenant: str | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    advice: Advice = field(default_factory=Advice)

    def validate(self) -> list[str]:
        problems = [] if self.id.strip() else ["id: must not be empty"]
        if self.name is not None and not self.name.strip():
            problems.append("name: must not be empty (leave it out when unknown)")
        if self.owner is not None and not self.owner.strip():
            problems.append("owner: must not be empty (leave it out when unknown)")
        problems.extend(f"thresholds.{p}" for p in self.thresholds.validate())
        problems.extend(f"advice.{p}" for p in self.advice.validate())
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


OWNER_FROM_SPANS_SQL = "mode(agent_owner)"
"""The owner the spans report for an agent: the most frequent ``agent_owner`` of its runs in
the window. Every reader (report, alert rules) aggregates it with this expression."""
NAME_FROM_SPANS_SQL = "mode(agent_name) FILTER (WHERE agent_name IS DISTINCT FROM agent)"
"""The name the spans report for an agent (rows of runs with ``agent``, its id, and
``agent_name``): the most frequent ``agent_name`` of its runs that is not the agent label itself
(an agent known only by its name has no other name to show)."""


def agent_label(agent: str, name: str | None) -> str:
    """How an agent reads: ``expense-bot (agt_7f3a9c21)`` when it has a name besides its id."""
    return f"{name} ({agent})" if name and name != agent else agent


@dataclass(frozen=True)
class AgentInfo:
    """What agentwatch knows of one agent of one tenant."""

    owner: str | None
    owner_source: str | None
    """``config`` (the ``agents:`` section), ``spans`` (``agent_owner``) or None (unknown)."""
    thresholds: Thresholds
    name: str | None = None
    """The ``agents:`` entry's name, else the name the spans report, else None."""


class AgentRegistry:
    """The one answer to "who owns this agent, what is it called, and what are its thresholds".

    An entry scoped to the agent's tenant beats a global one (no ``tenant:``), key by key: a
    tenant entry that sets thresholds but no owner takes the owner from the global entry, else
    from the spans. The configured owner and name always win over those the spans report.
    """

    def __init__(self, agents: tuple[AgentConfig, ...] = ()) -> None:
        self.agents = agents

    def _entries(self, tenant: str, agent: str, name: str | None = None) -> list[AgentConfig]:
        """Matching entries, most specific first: an entry's ``id`` names the agent by its id or
        by its name (``name``, when the caller knows it), its ``name`` by its name."""
        keys = {agent, name} - {None}
        matches = [
            a for a in self.agents
            if (a.id in keys or (a.name is not None and a.name in keys)) and a.tenant in (tenant, None)
        ]  # fmt: skip
        # By id before by name, then the tenant's own before the global ones.
        return sorted(matches, key=lambda a: (a.id != agent, a.tenant is None))

    def lookup(
        self, tenant: str, agent: str, owner_from_spans: str | None = None, name_from_spans: str | None = None
    ) -> AgentInfo:
        entries = self._entries(tenant, agent, name_from_spans)
        name = next((e.name for e in entries if e.name), None) or name_from_spans or None
        configured = next((e.owner for e in entries if e.owner), None)
        if configured is not None:
            owner, source = configured, "config"
        elif owner_from_spans:
            owner, source = owner_from_spans, "spans"
        else:
            owner, source = None, None
        values = {
            f.name: next((v for e in entries if (v := getattr(e.thresholds, f.name)) is not None), None)
            for f in fields(Thresholds)
        }
        return AgentInfo(owner, source, Thresholds(**values), name)

    def advice(self, tenant: str, agent: str, name: str | None = None) -> Advice:
        """The agent's advice rules: key by key, the most specific entry setting it, else
        ``ADVICE_DEFAULTS``."""
        entries = self._entries(tenant, agent, name)
        values = {
            f.name: next(
                (v for e in entries if (v := getattr(e.advice, f.name)) is not None),
                getattr(ADVICE_DEFAULTS, f.name),
            )
            for f in fields(Advice)
        }
        return Advice(**values)

    def threshold(self, tenant: str, agent: str, name: str, default: float) -> float:
        """The agent's own ``thresholds.<name>``, else ``default`` (the rule's)."""
        value = getattr(self.lookup(tenant, agent).thresholds, name)
        return float(value) if value is not None else float(default)
