"""``agentwatch cost export``: the chargeback ledger of tests/helpers/usage_spans.py's traffic with a
20% discount for acme and two credits (one of another month), hand-computed, reconciling exactly
with the usage views; every format; data never markup or a spreadsheet formula."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from agentwatch.cli import main
from storage.catalog import connect
from tests.helpers.store import store_spans
from tests.helpers.usage_spans import CONFIG, recorded

CHARGEBACK = """    tenant_multipliers: {acme: 0.8}
chargeback:
  credits:
    - {tenant: acme, month: 2026-05, usd: 0.001, note: "<b>pilot</b> =HYPERLINK(1)"}
    - {tenant: acme, month: 2026-04, usd: 5}
"""
LIST = 0.0059  # runs A, B and C at list price (see usage_spans)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ledger")
    path = root / "agentwatch.yaml"
    path.write_text(f"storage:\n  data_dir: {root / 'data'}\n{CONFIG}{CHARGEBACK}")
    store_spans(path, recorded())
    return path


def export(config: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["cost", "export", "--config", str(config), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_ledger_lines_and_reconciliation(config: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(export(config, "--month", "2026-05"))))
    got = [
        (r["kind"], r["tenant"], r["team"], r["agent"], r["model"], r["calls"], r["input_tokens"],
         round(float(r["list_usd"]), 9), round(float(r["adjustment_usd"]), 9), round(float(r["net_usd"]), 9),
         round(float(r["credits_usd"]), 9), round(float(r["billed_usd"]), 9), r["note"])
        for r in rows
    ]  # fmt: skip
    assert got == [
        ("usage", "acme", "search", "expense-bot", "m1", "3", "3000", LIST, round(-0.2 * LIST, 9),
         round(0.8 * LIST, 9), 0.0, round(0.8 * LIST, 9), ""),
        ("credit", "acme", "(none)", "(none)", "(none)", "0", "0", 0.0, 0.0, 0.0, 0.001, -0.001,
         "<b>pilot</b> =HYPERLINK(1)"),
        ("usage", "globex", "ops", "faq-bot", "m-unknown", "1", "100", 0.0, 0.0, 0.0, 0.0, 0.0, ""),
    ]  # fmt: skip
    # Each tenant's net is what the usage views say it spent that month, exactly.
    views = dict(
        connect(config.parent / "data", analyst_views=True)
        .execute("SELECT tenant, coalesce(sum(cost_usd), 0) FROM usage WHERE month = '2026-05-01' GROUP BY ALL")
        .fetchall()
    )
    for tenant in ("acme", "globex"):
        assert sum(float(r["net_usd"]) for r in rows if r["tenant"] == tenant) == pytest.approx(
            views[tenant], abs=1e-15
        )
    parquet = config.parent / "ledger.parquet"
    export(config, "--month", "2026-05", "--format", "parquet", "-o", str(parquet))
    table = pq.read_table(parquet)
    assert table.num_rows == 3
    assert round(sum(table["billed_usd"].to_pylist()), 9) == round(0.8 * LIST - 0.001, 9)


def test_invoice_previews(config: Path) -> None:
    markdown = export(config, "--month", "2026-05", "--format", "markdown", "--tenant", "acme")
    assert "## acme" in markdown and "globex" not in markdown
    assert "| search | expense-bot | m1 | 3 | $0.0059 | -$0.0012 | $0.0047 |" in markdown
    assert "| (none) | credit (&lt;b&gt;pilot&lt;/b&gt; =HYPERLINK(1)) |  |  |  |  | -$0.0010 |" in markdown
    assert "- Credits: -$0.0010" in markdown
    assert "- **Total billed: $0.0037**" in markdown
    html = export(config, "--month", "2026-05", "--format", "html")
    assert "<b>pilot</b>" not in html and "&lt;b&gt;pilot&lt;/b&gt;" in html
    assert html.count("<h2>") == 2
    empty = export(config, "--month", "2026-01", "--format", "markdown")
    assert "No spend and no credits this month." in empty


def test_formula_and_month_errors(config: Path) -> None:
    text = export(config, "--month", "2026-05")
    assert "'<b>pilot</b> =HYPERLINK(1)" not in text  # only a leading = makes a formula
    result = CliRunner().invoke(main, ["cost", "export", "--config", str(config), "--month", "2026-13"])
    assert result.exit_code == 2
    assert "Invalid value for --month: '2026-13' is not YYYY-MM" in result.output
    result = CliRunner().invoke(main, ["cost", "export", "--config", str(config), "--month", "2026-05",
                                       "--format", "parquet"])  # fmt: skip
    assert result.exit_code == 2
    assert "parquet is written to a file: give -o PATH" in result.output
