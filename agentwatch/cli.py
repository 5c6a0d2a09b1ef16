"""The ``agentwatch`` command line."""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click
import duckdb
from rich.console import Console

from agentwatch.cli_alerts import alerts_group
from agentwatch.cli_cases import review
from agentwatch.cli_common import load_or_exit, usable_data_dir
from agentwatch.cli_cost import cost
from agentwatch.cli_eval import eval_group
from agentwatch.cli_import import import_command
from agentwatch.cli_report import cases, report
from agentwatch.cli_seer import import_seer
from core.errors import AgentwatchError

if TYPE_CHECKING:  # the config model (pydantic) loads only for commands that parse a config
    from agentwatch.config import AgentwatchConfig
    from agentwatch.service import Service

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _self_command() -> str:
    """How the user invoked us, so printed hints can be pasted as they are (``.venv/bin/agentwatch``)."""
    invoked = Path(sys.argv[0])
    if invoked.name == "agentwatch" and invoked.parent != Path():
        return str(invoked)
    return "agentwatch"


def _load(config_path: str | None, data_dir: str | None) -> AgentwatchConfig:
    return load_or_exit(config_path, data_dir)


@click.group()
@click.version_option(package_name="agentwatch")
def main() -> None:
    """agentwatch: an OpenTelemetry-native backend that watches AI agents in production."""


@main.command()
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="YAML config (Collector schema)."
)
@click.option("--data-dir", help="Where Parquet and the write-ahead log live (default ./agentwatch-data).")
@click.option("--demo", is_flag=True, help="Also send demo traffic to the service in the background.")
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
def serve(config_path: str | None, data_dir: str | None, demo: bool, log_level: str) -> None:
    """Start the OTLP receivers, the pipelines and the API."""
    from core.shutdown import EXIT_INTERNAL_FAILURE, install_early

    # First of all (the entry point already did, before the imports): a signal from here on is
    # a request to stop, never a kill.
    signals = install_early()
    logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT)
    from core.logthrottle import install_log_throttle
    from core.proclimits import raise_fd_limit, tune_malloc

    install_log_throttle()  # a line repeated in a storm is logged a few times, then summarised
    raise_fd_limit()  # many idle clients must not exhaust file descriptors before the limits act
    tune_malloc()  # freed request bodies go back to the system: RSS follows the memory in use
    config = _load(config_path, data_dir)
    usable_data_dir(config.storage.data_dir, "serve", creates=True)
    signals.timeout = config.storage.shutdown_timeout
    converter = None
    if config.storage.converter == "process":
        # The workers warm up (imports, compiled kernels) while this process imports the rest
        # and opens its ports: /readyz is 200 as soon as one of them is warm.
        from agentwatch.converter import ProcessConverter

        converter = ProcessConverter(config)
        converter.start()

    from agentwatch.service import Service

    service = Service(config, converter)
    try:
        service.start()
    except AgentwatchError as exc:
        click.echo(f"agentwatch: {exc}", err=True)
        service.converter.shutdown()  # the workers started above (a no-op when it never started)
        sys.exit(2)
    if not signals.requested:
        _announce(service, config, demo)
    if signals.wait(service.failed):
        service.stop()
        click.echo("agentwatch: stopped cleanly")
        _exit_now(0)
    click.echo(f"agentwatch: internal failure ({service.failure}); stopping for a restart", err=True)
    signals.arm_watchdog()
    service.stop()
    _exit_now(EXIT_INTERNAL_FAILURE)


