"""A batch that fails conversion: the bad spans are isolated by bisection and quarantined, every
other span is converted exactly once; failures that are not the data's are retried whole."""

from __future__ import annotations

import errno
import time
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentwatch.converter import Converted
from agentwatch.drain import Drain
from agentwatch.isolation import Isolator, split_record
from core.model import OtlpRecord
from storage.deadletter import DeadLetters, read_quarantined
from storage.wal import WalPosition


def record(names: list[str], tenant: str | None = None) -> OtlpRecord:
    req = ExportTraceServiceRequest()
    for resource in range(2):  # spans spread over two resources and two scopes each
        rs = req.resource_spans.add()
        rs.resource.attributes.add(key="r").value.int_value = resource
        for scope in range(2):
            ss = rs.scope_spans.add()
            ss.scope.name = f"scope-{scope}"
            for i, name in enumerate(names):
                if i % 4 == resource * 2 + scope:
                    ss.spans.add(name=name, trace_id=bytes(16), span_id=bytes(8))
    return OtlpRecord.from_request(req, tenant=tenant)


def span_names(rec: OtlpRecord) -> list[str]:
    req = rec.parse()
    return [s.name for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]


class Pipeline:
    """Fails any group holding a span named ``poison``; records what it converted."""

    def __init__(self, transient_failures: int = 0) -> None:
        self.converted: list[str] = []
        self.calls = 0
        self.transient_failures = transient_failures

    def convert(self, group: list[OtlpRecord]) -> None:
        self.calls += 1
        if self.transient_failures:
            self.transient_failures -= 1
            raise OSError(28, "No space left on device")
        names = [n for rec in group for n in span_names(rec)]
        if any(n.startswith("poison") for n in names):
            raise ValueError("span times past 2**63 ns do not fit the int64 columns")
        self.converted += names


def test_split_record_keeps_resources_scopes_and_tenant() -> None:
    rec = record([f"s{i}" for i in range(7)], tenant="acme")
    first, second = split_record(rec)
    assert (first.spans, second.spans, first.tenant, second.tenant) == (3, 4, "acme", "acme")
    assert span_names(first) + span_names(second) == span_names(rec)
    for half in (first, second):
        for rs in half.parse().resource_spans:
            for ss in rs.scope_spans:
                assert ss.scope.name in ("scope-0", "scope-1")
                assert {s.name for s in ss.spans} <= set(span_names(rec))


def test_one_poison_span_is_quarantined_and_everything_else_converted_once() -> None:
    good = [f"r{r}-s{i}" for r in range(6) for i in range(10)]
    records = [record(good[r * 10 : r * 10 + 10]) for r in range(6)]
    records.insert(3, record(["ok-1", "poison", "ok-2", "ok-3", "ok-4"]))
    pipeline = Pipeline()
    quarantined: list[tuple[list[str], str]] = []
    isolator = Isolator(pipeline.convert, lambda rec, why: quarantined.append((span_names(rec), why)))
    isolator.run(records)
    assert sorted(pipeline.converted) == sorted([*good, "ok-1", "ok-2", "ok-3", "ok-4"])
    assert quarantined == [(["poison"], "ValueError: span times past 2**63 ns do not fit the int64 columns")]
    assert (isolator.stats.quarantined_records, isolator.stats.quarantined_spans) == (1, 1)


def test_a_full_disk_is_retried_whole_and_nothing_is_quarantined() -> None:
    pipeline = Pipeline(transient_failures=3)
    sleeps: list[float] = []
    quarantined: list[OtlpRecord] = []
    isolator = Isolator(pipeline.convert, lambda rec, why: quarantined.append(rec), sleep=sleeps.append)
    isolator.run([record(["a", "b"]), record(["c"])])
    assert sorted(pipeline.converted) == ["a", "b", "c"]
    assert (pipeline.calls, sleeps, quarantined) == (4, [0.1, 0.2, 0.4], [])


class FakeConverter:
    def __init__(self, pipeline: Pipeline | OsErrorPipeline) -> None:
        self.pipeline = pipeline

    def start(self) -> None:
        return None

    def ready(self) -> bool:
        return True

    def convert(self, pipeline: int, records: list[OtlpRecord]) -> Converted:
        self.pipeline.convert(records)
        return Converted({})

    def shutdown(self) -> None:
        return None


