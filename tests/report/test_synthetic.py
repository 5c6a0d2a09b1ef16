"""``agentwatch report`` and ``cases export`` leave eval traffic (synthetic runs) out unless
``--include-synthetic`` (in process, through click's runner, over rows stored by the exporter)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agentwatch.cli import main
from tests.helpers.span_rows import export, fixture_rows, row

UNTIL = "2025-11-22T12:00:00Z"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """The fixture's production runs (b failed) and two failed eval runs of expense-bot."""
    spans = fixture_rows()
    spans[2].update(input_text="question b")
    evals = {
        "synthetic": True,
        "agent_id": "expense-bot",
        "user_id": "eval@agentwatch",
        "input_text": "eval q",
    }
    for trace, start in (("s", 400), ("t", 500)):
        spans.append(row(trace, "1", None, "agent_run", start, 100, status="error", failure_type="timeout",
                         error_message="eval deadline", **evals))  # fmt: skip
    export(tmp_path, spans)
    return tmp_path


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def report(data: Path, *args: str) -> dict[str, Any]:
    out = cli("report", "--data-dir", str(data), "--since", "1d", "--until", UNTIL, "--format", "json", *args)
    doc: dict[str, Any] = json.loads(out)
    return doc


def test_the_report_leaves_eval_runs_out_and_says_how_many(data: Path) -> None:
    doc = report(data)
    assert (doc["filters"]["synthetic"], doc["synthetic_runs_left_out"], doc["runs"]) == (False, 2, 3)
    (expense,) = doc["agents"]
    assert (expense["runs"], expense["failures"], expense["failure_types"]) == (
        3, 1, [{"failure_type": "tool_timeout", "count": 1, "share": 1.0}],
    )  # fmt: skip
    assert [s["failure_type"] for s in doc["signals"]] == ["tool_timeout", "tool_error"]
    text = cli("report", "--data-dir", str(data), "--since", "1d", "--until", UNTIL)
    assert "2 synthetic (eval) runs left out: production only (--include-synthetic to include them)." in text


def test_include_synthetic_counts_them(data: Path) -> None:
    doc = report(data, "--include-synthetic")
    assert (doc["filters"]["synthetic"], doc["synthetic_runs_left_out"], doc["runs"]) == (None, 0, 5)
    (expense,) = doc["agents"]
    assert (expense["runs"], expense["failures"]) == (5, 3)


def test_cases_export_never_labels_eval_runs_production_failures(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "cases.jsonl"
    base = ("cases", "export", "--data-dir", str(data), "--since", "1d", "--until", UNTIL, "-o", str(out))
    cli(*base)
    assert [(c["id"][:5], c["tags"]) for c in map(json.loads, out.read_text().splitlines())] == [
        ("prod-", ["production-failure", "tool_timeout"]),
    ]
    cli(*base, "--include-synthetic")
    assert [(c["id"][:5], c["tags"]) for c in map(json.loads, out.read_text().splitlines())] == [
        ("prod-", ["production-failure", "tool_timeout"]),
        ("eval-", ["eval-failure", "timeout"]),
        ("eval-", ["eval-failure", "timeout"]),
    ]


def test_cases_export_says_why_it_wrote_no_case(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "cases.jsonl"
    base = ("cases", "export", "--data-dir", str(data), "--until", UNTIL, "-o", str(out))
    nothing = CliRunner().invoke(main, [*base, "--since", "1d", "--agent", "nobody"], catch_exceptions=False)
    assert nothing.exit_code == 0
    assert nothing.output.splitlines() == [
        f"wrote 0 cases to {out}",
        "agentwatch cases export: warning: no runs matched (agent nobody, 2025-11-21 12:00 → 2025-11-22 12:00 UTC)",
    ]
    other = CliRunner().invoke(main, [*base, "--since", "1d", "--cluster", "nosuch"], catch_exceptions=False)
    assert other.exit_code == 0
    assert other.output.splitlines()[1] == (
        "agentwatch cases export: warning: no run of signal nosuch among the 3 runs matched "
        "(2025-11-21 12:00 → 2025-11-22 12:00 UTC)"
    )
