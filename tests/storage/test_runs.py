"""The read model of runs (``storage.runs``) on a small data directory written in process by the
parquet exporter: the ``runs`` view, windowed ``RunSet``s, narrowing, texts, marks, one run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage.catalog import connect
from storage.runs import (
    BASE_COLUMNS,
    OUTCOMES,
    RUN_COLUMNS,
    TEXTS,
    USAGE,
    RunSet,
    Scope,
    runs_in,
    runs_of_trace,
)
from tests.helpers.span_rows import export, fixture_rows, row, split_rows

T0 = datetime(2025, 11, 22, 8, 26, 40, tzinfo=UTC)  # the fixture's first span
WINDOW = Scope(datetime(2025, 11, 22, tzinfo=UTC), datetime(2025, 11, 24, tzinfo=UTC))
SUMMARY = (
    "SELECT trace_id[1:1] AS t, tenant, agent, outcome, failure_type, error_template FROM runs ORDER BY t"
)


def rows() -> list[dict[str, Any]]:
    """Traces a (success), b (failure), c (degraded), d (globex, no agent), e (split over files,
    degraded), f (synthetic, another agent); texts on a and b."""
    spans = fixture_rows() + split_rows()
    spans[0].update(input_text="question a", output_text="answer a")
    spans[2].update(input_text="question b", output_text="sorry")
    spans.append(row("f", "1", None, "agent_run", 300, 5, synthetic=True, agent_id="faq-bot", cost_usd=0.25))
    return spans


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    spans = rows()
    # Trace e's spans land in two files: its failing step e2 in the second, without an agent.
    export(tmp_path, spans[:3], spans[3:10], spans[10:])
    return connect(tmp_path)


def summary(runs: RunSet) -> list[tuple[Any, ...]]:
    return runs.query(SUMMARY)


ALL = [
    ("a", "acme", "expense-bot", "success", None, "(no message)"),
    ("b", "acme", "expense-bot", "failure", "tool_timeout", "(no message)"),
    ("c", "acme", "expense-bot", "degraded", "tool_error", "(no message)"),
    ("d", "globex", "(unknown)", "failure", "other_error", "(no message)"),
    ("e", "acme", "expense-bot", "degraded", "tool_error", "boom <n>"),
    ("f", "acme", "faq-bot", "success", None, "(no message)"),
]


def test_the_view_has_the_run_columns_and_outcomes(con: duckdb.DuckDBPyConnection) -> None:
    assert tuple(r[0] for r in con.execute("DESCRIBE runs").fetchall()) == RUN_COLUMNS
    assert {o for (o,) in con.execute("SELECT DISTINCT outcome FROM runs").fetchall()} == set(OUTCOMES)


def test_a_window_has_the_base_columns_and_the_views_runs(con: duckdb.DuckDBPyConnection) -> None:
    runs = runs_in(con, WINDOW)
    assert runs.scope == WINDOW
    assert runs.columns == BASE_COLUMNS
    assert runs.count() == 6
    assert summary(runs) == ALL
    view = con.execute(
        "SELECT trace_id, span_id, start_time, duration_ms, failing_span_id, error_message FROM runs ORDER BY 1"
    ).fetchall()
    assert (
        runs.query(
            "SELECT trace_id, span_id, start_time, duration_ms, failing_span_id, error_message FROM runs ORDER BY 1"
        )
        == view
    )
    assert runs.rows("SELECT agent, count(*) AS n FROM runs GROUP BY agent ORDER BY agent") == [
        {"agent": "(unknown)", "n": 1},
        {"agent": "expense-bot", "n": 4},
        {"agent": "faq-bot", "n": 1},
    ]


def test_the_window_is_half_open_on_the_run_start(con: duckdb.DuckDBPyConnection) -> None:
    runs = runs_in(con, Scope(T0 + timedelta(milliseconds=100), T0 + timedelta(milliseconds=300)))
    assert [r[0] for r in summary(runs)] == ["b", "c"]  # f starts at 300 ms: out


def test_one_agent_reads_its_traces_agentless_partials(con: duckdb.DuckDBPyConnection) -> None:
    runs = runs_in(con, Scope(WINDOW.since, WINDOW.until, agent="expense-bot"))
    assert summary(runs) == [r for r in ALL if r[2] == "expense-bot"]
    # e's failing step e2 sits in a file of its own without the agent: still in e's run.
    assert runs.query(
        "SELECT failing_span_id, error_message FROM runs WHERE trace_id = $t", {"t": "e" * 32}
    ) == [("2" * 16, "boom 1")]


def test_one_tenant(con: duckdb.DuckDBPyConnection) -> None:
    runs = runs_in(con, Scope(WINDOW.since, WINDOW.until, tenant="globex"))
    assert summary(runs) == [ALL[3]]
    assert runs.scope.tenant == "globex"


def test_usage_columns(con: duckdb.DuckDBPyConnection) -> None:
    runs = runs_in(con, WINDOW, USAGE)
    assert runs.columns == (*BASE_COLUMNS, *USAGE)
    assert runs.query("SELECT trace_id[1:1], synthetic, cost_usd FROM runs ORDER BY 1") == [
        ("a", False, 0.01), ("b", False, None), ("c", False, None), ("d", False, None), ("e", False, 0.5),
        ("f", True, 0.25),
    ]  # fmt: skip


def test_texts_are_read_for_runs_that_did_not_succeed(con: duckdb.DuckDBPyConnection) -> None:
    runs = runs_in(con, WINDOW, TEXTS)
    assert runs.columns == (*BASE_COLUMNS, *TEXTS)
    assert runs.query("SELECT trace_id[1:1], input_text, output_text FROM runs ORDER BY 1") == [
        ("a", None, None),  # succeeded: its texts are not read
        ("b", "question b", "sorry"),
        ("c", None, None),
        ("d", None, None),
        ("e", None, None),
        ("f", None, None),
    ]


def test_unknown_columns_are_refused(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ValueError, match="not an extra column of runs: prompt, agent"):
        runs_in(con, WINDOW, ("prompt", "agent"))
    assert runs_in(con, WINDOW, ("session_id", "models")).query(
        "SELECT session_id, models FROM runs WHERE trace_id = $t", {"t": "c" * 32}
    ) == [("s9", [])]


def test_within_narrows_without_reloading(con: duckdb.DuckDBPyConnection) -> None:
    runs = runs_in(con, WINDOW, USAGE)
    later = runs.within(T0 + timedelta(milliseconds=100), datetime(2025, 11, 23, tzinfo=UTC))
    assert [r[0] for r in summary(later)] == ["b", "c", "f"]
    assert later.scope == Scope(T0 + timedelta(milliseconds=100), datetime(2025, 11, 23, tzinfo=UTC))
    acme = runs.within(tenant="acme", synthetic=False)
    assert [r[0] for r in summary(acme)] == ["a", "b", "c", "e"]
    assert [r[0] for r in summary(runs.within(synthetic=True))] == ["f"]
    # Narrowed twice; the caller's own parameters and WITH clause beside the set's.
    bot = acme.within(T0 + timedelta(milliseconds=50), agent="expense-bot")
    assert (bot.scope.agent, bot.scope.tenant, bot.scope.since) == (
        "expense-bot",
        "acme",
        T0 + timedelta(milliseconds=50),
    )
    assert bot.query(
        "WITH failed AS (SELECT * FROM runs WHERE outcome = $o) SELECT count(*) FROM failed", {"o": "failure"}
    ) == [(1,)]
    assert bot.count() == 2  # b and c (a and e start before 50 ms)
    assert runs.count() == 6  # the set it came from is unchanged
    assert runs.within(agent="(unknown)").query("SELECT tenant FROM runs") == [("globex",)]
    with pytest.raises(ValueError, match="the RunSet's own"):
        bot.query("SELECT $__runs_0", {"__runs_0": 1})


def test_within_synthetic_needs_the_usage_columns(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ValueError, match="USAGE"):
        runs_in(con, WINDOW).within(synthetic=False)


def test_two_sets_on_one_connection_and_drop(con: duckdb.DuckDBPyConnection) -> None:
    every, globex = runs_in(con, WINDOW), runs_in(con, Scope(WINDOW.since, WINDOW.until, tenant="globex"))
    assert (every.count(), globex.count()) == (6, 1)
    globex.drop()
    with pytest.raises(duckdb.CatalogException):
        globex.count()
    assert every.count() == 6
    assert con.execute("SELECT count(*) FROM runs").fetchall() == [(6,)]  # the view is untouched


def test_judges_marks_degrade_successful_runs_everywhere(tmp_path: Path) -> None:
    export(tmp_path, rows())
    marks = tmp_path / "run_marks" / "tenant=acme" / "date=2025-11-22"
    marks.mkdir(parents=True)
    pq.write_table(
        pa.table({
            "trace_id": ["a" * 32, "b" * 32], "failure_type": ["groundedness_drop"] * 2,
            "reason": ["made up", "made up too"],
        }),
        marks / "m.parquet",
    )  # fmt: skip
    con = connect(tmp_path)
    columns = "trace_id[1:1], outcome, failure_type, failing_span_id[1:1], error_message, error_template"
    expected = [
        ("a", "degraded", "groundedness_drop", "1", "made up", "judge: groundedness_drop"),
        ("b", "failure", "tool_timeout", "3", None, "(no message)"),  # failed: kept as it was
    ]
    sql = f"SELECT {columns} FROM runs WHERE trace_id[1:1] IN ('a', 'b') ORDER BY 1"
    assert con.execute(sql).fetchall() == expected
    assert runs_in(con, WINDOW).query(sql) == expected
    assert runs_of_trace(con, "a" * 32)[0]["outcome"] == "degraded"


def test_one_run_by_trace_id(con: duckdb.DuckDBPyConnection) -> None:
    (run,) = runs_of_trace(con, "e" * 32)
    view = con.execute("SELECT * FROM runs WHERE trace_id = $t", {"t": "e" * 32})
    names = [d[0] for d in view.description or []]
    assert run == {**dict(zip(names, view.fetchall()[0], strict=True)), "agent": "expense-bot"}
    assert (run["outcome"], run["span_count"], run["tool_errors"], run["models"]) == (
        "degraded",
        4,
        2,
        ["claude"],
    )
    assert [r["agent"] for r in runs_of_trace(con, "d" * 32, tenant="globex")] == ["(unknown)"]
    assert runs_of_trace(con, "d" * 32, tenant="acme") == []
    assert runs_of_trace(con, "0" * 32) == []
