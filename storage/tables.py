"""The small tables beside spans: eval runs, per-case results, judge scores, baseline pins,
eval events, run marks and alert events, as Parquet.

    <data_dir>/eval_runs/tenant=<t>/date=<d>/*.parquet     one row per eval run
    <data_dir>/eval_results/tenant=<t>/date=<d>/*.parquet  one row per case of a run
    <data_dir>/scores/tenant=<t>/date=<d>/*.parquet        one row per (run span, dimension)
    <data_dir>/judge_calls/tenant=<t>/date=<d>/*.parquet   the judge ledger: one row per judge call
                                                          (model, tokens, cost)
    <data_dir>/eval_baselines/tenant=<t>/date=<d>/*.parquet  pins; the latest per agent and kind wins
    <data_dir>/eval_events/tenant=<t>/date=<d>/*.parquet  regressions and canary drops, for alerting
    <data_dir>/run_marks/tenant=<t>/date=<d>/*.parquet    failure types a judge gave runs after the
                                                          fact (groundedness_drop, quality_regression);
                                                          ``runs`` applies them
    <data_dir>/alert_events/tenant=<t>/date=<d>/*.parquet one row per alert message (fired, repeated,
                                                          resolved), with its deliveries
    <data_dir>/feedback_events/tenant=<t>/date=<d>/*.parquet  users' feedback on runs, as posted

Every table has one typed row: a frozen dataclass whose fields, in order, are the table's
columns; its Arrow schema (``SCHEMAS``) is derived from the field types (``str`` → string,
``int`` → int64, ``float`` → float64, ``bool`` → bool, ``datetime`` → timestamp[us, UTC]; every
column nullable, ``X | None`` marks the ones writers leave empty). Writers build rows, never
dicts, so nothing can drift from the schema. ``scores`` joins ``spans`` on
``trace_id``/``span_id``. Files are written whole and renamed into place, like span files.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import pyarrow as pa

from storage.layout import table_dir, write_atomically

TS = pa.timestamp("us", tz="UTC")


class Row:
    """A row of one of these tables: subclasses are frozen dataclasses naming their ``TABLE``."""

    TABLE: ClassVar[str]


@dataclass(frozen=True)
class EvalRunRow(Row):
    TABLE: ClassVar[str] = "eval_runs"
    run_id: str
    agent: str
    kind: str
    dataset: str
    target: str
    judge: str
    started_at: datetime
    finished_at: datetime
    cases: int
    errors: int
    overall_score: float | None
    dimension_scores: str
    """JSON: dimension → mean value over the cases that have it."""
    agent_input_tokens: int | None = None
    """Tokens the agent under test reported using, over the run (None: it reported none; rows
    written before the column: null)."""
    agent_output_tokens: int | None = None
    agent_cost_usd: float | None = None
    """The agent's tokens priced like the cost processor prices spans; None when unknown."""
    judge_calls: int | None = None
    """Calls the judge made for the run (the judge ledger, ``judge_calls``), retries included."""
    judge_input_tokens: int | None = None
    judge_output_tokens: int | None = None
    judge_cost_usd: float | None = None
    """What the judge's own calls cost; None when no call's price is known."""


@dataclass(frozen=True)
class EvalResultRow(Row):
    TABLE: ClassVar[str] = "eval_results"
    run_id: str
    agent: str
    case_id: str
    trace_id: str
    span_id: str
    target_trace_id: str | None
    query: str
    output: str | None
    error: str | None
    latency_ms: float | None
    """None: not known (a run imported from another tool that did not record it)."""
    tool_call_count: int | None
    overall_score: float | None
    started_at: datetime
    judge_problems: str | None
    """Why dimensions the judge was asked are missing."""
    agent_input_tokens: int | None = None
    agent_output_tokens: int | None = None
    agent_cost_usd: float | None = None
    judge_calls: int | None = None
    judge_input_tokens: int | None = None
    judge_output_tokens: int | None = None
    judge_cost_usd: float | None = None


@dataclass(frozen=True)
class ScoreRow(Row):
    TABLE: ClassVar[str] = "scores"
    trace_id: str
    span_id: str
    evaluator: str
    """The judge's name, or ``metric`` for a direct metric (latency, tool calls)."""
    dimension: str
    value: float
    label: str | None
    explanation: str | None
    judge_model: str
    time: datetime
    eval_run_id: str | None
    eval_case_id: str | None
    spread: float | None = None
    """An ensemble's disagreement on this dimension: the highest vote's value less the lowest
    (0 when all agree); None for a single judge."""
    dissent: float | None = None
    """The share of an ensemble's votes whose label is not the combined label; None for a single judge."""
    votes: str | None = None
    """JSON: ``[[judge, label, value], ...]``, an ensemble's votes in member order; None for one judge."""


