"""How many files one flush of the parquet exporter opens (issue 10: "bound partitions per flush").

Per tenant, ``max_dates_per_flush`` bounds the date partitions; in all, ``max_partitions_per_flush``
bounds them, except that every tenant keeps a partition of its own (tenants never share a file),
so a flush of more tenants than the bound writes one file per tenant and no more. Every span is
written, with its start time untouched, whatever partition it lands in.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.component import ExporterSettings
from core.model import SPAN_SCHEMA
from exporters import parquet
from tests.helpers.span_rows import row

DAY_MS = 86_400_000
TODAY = "2025-11-22"  # the day of span_rows.T0


def spans(layout: dict[str, list[int]]) -> list[dict[str, Any]]:
    """Per tenant, one entry per span: how many days before T0 it started."""
    out = []
    for tenant, days in layout.items():
        for n, back in enumerate(days):
            out.append(row(f"{n % 16:x}", f"{n:x}"[-1], None, "chat", -back * DAY_MS, 1, tenant=tenant))
            out[-1]["span_id"] = f"{n:016x}"
    return out


def split(layout: dict[str, list[int]], **config: int) -> list[tuple[str, str, pa.Table]]:
    table = pa.Table.from_pylist(spans(layout), schema=SPAN_SCHEMA)
    bounds = parquet.Config(**config)  # type: ignore[arg-type]
    return parquet.partitions(table, bounds.max_dates_per_flush, TODAY, bounds.max_partitions_per_flush)


def test_many_tenants_with_many_dates_open_at_most_the_bound() -> None:
    # 20 tenants with spans on 30 days each: 20 x 16 dates (the arrival day among them) = 320 files before.
    layout = {
        f"t{i:02d}": [d for d in range(30) for _ in range(1 + (d == 3 and i == 7) * 50)] for i in range(20)
    }
    parts = split(layout, max_partitions_per_flush=64)
    assert len(parts) == 64
    assert sum(rows.num_rows for _, _, rows in parts) == sum(len(days) for days in layout.values())
    # Every tenant's spans are in its own partitions, and only there.
    assert {tenant for tenant, _, _ in parts} == set(layout)
    # Each tenant has its arrival day; the largest partition of all (t07's 51 spans) kept its date.
    assert {(t, d) for t, d, _ in parts} >= {(t, TODAY) for t in layout} | {("t07", "2025-11-19")}
    unbounded = split(layout, max_partitions_per_flush=1 << 20)
    assert len(unbounded) == 20 * 16


def test_more_tenants_than_the_bound_get_one_partition_each_and_no_more() -> None:
    """2,000 tenants on 3 days each: one file per tenant (6,000 before); tenants are never mixed."""
    layout = {f"tenant-{i}": [0, 1, 2] for i in range(2000)}
    parts = split(layout, max_partitions_per_flush=256)
    assert len(parts) == 2000
    assert Counter(tenant for tenant, _, _ in parts) == Counter(set(layout))
    assert {date for _, date, _ in parts} == {TODAY}
    assert all(rows.num_rows == 3 for _, _, rows in parts)
    # One date per tenant (but different days) keeps its date: still one file per tenant.
    single = split({f"tenant-{i}": [i % 40] for i in range(2000)}, max_partitions_per_flush=256)
    assert len(single) == 2000 and len({date for _, date, _ in single}) == 40


def test_under_the_bound_nothing_moves() -> None:
    layout = {"acme": [0, 0, 1], "globex": [0, 2]}
    parts = split(layout, max_partitions_per_flush=4)
    assert sorted((t, d, rows.num_rows) for t, d, rows in parts) == [
        ("acme", "2025-11-21", 1),
        ("acme", TODAY, 2),
        ("globex", "2025-11-20", 1),
        ("globex", TODAY, 1),
    ]
    fewer = split(layout, max_partitions_per_flush=3)  # the larger extra date keeps its partition
    assert sorted((t, d, rows.num_rows) for t, d, rows in fewer) in (
        [("acme", "2025-11-21", 1), ("acme", TODAY, 2), ("globex", TODAY, 2)],
        [("acme", TODAY, 3), ("globex", "2025-11-20", 1), ("globex", TODAY, 1)],
    )


def test_the_exporter_writes_every_span_with_its_own_start_time(tmp_path: Path) -> None:
    layout = {f"t{i}": list(range(10)) for i in range(8)}
    config = parquet.Config(max_partitions_per_flush=12)
    exporter = parquet.create(config, ExporterSettings("parquet", tmp_path))
    batch = pa.Table.from_pylist(spans(layout), schema=SPAN_SCHEMA)
    exporter.consume(batch)
    exporter.shutdown()
    files = list((tmp_path / "spans").rglob("*.parquet"))
    assert len(files) == 12 == exporter.files_written
    written = pa.concat_tables([pq.read_table(f, partitioning=None) for f in files])
    assert sorted(written["start_time_unix_nano"].to_pylist()) == sorted(
        batch["start_time_unix_nano"].to_pylist()
    )


def test_max_partitions_per_flush_is_validated() -> None:
    assert parquet.Config(max_partitions_per_flush=0).validate() == [
        "max_partitions_per_flush: must be at least 1"
    ]
    assert parquet.Config().max_partitions_per_flush == 256
