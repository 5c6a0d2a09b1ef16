"""Compaction merges small files exactly (no span twice, none missed, even mid-swap); retention."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import pyarrow as pa

from agentwatch.model import SPAN_SCHEMA
from agentwatch.pipeline import ExporterSettings
from storage import parquet
from storage.catalog import connect, live_files
from storage.compaction import CompactionConfig, Compactor
from storage.layout import SPANS
from tests.storage.test_catalog import row

NOW = dt.datetime(2025, 11, 22, 12, 0, tzinfo=dt.UTC).timestamp()


def write_files(data_dir: Path, files: int, per_file: int, start: int = 0, day_ms: int = 0) -> None:
    exporter = parquet.create(parquet.Config(), ExporterSettings("parquet", data_dir))
    for f in range(files):
        rows = [
            row(
                f"{(start + f) % 16:x}",
                f"{i % 16:x}",
                None,
                "chat",
                day_ms + i,
                5,
                trace_id=f"{start + f:032x}",
                span_id=f"{i + 1:016x}",
            )
            for i in range(per_file)
        ]
        exporter.consume(pa.Table.from_pylist(rows, schema=SPAN_SCHEMA))


def partition(data_dir: Path, date: str = "2025-11-22") -> Path:
    return data_dir / SPANS / "tenant=acme" / f"date={date}"


def test_small_files_merge_into_one_with_duplicates_dropped(tmp_path: Path) -> None:
    write_files(tmp_path, files=10, per_file=20)
    write_files(tmp_path, files=2, per_file=20)  # the first two files again: 40 duplicate spans
    assert len(list(partition(tmp_path).glob("*.parquet"))) == 12
    assert connect(tmp_path).execute("SELECT count(*) FROM spans").fetchall() == [(240,)]

    compactor = Compactor(CompactionConfig(min_files=8, grace=0), tmp_path)
    stats = compactor.run_once(NOW)
    assert (stats.merges, stats.files_merged, stats.duplicates_removed) == (1, 12, 40)
    con = connect(tmp_path)
    assert con.execute("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans").fetchall() == [
        (200, 200)
    ]
    names = sorted(p.name.split("-")[0] for p in partition(tmp_path).iterdir())
    # The merged file and its sidecar; the replaced inputs stay (not live) until the next pass.
    assert names == ["compact", "compact"] + ["part"] * 12
    compactor.run_once(NOW + 1)
    assert [p.suffix for p in partition(tmp_path).iterdir()] == [".parquet"]
    assert connect(tmp_path).execute(
        "SELECT min(start_time) <= max(start_time), count(*) FROM spans"
    ).fetchall() == [(True, 200)]


def test_a_day_of_small_flushes_leaves_a_handful_of_files(tmp_path: Path) -> None:
    compactor = Compactor(CompactionConfig(min_files=8, grace=0), tmp_path)
    for hour in range(30):  # 300 flushes in all, compacting as the service would
        write_files(tmp_path, files=10, per_file=5, start=hour * 10)
        compactor.run_once(NOW)
    compactor.run_once(NOW + 1)
    files = list(partition(tmp_path).glob("*.parquet"))
    assert len(files) <= 8
    assert connect(tmp_path).execute("SELECT count(*) FROM spans").fetchall() == [(1500,)]


def test_readers_never_see_a_span_twice_or_miss_one_while_files_are_swapped(tmp_path: Path) -> None:
    write_files(tmp_path, files=40, per_file=25)
    expected = [(1000,)]
    seen: list[list[tuple[int]]] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            seen.append(connect(tmp_path).execute("SELECT count(*) FROM spans").fetchall())

    thread = threading.Thread(target=reader)
    thread.start()
    compactor = Compactor(CompactionConfig(min_files=2, grace=0.2, target_file_mib=0.2), tmp_path)
    for step in range(20):
        compactor.run_once(NOW + step * 0.1)
        reads = len(seen)
        while len(seen) < reads + 2 and thread.is_alive():  # let queries overlap every state
            done.wait(0.001)
    done.set()
    thread.join()
    assert len(seen) >= 40
    assert all(result == expected for result in seen)
    assert compactor.stats.files_merged >= 40  # every original file was swapped out under the reader


def test_uncommitted_merge_is_ignored_and_committed_one_finished_at_start(tmp_path: Path) -> None:
    write_files(tmp_path, files=3, per_file=10)
    part = partition(tmp_path)
    inputs = sorted(p.name for p in part.glob("*.parquet"))
    # A merge that died before its commit: sidecar only.
    (part / "compact-dead.json").write_text(json.dumps({"replaces": [inputs[0]]}))
    assert len(live_files(tmp_path, SPANS)) == 3
    compactor = Compactor(CompactionConfig(grace=0), tmp_path)
    compactor.recover()
    compactor.run_once(NOW)
    assert not (part / "compact-dead.json").exists()
    assert sorted(p.name for p in part.glob("part-*.parquet")) == inputs


def test_retention_deletes_old_day_partitions_whole(tmp_path: Path) -> None:
    write_files(tmp_path, files=1, per_file=3)  # 2025-11-22
    write_files(tmp_path, files=1, per_file=3, day_ms=-10 * 86_400_000)  # 2025-11-12
    assert sorted(p.name for p in (tmp_path / SPANS / "tenant=acme").iterdir()) == [
        "date=2025-11-12",
        "date=2025-11-22",
    ]
    compactor = Compactor(CompactionConfig(retention=7 * 86400, grace=0), tmp_path)
    assert compactor.run_once(NOW).partitions_expired == 1
    assert sorted(p.name for p in (tmp_path / SPANS / "tenant=acme").iterdir()) == ["date=2025-11-22"]
    assert connect(tmp_path).execute("SELECT count(*) FROM spans").fetchall() == [(3,)]