@dataclass(frozen=True)
class JudgeCallRow(Row):
    """One call a judge made (the judge ledger): what it asked, of which model, and what it cost.
    A call answered badly and asked again is two rows (``attempt`` 1 and 2)."""

    TABLE: ClassVar[str] = "judge_calls"
    run_id: str | None
    """The eval run; None for production judging."""
    case_id: str | None
    trace_id: str
    span_id: str
    judge: str
    """The judge the run names (an ensemble's name for every member's calls)."""
    member: str
    """The judge that made the call: an ensemble's member, or the judge itself; a fact checker
    is named ``<judge>/fact_checker:<name>``."""
    dimension: str
    model: str
    attempt: int
    ok: bool
    """Whether the call answered (a parseable answer or not); False when it failed."""
    problem: str | None
    """Why the answer was refused (unparseable) or the call failed."""
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    cost_source: str | None
    """``computed`` (priced like the cost processor prices spans), ``unknown`` (no price for the
    model), None (the backend reported no tokens)."""
    latency_ms: float
    time: datetime


@dataclass(frozen=True)
class EvalEventRow(Row):
    TABLE: ClassVar[str] = "eval_events"
    event: str
    """``eval_regression`` or ``canary_drop``."""
    agent: str
    run_id: str
    baseline_run: str
    dimensions: str
    """JSON: regressed dimension → delta."""
    time: datetime


@dataclass(frozen=True)
class RunMarkRow(Row):
    TABLE: ClassVar[str] = "run_marks"
    trace_id: str
    span_id: str
    failure_type: str
    reason: str
    source: str
    time: datetime


@dataclass(frozen=True)
class AlertEventRow(Row):
    TABLE: ClassVar[str] = "alert_events"
    time: datetime
    state: str
    rule: str
    kind: str
    agent: str
    alert_key: str
    fired_at: datetime
    value: float
    threshold: float
    summary: str
    runs: int
    affected_users: int
    top_failure_types: str
    """JSON: ``[[failure type, count], ...]``."""
    example_trace_ids: str
    """JSON list."""
    repeats: bool
    resolves: bool
    delivered: str
    """JSON: the notifiers that delivered the message."""
    failed: str
    """JSON: ``{notifier: error}``."""
    agent_name: str | None = None
    """The agent's name shown beside its id (None: it has none; rows written before it: null)."""


@dataclass(frozen=True)
class EvalBaselineRow(Row):
    TABLE: ClassVar[str] = "eval_baselines"
    agent: str
    kind: str
    """``baseline`` or ``canary``."""
    run_id: str
    pinned_at: datetime
    pinned_by: str | None = None
    """Who pinned it: None a user (``eval baseline pin``), ``import-seer`` an import, whose pins a
    later import may replace (never a user's)."""


@dataclass(frozen=True)
class FeedbackRow(Row):
    """One piece of a user's feedback on a run (``POST /api/v1/feedback``); read it through the
    ``feedback`` view (deduplicated, with the GenAI evaluation events of spans)."""

    TABLE: ClassVar[str] = "feedback_events"
    feedback_id: str
    """Deterministic: the client's ``id``, else a digest of the item, hashed with the tenant."""
    trace_id: str
    span_id: str | None
    user_id: str | None
    name: str
    """What was rated (``user`` for a user's own feedback; an evaluation's name)."""
    kind: str
    """``thumbs``, ``rating`` (1-5), ``score`` (0-1) or ``label`` (a category)."""
    value: float
    """As sent: 1/0 for thumbs up/down, the stars, the score."""
    score: float
    """On 0-1: thumbs 1/0, a rating (stars - 1) / 4, a score as it is."""
    negative: bool
    """Thumbs down, a rating of 1 or 2, a score under 0.5."""
    label: str | None
    comment: str | None
    time: datetime
    received_at: datetime
    source: str
    """``api`` (the JSON endpoint), ``langfuse`` or ``phoenix`` (their clients' shapes)."""
    metadata: str | None
    """JSON."""


ROWS: tuple[type[Row], ...] = (
    FeedbackRow,
    EvalRunRow,
    EvalResultRow,
    ScoreRow,
    JudgeCallRow,
    EvalEventRow,
    RunMarkRow,
    AlertEventRow,
    EvalBaselineRow,
)

_ARROW_TYPES: dict[object, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    datetime: TS,
}


def _arrow_type(hint: object) -> pa.DataType:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    return _ARROW_TYPES[hint]


def schema_of(row: type[Row]) -> pa.Schema:
    """The table's Arrow schema, from the row's fields."""
    hints = typing.get_type_hints(row)
    return pa.schema([(f.name, _arrow_type(hints[f.name])) for f in fields(row)])  # type: ignore[arg-type]


SCHEMAS: dict[str, pa.Schema] = {row.TABLE: schema_of(row) for row in ROWS}
"""Table name → Arrow schema (the catalog's views of tables with no file yet use it)."""


def write_rows(
    data_dir: Path, tenant: str, when: datetime, rows: Sequence[Row], name: str | None = None
) -> Path | None:
    """Append ``rows`` (all of one table) in the partition of ``tenant`` and ``when``'s day, in a
    new file (``name``: its name, default ``part-<uuid>.parquet``)."""
    if not rows:
        return None
    table = type(rows[0]).TABLE
    if any(type(row) is not type(rows[0]) for row in rows):
        raise TypeError(f"rows of {table} mixed with rows of other tables")
    schema = SCHEMAS[table]
    columns = {name: [getattr(row, name) for row in rows] for name in schema.names}
    directory = table_dir(data_dir, table) / f"tenant={tenant}" / f"date={when.date().isoformat()}"
    return write_atomically(pa.Table.from_pydict(columns, schema=schema), directory, "zstd", 3, name)
