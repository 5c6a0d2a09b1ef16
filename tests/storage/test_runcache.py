"""The run cache of closed days (storage.runcache) answers exactly as runs_in does.

A hand-made history over three days (2025-11-20 and -21 closed, -22 open): a run across
midnight inside the closed days, a run across midnight into the open day (its partials on both
sides), a judge's mark on a closed day's run, an eval run, another tenant, and late data for a
closed day written after the cache was built.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dashboard.agent import agent_view
from dashboard.app import dumps
from dashboard.costview import cost_view, leaks_view
from dashboard.operations import operations_view
from dashboard.overview import agents_view, overview_view
from dashboard.reader import Reader
from dashboard.window import Window
from report.health import NAME_COLUMNS, build_report
from storage.catalog import connect
from storage.runcache import CACHE_DIR, RunCache, held_whole_sql
from storage.runs import USAGE, RunSet, Scope, runs_in
from tests.helpers.span_rows import export, row

DAY = 86_400_000
M22 = -30_400_000  # 2025-11-22T00:00:00Z in ms from span_rows.T0 (2025-11-22T08:26:40Z)
M21 = M22 - DAY
M20 = M21 - DAY
OPEN_DAY = datetime(2025, 11, 22, 9, 0, tzinfo=UTC)
"""The tests' now: 2025-11-20 and -21 are closed."""
SINCE = datetime(2025, 11, 19, 12, 0, tzinfo=UTC)
UNTIL = datetime(2025, 11, 22, 12, 0, tzinfo=UTC)
BOT = {"agent_id": "expense-bot", "agent_owner": "alice@acme.com"}
COLUMNS = "trace_id[1:1] AS t, tenant, agent, user_id, outcome, failure_type, failing_span_id[1:1] AS f"


def history() -> list[list[dict[str, Any]]]:
    """Batches as the exporter would get them (each batch: one file per tenant and day)."""
    first = [
        # f: 2025-11-20 10:00, a success
        row("f", "1", None, "agent_run", M20 + 36_000_000, 800, user_id="alice@acme.com", **BOT),
        # g: starts 2025-11-20 23:59:59, a tool fails after midnight: degraded, both days closed
        row("g", "1", None, "agent_run", M21 - 1000, 5000, user_id="bob@acme.com", **BOT),
        row(
            "g",
            "2",
            "1",
            "tool",
            M21 + 2000,
            100,
            status="error",
            failure_type="tool_error",
            error_message="ticket 7 not found",
        ),
        # h: starts 2025-11-21 23:59:58, its model call fails in the open day (the same question
        # as its call before midnight: a retry, $0.25 leaked)
        row("h", "1", None, "agent_run", M22 - 2000, 9000, user_id="carol@acme.com", **BOT),
        row("h", "3", "1", "chat", M22 - 1500, 300, model="gpt-4o", input_tokens=1000, cost_usd=0.25,
            input_text="same q"),
        row(
            "h",
            "2",
            "1",
            "chat",
            M22 + 1000,
            300,
            status="error",
            failure_type="rate_limit",
            error_message="429 retry after 3s",
            model="gpt-4o",
            input_tokens=2000,
            cost_usd=0.5,
            input_text="same q",
        ),
        # i: an eval run (synthetic) on 2025-11-21
        row("i", "1", None, "agent_run", M21 + 43_200_000, 400, synthetic=True, eval_run_id="ev1", **BOT),
        # j: another tenant's failed run on 2025-11-21
        row(
            "j",
            "1",
            None,
            "agent_run",
            M21 + 46_800_000,
            700,
            tenant="globex",
            status="error",
            agent_id="globex-bot",
            user_id="hank@globex.com",
        ),
        # k: the open day's run, timed out
        row(
            "k",
            "1",
            None,
            "agent_run",
            M22 + 3_600_000,
            30_000,
            status="error",
            failure_type="timeout",
            error_message="deadline 30000ms",
            user_id="bob@acme.com",
            **BOT,
        ),
        # l: 2025-11-21 14:00, a success a judge marks
        row("l", "1", None, "agent_run", M21 + 50_400_000, 1200, user_id="dave@acme.com", **BOT),
    ]
    # p: 2025-11-21 16:00, a router's run whose sub-agent (another agent) failed; the
    # sub-agent's span reached another file: the run is the router's, whole, in every view
    router = row("p", "1", None, "agent_run", M21 + 57_600_000, 3000, agent_id="router-bot",
                 user_id="erin@acme.com")  # fmt: skip
    sub = row("p", "2", "1", "agent_run", M21 + 57_601_000, 1000, status="error", error_message="no quota",
              **BOT)  # fmt: skip
    return [[*first, router], [sub]]


