"""``agentwatch cost``: spend by a dimension, budgets and the forecast, where money leaks, and
``agentwatch cost export``: the month's chargeback ledger and invoice previews."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import click
import orjson

from agentwatch.cli_common import connect_or_exit, load_or_exit
from agentwatch.cli_report import described, scope_of, scope_options, settings_of


@click.group("cost", invoke_without_command=True)
@scope_options
@click.option(
    "--by",
    "by",
    default="agent",
    show_default=True,
    type=click.Choice(
        ["tenant", "agent", "user", "team", "org", "workspace", "project", "workflow", "model", "provider"]
    ),
)
@click.option(
    "--format", "fmt", default="text", type=click.Choice(["text", "json", "csv"]), show_default=True
)
@click.option(
    "--forecast",
    is_flag=True,
    help="Add this month's spend to date and its month-end forecast (not by model or provider).",
)
@click.option("--budgets", "show_budgets", is_flag=True, help="Also each budget (the config's budgets:).")
@click.option(
    "--leaks",
    "show_leaks",
    is_flag=True,
    help="Also where money leaks per agent: failed runs, retries, loops, oversized prompts, unused tools.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
@click.pass_context
def cost(
    ctx: click.Context,
    config_path: str | None,
    data_dir: str | None,
    agent: str | None,
    tenant: str | None,
    since: str,
    until_text: str | None,
    include_synthetic: bool,
    by: str,
    fmt: str,
    forecast: bool,
    show_budgets: bool,
    show_leaks: bool,
    output: Path | None,
) -> None:
    """Spend by tenant, agent, user, team, org, workspace, project, workflow, model or provider:
    runs, cost per run and per successful run, tokens, cache hits, and the models with no known
    price. ``agentwatch cost export`` writes a month's chargeback ledger."""
    if ctx.invoked_subcommand is not None:
        return
    from report.cost import (
        COST_BASE,
        cost_columns,
        cost_report,
        render_budgets,
        render_cost_csv,
        render_cost_text,
        render_leaks,
        report_dict,
    )
    from storage.runs import Scope, runs_in

    directory, _ = settings_of(config_path, data_dir, "cost")
    scope = scope_of(since, agent, tenant, until_text, include_synthetic)
    con = connect_or_exit(directory, "cost")
    # The leaks read the run span too; the cost report alone needs no more than COST_BASE.
    runs = runs_in(con, scope, cost_columns(by), (*COST_BASE, "span_id") if show_leaks else COST_BASE)
    found = cost_report(runs, by)
    leaked = None
    if show_leaks:
        from spend.leaks import leak_dict, leaks

        leaked = [leak_dict(x) for x in leaks(runs)]
    if forecast:
        from dataclasses import replace

        from report.cost import forecasts
        from spend.forecast import HISTORY_DAYS, ForecastUnavailable

        if by in ("model", "provider"):
            raise click.BadParameter("a forecast is not by model or provider", param_hint="--forecast")
        today = scope.until.date()
        month = Scope(
            datetime.combine(min(today.replace(day=1), today - timedelta(days=HISTORY_DAYS)), time(), UTC),
            scope.until,
            agent,
            tenant,
            scope.synthetic,
        )
        try:
            month_runs = runs_in(con, month, cost_columns(by), COST_BASE)
            found = replace(found, forecasts=forecasts(month_runs, by, today))
        except ForecastUnavailable as exc:
            click.echo(f"agentwatch cost: {exc}", err=True)
            sys.exit(1)
    budgets = None
    if show_budgets:
        from spend.budgets import budget_states, state_dict
        from spend.forecast import available

        config = load_or_exit(config_path, data_dir)
        if not config.budgets:
            click.echo("agentwatch cost: no budgets configured (the config's budgets: section)", err=True)
            sys.exit(1)
        states = budget_states(con, config.budgets, scope.until, forecast=available())
        budgets = [state_dict(b) for b in states]
    if fmt == "json":
        doc = report_dict(found) | ({} if budgets is None else {"budgets": budgets})
        doc |= {} if leaked is None else {"leaks": leaked}
        text = orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
    elif fmt == "csv":
        text = render_cost_csv(found)
    else:
        text = render_cost_text(found, described(scope)) + (render_budgets(budgets) if budgets else "")
        text += "" if leaked is None else render_leaks(leaked)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output} ({len(found.rows)} rows, ${found.total_usd:,.2f})", err=True)


@cost.command("export")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config.")
@click.option("--data-dir", help="Data directory (default: the config's storage.data_dir).")
@click.option("--month", required=True, help="The month to bill, YYYY-MM (UTC).")
@click.option("--tenant", help="Only this tenant.")
@click.option(
    "--format",
    "fmt",
    default="csv",
    show_default=True,
    type=click.Choice(["csv", "parquet", "markdown", "html"]),
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (required for parquet).",
)
def export(
    config_path: str | None,
    data_dir: str | None,
    month: str,
    tenant: str | None,
    fmt: str,
    output: Path | None,
) -> None:
    """The month's chargeback ledger per tenant, team, agent and model (list price, discounts and
    markups, credits, billed), as CSV or Parquet, or an invoice preview per tenant (markdown, html)."""
    from report.ledger import invoices_html, invoices_markdown, ledger_csv, write_ledger_parquet
    from spend.ledger import ledger, month_bounds

    try:
        month_bounds(month)
    except ValueError as exc:
        raise click.BadParameter(str(exc).removeprefix("month: "), param_hint="--month") from None
    if fmt == "parquet" and output is None:
        raise click.BadParameter("parquet is written to a file: give -o PATH", param_hint="--format")
    multipliers: dict[str, float] = {}
    credits = []
    if config_path is not None:
        config = load_or_exit(config_path, data_dir)
        directory = config.storage.data_dir
        cost_component = config.processors.get("cost")
        if cost_component is not None:
            multipliers = dict(cost_component.config.tenant_multipliers)
        credits = list(config.chargeback.credits)
    else:
        directory, _ = settings_of(None, data_dir, "cost export")
    con = connect_or_exit(directory, "cost export", analyst_views=True)
    lines = ledger(con, month, multipliers, credits, tenant)
    if fmt == "parquet":
        assert output is not None
        write_ledger_parquet(lines, output)
    else:
        text = (
            ledger_csv(lines)
            if fmt == "csv"
            else invoices_markdown(lines, month)
            if fmt == "markdown"
            else invoices_html(lines, month)
        )
        if output is None:
            click.echo(text, nl=False)
            return
        output.write_text(text, encoding="utf-8")
    billed = sum(line.billed_usd for line in lines)
    click.echo(f"wrote {output} ({len(lines)} lines, ${billed:,.2f} billed)", err=True)
