"""Run planning: which agent, user, session, start time and failure kind each run gets."""

from __future__ import annotations

import random
from dataclasses import dataclass

from agentwatch.demo_scenarios.catalog import AGENTS, USERS_BY_TENANT, Agent, FailureKind, Task

WINDOW_NS = 2 * 3600 * 1_000_000_000
# The last run starts this long before the end of the window, so even a 30 s timeout ends in it.
END_MARGIN_NS = 90 * 1_000_000_000


@dataclass(frozen=True)
class RunPlan:
    index: int
    agent: Agent
    user: str
    session_id: str
    start_ns: int
    failure: FailureKind | None
    task: Task
    seed: int  # seeds the run's own Random, so one run's details never shift another's


@dataclass
class _Session:
    session_id: str
    runs_left: int


def plan_runs(runs: int, seed: int, end_ns: int) -> list[RunPlan]:
    """Decide every run (agent, user, session, failure, start time) from ``seed`` alone."""
    rng = random.Random(seed)
    offsets = sorted(rng.randrange(WINDOW_NS - END_MARGIN_NS) for _ in range(runs))
    sessions: dict[tuple[str, str], _Session] = {}
    plans: list[RunPlan] = []
    for index, offset in enumerate(offsets):
        agent = rng.choices(AGENTS, weights=[a.share for a in AGENTS])[0]
        user = agent.owner if rng.random() < agent.owner_share else rng.choice(_others(agent))
        session_id = _session_for(rng, sessions, agent, user)
        failures = agent.failures
        if user == agent.owner and agent.owner_failures is not None:
            failures = agent.owner_failures
        plans.append(
            RunPlan(
                index=index,
                agent=agent,
                user=user,
                session_id=session_id,
                start_ns=end_ns - WINDOW_NS + offset,
                failure=_pick_failure(rng, failures),
                task=rng.choice(agent.tasks),
                seed=rng.getrandbits(32),
            )
        )
    return plans


def _others(agent: Agent) -> list[str]:
    return [u for u in USERS_BY_TENANT[agent.tenant] if u != agent.owner]


def _session_for(
    rng: random.Random, sessions: dict[tuple[str, str], _Session], agent: Agent, user: str
) -> str:
    """Reuse a user's open conversation with an agent for a few runs, then start a new one."""
    key = (agent.name, user)
    session = sessions.get(key)
    if session is None or session.runs_left == 0:
        session = _Session(f"sess_{rng.getrandbits(48):012x}", rng.randint(1, 4))
        sessions[key] = session
    session.runs_left -= 1
    return session.session_id


def _pick_failure(rng: random.Random, table: tuple[tuple[FailureKind, float], ...]) -> FailureKind | None:
    draw = rng.random()
    for kind, probability in table:
        if draw < probability:
            return kind
        draw -= probability
    return None