def late() -> list[dict[str, Any]]:
    """m: a failed run of 2025-11-20 arriving after the cache was built (a new closed-day file)."""
    return [
        row(
            "m",
            "1",
            None,
            "agent_run",
            M20 + 54_000_000,
            2500,
            status="error",
            failure_type="timeout",
            error_message="deadline 2500ms",
            user_id="erin@acme.com",
            **BOT,
        ),
    ]


def mark(data_dir: Path) -> None:
    marks = data_dir / "run_marks" / "tenant=acme" / "date=2025-11-22"
    marks.mkdir(parents=True)
    pq.write_table(
        pa.table({"trace_id": ["l" * 32], "failure_type": ["groundedness_drop"], "reason": ["made up"]}),
        marks / "m.parquet",
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    for batch in history():
        export(tmp_path, batch)
    mark(tmp_path)
    return tmp_path


def rows_of(runs: RunSet) -> list[tuple[Any, ...]]:
    return runs.query(
        f"SELECT {COLUMNS}, * EXCLUDE (trace_id, tenant, agent, user_id) FROM runs ORDER BY ALL"
    )


def both(
    data_dir: Path, scope: Scope, extra: tuple[str, ...] = NAME_COLUMNS
) -> tuple[RunSet, RunSet, RunCache]:
    con = connect(data_dir)
    cache = RunCache(data_dir, clock=lambda: OPEN_DAY, wait=True)
    return runs_in(con, scope, extra), cache.runs_in(con, scope, extra), cache


def test_cached_runs_are_the_direct_runs(data_dir: Path) -> None:
    direct, cached, cache = both(data_dir, Scope(SINCE, UNTIL))
    assert cache.builds == 1
    expected = [  # by hand
        ("f", "acme", "expense-bot", "alice@acme.com", "success", None, None),
        ("g", "acme", "expense-bot", "bob@acme.com", "degraded", "tool_error", "2"),
        ("h", "acme", "expense-bot", "carol@acme.com", "degraded", "rate_limit", "2"),
        ("j", "globex", "globex-bot", "hank@globex.com", "failure", "other_error", "1"),
        ("k", "acme", "expense-bot", "bob@acme.com", "failure", "timeout", "1"),
        ("l", "acme", "expense-bot", "dave@acme.com", "degraded", "groundedness_drop", "1"),
        ("p", "acme", "router-bot", "erin@acme.com", "failure", "other_error", "2"),
    ]
    sql = f"SELECT {COLUMNS} FROM runs ORDER BY t"
    assert cached.query(sql) == expected
    assert direct.query(sql) == expected
    assert rows_of(cached) == rows_of(direct)
    assert cached.synthetic_left_out() == direct.synthetic_left_out() == 1
    assert build_report(cached, ()) == build_report(direct, ())
    # the eval run when asked for, and every column the cache keeps
    direct, cached, _ = both(
        data_dir, Scope(SINCE, UNTIL, synthetic=None), (*NAME_COLUMNS, "cost_usd", "team")
    )
    assert len(rows_of(cached)) == 8
    assert rows_of(cached) == rows_of(direct)


def test_the_run_across_into_the_open_day_is_merged_live_from_both_sides(data_dir: Path) -> None:
    _, cached, cache = both(data_dir, Scope(SINCE, UNTIL))
    # h's closed partial alone is a success (so cached); with its open partial it is degraded,
    # and counted once
    stored = duckdb.connect(str(cache.closed()), read_only=True)
    assert stored.execute("SELECT outcome FROM runs WHERE trace_id[1:1] = 'h'").fetchall() == [("success",)]
    assert cached.query("SELECT outcome FROM runs WHERE trace_id[1:1] = 'h'") == [("degraded",)]
    assert cached.count() == 7


@pytest.mark.parametrize("tenant", ["acme", "globex"])
def test_one_tenant(data_dir: Path, tenant: str) -> None:
    direct, cached, _ = both(data_dir, Scope(SINCE, UNTIL, tenant=tenant))
    assert rows_of(cached) == rows_of(direct)
    assert {r[1] for r in rows_of(cached)} == {tenant}
    assert build_report(cached, ()) == build_report(direct, ())


@pytest.mark.parametrize(
    "since, until",
    [
        (datetime(2025, 11, 20, 23, 59, 59, tzinfo=UTC), UNTIL),  # g starts on the edge: in
        (datetime(2025, 11, 20, 23, 59, 59, 1, tzinfo=UTC), UNTIL),  # ... and just out
        (datetime(2025, 11, 20, 12, 0, tzinfo=UTC), datetime(2025, 11, 21, 23, 59, 58, tzinfo=UTC)),  # h out
        (SINCE, datetime(2025, 11, 21, 23, 59, 58, 1, tzinfo=UTC)),  # h in
    ],
)
def test_window_edges(data_dir: Path, since: datetime, until: datetime) -> None:
    direct, cached, _ = both(data_dir, Scope(since, until))
    assert rows_of(cached) == rows_of(direct)


def test_late_data_for_a_closed_day_invalidates_and_open_days_do_not(data_dir: Path) -> None:
    cache = RunCache(data_dir, clock=lambda: OPEN_DAY, wait=True)
    first = cache.closed()
    assert cache.builds == 1 and cache.closed() == first and cache.builds == 1
    # a new file in the open day changes nothing cached
    export(data_dir, [row("n", "1", None, "agent_run", M22 + 7_200_000, 100, **BOT)])
    assert cache.closed() == first and cache.builds == 1
    export(data_dir, late())
    con = connect(data_dir)
    cached = cache.runs_in(con, Scope(SINCE, UNTIL), NAME_COLUMNS)
    assert cache.builds == 2 and cache.closed() != first and not first.exists()
    direct = runs_in(con, Scope(SINCE, UNTIL), NAME_COLUMNS)
    assert [r[:5] for r in rows_of(cached) if r[0] in "mn"] == [
        ("m", "acme", "expense-bot", "erin@acme.com", "failure"),
        ("n", "acme", "expense-bot", None, "success"),
    ]
    assert rows_of(cached) == rows_of(direct)
    assert build_report(cached, ()) == build_report(direct, ())
    window = Window(SINCE, UNTIL, None, "custom")
    views = [
        dumps(view(Reader(data_dir, clock=lambda now=now: now), window))  # type: ignore[misc]
        for now in (OPEN_DAY, SINCE - timedelta(days=2))
        for view in (operations_view, agents_view)
    ]
    assert views[:2] == views[2:]
    assert b'"failure_type":"timeout","runs":2' in views[0]  # k and m


def test_the_cache_is_shared_on_disk(data_dir: Path) -> None:
    RunCache(data_dir, clock=lambda: OPEN_DAY, wait=True).closed()
    again = RunCache(data_dir, clock=lambda: OPEN_DAY, wait=True)
    again.closed()
    assert again.builds == 0
    assert len(list((data_dir / CACHE_DIR).glob("*.duckdb"))) == 1


def test_one_agent_from_the_cache_and_texts_from_the_partials(data_dir: Path) -> None:
    con = connect(data_dir)
    cache = RunCache(data_dir, clock=lambda: OPEN_DAY, wait=True)
    texts = cache.runs_in(con, Scope(SINCE, UNTIL), ("input_text",))
    assert texts.cached is None and cache.builds == 0
    assert rows_of(texts) == rows_of(runs_in(con, Scope(SINCE, UNTIL), ("input_text",)))
    found = {}
    for agent in ("expense-bot", "router-bot", "globex-bot", "nobody"):
        for tenant in (None, "acme"):
            scope = Scope(SINCE, UNTIL, agent, tenant)
            cached = cache.runs_in(con, scope, NAME_COLUMNS)
            assert cached.cached is not None and cached.cached.agent == agent
            assert rows_of(cached) == rows_of(runs_in(con, scope, NAME_COLUMNS))
            assert build_report(cached, ()) == build_report(runs_in(con, scope, NAME_COLUMNS), ())
            found[agent, tenant] = sorted(r[0] for r in rows_of(cached))
    assert cache.builds == 1
    # p is the router's run (whole: its sub-agent's failure fails it), not the sub-agent's
    assert found["expense-bot", None] == found["expense-bot", "acme"] == ["f", "g", "h", "k", "l"]
    assert found["router-bot", None] == ["p"]
    assert found["globex-bot", None] == ["j"] and found["globex-bot", "acme"] == []
    assert found["nobody", None] == []
    p = cache.runs_in(con, Scope(SINCE, UNTIL, "router-bot"), NAME_COLUMNS).rows("SELECT outcome FROM runs")
    assert p == [{"outcome": "failure"}]


def test_materialized_and_dropped(data_dir: Path) -> None:
    con = connect(data_dir)
    cache = RunCache(data_dir, clock=lambda: OPEN_DAY, wait=True)
    table = cache.runs_in(con, Scope(SINCE, UNTIL), USAGE, materialize=True)
    view = cache.runs_in(con, Scope(SINCE, UNTIL), USAGE)
    assert rows_of(table) == rows_of(view) == rows_of(runs_in(con, Scope(SINCE, UNTIL), USAGE))
    for runs in (table, view):
        runs.drop()
        with pytest.raises(duckdb.CatalogException):
            runs.count()


@pytest.mark.parametrize("tenant", [None, "acme"])
def test_dashboard_views_answer_the_same_from_the_cache(data_dir: Path, tenant: str | None) -> None:
    """The views with every day open (no cache), today open, and every day closed."""
    window = Window(SINCE, UNTIL, tenant, "custom")
    answers = []
    for now in (SINCE - timedelta(days=2), OPEN_DAY, UNTIL + timedelta(days=30)):
        reader = Reader(data_dir, clock=lambda now=now: now)  # type: ignore[misc]
        reader.run_cache.closed()
        answers.append([
            dumps(view(reader, window))
            for view in (overview_view, agents_view, operations_view, lambda r, w: cost_view(r, w, "agent"),
                         lambda r, w: agent_view(r, w, "expense-bot"), lambda r, w: agent_view(r, w, "router-bot"))
        ])  # fmt: skip
    for i, (a, b, c) in enumerate(zip(*answers, strict=True)):
        assert a == b == c, i


def test_trace_places_and_pages_from_the_cache(data_dir: Path) -> None:
    from dashboard.trace import TraceNotFound, trace_view

    never = Reader(data_dir, clock=lambda: SINCE - timedelta(days=2))  # no closed day
    reader = Reader(data_dir, clock=lambda: OPEN_DAY)
    with reader.connection() as con:
        # before the cache is merged, the partials are scanned: a trace page never merges it
        assert reader.places(con, "g" * 32) == [("acme", datetime(2025, 11, 20).date()),
                                                 ("acme", datetime(2025, 11, 21).date())]  # fmt: skip
    assert reader.run_cache.builds == 0
    reader.run_cache.closed()
    for trace, places in (
        ("g", [("acme", "2025-11-20"), ("acme", "2025-11-21")]),
        ("h", [("acme", "2025-11-21"), ("acme", "2025-11-22")]),
        ("k", [("acme", "2025-11-22")]),
        ("j", [("globex", "2025-11-21")]),
        ("z", []),
    ):
        with reader.connection() as con:
            assert [(t, str(d)) for t, d in reader.places(con, trace * 32)] == places
        for tenants in (None, frozenset({"acme"}), frozenset({"globex"})):
            answers = []
            for r in (never, reader):
                try:
                    answers.append(dumps(trace_view(r, trace * 32, tenants)))
                except TraceNotFound:
                    answers.append(b"not found")
            assert answers[0] == answers[1]
            allowed = bool(places) and (tenants is None or places[0][0] in tenants)
            assert (answers[1] != b"not found") == allowed
    assert b'"outcome":"degraded"' in dumps(trace_view(reader, "h" * 32, None))


def test_a_missing_cache_is_merged_aside_and_views_read_the_partials_meanwhile(data_dir: Path) -> None:
    con = connect(data_dir)
    cache = RunCache(data_dir, clock=lambda: OPEN_DAY)
    direct = runs_in(con, Scope(SINCE, UNTIL), NAME_COLUMNS)
    first = cache.runs_in(con, Scope(SINCE, UNTIL), NAME_COLUMNS)
    assert not first._view  # read as runs_in reads: the cache was not there
    assert rows_of(first) == rows_of(direct)
    cache.join(60)
    assert cache.builds == 1
    then = cache.runs_in(con, Scope(SINCE, UNTIL), NAME_COLUMNS)
    assert then._view and rows_of(then) == rows_of(direct)


def test_views_at_once_and_a_cache_replaced_under_a_reader(data_dir: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    reader = Reader(data_dir, clock=lambda: OPEN_DAY)
    reader.run_cache.closed()
    window = Window(SINCE, UNTIL, None, "custom")
    alone = [dumps(overview_view(reader, window)), dumps(operations_view(reader, window))]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda view: dumps(view(reader, window)), (overview_view, operations_view)))
    assert together == alone
    # A connection holding the old cache keeps reading it when late data makes a new one.
    con = connect(data_dir)
    cache = RunCache(data_dir, clock=lambda: OPEN_DAY)
    before = cache.runs_in(con, Scope(SINCE, UNTIL), NAME_COLUMNS)
    old = rows_of(before)
    export(data_dir, late())
    RunCache(data_dir, clock=lambda: OPEN_DAY, wait=True).closed()
    assert len(list((data_dir / CACHE_DIR).glob("*.duckdb"))) == 1
    assert rows_of(before) == old


