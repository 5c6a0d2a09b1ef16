"""Every command that takes ``--data-dir``, given one it cannot use (a regular file, a directory
that does not exist where one must, one it may not read or write), says so in one line naming
the path and the problem, and exits 2, having done nothing (``cli_common.usable_data_dir``).

The commands run in process (click's runner); ``serve`` as a subprocess. Tests run as root, for
whom every permission check passes, so permission denied is simulated: ``os.access`` denies the
directory, or listing the files under it raises ``PermissionError``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from agentwatch.cli import main

ROOT = Path(__file__).resolve().parents[2]
HINT = "nothing stored there yet (the server writes elsewhere? --data-dir)"
NOT_A_DIRECTORY = "is not a directory (--data-dir names the directory `agentwatch serve` writes)"

# The commands that read a data directory: their arguments, the data directory put in for {d}.
READERS: dict[str, list[str]] = {
    "query": ["query", "--data-dir", "{d}", "SELECT 1"],
    "report": ["report", "--data-dir", "{d}"],
    "cases export": ["cases", "export", "--data-dir", "{d}", "-o", "{out}"],
    "cost": ["cost", "--data-dir", "{d}"],
    "cost export": ["cost", "export", "--data-dir", "{d}", "--month", "2026-11"],
    "eval diff": ["eval", "diff", "--agent", "expense-bot", "--data-dir", "{d}"],
    "eval baseline pin": ["eval", "baseline", "pin", "--agent", "expense-bot", "--data-dir", "{d}"],
    "alerts list": ["alerts", "list", "--data-dir", "{d}"],
}
EVAL_RUN = ["eval", "run", "--agent", "expense-bot", "--dataset", str(ROOT / "examples" / "expense_eval.csv"),
            "--target", "python:examples/expense_agent.py:answer", "--data-dir", "{d}"]  # fmt: skip


def run(argv: list[str], data_dir: Path, tmp_path: Path) -> Result:
    args = [a.format(d=data_dir, out=tmp_path / "cases.jsonl") for a in argv]
    return CliRunner().invoke(main, args, catch_exceptions=False)


def said(result: Result) -> tuple[int, str, str]:
    return result.exit_code, result.stdout, result.stderr


def deny(monkeypatch: pytest.MonkeyPatch, path: Path, mode: int) -> None:
    """``os.access`` answers no for ``mode`` (a bit of it) on ``path``, as it would to a user
    without that permission."""
    real: Callable[..., bool] = os.access

    def access(target: Any, asked: int, *args: Any, **kwargs: Any) -> bool:
        if Path(target) == path and asked & mode:
            return False
        return real(target, asked, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


@pytest.mark.parametrize("command", list(READERS))
def test_a_regular_file(command: str, tmp_path: Path) -> None:
    a_file = tmp_path / "spans.parquet"
    a_file.write_bytes(b"PAR1")
    assert said(run(READERS[command], a_file, tmp_path)) == (
        2, "", f"agentwatch {command}: {a_file} {NOT_A_DIRECTORY}\n"
    )  # fmt: skip


@pytest.mark.parametrize("command", list(READERS))
def test_a_directory_that_does_not_exist(command: str, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert said(run(READERS[command], missing, tmp_path)) == (
        2, "", f"agentwatch {command}: {missing} does not exist: {HINT}\n"
    )  # fmt: skip
    assert not missing.exists()


@pytest.mark.parametrize("command", list(READERS))
def test_a_directory_it_may_not_read(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    deny(monkeypatch, data, os.R_OK)
    assert said(run(READERS[command], data, tmp_path)) == (
        2, "", f"agentwatch {command}: {data} cannot be read: permission denied\n"
    )  # fmt: skip


@pytest.mark.parametrize("command", list(READERS))
def test_a_directory_under_it_that_cannot_be_listed(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import storage.catalog

    data = tmp_path / "data"
    (data / "spans" / "tenant=acme").mkdir(parents=True)

    def live_files(data_dir: Path, table: str) -> list[str]:
        raise PermissionError(13, "Permission denied", str(data / "spans" / "tenant=acme"))

    monkeypatch.setattr(storage.catalog, "live_files", live_files)
    assert said(run(READERS[command], data, tmp_path)) == (
        2, "", f"agentwatch {command}: {data} cannot be read ({data}/spans/tenant=acme): permission denied\n"
    )  # fmt: skip


def test_pinning_a_baseline_needs_to_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    deny(monkeypatch, data, os.W_OK)
    assert said(run(READERS["eval baseline pin"], data, tmp_path)) == (
        2, "", f"agentwatch eval baseline pin: {data} cannot be written: permission denied\n"
    )  # fmt: skip


def test_eval_run_writes_the_data_directory_it_may_create(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_file = tmp_path / "data"
    a_file.write_text("not a directory")
    assert said(run(EVAL_RUN, a_file, tmp_path)) == (
        2,
        "",
        f"agentwatch eval run: {a_file} {NOT_A_DIRECTORY}\n",
    )
    under = a_file / "sub"
    assert said(run(EVAL_RUN, under, tmp_path)) == (
        2, "", f"agentwatch eval run: {under} cannot be created: {a_file} is not a directory\n"
    )  # fmt: skip
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    deny(monkeypatch, readonly, os.W_OK)
    assert said(run(EVAL_RUN, readonly, tmp_path)) == (
        2, "", f"agentwatch eval run: {readonly} cannot be written: permission denied\n"
    )  # fmt: skip
    assert said(run(EVAL_RUN, readonly / "new", tmp_path)) == (
        2, "", f"agentwatch eval run: {readonly / 'new'} cannot be created in {readonly}: permission denied\n"
    )  # fmt: skip
    assert list(readonly.iterdir()) == []


def test_the_reading_commands_still_read_an_empty_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    assert said(run(READERS["query"], data, tmp_path)) == (
        1, "", f"agentwatch query: nothing stored in {data} yet (send some with `agentwatch demo`, "
        "or pass the server's --data-dir)\n",
    )  # fmt: skip
    listed = run(READERS["alerts list"], data, tmp_path)
    assert said(listed) == (0, "no alert events in the last 7d\n", "")



def test_query_reads_a_data_directory_holding_only_eval_tables(tmp_path: Path) -> None:
    """An imported eval history (``eval import-seer``) before any span: the tables are there."""
    from datetime import UTC, datetime

    from storage.tables import EvalBaselineRow, write_rows

    data = tmp_path / "data"
    data.mkdir()
    when = datetime(2026, 11, 30, 9, tzinfo=UTC)
    write_rows(data, "acme", when, [EvalBaselineRow(agent="bot", kind="seer", run_id="seer-1", pinned_at=when)])
    sql = ["query", "--data-dir", str(data), "--format", "csv", "SELECT tenant, run_id FROM eval_baselines"]
    assert said(CliRunner().invoke(main, sql, catch_exceptions=False)) == (0, "tenant,run_id\nacme,seer-1\n", "")


@pytest.mark.process  # serve, as a subprocess
def test_serve_refuses_a_data_directory_it_cannot_use(tmp_path: Path) -> None:
    a_file = tmp_path / "data"
    a_file.write_text("not a directory")
    for data_dir, problem in (
        (a_file, f"{a_file} {NOT_A_DIRECTORY}"),
        (a_file / "sub", f"{a_file / 'sub'} cannot be created: {a_file} is not a directory"),
    ):
        served = subprocess.run(
            [sys.executable, "-m", "agentwatch", "serve", "--data-dir", str(data_dir)],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )  # fmt: skip
        assert (served.returncode, served.stdout, served.stderr) == (2, "", f"agentwatch serve: {problem}\n")
