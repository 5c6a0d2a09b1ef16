"""Budgets on the cost processor's fixture (tests/processors/test_cost.py): this month's spend
against each budget, ``over_budget`` for a hard one, and the config's errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentwatch.config import parse_config
from core.errors import ConfigError
from spend.budgets import Budget, budget_states, state_dict
from storage.catalog import connect
from tests.helpers.store import store_spans
from tests.processors.test_cost import recorded

NOW = datetime(2026, 3, 25, tzinfo=UTC)  # March: the two claude-opus-4-6 calls, 3.0375 and 1.525


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("budgets")
    path = workdir / "agentwatch.yaml"
    path.write_text(f"storage:\n  data_dir: {workdir / 'data'}\n")
    store_spans(path, recorded())
    return workdir / "data"


def test_spend_against_each_budget(data_dir: Path) -> None:
    budgets = {
        "acme": Budget(monthly_usd=10.0, tenant="acme"),
        "acme-hard": Budget(monthly_usd=4.0, tenant="acme", hard=True),
        "globex": Budget(monthly_usd=1.0, tenant="globex", hard=True),
    }
    states = {s.name: state_dict(s) for s in budget_states(connect(data_dir), budgets, NOW, forecast=False)}
    assert {
        n: (round(s["spend_usd"], 10), round(s["used"], 10), s["over_budget"]) for n, s in states.items()
    } == {
        "acme": (4.5625, 0.45625, False),
        "acme-hard": (4.5625, round(4.5625 / 4.0, 10), True),  # a hard budget, spent: act on it
        "globex": (0.0, 0.0, False),
    }
    assert states["acme"]["month"] == "2026-03" and states["acme"]["forecast"] is None
    # Variance: what is left to spend (negative: over).
    assert round(states["acme"]["variance_usd"], 10) == 5.4375
    assert round(states["acme-hard"]["variance_usd"], 10) == -0.5625
    assert states["acme"]["forecast_variance_usd"] is None
    # The burn: spend to date at the end of each day of March up to the 25th.
    burn = states["acme"]["burn"]
    assert (len(burn), burn[0]["day"], burn[-1]["day"]) == (25, "2026-03-01", "2026-03-25")
    assert [round(p["spend_usd"], 10) for p in burn if p["day"] in ("2026-03-01", "2026-03-02", "2026-03-25")] == [
        3.0375, 3.0375, 4.5625]


def test_the_forecast_says_whether_the_month_ends_over(data_dir: Path) -> None:
    (state,) = budget_states(connect(data_dir), {"acme": Budget(monthly_usd=4.0, tenant="acme")}, NOW)
    assert state.forecast is not None and state.forecast.month_to_date == pytest.approx(4.5625)
    assert state.forecast_over is True  # already past it before the month ends
    doc = state_dict(state)
    assert doc["forecast_variance_usd"] == pytest.approx(4.0 - state.forecast.month_end)


def test_budget_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config("budgets:\n  acme: {tenant: acme, monthly_usd: 0, soft: true}\n", "cfg.yaml", {})
    assert str(raised.value).splitlines() == [
        "cfg.yaml:2: budgets.acme.soft: unknown key",
        "cfg.yaml:2: budgets.acme.monthly_usd: must be more than 0",
    ]
    ok = parse_config("budgets:\n  acme: {tenant: acme, monthly_usd: 500, hard: true}\n", "cfg.yaml", {})
    assert ok.budgets == {"acme": Budget(monthly_usd=500.0, tenant="acme", hard=True)}


def test_budget_levels_and_the_forecast_overrun_fire_once(data_dir: Path) -> None:
    from alerting.alerting import Alerting
    from alerting.config import AlertsConfig, RuleConfig

    rules = (
        RuleConfig("burn", "budget"),  # no threshold: each of the config's budgets, at 50/80/100%
        RuleConfig("overrun", "forecast_overrun"),
    )
    budgets = {
        "acme": Budget(monthly_usd=4.0, tenant="acme"),
        "roomy": Budget(monthly_usd=1000.0, tenant="acme"),
    }
    alerting = Alerting(AlertsConfig(rules=rules), (), data_dir, lambda: NOW, notifiers={}, budgets=budgets)
    first = [(t.state, t.finding.rule, t.finding.key_extra) for t in alerting.run_once()]
    # acme spent 4.5625 of 4 (114%): every level; the forecast's lower bound is past it too.
    # roomy (1,000) is neither.
    assert sorted(first) == [
        ("firing", "burn", "acme@2026-03@0.5"),
        ("firing", "burn", "acme@2026-03@0.8"),
        ("firing", "burn", "acme@2026-03@1"),
        ("firing", "overrun", "acme@2026-03"),
    ]
    assert alerting.run_once() == []  # once per level and month
