"""Write-ahead log: group commit, replay, torn tails, release."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from core.model import OtlpRecord
from storage.wal import Committed, WalPosition, WriteAheadLog, encode_record


def request(name: str) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add()
    span.name = name
    span.trace_id = bytes(range(1, 17))
    span.span_id = bytes(range(1, 9))
    return req


def record(name: str, tenant: str | None = None, receiver: str = "otlp") -> OtlpRecord:
    req = request(name)
    return OtlpRecord.from_request(req, tenant=tenant, receiver=receiver)


def names(committed: Committed) -> list[str]:
    return [rec.parse().resource_spans[0].scope_spans[0].spans[0].name for rec, _ in committed]


def test_commit_order_replay_and_release(tmp_path: Path) -> None:
    seen: Committed = []
    wal = WriteAheadLog(tmp_path, 1 << 20, seen.extend)
    assert wal.open()[0] == []
    futures = []
    for i in range(5):
        rec = record(f"s{i}", tenant="acme" if i % 2 else None, receiver="otlp/a")
        futures.append(wal.submit(rec))
    for f in futures:
        f.result(timeout=5)
    assert names(seen) == ["s0", "s1", "s2", "s3", "s4"]
    assert [rec.tenant for rec, _ in seen] == [None, "acme", None, "acme", None]
    wal.close()

    again: Committed = []
    wal2 = WriteAheadLog(tmp_path, 1 << 20, again.extend)
    replayed, stats = wal2.open()
    assert names(replayed) == ["s0", "s1", "s2", "s3", "s4"]
    assert (stats.segments, stats.records, stats.corrupt_tails) == (1, 5, 0)
    assert replayed[1][0].receiver == "otlp/a"
    wal2.release(replayed[-1][1])
    wal2.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_torn_tail_is_skipped_and_counted(tmp_path: Path) -> None:
    rec = record("good")
    frame = encode_record(rec)
    (tmp_path / "wal-0000000000000001.log").write_bytes(frame + frame[: len(frame) // 2])
    corrupt = bytearray(frame)
    corrupt[-1] ^= 0xFF
    (tmp_path / "wal-0000000000000002.log").write_bytes(frame + bytes(corrupt) + frame)
    wal = WriteAheadLog(tmp_path, 1 << 20, lambda c: None)
    replayed, stats = wal.open()
    # The corrupt record in the middle of segment 2 costs that record only.
    assert names(replayed) == ["good", "good", "good"]
    assert [pos for _, pos in replayed] == [
        WalPosition(1, len(frame)),
        WalPosition(2, len(frame)),
        WalPosition(2, 3 * len(frame)),
    ]
    assert (stats.segments, stats.records, stats.corrupt_tails) == (2, 3, 1)
    assert (stats.damaged_regions, stats.damaged_bytes) == (1, len(frame) + len(frame) // 2)
    wal.close()


def test_group_commit_shares_fsyncs(tmp_path: Path, monkeypatch: object) -> None:
    calls = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    import storage.wal as walmod

    walmod.os.fdatasync = counting  # type: ignore[attr-defined]
    try:
        wal = WriteAheadLog(tmp_path, 1 << 30, lambda c: None)
        wal.open()
        barrier = threading.Barrier(16)
        futures = []
        lock = threading.Lock()

        def client(i: int) -> None:
            barrier.wait()
            for j in range(50):
                rec = record(f"{i}-{j}")
                fut = wal.submit(rec)
                with lock:
                    futures.append(fut)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for f in futures:
            f.result(timeout=10)
        wal.close()
    finally:
        walmod.os.fdatasync = real  # type: ignore[attr-defined]
    assert len(futures) == 800
    assert len(calls) < 800


def test_segments_rotate_and_release_deletes_whole_segments(tmp_path: Path) -> None:
    seen: Committed = []
    one = record("s0")
    frame_len = len(encode_record(one))
    wal = WriteAheadLog(tmp_path, 2 * frame_len, seen.extend)  # two records a segment
    wal.open()
    for i in range(6):
        rec = record(f"s{i}")
        wal.submit(rec).result(timeout=5)
    segs = lambda: sorted(int(p.name[4:20]) for p in tmp_path.iterdir())  # noqa: E731
    assert segs() == [1, 2, 3, 4]
    assert [pos for _, pos in seen] == [WalPosition(s, o * frame_len) for s in (1, 2, 3) for o in (1, 2)]
    wal.release(seen[2][1])  # first record of segment 2: only segment 1 is wholly done
    assert segs() == [2, 3, 4]
    wal.release(seen[3][1])
    assert segs() == [3, 4]
    wal.release(seen[5][1])
    assert segs() == [4]
    wal.close()  # the active segment is empty: removed
    assert segs() == []


def test_one_damaged_byte_costs_one_record_and_the_segment_is_kept_aside(tmp_path: Path) -> None:
    frames = [encode_record(record(f"r{i:02d}")) for i in range(26)]
    data = bytearray(b"".join(frames))
    hit = sum(len(f) for f in frames[:1]) + len(frames[1]) // 2  # inside record 1's body
    data[hit] ^= 0x5A
    segment = tmp_path / "wal-0000000000000007-1700000000.log"
    segment.write_bytes(bytes(data))
    wal = WriteAheadLog(tmp_path, 1 << 20, lambda c: None)
    replayed, stats = wal.open()
    assert names(replayed) == [f"r{i:02d}" for i in range(26) if i != 1]
    start, end = len(frames[0]), len(frames[0]) + len(frames[1])
    assert (stats.records, stats.damaged_regions, stats.corrupt_tails) == (25, 1, 0)
    assert stats.damaged_bytes == end - start
    kept = tmp_path / "damaged" / segment.name
    assert stats.kept_aside == [str(kept)]
    assert kept.read_bytes() == bytes(data)
    wal.release(replayed[-1][1])
    wal.close()
    assert not segment.exists()  # released as usual; the copy for inspection stays
    assert kept.read_bytes() == bytes(data)


def test_damaged_length_field_resynchronises(tmp_path: Path) -> None:
    frames = [encode_record(record(f"r{i}")) for i in range(4)]
    data = bytearray(b"".join(frames))
    data[len(frames[0]) + 5] = 0xFF  # record 1's length now claims ~4 GiB
    (tmp_path / "wal-0000000000000001-1700000000.log").write_bytes(bytes(data))
    wal = WriteAheadLog(tmp_path, 1 << 20, lambda c: None)
    replayed, stats = wal.open()
    assert names(replayed) == ["r0", "r2", "r3"]
    assert (stats.damaged_regions, stats.damaged_bytes) == (1, len(frames[1]))
    wal.close()


def test_a_caller_that_gives_up_never_stops_the_writer(tmp_path: Path, monkeypatch: object) -> None:
    import storage.wal as walmod

    real = os.fdatasync
    gate = threading.Event()

    def slow(fd: int) -> None:
        gate.wait(5)
        real(fd)

    walmod.os.fdatasync = slow  # type: ignore[attr-defined]
    try:
        seen: Committed = []
        wal = WriteAheadLog(tmp_path, 1 << 20, seen.extend)
        wal.open()
        impatient = wal.submit(record("impatient"))
        assert impatient.cancel() is False  # already running: nothing to cancel
        gate.set()
        impatient.result(timeout=5)
        assert wal.submit(record("next")).result(timeout=5) is None
        assert names(seen) == ["impatient", "next"]
        assert wal.failed is None
        wal.close()
    finally:
        walmod.os.fdatasync = real  # type: ignore[attr-defined]


def test_a_dead_writer_refuses_retryably_and_is_reported(tmp_path: Path) -> None:
    from core import supervision
    from core.errors import Unavailable

    deaths: list[str] = []
    unwatch = supervision.watch(lambda where, exc: deaths.append(f"{where}: {exc}"))

    def broken(committed: Committed) -> None:
        raise RuntimeError("boom")

    try:
        wal = WriteAheadLog(tmp_path, 1 << 20, broken)
        wal.open()
        first = wal.submit(record("a"))
        first.result(timeout=5)  # durable before on_commit failed: acknowledged
        deadline = time.monotonic() + 5
        while not deaths and time.monotonic() < deadline:
            time.sleep(0.01)
        assert deaths == ["agentwatch-wal: boom"]
        later = wal.submit(record("b"))
        exc = later.exception(timeout=1)
        assert isinstance(exc, Unavailable)
        wal.close()
    finally:
        unwatch()


def test_disk_full_logs_state_changes_not_every_refusal(tmp_path: Path, caplog: object) -> None:
    import logging

    import pytest

    from core.errors import StorageFull

    assert isinstance(caplog, pytest.LogCaptureFixture)
    caplog.set_level(logging.WARNING, logger="agentwatch.wal")
    wal = WriteAheadLog(tmp_path, 1 << 20, lambda c: None, min_free_bytes=1 << 62)
    wal.open()
    for i in range(200):
        assert isinstance(wal.submit(record(f"r{i}")).exception(timeout=5), StorageFull)
    assert wal.write_failures == 200
    assert len([r for r in caplog.records if r.name == "agentwatch.wal"]) == 1
    wal.min_free_bytes = 0
    wal.submit(record("ok")).result(timeout=5)
    messages = [r.getMessage() for r in caplog.records if r.name == "agentwatch.wal"]
    assert len(messages) == 2
    assert messages[1].startswith("write-ahead log: appends succeed again after")
    wal.close()
