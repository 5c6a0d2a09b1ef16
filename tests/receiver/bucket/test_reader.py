"""Reading a local directory through the door: exactly once across restarts and crashes, rewritten
and appended objects, bad lines and a truncated gzip object quarantined with their location."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Future
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.model import Signal
from receiver.bucket.cursor import Cursor, Position
from receiver.bucket.reader import BucketReader, Refused
from receiver.bucket.receiver import Config, build_reader
from receiver.otlp.handler import ExportHandler, ExportResult
from storage.dedup import RecentSpans
from tests.receiver.bucket.fixtures import Door, Loop, export_lines, gzipped, index, workflow_run


def reader_for(
    loop: Loop, door: Door, stored: RecentSpans, src: Path, data: Path, **options: object
) -> BucketReader:
    handler = ExportHandler(door, "bucket/glean", stored)

    def submit(payload: bytes, signal: Signal, items: int) -> Future[ExportResult]:
        return asyncio.run_coroutine_threadsafe(handler.export(payload, "protobuf", None, signal), loop.loop)

    config = Config(url=str(src), mapping="workflow_run", **options)  # type: ignore[arg-type]
    return build_reader(config, data, "bucket/glean", submit)


def quarantined(data: Path) -> list[dict[str, object]]:
    path = data / "bucket" / "bucket_glean" / "quarantine.jsonl"
    entries = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    for entry in entries:
        del entry["time"], entry["generation"]
    return entries


def test_an_export_with_bad_lines_and_a_truncated_gzip_object(tmp_path: Path, loop: Loop) -> None:
    src, data = tmp_path / "bucket", tmp_path / "data"
    src.mkdir()
    good = export_lines(range(0, 10), failed_every=4)
    first = good[: good.index(b"\n", 2000) + 1]
    (src / "2026-11-30T10.json").write_bytes(first + b"{not json\n" + b"[1, 2]\n" + good[len(first) :])
    whole = gzipped(export_lines(range(10, 20)))
    (src / "2026-11-30T11.json.gz").write_bytes(whole[:-30])  # cut: its last line and trailer lost
    (src / "_SUCCESS").write_bytes(b"")  # markers and hidden files are no records
    door = Door()
    reader = reader_for(loop, door, index(), src, data, max_batch_records=3)
    assert reader.poll() == 22
    counts = reader.counts
    assert (counts.objects, counts.records, counts.log_records, counts.accepted) == (2, 22, 19, 19)
    assert (counts.bad_records, counts.bad_objects, counts.rejected) == (3, 1, 0)
    assert sorted(door.uids()) == [f"ins-{n:05d}" for n in range(19)]
    line_of_bad = first.count(b"\n") + 1
    cut_offset = len(export_lines(range(10, 19)))
    assert quarantined(data) == [
        {"object": str(src / "2026-11-30T10.json"), "line": line_of_bad, "offset": len(first),
         "reason": "invalid JSON: unexpected character, expected a string key: line 1 column 2 (char 1)",
         "data": "{not json"},
        {"object": str(src / "2026-11-30T10.json"), "line": line_of_bad + 1, "offset": len(first) + 10,
         "reason": "a record must be a JSON object, not list", "data": "[1, 2]"},
        {"object": str(src / "2026-11-30T11.json.gz"), "line": 10, "offset": cut_offset,
         "reason": "damaged gzip stream: the object ended before the end of its gzip stream",
         "data": '{"insertId":"ins-00019'},  # what inflated of the last line before the cut
    ]  # fmt: skip
    assert reader.poll() == 0  # nothing new: nothing read again
    assert len(door.records) == 7
    events = [r for r in door.log_records() if r.event_name == "agent.request.completed"]
    assert len(events) == 19


def test_a_restart_resumes_at_the_cursor(tmp_path: Path, loop: Loop) -> None:
    src, data = tmp_path / "bucket", tmp_path / "data"
    src.mkdir()
    (src / "a.json").write_bytes(export_lines(range(0, 10)))
    (src / "b.json.gz").write_bytes(gzipped(export_lines(range(10, 20))))
    door, stored = Door(), index()
    first = reader_for(loop, door, stored, src, data, max_batch_records=4)
    sent = 0

    def stop_after_two(payload: bytes, signal: Signal, items: int) -> Future[ExportResult]:
        nonlocal sent
        sent += 1
        if sent == 2:
            first.stopping.set()
        return inner(payload, signal, items)

    inner, first.submit = first.submit, stop_after_two
    first.poll()
    first.cursor.close()
    assert sorted(door.uids()) == [f"ins-{n:05d}" for n in range(8)]
    cursor = Cursor(data / "bucket" / "bucket_glean")
    position = cursor.get(str(src / "a.json"))
    assert position is not None
    assert (position.line, position.offset, position.done) == (8, len(export_lines(range(8))), False)
    cursor.close()
    second = reader_for(loop, door, RecentSpans(10), src, data, max_batch_records=4)  # a fresh index
    assert second.poll() == 12
    assert sorted(door.uids()) == [f"ins-{n:05d}" for n in range(20)]  # each once
    assert second.counts.accepted == 12


def test_a_crash_after_the_log_and_before_the_cursor_stores_nothing_twice(tmp_path: Path, loop: Loop) -> None:
    src, data = tmp_path / "bucket", tmp_path / "data"
    src.mkdir()
    (src / "a.json").write_bytes(export_lines(range(0, 10)))
    door, stored = Door(), index()
    first = reader_for(loop, door, stored, src, data, max_batch_records=5)
    commits = 0
    commit = first.cursor.commit

    def crash_on_second_commit(name: str, position: Position) -> None:
        nonlocal commits
        commits += 1
        if commits == 2:
            raise KeyboardInterrupt("killed between the log's fsync and the cursor's")
        commit(name, position)

    first.cursor.commit = crash_on_second_commit  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        first.poll()
    assert sorted(door.uids()) == [f"ins-{n:05d}" for n in range(10)]  # all durable, cursor at 5
    first.cursor.close()
    # The restarted process seeds its index from what is stored (here: the same index).
    second = reader_for(loop, door, stored, src, data, max_batch_records=5)
    assert second.poll() == 5
    assert sorted(door.uids()) == [f"ins-{n:05d}" for n in range(10)]
    assert (second.counts.log_records, second.counts.accepted) == (5, 0)


def test_a_rewritten_object_is_read_again_and_an_appended_one_continues(tmp_path: Path, loop: Loop) -> None:
    src, data = tmp_path / "bucket", tmp_path / "data"
    src.mkdir()
    (src / "a.json").write_bytes(export_lines(range(0, 6)))
    (src / "log.jsonl").write_bytes(export_lines(range(100, 103)))
    door, stored = Door(), index()
    reader = reader_for(loop, door, stored, src, data)
    assert reader.poll() == 9
    # a.json replaced by another file (a new generation), holding two old records and a new one
    (src / ".a.tmp").write_bytes(export_lines(range(4, 7)))
    (src / ".a.tmp").rename(src / "a.json")
    with open(src / "log.jsonl", "ab") as f:
        f.write(export_lines(range(103, 105)))
    assert reader.poll() == 5
    assert reader.counts.rewritten == 1
    assert reader.counts.accepted == 9 + 1 + 2  # the rewritten object's old records are duplicates
    assert sorted(door.uids()) == [f"ins-{n:05d}" for n in [*range(7), *range(100, 105)]]
    # shrunk in place: read again from the start
    (src / "log.jsonl").write_bytes(export_lines(range(200, 201)))
    assert reader.poll() == 1
    assert reader.counts.rewritten == 2
    assert door.uids().count("ins-00200") == 1


def test_parquet_objects_and_long_lines(tmp_path: Path, loop: Loop) -> None:
    src, data = tmp_path / "bucket", tmp_path / "data"
    src.mkdir()
    rows = [workflow_run(n) for n in range(5)]
    table = pa.Table.from_pylist([{"line": orjson.dumps(r).decode(), **r} for r in rows]).drop_columns(
        ["line"]
    )
    pq.write_table(table, src / "runs.parquet", row_group_size=2)
    (src / "long.json").write_bytes(b'{"a": "' + b"x" * 3_000_000 + b'"}\n' + export_lines(range(50, 51)))
    door = Door()
    reader = reader_for(loop, door, index(), src, data, max_line_mib=1.0, max_batch_records=2)
    assert reader.poll() == 7
    assert sorted(door.uids()) == [
        "ins-00000",
        "ins-00001",
        "ins-00002",
        "ins-00003",
        "ins-00004",
        "ins-00050",
    ]
    events = [r for r in door.log_records() if r.event_name == "agent.request.completed"]
    assert len(events) == 6
    entry = quarantined(data)[0]
    assert (entry["object"], entry["line"], entry["offset"], entry["reason"]) == (
        str(src / "long.json"),
        1,
        0,
        "line longer than 1048576 bytes",
    )
    assert entry["data"] == '{"a": "' + "x" * 4089


def test_a_door_that_refuses_leaves_the_cursor_where_it_was(tmp_path: Path, loop: Loop) -> None:
    src, data = tmp_path / "bucket", tmp_path / "data"
    src.mkdir()
    (src / "a.json").write_bytes(export_lines(range(0, 4)))
    door = Door(refuse=True)
    reader = reader_for(loop, door, index(), src, data, max_batch_records=2)
    with pytest.raises(Refused, match="OSError: the log is failing"):
        reader.poll()
    assert Cursor(data / "bucket" / "bucket_glean").positions == {}
    door.refuse = False
    assert reader.poll() == 4
    assert sorted(door.uids()) == [f"ins-{n:05d}" for n in range(4)]


def test_blank_lines_keep_line_numbers_and_a_document_may_follow_them(tmp_path: Path, loop: Loop) -> None:
    src, data = tmp_path / "bucket", tmp_path / "data"
    src.mkdir()
    (src / "a.json").write_bytes(b"\n\n" + export_lines(range(0, 1)) + b"\n{bad\n")
    doc = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "1796032800000000000",
                                                            "body": {"stringValue": "hello"}}]}]}]}  # fmt: skip
    (src / "b.json").write_bytes(b"\n" + orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    door = Door()
    reader = reader_for(loop, door, index(), src, data)
    assert reader.poll() == 3
    assert [(e["object"], e["line"], e["reason"]) for e in quarantined(data)] == [
        (
            str(src / "a.json"),
            5,
            "invalid JSON: unexpected character, expected a string key: line 1 column 2 (char 1)",
        )
    ]
    records = door.log_records()
    assert [(r.event_name, r.body.string_value) for r in records] == [
        ("agent.request.completed", ""),
        ("", "hello"),
    ]
    assert records[1].time_unix_nano == 1796032800000000000


def test_reading_is_paced_by_max_records_per_second(tmp_path: Path, loop: Loop) -> None:
    src, data = tmp_path / "bucket", tmp_path / "data"
    src.mkdir()
    (src / "a.json").write_bytes(export_lines(range(0, 30)))
    door = Door()
    reader = reader_for(loop, door, index(), src, data, max_batch_records=10, max_records_per_second=100.0)
    started = time.monotonic()
    assert reader.poll() == 30
    assert time.monotonic() - started >= 0.29  # 30 records at 100 a second
    assert sorted(door.uids()) == [f"ins-{n:05d}" for n in range(30)]
