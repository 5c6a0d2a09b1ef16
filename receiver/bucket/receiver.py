"""The ``bucket`` receiver: log records (and OTLP JSON traces) in a bucket or a directory.

receivers:
  bucket/glean_logs:
    url: gs://acme-logs/workflow_runs/   # or s3://bucket/prefix/, or /a/local/directory
    endpoint_url: null                   # an S3-compatible endpoint (MinIO, R2...), or a GCS emulator
    poll_interval: 30s                   # how often the bucket is listed for new or changed objects
    format: auto                         # auto | cloud_logging | jsonl | otlp_json | parquet
    mapping: workflow_run                # null, workflow_run, or a mapping (receiver/bucket/mapping.py)
    tenant: null                         # store everything under this tenant; null: the records say
    max_object_mib: null                 # larger objects are quarantined whole, unread; null: no bound
    max_line_mib: 16                     # longer lines are quarantined and skipped
    max_batch_records: 1000              # records per request handed to the write-ahead log
    max_batch_mib: 4                     # ... or source bytes
    max_records_per_second: null         # read no faster (a backlog then leaves the server's
                                         # interpreter to the OTLP receivers); null: no bound
service:
  pipelines:
    traces:
      receivers: [otlp, bucket/glean_logs]

Credentials come from the environment as the cloud SDKs find them (``AWS_*``,
``GOOGLE_APPLICATION_CREDENTIALS``, the metadata server; ``STORAGE_EMULATOR_HOST`` for a GCS
emulator), never from this file. Records go through the same door as OTLP exports (screened,
deduplicated by digest, durable in the write-ahead log); the cursor under
``<data_dir>/bucket/<id>/`` is committed only after, so every record is stored exactly once
across restarts (``receiver.bucket.reader``). Bad lines are quarantined in
``<data_dir>/bucket/<id>/quarantine.jsonl``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from core import supervision
from core.component import ReceiverCounters, ReceiverSettings
from core.configmodel import STRICT
from core.model import Signal
from core.units import Duration
from receiver.bucket.cursor import Cursor, Quarantine, state_dir
from receiver.bucket.formats import FORMATS, Decoder
from receiver.bucket.mapping import BUILT_IN, MappingConfig, resolve
from receiver.bucket.reader import BucketReader, Limits, Refused, Submit
from receiver.bucket.source import Bucket, parse_url
from receiver.otlp.handler import ExportHandler, ExportResult, TenantKeys, TimeWindow

TYPE = "bucket"
MIB = 1024 * 1024
log = logging.getLogger("agentwatch.bucket")


@dataclass(frozen=True)
class Config:
    __pydantic_config__ = STRICT
    url: str
    """``gs://bucket/prefix/``, ``s3://bucket/prefix/`` or a local directory (or one file)."""
    endpoint_url: str | None = None
    """An S3-compatible endpoint (``http://minio:9000``), or a GCS endpoint other than Google's."""
    poll_interval: Duration = 30.0
    format: str = "auto"
    mapping: MappingConfig | str | None = None
    """``workflow_run`` (built in), a mapping of its own (``receiver.bucket.mapping``), or null:
    records are stored as log records only (those naming an agent event are still events)."""
    tenant: str | None = None
    max_object_mib: float | None = None
    max_line_mib: float = 16.0
    max_batch_records: int = 1000
    max_batch_mib: float = 4.0
    max_records_per_second: float | None = None
    """Read no faster than this: the reading shares the server's interpreter with the OTLP
    receivers, and a large backlog read at full speed slows their answers."""

    def validate(self) -> list[str]:
        problems = []
        try:
            parse_url(self.url)
        except ValueError as exc:
            problems.append(f"url: {exc}")
        if not self.url.strip():
            problems.append("url: must not be empty")
        if self.format not in FORMATS:
            problems.append(f"format: {self.format!r} is not one of {', '.join(FORMATS)}")
        if isinstance(self.mapping, str) and self.mapping not in BUILT_IN:
            problems.append(
                f"mapping: {self.mapping!r} is not a built-in mapping (known: {', '.join(BUILT_IN)})"
            )
        elif isinstance(self.mapping, MappingConfig):
            problems += [f"mapping.{p}" for p in self.mapping.validate()]
        if self.poll_interval <= 0:
            problems.append("poll_interval: must be positive")
        for key in ("max_line_mib", "max_batch_mib"):
            if getattr(self, key) <= 0:
                problems.append(f"{key}: must be positive")
        if self.max_object_mib is not None and self.max_object_mib <= 0:
            problems.append("max_object_mib: must be positive (or null: no bound)")
        if self.max_records_per_second is not None and self.max_records_per_second <= 0:
            problems.append("max_records_per_second: must be positive (or null: no bound)")
        if self.max_batch_records < 1:
            problems.append("max_batch_records: must be at least 1")
        return problems


