"""Run partials: ``runs`` is the same whether a trace sits in one file or several, with or without
partials on disk, and through compaction."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from storage.catalog import connect
from storage.compaction.compactor import CompactionConfig, Compactor
from storage.runparts import RUN_PARTS
from tests.helpers.span_rows import export, fixture_rows, split_rows

RUNS = "SELECT * EXCLUDE (models), list_sort(models) AS models FROM runs ORDER BY tenant, trace_id"
NOW = 1_763_812_800.0  # 2025-11-22T12:00:00Z


def runs(data_dir: Path) -> list[tuple[object, ...]]:
    return connect(data_dir).execute(RUNS).fetchall()


def test_a_trace_in_several_files_rolls_up_as_in_one(tmp_path: Path) -> None:
    rows = fixture_rows() + split_rows()
    export(tmp_path / "one", rows)
    export(tmp_path / "many", rows[:3], rows[3:9], rows[9:10], rows[10:12], rows[12:])
    one, many = runs(tmp_path / "one"), runs(tmp_path / "many")
    assert one == many
    got = (
        connect(tmp_path / "many")
        .execute(
            "SELECT outcome, failure_type, failing_span_id, error_message, tool_calls, tool_errors, span_count,"
            " input_tokens, cost_usd, models, user_id, agent_id FROM runs WHERE trace_id = $t",
            {"t": "e" * 32},
        )
        .fetchall()
    )
    assert got == [("degraded", "tool_error", "2" * 16, "boom 1", 2, 2, 4, 7, 0.5, ["claude"], "erin@acme.com",
                    "expense-bot")]  # fmt: skip
    assert connect(tmp_path / "many").execute(
        "SELECT count(*) FROM run_parts WHERE trace_id = $t", {"t": "e" * 32}
    ).fetchall() == [(3,)]  # batches 3, 4 and 5 held its spans


@pytest.mark.process
def test_files_without_partials_are_rolled_up_on_the_fly_and_backfilled(tmp_path: Path) -> None:
    rows = fixture_rows() + split_rows()
    export(tmp_path, rows[:6], rows[6:])
    expected = runs(tmp_path)
    parts = sorted((tmp_path / RUN_PARTS).rglob("*.parquet"))
    parts[0].unlink()  # as if the process died between a span file and its partials
    assert runs(tmp_path) == expected
    shutil.rmtree(tmp_path / RUN_PARTS)
    assert runs(tmp_path) == expected
    compactor = Compactor(CompactionConfig(), tmp_path)
    compactor.sync_parts()
    assert compactor.stats.parts_backfilled == len(parts)
    assert sorted((tmp_path / RUN_PARTS).rglob("*.parquet")) == parts
    assert runs(tmp_path) == expected


@pytest.mark.process
def test_compaction_rolls_partials_up_and_removes_the_replaced_ones(tmp_path: Path) -> None:
    rows = fixture_rows()[:8] + split_rows()  # one tenant and day
    export(tmp_path, *[[r] for r in rows])  # a file per span
    expected = runs(tmp_path)
    parts_dir = tmp_path / RUN_PARTS / "tenant=acme" / "date=2025-11-22"
    assert len(list(parts_dir.glob("*.parquet"))) == 12
    compactor = Compactor(CompactionConfig(min_files=2, grace=0), tmp_path)
    compactor.run_once(NOW)
    assert runs(tmp_path) == expected  # inputs replaced: their partials are not read
    compactor.run_once(NOW)  # grace over: inputs and their partials deleted
    assert [p.name.startswith("compact-") for p in parts_dir.glob("*.parquet")] == [True]
    assert connect(tmp_path).execute("SELECT count(*) FROM run_parts").fetchall() == [(4,)]  # a, b, c, e
    assert runs(tmp_path) == expected
    (parts_dir / "part-orphan.parquet").write_bytes(b"not read")
    compactor.run_once(NOW)
    assert not (parts_dir / "part-orphan.parquet").exists()


def test_report_runs_equal_the_view_with_and_without_split_traces(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from storage.runs import Scope, runs_in

    rows = fixture_rows() + split_rows()
    scope = Scope(datetime(2025, 11, 20, tzinfo=UTC), datetime(2025, 11, 25, tzinfo=UTC))
    columns = "tenant, trace_id, outcome, failure_type, error_message, error_template, duration_ms, user_id"
    for name, batches in (("one", [rows]), ("split", [rows[:3], rows[3:10], rows[10:]])):
        export(tmp_path / name, *batches)
        con = connect(tmp_path / name)
        loaded = runs_in(con, scope)
        assert loaded.count() == 5
        view = con.execute(f"SELECT {columns} FROM runs ORDER BY tenant, trace_id").fetchall()
        assert loaded.query(f"SELECT {columns} FROM runs ORDER BY tenant, trace_id") == view
