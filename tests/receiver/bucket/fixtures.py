"""Fixtures of the bucket tests: Cloud Logging exports with ``WORKFLOW_RUN``-shaped records, a door
that records what it made durable, and real storage servers on loopback ports (moto's S3 server,
the GCS emulator), started in this process's threads."""

from __future__ import annotations

import asyncio
import gzip
import os
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from core.model import OtlpRecord
from storage.dedup import RecentSpans
from tests.helpers.server import ServerProcess

PROJECT = "acme-prod"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def workflow_run(number: int, *, failed: bool = False, trace: bool = True) -> dict[str, Any]:
    """A Cloud Logging ``LogEntry`` of one workflow run, as the built-in mapping assumes them."""
    second = number % 60
    payload: dict[str, Any] = {
        "type": "WORKFLOW_RUN",
        "run_id": f"run-{number:05d}",
        "workflow_id": "wf-expense",
        "user_id": f"user-{number % 7}",
        "status": "FAILED" if failed else "SUCCEEDED",
        "start_time": f"2026-11-30T10:{number // 60 % 60:02d}:{second:02d}Z",
        "end_time": f"2026-11-30T10:{number // 60 % 60:02d}:{second:02d}.250Z",
    }
    if failed:
        payload["error"] = {"type": "ToolTimeout", "message": f"tool timed out after 30s ({number})"}
    entry: dict[str, Any] = {
        "insertId": f"ins-{number:05d}",
        "logName": f"projects/{PROJECT}/logs/glean.workflow_runs",
        "timestamp": payload["end_time"],
        "receiveTimestamp": "2026-11-30T11:00:00Z",
        "severity": "ERROR" if failed else "INFO",
        "resource": {"type": "global", "labels": {"project_id": PROJECT}},
        "labels": {"deployment": "acme"},
        "jsonPayload": payload,
    }
    if trace:
        entry["trace"] = f"projects/{PROJECT}/traces/{number + 1:032x}"
        entry["spanId"] = f"{number + 1:016x}"
    return entry


def export_lines(numbers: range, failed_every: int = 0) -> bytes:
    return b"".join(
        orjson.dumps(workflow_run(n, failed=bool(failed_every) and n % failed_every == 0)) + b"\n"
        for n in numbers
    )


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


class Loop:
    """An event loop on a thread, as the service's: the door runs on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@dataclass
class Door:
    """A durable sink that keeps what it was given, each submit durable at once (or refused)."""

    records: list[OtlpRecord] = field(default_factory=list)
    refuse: bool = False

    def submit(self, record: OtlpRecord) -> Future[None]:
        future: Future[None] = Future()
        if self.refuse:
            future.set_exception(OSError("the log is failing"))
            return future
        self.records.append(record)
        future.set_result(None)
        return future

    def log_records(self) -> list[Any]:
        out = []
        for record in self.records:
            if record.signal != "logs":
                continue
            request = ExportLogsServiceRequest.FromString(record.payload)
            out += [r for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]
        return out

    def uids(self) -> list[str]:
        return [
            next(kv.value.string_value for kv in r.attributes if kv.key == "log.record.uid")
            for r in self.log_records()
        ]


def index() -> RecentSpans:
    return RecentSpans(1_000_000)


@contextmanager
def moto_s3() -> Iterator[str]:
    """A real S3 API server (moto's) on a free loopback port; its endpoint URL. The AWS
    credentials it wants are set in the environment, as the SDKs read them."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    # moto keeps its buckets in the process, across servers: each test starts from none.
    httpx.post(f"http://127.0.0.1:{port}/moto-api/reset", timeout=10).raise_for_status()
    saved = {
        k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def gcs_emulator(bucket: str) -> Iterator[str]:
    """The GCS JSON API emulator (``gcp-storage-emulator``) on a free loopback port, with
    ``bucket``; ``STORAGE_EMULATOR_HOST`` names it, as Google's SDKs read it."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=bucket)
    server.start()
    host = f"http://127.0.0.1:{port}"
    saved = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = host
    try:
        yield host
    finally:
        server.stop()
        if saved is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = saved


@dataclass
class BucketServer(ServerProcess):
    bucket_url: str = ""
    bucket_extra: str = ""
    mapping: str = "workflow_run"
    """More keys under ``receivers.bucket/glean`` (indented four spaces)."""

    def write_config(self) -> None:
        super().write_config()
        text = self.config_path.read_text()
        receiver = (
            f"receivers:\n  bucket/glean:\n    url: {self.bucket_url}\n    mapping: {self.mapping}\n"
            f"    poll_interval: 200ms\n{self.bucket_extra}\n"
        )
        text = text.replace("receivers:\n", receiver, 1)
        text += (
            "service:\n  pipelines:\n    traces:\n      receivers: [otlp, bucket/glean]\n"
            "      processors: [normalize, classify, cost]\n      exporters: [parquet]\n"
        )
        self.config_path.write_text(text)