def test_the_drain_finishes_a_batch_with_a_poison_record(tmp_path: Path) -> None:
    """Nothing waits behind the poison: the batch is released and the next one converts."""
    pipeline = Pipeline()
    dead = DeadLetters(tmp_path)
    drain = Drain(FakeConverter(pipeline), [frozenset({"otlp"})], 0.01, 1000, 1, None, dead, ["traces"])
    drain.start()
    poison = record(["poison-x", "fine"], tenant="acme")
    drain.on_commit([(record(["before"]), WalPosition(1, 10)), (poison, WalPosition(1, 20))])
    deadline = time.monotonic() + 5
    while drain.spans_written < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    drain.on_commit([(record(["after"]), WalPosition(1, 30))])
    drain.stop()
    assert sorted(pipeline.converted) == ["after", "before", "fine"]
    assert drain.spans_written == 4
    (path,) = list((tmp_path / "deadletter").iterdir())
    entries = read_quarantined(path)
    assert [(e["pipeline"], e["tenant"], e["spans"]) for e in entries] == [("traces", "acme", 1)]
    payload = entries[0]["payload"]
    assert isinstance(payload, bytes)
    assert span_names(OtlpRecord(payload)) == ["poison-x"]
    assert (dead.records, dead.spans) == (1, 1)


class Stuck(BaseException):
    """Raised past Isolator's ``except Exception``: the batch would have been retried forever."""


class OsErrorPipeline:
    """Raises ``error`` for any group holding a span whose name starts with ``bad`` (every time,
    as a record that deterministically causes it would); records what it converted. A group
    failing more than 6 times raises ``Stuck``: it would have been retried forever."""

    def __init__(self, error: OSError) -> None:
        self.error = error
        self.converted: list[str] = []
        self.calls = 0
        self.failed: dict[tuple[str, ...], int] = {}

    def convert(self, group: list[OtlpRecord]) -> None:
        self.calls += 1
        names = [n for rec in group for n in span_names(rec)]
        if any(n.startswith("bad") for n in names):
            key = tuple(names)
            self.failed[key] = self.failed.get(key, 0) + 1
            if self.failed[key] > 6:
                raise Stuck(f"{names} failed {self.failed[key]} times")
            raise self.error
        self.converted += names


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (OSError(errno.EINVAL, "Invalid argument"), "OSError: [Errno 22] Invalid argument"),
        (OSError(errno.ENAMETOOLONG, "File name too long"), "OSError: [Errno 36] File name too long"),
        (
            OSError("Couldn't serialize thrift: TProtocolException"),
            "OSError: Couldn't serialize thrift: TProtocolException",
        ),
    ],
)
def test_an_oserror_one_record_always_causes_is_bisected_and_quarantined_after_3_attempts(
    error: OSError, reason: str
) -> None:
    """Before, any OSError was retried whole forever: the batch, and the log behind it, stalled."""
    good = [f"r{r}-s{i}" for r in range(3) for i in range(4)]
    records = [record(good[r * 4 : r * 4 + 4]) for r in range(3)]
    records.insert(1, record(["ok-1", "bad", "ok-2"]))
    pipeline = OsErrorPipeline(error)
    sleeps: list[float] = []
    quarantined: list[tuple[list[str], str]] = []
    isolator = Isolator(
        pipeline.convert, lambda rec, why: quarantined.append((span_names(rec), why)), sleep=sleeps.append
    )
    isolator.run(records)
    assert sorted(pipeline.converted) == sorted([*good, "ok-1", "ok-2"])
    assert quarantined == [(["bad"], reason)]
    # Each failing piece: 3 attempts, 0.1 s and 0.2 s apart. Pieces: the 4 records, their first
    # half (2 records), the bad record, its second half ("bad", "ok-2"), then "bad" alone, which
    # gets one more try (a worker may have died) before it is quarantined.
    assert sleeps == [0.1, 0.2] * 5
    assert (pipeline.calls, isolator.stats.failures) == (3 * 5 + 1 + 4, 16)
    assert (isolator.stats.quarantined_records, isolator.stats.quarantined_spans) == (1, 1)


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        OSError(errno.EIO, "Input/output error"),
        OSError(errno.EROFS, "Read-only file system"),
        PermissionError(errno.EACCES, "Permission denied"),
        FileNotFoundError(errno.ENOENT, "No such file or directory"),
        OSError(errno.EMFILE, "Too many open files"),
    ],
)
def test_a_failure_of_the_disk_is_retried_whole_past_3_attempts_and_only_the_data_is_quarantined(
    error: OSError,
) -> None:
    """The disk fails for 10 attempts, whatever the batch holds: retried whole, with backoff,
    nothing set aside; then one record's own EINVAL is bisected down to its span."""
    pipeline = OsErrorPipeline(OSError(errno.EINVAL, "Invalid argument"))
    disk_failures = [0]

    def convert(group: list[OtlpRecord]) -> None:
        if disk_failures[0] < 10:
            disk_failures[0] += 1
            raise error
        pipeline.convert(group)

    sleeps: list[float] = []
    quarantined: list[tuple[list[str], str]] = []
    isolator = Isolator(
        convert, lambda rec, why: quarantined.append((span_names(rec), why)), sleep=sleeps.append
    )
    isolator.run([record(["a", "b"]), record(["bad", "c"])])
    assert sorted(pipeline.converted) == ["a", "b", "c"]
    assert quarantined == [(["bad"], "OSError: [Errno 22] Invalid argument")]
    disk = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0, 10.0]
    # Then the batch, the second record and "bad" alone fail 3 times each ("bad" once more).
    assert sleeps == disk + [0.1, 0.2] * 3
    assert (disk_failures[0], pipeline.calls, isolator.stats.failures) == (10, 3 + 1 + 3 + 4 + 1, 20)


