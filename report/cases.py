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

Runs a judge marked (``run_marks``, ``evals.judges.marks``) instead, with the mark's reason:

    {"id": "judged-<trace_id>", "query": <the run's input>,
     "eval_guidance": "Answers the request so the judge would not mark it (<mark>: <reason>)",
     "tags": ["judge-mark", "<mark>"],
     "metadata": {"trace_id", "failure_type", "mark_reason", "mark_source", "judged_output",
                  "agent", "tenant", "user_id", "observed_at"}}

``candidates`` proposes the three kinds for review (``agentwatch cases review``), one per run
(see ``evals.candidates``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

import orjson

from evals.candidates import SOURCES, Candidate, merged
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


def _observed_at(row: dict[str, Any]) -> str:
    return str(row["start_time"].isoformat().replace("+00:00", "Z"))


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
            "observed_at": _observed_at(row),
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
            "observed_at": _observed_at(row),
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


def _signal_sql() -> str:
    """Failed and degraded runs by failure signal, the largest signals first; the runs a judge's
    mark made degraded are the judged source's, not a signal's. (The judges' failure types are
    read here, not at import: the dashboard imports this module and never needs them.)"""
    from evals.judges.marks import GROUNDEDNESS_DROP, QUALITY_REGRESSION

    return f"""
    SELECT *, count(*) OVER (PARTITION BY cluster_id) AS cluster_runs FROM ({CLUSTERED_SQL})
    WHERE NOT (failure_type IN ('{GROUNDEDNESS_DROP}', '{QUALITY_REGRESSION}')
               AND trace_id IN (SELECT trace_id FROM run_marks))
    ORDER BY cluster_runs DESC, cluster_id, start_time, trace_id
    """


# Runs with a judge's mark, failed or not, with the mark the runs view gives them (the first by type).
_JUDGED_SQL = """
SELECT r.*, m.mark.t AS mark, m.mark.r AS mark_reason, m.mark.s AS mark_source
FROM runs r JOIN (
    SELECT tenant, trace_id, min({'t': failure_type, 'r': reason, 's': source}) AS mark
    FROM run_marks GROUP BY tenant, trace_id
) m USING (tenant, trace_id)
ORDER BY r.start_time, r.trace_id
"""


def judged_case(row: dict[str, Any]) -> dict[str, Any]:
    """The case of a run a judge marked (``row``: a run with ``mark``, ``mark_reason``, ``mark_source``)."""
    return {
        "id": f"judged-{row['trace_id']}",
        "query": row["input_text"],
        "eval_guidance": (
            f"Answers the request so the judge would not mark it ({row['mark']}: {row['mark_reason']})"
        ),
        "tags": ["judge-mark", row["mark"]],
        "metadata": {
            "trace_id": row["trace_id"],
            "failure_type": row["mark"],
            "mark_reason": row["mark_reason"],
            "mark_source": row["mark_source"],
            "judged_output": row["output_text"],
            "agent": row["agent"],
            "tenant": row["tenant"],
            "user_id": row["user_id"],
            "observed_at": _observed_at(row),
        },
    }


@dataclass(frozen=True)
class Proposed:
    candidates: list[Candidate]
    """One per run, in the order of the sources asked for (see ``candidates``)."""
    skipped_without_input: int
    """Runs (counted once each) that recorded no input: nothing to replay."""


def _has_input(row: dict[str, Any]) -> bool:
    return bool(row["input_text"] and row["input_text"].strip())


def _runs(number: int) -> str:
    return f"{number} run{'' if number == 1 else 's'}"


def candidates(runs: RunSet, sources: tuple[str, ...] = SOURCES) -> Proposed:
    """Candidate eval cases from the runs of ``runs`` (loaded with the ``TEXTS`` columns):

    - ``clusters``: each failed or degraded run of a failure signal, the largest signals first
      (then by signal id), each signal's runs oldest first; its case is ``to_case``'s;
    - ``feedback``: each run users rated down, oldest first; ``feedback_case``'s;
    - ``judged``: each run a judge marked, oldest first; ``judged_case``'s.

    In the order of ``sources``; a run proposed by several is one candidate, the first one's
    (``evals.candidates.merged``). Runs without input text are left out and counted."""
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown source(s) {', '.join(unknown)} (known: {', '.join(SOURCES)})")
    found: list[Candidate] = []
    skipped: set[str] = set()
    for source in sources:
        if source == "clusters":
            for row in runs.rows(_signal_sql()):
                reason = (
                    f"failure signal {row['cluster_id']} ({row['failure_type']}: {row['template']}), "
                    f"{_runs(row['cluster_runs'])} in the window"
                )
                found.append(Candidate(to_case(row), row["trace_id"], ("clusters",), row["failure_type"],
                                       (reason,), row["output_text"]))  # fmt: skip
                if not _has_input(row):
                    skipped.add(row["trace_id"])
        elif source == "feedback":
            for row in runs.rows(_NEGATIVE_SQL, {"since_date": since_date(runs.scope.since)}):
                pieces = row["pieces"]
                reason = (
                    f"rated down by users ({pieces} negative piece{'' if pieces == 1 else 's'} of feedback)"
                )
                case = feedback_case(row)
                found.append(Candidate(case, row["trace_id"], ("feedback",), row["failure_type"], (reason,),
                                       row["output_text"], tuple(row["comments"])))  # fmt: skip
                if not _has_input(row):
                    skipped.add(row["trace_id"])
        else:
            for row in runs.rows(_JUDGED_SQL):
                reason = f"marked {row['mark']} by the judge ({row['mark_source']}): {row['mark_reason']}"
                found.append(Candidate(judged_case(row), row["trace_id"], ("judged",), row["mark"], (reason,),
                                       row["output_text"]))  # fmt: skip
                if not _has_input(row):
                    skipped.add(row["trace_id"])
    return Proposed([c for c in merged(found) if c.trace_id not in skipped], len(skipped))
