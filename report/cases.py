"""Production failures → eval cases: the failed runs of an agent as dataset rows (JSONL), so the
scheduled runner replays them as regression tests.

One line per failed or degraded run that recorded its input (a run without ``input_text`` has
nothing to replay and is counted as skipped):

    {"id": "prod-<trace_id>", "query": <the run's input>,
     "eval_guidance": "Answers the request without the production failure (<type>: <message>)",
     "tags": ["production-failure", "<failure_type>"],
     "metadata": {"trace_id", "failure_type", "cluster_id", "error_message", "failing_output",
                  "agent", "tenant", "user_id", "observed_at"}}

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
from storage.runs import RunSet


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
