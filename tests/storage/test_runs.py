"""The read model of runs (``storage.runs``) on a small data directory written in process by the
parquet exporter: the ``runs`` view, windowed ``RunSet``s, narrowing, texts, marks, one run."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.model import SPAN_SCHEMA
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
    ("a", "acme", "expense-bot", "success", None, None),
    # The run span has no message: the run takes its failing tool's ("deadline exceeded").
    ("b", "acme", "expense-bot", "failure", "tool_timeout", "deadline exceeded"),
    ("c", "acme", "expense-bot", "degraded", "tool_error", "(no message)"),
    ("d", "globex", "(unknown)", "failure", "other_error", "(no message)"),
    ("e", "acme", "expense-bot", "degraded", "tool_error", "boom <n>"),
    ("f", "acme", "faq-bot", "success", None, None),
]
PRODUCTION = ALL[:5]
"""Without f, synthetic: a scope's runs unless it asks for eval traffic."""
EVERY = Scope(WINDOW.since, WINDOW.until, synthetic=None)


def test_the_view_has_the_run_columns_and_outcomes(con: duckdb.DuckDBPyConnection) -> None:
    assert tuple(r[0] for r in con.execute("DESCRIBE runs").fetchall()) == RUN_COLUMNS
    assert {o for (o,) in con.execute("SELECT DISTINCT outcome FROM runs").fetchall()} == set(OUTCOMES)


def test_a_window_has_the_base_columns_and_the_views_runs(con: duckdb.DuckDBPyConnection) -> None:
    runs = runs_in(con, WINDOW)
    assert runs.scope == WINDOW
    assert runs.columns == BASE_COLUMNS
    assert runs.count() == 5
    assert summary(runs) == PRODUCTION
    assert summary(runs_in(con, EVERY)) == ALL
    view = con.execute(
        "SELECT trace_id, span_id, start_time, duration_ms, failing_span_id, error_message FROM runs"
        " WHERE NOT synthetic ORDER BY 1"
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
    ]


def test_the_window_is_half_open_on_the_run_start(con: duckdb.DuckDBPyConnection) -> None:
    runs = runs_in(
        con, Scope(T0 + timedelta(milliseconds=100), T0 + timedelta(milliseconds=300), synthetic=None)
    )
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
    runs = runs_in(con, EVERY, USAGE)
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
    ]


def test_unknown_columns_are_refused(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ValueError, match="not an extra column of runs: prompt, agent"):
        runs_in(con, WINDOW, ("prompt", "agent"))
    assert runs_in(con, WINDOW, ("session_id", "models")).query(
        "SELECT session_id, models FROM runs WHERE trace_id = $t", {"t": "c" * 32}
    ) == [("s9", [])]


def test_within_narrows_without_reloading(con: duckdb.DuckDBPyConnection) -> None:
    runs = runs_in(con, EVERY, USAGE)
    later = runs.within(T0 + timedelta(milliseconds=100), datetime(2025, 11, 23, tzinfo=UTC))
    assert [r[0] for r in summary(later)] == ["b", "c", "f"]
    assert later.scope == Scope(
        T0 + timedelta(milliseconds=100), datetime(2025, 11, 23, tzinfo=UTC), synthetic=None
    )
    acme = runs.within(tenant="acme", synthetic=False)
    assert [r[0] for r in summary(acme)] == ["a", "b", "c", "e"]
    assert [r[0] for r in summary(runs.within(synthetic=True))] == ["f"]
    # Narrowed twice; the caller's own parameters and WITH clause beside the set's.
    bot = acme.within(T0 + timedelta(milliseconds=50), agent="expense-bot")
    assert (bot.scope.agent, bot.scope.tenant, bot.scope.since, bot.scope.synthetic) == (
        "expense-bot",
        "acme",
        T0 + timedelta(milliseconds=50),
        False,
    )
    assert bot.query(
        "WITH failed AS (SELECT * FROM runs WHERE outcome = $o) SELECT count(*) FROM failed", {"o": "failure"}
    ) == [(1,)]
    assert bot.count() == 2  # b and c (a and e start before 50 ms)
    assert runs.count() == 6  # the set it came from is unchanged
    assert runs.within(agent="(unknown)").query("SELECT tenant FROM runs") == [("globex",)]
    with pytest.raises(ValueError, match="the RunSet's own"):
        bot.query("SELECT $__runs_0", {"__runs_0": 1})


