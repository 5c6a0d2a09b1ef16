"""Compaction merges small files exactly (no span twice, none missed, even mid-swap), in tiers, in
bounded memory in a worker process that can be killed at any moment; retention."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from core.component import ExporterSettings
from core.model import SPAN_SCHEMA
from exporters import parquet
from storage.catalog import connect, live_files
from storage.compaction.compactor import TMP_DIR, CompactionConfig, Compactor, tier
from storage.compaction.extsort import FAN_IN, ExternalSorter
from storage.compaction.spanmerge import Budget, PartsRoller, merge_span_files
from storage.layout import SPANS
from storage.runparts import PARTS_ROW_GROUP, RUN_PARTS, PartsWriter, parts_path
from tests.helpers.span_files import day_start, replica, template, write_small_files
from tests.helpers.span_rows import row

NOW = dt.datetime(2025, 11, 22, 12, 0, tzinfo=dt.UTC).timestamp()
DAY = day_start("2025-11-22")
ROOT = Path(__file__).resolve().parents[2]


def inline(**settings: Any) -> CompactionConfig:
    """Merges on the calling thread: the same code and memory bound, without a process per pass."""
    return CompactionConfig(worker="inline", **settings)


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


def spans(data_dir: Path) -> list[tuple[int, int]]:
    return (
        connect(data_dir)
        .execute("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans")
        .fetchall()
    )


def leftovers(data_dir: Path) -> list[str]:
    """Temporaries and merge outputs anywhere under the data directory."""
    names = [p.relative_to(data_dir) for p in data_dir.rglob("*") if p.is_file()]
    return sorted(
        str(n) for n in names if ".tmp" in n.name or n.name.startswith("compact-") or TMP_DIR in str(n)
    )


# -- exact merges ---------------------------------------------------------------------------------
def test_small_files_merge_into_one_with_duplicates_dropped(tmp_path: Path) -> None:
    write_files(tmp_path, files=10, per_file=20)
    write_files(tmp_path, files=2, per_file=20)  # the first two files again: 40 duplicate spans
    assert len(list(partition(tmp_path).glob("*.parquet"))) == 12
    assert connect(tmp_path).execute("SELECT count(*) FROM spans").fetchall() == [(240,)]

    compactor = Compactor(inline(min_files=8, grace=0), tmp_path)
    stats = compactor.run_once(NOW)
    assert (stats.merges, stats.files_merged, stats.duplicates_removed) == (1, 12, 40)
    assert spans(tmp_path) == [(200, 200)]
    names = sorted(p.name.split("-")[0] for p in partition(tmp_path).iterdir())
    # The merged file and its sidecar; the replaced inputs stay (not live) until the next pass.
    assert names == ["compact", "compact"] + ["part"] * 12
    compactor.run_once(NOW + 1)
    assert [p.suffix for p in partition(tmp_path).iterdir()] == [".parquet"]
    assert connect(tmp_path).execute(
        "SELECT min(start_time) <= max(start_time), count(*) FROM spans"
    ).fetchall() == [(True, 200)]


def priced(table: pa.Table, first: int) -> pa.Table:
    """``table`` with a cost on every span, in 1/8ths (sums of them are exact in any order)."""
    cost = pa.array([((first + i) % 5) / 8 for i in range(table.num_rows)], pa.float64())
    index = table.schema.get_field_index("cost_usd")
    return table.set_column(index, table.schema.field(index), cost)


def merge_inputs(directory: Path) -> list[Path]:
    """20 files of golden spans (18,000 spans), then 2 files of copies of some of them: the
    whole of file 0 again, and 700 rows of file 7 and 300 of file 12 with another name."""
    directory.mkdir(parents=True)
    base = template().slice(0, 9000)
    inputs = []
    for number in range(2):
        table = priced(replica(base, number, DAY), number * 9000)
        for i in range(10):
            inputs.append(directory / f"in-{number * 10 + i:02d}.parquet")
            pq.write_table(table.slice(i * 900, 900).sort_by("start_time"), inputs[-1], compression="zstd")
    inputs.append(directory / "copy-of-00.parquet")
    pq.write_table(pq.read_table(inputs[0]), inputs[-1], compression="zstd")
    renamed = pa.concat_tables(
        [pq.read_table(inputs[7]).slice(100, 700), pq.read_table(inputs[12]).slice(0, 300)]
    )
    renamed = renamed.set_column(
        renamed.schema.get_field_index("name"), "name", pa.array(["late copy"] * 1000)
    )
    inputs.append(directory / "late-copies.parquet")
    pq.write_table(renamed.cast(pq.read_schema(inputs[0])), inputs[-1], compression="zstd")
    return inputs


def first_occurrences(inputs: list[Path]) -> pa.Table:
    """What the merge must hold: each (trace_id, span_id) once, as its earliest input has it."""
    tables = [
        pq.read_table(p).append_column("_order", pa.array([i] * pq.read_metadata(p).num_rows))
        for i, p in enumerate(inputs)
    ]
    con = duckdb.connect()
    con.register("rows", pa.concat_tables(tables))
    query = "SELECT * EXCLUDE (_order) FROM rows QUALIFY row_number() OVER (PARTITION BY trace_id, span_id ORDER BY _order) = 1"
    expected: pa.Table = con.sql(query).to_arrow_table()
    return expected.cast(pq.read_schema(inputs[0])).sort_by(
        [("trace_id", "ascending"), ("span_id", "ascending")]
    )


def partials_in_order(table: pa.Table) -> list[dict[str, Any]]:
    """Partial rows in their stored order, their ``models`` sorted (a set, in no set order)."""
    rows = table.to_pylist()
    for r in rows:
        r["models"] = sorted(r["models"])
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("memory_mib", [256, 2])
def test_merge_is_exact_with_the_inputs_types_and_partials(
    tmp_path: Path, memory_mib: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2 MiB: 18,000 spans (~20 MB in memory) sorted out of core, in more runs than one merge
    takes (two levels of merging); 256 MiB: all in memory. The result is the same."""
    runs: list[Path] = []
    write_run = ExternalSorter._write_run
    monkeypatch.setattr(
        ExternalSorter, "_write_run", lambda self, tables: runs.append(write_run(self, tables)) or runs[-1]
    )
    inputs = merge_inputs(tmp_path / "in")
    output, parts_output = tmp_path / "merged.parquet", tmp_path / "parts.parquet"
    budget = Budget(memory_mib << 20)
    counts = merge_span_files(
        inputs, output, parts_output, budget, tmp_path / "sort", PartsRoller(budget.roll_up)
    )

    assert (counts.rows_in, counts.rows_out) == (18_000 + 900 + 1000, 18_000)
    assert pq.read_schema(output) == pq.read_schema(inputs[0])
    assert pq.read_schema(output).metadata == pq.read_schema(inputs[0]).metadata
    assert pq.read_schema(output) == SPAN_SCHEMA.remove(SPAN_SCHEMA.get_field_index("tenant"))
    merged = pq.read_table(output)
    starts = merged["start_time"].to_numpy()
    assert bool((starts[1:] >= starts[:-1]).all())  # sorted by time
    by_key = merged.sort_by([("trace_id", "ascending"), ("span_id", "ascending")])
    assert by_key.equals(first_occurrences(inputs))  # no span twice, none missed, the first copy kept
    assert pc.sum(pc.equal(merged["name"], "late copy")).as_py() == 0
    assert all(
        pq.read_metadata(output).row_group(i).num_rows <= 131_072
        for i in range(pq.read_metadata(output).num_row_groups)
    )
    assert (len(runs) > FAN_IN) if memory_mib == 2 else (runs == [])
    assert [r for r in runs if r.exists()] == []  # sort runs deleted

    recomputed = PartsWriter(tmp_path).write(
        merged, tmp_path / SPANS / "x.parquet"
    )  # as the exporter writes them
    assert pq.read_schema(parts_output) == pq.read_schema(recomputed)
    assert partials_in_order(pq.read_table(parts_output)) == partials_in_order(pq.read_table(recomputed))
    groups = [
        pq.read_metadata(parts_output).row_group(i).num_rows
        for i in range(pq.read_metadata(parts_output).num_row_groups)
    ]
    exporters = [
        pq.read_metadata(recomputed).row_group(i).num_rows
        for i in range(pq.read_metadata(recomputed).num_row_groups)
    ]
    # Row groups of PARTS_ROW_GROUP partials, as the exporter writes them, unless that is more
    # than an eighth of the budget.
    assert groups == exporters if memory_mib == 256 else max(groups) < PARTS_ROW_GROUP


