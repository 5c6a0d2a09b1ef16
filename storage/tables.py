"""Eval tables: runs, per-case results, judge scores and baseline pins, as Parquet beside spans.

    <data_dir>/eval_runs/tenant=<t>/date=<d>/*.parquet     one row per eval run
    <data_dir>/eval_results/tenant=<t>/date=<d>/*.parquet  one row per case of a run
    <data_dir>/scores/tenant=<t>/date=<d>/*.parquet        one row per (run span, dimension)
    <data_dir>/eval_baselines/tenant=<t>/date=<d>/*.parquet  pins; the latest per agent and kind wins
    <data_dir>/eval_events/tenant=<t>/date=<d>/*.parquet  regressions and canary drops, for alerting
    <data_dir>/run_marks/tenant=<t>/date=<d>/*.parquet    failure types a judge gave runs after the
                                                          fact (groundedness_drop); ``runs`` applies them
    <data_dir>/alert_events/tenant=<t>/date=<d>/*.parquet one row per alert message (fired, repeated,
                                                          resolved), with its deliveries

``scores`` joins ``spans`` on ``trace_id``/``span_id``. Files are written whole and renamed
into place, like span files.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from storage.layout import table_dir, write_atomically

TS = pa.timestamp("us", tz="UTC")

SCHEMAS: dict[str, pa.Schema] = {
    "eval_runs": pa.schema([
        ("run_id", pa.string()), ("agent", pa.string()), ("kind", pa.string()), ("dataset", pa.string()),
        ("target", pa.string()), ("judge", pa.string()), ("started_at", TS), ("finished_at", TS),
        ("cases", pa.int64()), ("errors", pa.int64()), ("overall_score", pa.float64()),
        ("dimension_scores", pa.string()),  # JSON: dimension → mean value over the cases that have it
    ]),
    "eval_results": pa.schema([
        ("run_id", pa.string()), ("agent", pa.string()), ("case_id", pa.string()), ("trace_id", pa.string()),
        ("span_id", pa.string()), ("target_trace_id", pa.string()), ("query", pa.string()),
        ("output", pa.string()), ("error", pa.string()), ("latency_ms", pa.float64()),
        ("tool_call_count", pa.int64()), ("overall_score", pa.float64()), ("started_at", TS),
        ("judge_problems", pa.string()),  # why dimensions the judge was asked are missing
    ]),
    "scores": pa.schema([
        ("trace_id", pa.string()), ("span_id", pa.string()), ("evaluator", pa.string()),
        ("dimension", pa.string()), ("value", pa.float64()), ("label", pa.string()),
        ("explanation", pa.string()), ("judge_model", pa.string()), ("time", TS),
        ("eval_run_id", pa.string()), ("eval_case_id", pa.string()),
    ]),
    "eval_events": pa.schema([
        ("event", pa.string()), ("agent", pa.string()), ("run_id", pa.string()),
        ("baseline_run", pa.string()),
        ("dimensions", pa.string()),  # JSON: regressed dimension → delta
        ("time", TS),
    ]),
    "run_marks": pa.schema([
        ("trace_id", pa.string()), ("span_id", pa.string()), ("failure_type", pa.string()),
        ("reason", pa.string()), ("source", pa.string()), ("time", TS),
    ]),
    "alert_events": pa.schema([
        ("time", TS), ("state", pa.string()), ("rule", pa.string()), ("kind", pa.string()),
        ("agent", pa.string()), ("alert_key", pa.string()), ("fired_at", TS), ("value", pa.float64()),
        ("threshold", pa.float64()), ("summary", pa.string()), ("runs", pa.int64()),
        ("affected_users", pa.int64()), ("top_failure_types", pa.string()),  # JSON [[type, count]]
        ("example_trace_ids", pa.string()),  # JSON list
        ("repeats", pa.bool_()), ("resolves", pa.bool_()),
        ("delivered", pa.string()), ("failed", pa.string()),  # JSON: notifier names; {notifier: error}
    ]),
    "eval_baselines": pa.schema([
        ("agent", pa.string()), ("kind", pa.string()), ("run_id", pa.string()), ("pinned_at", TS),
    ]),
}  # fmt: skip


def write_rows(
    data_dir: Path, table: str, tenant: str, when: datetime, rows: list[dict[str, Any]]
) -> Path | None:
    """Append ``rows`` to ``table`` in the partition of ``tenant`` and ``when``'s day."""
    if not rows:
        return None
    directory = table_dir(data_dir, table) / f"tenant={tenant}" / f"date={when.date().isoformat()}"
    return write_atomically(pa.Table.from_pylist(rows, schema=SCHEMAS[table]), directory, "zstd", 3)