@pytest.mark.parametrize("tenant", [None, "acme"])
def test_leaks_from_the_cache_are_the_leaks_of_the_spans(data_dir: Path, tenant: str | None) -> None:
    """h's two calls with the same question, one each side of midnight: read live from both
    days while the day before is closed (h is split), from the spans when none is."""
    window = Window(SINCE, UNTIL, tenant, "custom")
    answers = []
    for now in (SINCE - timedelta(days=2), OPEN_DAY, UNTIL + timedelta(days=30)):
        reader = Reader(data_dir, clock=lambda now=now: now)  # type: ignore[misc]
        reader.run_cache.closed()
        answers.append(leaks_view(reader, window)["leaks"])
    assert answers[0] == answers[1] == answers[2]
    bot = next(x for x in answers[0] if x["agent"] == "expense-bot")
    assert (bot["runs"], bot["spend_usd"], bot["retries_usd"], bot["retried_calls"], bot["wasted_usd"]) == (
        5, 0.75, 0.25, 1, 0.25
    )
    assert (bot["failed_runs_usd"], bot["oversized_calls"], bot["unused_tool_calls"]) == (0, 0, 0)
    assert sorted(x["agent"] for x in answers[0]) == (
        ["expense-bot", "router-bot"] if tenant else ["expense-bot", "globex-bot", "router-bot"]
    )


