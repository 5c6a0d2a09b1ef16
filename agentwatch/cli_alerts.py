"""``agentwatch alerts``: list the stored alert events, send a rule's sample message."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click
import orjson

from agentwatch.cli_common import connect_or_exit, load_or_exit
from core.agents import agent_label
from core.errors import ConfigError
from core.safetext import cell, printable


@click.group("alerts")
def alerts_group() -> None:
    """Alerts: what fired, repeated and resolved; test a rule's notifiers."""


@alerts_group.command("list")
@click.option("--since", default="7d", show_default=True, help="How far back: 30m, 12h, 7d, 2w.")
@click.option("--rule", help="Only this rule.")
@click.option("--agent", help="Only this agent.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config.")
@click.option("--data-dir", help="Data directory (default: the config's storage.data_dir).")
@click.option("--format", "fmt", default="text", type=click.Choice(["text", "json"]), show_default=True)
def list_command(
    since: str, rule: str | None, agent: str | None, config_path: str | None, data_dir: str | None, fmt: str
) -> None:
    """Alert events, newest first."""
    from rich.console import Console
    from rich.table import Table

    from core.units import parse_window

    config = load_or_exit(config_path, data_dir)
    try:
        window = parse_window(since)
    except ConfigError as exc:
        raise click.BadParameter(str(exc).removeprefix("--since: "), param_hint="--since") from None
    where = ["time >= $since"]
    params: dict[str, object] = {"since": datetime.now(UTC) - window}
    if rule is not None:
        where.append("rule = $rule")
        params["rule"] = rule
    if agent is not None:  # an agent's id or its name
        where.append("(agent = $agent OR agent_name = $agent)")
        params["agent"] = agent
    cursor = connect_or_exit(config.storage.data_dir, "alerts list").execute(
        f"""SELECT time, state, rule, kind, tenant, agent, agent_name, value, threshold, summary, delivered,
                   failed
            FROM alert_events WHERE {" AND ".join(where)} ORDER BY time DESC, rule, agent""",
        params,
    )
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    if fmt == "json":
        for row in rows:
            row["delivered"], row["failed"] = orjson.loads(row["delivered"]), orjson.loads(row["failed"])
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    if not rows:
        click.echo(f"no alert events in the last {since}")
        return
    table = Table("time", "state", "rule", "tenant", "agent", "what", "delivered", "failed")
    for row in rows:
        cells = (row["time"].strftime("%Y-%m-%d %H:%M:%S"), row["state"], row["rule"], row["tenant"],
                 agent_label(row["agent"], row["agent_name"]), row["summary"],
                 ", ".join(orjson.loads(row["delivered"])) or "-",
                 ", ".join(orjson.loads(row["failed"])) or "-")  # fmt: skip
        table.add_row(*map(cell, cells))
    Console(width=200).print(table)


@alerts_group.command("test")
@click.option("--rule", "rule_name", required=True, help="The rule whose notifiers get a sample message.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config.")
def test_command(rule_name: str, config_path: str | None) -> None:
    """Send a sample message of RULE to each of its notifiers; exit 1 when one fails."""
    from alerting.alerting import Alerting
    from alerting.messages import Message, agent_url
    from alerting.rules import Finding

    config = load_or_exit(config_path, None)
    rule = config.alerts.rule(rule_name)
    if rule is None:
        known = ", ".join(r.name for r in config.alerts.rules) or "none defined"
        raise click.BadParameter(
            f"{rule_name!r} is not a rule under alerts.rules ({known})", param_hint="--rule"
        )
    if not rule.notify:
        raise click.BadParameter(f"rule {rule_name!r} notifies nobody (its notify: list is empty)",
                                 param_hint="--rule")  # fmt: skip
    now = datetime.now(UTC)
    agent = rule.agent or "sample-agent"
    tenant = rule.tenant or "default"
    finding = Finding(
        rule.name, rule.kind, tenant, agent, rule.threshold_value(), rule.threshold_value(),
        f"this is a test of rule {rule.name} ({rule.kind}); nothing crossed a threshold", runs=0,
        affected_users=0, top_failure_types=(("timeout", 1),), example_trace_ids=("0" * 32,),
    )  # fmt: skip
    alerting = Alerting(
        config.alerts, config.agents, Path(config.storage.data_dir), budgets=config.budgets,
        implicit=config.feedback,
    )  # fmt: skip
    url = agent_url(config.alerts.public_url, tenant, agent)
    try:
        deliveries = alerting.send(Message("test", finding, now, now, url), rule.notify)
    finally:
        alerting.stop()
    for delivery in deliveries:
        status = "delivered" if delivery.ok else f"FAILED: {delivery.error}"  # may quote the reply
        attempts = f"{delivery.attempts} attempt{'s' * (delivery.attempts != 1)}"
        click.echo(printable(f"{delivery.notifier}: {status} ({attempts})"))
    if not all(d.ok for d in deliveries):
        sys.exit(1)
