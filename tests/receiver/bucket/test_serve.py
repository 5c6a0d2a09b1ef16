"""The bucket receiver inside ``agentwatch serve``: killed (-9) in the middle of a bucket, restarted,
every record stored exactly once, each WORKFLOW_RUN record a run. Over a local directory, moto's
S3 server and the GCS emulator."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

from receiver.bucket.source import Bucket
from tests.helpers.server import ServerProcess, scrape
from tests.receiver.bucket.fixtures import BucketServer, export_lines, gcs_emulator, gzipped, moto_s3

pytestmark = pytest.mark.process  # a real server, killed

OBJECTS = 16
PER_OBJECT = 1500
RECORDS = OBJECTS * PER_OBJECT
FAILED_EVERY = 5


def objects() -> Iterator[tuple[str, bytes]]:
    for index in range(OBJECTS):
        numbers = range(index * PER_OBJECT, (index + 1) * PER_OBJECT)
        data = export_lines(numbers, failed_every=FAILED_EVERY)
        if index == OBJECTS - 1:  # read after the restart: one bad line, counted and quarantined
            data += b"{oops\n"
        if index % 2:
            yield f"2026/11/30/{index:02d}:00:00_{index:02d}:59:59_S0.json.gz", gzipped(data)
        else:
            yield f"2026/11/30/{index:02d}:00:00_{index:02d}:59:59_S0.json", data


@contextmanager
def local_bucket(root: Path) -> Iterator[tuple[str, str]]:
    for name, data in objects():
        path = root / "bucket" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    yield str(root / "bucket"), ""


@contextmanager
def s3_bucket(root: Path) -> Iterator[tuple[str, str]]:
    with moto_s3() as endpoint:
        fs = Bucket("s3://glean-logs/exports/", endpoint).fs
        fs.mkdir("glean-logs")
        for name, data in objects():
            with fs.open(f"glean-logs/exports/{name}", "wb") as f:
                f.write(data)
        yield "s3://glean-logs/exports/", f"    endpoint_url: {endpoint}\n"


@contextmanager
def gcs_bucket(root: Path) -> Iterator[tuple[str, str]]:
    with gcs_emulator("glean-logs"):  # STORAGE_EMULATOR_HOST, inherited by the server
        fs = Bucket("gs://glean-logs/exports/").fs
        for name, data in objects():
            with fs.open(f"glean-logs/exports/{name}", "wb") as f:
                f.write(data)
        yield "gs://glean-logs/exports/", ""


def committed(server: ServerProcess) -> int:
    path = server.data_dir / "bucket" / "bucket_glean" / "cursor.jsonl"
    return len(path.read_bytes().splitlines()) if path.exists() else 0


@pytest.mark.parametrize("where", [local_bucket, s3_bucket, gcs_bucket], ids=["local", "s3", "gcs"])
def test_kill_9_in_the_middle_of_a_bucket_then_every_record_once(tmp_path: Path, where: object) -> None:
    with where(tmp_path) as (url, extra):  # type: ignore[operator]
        server = BucketServer(tmp_path, bucket_url=url, bucket_extra=extra)
        server.start()
        try:
            deadline = time.monotonic() + 60
            while committed(server) < 6 and time.monotonic() < deadline:
                time.sleep(0.005)
            server.kill()  # SIGKILL, mid-bucket
            assert committed(server) >= 6
            stored_before = server.query("SELECT count(*) FROM logs")[0][0]
            assert stored_before < RECORDS  # the kill came before the end
            server.start()
            assert server.wait_for_count("SELECT count(*) FROM logs", RECORDS, timeout=180) == RECORDS
            assert server.wait_for_count("SELECT count(*) FROM runs", RECORDS, timeout=60) == RECORDS
            time.sleep(1.0)  # nothing more comes
            assert server.query(
                "SELECT count(*), count(DISTINCT record_id), count(DISTINCT attributes->>'$.\"log.record.uid\"'),"
                " count(*) FILTER (WHERE event_name = 'agent.request.completed') FROM logs"
            ) == [(RECORDS, RECORDS, RECORDS, RECORDS)]
            assert server.query(
                "SELECT outcome, agent_id, count(*) FROM runs GROUP BY ALL ORDER BY outcome"
            ) == [
                ("failure", "wf-expense", RECORDS // FAILED_EVERY),
                ("success", "wf-expense", RECORDS - RECORDS // FAILED_EVERY),
            ]
            refused = scrape(server)[
                (
                    "agentwatch_receiver_refused_requests_total",
                    (("reason", "bad_record"), ("receiver", "bucket/glean")),
                )
            ]
            assert refused == 1.0
            quarantine = server.data_dir / "bucket" / "bucket_glean" / "quarantine.jsonl"
            (entry,) = [orjson.loads(line) for line in quarantine.read_bytes().splitlines()]
            assert (entry["line"], entry["offset"], entry["data"]) == (
                PER_OBJECT + 1,
                len(export_lines(range(RECORDS - PER_OBJECT, RECORDS), FAILED_EVERY)),
                "{oops",
            )
            assert entry["object"].endswith("15:00:00_15:59:59_S0.json.gz")
            assert server.stop() == 0
        finally:
            server.kill()
