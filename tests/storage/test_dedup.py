"""The deduplication index on its own: bounded, first in first out, seeded from the newest files."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from storage.dedup import RecentSpans, seed_from_parquet, span_key


def key(n: int, tenant: str = "default") -> bytes:
    return span_key(tenant, n.to_bytes(16, "big"), n.to_bytes(8, "big"))


def test_span_key_is_tenant_nul_trace_span() -> None:
    assert span_key("acme", b"\x01" * 16, b"\x02" * 8) == b"acme\0" + b"\x01" * 16 + b"\x02" * 8
    assert key(1, "acme") != key(1, "globex")


def test_the_oldest_keys_are_forgotten_first_past_capacity() -> None:
    recent = RecentSpans(3)
    recent.add_all([key(1), key(2)])
    assert (len(recent), key(1) in recent, key(3) in recent) == (2, True, False)
    recent.add_all([key(3), key(4)])
    assert len(recent) == 3
    assert [key(n) in recent for n in (1, 2, 3, 4)] == [False, True, True, True]
    recent.add_all([key(n) for n in range(10, 20)])  # more than fits at once: the last three stay
    assert [n for n in (2, 3, 4, *range(10, 20)) if key(n) in recent] == [17, 18, 19]


def test_adding_a_known_key_again_changes_nothing() -> None:
    recent = RecentSpans(3)
    recent.add_all([key(1), key(2), key(3)])
    recent.add_all([key(1), key(1), key(3)])  # already known: not moved to the back, not counted twice
    assert len(recent) == 3
    recent.add_all([key(4)])
    assert [key(n) in recent for n in (1, 2, 3, 4)] == [False, True, True, True]
    recent.add_all([key(5), key(5)])
    assert [key(n) in recent for n in (2, 3, 4, 5)] == [False, True, True, True]


def write_spans(data_dir: Path, tenant: str, name: str, ids: list[int], mtime: float) -> None:
    directory = data_dir / "spans" / f"tenant={tenant}" / "date=2025-11-22"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.parquet"
    table = pa.table({
        "trace_id": [n.to_bytes(16, "big").hex() for n in ids],
        "span_id": [n.to_bytes(8, "big").hex() for n in ids],
        "name": [f"s{n}" for n in ids],
    })  # fmt: skip
    pq.write_table(table, path)
    os.utime(path, (mtime, mtime))


def test_seeding_takes_the_tenant_from_the_partition_and_only_recent_files(tmp_path: Path) -> None:
    write_spans(tmp_path, "acme", "one", [1, 2], mtime=1_000)
    write_spans(tmp_path, "globex", "two", [1, 3], mtime=2_000)
    write_spans(tmp_path, "acme", "old", [9], mtime=100)  # before ``since``: not read
    recent = RecentSpans(100)
    assert seed_from_parquet(recent, tmp_path, since=500) == 4
    assert all(k in recent for k in (key(1, "acme"), key(2, "acme"), key(1, "globex"), key(3, "globex")))
    assert len(recent) == 4
    assert [k in recent for k in (key(3, "acme"), key(2, "globex"), key(9, "acme"), key(1))] == [False] * 4


def test_seeding_keeps_the_newest_keys_and_reads_only_what_fits(tmp_path: Path) -> None:
    write_spans(tmp_path, "acme", "oldest", [1, 2], mtime=1_000)
    write_spans(tmp_path, "acme", "middle", [3, 4], mtime=2_000)
    write_spans(tmp_path, "acme", "newest", [5, 6], mtime=3_000)
    recent = RecentSpans(3)
    # newest (2 keys) and middle (4 in all: enough) are chosen; oldest is not read. They are read
    # oldest first, so the index forgets 3 and keeps the newest keys, those a replay needs.
    assert seed_from_parquet(recent, tmp_path, since=0) == 4
    assert [n for n in range(1, 7) if key(n, "acme") in recent] == [4, 5, 6]
    assert len(recent) == 3


def test_a_big_old_file_never_evicts_the_newest_keys(tmp_path: Path) -> None:
    """The soak test's repro: a large merged file a minute old, a small newest file."""
    write_spans(tmp_path, "acme", "compact-old", list(range(1000, 1900)), mtime=2_940)
    write_spans(tmp_path, "acme", "part-newest", list(range(1, 201)), mtime=3_000)
    recent = RecentSpans(1000)
    assert seed_from_parquet(recent, tmp_path, since=2_100) == 1100
    assert all(key(n, "acme") in recent for n in range(1, 201))


def test_seeding_an_empty_data_dir_adds_nothing(tmp_path: Path) -> None:
    recent = RecentSpans(10)
    assert seed_from_parquet(recent, tmp_path, since=0) == 0
    assert len(recent) == 0