@pytest.mark.slow
def test_a_merged_partition_has_the_runs_of_its_spans_without_the_copies(tmp_path: Path) -> None:
    inputs = merge_inputs(tmp_path / "in")
    data, reference = tmp_path / "data", tmp_path / "reference"
    for path in inputs:  # in the order they were written: a merge takes the oldest first
        for directory in (data, reference) if path.name.startswith("in-") else (data,):
            target = partition(directory) / f"part-{path.stem}.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    compactor = Compactor(inline(min_files=8, grace=0, memory_limit_mib=32), data)
    compactor.sync_parts()  # as the exporter would have written them
    Compactor(inline(), reference).sync_parts()
    stats = compactor.run_once(NOW)
    assert (stats.merges, stats.files_merged, stats.duplicates_removed) == (1, 22, 1900)
    compactor.run_once(NOW + 1)
    assert [p.name.startswith("compact-") for p in partition(data).glob("*.parquet")] == [True]
    assert spans(data) == [(18_000, 18_000)]
    runs = "SELECT * EXCLUDE (models), list_sort(models) FROM runs ORDER BY trace_id"
    expected = connect(reference).execute(runs).fetchall()
    assert [(len(expected),)] == connect(reference).execute(
        "SELECT count(DISTINCT trace_id) FROM spans"
    ).fetchall()
    assert connect(data).execute(runs).fetchall() == expected  # the late copies' names were dropped


