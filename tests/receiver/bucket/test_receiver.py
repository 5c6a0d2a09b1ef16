"""The ``bucket`` receiver component: its config's problems name the YAML key; started on an
event loop it polls, counts and stops within its grace."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from core.component import ReceiverCounters, ReceiverSettings
from receiver.bucket.mapping import MappingConfig
from receiver.bucket.receiver import Config, create
from tests.receiver.bucket.fixtures import Door, export_lines, index


def test_config_problems_name_the_key() -> None:
    config = Config(
        url="ftp://x/", format="xml", mapping="glean", poll_interval=0, max_line_mib=0, max_batch_records=0,
        max_object_mib=-1,
    )  # fmt: skip
    assert config.validate() == [
        "url: 'ftp://x/': only gs://, s3:// and local paths are read",
        "format: 'xml' is not one of auto, cloud_logging, jsonl, otlp_json, parquet",
        "mapping: 'glean' is not a built-in mapping (known: workflow_run)",
        "poll_interval: must be positive",
        "max_line_mib: must be positive",
        "max_object_mib: must be positive (or null: no bound)",
        "max_batch_records: must be at least 1",
    ]
    assert Config(url="/x", mapping=MappingConfig(extends="nope")).validate() == [
        "mapping.extends: 'nope' is not a built-in mapping (known: workflow_run)"
    ]
    assert Config(url="gs://acme/logs/", mapping="workflow_run").validate() == []


def test_the_receiver_polls_counts_and_stops(tmp_path: Path) -> None:
    src, data = tmp_path / "bucket", tmp_path / "data"
    src.mkdir()
    (src / "a.json").write_bytes(export_lines(range(0, 5)) + b"nope\n")
    door = Door()

    async def scenario() -> tuple[ReceiverCounters, ReceiverCounters, float]:
        receiver = create(
            Config(url=str(src), mapping="workflow_run", poll_interval=0.05),
            ReceiverSettings("bucket/glean", door, index(), data),
        )
        await receiver.start()
        assert receiver.endpoints() == {}
        deadline = time.monotonic() + 10
        while receiver.counters().accepted_log_records < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        first = receiver.counters()
        (src / "b.json").write_bytes(export_lines(range(5, 8)))
        while receiver.counters().accepted_log_records < 8 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await receiver.shutdown(5.0)
        return first, receiver.counters(), time.monotonic() - started

    first, last, stopping = asyncio.run(scenario())
    assert first == ReceiverCounters(0, 0, 0, {"bad_record": 1}, 5, 0, 0)
    assert last == ReceiverCounters(0, 0, 0, {"bad_record": 1}, 8, 0, 0)
    assert stopping < 1.0
    assert sorted(door.uids()) == [f"ins-{n:05d}" for n in range(8)]
