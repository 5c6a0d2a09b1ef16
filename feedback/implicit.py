"""Implicit feedback: what users do when an agent fails them without a span saying so.

Per agent, over a window's runs (``storage.runs.RunSet``, base columns):

- **requery**: a user asks the same agent a similar question again within ``requery_window`` of
  the previous ask: the earlier run is *requeried* (its answer did not do). Only a user's next
  run of that agent is compared. Similar: the Jaccard similarity of the two inputs' word sets
  (lower-case letters and digits; words of one character left out) is at least
  ``requery_similarity`` (default 0.5): "what is my travel budget" and "what's my travel budget
  for Q3" share 4 of 7 words (0.57).
- **abandonment**: a session (``session_id``) whose last run failed or degraded (no success came
  after); and runs the client cancelled (an error message that says ``cancel``).
- **failure streaks**: a user whose runs of the agent failed ``failure_streak`` times in a row
  (default 3) or more.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.configmodel import STRICT
from core.units import Duration
from storage.runcache import Derived, derived_rows
from storage.runs import FAILED_SQL, SUCCEEDED_SQL, RunSet


@dataclass(frozen=True)
class ImplicitConfig:
    """The ``feedback:`` section: how implicit feedback is read from runs."""

    __pydantic_config__ = STRICT
    requery_window: Duration = 600.0
    """A user's next ask within this long of the previous one may be a requery. Default: 10m."""
    requery_similarity: float = 0.5
    """Jaccard similarity of the two inputs' words at which the next ask is the same question."""
    failure_streak: int = 3
    """Failed runs in a row that make a user's failure streak."""

    def validate(self) -> list[str]:
        problems = [] if self.requery_window > 0 else ["requery_window: must be positive"]
        if not 0 < self.requery_similarity <= 1:
            problems.append("requery_similarity: must be more than 0 and at most 1")
        if self.failure_streak < 2:
            problems.append("failure_streak: must be at least 2")
        return problems


@dataclass(frozen=True)
class ImplicitSummary:
    runs: int
    requeried_runs: int
    """Runs the same user asked again, similarly, within the requery window."""
    requery_rate: float
    sessions: int
    abandoned_sessions: int
    abandonment_rate: float | None
    """Abandoned sessions over sessions; None without sessions."""
    cancelled_runs: int
    users_on_failure_streaks: int
    longest_failure_streak: int
    buckets: list[ImplicitBucket] = field(default_factory=list)
    """Requeries and abandoned sessions over time (asked for with ``bucket_seconds``)."""


@dataclass(frozen=True)
class ImplicitBucket:
    start: datetime
    runs: int
    requeried_runs: int
    """Runs started in the bucket that their user asked again."""
    requery_rate: float | None
    sessions: int
    """Sessions whose last run started in the bucket."""
    abandoned_sessions: int
    abandonment_rate: float | None


def words_sql(text: str, min_length: int = 2) -> str:
    """SQL: the distinct words of ``text`` (lower case, letters and digits, ``min_length`` or more
    long)."""
    split = f"regexp_split_to_array(lower({text}), '[^[:alnum:]]+')"
    return f"list_distinct([w FOR w IN {split} IF length(w) >= {min_length}])"


def similarity_sql(a: str, b: str) -> str:
    """SQL: the Jaccard similarity of two word lists (0 when both are empty)."""
    union = f"len(list_distinct(list_concat({a}, {b})))"
    return f"coalesce(len(list_intersect({a}, {b})) / nullif({union}, 0), 0)"


_BUCKET = "((epoch_us({t}) - epoch_us($since::TIMESTAMPTZ)) // $size)::INTEGER"
"""SQL: the bucket of the window a time is in (``$size``: microseconds)."""

RUN_WORDS = Derived(
    "run_words",
    f"""SELECT s.tenant, s.trace_id, {words_sql("s.input_text")} AS words
        FROM __SPANS__ s JOIN __RUNS__ r
          ON r.tenant = s.tenant AND r.trace_id = s.trace_id AND r.span_id = s.span_id
        WHERE s.input_text IS NOT NULL""",
)
"""The words of each run's question (its run span's input text), for requeries (kept for closed
days by the dashboard's run cache, ``storage.runcache``)."""

