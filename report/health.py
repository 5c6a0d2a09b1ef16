"""Agent health: per agent, how its runs went in a window, who was affected, and whether people
other than its owner see failures the owner does not.

Definitions (the JSON report documents the same):

- a run is one row of ``runs``; ``failure_rate`` = runs with outcome ``failure`` / runs.
  ``degraded`` runs (a step failed, the run answered) are counted apart, not as failures.
- latency percentiles are over run durations, linear interpolation between closest ranks
  (``quantile_cont``, numpy's default).
- buckets: the window cut into ``bucket_seconds`` slices from ``since`` (see ``bucket_seconds``).
- affected users: users with at least one failed run.
- owner: the ``agents:`` config entry's owner, else the most frequent ``agent_owner`` of the
  agent's runs. ``cross_user.flag``: users other than the owner had failed runs;
  ``cross_user.loud``: and the owner ran the agent in the window without a single failure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.agents import NAME_FROM_SPANS_SQL, OWNER_FROM_SPANS_SQL, AgentConfig, AgentRegistry, agent_label
from feedback.implicit import ImplicitConfig, ImplicitSummary, implicit_signals
from report.fallbacks import FallbackSummary, fallbacks
from storage.runs import DEGRADED_SQL, FAILED_SQL, FAILURE_TYPE_SQL, SUCCEEDED_SQL, RunSet, Scope, since_date

NAME_COLUMNS = ("agent_name",)
"""The columns of runs ``build_report`` reads beyond the base ones (``runs_in``'s ``extra``)."""
IMPLICIT_COLUMNS = ("session_id",)
"""With these too, the report has each agent's implicit feedback (``feedback.implicit``) and its
fallbacks (``report.fallbacks``): both read spans, so only one agent's report asks for them."""

# Window length → bucket size: 12 to 48 buckets for the usual windows.
_BUCKETS = ((3600, 300), (6 * 3600, 900), (86400, 3600), (7 * 86400, 6 * 3600), (31 * 86400, 86400))


def bucket_seconds(window_seconds: float) -> int:
    for limit, size in _BUCKETS:
        if window_seconds <= limit:
            return size
    return 7 * 86400


@dataclass(frozen=True)
class Bucket:
    start: datetime
    runs: int
    failures: int
    failure_rate: float | None
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class FailureTypeCount:
    failure_type: str
    count: int
    share: float


@dataclass(frozen=True)
class UserFailures:
    user_id: str
    runs: int
    failures: int


@dataclass(frozen=True)
class CrossUser:
    flag: bool
    loud: bool
    other_users_failing: int
    other_user_failures: int
    owner_runs: int
    owner_failures: int
    message: str


@dataclass(frozen=True)
class FeedbackByType:
    """Feedback on an agent's runs of one failure type (``none``: runs that did not fail)."""

    failure_type: str
    pieces: int
    negative: int
    negative_rate: float


@dataclass(frozen=True)
class FeedbackByJudge:
    """A judge dimension's mean score on runs rated down beside runs with only other feedback."""

    dimension: str
    mean_on_negative: float | None
    runs_negative: int
    mean_on_other: float | None
    runs_other: int


@dataclass(frozen=True)
class FeedbackBucket:
    start: datetime
    pieces: int
    negative: int
    negative_rate: float | None
    """None in a bucket without feedback."""
    mean_rating: float | None = None
    """Mean of the bucket's 1-5 ratings; None without any."""


@dataclass(frozen=True)
class FeedbackSummary:
    """Users' feedback on an agent's runs of the window (the ``feedback`` view)."""

    pieces: int
    negative: int
    negative_rate: float
    """Negative pieces over pieces."""
    mean_rating: float | None
    """Mean of the 1-5 ratings; None without any."""
    runs_with_feedback: int
    runs_with_negative: int
    negative_rate_failed: float | None
    """Negative pieces over pieces, on failed runs only (None: no feedback on one)."""
    negative_rate_succeeded: float | None
    """The same on successful runs: how much feedback follows what spans say."""
    by_failure_type: list[FeedbackByType] = field(default_factory=list)
    """Negative feedback per failure type of the runs it is on (most pieces first)."""
    judge_scores: list[FeedbackByJudge] = field(default_factory=list)
    """How judges scored the runs users rated down, beside the runs they did not."""
    buckets: list[FeedbackBucket] = field(default_factory=list)
    """Negative feedback over time, on the report's buckets (by the run's start)."""


@dataclass(frozen=True)
class AgentHealth:
    tenant: str
    agent: str
    """The agent's id (``agent_id``, else ``agent_name``)."""
    agent_name: str | None
    """Its name beside the id: the ``agents:`` entry's, else the runs' ``agent_name``; None when
    it has none but its id."""
    owner: str | None
    owner_source: str | None  # "config" | "spans" | None
    runs: int
    failures: int
    degraded: int
    failure_rate: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    last_failure_at: datetime | None
    last_run_at: datetime
    failure_types: list[FailureTypeCount]
    affected_users: int
    top_affected_users: list[UserFailures]
    cross_user: CrossUser
    buckets: list[Bucket] = field(default_factory=list)
    p95_ms: float | None = None
    """Run latency p95 (the dashboard's headline latency); with p50/p90/p99 from one query."""
    feedback: FeedbackSummary | None = None
    """Users' feedback on its runs; None when there is none."""
    implicit: ImplicitSummary | None = None
    """Requeries, abandoned sessions, failure streaks (runs loaded with ``IMPLICIT_COLUMNS``)."""
    fallbacks: FallbackSummary | None = None
    """How often it fell back and whether that helped (with ``IMPLICIT_COLUMNS`` too)."""

    @property
    def label(self) -> str:
        """``expense-bot (agt_7f3a9c21)``: the name beside the id, or the id alone."""
        return agent_label(self.agent, self.agent_name)


@dataclass(frozen=True)
class HealthReport:
    scope: Scope
    bucket_seconds: int
    runs: int
    agents: list[AgentHealth]
    synthetic_left_out: int = 0
    """Synthetic (eval) runs of the window the report leaves out (``Scope.synthetic``)."""


def _cross_user(owner: str | None, u: dict[str, Any]) -> CrossUser:
    others, other_failures = int(u["other_users_failing"] or 0), int(u["other_user_failures"] or 0)
    owner_runs, owner_failures = int(u["owner_runs"] or 0), int(u["owner_failures"] or 0)
    if owner is None:
        message = "owner unknown: set agents[].owner in the config or send agent_owner"
        return CrossUser(False, False, others, other_failures, 0, 0, message)
    flag = others > 0
    loud = flag and owner_runs > 0 and owner_failures == 0
    if loud:
        message = (
            f"FAILING FOR OTHERS ONLY: {others} user(s) besides the owner had {other_failures} failed "
            f"run(s) while all {owner_runs} of the owner's runs succeeded"
        )
    elif flag:
        message = f"{others} user(s) besides the owner had {other_failures} failed run(s)"
    else:
        message = "no failures for users other than the owner"
    return CrossUser(flag, loud, others, other_failures, owner_runs, owner_failures, message)


def _quantile(value: Any, i: int) -> float | None:
    return None if value is None else float(value[i])


_USERS_SQL = f"""
WITH owners AS (
    SELECT unnest($tenants::VARCHAR[]) AS tenant, unnest($agents::VARCHAR[]) AS agent,
           unnest($owners::VARCHAR[]) AS owner
),
users AS (
    SELECT tenant, agent, user_id, count(*) AS runs, count(*) FILTER (WHERE {FAILED_SQL}) AS failures
    FROM runs WHERE user_id IS NOT NULL GROUP BY tenant, agent, user_id
),
judged AS (
    SELECT u.*, coalesce(lower(u.user_id) = lower(o.owner), false) AS is_owner
    FROM users u LEFT JOIN owners o USING (tenant, agent)
)
SELECT tenant, agent,
    count(*) FILTER (WHERE failures > 0) AS affected,
    count(*) FILTER (WHERE failures > 0 AND NOT is_owner) AS other_users_failing,
    sum(failures) FILTER (WHERE NOT is_owner) AS other_user_failures,
    sum(runs) FILTER (WHERE is_owner) AS owner_runs,
    sum(failures) FILTER (WHERE is_owner) AS owner_failures,
    coalesce((list({{'user_id': user_id, 'runs': runs, 'failures': failures}} ORDER BY failures DESC, user_id)
              FILTER (WHERE failures > 0))[1:$top], []) AS top
FROM judged GROUP BY tenant, agent
"""


def build_report(
    runs: RunSet, agents: tuple[AgentConfig, ...], top_users: int = 5, implicit: ImplicitConfig | None = None
) -> HealthReport:
    """The report over ``runs`` (``storage.runs.runs_in``: its base columns, and ``agent_name``
    for the names the spans give agents; ``NAME_COLUMNS``; with ``IMPLICIT_COLUMNS`` too, the
    implicit feedback, read as ``implicit`` says)."""
    scope = runs.scope
    size = bucket_seconds(scope.seconds)
    span_name = NAME_FROM_SPANS_SQL if "agent_name" in runs.columns else "NULL"
    summary = runs.rows(
        f"""SELECT tenant, agent, count(*) AS runs,
                count(*) FILTER (WHERE {FAILED_SQL}) AS failures,
                count(*) FILTER (WHERE {DEGRADED_SQL}) AS degraded,
                quantile_cont(duration_ms, [0.5, 0.9, 0.99, 0.95]) AS q,
                max(start_time) FILTER (WHERE {FAILED_SQL}) AS last_failure_at,
                max(start_time) AS last_run_at,
                {OWNER_FROM_SPANS_SQL} AS span_owner, {span_name} AS span_name
            FROM runs GROUP BY tenant, agent ORDER BY tenant, agent""",
    )
    registry = AgentRegistry(agents)
    owners = {}
    names = {}
    for s in summary:
        info = registry.lookup(s["tenant"], s["agent"], s["span_owner"], s["span_name"])
        owners[(s["tenant"], s["agent"])] = (info.owner, info.owner_source)
        names[(s["tenant"], s["agent"])] = info.name if info.name != s["agent"] else None
    per_agent_users = {}
    top: dict[tuple[str, str], list[UserFailures]] = {}
    if owners:
        keys = list(owners)
        for r in runs.rows(_USERS_SQL, {
            "tenants": [t for t, _ in keys], "agents": [a for _, a in keys],
            "owners": [owners[k][0] for k in keys], "top": top_users,
        }):  # fmt: skip
            per_agent_users[(r["tenant"], r["agent"])] = r
            top[(r["tenant"], r["agent"])] = [
                UserFailures(u["user_id"], u["runs"], u["failures"]) for u in r["top"]
            ]
    types: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for r in runs.rows(
        f"""SELECT tenant, agent, {FAILURE_TYPE_SQL} AS failure_type, count(*) AS n
            FROM runs WHERE {FAILED_SQL}
            GROUP BY ALL ORDER BY tenant, agent, n DESC, failure_type""",
    ):
        types.setdefault((r["tenant"], r["agent"]), []).append((r["failure_type"], r["n"]))
    buckets = _buckets(runs, size)
    feedback = _feedback(runs, size)
    one_agent = set(IMPLICIT_COLUMNS) <= set(runs.columns)  # the costly span reads: asked for
    signals = implicit_signals(runs, implicit, size) if one_agent else {}
    fell_back = fallbacks(runs) if one_agent else {}

    out = []
    for s in summary:
        key = (s["tenant"], s["agent"])
        owner, source = owners[key]
        users = per_agent_users.get(
            key,
            {
                "affected": 0,
                "other_users_failing": 0,
                "other_user_failures": 0,
                "owner_runs": 0,
                "owner_failures": 0,
            },
        )
        failures = int(s["failures"])
        out.append(
            AgentHealth(
                tenant=s["tenant"],
                agent=s["agent"],
                agent_name=names[key],
                owner=owner,
                owner_source=source,
                runs=int(s["runs"]),
                failures=failures,
                degraded=int(s["degraded"]),
                failure_rate=failures / s["runs"],
                p50_ms=float(s["q"][0]),
                p90_ms=float(s["q"][1]),
                p99_ms=float(s["q"][2]),
                p95_ms=float(s["q"][3]),
                last_failure_at=s["last_failure_at"],
                last_run_at=s["last_run_at"],
                failure_types=[FailureTypeCount(t, n, n / failures) for t, n in types.get(key, [])],
                affected_users=int(users["affected"] or 0),
                top_affected_users=top.get(key, []),
                cross_user=_cross_user(owner, users),
                buckets=buckets.get(key, []),
                feedback=feedback.get(key),
                implicit=signals.get(key),
                fallbacks=fell_back.get(key),
            )
        )
    total = sum(a.runs for a in out)
    return HealthReport(scope, size, total, out, runs.synthetic_left_out())


_FEEDBACK_ON_RUNS = """
    SELECT r.tenant, r.agent, r.trace_id, r.start_time, __TYPE__ AS failure_type, __FAILED__ AS failed,
           __SUCCEEDED__ AS succeeded, f.negative, f.kind, f.value
    FROM runs r JOIN feedback f ON f.tenant = r.tenant AND f.trace_id = r.trace_id
    WHERE f.date >= $since_date
"""


def _feedback(runs: RunSet, size: int) -> dict[tuple[str, str], FeedbackSummary]:
    """Per agent, the feedback on its runs (``storage.feedback``: joined on tenant and trace), by
    failure type, beside the judges' scores, and over time (buckets of ``size`` seconds)."""
    rated = (
        _FEEDBACK_ON_RUNS.replace(
            "__TYPE__", f"CASE WHEN {FAILED_SQL} THEN {FAILURE_TYPE_SQL} ELSE 'none' END"
        )
        .replace("__FAILED__", FAILED_SQL)
        .replace("__SUCCEEDED__", SUCCEEDED_SQL)
    )
    params = {"since_date": since_date(runs.scope.since)}

    def negative_share(outcome: str) -> str:
        return (
            f"count(*) FILTER (WHERE {outcome} AND negative) / nullif(count(*) FILTER (WHERE {outcome}), 0)"
        )

    found = runs.query(
        f"""SELECT tenant, agent, count(*), count(*) FILTER (WHERE negative),
                   avg(value) FILTER (WHERE kind = 'rating'), count(DISTINCT trace_id),
                   count(DISTINCT trace_id) FILTER (WHERE negative),
                   {negative_share("failed")}, {negative_share("succeeded")}
            FROM ({rated}) GROUP BY ALL""",
        params,
    )
    types: dict[tuple[str, str], list[FeedbackByType]] = {}
    for t, a, failure_type, n, negative in runs.query(
        f"""SELECT tenant, agent, failure_type, count(*) AS n, count(*) FILTER (WHERE negative)
            FROM ({rated}) GROUP BY ALL ORDER BY tenant, agent, n DESC, failure_type""",
        params,
    ):
        types.setdefault((t, a), []).append(FeedbackByType(failure_type, int(n), int(negative), negative / n))
    judged: dict[tuple[str, str], list[FeedbackByJudge]] = {}
    for t, a, dimension, on_negative, n_negative, on_other, n_other in runs.query(
        f"""WITH rated AS (
                SELECT tenant, agent, trace_id, bool_or(negative) AS negative FROM ({rated}) GROUP BY ALL
            ), judged AS (
                SELECT tenant, trace_id, dimension, avg(value) AS value FROM scores
                WHERE value IS NOT NULL AND trace_id IN (SELECT trace_id FROM rated) GROUP BY ALL
            )
            SELECT r.tenant, r.agent, j.dimension,
                   avg(j.value) FILTER (WHERE r.negative), count(*) FILTER (WHERE r.negative),
                   avg(j.value) FILTER (WHERE NOT r.negative), count(*) FILTER (WHERE NOT r.negative)
            FROM rated r JOIN judged j USING (tenant, trace_id)
            GROUP BY ALL ORDER BY r.tenant, r.agent, j.dimension""",
        params,
    ):
        judged.setdefault((t, a), []).append(
            FeedbackByJudge(dimension, on_negative, int(n_negative), on_other, int(n_other))
        )
    scope = runs.scope
    count = math.ceil(scope.seconds / size)
    series: dict[tuple[str, str], dict[int, tuple[int, int, float | None]]] = {}
    for t, a, b, n, negative, rating in runs.query(
        f"""SELECT tenant, agent, (epoch_us(start_time) - epoch_us($since::TIMESTAMPTZ)) // $size AS b,
                   count(*), count(*) FILTER (WHERE negative), avg(value) FILTER (WHERE kind = 'rating')
            FROM ({rated}) GROUP BY ALL""",
        {**params, "since": scope.since, "size": size * 1_000_000},
    ):
        series.setdefault((t, a), {})[int(b)] = (int(n), int(negative), rating)
    out = {}
    for t, a, n, negative, mean, with_feedback, with_negative, on_failed, on_succeeded in found:
        key = (t, a)
        buckets = []
        for b in range(count):
            pieces, down, rating = series.get(key, {}).get(b, (0, 0, None))
            start = scope.since + timedelta(seconds=b * size)
            buckets.append(FeedbackBucket(start, pieces, down, down / pieces if pieces else None, rating))
        out[key] = FeedbackSummary(
            int(n), int(negative), int(negative) / int(n), mean, int(with_feedback), int(with_negative),
            on_failed, on_succeeded, types.get(key, []), judged.get(key, []), buckets,
        )  # fmt: skip
    return out


def _buckets(runs: RunSet, size: int) -> dict[tuple[str, str], list[Bucket]]:
    """Every bucket of the window per agent, empty ones included (runs 0, rates null)."""
    scope = runs.scope
    count = math.ceil(scope.seconds / size)
    found = {
        (r["tenant"], r["agent"], r["b"]): r
        for r in runs.rows(
            f"""SELECT tenant, agent, (epoch_us(start_time) - epoch_us($since::TIMESTAMPTZ)) // $size AS b,
                    count(*) AS runs, count(*) FILTER (WHERE {FAILED_SQL}) AS failures,
                    quantile_cont(duration_ms, [0.5, 0.9, 0.99]) AS q
                FROM runs GROUP BY ALL""",
            {"since": scope.since, "size": size * 1_000_000},
        )
    }
    agents = sorted({(t, a) for t, a, _ in found})
    out: dict[tuple[str, str], list[Bucket]] = {}
    for tenant, agent in agents:
        series = []
        for b in range(count):
            r = found.get((tenant, agent, b))
            started, failures = (int(r["runs"]), int(r["failures"])) if r else (0, 0)
            q = r["q"] if r else None
            series.append(
                Bucket(
                    scope.since + timedelta(seconds=b * size),
                    started,
                    failures,
                    failures / started if started else None,
                    _quantile(q, 0),
                    _quantile(q, 1),
                    _quantile(q, 2),
                )
            )
        out[(tenant, agent)] = series
    return out
