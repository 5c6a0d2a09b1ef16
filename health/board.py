"""The in-memory rolling aggregate behind the health API: per tenant and agent, minute buckets of
runs (outcomes, failure types, a latency histogram) and of each tool's and model's calls, and
the failures in a row of runs, tools and models.

Fed the digests of what the converter workers stored (``health.digest``): a trace counts as a
run once its root span has arrived (or ``settle`` after its first spans, when none comes), and
is then built by the one read model (``storage.runs.runs_sql``) from every partial that came:
outcome, agent, failure type and latency are those of the ``runs`` view. Its tool and model
calls count under the run's agent. Spans of a trace that arrive after its run was counted add
their calls, never a second run. Eval traffic (synthetic runs) is left out.

Runs and calls are bucketed by the minute they ended; a window is counted in whole minutes, the
current one included. Memory is bounded: buckets older than ``max_window`` go, at most
``max_pending_traces`` traces wait for their root span, and the counted traces remembered for
late spans are capped.

``offer`` never blocks the drain: a digest that finds the queue full is dropped and counted
(``dropped_digests``); health is advice, the stored spans are the truth.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core import supervision
from health.config import HealthConfig
from health.digest import from_ipc
from health.latency import BUCKETS, counts_of, percentile
from storage.runs import AGENT_SQL, DEGRADED, FAILURE, FAILURE_TYPE_SQL, runs_sql

log = logging.getLogger("health.board")

RATE_LIMIT = "rate_limit"
"""The failure type of a rate-limited call (``processors.classify``)."""
REMEMBERED_TRACES = 200_000
"""Counted traces remembered, for spans that arrive after their run was counted."""
QUEUE_DIGESTS = 256


@dataclass
class _Minute:
    runs: int = 0
    failures: int = 0
    degraded: int = 0
    latency: np.ndarray = field(default_factory=lambda: np.zeros(BUCKETS, np.int64))
    failure_types: Counter[str] = field(default_factory=Counter)


@dataclass
class _Step:
    """One tool or model of one agent."""

    minutes: dict[int, list[int]] = field(default_factory=dict)
    """minute → [calls, errors, rate-limited]"""
    streak: int = 0
    """Failed calls in a row, as of the last call."""
    limited_streak: int = 0
    """Rate-limited calls in a row, as of the last call."""
    last_at: float = 0.0
    last_failure_type: str | None = None
    last_failure_at: float | None = None


@dataclass
class _Agent:
    name: str | None = None
    minutes: dict[int, _Minute] = field(default_factory=dict)
    streak: int = 0
    """Failed runs in a row, as of the last run."""
    last_run_at: float = 0.0
    tools: dict[str, _Step] = field(default_factory=dict)
    models: dict[str, _Step] = field(default_factory=dict)


@dataclass(frozen=True)
class StepFacts:
    name: str
    calls: int
    errors: int
    error_rate: float | None
    rate_limited: int
    consecutive_failures: int
    """Failed calls in a row up to the last call (0 when the last call is outside the window)."""
    consecutive_rate_limits: int
    last_failure_type: str | None
    last_failure_at: datetime | None


@dataclass(frozen=True)
class AgentFacts:
    """An agent's runs and calls in a window, as the board counted them."""

    tenant: str
    agent: str
    name: str | None
    window_seconds: float
    runs: int
    failures: int
    degraded: int
    failure_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    consecutive_failures: int
    failure_types: dict[str, int]
    tools: tuple[StepFacts, ...]
    models: tuple[StepFacts, ...]


_RUNS = f"""
SELECT tenant, trace_id, {AGENT_SQL} AS agent, agent_name, outcome, failure_type, duration_ms,
       epoch(start_time) + coalesce(duration_ms, 0) / 1000.0 AS ended, coalesce(synthetic, false) AS synthetic
FROM ({runs_sql("SELECT * EXCLUDE (key, arrived, has_root, steps) FROM _build")})
"""

_RUN_MINUTES = f"""
SELECT tenant, agent, any_value(agent_name) AS name, floor(ended / 60)::BIGINT AS minute,
       count(*) AS runs, count(*) FILTER (WHERE outcome = '{FAILURE}') AS failures,
       count(*) FILTER (WHERE outcome = '{DEGRADED}') AS degraded,
       list(coalesce(duration_ms, 0)) AS durations,
       list({FAILURE_TYPE_SQL}) FILTER (WHERE outcome = '{FAILURE}') AS types
FROM _runs WHERE NOT synthetic GROUP BY ALL
"""