def test_eval_traffic_is_left_out_unless_the_scope_asks_for_it(con: duckdb.DuckDBPyConnection) -> None:
    production = runs_in(con, WINDOW)
    assert (production.count(), production.synthetic_left_out()) == (5, 1)
    assert production.query("SELECT count(*) FROM runs WHERE synthetic") == [(0,)]
    # Narrowing never widens: a production set has no synthetic runs.
    assert production.within(synthetic=True).count() == 0
    assert production.within(synthetic=False).count() == 5
    assert production.within(agent="faq-bot").synthetic_left_out() == 1
    assert production.within(agent="expense-bot").synthetic_left_out() == 0
    evals = runs_in(con, Scope(WINDOW.since, WINDOW.until, synthetic=True))
    assert [r[0] for r in summary(evals)] == ["f"]
    assert evals.synthetic_left_out() == 0
    every = runs_in(con, EVERY)
    assert (every.count(), every.synthetic_left_out(), every.within(synthetic=True).count()) == (6, 0, 1)
    assert every.within(synthetic=True).scope.synthetic is True
    assert Scope.last(timedelta(hours=1), now=T0).synthetic is False


def test_two_sets_on_one_connection_and_drop(con: duckdb.DuckDBPyConnection) -> None:
    every, globex = runs_in(con, WINDOW), runs_in(con, Scope(WINDOW.since, WINDOW.until, tenant="globex"))
    assert (every.count(), globex.count()) == (5, 1)
    globex.drop()
    with pytest.raises(duckdb.CatalogException):
        globex.count()
    assert every.count() == 5
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
        # failed: kept as it was
        ("b", "failure", "tool_timeout", "3", "deadline exceeded", "deadline exceeded"),
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


# -- what a run is, as the instrumentations emit runs ------------------------------------------

RUN = (
    "SELECT agent_id, agent_name, agents, name, outcome, failure_type, failing_span_id[1:1], error_message,"
    " error_template, tool_calls, tool_errors FROM runs"
)


def stored(tmp_path: Path, *files: list[dict[str, Any]]) -> duckdb.DuckDBPyConnection:
    """A catalog over ``files``: each list of rows exported as one span file (its own partials)."""
    export(tmp_path, *files)
    return connect(tmp_path)


def agents_sdk(llm_failure: str | None) -> list[dict[str, Any]]:
    """The OpenAI Agents SDK through OpenInference: a workflow AGENT span named by its span name
    (derived) that ends OK, the agent span with its explicit ``agent.name`` that ends in ERROR
    (``Runner.run`` raised), the model call under it that got a 500."""
    return [
        row("g", "1", None, "agent_run", 0, 1000, name="Agent workflow", agent_name="Agent workflow",
            agent_name_derived=True, user_id="u1"),
        row("g", "2", "1", "agent_run", 10, 900, name="Assistant", agent_name="Assistant",
            agent_name_derived=False, status="error", status_message="Error in agent run"),
        row("g", "3", "2", "chat", 20, 800, name="response", model="gpt-4o", status="error",
            failure_type=llm_failure, error_message="Error code: 500 - upstream overloaded"),
    ]  # fmt: skip


@pytest.mark.parametrize("split", [False, True], ids=["one file", "workflow span in a file of its own"])
def test_a_failed_agent_under_an_ok_workflow_fails_the_run_of_the_explicit_agent(
    tmp_path: Path, split: bool
) -> None:
    spans = agents_sdk("dependency_unavailable")
    # The workflow span ends last: exported in a later batch, it can reach another file.
    con = stored(tmp_path, spans[1:], spans[:1]) if split else stored(tmp_path, spans)
    expected = [
        (None, "Assistant", ["Assistant"], "Agent workflow", "failure", "dependency_unavailable",
         "3", "Error code: 500 - upstream overloaded", "Error code: <n> - upstream overloaded", 0, 0),
    ]  # fmt: skip
    assert con.execute(RUN).fetchall() == expected
    assert (
        runs_in(con, WINDOW, ("agent_name", "agents", "name", "tool_calls", "tool_errors")).query(
            RUN.replace("agent_id, ", "NULL AS agent_id, ")
        )
        == expected
    )
    # The agent's own runs hold the whole run, the workflow span's file included.
    runs = runs_in(con, Scope(WINDOW.since, WINDOW.until, agent="Assistant"), ("name",))
    assert runs.query("SELECT agent, name, span_id[1:1], outcome, failing_span_id[1:1] FROM runs") == [
        ("Assistant", "Agent workflow", "1", "failure", "3")
    ]
    assert runs_in(con, Scope(WINDOW.since, WINDOW.until, agent="Agent workflow")).count() == 0


