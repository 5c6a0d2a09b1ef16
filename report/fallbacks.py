"""Fallbacks, traced and judged: how often an agent fell back, why, and whether it helped.

A run fell back when any of its spans records the decision: an event named
``agent.fallback.triggered``, or the attributes ``agent.fallback.reason`` / ``agent.fallback.from``
/ ``agent.fallback.to`` (an event's own attributes of those names give the reason). Per agent:
how many runs fell back (the activation rate), the count per reason, and the success rate of the
runs that fell back beside that of the runs that did not: whether falling back helped. A
fallback that carries the id of agentwatch's advice (``agentwatch.advice.id``, on the event or its
span: ``agentwatch.client.Health.record_fallback``) followed the health API's advice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.selfhealing import ADVICE_ID_ATTRIBUTE, FALLBACK_EVENT, FALLBACK_FROM, FALLBACK_REASON, FALLBACK_TO
from storage.runcache import Derived, derived_rows
from storage.runs import SUCCEEDED_SQL, RunSet
from storage.spanevents import attr_sql, events_sql

EVENT = FALLBACK_EVENT
NO_REASON = "(no reason given)"


@dataclass(frozen=True)
class FallbackSummary:
    runs: int
    fell_back: int
    activation_rate: float
    reasons: dict[str, int] = field(default_factory=dict)
    """Runs per reason (a run with two reasons counts under each)."""
    success_rate_with: float | None = None
    """Success rate of the runs that fell back (None: none did)."""
    success_rate_without: float | None = None
    """Success rate of the other runs (None: every run fell back)."""
    followed_advice: int = 0
    """Runs that fell back following agentwatch's advice (the advice id on the fallback)."""


FALLBACK_RUNS = Derived(
    "fallback_runs",
    f"""WITH decisions AS (
        SELECT tenant, trace_id,
               coalesce({attr_sql("attributes", FALLBACK_REASON)}, '{NO_REASON}') AS reason,
               {attr_sql("attributes", ADVICE_ID_ATTRIBUTE)} AS advice
        FROM __SPANS__
        WHERE contains(attributes, '"agent.fallback.')
          AND ({attr_sql("attributes", FALLBACK_REASON)} IS NOT NULL
               OR {attr_sql("attributes", FALLBACK_FROM)} IS NOT NULL
               OR {attr_sql("attributes", FALLBACK_TO)} IS NOT NULL)
        UNION ALL
        SELECT tenant, trace_id, coalesce({attr_sql("e.attributes", FALLBACK_REASON)}, '{NO_REASON}'),
               {attr_sql("e.attributes", ADVICE_ID_ATTRIBUTE)}
        FROM ({events_sql(EVENT, "tenant, trace_id", source="__SPANS__")})
    )
    SELECT d.tenant, d.trace_id, list(DISTINCT d.reason) AS reasons, bool_or(d.advice IS NOT NULL) AS advised
    FROM decisions d SEMI JOIN __RUNS__ r USING (tenant, trace_id)
    GROUP BY d.tenant, d.trace_id""",
)
"""The runs that fell back: their reasons and whether they followed agentwatch's advice (kept
for closed days by the dashboard's run cache, ``storage.runcache``)."""

_SQL = f"""
WITH per_run AS (
    SELECT r.tenant, r.agent, r.trace_id, {SUCCEEDED_SQL.replace("outcome", "r.outcome")} AS succeeded,
           coalesce(d.reasons, []) AS reasons, coalesce(d.advised, false) AS advised
    FROM runs r LEFT JOIN (__FALLBACK_ROWS__) d ON d.h = hash(r.tenant, r.trace_id)
)
SELECT tenant, agent, count(*) AS runs, count(*) FILTER (WHERE len(reasons) > 0) AS fell_back,
       avg(succeeded::INT) FILTER (WHERE len(reasons) > 0) AS with_rate,
       avg(succeeded::INT) FILTER (WHERE len(reasons) = 0) AS without_rate,
       flatten(list(reasons)) AS all_reasons,
       count(*) FILTER (WHERE len(reasons) > 0 AND advised) AS advised
FROM per_run GROUP BY ALL
"""


def fallbacks(runs: RunSet) -> dict[tuple[str, str], FallbackSummary]:
    """Per (tenant, agent), the fallbacks of ``runs`` (base columns)."""
    found = runs.query(_SQL.replace("__FALLBACK_ROWS__", derived_rows(runs, FALLBACK_RUNS)))
    out = {}
    for tenant, agent, n, fell_back, with_rate, without_rate, reasons, advised in found:
        counts: dict[str, int] = {}
        for reason in reasons or []:
            counts[reason] = counts.get(reason, 0) + 1
        ranked = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        out[(tenant, agent)] = FallbackSummary(
            int(n), int(fell_back), int(fell_back) / int(n), ranked, with_rate, without_rate, int(advised)
        )
    return out
