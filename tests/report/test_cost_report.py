"""``agentwatch cost`` on the cost processor's fixture (tests/processors/test_cost.py): spend by
model and by tenant, hand-computed, reconciling with each other; unknown models listed. The CLI
runs in process (click's runner), so these numbers are checked in ``make test-fast``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agentwatch.cli import main
from tests.helpers.store import store_spans
from tests.processors.test_cost import recorded

GPT_4O = 0.0075 + 0.007 + 0.123 + 0.0075 + 0.005  # plain, cached, reported, the agent's child, negative
OTHERS = 0.0171 + 0.0399 + 0.014  # claude-sonnet-4 with cache reads, and writes; sonar with its fee
OPUS = 3.0375 + 1.525  # before and after its price change


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("cost")
    path = workdir / "agentwatch.yaml"
    path.write_text(f"storage:\n  data_dir: {workdir / 'data'}\n")
    store_spans(path, recorded())
    return path


def cli(*args: str) -> Result:
    """The CLI, in process."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def cost(config: Path, *args: str) -> str:
    result = cli("cost", "--config", str(config), "--since", "30d", "--until", "2026-03-25T00:00:00Z", *args)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_spend_by_model_and_by_tenant_reconcile(config: Path) -> None:
    # The window (2026-02-23 to 2026-03-25) holds the two claude-opus-4-6 calls only.
    by_model = json.loads(cost(config, "--by", "model", "--format", "json"))
    assert [(r["key"], round(r["spend_usd"], 10), r["count"]) for r in by_model["rows"]] == [
        ("claude-opus-4-6", OPUS, 2)
    ]
    by_tenant = json.loads(cost(config, "--by", "tenant", "--format", "json"))
    assert [(r["key"], round(r["spend_usd"], 10)) for r in by_tenant["rows"]] == [("acme", OPUS)]
    assert by_tenant["total_usd"] == pytest.approx(by_model["total_usd"], abs=1e-12)


def test_a_year_lists_every_model_and_the_unknown_one(config: Path) -> None:
    doc = json.loads(cost(config, "--by", "model", "--format", "json", "--since", "400d"))
    rows = {
        r["key"]: (round(r["spend_usd"], 10), r["count"], r["input_tokens"], r["cached_tokens"])
        for r in doc["rows"]
    }
    assert rows == {
        "claude-opus-4-6": (OPUS, 2, 600_000, 0),
        "claude-sonnet-4": (0.057, 2, 61_400, 51_000),  # inputs count their cache reads and writes
        "gpt-4o": (round(GPT_4O, 10), 5, 3000, 400),  # the negative count is stored as sent
        "our-private-model": (0.0, 1, 1000, 0),
        "sonar": (0.014, 1, 1000, 0),
    }
    assert doc["cost_unknown_model"] == [{"model": "our-private-model", "calls": 1}]
    assert doc["total_usd"] == pytest.approx(OPUS + GPT_4O + OTHERS)
    table = list(csv.reader(io.StringIO(cost(config, "--by", "model", "--format", "csv", "--since", "400d"))))
    assert table[0][:4] == ["model", "spend_usd", "share", "count"]
    assert table[1][0] == "claude-opus-4-6" and float(table[1][1]) == pytest.approx(OPUS)
    text = cost(config, "--by", "model", "--since", "400d")
    assert "cost_unknown_model: our-private-model (1 calls)" in text


def test_month_end_forecast_per_tenant(config: Path) -> None:
    doc = json.loads(cost(config, "--by", "tenant", "--format", "json", "--forecast"))
    (acme,) = doc["forecast"].items()
    tenant, f = acme
    assert tenant == "acme"
    assert f["month_to_date"] == pytest.approx(OPUS)  # March 1 and March 20, before "today" (the 25th)
    assert f["method"] == "Holt-Winters, additive trend and weekly season"  # 24 days since the first spend
    assert f["low"] <= f["month_end"] <= f["high"] and f["month_end"] >= f["month_to_date"]
    bad = cli("cost", "--config", str(config), "--by", "model", "--forecast")
    assert bad.exit_code == 2 and "a forecast is not by model or provider" in bad.stderr