def test_requeries_and_fallbacks_from_the_cache(tmp_path: Path) -> None:
    """A user asks the same question at 23:58 and 23:59 on 2025-11-21 and once more at 00:01 the
    next day (two requeries: the second across midnight); the second run fell back. The implicit
    view answers the same with no day, one day or every day closed."""
    from dashboard.agent import implicit_view
    from feedback.implicit import ImplicitConfig

    ask = {"user_id": "erin@acme.com", "input_text": "what is my travel budget for december", **BOT}
    fell_back = '{"agent.fallback.reason": "quota", "agent.fallback.to": "small-model"}'
    export(tmp_path, [row("s", "1", None, "agent_run", M22 - 120_000, 500, **ask),
                      row("t", "1", None, "agent_run", M22 - 60_000, 500, attributes=fell_back, **ask)])  # fmt: skip
    export(tmp_path, [row("u", "1", None, "agent_run", M22 + 60_000, 500, **ask)])
    window = Window(SINCE, UNTIL, "acme", "custom")
    answers = []
    for now in (SINCE - timedelta(days=2), OPEN_DAY, UNTIL + timedelta(days=30)):
        reader = Reader(tmp_path, clock=lambda now=now: now)  # type: ignore[misc]
        reader.run_cache.closed()
        answers.append(implicit_view(reader, window, "expense-bot", ImplicitConfig()))
    assert answers[0] == answers[1] == answers[2]
    implicit, fallbacks = answers[0]["implicit"], answers[0]["fallbacks"]
    assert (implicit["runs"], implicit["requeried_runs"]) == (3, 2)
    assert (fallbacks["runs"], fallbacks["fell_back"], fallbacks["reasons"]) == (3, 1, {"quota": 1})