# Failures in a row at the end of this digest's runs (or calls), and whether all of them failed
# (then the streak goes on from the one before).
_RUN_STREAKS = f"""
SELECT tenant, agent, count(*) FILTER (WHERE failed AND (last_ok IS NULL OR ended > last_ok)) AS trailing,
       bool_and(failed) AS all_failed, max(ended) AS last_at
FROM (SELECT *, outcome = '{FAILURE}' AS failed,
             max(ended) FILTER (WHERE outcome <> '{FAILURE}') OVER (PARTITION BY tenant, agent) AS last_ok
      FROM _runs WHERE NOT synthetic)
GROUP BY ALL
"""

_STEPS = """
SELECT tenant, agent, s.tool AS tool, s.name AS name, epoch(s.at) AS ended, s.failed AS failed,
       s.failure_type AS failure_type, coalesce(s.failure_type = 'rate_limit', false) AS limited
FROM (SELECT tenant, agent, unnest(steps) AS s FROM _stepped)
"""

_STEP_MINUTES = """
SELECT tenant, agent, tool, name, floor(ended / 60)::BIGINT AS minute, count(*) AS calls,
       count(*) FILTER (WHERE failed) AS errors, count(*) FILTER (WHERE limited) AS limited
FROM _steps GROUP BY ALL
"""

_STEP_STREAKS = """
SELECT tenant, agent, tool, name,
       count(*) FILTER (WHERE failed AND (last_ok IS NULL OR ended > last_ok)) AS trailing,
       bool_and(failed) AS all_failed,
       count(*) FILTER (WHERE limited AND (last_free IS NULL OR ended > last_free)) AS limited_trailing,
       bool_and(limited) AS all_limited,
       max(ended) AS last_at, max(ended) FILTER (WHERE failed) AS last_failure_at,
       arg_max(failure_type, ended) FILTER (WHERE failed) AS last_failure_type
FROM (SELECT *,
             max(ended) FILTER (WHERE NOT failed) OVER w AS last_ok,
             max(ended) FILTER (WHERE NOT limited) OVER w AS last_free
      FROM _steps WINDOW w AS (PARTITION BY tenant, agent, tool, name))
GROUP BY ALL
"""


