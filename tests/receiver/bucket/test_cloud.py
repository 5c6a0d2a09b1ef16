"""The bucket receiver's readers against real storage servers on loopback ports: moto's S3
server (s3://, an S3-compatible endpoint_url) and the GCS JSON API emulator (gs://, found through
STORAGE_EMULATOR_HOST). Credentials only from the environment."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from core.model import Signal
from receiver.bucket.reader import BucketReader
from receiver.bucket.receiver import Config, build_reader
from receiver.bucket.source import Bucket, parse_url
from receiver.otlp.handler import ExportHandler, ExportResult
from storage.dedup import RecentSpans
from tests.receiver.bucket.fixtures import Door, Loop, export_lines, gcs_emulator, gzipped, index, moto_s3

BUCKET = "acme-logs"


@pytest.fixture(params=["s3", "gs"])
def remote(request: pytest.FixtureRequest) -> Iterator[tuple[str, str | None, Any]]:
    """(the URL of a prefix, the endpoint_url to give, an fsspec filesystem to write with)."""
    if request.param == "s3":
        with moto_s3() as endpoint:
            fs = Bucket(f"s3://{BUCKET}/exports/", endpoint).fs
            fs.mkdir(BUCKET)
            yield f"s3://{BUCKET}/exports/", endpoint, fs
    else:
        with gcs_emulator(BUCKET):
            yield f"gs://{BUCKET}/exports/", None, Bucket(f"gs://{BUCKET}/exports/").fs


def reader_for(
    loop: Loop, door: Door, stored: RecentSpans, url: str, endpoint: str | None, data: Path
) -> BucketReader:
    handler = ExportHandler(door, "bucket/glean", stored)

    def submit(payload: bytes, signal: Signal, items: int) -> Future[ExportResult]:
        return asyncio.run_coroutine_threadsafe(handler.export(payload, "protobuf", None, signal), loop.loop)

    config = Config(url=url, endpoint_url=endpoint, mapping="workflow_run", max_batch_records=4)
    return build_reader(config, data, "bucket/glean", submit)


def put(fs: Any, path: str, data: bytes) -> None:
    with fs.open(path, "wb") as f:
        f.write(data)


def test_objects_in_a_bucket_once_each_then_a_rewritten_one_again(
    remote: tuple[str, str | None, Any], loop: Loop, tmp_path: Path
) -> None:
    url, endpoint, fs = remote
    root = parse_url(url).root
    put(fs, f"{root}/2026/11/30/10:00:00_10:59:59_S0.json", export_lines(range(0, 10), failed_every=3))
    put(fs, f"{root}/2026/11/30/11:00:00_11:59:59_S0.json.gz", gzipped(export_lines(range(10, 20))))
    put(fs, f"{root}/2026/11/30/12:00:00_12:59:59_S0.json.gz", gzipped(export_lines(range(20, 25)))[:-30])
    put(fs, f"{root}/2026/11/30/bad.json", b"{oops\n" + export_lines(range(25, 26)))
    door, stored = Door(), index()
    reader = reader_for(loop, door, stored, url, endpoint, tmp_path)
    assert reader.poll() == 27
    counts = reader.counts
    assert (counts.objects, counts.log_records, counts.accepted, counts.bad_records, counts.bad_objects) == (
        4, 25, 25, 2, 1
    )  # fmt: skip
    assert sorted(door.uids()) == [f"ins-{n:05d}" for n in range(26) if n != 24]
    failed = [r for r in door.log_records() if r.severity_text == "ERROR"]
    assert len(failed) == 4  # runs 0, 3, 6, 9
    assert reader.poll() == 0
    # The 10:00 object is written again (a new generation / ETag): read again from the start.
    put(fs, f"{root}/2026/11/30/10:00:00_10:59:59_S0.json", export_lines(range(5, 12), failed_every=3))
    assert reader.poll() == 7
    assert reader.counts.rewritten == 1
    assert sorted(door.uids()) == [f"ins-{n:05d}" for n in range(26) if n != 24]  # 5..11: all stored before
    assert reader.counts.accepted == 25
    # A restarted reader (its cursor from disk) reads nothing again.
    reader.cursor.close()
    again = reader_for(loop, door, RecentSpans(10), url, endpoint, tmp_path)
    assert again.poll() == 0
    again.cursor.close()
