"""The ``feedback`` view: users' feedback on runs, one row per piece, joinable on ``trace_id``.

Two sources, one shape:

- ``api``: what ``POST /api/v1/feedback`` stored (``feedback_events``, ``storage.tables.FeedbackRow``),
  each piece once however often it was posted (by ``feedback_id``, the first kept);
- ``otel_event``: the OpenTelemetry GenAI evaluation events on spans (an event named
  ``gen_ai.evaluation.result`` with ``gen_ai.evaluation.name``, ``gen_ai.evaluation.score.value``,
  ``gen_ai.evaluation.score.label``, ``gen_ai.evaluation.explanation``), under the span's trace,
  and the same events sent as OTLP log records (``event_name``, or an ``event.name`` attribute,
  ``gen_ai.evaluation.result``; the ``logs`` view), under the record's trace.

Columns: ``tenant``, ``feedback_id``, ``trace_id``, ``span_id``, ``user_id``, ``name``, ``kind``
(``thumbs``, ``rating``, ``score``), ``value`` (as sent), ``score`` (on 0-1; null for an
evaluation score outside it), ``negative`` (thumbs down, a rating of 1 or 2, a score under 0.5,
or an evaluation label saying so: ``NEGATIVE_LABELS``), ``label``, ``comment``, ``time``,
``received_at``, ``source``, ``metadata``, ``date`` (the partition: the feedback's UTC day, an
evaluation event's span's). Feedback may arrive before its trace: it is kept and
joins the run when the run is stored (the join is at read time).
"""

from __future__ import annotations

import duckdb

from storage.spanevents import attr_sql, events_sql

NEGATIVE_LABELS = (
    "bad", "fail", "failed", "failure", "incorrect", "wrong", "negative", "no", "false", "thumbs_down",
    "down", "unhelpful", "not_helpful", "hallucinated", "irrelevant",
)  # fmt: skip
"""Evaluation labels (case-insensitive) that make a piece of feedback negative."""

_EVENT = "gen_ai.evaluation.result"


def _attr(name: str) -> str:
    return attr_sql("e.attributes", name)


COLUMNS = (
    "tenant", "feedback_id", "trace_id", "span_id", "user_id", "name", "kind", "value", "score", "negative",
    "label", "comment", "time", "received_at", "source", "metadata", "date",
)  # fmt: skip

FEEDBACK_SQL = f"""
SELECT {", ".join(COLUMNS)} FROM (
SELECT * FROM feedback_events
-- One row per piece: the first copy of the API's (an idempotent retry), the latest of Langfuse's
-- and Phoenix's (a re-post updates a score or an annotation there).
QUALIFY row_number() OVER (
    PARTITION BY tenant, feedback_id
    ORDER BY CASE WHEN source = 'api' THEN epoch_us(received_at) ELSE -epoch_us(received_at) END, time
) = 1
UNION ALL BY NAME
SELECT tenant, md5(concat_ws('|', tenant, trace_id, span_id, name, CAST(time AS VARCHAR))) AS feedback_id,
       trace_id, span_id, user_id, name, CASE WHEN value IS NULL THEN 'label' ELSE 'score' END AS kind, value,
       CASE WHEN value BETWEEN 0 AND 1 THEN value END AS score,
       coalesce(lower(label) IN ({", ".join(f"'{x}'" for x in NEGATIVE_LABELS)}), false)
           OR coalesce(value BETWEEN 0 AND 1 AND value < 0.5, false) AS negative,
       label, comment, time, time AS received_at, 'otel_event' AS source, NULL::VARCHAR AS metadata, date
FROM (
    SELECT tenant, date, trace_id, span_id, user_id,
           coalesce({_attr("gen_ai.evaluation.name")}, 'evaluation') AS name,
           TRY_CAST({_attr("gen_ai.evaluation.score.value")} AS DOUBLE) AS value,
           {_attr("gen_ai.evaluation.score.label")} AS label,
           {_attr("gen_ai.evaluation.explanation")} AS comment,
           to_timestamp(e.time_unix_nano / 1e9) AS time
    FROM ({events_sql(_EVENT, "tenant, date, trace_id, span_id, user_id")})
    UNION ALL
    SELECT tenant, date, trace_id, span_id, user_id,
           coalesce({attr_sql("attributes", "gen_ai.evaluation.name")}, 'evaluation') AS name,
           TRY_CAST({attr_sql("attributes", "gen_ai.evaluation.score.value")} AS DOUBLE) AS value,
           {attr_sql("attributes", "gen_ai.evaluation.score.label")} AS label,
           {attr_sql("attributes", "gen_ai.evaluation.explanation")} AS comment,
           time
    FROM logs WHERE event_name = '{_EVENT}' AND trace_id IS NOT NULL
)
)
"""


def create_feedback_view(con: duckdb.DuckDBPyConnection) -> None:
    """The ``feedback`` view on a catalog connection that has ``spans``, ``logs`` and ``feedback_events``."""
    con.execute(f"CREATE VIEW feedback AS {FEEDBACK_SQL}")
