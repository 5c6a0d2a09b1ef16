"""The small tables: one typed row per table, the Arrow schema derived from it, the stored
columns and types pinned (readers and the catalog's empty views rely on them)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage.catalog import connect
from storage.tables import SCHEMAS, EvalBaselineRow, RunMarkRow, ScoreRow, write_rows

TS = pa.timestamp("us", tz="UTC")
S, N, F, B = pa.string(), pa.int64(), pa.float64(), pa.bool_()

STORED: dict[str, list[tuple[str, pa.DataType]]] = {
    "feedback_events": [
        ("feedback_id", S), ("trace_id", S), ("span_id", S), ("user_id", S), ("name", S), ("kind", S),
        ("value", F), ("score", F), ("negative", B), ("label", S), ("comment", S), ("time", TS),
        ("received_at", TS), ("source", S), ("metadata", S),
    ],
    "eval_runs": [
        ("run_id", S), ("agent", S), ("kind", S), ("dataset", S), ("target", S), ("judge", S),
        ("started_at", TS), ("finished_at", TS), ("cases", N), ("errors", N), ("overall_score", F),
        ("dimension_scores", S), ("agent_input_tokens", N), ("agent_output_tokens", N), ("agent_cost_usd", F), ("judge_calls", N),
        ("judge_input_tokens", N), ("judge_output_tokens", N), ("judge_cost_usd", F),
    ],
    "eval_results": [
        ("run_id", S), ("agent", S), ("case_id", S), ("trace_id", S), ("span_id", S),
        ("target_trace_id", S), ("query", S), ("output", S), ("error", S), ("latency_ms", F),
        ("tool_call_count", N), ("overall_score", F), ("started_at", TS), ("judge_problems", S),
        ("agent_input_tokens", N), ("agent_output_tokens", N), ("agent_cost_usd", F), ("judge_calls", N),
        ("judge_input_tokens", N), ("judge_output_tokens", N), ("judge_cost_usd", F),
    ],
    "scores": [
        ("trace_id", S), ("span_id", S), ("evaluator", S), ("dimension", S), ("value", F), ("label", S),
        ("explanation", S), ("judge_model", S), ("time", TS), ("eval_run_id", S), ("eval_case_id", S),
        ("spread", F), ("dissent", F), ("votes", S),
    ],
    "judge_calls": [
        ("run_id", S), ("case_id", S), ("trace_id", S), ("span_id", S), ("judge", S), ("member", S),
        ("dimension", S), ("model", S), ("attempt", N), ("ok", B), ("problem", S), ("input_tokens", N),
        ("output_tokens", N), ("cost_usd", F), ("cost_source", S), ("latency_ms", F), ("time", TS),
    ],
    "eval_events": [
        ("event", S), ("agent", S), ("run_id", S), ("baseline_run", S), ("dimensions", S), ("time", TS),
    ],
    "run_marks": [
        ("trace_id", S), ("span_id", S), ("failure_type", S), ("reason", S), ("source", S), ("time", TS),
    ],
    "alert_events": [
        ("time", TS), ("state", S), ("rule", S), ("kind", S), ("agent", S), ("alert_key", S),
        ("fired_at", TS), ("value", F), ("threshold", F), ("summary", S), ("runs", N),
        ("affected_users", N), ("top_failure_types", S), ("example_trace_ids", S), ("repeats", B),
        ("resolves", B), ("delivered", S), ("failed", S), ("agent_name", S),
    ],
    "eval_baselines": [("agent", S), ("kind", S), ("run_id", S), ("pinned_at", TS), ("pinned_by", S)],
}  # fmt: skip


def test_schemas_derived_from_the_rows_are_the_stored_columns() -> None:
    assert {table: list(zip(s.names, s.types, strict=True)) for table, s in SCHEMAS.items()} == STORED
    assert all(field.nullable for schema in SCHEMAS.values() for field in schema)


def test_rows_are_written_with_the_table_schema_and_read_back(tmp_path: Path) -> None:
    when = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
    rows = [
        ScoreRow("t1", "s1", "heuristic", "groundedness", 4.0, "weak", "few sources", "heuristic", when,
                 "run-1", "case-1"),
        ScoreRow("t1", "s1", "metric", "latency_ms", 812.5, None, None, "heuristic", when, None, None),
    ]  # fmt: skip
    path = write_rows(tmp_path, "acme", when, rows)
    assert path is not None and path.parent == tmp_path / "scores" / "tenant=acme" / "date=2025-03-04"
    stored = pq.read_table(path)
    assert stored.schema.equals(SCHEMAS["scores"])
    assert stored.to_pylist()[1] == {
        "trace_id": "t1", "span_id": "s1", "evaluator": "metric", "dimension": "latency_ms", "value": 812.5,
        "label": None, "explanation": None, "judge_model": "heuristic", "time": when, "eval_run_id": None,
        "eval_case_id": None, "spread": None, "dissent": None, "votes": None,
    }  # fmt: skip
    write_rows(tmp_path, "acme", when, [EvalBaselineRow("bot", "baseline", "run-1", when)])
    con = connect(tmp_path)
    assert con.execute("SELECT tenant, agent, kind, run_id FROM eval_baselines").fetchall() == [
        ("acme", "bot", "baseline", "run-1")
    ]
    assert con.execute("SELECT count(*) FROM scores WHERE tenant = 'acme'").fetchall() == [(2,)]


def test_nothing_to_write_writes_nothing_and_tables_are_never_mixed(tmp_path: Path) -> None:
    when = datetime(2025, 3, 4, tzinfo=UTC)
    assert write_rows(tmp_path, "acme", when, []) is None
    assert not any(tmp_path.iterdir())
    mixed = [EvalBaselineRow("bot", "baseline", "r", when), RunMarkRow("t", "s", "x", "y", "z", when)]
    with pytest.raises(TypeError, match="rows of eval_baselines mixed with rows of other tables"):
        write_rows(tmp_path, "acme", when, mixed)


def test_a_column_added_later_reads_null_in_older_files(tmp_path: Path) -> None:
    """alert_events gained ``agent_name``: a file written before it still reads, as null."""
    when = datetime(2025, 3, 4, 5, 6, tzinfo=UTC)
    older = SCHEMAS["alert_events"].remove(SCHEMAS["alert_events"].get_field_index("agent_name"))
    row = {name: None for name in older.names} | {"time": when, "rule": "r", "agent": "agt_1"}
    directory = tmp_path / "alert_events" / "tenant=acme" / "date=2025-03-04"
    directory.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([row], schema=older), directory / "part-old.parquet")
    con = connect(tmp_path)
    assert con.execute("SELECT tenant, agent, agent_name FROM alert_events").fetchall() == [
        ("acme", "agt_1", None)
    ]
