"""``agentwatch import PATH|URL``: a one-shot backfill of log records and traces from a bucket,
a directory or a file, through the same readers as the ``bucket`` receiver.

Cloud Logging exports, JSON lines, OTLP JSON (the Collector's file exporter, Tempo's trace
dumps: spans that become runs, then eval cases) and Parquet, gzip too. Where the records go is
decided as for ``agentwatch eval run``: this process's own durable ingest path (the write-ahead
log, deduplication, the pipelines) when no server writes the data directory, else the OTLP/HTTP
receiver of the server that does (its write-ahead log and deduplication; no second writer).

Its cursor is kept under ``<data_dir>/bucket/import-<digest of the source and options>/``: an
import that was interrupted resumes where it stood, and one repeated over unchanged objects reads
nothing again (``--again`` reads everything again; what is already stored is still recognised
by the deduplication index while it remembers it).
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agentwatch.cli_common import load_or_exit, usable_data_dir

if TYPE_CHECKING:
    from agentwatch.config import AgentwatchConfig
    from agentwatch.ingest import LogHolder, Route
    from core.model import Signal
    from receiver.bucket.mapping import MappingConfig
    from receiver.otlp.handler import ExportResult

FORMATS = ("auto", "cloud_logging", "jsonl", "otlp_json", "parquet")

SubmitFn = Callable[[bytes, "Signal", int], "Future[ExportResult]"]


@click.command("import")
@click.argument("source")
@click.option("--format", "fmt", default="auto", show_default=True, type=click.Choice(FORMATS))
@click.option(
    "--mapping",
    "mapping_spec",
    help="Records that are agent events: workflow_run (built in), or a YAML file holding a mapping.",
)
@click.option("--tenant", help="Store everything under this tenant (default: what the records say).")
@click.option("--endpoint-url", help="An S3-compatible endpoint (MinIO, R2...) or a GCS emulator.")
@click.option("--again", is_flag=True, help="Read every object from the start, forgetting the last import.")
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="YAML config (Collector schema)."
)
@click.option("--data-dir", help="The data directory (default: the config's).")
def import_command(
    source: str,
    fmt: str,
    mapping_spec: str | None,
    tenant: str | None,
    endpoint_url: str | None,
    again: bool,
    config_path: str | None,
    data_dir: str | None,
) -> None:
    """Backfill log records and traces from SOURCE: gs://bucket/prefix/, s3://bucket/prefix/, a
    directory or a file (credentials from the environment, as the cloud SDKs find them)."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from core.safetext import printable
    from receiver.bucket.reader import Refused
    from receiver.bucket.receiver import Config, build_reader

    config = load_or_exit(config_path, data_dir)
    usable_data_dir(config.storage.data_dir, "import", creates=True)
    mapping = _mapping(mapping_spec)
    bucket_config = Config(url=source, endpoint_url=endpoint_url, format=fmt, mapping=mapping, tenant=tenant)
    problems = bucket_config.validate()
    if problems:
        for problem in problems:
            click.echo(printable(f"agentwatch import: {problem}"), err=True)
        sys.exit(2)
    state = (
        "import-"
        + hashlib.blake2b(
            repr((source, endpoint_url, fmt, mapping, tenant)).encode(), digest_size=6
        ).hexdigest()
    )
    data = Path(config.storage.data_dir)
    if again:
        (data / "bucket" / state / "cursor.jsonl").unlink(missing_ok=True)
    err = Console(stderr=True)

    def notice(text: str) -> None:
        click.echo(printable(f"agentwatch import: {text}"), err=True)

    started = time.monotonic()
    with import_sink(config, tenant, notice) as (submit, route):
        reader = build_reader(bucket_config, data, state, submit)
        try:
            pending = reader.pending(reader.bucket.list())
        except (OSError, ValueError) as exc:
            notice(f"cannot list {source}: {type(exc).__name__}: {exc}")
            sys.exit(1)
        total = sum(info.size for info, _ in pending)
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
        with Progress(*columns, transient=True, console=err) as progress:
            task = progress.add_task(f"importing {len(pending)} objects", total=total or 1)
            reader.progress = lambda done: progress.update(task, completed=done)
            backoff = 0.5
            queue = list(pending)
            while queue:
                info, start = queue[0]
                try:
                    reader.read(info, start)
                    queue.pop(0)
                    backoff = 0.5
                except Refused as exc:
                    reader.counts.errors += 1
                    notice(f"{info.name}: not taken ({exc}); again in {backoff:g}s")
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                    resumed = reader.pending([info])
                    if not resumed:
                        queue.pop(0)
                    else:
                        queue[0] = resumed[0]
        reader.cursor.close()
    counts = reader.counts
    stored = counts.accepted
    duplicates = counts.log_records + counts.spans - counts.accepted - counts.rejected
    read = f"  {counts.log_records} log records and {counts.spans} spans: "
    if route.kind == "server":
        # An OTLP answer does not say which items were already stored: the server dropped them.
        outcome = (
            f"{stored} taken by the server (those already stored are not stored again), "
            f"{counts.rejected} rejected"
        )
    else:
        outcome = f"{stored} stored, {duplicates} already stored, {counts.rejected} rejected"
    lines = [
        f"read {counts.records} records from {len(pending)} objects in {time.monotonic() - started:.1f}s "
        f"{route.describe()}",
        read + outcome,
    ]
    if counts.bad_records:
        where = data / "bucket" / state / "quarantine.jsonl"
        lines.append(f"  {counts.bad_records} bad records skipped, quarantined in {where}")
    click.echo("\n".join(printable(line) for line in lines))


