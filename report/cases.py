"""Production failures → eval cases: the failed runs of an agent as dataset rows (JSONL), so the
scheduled runner replays them as regression tests.

One line per failed or degraded run that recorded its input (a run without ``input_text`` has
nothing to replay and is counted as skipped):

    {"id": "prod-<trace_id>", "query": <the run's input>,
     "eval_guidance": "Answers the request without the production failure (<type>: <message>)",
     "tags": ["production-failure", "<failure_type>"],
     "metadata": {"trace_id", "failure_type", "cluster_id", "error_message", "failing_output",
                  "agent", "tenant", "user_id", "observed_at"}}

With negative feedback (``--feedback negative``), the runs users rated down instead, failed or
not, with their comments as the guidance:

    {"id": "feedback-<trace_id>", "query": <the run's input>,
     "eval_guidance": "Answers the request so the user would not rate it down; the user said: <comments>",
     "tags": ["negative-feedback", "<outcome>"],
     "metadata": {"trace_id", "outcome", "failure_type", "feedback_pieces", "comments",
                  "rated_output", "agent", "tenant", "user_id", "observed_at"}}

``query``, ``eval_guidance``, ``id`` and ``tags`` are the dataset fields; ``metadata`` is carried
along untouched. Synthetic runs (agentwatch's own eval traffic) are never production failures:
runs sets leave them out unless their scope includes them, and then their cases are
``eval-<trace_id>``, tagged ``eval-failure`` ("the eval failure" in the guidance).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

import orjson

from report.signals import CLUSTERED_SQL
from storage.runs import RunSet, since_date


@dataclass(frozen=True)
class ExportResult:
    written: int
    skipped_without_input: int


def case_rows(runs: RunSet, cluster: str | None = None) -> list[dict[str, Any]]:
    """Failed and degraded runs (``runs`` loaded with the ``TEXTS`` columns), oldest first."""
    where = "WHERE cluster_id = $cluster" if cluster else ""
    params = {"cluster": cluster} if cluster else {}
    return runs.rows(f"SELECT * FROM ({CLUSTERED_SQL}) {where} ORDER BY start_time, trace_id", params)


def to_case(row: dict[str, Any]) -> dict[str, Any]:
    message = row["error_message"] or "no message"
    prefix, kind = ("eval", "eval") if row["synthetic"] else ("prod", "production")
    return {
        "id": f"{prefix}-{row['trace_id']}",
        "query": row["input_text"],
        "eval_guidance": f"Answers the request without the {kind} failure ({row['failure_type']}: {message})",
        "tags": [f"{kind}-failure", row["failure_type"]],
        "metadata": {
            "trace_id": row["trace_id"],
            "failure_type": row["failure_type"],
            "cluster_id": row["cluster_id"],
            "error_message": row["error_message"],
            "failing_output": row["output_text"],
            "agent": row["agent"],
            "tenant": row["tenant"],
            "user_id": row["user_id"],
            "observed_at": row["start_time"].isoformat().replace("+00:00", "Z"),
        },
    }


def export_cases(runs: RunSet, out: IO[bytes], cluster: str | None = None) -> ExportResult:
    written = skipped = 0
    for row in case_rows(runs, cluster):
        if not row["input_text"] or not row["input_text"].strip():
            skipped += 1
            continue
        out.write(orjson.dumps(to_case(row)) + b"\n")
        written += 1
    return ExportResult(written, skipped)


# The runs users rated down, with their comments and the run span's texts (partials carry none).
_NEGATIVE_SQL = """
WITH negative AS (
    SELECT tenant, trace_id, count(*) AS pieces,
           list(comment ORDER BY time) FILTER (WHERE comment IS NOT NULL AND comment <> '') AS comments
    FROM feedback WHERE negative AND date >= $since_date GROUP BY ALL
)
SELECT r.trace_id, r.tenant, r.agent, r.user_id, r.start_time, r.outcome, r.failure_type, n.pieces,
       coalesce(n.comments, []) AS comments, s.input_text, s.output_text
FROM runs r JOIN negative n USING (tenant, trace_id)
LEFT JOIN (
    SELECT tenant, trace_id, span_id, input_text, output_text FROM spans
    WHERE date >= $since_date AND trace_id IN (SELECT trace_id FROM negative)
) s ON s.tenant = r.tenant AND s.trace_id = r.trace_id AND s.span_id = r.span_id
ORDER BY r.start_time, r.trace_id
"""


def feedback_case(row: dict[str, Any]) -> dict[str, Any]:
    said = "; ".join(row["comments"])
    guidance = "Answers the request so the user would not rate it down"
    guidance += f"; the user said: {said}" if said else " (they left no comment)"
    return {
        "id": f"feedback-{row['trace_id']}",
        "query": row["input_text"],
        "eval_guidance": guidance,
        "tags": ["negative-feedback", row["outcome"]],
        "metadata": {
            "trace_id": row["trace_id"],
            "outcome": row["outcome"],
            "failure_type": row["failure_type"],
            "feedback_pieces": row["pieces"],
            "comments": row["comments"],
            "rated_output": row["output_text"],
            "agent": row["agent"],
            "tenant": row["tenant"],
            "user_id": row["user_id"],
            "observed_at": row["start_time"].isoformat().replace("+00:00", "Z"),
        },
    }


def export_feedback_cases(runs: RunSet, out: IO[bytes]) -> ExportResult:
    """The runs of ``runs`` (base columns) with negative feedback as cases, oldest first."""
    written = skipped = 0
    for row in runs.rows(_NEGATIVE_SQL, {"since_date": since_date(runs.scope.since)}):
        if not row["input_text"] or not row["input_text"].strip():
            skipped += 1
            continue
        out.write(orjson.dumps(feedback_case(row)) + b"\n")
        written += 1
    return ExportResult(written, skipped)
