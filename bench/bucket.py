"""Bucket benchmark: records/s from a bucket into Parquet through a real `agentwatch serve`.

Writes a Cloud Logging export of WORKFLOW_RUN records (half the objects gzipped) to a local
directory or to moto's S3 server on a loopback port, starts a server with a `bucket` receiver
over it (mapping: workflow_run), and times from the server being ready until every record is in
the `logs` view and every run in `runs`. Also the reader alone (formats, mapping, cursor; a door
that takes everything at once), which bounds what one receiver reads per second.

    .venv/bin/python bench/bucket.py --records 200000 --objects 20
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.model import Signal
from receiver.bucket.receiver import Config, build_reader
from receiver.bucket.source import Bucket
from receiver.otlp.handler import ExportResult
from tests.receiver.bucket.fixtures import BucketServer, export_lines, gzipped, moto_s3


def objects(records: int, count: int) -> Iterator[tuple[str, bytes]]:
    per = records // count
    for index in range(count):
        data = export_lines(range(index * per, (index + 1) * per), failed_every=10)
        name = f"2026/11/30/{index:04d}_S0.json"
        yield (f"{name}.gz", gzipped(data)) if index % 2 else (name, data)


@contextmanager
def bucket(where: str, root: Path, records: int, count: int) -> Iterator[tuple[str, str | None]]:
    if where == "local":
        for name, data in objects(records, count):
            path = root / "bucket" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        yield str(root / "bucket"), None
        return
    with moto_s3() as endpoint:
        fs = Bucket("s3://bench/exports/", endpoint).fs
        fs.mkdir("bench")
        for name, data in objects(records, count):
            with fs.open(f"bench/exports/{name}", "wb") as f:
                f.write(data)
        yield "s3://bench/exports/", endpoint


def reader_alone(url: str, endpoint: str | None, data: Path, mapping: str | None) -> tuple[int, float]:
    def submit(payload: bytes, signal: Signal, items: int) -> Future[ExportResult]:
        future: Future[ExportResult] = Future()
        future.set_result(ExportResult(items, 0, "", signal))
        return future

    reader = build_reader(
        Config(url=url, endpoint_url=endpoint, mapping="workflow_run"), data, "bench", submit
    )
    started = time.perf_counter()
    read = reader.poll()
    elapsed = time.perf_counter() - started
    reader.cursor.close()
    return read, elapsed


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and its children (the converter and compaction workers)."""
    import psutil

    total = 0.0
    parent = psutil.Process(pid)
    for proc in [parent, *parent.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def through_serve(
    url: str, endpoint: str | None, root: Path, records: int, mapping: str | None
) -> tuple[float, float | None, float]:
    extra = f"    endpoint_url: {endpoint}\n" if endpoint else ""
    mapped = "workflow_run" if mapping else "null"
    server = BucketServer(
        root / "serve", bucket_url=url, bucket_extra=extra, flush_interval="200ms", mapping=mapped
    )
    (root / "serve").mkdir()
    server.start()
    assert server.proc is not None
    started = time.perf_counter()
    cpu_before = cpu_seconds(server.proc.pid)
    try:
        server.wait_for_count("SELECT count(*) FROM logs", records, timeout=900)
        logs_done = time.perf_counter() - started
        runs_done = None
        if mapping:
            server.wait_for_count("SELECT count(*) FROM runs", records, timeout=300)
            runs_done = time.perf_counter() - started
        cpu = cpu_seconds(server.proc.pid) - cpu_before
        assert server.query("SELECT count(*), count(DISTINCT record_id) FROM logs") == [(records, records)]
        server.stop()
    finally:
        server.kill()
    return logs_done, runs_done, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--objects", type=int, default=20)
    parser.add_argument("--where", default="local,s3", help="local, s3 or both")
    parser.add_argument(
        "--mapping",
        default="workflow_run",
        help="workflow_run (every record a run) or none (log records only)",
    )
    args = parser.parse_args()
    records = args.records // args.objects * args.objects
    for where in args.where.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            with bucket(where, root, records, args.objects) as (url, endpoint):
                mapping = None if args.mapping == "none" else args.mapping
                read, alone = reader_alone(url, endpoint, root / "alone", mapping)
                assert read == records
                logs_done, runs_done, cpu = through_serve(url, endpoint, root, records, mapping)
            runs = f", all runs after {runs_done:.1f}s" if runs_done is not None else ""
            print(
                f"{where}, mapping {args.mapping}: {records} records in {args.objects} objects | "
                f"reader alone {alone:.1f}s ({records / alone:,.0f} records/s) | serve: all in logs after "
                f"{logs_done:.1f}s ({records / logs_done:,.0f} records/s){runs}; server CPU "
                f"{cpu:.1f}s ({cpu / records * 1e6:.0f} µs/record)"
            )


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