def _mapping(spec: str | None) -> MappingConfig | str | None:
    """``--mapping``: a built-in's name, or a YAML file holding a mapping (exit 2 when invalid)."""
    if spec is None:
        return None
    from receiver.bucket.mapping import BUILT_IN, MappingConfig

    if spec in BUILT_IN:
        return spec
    import yaml

    from core.configmodel import build_config

    path = Path(spec)
    if not path.is_file():
        known = ", ".join(BUILT_IN)
        raise click.BadParameter(
            f"{spec!r} is neither a built-in mapping ({known}) nor a file", param_hint="--mapping"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise click.BadParameter(f"{spec}: {exc}", param_hint="--mapping") from None
    if isinstance(data, dict) and isinstance(data.get("mapping"), dict):
        data = data["mapping"]  # a file holding `mapping:` as a receiver's config would
    built, problems = build_config(MappingConfig, data)
    if built is None or problems:
        raise click.BadParameter(f"{spec}: " + "; ".join(problems), param_hint="--mapping")
    return built


# -- where the records go -------------------------------------------------------------------------


@contextmanager
def import_sink(
    config: AgentwatchConfig, tenant: str | None, notice: Callable[[str], None], wait: float = 60.0
) -> Iterator[tuple[SubmitFn, Route]]:
    """A door for the import's records: this process's own ingest path when no other process
    writes the data directory's log (held for the whole import, drained into Parquet on exit),
    else the OTLP/HTTP receiver of the server that does (``agentwatch.ingest.take_log``: another
    import or eval run holding the log is waited for)."""
    from agentwatch.ingest import LogHolder, take_log
    from core.errors import StorageError

    try:
        taken = take_log(config, "import", notice, wait)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None
    if isinstance(taken, LogHolder):
        with _server_sink(config, tenant, taken) as found:
            yield found
        return
    with _local_sink(config, tenant, taken) as found:
        yield found


@contextmanager
def _local_sink(config: AgentwatchConfig, tenant: str | None, lock: Any) -> Iterator[tuple[SubmitFn, Route]]:
    from agentwatch.ingest import Route, receiver_for_records, start_ingest

    ingest = start_ingest(config, "import", lock)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="import-door", daemon=True)
    thread.start()
    receiver_id = receiver_for_records(config)

    def submit(payload: bytes, signal: Signal, items: int) -> Future[ExportResult]:
        handler = ingest.handler(receiver_id)
        return asyncio.run_coroutine_threadsafe(handler.export(payload, "protobuf", tenant, signal), loop)

    try:
        yield submit, Route("log", str(ingest.wal.directory))
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        ingest.stop()


@contextmanager
def _server_sink(
    config: AgentwatchConfig, tenant: str | None, holder: LogHolder
) -> Iterator[tuple[SubmitFn, Route]]:
    import httpx
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    from agentwatch.ingest import Route, bearer_for, no_otlp_http
    from core.errors import StorageError
    from core.httpclient import CallFailed, post
    from evals.tracing import OTLP_POLICY
    from receiver.otlp.handler import ExportResult

    if not holder.endpoints:
        raise click.ClickException(str(no_otlp_http(holder, config, "import")))
    endpoint = holder.endpoints[0]
    traces_url = str(endpoint["url"])
    logs_url = _logs_url(config, str(endpoint.get("receiver", "")), traces_url)
    try:
        auth = bearer_for(config, tenant or "default", holder, traces_url)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None
    headers = {"Content-Type": "application/x-protobuf", **auth}
    client = httpx.Client()
    stamp = tenant if tenant is not None and not auth else None

    def submit(payload: bytes, signal: Signal, items: int) -> Future[ExportResult]:
        future: Future[ExportResult] = Future()
        url = logs_url if signal == "logs" else traces_url
        if stamp is not None:
            payload = _with_tenant(payload, signal, stamp)
        try:
            response, _ = post(client, url, payload, OTLP_POLICY, headers)
        except CallFailed as exc:
            future.set_exception(exc)
            return future
        if signal == "logs":
            logs = ExportLogsServiceResponse.FromString(response.content).partial_success
            rejected, message = logs.rejected_log_records, logs.error_message
        else:
            spans = ExportTraceServiceResponse.FromString(response.content).partial_success
            rejected, message = spans.rejected_spans, spans.error_message
        future.set_result(ExportResult(items - rejected, rejected, message, signal))
        return future

    try:
        yield submit, Route("server", f"{traces_url} (pid {holder.pid})")
    finally:
        client.close()


def _with_tenant(payload: bytes, signal: Signal, tenant: str) -> bytes:
    """Without an ingest token, the tenant a server stores records under is their resource's."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    from evals.tracing import TENANT_ATTRIBUTE

    request: ExportLogsServiceRequest | ExportTraceServiceRequest
    if signal == "logs":
        request = ExportLogsServiceRequest.FromString(payload)
        resources = [r.resource for r in request.resource_logs]
    else:
        request = ExportTraceServiceRequest.FromString(payload)
        resources = [r.resource for r in request.resource_spans]
    for resource in resources:
        kept = [kv for kv in resource.attributes if kv.key != TENANT_ATTRIBUTE]
        del resource.attributes[:]
        named = KeyValue(key=TENANT_ATTRIBUTE, value=AnyValue(string_value=tenant))
        resource.attributes.extend([named, *kept])
    out: bytes = request.SerializeToString()
    return out


def _logs_url(config: AgentwatchConfig, receiver_id: str, traces_url: str) -> str:
    component = config.receivers.get(receiver_id)
    http = getattr(getattr(component.config, "protocols", None), "http", None) if component else None
    traces_path = getattr(http, "traces_url_path", "/v1/traces")
    logs_path = getattr(http, "logs_url_path", "/v1/logs")
    base = (
        traces_url.removesuffix(traces_path)
        if traces_url.endswith(traces_path)
        else traces_url.rsplit("/", 2)[0]
    )
    return f"{base}{logs_path}"
