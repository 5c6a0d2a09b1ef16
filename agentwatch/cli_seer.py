"""``agentwatch eval import-seer PATH``: a Seer database (its SQLite file) into datasets, eval runs,
results and scores (``evals.seer``, ``evals.seerimport``), and the ``evals.seer`` config that
scores new runs under its dimension names and weights (``evals.judges.seer``)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from agentwatch.cli_common import load_or_exit, usable_data_dir
from core.errors import DatasetError
from core.safetext import printable


@click.command("import-seer")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option(
    "--datasets-dir", default="seer-datasets", show_default=True, type=click.Path(file_okay=False),
    help="Where each eval set's cases are written, one JSONL dataset per set.",
)  # fmt: skip
@click.option(
    "--agent", "agent_specs", multiple=True, metavar="[SET=]AGENT",
    help="The agent of a set's runs (SET: its id or name; without SET: every set's). "
    "Default: Seer's agent column, else the set's name. Repeatable.",
)  # fmt: skip
@click.option(
    "--column", "column_specs", multiple=True, metavar="TABLE.OURS=THEIRS",
    help="Read OURS (e.g. query) from Seer's column THEIRS of TABLE. Repeatable.",
)  # fmt: skip
@click.option("--pin-baseline", is_flag=True, help="Pin each agent's latest imported run as its baseline.")
@click.option(
    "--prefix", help="Run ids are PREFIX-<Seer's run id>. Default: seer-<a digest of the database's first"
    " run and the tenant>, so another database or tenant never takes these runs.",
)  # fmt: skip
@click.option("--write-config", type=click.Path(dir_okay=False), help="Also write the config snippet here.")
@click.option("--tenant", default="default", show_default=True)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config.")
@click.option("--data-dir", help="Data directory (default: the config's storage.data_dir).")
def import_seer(
    path: str, datasets_dir: str, agent_specs: tuple[str, ...], column_specs: tuple[str, ...],
    pin_baseline: bool, prefix: str | None, write_config: str | None, tenant: str, config_path: str | None,
    data_dir: str | None,
) -> None:  # fmt: skip
    """Import the Seer database PATH (read-only): its eval sets as datasets, its runs, results and
    scores as eval runs (importing twice duplicates nothing), and print the
    evals.seer config that gives a scale: seer judge its dimension names and weights."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from evals.judges.seer import config_snippet
    from evals.seer import parse_overrides, read_seer
    from evals.seerimport import import_seer as run_import

    config = load_or_exit(config_path, data_dir)
    data = Path(usable_data_dir(config.storage.data_dir, "eval import-seer", creates=True))
    agents = dict(spec.partition("=")[::2] if "=" in spec else ("*", spec) for spec in agent_specs)
    try:
        problems = _option_problems(agent_specs, prefix, write_config)
        if problems:
            raise DatasetError(problems)
        db = read_seer(path, parse_overrides(column_specs))
        known = {"*", *(s.id for s in db.sets), *(s.name for s in db.sets)}
        unknown = [name for name in agents if name not in known]
        if unknown:
            sets = ", ".join(f"{s.id} ({s.name})" for s in db.sets) or "none"
            raise DatasetError([f"--agent {name}=...: no eval set has the id or name {name!r}"
                                f" (its sets: {sets})" for name in unknown])  # fmt: skip
    except DatasetError as exc:
        for problem in exc.problems:
            click.echo(printable(f"agentwatch eval import-seer: {problem}"), err=True)
        sys.exit(2)
    data.mkdir(parents=True, exist_ok=True)
    weights = {name: d.weight for name, d in config.evals.seer.dimensions.items()}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, transient=True, console=Console(stderr=True)) as progress:
        task = progress.add_task(f"importing {len(db.runs)} runs", total=len(db.runs) or 1)
        done = run_import(db, data, Path(datasets_dir), tenant=tenant, agents=agents,
                          fallback_weights=weights, prefix=prefix, pin=pin_baseline,
                          progress=lambda n: progress.update(task, completed=n))  # fmt: skip
    snippet = config_snippet(db, config.evals)
    lines = [f"imported {db.path}: {len(db.sets)} eval sets, {len(done.imported)} runs, {done.scores} scores"
             f" ({len(done.already)} runs stored already)"]  # fmt: skip
    names = {s.id: s.name for s in db.sets}
    lines += [f"  dataset {file}: {cases} case{'' if cases == 1 else 's'} (eval set {names[set_id]})"
              for set_id, (file, cases) in done.datasets.items()]  # fmt: skip
    lines += [f"pinned {run_id} as the baseline of {agent}" for agent, run_id in done.pinned]
    lines += [f"note: {note}" for note in done.notes]
    for table, picked in db.columns.items():
        lines.append(f"columns of {table}: " + ", ".join(f"{ours}={col}" for ours, col in picked.items()))
    click.echo("\n".join(map(printable, lines)))
    click.echo(snippet, nl=False)
    if write_config is not None:
        Path(write_config).write_text(snippet, encoding="utf-8")
        click.echo(printable(f"# written to {write_config}"))


def _option_problems(agent_specs: tuple[str, ...], prefix: str | None, write_config: str | None) -> list[str]:
    """What is wrong with the options, found before anything is read or written."""
    problems = []
    for spec in agent_specs:
        name, _, agent = spec.partition("=") if "=" in spec else ("*", "", spec)
        if not agent.strip() or not name.strip():
            problems.append(f"--agent {spec!r}: write it [SET=]AGENT, both non-empty")
    if prefix is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", prefix):
        problems.append(f"--prefix {prefix!r}: 1 to 64 of the characters A-Z a-z 0-9 . _ -")
    if write_config is not None:
        file = Path(write_config)
        if file.exists():
            problems.append(f"--write-config {write_config}: the file exists: not overwritten"
                            " (name a new file)")  # fmt: skip
        elif not file.parent.is_dir():
            problems.append(f"--write-config {write_config}: no directory {file.parent}")
    return problems