@pytest.mark.process  # a Python process that exits during a merge
def test_a_merge_running_when_the_process_exits_is_stopped_cleanly(data_dir: Path) -> None:
    """The merge runs on a daemon thread; a process exiting during it (serve's shutdown) stops it
    first: exit status 0, no abort from a query still running in the interpreter's teardown."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import sys, time
        from datetime import datetime, UTC
        from pathlib import Path
        from storage.catalog import connect
        from storage.runcache import Derived, RunCache
        slow = Derived("slow", "SELECT s.tenant, s.trace_id FROM __SPANS__ s, range(3000000000) t"
                               " WHERE t.range * 0 = 1")
        cache = RunCache(Path({str(data_dir)!r}), clock=lambda: datetime(2025, 11, 22, 9, tzinfo=UTC),
                         derived=(slow,))
        assert cache._ready(connect(cache.data_dir), cache.cutoff()) is None  # merging aside
        time.sleep(1.5)
        assert cache._merging.is_alive()
        print("exiting", flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "exiting\n"), done.stderr
    assert "terminate" not in done.stderr and "Traceback" not in done.stderr


def test_a_set_from_a_cache_without_a_derived_table_reads_it_from_the_spans(data_dir: Path) -> None:
    from spend.leaks import LEAK_BASE, leaks

    con = connect(data_dir)
    bare = RunCache(data_dir, clock=lambda: OPEN_DAY, wait=True)  # keeps no Derived table
    cached = bare.runs_in(con, Scope(SINCE, UNTIL), ("agent_name",), LEAK_BASE)
    assert cached.cached is not None and cached.cached.derived == frozenset()
    found = leaks(cached)
    assert found == leaks(runs_in(con, Scope(SINCE, UNTIL), ("agent_name",), LEAK_BASE))
    assert next((x.agent, x.retries_usd) for x in found if x.tenant == "acme") == ("expense-bot", 0.25)


def test_derived_rows_of_the_runs_a_snapshot_of_today_holds_whole_come_from_it(data_dir: Path) -> None:
    """Today's files are snapshotted: the runs it holds whole (not across midnight, no span in a
    later file) have their derived rows read from it, the others made live; the numbers are the
    spans' either way, before and after a later file touches a snapshotted run."""
    from dashboard.agent import _steps
    from dashboard.derived import DERIVED
    from spend.leaks import LEAK_BASE, leaks

    retry = {"model": "gpt-4o", "input_tokens": 1000, "cost_usd": 0.125, "input_text": "same"}
    export(data_dir, [row("q", "1", None, "agent_run", M22 + 7_200_000, 900, user_id="ivy@acme.com", **BOT),
                      row("q", "2", "1", "chat", M22 + 7_200_100, 100, **retry),
                      row("q", "3", "1", "chat", M22 + 7_200_300, 100, **retry)])  # fmt: skip
    cache = RunCache(data_dir, clock=lambda: OPEN_DAY, wait=True, derived=DERIVED)
    scope = Scope(SINCE, UNTIL)

    def same_as_the_spans() -> RunSet:
        con = connect(data_dir)
        cached = cache.runs_in(con, scope, ("agent_name",), LEAK_BASE)
        direct = runs_in(con, scope, ("agent_name",), LEAK_BASE)
        assert leaks(cached) == leaks(direct)
        one = cache.runs_in(con, Scope(SINCE, UNTIL, "expense-bot"), NAME_COLUMNS)
        assert _steps(one) == _steps(runs_in(con, Scope(SINCE, UNTIL, "expense-bot"), NAME_COLUMNS))
        return cached

    cached = same_as_the_spans()
    assert cached.cached is not None and cached.cached.today is not None
    held = {t for (t,) in cached.con.execute(held_whole_sql(cached.cached)).fetchall()}
    hashes = dict(cached.query("SELECT trace_id[1:1], hash(tenant, trace_id) FROM runs"))
    assert {hashes["k"], hashes["q"]} <= held and hashes["h"] not in held  # h crosses midnight
    bot = next(x for x in leaks(cached) if x.agent == "expense-bot")
    assert (bot.retries_usd, bot.retried_calls) == (0.375, 2)  # h's 0.25 (live), q's 0.125 (snapshot)
    # a later file with another retry of q: q is no longer held whole; made live, counted once
    export(data_dir, [row("q", "4", "1", "chat", M22 + 7_200_500, 100, **retry)])
    cached = same_as_the_spans()
    assert cached.cached is not None and cached.cached.today is not None
    held = {t for (t,) in cached.con.execute(held_whole_sql(cached.cached)).fetchall()}
    assert hashes["k"] in held and hashes["q"] not in held
    bot = next(x for x in leaks(cached) if x.agent == "expense-bot")
    assert (bot.retries_usd, bot.retried_calls) == (0.5, 3)


def test_a_snapshot_made_against_older_closed_days_is_not_used(data_dir: Path) -> None:
    """Late data for a closed day makes a new closed days' cache: a snapshot of today made against
    the old one could count a trace twice, so a new snapshot is made (now, with ``wait``)."""
    from dashboard.derived import DERIVED
    from spend.leaks import LEAK_BASE, leaks

    cache = RunCache(data_dir, clock=lambda: OPEN_DAY, wait=True, derived=DERIVED)
    scope = Scope(SINCE, UNTIL)
    first = cache.runs_in(connect(data_dir), scope, ("agent_name",), LEAK_BASE).cached
    assert first is not None and first.today is not None
    export(data_dir, late())
    con = connect(data_dir)
    again = cache.runs_in(con, scope, ("agent_name",), LEAK_BASE)
    assert again.cached is not None and again.cached.today not in (None, first.today)
    assert leaks(again) == leaks(runs_in(con, scope, ("agent_name",), LEAK_BASE))
    assert len(list((data_dir / CACHE_DIR / "today").glob("*.duckdb"))) == 1
