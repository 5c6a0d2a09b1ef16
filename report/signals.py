"""Failure signals: failed runs clustered by failure type and message template.

Templates are made where run partials are written (``storage.message_template``): numbers,
ids, quoted values, paths, URLs and e-mail addresses are masked, so "ticket 4711 not found"
and "ticket 815 not found" are one signal. A run without a message gets "(no message)".
A cluster's id is the first 8 hex digits of the md5 of ``failure_type|template``: stable across
reports and data directories.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from storage.runs import FAILURE_TYPE_SQL, UNSUCCESSFUL_SQL, RunSet


@dataclass(frozen=True)
class Signal:
    id: str
    failure_type: str
    template: str
    count: int
    first_seen: datetime
    last_seen: datetime
    agents: list[str]
    affected_users: int
    users: list[str]
    example_trace_ids: list[str]


CLUSTERED_SQL = f"""
SELECT * EXCLUDE (failure_type, error_template), failure_type_ AS failure_type, error_template AS template,
       substr(md5(failure_type_ || '|' || error_template), 1, 8) AS cluster_id
FROM (SELECT *, {FAILURE_TYPE_SQL} AS failure_type_ FROM runs)
WHERE {UNSUCCESSFUL_SQL}
"""
"""Failed and degraded runs with their ``cluster_id`` and ``template``, over a ``RunSet``."""


def clusters(runs: RunSet, top: int = 10, examples: int = 3) -> list[Signal]:
    """The ``top`` largest clusters of failed and degraded runs in ``runs``."""
    rows = runs.rows(
        f"""SELECT cluster_id, failure_type, template, count(*) AS n,
                min(start_time) AS first_seen, max(start_time) AS last_seen,
                list_sort(list_distinct(list(agent))) AS agents,
                count(DISTINCT user_id) AS affected_users,
                list_sort(list_distinct(list(user_id) FILTER (WHERE user_id IS NOT NULL)))[1:5] AS users,
                list(trace_id ORDER BY start_time DESC, trace_id)[1:$examples] AS examples
            FROM ({CLUSTERED_SQL})
            GROUP BY cluster_id, failure_type, template
            ORDER BY n DESC, cluster_id LIMIT $top""",
        {"top": top, "examples": examples},
    )
    return [
        Signal(
            r["cluster_id"],
            r["failure_type"],
            r["template"],
            r["n"],
            r["first_seen"],
            r["last_seen"],
            r["agents"],
            r["affected_users"],
            r["users"],
            r["examples"],
        )
        for r in rows
    ]
