"""The drain on its own: how batches are cut from the queue, and that the write-ahead log is
released only past an unbroken run of finished batches, whatever order they finish in."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from agentwatch.converter import Converted
from agentwatch.drain import Drain
from core.admission import Admission
from core.model import OtlpRecord
from storage.wal import WalPosition


def record(name: str, spans: int = 1, size: int = 10, receiver: str = "otlp") -> OtlpRecord:
    """A record the fake converter knows by its payload's first byte(s); never decoded."""
    return OtlpRecord(name.encode().ljust(size, b"."), None, receiver, spans)


def name_of(rec: OtlpRecord) -> str:
    return rec.payload.rstrip(b".").decode()


class FakeWal:
    def __init__(self) -> None:
        self.released: list[WalPosition] = []

    def release(self, position: WalPosition) -> None:
        self.released.append(position)


class GatedConverter:
    """Records each call; a call for a batch whose first record is in ``gates`` blocks until the
    test opens that gate."""

    def __init__(self, gated: tuple[str, ...] = ()) -> None:
        self.gates = {name: threading.Event() for name in gated}
        self.started: list[tuple[int, list[str]]] = []
        self.finished: list[list[str]] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        return None

    def convert(self, pipeline: int, records: list[OtlpRecord]) -> Converted:
        names = [name_of(r) for r in records]
        with self._lock:
            self.started.append((pipeline, names))
        gate = self.gates.get(names[0])
        if gate is not None:
            assert gate.wait(10), f"gate {names[0]} never opened"
        with self._lock:
            self.finished.append(names)
        return Converted({"converted_spans": sum(r.spans for r in records)})

    def shutdown(self) -> None:
        return None


def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def settle() -> None:
    """Long enough for a release that should not happen to have happened."""
    time.sleep(0.1)


def test_the_log_is_released_only_past_an_unbroken_run_of_finished_batches() -> None:
    converter = GatedConverter(gated=("a", "b", "c", "d"))
    wal, admission = FakeWal(), Admission(1000)
    admission.take_anyway(40)
    # One span per batch, four converting at once; a long interval: batches are cut because full.
    drain = Drain(
        converter, [frozenset({"otlp"})], 60.0, max_batch_spans=1, parallelism=4, admission=admission
    )
    drain.wal = wal  # type: ignore[assignment]
    drain.start()
    positions = {
        name: WalPosition(1, offset) for name, offset in zip("abcd", (100, 200, 300, 400), strict=True)
    }
    drain.on_commit([(record(name), positions[name]) for name in "abcd"])
    until(lambda: len(converter.started) == 4)
    assert [names for _, names in converter.started] == [["a"], ["b"], ["c"], ["d"]]
    assert drain.in_flight_batches == 4

    converter.gates["c"].set()  # c finishes first: a and b are still converting
    until(lambda: drain.spans_written == 1)
    settle()
    assert wal.released == [] and drain.in_flight_batches == 4
    assert admission.held == 30  # c's bytes are given back as soon as c is stored

    converter.gates["a"].set()  # a: the run is a alone (b still converting)
    until(lambda: wal.released == [positions["a"]])
    assert drain.in_flight_batches == 3

    converter.gates["d"].set()  # d done, b is not: nothing more
    until(lambda: drain.spans_written == 3)
    settle()
    assert wal.released == [positions["a"]]

    converter.gates["b"].set()  # b closes the gap: released up to d, the last of b, c, d
    until(lambda: len(wal.released) == 2)
    assert wal.released == [positions["a"], positions["d"]]
    assert (drain.in_flight_batches, drain.spans_written, admission.held) == (0, 4, 0)
    assert [n for names in converter.finished for n in names] == ["c", "a", "d", "b"]
    assert drain.component_counts == {"converted_spans": 4}
    drain.stop()
    assert wal.released == [positions["a"], positions["d"]]


def test_batches_are_cut_from_the_head_by_spans_and_by_bytes() -> None:
    converter, wal = GatedConverter(), FakeWal()
    drain = Drain(
        converter, [frozenset({"otlp"})], 60.0, max_batch_spans=4, parallelism=1, max_batch_bytes=100
    )
    drain.wal = wal  # type: ignore[assignment]
    drain.start()
    queue = [
        record("a", spans=2), record("b", spans=2),  # 4 spans: c's 3 would make 7
        record("c", spans=3), record("d", spans=1, size=90),  # 4 spans, 100 bytes: exactly full
        record("e", spans=1, size=60),  # e + f would be 110 bytes
        record("f", spans=1, size=50), record("g", spans=6),  # g alone is over both limits: alone
        record("h", spans=1), record("i", spans=1),  # not full: waits for the interval (or stop)
    ]  # fmt: skip
    drain.on_commit([(rec, WalPosition(2, (n + 1) * 1000)) for n, rec in enumerate(queue)])
    until(lambda: len(converter.finished) == 5)
    settle()
    assert converter.finished == [["a", "b"], ["c", "d"], ["e"], ["f"], ["g"]]
    assert drain.queued_spans == 2  # h and i wait for flush_interval, not full yet
    drain.stop()  # stopping delivers what is queued
    assert converter.finished == [["a", "b"], ["c", "d"], ["e"], ["f"], ["g"], ["h", "i"]]
    assert [p.offset for p in wal.released] == [2000, 4000, 5000, 6000, 7000, 9000]
    assert (drain.spans_written, drain.queued_spans) == (18, 0)


def test_a_partial_batch_waits_for_the_flush_interval() -> None:
    converter = GatedConverter()
    drain = Drain(converter, [frozenset({"otlp"})], 0.3, max_batch_spans=100, parallelism=1)
    drain.start()
    started = time.monotonic()
    drain.on_commit([(record("a", spans=5), WalPosition(1, 1))])
    until(lambda: converter.finished == [["a"]])
    assert time.monotonic() - started >= 0.3
    drain.stop()


def test_each_pipeline_gets_the_records_of_its_receivers() -> None:
    converter = GatedConverter()
    routes = [frozenset({"otlp"}), frozenset({"otlp", "synthetic"}), frozenset({"memory"})]
    drain = Drain(converter, routes, 60.0, max_batch_spans=1000, parallelism=1)
    drain.start()
    drain.on_commit([
        (record("a"), WalPosition(1, 1)),
        (record("s", receiver="synthetic"), WalPosition(1, 2)),
        (record("b"), WalPosition(1, 3)),
    ])  # fmt: skip
    drain.stop()
    assert converter.started == [(0, ["a", "b"]), (1, ["a", "s", "b"])]
    assert drain.spans_written == 3