def test_without_a_specific_type_the_step_doing_the_work_is_blamed_not_its_wrapper(tmp_path: Path) -> None:
    con = stored(tmp_path, agents_sdk(None))
    sql = "SELECT outcome, failure_type, failing_span_id[1:1], error_message FROM runs"
    # The model call under the failed agent span, though the agent span starts first.
    assert con.execute(sql).fetchall() == [
        ("failure", "other_error", "3", "Error code: 500 - upstream overloaded")
    ]


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        # a specific failure of a step doing work, though a specific wrapper and a generic step start first
        ((), ("tool_error", "4", "ticket 9 not found")),
        # else a specific wrapper (a sub-agent) before a generic step
        (("4",), ("dependency_unavailable", "2", "Error in agent run: 500")),
        # else a generic step doing work before a generic wrapper
        (("2", "4"), ("other_error", "3", "generic, earliest")),
    ],
)
def test_the_root_cause_is_specific_then_work_then_earliest(
    tmp_path: Path, drop: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    spans = [
        row("w", "1", None, "agent_run", 0, 1000, status="error", failure_type="other_error"),  # the run
        row("w", "2", "1", "agent_run", 10, 900, status="error", failure_type="dependency_unavailable",
            error_message="Error in agent run: 500"),
        row("w", "3", "2", "tool", 20, 10, status="error", error_message="generic, earliest"),
        row("w", "4", "2", "tool", 50, 10, status="error", failure_type="tool_error",
            error_message="ticket 9 not found"),
        row("w", "5", "1", "workflow", 5, 10, status="error", error_message="generic wrapper"),
    ]  # fmt: skip
    con = stored(tmp_path, [s for s in spans if s["span_id"][0] not in drop])
    sql = "SELECT outcome, failure_type, failing_span_id[1:1], error_message FROM runs"
    assert con.execute(sql).fetchall() == [("failure", *expected)]


def test_the_derived_agent_is_the_run_agent_when_no_span_names_one(tmp_path: Path) -> None:
    spans = agents_sdk(None)
    spans[1].update(agent_name=None, agent_name_derived=None)
    con = stored(tmp_path, spans[1:], spans[:1])
    assert con.execute("SELECT agent_name, agents FROM runs").fetchall() == [
        ("Agent workflow", ["Agent workflow"])
    ]
    runs = runs_in(con, Scope(WINDOW.since, WINDOW.until, agent="Agent workflow"))
    assert runs.query("SELECT span_id[1:1], outcome FROM runs") == [("1", "failure")]


def test_an_agent_id_and_the_earliest_explicit_name_make_the_run_agent(tmp_path: Path) -> None:
    """Handoffs: the run belongs to the agent invoked first; every agent named explicitly is
    listed (a derived name only when no agent is named explicitly)."""
    con = stored(
        tmp_path,
        [
            row("i", "1", None, "agent_run", 0, 1000, name="Triage", agent_name="Triage", agent_name_derived=False),
            row("i", "2", "1", "agent_run", 100, 500, name="Billing", agent_name="Billing",
                agent_name_derived=False, agent_id="billing-v2"),
            row("i", "3", "2", "chat", 110, 100, agent_name="Langfuse trace", agent_name_derived=True),
        ],
    )  # fmt: skip
    assert con.execute("SELECT agent_id, agent_name, agents FROM runs").fetchall() == [
        ("billing-v2", "Triage", ["Triage", "billing-v2"])
    ]


GENERIC_OVER_TOOL = [
    row("h", "1", None, "agent_run", 0, 1000, agent_id="bot", status="error", failure_type="other_error",
        error_message="Agent failed: tool raised"),
    row("h", "2", "1", "tool", 100, 50, status="error"),  # failing earlier, with no type
    row("h", "3", "1", "chat", 150, 40, model="gpt-4o"),
    row("h", "4", "1", "tool", 200, 50, status="error", failure_type="tool_error",
        error_message="ticket 4711 not found"),
]  # fmt: skip


@pytest.mark.parametrize("split", [False, True], ids=["one file", "tool span in a file of its own"])
def test_a_generic_run_error_takes_the_type_of_the_earliest_specific_failure(
    tmp_path: Path, split: bool
) -> None:
    spans = GENERIC_OVER_TOOL
    con = stored(tmp_path, spans[:3], spans[3:]) if split else stored(tmp_path, spans)
    expected = [("failure", "tool_error", "4", "ticket 4711 not found", "ticket <n> not found", 2, 2)]
    sql = (
        "SELECT outcome, failure_type, failing_span_id[1:1], error_message, error_template, tool_calls,"
        " tool_errors FROM runs"
    )
    assert con.execute(sql).fetchall() == expected
    assert runs_in(con, WINDOW, ("tool_calls", "tool_errors")).query(sql) == expected
    assert (
        runs_in(con, Scope(WINDOW.since, WINDOW.until, agent="bot"), ("tool_calls", "tool_errors")).query(sql)
        == expected
    )


@pytest.mark.parametrize(
    ("run_type", "run_message", "expected"),
    [
        # The run span's own specific type stays, unless the earliest specific step's error is
        # the one it reports: the same type...
        ("tool_error", "Agent failed: tool raised", ("failure", "tool_error", "4", "ticket 4711 not found")),
        # ...or the step's message passed up (Langfuse: the tool's exception on the agent span)
        ("timeout", "ticket 4711 not found", ("failure", "tool_error", "4", "ticket 4711 not found")),
        (
            "timeout",
            "Tool lookup: ticket 4711 not found",
            ("failure", "tool_error", "4", "ticket 4711 not found"),
        ),
        # A failure of its own: the run span is blamed.
        ("timeout", "Agent failed: tool raised", ("failure", "timeout", "1", "Agent failed: tool raised")),
        ("timeout", None, ("failure", "timeout", "1", None)),
    ],
)
def test_a_run_span_with_a_specific_type_keeps_it_unless_passed_up(
    tmp_path: Path, run_type: str, run_message: str | None, expected: tuple[str, ...]
) -> None:
    spans = [dict(s) for s in GENERIC_OVER_TOOL]
    spans[0].update(failure_type=run_type, error_message=run_message)
    con = stored(tmp_path, spans)
    sql = "SELECT outcome, failure_type, failing_span_id[1:1], error_message FROM runs"
    assert con.execute(sql).fetchall() == [expected]


def test_a_degraded_run_takes_the_earliest_specific_failure_too(tmp_path: Path) -> None:
    spans = [dict(s) for s in GENERIC_OVER_TOOL]
    spans[0].update(status="ok", failure_type=None, error_message=None)
    con = stored(tmp_path, spans)
    assert con.execute("SELECT outcome, failure_type, failing_span_id[1:1] FROM runs").fetchall() == [
        ("degraded", "tool_error", "4")
    ]


def mcp_trace() -> list[dict[str, Any]]:
    """An agent's MCP tool calls as the MCP Python SDK traces them: the client span (kind client)
    and, from the server's service, the server span under it (kind server)."""
    server = {"kind": "server", "service_name": "weather-mcp"}
    return [
        row("m", "1", None, "agent_run", 0, 1000, agent_id="bot"),
        row("m", "2", "1", "mcp_protocol", 5, 5, kind="client", name="MCP send initialize"),
        row("m", "3", "1", "mcp", 10, 100, kind="client", name="MCP send tools/call get_weather",
            tool_name="get_weather"),
        row("m", "4", "1", "mcp", 200, 100, kind="client", name="MCP send tools/call get_alerts",
            tool_name="get_alerts", status="error", error_message="tool failed"),
        row("m", "5", "1", "mcp", 400, 10, kind="client", name="MCP send tools/call ping_host"),  # no server span
        row("m", "6", "1", "tool", 500, 10, name="execute_tool lookup", status="error"),
        # the server side (another service): one span per call, under the client span
        row("m", "7", "2", "mcp_protocol", 6, 3, name="initialize", **server),
        row("m", "8", "3", "mcp", 20, 80, name="tools/call get_weather", tool_name="get_weather", **server),
        row("m", "9", "4", "mcp", 210, 80, name="tools/call get_alerts", tool_name="get_alerts", status="error",
            failure_type="tool_error", **server),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "files",
    [
        [range(9)],
        [range(6), range(6, 9)],  # the server's spans in a file of their own
        [[0, 2, 7], [1, 3, 4, 5, 6, 8]],  # one call's two spans apart, the other's together
        [[8], [0, 1, 2, 3, 4], [5, 6, 7]],
    ],
    ids=["one file", "server apart", "mixed", "three files"],
)
def test_an_mcp_call_counts_once_with_its_client_and_server_spans(
    tmp_path: Path, files: list[Iterable[int]]
) -> None:
    spans = mcp_trace()
    con = stored(tmp_path, *[[spans[i] for i in f] for f in files])
    # get_weather, get_alerts (failed on both sides: one error), ping_host, lookup (failed)
    expected = [("degraded", 4, 2, 9)]
    sql = "SELECT outcome, tool_calls, tool_errors, span_count FROM runs"
    assert con.execute(sql).fetchall() == expected
    extra = ("tool_calls", "tool_errors", "span_count")
    assert runs_in(con, WINDOW, extra).query(sql) == expected
    assert runs_in(con, Scope(WINDOW.since, WINDOW.until, agent="bot"), extra).query(sql) == expected


def test_a_trace_of_protocol_traffic_only_is_no_run(tmp_path: Path) -> None:
    con = stored(
        tmp_path,
        [
            # p: an MCP session's set-up, its HTTP transport included: no run
            row("p", "1", None, "mcp_protocol", 0, 10, kind="client", name="MCP send initialize"),
            row("p", "2", "1", "other", 1, 8, kind="client", name="POST"),
            row("p", "3", "2", "mcp_protocol", 2, 5, kind="server", name="initialize"),
            # q: a protocol span whose trace holds a tool call, in the next file: a run
            row("q", "1", None, "mcp_protocol", 0, 10, name="tools/list"),
            # o: a trace without agent or protocol spans stays a run, as before
            row("o", "1", None, "other", 0, 10, name="GET /health"),
        ],
        [row("q", "2", "1", "mcp", 5, 3, kind="server", name="tools/call x")],
    )
    assert con.execute("SELECT trace_id[1:1], name, tool_calls FROM runs ORDER BY 1").fetchall() == [
        ("o", "GET /health", 0),
        ("q", "tools/list", 1),
    ]
    assert runs_in(con, WINDOW).query("SELECT trace_id[1:1] FROM runs ORDER BY 1") == [("o",), ("q",)]
    assert runs_of_trace(con, "p" * 32) == []


def test_models_are_the_models_called(tmp_path: Path) -> None:
    con = stored(
        tmp_path,
        [
            row("n", "1", None, "agent_run", 0, 1000, agent_id="bot", model="gpt-4o"),  # the request model
            row("n", "2", "1", "chat", 10, 100, model="gpt-4o-2024-08-06"),
            row("n", "3", "1", "embedding", 200, 10, model="text-embedding-3-small"),
            row("n", "4", "1", "tool", 300, 10, model="gpt-4o"),
        ],
        [row("n", "5", "1", "chat", 400, 100, model="gpt-4o-2024-08-06")],
    )
    ((models,),) = con.execute("SELECT models FROM runs").fetchall()
    assert sorted(models) == ["gpt-4o-2024-08-06", "text-embedding-3-small"]


def test_span_files_written_before_agent_name_derived_existed(tmp_path: Path) -> None:
    """Older span files lack the column: rolled up on the fly, their agent names count as explicit."""
    spans = agents_sdk("dependency_unavailable")
    for span in spans:
        del span["agent_name_derived"]
    directory = tmp_path / "spans" / "tenant=acme" / "date=2025-11-22"
    directory.mkdir(parents=True)
    schema = pa.schema([f for f in SPAN_SCHEMA if f.name not in ("tenant", "agent_name_derived")])
    pq.write_table(pa.Table.from_pylist([{k: v for k, v in s.items() if k != "tenant"} for s in spans],
                                        schema=schema), directory / "old.parquet")  # fmt: skip
    con = connect(tmp_path)
    # As before the column: the earliest agent name.
    assert con.execute("SELECT agent_name, agents, outcome, failure_type FROM runs").fetchall() == [
        ("Agent workflow", ["Agent workflow", "Assistant"], "failure", "dependency_unavailable")
    ]


def test_eval_traffic_never_counts_as_production(tmp_path: Path) -> None:
    """Synthetic runs are left out of the report, its signals and cross-user view, the case export
    and the alert rules unless a scope asks for them; the report says how many it left out."""
    from alerting.config import RuleConfig
    from alerting.rules import RuleEvaluator
    from report.cases import case_rows, export_cases, to_case
    from report.formats import synthetic_note
    from report.health import build_report
    from report.signals import clusters

    spans = fixture_rows()
    spans[2].update(input_text="question b")
    evals = {
        "synthetic": True,
        "agent_id": "expense-bot",
        "user_id": "eval@agentwatch",
        "input_text": "eval q",
    }
    for trace, start in (("s", 400), ("t", 500)):  # two failed eval runs of expense-bot
        spans += [
            row(trace, "1", None, "agent_run", start, 100, status="error", **evals),
            row(trace, "2", "1", "tool", start + 10, 50, status="error", failure_type="tool_error",
                error_message="eval fixture 7", synthetic=True),
        ]  # fmt: skip
    con = stored(tmp_path, spans)

    report = build_report(runs_in(con, WINDOW), ())
    assert (report.runs, report.synthetic_left_out) == (4, 2)
    expense = next(a for a in report.agents if a.agent == "expense-bot")
    assert (expense.runs, expense.failures, expense.affected_users, expense.cross_user.other_users_failing) == (
        3, 1, 1, 1,
    )  # fmt: skip
    assert [t.failure_type for t in expense.failure_types] == ["tool_timeout"]
    assert synthetic_note(report) == (
        "2 synthetic (eval) runs left out: production only (--include-synthetic to include them)."
    )
    everything = build_report(runs_in(con, EVERY), ())
    assert (everything.runs, everything.synthetic_left_out) == (6, 0)
    assert synthetic_note(everything) == "Synthetic (eval) runs are included."

    production_signals = [(s.failure_type, s.template, s.count) for s in clusters(runs_in(con, WINDOW))]
    assert ("tool_error", "eval fixture <n>", 2) not in production_signals
    assert ("tool_error", "eval fixture <n>", 2) in [
        (s.failure_type, s.template, s.count) for s in clusters(runs_in(con, EVERY))
    ]

    out = io.BytesIO()
    assert export_cases(runs_in(con, WINDOW, TEXTS), out).written == 1
    (case,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (case["id"], case["tags"]) == ("prod-" + "b" * 32, ["production-failure", "tool_timeout"])
    # Asked for, eval runs are exported as what they are: never production failures.
    eval_cases = [r for r in case_rows(runs_in(con, EVERY, TEXTS)) if r["synthetic"]]
    assert [to_case(r)["id"] for r in eval_cases] == ["eval-" + "s" * 32, "eval-" + "t" * 32]
    assert {tuple(to_case(r)["tags"]) for r in eval_cases} == {("eval-failure", "tool_error")}
    assert to_case(eval_cases[0])["eval_guidance"] == (
        "Answers the request without the eval failure (tool_error: eval fixture 7)"
    )

    rules = RuleEvaluator(runs_in(con, WINDOW, USAGE), T0 + timedelta(hours=1), ())
    (finding,) = rules.findings(
        RuleConfig("failing", "failure_rate", threshold=0.2, window=86400, min_runs=1)
    )
    assert (finding.agent, finding.value, finding.runs, finding.affected_users) == (
        "expense-bot",
        0.3333,
        3,
        1,
    )
    (cross,) = rules.findings(RuleConfig("cross", "cross_user", threshold=1, window=86400))
    assert (cross.agent, cross.value) == ("expense-bot", 1.0)  # bob; eval@agentwatch is no user


NEW_PARTIAL_COLUMNS = ("derived_name", "agents", "agent_failed", "work", "open_calls", "derived_agent")


def as_written_before(part: Path) -> None:
    """Rewrite a partial file as the version before issue 12 wrote it: without the new columns,
    its failing spans without the generic and wrapper fields."""
    old = duckdb.sql(
        f"""SELECT * EXCLUDE ({", ".join(NEW_PARTIAL_COLUMNS)}) REPLACE (
                [{{'at': f.at, 'span_id': f.span_id, 'failure_type': f.failure_type, 'message': f.message,
                   'template': f.template}} FOR f IN failing] AS failing)
            FROM read_parquet('{part}')"""
    ).to_arrow_table()
    pq.write_table(old, part)


def test_partials_written_before_still_read(tmp_path: Path) -> None:
    """Old partials beside new ones (the merge unifies their failing spans): the old rules apply
    to what they lack (the earliest failing step, no agents), the new ones to the rest."""
    con = stored(
        tmp_path, GENERIC_OVER_TOOL[:3], [*GENERIC_OVER_TOOL[3:], *agents_sdk("dependency_unavailable")]
    )
    con.close()
    first = sorted((tmp_path / "run_parts").rglob("*.parquet"), key=lambda p: p.stat().st_mtime)[0]
    as_written_before(first)
    con = connect(tmp_path)
    assert set(NEW_PARTIAL_COLUMNS) <= {r[0] for r in con.execute("DESCRIBE run_parts").fetchall()}
    sql = "SELECT trace_id[1:1], outcome, failure_type, failing_span_id[1:1], agents, tool_calls FROM runs ORDER BY 1"
    assert con.execute(sql).fetchall() == [
        ("g", "failure", "dependency_unavailable", "3", ["Assistant"], 0),
        # h: its old partial's generic tool failure, the new one's tool_error: the specific one
        # (agents come only from partials that list them: the old one names bot, lists none)
        ("h", "failure", "tool_error", "4", [], 2),
    ]


def test_an_agent_is_found_by_its_id_or_its_name(tmp_path: Path) -> None:
    at = T0 + timedelta(hours=1)
    con = stored(
        tmp_path,
        [
            row("j", "1", None, "agent_run", 0, 1000, agent_id="agt_7f3a9c21", agent_name="expense-bot",
                agent_name_derived=False),
            row("k", "1", None, "agent_run", 0, 1000, agent_name="faq-bot", agent_name_derived=False),
            row("m", "1", None, "agent_run", 0, 1000, agent_id="agt_other", agent_name="other-bot",
                agent_name_derived=False),
        ],
    )  # fmt: skip
    window = Scope(at - timedelta(days=2), at + timedelta(days=2))

    def traces(agent: str) -> list[tuple[Any, ...]]:
        scope = Scope(window.since, window.until, agent=agent)
        return runs_in(con, scope).query("SELECT trace_id[1:1], agent FROM runs ORDER BY ALL")

    assert traces("agt_7f3a9c21") == traces("expense-bot") == [("j", "agt_7f3a9c21")]
    assert traces("faq-bot") == [("k", "faq-bot")]
    assert traces("nobody") == []


def test_one_agents_runs_are_the_whole_traces_whatever_the_files(tmp_path: Path) -> None:
    """A router's run whose sub-agent (another agent) failed, the sub-agent's spans in another
    file: one run, the router's, failed, in one agent's scope as in all agents' (before, the
    sub-agent's scope got a run of its own file and the router's scope a run without it)."""
    router = [row("r", "1", None, "agent_run", 0, 3000, agent_id="router-bot", user_id="u1")]
    sub = [row("r", "2", "1", "agent_run", 100, 1000, agent_id="sub-bot", status="error", error_message="no quota")]
    con = stored(tmp_path, router, sub)
    every = runs_in(con, WINDOW).query("SELECT trace_id[1:1], agent, outcome FROM runs")
    assert every == [("r", "router-bot", "failure")]
    assert runs_in(con, Scope(WINDOW.since, WINDOW.until, "router-bot")).query(
        "SELECT trace_id[1:1], agent, outcome, duration_ms FROM runs"
    ) == [("r", "router-bot", "failure", 3000.0)]
    assert runs_in(con, Scope(WINDOW.since, WINDOW.until, "sub-bot")).count() == 0