def test_an_unreadable_file_fails_its_merge_only(tmp_path: Path) -> None:
    write_small_files(partition(tmp_path), 8000, 1000, DAY)
    other = tmp_path / SPANS / "tenant=globex" / "date=2025-11-22"
    write_small_files(other, 8000, 1000, DAY)
    (other / "part-zz-broken.parquet").write_bytes(b"PAR1 not really")
    stats = Compactor(inline(min_files=8, grace=0), tmp_path).run_once(NOW)
    assert (stats.merges, stats.files_merged) == (1, 8)  # acme's
    assert stats.tasks_failed == 2  # globex's merge, and the partials of the broken file
    inputs = [f"part-0000-{i:06d}.parquet" for i in range(8)]
    assert sorted(p.name for p in other.iterdir()) == [*inputs, "part-zz-broken.parquet"]
    assert [p for p in leftovers(tmp_path) if "globex" in p] == []


# -- tiers ------------------------------------------------------------------------------------------
def test_merges_go_up_in_tiers_and_leave_bigger_files_alone(tmp_path: Path) -> None:
    small = write_small_files(partition(tmp_path), 4000, 1000, DAY)  # 4 files of 1,000 spans
    first_tier = max(p.stat().st_size for p in small) * 3 // 2
    compactor = Compactor(inline(min_files=4, grace=0, first_tier_mib=first_tier / 2**20), tmp_path)

    def live() -> dict[str, int]:
        compactor.run_once(NOW + 1)  # let the replaced files go
        return {
            Path(f).name: tier(Path(f).stat().st_size, first_tier, 4) for f in live_files(tmp_path, SPANS)
        }

    compactor.run_once(NOW)
    (first,) = live().items()
    assert first[1] == 1
    inode = (partition(tmp_path) / first[0]).stat().st_ino
    for batch in range(1, 4):
        write_small_files(partition(tmp_path), 1000, 1000, DAY, first_replica=batch * 10)  # one small file
        compactor.run_once(NOW)
        assert len(live()) == batch + 1  # ... is not merged into anything yet
        assert (partition(tmp_path) / first[0]).stat().st_ino == inode  # the big file untouched
        write_small_files(partition(tmp_path), 3000, 1000, DAY, first_replica=batch * 10 + 1)
        compactor.run_once(NOW)  # the 4 small files: one more file of tier 1 ...
        tiers = live()
        if batch < 3:
            assert sorted(tiers.values()) == [1] * (batch + 1)
            assert first[0] in tiers
    # ... and the 4th of tier 1 made the tier full: they were merged in the same pass.
    assert list(tiers.values()) == [2]
    # 16 small files, each span rewritten once into tier 1, once into tier 2: 5 merges in all.
    assert (compactor.stats.merges, compactor.stats.files_merged) == (5, 20)
    assert spans(tmp_path) == [(16_000, 16_000)]