def test_the_drain_finishes_a_batch_whose_record_causes_an_oserror_every_time(tmp_path: Path) -> None:
    """Nothing waits behind it: the bad span is in the dead-letter file, the rest in the pipeline."""
    pipeline = OsErrorPipeline(OSError(errno.EINVAL, "Invalid argument"))
    dead = DeadLetters(tmp_path)
    drain = Drain(FakeConverter(pipeline), [frozenset({"otlp"})], 0.01, 1000, 1, None, dead, ["traces"])
    drain.start()
    drain.on_commit(
        [(record(["before"]), WalPosition(1, 10)), (record(["bad-x", "fine"]), WalPosition(1, 20))]
    )
    deadline = time.monotonic() + 30
    while drain.spans_written < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    drain.on_commit([(record(["after"]), WalPosition(1, 30))])
    drain.stop()
    assert sorted(pipeline.converted) == ["after", "before", "fine"]
    assert drain.spans_written == 4
    (path,) = list((tmp_path / "deadletter").iterdir())
    entries = read_quarantined(path)
    assert [(e["pipeline"], e["spans"], e["reason"]) for e in entries] == [
        ("traces", 1, "OSError: [Errno 22] Invalid argument")
    ]
    payload = entries[0]["payload"]
    assert isinstance(payload, bytes)
    assert span_names(OtlpRecord(payload)) == ["bad-x"]


def test_split_record_of_log_records_keeps_resources_scopes_signal_and_tenant() -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    request = ExportLogsServiceRequest()
    for service, count in (("a", 3), ("b", 2)):
        rl = request.resource_logs.add(schema_url=f"s-{service}")
        rl.resource.attributes.add(key="service.name").value.string_value = service
        sl = rl.scope_logs.add()
        sl.scope.name = f"scope-{service}"
        for i in range(count):
            sl.log_records.add(time_unix_nano=i + 1).body.string_value = f"{service}{i}"
    first, second = split_record(OtlpRecord.from_logs_request(request, "acme", "otlp"))
    shown = []
    for half in (first, second):
        assert (half.signal, half.tenant, half.receiver) == ("logs", "acme", "otlp")
        parsed = half.parse_logs()
        shown.append([
            (rl.resource.attributes[0].value.string_value, rl.schema_url, sl.scope.name,
             [r.body.string_value for r in sl.log_records])
            for rl in parsed.resource_logs for sl in rl.scope_logs
        ])  # fmt: skip
        assert half.spans == sum(len(sl.log_records) for rl in parsed.resource_logs for sl in rl.scope_logs)
    assert shown == [
        [("a", "s-a", "scope-a", ["a0", "a1"])],
        [("a", "s-a", "scope-a", ["a2"]), ("b", "s-b", "scope-b", ["b0", "b1"])],
    ]
