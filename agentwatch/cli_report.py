"""``agentwatch report`` and ``agentwatch cases export``: agent health from the stored runs.

Their scope options and what they read (``scope_options``, ``scope_of``, ``settings_of``,
``described``) are ``agentwatch cost``'s too (``agentwatch.cli_cost``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click
import orjson

from agentwatch.cli_common import connect_or_exit, load_or_exit, usable_data_dir
from core.errors import ConfigError

if TYPE_CHECKING:
    from core.agents import AgentConfig
    from storage.runs import Scope

_FORMATS = ["text", "json", "markdown", "html"]


def _until(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time like 2026-11-22T10:00:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


F = TypeVar("F", bound=Callable[..., None])


def _synthetic(include: bool) -> bool | None:
    """``Scope.synthetic`` for ``--include-synthetic``: production runs only unless asked."""
    return None if include else False


def scope_of(
    since: str, agent: str | None, tenant: str | None, until_text: str | None, include_synthetic: bool
) -> Scope:
    """The runs the scope options ask for; a bad ``--since`` is a usage error naming it."""
    from core.units import parse_window
    from storage.runs import Scope

    try:
        return Scope.last(
            parse_window(since), agent, tenant, _until(until_text), _synthetic(include_synthetic)
        )
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


def settings_of(
    config_path: str | None, data_dir: str | None, command: str
) -> tuple[str, tuple[AgentConfig, ...]]:
    """(data directory, agents) for the reading command ``agentwatch <command>``; a data directory
    it cannot read is one line on stderr and exit status 2 (``cli_common.usable_data_dir``).

    Without --config nothing is parsed: the built-in default has no agents, and validating it
    would import every pipeline component (numba, polars) just to read Parquet."""
    if config_path is None:
        if data_dir is None:
            from agentwatch.settings import StorageConfig

            data_dir = StorageConfig().data_dir
        settings: tuple[str, tuple[AgentConfig, ...]] = (data_dir, ())
    else:
        config = load_or_exit(config_path, data_dir)
        settings = (config.storage.data_dir, config.agents)
    usable_data_dir(settings[0], command)
    return settings


def described(scope: Scope) -> str:
    """The scope in words: ``(agent expense-bot, tenant acme, 2026-11-23 10:00 → 2026-11-30 10:00 UTC)``."""
    parts = [f"agent {scope.agent}"] if scope.agent else []
    parts += [f"tenant {scope.tenant}"] if scope.tenant else []
    parts.append(f"{scope.since:%Y-%m-%d %H:%M} → {scope.until:%Y-%m-%d %H:%M} UTC")
    return "(" + ", ".join(parts) + ")"


def scope_options(command: F) -> F:
    for option in reversed(
        [
            click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config."),
            click.option("--data-dir", help="Data directory (default: the config's storage.data_dir)."),
            click.option("--agent", help="Only this agent (agent_id, else agent_name)."),
            click.option("--tenant", help="Only this tenant."),
            click.option("--since", default="7d", show_default=True, help="Window length: 30m, 12h, 7d, 2w."),
            click.option("--until", "until_text", help="End of the window, ISO 8601 (default: now)."),
            click.option(
                "--include-synthetic",
                is_flag=True,
                help="Count synthetic runs (agentwatch's own eval traffic) too; left out by default.",
            ),
        ]
    ):
        command = option(command)
    return command


@click.command()
@scope_options
@click.option("--format", "fmt", default="text", type=click.Choice(_FORMATS), show_default=True)
@click.option("--top", default=5, show_default=True, help="Affected users listed per agent.")
@click.option("--signals", "signal_count", default=10, show_default=True, help="Failure signals listed.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
@click.option(
    "--implicit/--no-implicit",
    "with_implicit",
    default=None,
    help="Implicit feedback (requeries, abandoned sessions, failure streaks) and fallbacks per agent; "
    "read from the runs' input texts, so on by default for one agent (--agent), off for all.",
)
def report(
    config_path: str | None,
    data_dir: str | None,
    agent: str | None,
    tenant: str | None,
    since: str,
    until_text: str | None,
    include_synthetic: bool,
    fmt: str,
    top: int,
    signal_count: int,
    output: Path | None,
    with_implicit: bool | None,
) -> None:
    """Agent health: failure rate over time, failure types, latency, affected users, cross-user
    failures and the top failure signals."""
    from report import formats as report_formats
    from report.health import IMPLICIT_COLUMNS, NAME_COLUMNS, build_report
    from report.signals import clusters
    from storage.runs import runs_in

    directory, agents = settings_of(config_path, data_dir, "report")
    scope = scope_of(since, agent, tenant, until_text, include_synthetic)
    # One agent's report reads its implicit feedback too (the input texts of its runs: seconds for
    # every agent of a week of millions of runs, so all agents' only with --implicit).
    implicit_wanted = bool(agent) if with_implicit is None else with_implicit
    columns = (*NAME_COLUMNS, *IMPLICIT_COLUMNS) if implicit_wanted else NAME_COLUMNS
    implicit = load_or_exit(config_path, data_dir).feedback if config_path and implicit_wanted else None
    runs = runs_in(connect_or_exit(directory, "report"), scope, columns)
    health = build_report(runs, agents, top, implicit)
    signals = clusters(runs, signal_count)
    if fmt == "json":
        text = orjson.dumps(report_formats.to_json_dict(health, signals), option=orjson.OPT_INDENT_2).decode()
    elif fmt == "markdown":
        text = report_formats.render_markdown(health, signals)
    elif fmt == "html":
        from report.html import render_html

        text = render_html(health, signals)
    else:
        text = report_formats.render_text(health, signals)
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output} ({health.runs} runs, {len(health.agents)} agents)", err=True)


@click.group()
def cases() -> None:
    """Production failures as eval cases."""


@cases.command("export")
@scope_options
@click.option("--cluster", help="Only runs of this failure signal (its id in the report).")
@click.option(
    "--feedback",
    type=click.Choice(["negative"]),
    help="The runs users rated down instead (failed or not), their comments as the guidance.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="JSONL file to write.",
)
def export(
    config_path: str | None,
    data_dir: str | None,
    agent: str | None,
    tenant: str | None,
    since: str,
    until_text: str | None,
    include_synthetic: bool,
    cluster: str | None,
    feedback: str | None,
    output: Path,
) -> None:
    """Write failed runs (or those users rated down) as dataset cases (JSONL) the eval runner reads."""
    from report.cases import export_cases, export_feedback_cases
    from storage.runs import TEXTS, UNSUCCESSFUL_SQL, runs_in

    directory, _ = settings_of(config_path, data_dir, "cases export")
    con = connect_or_exit(directory, "cases export")
    scope = scope_of(since, agent, tenant, until_text, include_synthetic)
    if feedback is not None:
        if cluster is not None:
            raise click.BadParameter("--cluster and --feedback do not go together", param_hint="--feedback")
        with output.open("wb") as handle:
            rated = export_feedback_cases(runs_in(con, scope), handle)
        left = rated.skipped_without_input
        skipped = f"; {left} skipped (no input recorded)" if left else ""
        click.echo(f"wrote {rated.written} cases of runs rated down to {output}{skipped}", err=True)
        if rated.written == 0 and not rated.skipped_without_input:
            click.echo(f"agentwatch cases export: warning: no negative feedback on runs {described(scope)}",
                       err=True)  # fmt: skip
        return
    runs = runs_in(con, scope, TEXTS)
    with output.open("wb") as handle:
        result = export_cases(runs, handle, cluster)
    note = (
        f"; {result.skipped_without_input} failed runs skipped (no input recorded)"
        if result.skipped_without_input
        else ""
    )
    click.echo(f"wrote {result.written} cases to {output}{note}", err=True)
    if result.written == 0:
        ((matched, unsuccessful),) = runs.query(
            f"SELECT count(*), count(*) FILTER (WHERE {UNSUCCESSFUL_SQL}) FROM runs"
        )
        what = described(scope)
        warning = "agentwatch cases export: warning:"
        if matched == 0:
            click.echo(f"{warning} no runs matched {what}", err=True)
        elif cluster and not result.skipped_without_input:
            click.echo(f"{warning} no run of signal {cluster} among the {matched} runs matched {what}",
                       err=True)  # fmt: skip
        elif unsuccessful == 0:
            click.echo(f"{warning} {matched} runs matched {what}, none failed or degraded", err=True)
        else:
            click.echo(
                f"agentwatch cases export: the {result.skipped_without_input} failed or degraded runs "
                f"matched {what} recorded no input text (capture_text: false, or an instrumentation "
                "that records none on the run span): no case can be made of them",
                err=True,
            )
            sys.exit(1)