def test_tiers_by_size() -> None:
    mib = 2**20
    assert [tier(s, mib, 8) for s in (0, mib - 1, mib, 8 * mib - 1, 8 * mib, 64 * mib)] == [0, 0, 1, 1, 2, 3]


def test_past_days_merge_a_tier_from_two_files(tmp_path: Path) -> None:
    write_small_files(partition(tmp_path, "2025-11-21"), 100, 50, day_start("2025-11-21"))
    write_small_files(partition(tmp_path), 100, 50, DAY)
    stats = Compactor(inline(min_files=8, grace=0), tmp_path).run_once(NOW)
    assert (stats.merges, stats.files_merged) == (1, 2)  # yesterday's two files, not today's
    live = sorted((Path(f).parent.name, Path(f).name.split("-")[0]) for f in live_files(tmp_path, SPANS))
    assert live == [("date=2025-11-21", "compact"), ("date=2025-11-22", "part"), ("date=2025-11-22", "part")]


def test_config_problems_name_the_key() -> None:
    config = CompactionConfig(min_files=1, memory_limit_mib=16, first_tier_mib=0, target_file_mib=0)
    assert config.validate() == [
        "min_files: must be at least 2",
        "target_file_mib: must be positive",
        "first_tier_mib: must be positive",
        "memory_limit_mib: must be at least 32",
    ]
    assert CompactionConfig().validate() == []
    assert (CompactionConfig().memory_limit_mib, CompactionConfig().worker) == (256.0, "process")