class HealthBoard:
    """See the module. ``absorb`` is the synchronous core (tests call it); ``offer`` queues a
    digest for the board's own thread (``start``)."""

    def __init__(self, config: HealthConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._con = duckdb.connect(":memory:", config={"threads": 1})
        self._lock = threading.Lock()
        self._agents: dict[tuple[str, str], _Agent] = {}
        self._names: dict[tuple[str, str], str] = {}
        """(tenant, agent name) → the agent's label (its id), to find an agent by its name."""
        self._pending: pa.Table | None = None
        self._first_seen: dict[str, float] = {}
        """Pending trace key → when its first spans arrived (insertion order: oldest first)."""
        self._counted: OrderedDict[str, str | None] = OrderedDict()
        """Counted trace key → its run's agent (None: not a production run)."""
        self._queue: queue.Queue[bytes | None] = queue.Queue(QUEUE_DIGESTS)
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0
        self.version = 0
        """Goes up with every absorbed digest: answers computed at an older version are stale."""
        self.dropped_digests = 0
        self.runs_counted = 0

    # -- feeding ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = supervision.start_thread("agentwatch-health", self._run)

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(5.0)
            self._thread = None

    def offer(self, digest: bytes) -> None:
        """Queue a digest (``health.digest.HealthTap.take_digest``) without ever blocking."""
        try:
            self._queue.put_nowait(digest)
        except queue.Full:
            self.dropped_digests += 1

    def _run(self) -> None:
        while (digest := self._queue.get()) is not None:
            try:
                self.absorb(from_ipc(digest))
            except (duckdb.Error, pa.ArrowException, ValueError) as exc:
                log.error("health: a digest could not be counted (%s); the spans are stored", exc)
                self.dropped_digests += 1

    def absorb(self, digest: pa.Table, now: float | None = None) -> None:
        """Count the runs and calls of ``digest`` (see the module)."""
        now = self._clock() if now is None else now
        keys = pc.binary_join_element_wise(digest["tenant"], digest["trace_id"], "\x00")
        digest = digest.append_column("key", keys).append_column(
            "arrived", pa.array(np.full(digest.num_rows, now), pa.float64())
        )
        key_list: list[str] = keys.to_pylist()
        late_mask = [k in self._counted for k in key_list]
        late = digest.filter(pa.array(late_mask)) if any(late_mask) else None
        fresh = digest.filter(pc.invert(pa.array(late_mask))) if late is not None else digest
        for key in fresh["key"].to_pylist():
            self._first_seen.setdefault(key, now)
        rooted = set(pc.filter(fresh["key"], fresh["has_root"]).to_pylist())
        due = self._due(now, rooted)
        waiting = fresh if self._pending is None else pa.concat_tables([self._pending, fresh])
        ready = pc.is_in(waiting["key"], pa.array(sorted(due), pa.string()))
        build = waiting.filter(ready)
        self._pending = waiting.filter(pc.invert(ready))
        for key in due:
            self._first_seen.pop(key, None)
        self._count(build, late, now)

    def _due(self, now: float, rooted: set[str]) -> set[str]:
        """Traces to count now: those whose root came, those waiting past ``settle``, and the
        oldest past ``max_pending_traces``."""
        due = set(rooted)
        excess = len(self._first_seen) - len(rooted) - self.config.max_pending_traces
        for key, first in self._first_seen.items():  # oldest first
            if first > now - self.config.settle and excess <= 0:
                break
            if key not in due:
                due.add(key)
                excess -= 1
        return due

    def _count(self, build: pa.Table, late: pa.Table | None, now: float) -> None:
        con = self._con
        con.register("_build", build)
        try:
            runs = con.sql(_RUNS).to_arrow_table()
            con.register("_runs", runs)
            minutes = con.sql(_RUN_MINUTES).fetchall()
            streaks = con.sql(_RUN_STREAKS).fetchall()
            con.register(
                "_stepped",
                con.sql(
                    "SELECT b.tenant, r.agent, b.steps FROM _build b JOIN _runs r USING (tenant, trace_id)"
                    " WHERE NOT r.synthetic AND len(b.steps) > 0"
                ).to_arrow_table(),
            )
            stepped = [con.sql("SELECT * FROM _stepped").to_arrow_table()]
            if late is not None:
                stepped.append(self._late_steps(late))
            con.register("_stepped", pa.concat_tables(stepped, promote_options="permissive"))
            con.register("_steps", con.sql(_STEPS).to_arrow_table())
            step_minutes = con.sql(_STEP_MINUTES).fetchall()
            step_streaks = con.sql(_STEP_STREAKS).fetchall()
            for key, agent, synthetic in zip(
                pc.binary_join_element_wise(runs["tenant"], runs["trace_id"], "\x00").to_pylist(),
                runs["agent"].to_pylist(),
                runs["synthetic"].to_pylist(),
                strict=True,
            ):
                self._remember(key, None if synthetic else agent)
            for key in build["key"].to_pylist():
                if key not in self._counted:  # protocol traffic only: no run
                    self._remember(key, None)
        finally:
            for name in ("_build", "_runs", "_stepped", "_steps"):
                con.unregister(name)
        with self._lock:
            self._fold_runs(minutes, streaks)
            self._fold_steps(step_minutes, step_streaks)
            if now - self._last_prune >= 60:
                self._prune(now)
            self.runs_counted += sum(int(m[4]) for m in minutes)
            self.version += 1

    def _late_steps(self, late: pa.Table) -> pa.Table:
        agents = [self._counted.get(k) for k in late["key"].to_pylist()]
        table = pa.table(
            {"tenant": late["tenant"], "agent": pa.array(agents, pa.string()), "steps": late["steps"]}
        )
        return table.filter(pc.is_valid(table["agent"]))

    def _remember(self, key: str, agent: str | None) -> None:
        self._counted[key] = agent
        self._counted.move_to_end(key)
        if len(self._counted) > REMEMBERED_TRACES:
            self._counted.popitem(last=False)

    def _fold_runs(self, minutes: list[tuple], streaks: list[tuple]) -> None:  # type: ignore[type-arg]
        for tenant, agent, name, minute, runs, failures, degraded, durations, types in minutes:
            stats = self._agents.setdefault((tenant, agent), _Agent())
            if name and name != agent:
                stats.name = name
                self._names[(tenant, name)] = agent
            bucket = stats.minutes.setdefault(int(minute), _Minute())
            bucket.runs += runs
            bucket.failures += failures
            bucket.degraded += degraded
            bucket.latency += counts_of(np.asarray(durations, np.float64))
            bucket.failure_types.update(types or [])
        for tenant, agent, trailing, all_failed, last_at in streaks:
            stats = self._agents[(tenant, agent)]
            if last_at >= stats.last_run_at:
                stats.streak = stats.streak + trailing if all_failed else trailing
                stats.last_run_at = last_at

    def _fold_steps(self, minutes: list[tuple], streaks: list[tuple]) -> None:  # type: ignore[type-arg]
        for tenant, agent, tool, name, minute, calls, errors, limited in minutes:
            step = self._step(tenant, agent, tool, name)
            counts = step.minutes.setdefault(int(minute), [0, 0, 0])
            counts[0] += calls
            counts[1] += errors
            counts[2] += limited
        for (
            tenant,
            agent,
            tool,
            name,
            trailing,
            all_failed,
            limited,
            all_limited,
            last_at,
            failed_at,
            kind,
        ) in streaks:
            step = self._step(tenant, agent, tool, name)
            if last_at < step.last_at:
                continue  # calls older than those already counted: counts only
            step.streak = step.streak + trailing if all_failed else trailing
            step.limited_streak = step.limited_streak + limited if all_limited else limited
            step.last_at = last_at
            if failed_at is not None:
                step.last_failure_at, step.last_failure_type = failed_at, kind

    def _step(self, tenant: str, agent: str, tool: bool, name: str) -> _Step:
        stats = self._agents.setdefault((tenant, agent), _Agent())
        return (stats.tools if tool else stats.models).setdefault(name, _Step())

    def _prune(self, now: float) -> None:
        oldest = _minute(now - self.config.max_window) - 1
        for key, stats in list(self._agents.items()):
            stats.minutes = {m: b for m, b in stats.minutes.items() if m >= oldest}
            for steps in (stats.tools, stats.models):
                for name, step in list(steps.items()):
                    step.minutes = {m: c for m, c in step.minutes.items() if m >= oldest}
                    if not step.minutes:
                        del steps[name]
            if not stats.minutes and not stats.tools and not stats.models:
                del self._agents[key]
                if stats.name is not None and self._names.get((key[0], stats.name)) == key[1]:
                    del self._names[(key[0], stats.name)]
        self._last_prune = now

    # -- reading ---------------------------------------------------------------------------------

    def label(self, tenant: str, agent: str) -> str:
        """The label (id) of the agent ``agent`` names, by its id or its name."""
        with self._lock:
            if (tenant, agent) in self._agents:
                return agent
            return self._names.get((tenant, agent), agent)

    def facts(self, tenant: str, agent: str, window_seconds: float, now: float | None = None) -> AgentFacts:
        """The agent's runs and calls in the last ``window_seconds`` (whole minutes, the
        current one included); ``agent`` by its id or its name."""
        now = self._clock() if now is None else now
        label = self.label(tenant, agent)
        first = _minute(now) - max(1, math.ceil(window_seconds / 60)) + 1
        since = first * 60.0
        with self._lock:
            stats = self._agents.get((tenant, label)) or _Agent()
            buckets = [b for m, b in stats.minutes.items() if m >= first]
            latency = sum((b.latency for b in buckets), np.zeros(BUCKETS, np.int64))
            types: Counter[str] = Counter()
            for b in buckets:
                types.update(b.failure_types)
            runs = sum(b.runs for b in buckets)
            failures = sum(b.failures for b in buckets)
            tools = tuple(_step_facts(n, s, first, since) for n, s in sorted(stats.tools.items()))
            models = tuple(_step_facts(n, s, first, since) for n, s in sorted(stats.models.items()))
            streak = stats.streak if stats.last_run_at >= since else 0
            name = stats.name
        return AgentFacts(
            tenant, label, name, window_seconds, runs, failures, sum(b.degraded for b in buckets),
            failures / runs if runs else None, percentile(latency, 0.5), percentile(latency, 0.95), streak,
            dict(types.most_common()), tuple(t for t in tools if t.calls),
            tuple(m for m in models if m.calls),
        )  # fmt: skip


def _minute(epoch: float) -> int:
    return int(epoch // 60)


def _step_facts(name: str, step: _Step, first: int, since: float) -> StepFacts:
    calls = errors = limited = 0
    for minute, (c, e, r) in step.minutes.items():
        if minute >= first:
            calls, errors, limited = calls + c, errors + e, limited + r
    recent = step.last_at >= since
    failed_at = step.last_failure_at
    return StepFacts(
        name, calls, errors, errors / calls if calls else None, limited,
        step.streak if recent else 0, step.limited_streak if recent else 0,
        step.last_failure_type if failed_at is not None and failed_at >= since else None,
        datetime.fromtimestamp(failed_at, UTC) if failed_at is not None and failed_at >= since else None,
    )  # fmt: skip
