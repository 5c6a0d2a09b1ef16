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
``max_pending_traces`` traces wait for their root span, the counted traces remembered for late
spans are capped, and so are the agents of a tenant and in all, and the tools and models of an
agent and in all, counted apart (``MAX_TENANT_AGENTS``, ``MAX_AGENTS``, ``MAX_STEPS``,
``MAX_ALL_STEPS``: the rest are counted together as ``(other)``). Latency histograms keep only
the buckets that have runs.

``offer`` never blocks the drain: a digest that finds ``QUEUE_BYTES`` waiting is dropped and
counted (``dropped_digests``); health is advice, the stored spans are the truth.
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
from health.digest import STEP_TYPE, Digest, run_rows_sql, trace_keys, unpack
from health.latency import BUCKETS, bucket_sql, percentile
from storage.runs import DEGRADED, FAILURE, FAILURE_TYPE_SQL

log = logging.getLogger("health.board")

RATE_LIMIT = "rate_limit"
"""The failure type of a rate-limited call (``processors.classify``)."""
MAX_TENANT_AGENTS = 2_000
"""Agents of one tenant counted apart; past it, its new ones are counted together as ``OVERFLOW``
(span data names agents: a client inventing names cannot grow the board without bound, nor
crowd out another tenant's agents)."""
MAX_AGENTS = 10_000
"""Agents counted apart in all (tenants without ingest tokens are named by span data too)."""
MAX_STEPS = 64
"""Tools, and models, counted apart per agent; past it, new ones together as ``OVERFLOW``."""
MAX_ALL_STEPS = 20_000
"""Tools and models counted apart in all."""
OVERFLOW = "(other)"
NO_TENANT = "\x00"
"""The tenant of what is past ``MAX_AGENTS``: no token and no span names it."""
REMEMBERED_TRACES = 50_000
"""Counted traces remembered, for spans that arrive after their run was counted (the latest)."""
QUEUE_BYTES = 64 << 20
"""Digests waiting to be counted, at most (bytes): past it a digest is dropped and counted."""
_NO_LATE = pa.table(
    {"tenant": pa.array([], pa.string()), "agent": pa.array([], pa.string()),
     "steps": pa.array([], pa.list_(STEP_TYPE))}
)  # fmt: skip


@dataclass
class _Minute:
    runs: int = 0
    failures: int = 0
    degraded: int = 0
    latency: Counter[int] = field(default_factory=Counter)
    """Runs per latency bucket (``health.latency``): only the buckets that have runs."""
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


_RUN_MINUTES = f"""
SELECT tenant, agent, any_value(agent_name) AS name, floor(least(ended, $now) / 60)::BIGINT AS minute,
       count(*) AS runs, count(*) FILTER (WHERE outcome = '{FAILURE}') AS failures,
       count(*) FILTER (WHERE outcome = '{DEGRADED}') AS degraded,
       histogram({bucket_sql("duration_ms")}) AS latency,
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
      FROM _runs WHERE NOT synthetic AND ended <= $now + 60)
GROUP BY ALL
"""

_STEPS = f"""
SELECT tenant, agent, s.tool AS tool, s.name AS name, epoch(s.at) AS ended, s.failed AS failed,
       s.failure_type AS failure_type, coalesce(s.failure_type = '{RATE_LIMIT}', false) AS limited
FROM (
    SELECT r.tenant, r.agent, unnest(t.steps) AS s
    FROM _stepped t JOIN _runs r USING (tenant, trace_id)
    WHERE NOT r.synthetic AND len(t.steps) > 0
    UNION ALL
    SELECT tenant, agent, unnest(steps) AS s FROM _late
)
"""

_STEP_MINUTES = """
SELECT tenant, agent, tool, name, floor(least(ended, $now) / 60)::BIGINT AS minute, count(*) AS calls,
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
      FROM _steps WHERE ended <= $now + 60 WINDOW w AS (PARTITION BY tenant, agent, tool, name))
GROUP BY ALL
"""


