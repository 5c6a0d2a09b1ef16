"""The analysts' usage and cost views (storage/usage.py) on spans the OpenTelemetry SDK records,
stored through the default pipeline, against values computed by hand.

Prices come from the config (m1: 1.00 input, 0.50 cached input, 2.00 output, per million
tokens), so every cost is exact: run A 800 x 1 + 200 x 0.5 + 500 x 2 = 1,900 micro-dollars, run B
2,000 x 1 = 2,000, run C 1,000 x 2 = 2,000; globex's model has no price.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from storage.catalog import connect
from tests.helpers.store import store_spans
from tests.helpers.usage_spans import CONFIG, recorded


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("usage")
    path = root / "agentwatch.yaml"
    path.write_text(f"storage:\n  data_dir: {root / 'data'}\n{CONFIG}")
    store_spans(path, recorded())
    return root / "data"


def _rows(data: Path, sql: str) -> list[tuple[Any, ...]]:
    rows = connect(data, analyst_views=True).execute(sql).fetchall()
    return [tuple(round(v, 9) if isinstance(v, float) else v for v in row) for row in rows]


def test_usage_has_a_row_per_model_call_with_its_runs_dimensions(data: Path) -> None:
    assert _rows(data, """SELECT tenant, team, agent, user_id, session_id, model, input_tokens, output_tokens,
                                 cached_tokens, cost_usd, cost_source, run_outcome, strftime(hour, '%H:%M')
                          FROM usage ORDER BY time, tenant""") == [
        ("acme", "search", "expense-bot", "u1", "s1", "m1", 1000, 500, 200, 0.0019, "computed", "success", "10:00"),
        ("acme", "search", "expense-bot", "u1", "s1", "m1", 2000, 0, 0, 0.002, "computed", "failure", "10:00"),
        ("globex", "ops", "faq-bot", "u3", None, "m-unknown", 100, 100, 0, None, "unknown", "success", "10:00"),
        ("acme", "search", "expense-bot", "u2", "s2", "m1", 0, 1000, 0, 0.002, "computed", "success", "10:00"),
    ]  # fmt: skip


def test_spend_hourly_rolls_up_by_every_dimension(data: Path) -> None:
    assert _rows(data, """SELECT tenant, team, agent, model, user_id, calls, input_tokens, output_tokens,
                                 cached_tokens, cache_hit_ratio, spend_usd, unpriced_calls
                          FROM spend_hourly ORDER BY tenant, user_id""") == [
        ("acme", "search", "expense-bot", "m1", "u1", 2, 3000, 500, 200, round(200 / 3000, 9), 0.0039, 0),
        ("acme", "search", "expense-bot", "m1", "u2", 1, 0, 1000, 0, None, 0.002, 0),
        ("globex", "ops", "faq-bot", "m-unknown", "u3", 1, 100, 100, 0, 0.0, 0.0, 1),
    ]  # fmt: skip


def test_run_costs_reconcile_with_usage(data: Path) -> None:
    assert _rows(data, """SELECT tenant, team, agent, user_id, outcome, succeeded, spend_usd
                          FROM run_costs ORDER BY time, tenant""") == [
        ("acme", "search", "expense-bot", "u1", "success", True, 0.0019),
        ("acme", "search", "expense-bot", "u1", "failure", False, 0.002),
        ("globex", "ops", "faq-bot", "u3", "success", True, 0.0),
        ("acme", "search", "expense-bot", "u2", "success", True, 0.002),
    ]  # fmt: skip
    # cost per run and per successful run, and the two views' totals agree
    assert _rows(data, """SELECT sum(spend_usd) / count(*), sum(spend_usd) / count(*) FILTER (WHERE succeeded)
                          FROM run_costs WHERE tenant = 'acme'""") == [(round(0.0059 / 3, 9), 0.00295)]
    assert _rows(data, "SELECT sum(cost_usd) FROM usage") == _rows(data, "SELECT sum(spend_usd) FROM run_costs")


def test_sessions_requests_activity_tools_and_concurrency(data: Path) -> None:
    assert _rows(data, """SELECT tenant, session_id, user_id, agent, runs, failed_runs, length_s, spend_usd
                          FROM sessions ORDER BY session_id""") == [
        ("acme", "s1", "u1", "expense-bot", 2, 1, 25.0, 0.0039),
        ("acme", "s2", "u2", "expense-bot", 1, 0, 5.0, 0.002),
    ]
    assert _rows(data, """SELECT strftime(minute, '%H:%M'), tenant, agent, runs, failed_runs, users
                          FROM requests_per_minute ORDER BY minute, tenant""") == [
        ("10:00", "acme", "expense-bot", 2, 1, 1),
        ("10:00", "globex", "faq-bot", 1, 0, 1),
        ("10:01", "acme", "expense-bot", 1, 0, 1),
    ]
    assert _rows(data, """SELECT strftime(day, '%Y-%m-%d'), tenant, runs, users, agents, sessions, spend_usd
                          FROM daily_activity ORDER BY tenant""") == [
        ("2026-05-04", "acme", 3, 2, 1, 2, 0.0059),
        ("2026-05-04", "globex", 1, 1, 1, 0, 0.0),
    ]
    assert _rows(data, """SELECT tenant, agent, tool_name, count(*), count(*) FILTER (WHERE failed)
                          FROM tool_calls GROUP BY ALL""") == [("acme", "expense-bot", "search", 2, 1)]
    # acme: runs A [10:00:00, 10:00:10] and B [10:00:05, 10:00:25] overlap; C alone at 10:01
    assert _rows(data, """SELECT strftime(minute, '%H:%M'), tenant, peak_runs FROM concurrency
                          ORDER BY tenant, minute""") == [
        ("10:00", "acme", 2), ("10:01", "acme", 1), ("10:00", "globex", 1), ("10:01", "globex", 1),
    ]  # fmt: skip


def test_cost_report_and_budgets_by_team(data: Path) -> None:
    from report.cost import cost_columns, cost_report
    from spend.budgets import Budget, budget_states
    from storage.runs import Scope, runs_in

    con = connect(data, analyst_views=True)
    scope = Scope(datetime(2026, 5, 4, tzinfo=UTC), datetime(2026, 5, 5, tzinfo=UTC))
    report = cost_report(runs_in(con, scope, cost_columns("team")), "team")
    assert [(r.key, round(r.spend_usd, 9), r.count, r.spend_per_successful_run) for r in report.rows] == [
        ("search", 0.0059, 3, pytest.approx(0.0059 / 2)),
        ("ops", 0.0, 1, 0.0),  # one successful run, no priced spend
    ]
    assert report.unknown_models == [("m-unknown", 1)]
    budgets = {"search": Budget(monthly_usd=0.01, tenant="acme", team="search", hard=True),
               "ops": Budget(monthly_usd=1.0, team="ops")}  # fmt: skip
    states = {s.name: s for s in budget_states(con, budgets, datetime(2026, 5, 4, 12, tzinfo=UTC), forecast=False)}
    assert (round(states["search"].spend_usd, 9), states["search"].used, states["search"].over_budget) == (
        0.0059, pytest.approx(0.59), False)  # fmt: skip
    assert (states["ops"].spend_usd, states["ops"].over_budget) == (0.0, False)
