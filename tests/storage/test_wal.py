"""Write-ahead log: group commit, replay, torn tails, release."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentwatch.model import OtlpRecord
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
    assert names(replayed) == ["good", "good"]
    assert [pos for _, pos in replayed] == [WalPosition(1, len(frame)), WalPosition(2, len(frame))]
    assert (stats.segments, stats.records, stats.corrupt_tails) == (2, 2, 2)
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