# -- memory and the worker process --------------------------------------------------------------
ONE_PASS = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from storage.compaction.compactor import CompactionConfig, Compactor
stats = Compactor(CompactionConfig(grace=0, memory_limit_mib=64), Path(sys.argv[2])).run_once(float(sys.argv[3]))
status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
print(json.dumps({
    "merges": stats.merges, "files": stats.files_merged, "worker_peak_mib": stats.peak_worker_rss_mib,
    "server_peak_mib": int(status["VmHWM"].split()[0]) / 1024,
    "children_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
}))
"""


@pytest.mark.process
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM (Linux)")
def test_a_pass_over_300k_small_spans_stays_in_its_memory_budget(tmp_path: Path) -> None:
    """One pass as the service runs it (a worker process, memory_limit_mib 64) over 300,000
    spans in 300 files (~330 MB in memory): the worker peaks under 64 + 320 MiB (interpreter,
    Arrow and DuckDB ~150 MiB of it), the server side under 256 MiB. Merging in the server
    process, as before, peaked at ~1.7 GiB."""
    write_small_files(partition(tmp_path), 300_000, 1000, DAY)
    result = subprocess.run(
        [sys.executable, "-c", ONE_PASS, str(ROOT), str(tmp_path), str(NOW)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    measured = json.loads(result.stdout)
    assert (measured["merges"], measured["files"]) == (1, 315)
    assert 64 < measured["worker_peak_mib"] < 64 + 320
    assert measured["children_peak_mib"] < 64 + 320  # the kernel's figure, whatever the worker says
    assert measured["server_peak_mib"] < 256
    assert spans(tmp_path) == [(300_000, 300_000)]


def busy_compactor(data_dir: Path, **settings: Any) -> tuple[Compactor, int]:
    """A partition whose merge takes seconds (100,000 spans), a compactor (a worker process) for
    it, and how many files it has."""
    files = write_small_files(partition(data_dir), 100_000, 1000, DAY)
    return Compactor(CompactionConfig(grace=0, **settings), data_dir), len(files)


def wait_for_worker(compactor: Compactor) -> int:
    deadline = time.monotonic() + 30
    while (pid := getattr(compactor.worker, "pid", None)) is None:
        assert time.monotonic() < deadline, "no worker started"
        time.sleep(0.01)
    time.sleep(1.0)  # well into the merge
    return int(pid)


@pytest.mark.process
def test_a_killed_worker_commits_nothing_and_the_next_pass_merges(tmp_path: Path) -> None:
    compactor, files = busy_compactor(tmp_path)
    seen: list[list[tuple[int]]] = []
    done = threading.Event()

    def reader() -> None:  # every span once: 100,000 (both a merged file and its inputs: 200,000)
        while not done.wait(0.1):
            seen.append(connect(tmp_path).execute("SELECT count(*) FROM spans").fetchall())

    threads = [threading.Thread(target=compactor.run_once, args=(NOW,)), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    os.kill(wait_for_worker(compactor), signal.SIGKILL)  # as the OOM killer would
    threads[0].join()
    assert (compactor.stats.worker_failures, compactor.stats.merges) == (1, 0)
    assert leftovers(tmp_path) == []  # no sidecar, no merged file, no temporaries
    assert len(live_files(tmp_path, SPANS)) == files
    stats = compactor.run_once(NOW)  # the next pass does it again
    done.set()
    threads[1].join()
    assert (stats.merges, stats.files_merged, stats.worker_failures) == (1, files, 1)
    assert len(seen) >= 3 and all(s == [(100_000,)] for s in seen)
    compactor.run_once(NOW + 1)
    assert len(live_files(tmp_path, SPANS)) == 1
    assert spans(tmp_path) == [(100_000, 100_000)]


@pytest.mark.process
def test_stop_kills_a_running_merge_at_once(tmp_path: Path) -> None:
    compactor, _ = busy_compactor(tmp_path, interval=0.01)
    compactor.start()
    pid = wait_for_worker(compactor)
    started = time.monotonic()
    compactor.stop()
    assert time.monotonic() - started < 2.0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone, and reaped
    assert (compactor.stats.merges, compactor.stats.worker_failures) == (0, 0)  # stopped, not failed
    assert leftovers(tmp_path) == []
    assert spans(tmp_path) == [(100_000, 100_000)]
    restarted = Compactor(CompactionConfig(grace=0), tmp_path)
    restarted.recover()
    assert restarted.run_once(NOW).merges == 1
    assert spans(tmp_path) == [(100_000, 100_000)]


# -- readers, recovery, retention -------------------------------------------------------------------
@pytest.mark.slow
def test_a_day_of_small_flushes_leaves_a_handful_of_files(tmp_path: Path) -> None:
    compactor = Compactor(inline(min_files=8, grace=0), tmp_path)
    for hour in range(30):  # 300 flushes in all, compacting as the service would
        write_files(tmp_path, files=10, per_file=5, start=hour * 10)
        compactor.run_once(NOW)
    compactor.run_once(NOW + 1)
    files = list(partition(tmp_path).glob("*.parquet"))
    assert len(files) <= 8
    assert connect(tmp_path).execute("SELECT count(*) FROM spans").fetchall() == [(1500,)]


@pytest.mark.slow
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
    compactor = Compactor(inline(min_files=2, grace=0.2, target_file_mib=0.2), tmp_path)
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
    # A merge that died before its commit: sidecar and temporaries only.
    (part / "compact-dead.json").write_text(json.dumps({"replaces": [inputs[0]]}))
    (part / ".compact-dead.parquet.tmp").write_bytes(b"half a file")
    (tmp_path / TMP_DIR / "0123").mkdir(parents=True)
    (tmp_path / TMP_DIR / "0123" / "run-00000.arrow").write_bytes(b"a sort run")
    assert len(live_files(tmp_path, SPANS)) == 3
    compactor = Compactor(inline(grace=0), tmp_path)
    compactor.recover()
    compactor.run_once(NOW)
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in part.glob("part-*.parquet")) == inputs


def test_retention_deletes_old_day_partitions_whole(tmp_path: Path) -> None:
    write_files(tmp_path, files=1, per_file=3)  # 2025-11-22
    write_files(tmp_path, files=1, per_file=3, day_ms=-10 * 86_400_000)  # 2025-11-12
    assert sorted(p.name for p in (tmp_path / SPANS / "tenant=acme").iterdir()) == [
        "date=2025-11-12",
        "date=2025-11-22",
    ]
    compactor = Compactor(inline(retention=7 * 86400, grace=0), tmp_path)
    assert compactor.run_once(NOW).partitions_expired == 1
    assert sorted(p.name for p in (tmp_path / SPANS / "tenant=acme").iterdir()) == ["date=2025-11-22"]
    assert connect(tmp_path).execute("SELECT count(*) FROM spans").fetchall() == [(3,)]
    assert sorted(p.parent.name for p in (tmp_path / RUN_PARTS).rglob("*.parquet")) == ["date=2025-11-22"]
    assert parts_path(tmp_path, next(partition(tmp_path).glob("*.parquet"))).exists()