_SQL = f"""
WITH ordered AS (
    SELECT tenant, agent, user_id, trace_id, span_id, start_time,
           lead(trace_id) OVER w AS next_trace, lead(span_id) OVER w AS next_span,
           lead(start_time) OVER w AS next_start
    FROM runs WHERE user_id IS NOT NULL
    WINDOW w AS (PARTITION BY tenant, agent, user_id ORDER BY start_time, trace_id)
),
candidates AS (
    SELECT * FROM ordered WHERE next_start IS NOT NULL AND next_start - start_time <= to_seconds($window)
),
texts AS (
    SELECT h, words FROM (__RUN_WORDS__)
    WHERE h IN (SELECT hash(tenant, trace_id) FROM candidates
                UNION ALL SELECT hash(tenant, next_trace) FROM candidates)
),
requeried_runs AS (
    SELECT c.tenant, c.agent, c.start_time
    FROM candidates c
    JOIN texts a ON a.h = hash(c.tenant, c.trace_id)
    JOIN texts b ON b.h = hash(c.tenant, c.next_trace)
    WHERE {similarity_sql("a.words", "b.words")} >= $similarity
),
requeried AS (
    SELECT tenant, agent, count(*) AS n,
           list({{'b': {_BUCKET.format(t="start_time")}, 'n': 1}}) AS series
    FROM requeried_runs GROUP BY ALL
),
sessions AS (
    SELECT tenant, agent, session_id, arg_max(outcome, start_time) AS last_outcome,
           max(start_time) AS last_start
    FROM runs WHERE session_id IS NOT NULL GROUP BY ALL
),
abandoned AS (
    SELECT tenant, agent, count(*) AS sessions,
           count(*) FILTER (WHERE last_outcome <> 'success') AS abandoned,
           list({{'b': {_BUCKET.format(t="last_start")}, 'n': (last_outcome <> 'success')::INTEGER}})
               AS series
    FROM sessions GROUP BY ALL
),
islands AS (
    SELECT tenant, agent, user_id, {FAILED_SQL} AS failed,
           count(*) FILTER (WHERE NOT {FAILED_SQL}) OVER (
               PARTITION BY tenant, agent, user_id ORDER BY start_time, trace_id ROWS UNBOUNDED PRECEDING
           ) AS island
    FROM runs WHERE user_id IS NOT NULL
),
streaks AS (
    SELECT tenant, agent, user_id, max(n) AS longest FROM (
        SELECT tenant, agent, user_id, island, count(*) AS n FROM islands WHERE failed GROUP BY ALL
    ) GROUP BY ALL
),
per_bucket AS (
    SELECT tenant, agent, {_BUCKET.format(t="start_time")} AS b, count(*) AS n,
           count(*) FILTER (WHERE NOT {SUCCEEDED_SQL} AND error_message ILIKE '%cancel%') AS cancelled
    FROM runs GROUP BY ALL
),
per_agent AS (
    SELECT tenant, agent, sum(n) AS runs, sum(cancelled) AS cancelled, list({{'b': b, 'n': n}}) AS series
    FROM per_bucket GROUP BY ALL
)
SELECT p.tenant, p.agent, p.runs, coalesce(q.n, 0), coalesce(a.sessions, 0), coalesce(a.abandoned, 0),
       p.cancelled, coalesce(s.on_streaks, 0), coalesce(s.longest, 0), p.series, q.series, a.series
FROM per_agent p LEFT JOIN requeried q USING (tenant, agent) LEFT JOIN abandoned a USING (tenant, agent)
LEFT JOIN (
    SELECT tenant, agent, count(*) FILTER (WHERE longest >= $streak) AS on_streaks, max(longest) AS longest
    FROM streaks GROUP BY ALL
) s USING (tenant, agent)
"""


def implicit_signals(
    runs: RunSet, config: ImplicitConfig | None = None, bucket_seconds: int | None = None
) -> dict[tuple[str, str], ImplicitSummary]:
    """Per (tenant, agent), the implicit feedback of ``runs`` (loaded with ``error_message``);
    with ``bucket_seconds``, over time too, on buckets of that size from the window's start."""
    config = config or ImplicitConfig()
    scope = runs.scope
    size = bucket_seconds or max(int(scope.seconds), 1)
    found = runs.query(
        _SQL.replace("__RUN_WORDS__", derived_rows(runs, RUN_WORDS)),
        {
            "window": config.requery_window,
            "similarity": config.requery_similarity,
            "streak": config.failure_streak,
            "since": scope.since,
            "size": size * 1_000_000,
        },
    )
    count = math.ceil(scope.seconds / size) if bucket_seconds else 0
    out = {}
    for row in found:
        tenant, agent, n, requeried, sessions, abandoned, cancelled, on_streaks, longest = row[:9]
        abandonment = int(abandoned) / int(sessions) if sessions else None
        out[(tenant, agent)] = ImplicitSummary(
            int(n), int(requeried), int(requeried) / int(n), int(sessions), int(abandoned), abandonment,
            int(cancelled), int(on_streaks), int(longest), _series(scope.since, size, count, *row[9:]),
        )  # fmt: skip
    return out


def _series(
    since: datetime,
    size: int,
    count: int,
    runs: list[dict[str, int]],
    requeried: list[dict[str, int]] | None,
    sessions: list[dict[str, int]] | None,
) -> list[ImplicitBucket]:
    started = Counter({r["b"]: r["n"] for r in runs})
    asked_again = Counter(r["b"] for r in requeried or [])
    ended = Counter(s["b"] for s in sessions or [])
    left = Counter(s["b"] for s in sessions or [] if s["n"])
    out = []
    for b in range(count):
        n, again, total, gone = started[b], asked_again[b], ended[b], left[b]
        out.append(
            ImplicitBucket(
                since + timedelta(seconds=b * size),
                n,
                again,
                again / n if n else None,
                total,
                gone,
                gone / total if total else None,
            )
        )
    return out
