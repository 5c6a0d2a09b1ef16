"""``storage.groupcommit``: rows waiting together share one file and its fsyncs; a failed write
fails every caller whose rows it held."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import storage.groupcommit as groupcommit
from storage.groupcommit import GroupCommit
from storage.tables import FeedbackRow, Row, write_rows

WHEN = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def row(n: int, when: datetime = WHEN) -> FeedbackRow:
    return FeedbackRow(f"fb{n}", f"{n:032x}", None, None, "user", "thumbs", 1.0, 1.0, False, None, None,
                       when, when, "api", None)  # fmt: skip


def test_writers_waiting_together_share_one_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate, first_started = threading.Event(), threading.Event()
    real = write_rows

    def held(data_dir: Path, tenant: str, when: datetime, rows: list[Row]) -> Path | None:
        first_started.set()
        assert gate.wait(10)
        return real(data_dir, tenant, when, rows)

    monkeypatch.setattr(groupcommit, "write_rows", held)
    commit = GroupCommit(tmp_path)
    first = threading.Thread(target=commit.write, args=("acme", [row(0)]))
    first.start()
    assert first_started.wait(10)
    # While the first file is written, 19 more callers queue up (two tenants, two days).
    callers = [
        threading.Thread(target=commit.write, args=(tenant, [row(n, WHEN.replace(day=day))]))
        for n, (tenant, day) in enumerate(
            [("acme", 1)] * 10 + [("acme", 2)] * 5 + [("globex", 1)] * 4, start=1
        )
    ]  # fmt: skip
    for caller in callers:
        caller.start()
    while len(commit._waiting) < 19:
        threading.Event().wait(0.01)
    gate.set()
    for thread in (first, *callers):
        thread.join(10)
    files = sorted(str(p.relative_to(tmp_path)).rsplit("/", 1)[0] for p in tmp_path.rglob("*.parquet"))
    assert files == [
        "feedback_events/tenant=acme/date=2026-12-01", "feedback_events/tenant=acme/date=2026-12-01",
        "feedback_events/tenant=acme/date=2026-12-02", "feedback_events/tenant=globex/date=2026-12-01",
    ]  # fmt: skip
    assert commit.files_written == 4
    ids = sorted(i for p in tmp_path.rglob("*.parquet") for i in pq.read_table(p)["feedback_id"].to_pylist())
    assert ids == sorted(f"fb{n}" for n in range(20))


def test_a_failed_write_fails_its_callers_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = write_rows

    def refuse_globex(data_dir: Path, tenant: str, when: datetime, rows: list[Row]) -> Path | None:
        if tenant == "globex":
            raise OSError(28, "No space left on device")
        return real(data_dir, tenant, when, rows)

    monkeypatch.setattr(groupcommit, "write_rows", refuse_globex)
    commit = GroupCommit(tmp_path)
    with pytest.raises(OSError, match="No space left"):
        commit.write("globex", [row(1)])
    commit.write("acme", [row(2)])
    assert [p.parent.name for p in tmp_path.rglob("*.parquet")] == ["date=2026-12-01"]