class BucketReceiver:
    def __init__(self, config: Config, settings: ReceiverSettings) -> None:
        if settings.data_dir is None:
            raise ValueError("the bucket receiver keeps its cursor in the data directory: none was given")
        self.config = config
        self.id = settings.id
        self.data_dir = Path(settings.data_dir)
        self.handler = ExportHandler(
            settings.sink,
            settings.id,
            settings.stored,
            TenantKeys(settings.tenant_attributes),
            settings.budget,
            TimeWindow(settings.retention, None),
        )
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.reader: BucketReader | None = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.thread = supervision.start_thread(f"bucket:{self.id}", self._run)

    def submit(self, payload: bytes, signal: Signal, items: int) -> Future[ExportResult]:
        """A chunk through the door, on the service's event loop (from the reading thread)."""
        assert self.loop is not None
        coroutine = self.handler.export(payload, "protobuf", self.config.tenant, signal)
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def _run(self) -> None:
        reader = build_reader(self.config, self.data_dir, self.id, self.submit, self.stopping)
        self.reader = reader
        log.info("%s: reading %s every %gs", self.id, self.config.url, self.config.poll_interval)
        backoff = 1.0
        try:
            while not self.stopping.is_set():
                wait = self.config.poll_interval
                try:
                    read = reader.poll()
                    backoff = 1.0
                    if read:
                        log.info("%s: %d records read; totals %s", self.id, read, reader.counts.as_dict())
                except Refused as exc:
                    reader.counts.errors += 1
                    wait, backoff = min(backoff, self.config.poll_interval), min(backoff * 2, 30.0)
                    log.warning("%s: the write-ahead log did not take records (%s); reading again in %gs",
                                self.id, exc, wait)  # fmt: skip
                except Exception as exc:  # the bucket unreachable, a listing or a read failing
                    reader.counts.errors += 1
                    wait, backoff = min(backoff, self.config.poll_interval), min(backoff * 2, 30.0)
                    log.warning("%s: reading %s failed (%s: %s); again in %gs",
                                self.id, self.config.url, type(exc).__name__, exc, wait)  # fmt: skip
                self.stopping.wait(wait)
        finally:
            reader.cursor.close()

    def endpoints(self) -> dict[str, int]:
        return {}  # no port: objects are found by polling

    def counters(self) -> ReceiverCounters:
        counts = self.handler.counters()
        bad = self.reader.counts.bad_records if self.reader is not None else 0
        if not bad:
            return counts
        refused = {**counts.refused, "bad_record": bad}
        return ReceiverCounters(
            counts.accepted_spans, counts.rejected_spans, counts.duplicate_spans, refused,
            counts.accepted_log_records, counts.rejected_log_records, counts.duplicate_log_records,
        )  # fmt: skip

    async def shutdown(self, grace: float = 5.0) -> None:
        # The reading thread stops between chunks; what it handed the door is committed there
        # (or read again at the next start, and deduplicated). Joined off the event loop, which
        # the thread's last chunk may still need.
        self.stopping.set()
        thread = self.thread
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, thread.join, max(grace, 0.1))


def build_reader(
    config: Config,
    data_dir: Path,
    state_id: str,
    submit: Submit,
    stopping: threading.Event | None = None,
) -> BucketReader:
    """The reader of ``config``'s objects, its cursor and quarantine under ``data_dir``."""
    directory = state_dir(data_dir, state_id)
    limits = Limits(
        max_records=config.max_batch_records,
        max_chunk_bytes=int(config.max_batch_mib * MIB),
        max_line_bytes=int(config.max_line_mib * MIB),
        max_object_bytes=int(config.max_object_mib * MIB) if config.max_object_mib is not None else None,
        max_records_per_second=config.max_records_per_second,
    )
    return BucketReader(
        Bucket(config.url, config.endpoint_url),
        Decoder(config.format, resolve(config.mapping)),
        Cursor(directory),
        Quarantine(directory),
        submit,
        limits,
        stopping or threading.Event(),
    )


def create(config: Config, settings: ReceiverSettings) -> BucketReceiver:
    return BucketReceiver(config, settings)