def _exit_now(code: int) -> None:
    """Everything is in Parquet or the write-ahead log: exit without waiting for threads still
    blocked on the network (an eval case calling a hung target, a webhook that never answers),
    which the interpreter's own exit would join forever."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _announce(service: Service, config: AgentwatchConfig, demo: bool) -> None:
    ports = service.endpoints
    grpc_port, http_port = ports.first("grpc"), ports.first("http")
    click.echo(f"agentwatch is running; data in {Path(config.storage.data_dir).resolve()}")
    if grpc_port:
        click.echo(f"  OTLP/gRPC  :{grpc_port}   OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:{grpc_port}")
    if http_port:
        click.echo(f"  OTLP/HTTP  :{http_port}   POST http://localhost:{http_port}/v1/traces")
    click.echo(f"  API        :{ports.api}   http://localhost:{ports.api}/healthz")
    me = _self_command()
    click.echo(f'  see data:  {me} query --data-dir {config.storage.data_dir} "SELECT * FROM runs LIMIT 10"')
    if demo:
        _start_demo(grpc_port, http_port, ports.api)
    else:
        click.echo(f"  demo data: {me} demo   (or start with: {me} serve --demo)")


def _start_demo(grpc_port: int | None, http_port: int | None, api_port: int) -> None:
    from agentwatch.demo import run_demo

    protocol: Literal["grpc", "http"] = "grpc" if grpc_port else "http"
    port = grpc_port or http_port
    if not port:
        return
    endpoint = f"http://127.0.0.1:{port}"
    api = f"http://127.0.0.1:{api_port}"

    def feed() -> None:
        try:
            summary = run_demo(endpoint, protocol=protocol, runs=300, api=api)
        except RuntimeError as exc:
            logging.getLogger("agentwatch.demo").error("demo traffic failed: %s", exc)
            return
        click.echo(
            f"demo: sent {summary.runs} runs ({summary.spans} spans, {summary.failed_runs} failed) "
            f"and {summary.feedback} pieces of their users' feedback. "
            f"Try: {_self_command()} query "
            '"SELECT agent_name, outcome, count(*) AS runs FROM runs GROUP BY ALL ORDER BY ALL"'
        )

    threading.Thread(target=feed, name="agentwatch-demo", daemon=True).start()


@main.command()
@click.argument("config_file", type=click.Path(dir_okay=False))
def validate(config_file: str) -> None:
    """Check a config file without starting anything."""
    config = _load(config_file, None)
    pipes = ", ".join(config.pipelines)
    click.echo(
        f"{config_file}: valid ({len(config.receivers)} receivers, {len(config.processors)} processors, "
        f"{len(config.exporters)} exporters; pipelines: {pipes})"
    )


@main.command()
@click.argument("sql")
@click.option("--data-dir", help="Data directory (default: the config's storage.data_dir).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "table", "vertical", "csv", "json"]),
    help="auto: a table when it fits the terminal, else one field per line (vertical).",
)
def query(sql: str, data_dir: str | None, config_path: str | None, fmt: str) -> None:
    """Run SQL against the views (spans, runs, logs, feedback, usage...), also while the server runs."""
    from agentwatch.cli_common import connect_or_exit, has_data, listing_or_exit, terminal_width
    from agentwatch.queryformat import print_result, to_csv, to_json
    from core.safetext import printable_lines

    directory = usable_data_dir(_load(config_path, data_dir).storage.data_dir, "query")
    with listing_or_exit(directory, "query"):
        stored = has_data(directory)
    if not stored:
        click.echo(
            f"agentwatch query: nothing stored in {printable_lines(directory)} yet "
            "(send some with `agentwatch demo`, or pass the server's --data-dir)",
            err=True,
        )
        sys.exit(1)
    con = connect_or_exit(directory, "query", analyst_views=True)
    try:
        cursor = con.execute(sql)
        rows = cursor.fetchall() if cursor.description else []
    except duckdb.Error as exc:
        click.echo(printable_lines(f"agentwatch query: {exc}"), err=True)  # it may quote stored values
        sys.exit(1)
    columns = [d[0] for d in cursor.description or []]
    if fmt == "json":
        click.echo(to_json(columns, rows))
    elif fmt == "csv":
        click.echo(to_csv(columns, rows), nl=False, color=True)  # data: click would strip ANSI-like bytes
    else:
        layout: Literal["auto", "table", "vertical"] = (
            "table" if fmt == "table" else ("vertical" if fmt == "vertical" else "auto")
        )
        print_result(columns, rows, Console(width=terminal_width()), layout)


@main.command()
@click.option(
    "--endpoint",
    default=None,
    help="Receiver endpoint (default http://127.0.0.1:4317 for grpc, :4318 for http).",
)
@click.option("--protocol", default="grpc", type=click.Choice(["grpc", "http"]))
@click.option("--runs", default=200, show_default=True, help="Agent runs to send.")
@click.option("--seed", default=7, show_default=True)
@click.option(
    "--tenant",
    default=None,
    help="File every run under this tenant (default: each demo agent's own, acme or globex).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="The server's config: its OTLP endpoint and API, and each tenant's ingest token when it has auth.",
)
@click.option(
    "--api",
    default=None,
    help="The server's API, where the runs' users post their feedback "
    "(default: the config's api.endpoint, else http://127.0.0.1:8080).",
)
@click.option("--no-feedback", is_flag=True, help="Send the runs only, no user feedback.")
def demo(
    endpoint: str | None, protocol: str, runs: int, seed: int, tenant: str | None, config_path: str | None,
    api: str | None, no_feedback: bool,
) -> None:  # fmt: skip
    """Send realistic agent traffic to a running receiver with the OpenTelemetry SDK, then some of
    the runs' users' feedback (thumbs, ratings, comments) to its API."""
    from rich.progress import Progress

    from agentwatch.demo import run_demo
    from agentwatch.demo_target import DemoTargetError, api_url, demo_target

    tenant_headers = None
    if config_path is not None:
        config = load_or_exit(config_path, None)
        try:
            found, tenant_headers = demo_target(config, protocol, tenant)
        except DemoTargetError as exc:
            click.echo(f"agentwatch demo: {exc}", err=True)
            sys.exit(1)
        endpoint = endpoint or found
        api = api or api_url(config)
    # The API is guessed (the default port) only beside the default endpoint: a receiver named
    # by --endpoint may be a collector's, whose API is not there to guess.
    guessed = api is None and endpoint is None
    endpoint = endpoint or ("http://127.0.0.1:4317" if protocol == "grpc" else "http://127.0.0.1:4318")
    api = None if no_feedback else api or ("http://127.0.0.1:8080" if guessed else None)
    if api is None and not no_feedback:
        click.echo("agentwatch demo: sending the runs without the users' feedback (pass --api, the server's "
                   "API, to post it too)", err=True)  # fmt: skip
    with Progress(transient=True, console=Console(stderr=True)) as progress:
        task = progress.add_task("sending demo runs", total=runs)
        try:
            summary = run_demo(
                endpoint,
                protocol="grpc" if protocol == "grpc" else "http",
                runs=runs,
                seed=seed,
                tenant=tenant,
                tenant_headers=tenant_headers,
                progress=lambda n: progress.update(task, completed=n),
                api=api,
            )
        except RuntimeError as exc:
            click.echo(f"agentwatch demo: {exc}", err=True)
            sys.exit(1)
    click.echo(
        f"sent {summary.runs} runs, {summary.spans} spans, {summary.log_records} log records to {endpoint} "
        f"({protocol}); "
        f"{summary.failed_runs} failed, {summary.degraded_runs} degraded; "
        f"agents {', '.join(summary.agents)}; tenants {', '.join(summary.tenants)}"
    )
    if api is not None:
        click.echo(
            f"posted {summary.feedback} pieces of the users' feedback on them to {api} "
            f"({summary.negative_feedback} negative)"
        )
    click.echo(
        f"see them: {_self_command()} query "
        '"SELECT agent_name, outcome, failure_type, count(*) AS runs '
        'FROM runs GROUP BY ALL ORDER BY ALL"'
    )


@main.command()
def warmup() -> None:
    """Compile the normaliser's kernels into numba's cache now (in an image: RUN agentwatch warmup)."""
    import time

    from processors.normalize import processor

    started = time.monotonic()
    processor.create(processor.Config(), None).start()  # type: ignore[arg-type]
    click.echo(
        f"agentwatch warmup: the normaliser's kernels are compiled and cached "
        f"({time.monotonic() - started:.1f} s)"
    )


main.add_command(report)
main.add_command(cases)
cases.add_command(review)
main.add_command(cost)
main.add_command(eval_group)
eval_group.add_command(import_seer)
main.add_command(alerts_group)
main.add_command(import_command)