class HealthBoard:
    """See the module. ``absorb`` is the synchronous core (tests call it); ``offer`` queues a
    digest for the board's own thread (``start``)."""

    def __init__(self, config: HealthConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._con = duckdb.connect(":memory:", config={"threads": 1, "memory_limit": "64MB"})
        self._lock = threading.Lock()
        self._agents: dict[tuple[str, str], _Agent] = {}
        self._names: dict[tuple[str, str], str] = {}
        self._tenant_agents: Counter[str] = Counter()
        self._all_steps = 0
        """(tenant, agent name) → the agent's label (its id), to find an agent by its name."""
        self._pending_parts: pa.Table | None = None
        self._pending_traces: pa.Table | None = None
        """Partials and steps of traces waiting for their root span (keyed)."""
        self._first_seen: dict[str, float] = {}
        """Pending trace key → when its first spans arrived (insertion order: oldest first)."""
        self._counted: OrderedDict[str, str | None] = OrderedDict()
        """Counted trace key → its run's agent (None: not a production run)."""
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._queued_bytes = 0
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0
        self.version = 0
        """Goes up with every absorbed digest: answers computed at an older version are stale."""
        self.dropped_digests = 0
        self.runs_counted = 0

    def now(self) -> float:
        """The board's clock (epoch seconds)."""
        return self._clock()

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    @property
    def pending_traces(self) -> int:
        return len(self._first_seen)

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
        with self._lock:
            if self._queued_bytes + len(digest) > QUEUE_BYTES:
                self.dropped_digests += 1
                return
            self._queued_bytes += len(digest)
        self._queue.put_nowait(digest)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            # Every digest waiting is counted in one pass: its queries' fixed cost is paid once.
            taken = [self._queue.get()]
            while not self._queue.empty():
                taken.append(self._queue.get_nowait())
            stopping = None in taken
            messages = [d for d in taken if d is not None]
            if not messages:
                continue
            with self._lock:
                self._queued_bytes -= sum(len(d) for d in messages)
            try:
                digests = [unpack(d) for d in messages]
                self.absorb(Digest(*(_concat_all(tables) for tables in zip(*digests, strict=True))))
            except (duckdb.Error, pa.ArrowException, ValueError) as exc:
                log.error("health: digests could not be counted (%s); the spans are stored", exc)
                with self._lock:
                    self.dropped_digests += len(messages)

    def absorb(self, digest: Digest, now: float | None = None) -> None:
        """Count the runs and calls of ``digest`` (see the module). A digest may hold several
        batches: a trace may have several rows in it, rooted or not."""
        now = self._clock() if now is None else now
        traces, runs, parts = digest
        keys = trace_keys(traces)
        key_list = keys.to_pylist()
        # Spans of a trace already counted add their calls (to its run's agent), never a run.
        late_mask = pa.array([k in self._counted for k in key_list], pa.bool_())
        late = _keyed(traces.filter(late_mask), now)
        fresh = _keyed(traces.filter(pc.invert(late_mask)), now)
        runs = runs.filter(pc.invert(pc.is_in(trace_keys(runs), late["key"])))
        parts = _keyed(parts, now)
        rooted_keys = pc.unique(pc.filter(fresh["key"], fresh["has_root"]))
        is_rooted = pc.is_in(fresh["key"], rooted_keys)
        rooted, unrooted = fresh.filter(is_rooted), fresh.filter(pc.invert(is_rooted))
        # A rooted trace whose other spans came in an earlier pass, or in another batch of this
        # one: its run is rebuilt from every partial (the worker saw only its own batch's).
        rebuild: set[str] = set()
        if rooted.num_rows:
            counts = pc.value_counts(rooted["key"])
            several = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
            rebuild = set(several.to_pylist())
            if self._pending_traces is not None and self._pending_traces.num_rows:
                pending = pc.is_in(rooted_keys, self._pending_traces["key"])
                rebuild |= set(pc.filter(rooted_keys, pending).to_pylist())
        for key in unrooted["key"].to_pylist():
            self._first_seen.setdefault(key, now)
        due = self._due(now, rebuild)
        waiting_parts = _concat(self._pending_parts, parts.filter(pc.is_in(parts["key"], unrooted["key"])))
        waiting_traces = _concat(self._pending_traces, unrooted)
        counted_runs = runs
        stepped = [rooted]
        if due:
            wanted = pa.array(sorted(due), pa.string())
            again = pa.array(sorted(rebuild), pa.string())
            built_parts = _concat(
                waiting_parts.filter(pc.is_in(waiting_parts["key"], wanted)),
                parts.filter(pc.is_in(parts["key"], again)),
            )
            stepped.append(waiting_traces.filter(pc.is_in(waiting_traces["key"], wanted)))
            waiting_parts = waiting_parts.filter(pc.invert(pc.is_in(waiting_parts["key"], wanted)))
            waiting_traces = waiting_traces.filter(pc.invert(pc.is_in(waiting_traces["key"], wanted)))
            direct = runs.filter(pc.invert(pc.is_in(trace_keys(runs), wanted)))
            counted_runs = pa.concat_tables([direct, self._build(built_parts).cast(runs.schema)])
            for key in due:
                self._first_seen.pop(key, None)
        self._pending_parts, self._pending_traces = waiting_parts, waiting_traces
        self._count(_one_per_trace(counted_runs), pa.concat_tables(stepped), late, now)

    def _build(self, parts: pa.Table) -> pa.Table:
        """The runs of ``parts`` (partials of whole traces, keyed), as the read model builds them."""
        self._con.register("_parts", parts.drop_columns(["key", "arrived"]))
        try:
            table: pa.Table = self._con.sql(run_rows_sql("SELECT * FROM _parts")).to_arrow_table()
            return table
        finally:
            self._con.unregister("_parts")

    def _due(self, now: float, rebuild: set[str]) -> set[str]:
        """Traces to count from their partials now: rooted ones with earlier partials, those
        waiting past ``settle``, and the oldest past ``max_pending_traces``."""
        due = set(rebuild)
        excess = len(self._first_seen) - len(rebuild) - self.config.max_pending_traces
        for key, first in self._first_seen.items():  # oldest first
            if first > now - self.config.settle and excess <= 0:
                break
            if key not in due:
                due.add(key)
                excess -= 1
        return due

    def _count(self, runs: pa.Table, stepped: pa.Table, late: pa.Table, now: float) -> None:
        """Count ``runs`` and the steps of their traces ``stepped``, and the steps of ``late``
        (traces already counted)."""
        con = self._con
        counted = runs.filter(pc.is_valid(runs["agent"]))  # a trace of protocol traffic is no run
        # A run or call that says it ended in the future is counted in the current minute and
        # left out of streaks: one clock far ahead must not hold streaks or buckets beyond others.
        con.register("_runs", counted)
        con.register("_stepped", stepped.select(["tenant", "trace_id", "steps"]))
        con.register("_late", self._late_steps(late))
        try:
            minutes = con.sql(_RUN_MINUTES, params={"now": now}).fetchall()
            streaks = con.sql(_RUN_STREAKS, params={"now": now}).fetchall()
            con.register("_steps", con.sql(_STEPS).to_arrow_table())
            step_minutes = con.sql(_STEP_MINUTES, params={"now": now}).fetchall()
            step_streaks = con.sql(_STEP_STREAKS, params={"now": now}).fetchall()
        finally:
            for name in ("_runs", "_stepped", "_late", "_steps"):
                con.unregister(name)
        agents = pc.if_else(runs["synthetic"], pa.scalar(None, pa.string()), runs["agent"])
        for key, agent in zip(trace_keys(runs).to_pylist(), agents.to_pylist(), strict=True):
            self._remember(key, agent)
        for key in stepped["key"].to_pylist():  # rooted traces that are no run
            if key not in self._counted:
                self._remember(key, None)
        with self._lock:
            self._fold_runs(minutes, streaks)
            self._fold_steps(step_minutes, step_streaks)
            if now - self._last_prune >= 60:
                self._prune(now)
            self.runs_counted += sum(int(m[4]) for m in minutes)
            self.version += 1

    def _late_steps(self, late: pa.Table) -> pa.Table:
        if not late.num_rows:
            return _NO_LATE
        agents = [self._counted.get(k) for k in late["key"].to_pylist()]
        table = pa.table(
            {"tenant": late["tenant"], "agent": pa.array(agents, pa.string()), "steps": late["steps"]}
        )
        return table.filter(pc.is_valid(table["agent"])).cast(_NO_LATE.schema)

    def _remember(self, key: str, agent: str | None) -> None:
        self._counted[key] = agent
        self._counted.move_to_end(key)
        if len(self._counted) > REMEMBERED_TRACES:
            self._counted.popitem(last=False)

    def _fold_runs(self, minutes: list[tuple], streaks: list[tuple]) -> None:  # type: ignore[type-arg]
        for tenant, agent, name, minute, runs, failures, degraded, latency, types in minutes:
            stats = self._agent(tenant, agent)
            if name and name != agent and name != stats.name and stats is self._agents.get((tenant, agent)):
                if stats.name is not None and self._names.get((tenant, stats.name)) == agent:
                    del self._names[(tenant, stats.name)]  # one name per agent: the latest
                stats.name = name
                self._names[(tenant, name)] = agent
            bucket = stats.minutes.setdefault(int(minute), _Minute())
            bucket.runs += runs
            bucket.failures += failures
            bucket.degraded += degraded
            bucket.latency.update(latency)
            bucket.failure_types.update(types or [])
        for tenant, agent, trailing, all_failed, last_at in streaks:
            stats = self._agent(tenant, agent)
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

    def _agent(self, tenant: str, agent: str) -> _Agent:
        """The agent's counts. Past ``MAX_TENANT_AGENTS`` of its tenant, a new agent's go to the
        tenant's ``OVERFLOW``; past ``MAX_AGENTS`` in all, to one bucket no tenant reads."""
        stats = self._agents.get((tenant, agent))
        if stats is not None:
            return stats
        if len(self._agents) >= MAX_AGENTS:
            tenant, agent = NO_TENANT, OVERFLOW
        elif self._tenant_agents[tenant] >= MAX_TENANT_AGENTS:
            agent = OVERFLOW
        if (tenant, agent) not in self._agents:
            self._tenant_agents[tenant] += 1
        return self._agents.setdefault((tenant, agent), _Agent())

    def _step(self, tenant: str, agent: str, tool: bool, name: str) -> _Step:
        """A tool's or model's counts; past ``MAX_STEPS`` of an agent, or ``MAX_ALL_STEPS`` in
        all, a new one's go to the agent's ``OVERFLOW``."""
        stats = self._agent(tenant, agent)
        steps = stats.tools if tool else stats.models
        step = steps.get(name)
        if step is None:
            if len(steps) >= MAX_STEPS or self._all_steps >= MAX_ALL_STEPS:
                name = OVERFLOW
            if name not in steps:
                self._all_steps += 1
            step = steps.setdefault(name, _Step())
        return step

    def _prune(self, now: float) -> None:
        oldest = _minute(now - self.config.max_window) - 1
        for key, stats in list(self._agents.items()):
            stats.minutes = {m: b for m, b in stats.minutes.items() if m >= oldest}
            for steps in (stats.tools, stats.models):
                for name, step in list(steps.items()):
                    step.minutes = {m: c for m, c in step.minutes.items() if m >= oldest}
                    if not step.minutes:
                        del steps[name]
                        self._all_steps -= 1
            if not stats.minutes and not stats.tools and not stats.models:
                del self._agents[key]
                self._tenant_agents[key[0]] -= 1
                if not self._tenant_agents[key[0]]:
                    del self._tenant_agents[key[0]]
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
        last = _minute(now)
        first = last - max(1, math.ceil(window_seconds / 60)) + 1
        since = first * 60.0
        with self._lock:
            stats = self._agents.get((tenant, label)) or _Agent()
            buckets = [b for m, b in stats.minutes.items() if first <= m <= last]
            latency = np.zeros(BUCKETS, np.int64)
            for b in buckets:
                for index, count in b.latency.items():
                    latency[index] += count
            types: Counter[str] = Counter()
            for b in buckets:
                types.update(b.failure_types)
            runs = sum(b.runs for b in buckets)
            failures = sum(b.failures for b in buckets)
            tools = tuple(_step_facts(n, s, first, last, since) for n, s in sorted(stats.tools.items()))
            models = tuple(_step_facts(n, s, first, last, since) for n, s in sorted(stats.models.items()))
            streak = stats.streak if stats.last_run_at >= since else 0
            name = stats.name
        return AgentFacts(
            tenant, label, name, window_seconds, runs, failures, sum(b.degraded for b in buckets),
            failures / runs if runs else None, percentile(latency, 0.5), percentile(latency, 0.95), streak,
            dict(types.most_common()), tuple(t for t in tools if t.calls),
            tuple(m for m in models if m.calls),
        )  # fmt: skip


def _keyed(table: pa.Table, now: float) -> pa.Table:
    """``table`` with each row's trace ``key`` and when it ``arrived``."""
    arrived = pa.array(np.full(table.num_rows, now), pa.float64())
    return table.append_column("key", trace_keys(table)).append_column("arrived", arrived)


def _one_per_trace(runs: pa.Table) -> pa.Table:
    """``runs`` with one row per trace (the worker built a run per batch that held its root)."""
    keys = trace_keys(runs)
    if len(pc.unique(keys)) == runs.num_rows:
        return runs
    rows = pa.table({"key": keys, "i": pa.array(range(runs.num_rows))})
    return runs.take(rows.group_by("key").aggregate([("i", "min")])["i_min"])


def _concat_all(tables: tuple[pa.Table, ...]) -> pa.Table:
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")


def _concat(first: pa.Table | None, second: pa.Table) -> pa.Table:
    return second if first is None else pa.concat_tables([first, second], promote_options="permissive")


def _minute(epoch: float) -> int:
    return int(epoch // 60)


def _step_facts(name: str, step: _Step, first: int, last: int, since: float) -> StepFacts:
    calls = errors = limited = 0
    for minute, (c, e, r) in step.minutes.items():
        if first <= minute <= last:
            calls, errors, limited = calls + c, errors + e, limited + r
    recent = step.last_at >= since
    failed_at = step.last_failure_at
    return StepFacts(
        name, calls, errors, errors / calls if calls else None, limited,
        step.streak if recent else 0, step.limited_streak if recent else 0,
        step.last_failure_type if failed_at is not None and failed_at >= since else None,
        datetime.fromtimestamp(failed_at, UTC) if failed_at is not None and failed_at >= since else None,
    )  # fmt: skip
