"""``agentwatch cases review``: candidate eval cases from production (failure signals, runs users
rated down, runs a judge marked), new to a dataset, reviewed one at a time before they join it.

The candidates are ``report.cases.candidates``; what is new, the review state and appending to
the dataset in its own format, ``evals.candidates``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click
import orjson

from agentwatch.cli_common import connect_or_exit
from agentwatch.cli_report import described, scope_of, scope_options, settings_of
from core.errors import DatasetError
from core.safetext import printable, printable_lines

if TYPE_CHECKING:
    from rich.console import Console

    from evals.candidates import Candidate, Rejection

_KEYS = {"a": "accept", "r": "reject", "s": "skip", "e": "edit the guidance", "q": "quit"}
_ANSWER_SHOWN = 2000
"""Characters of the production answer shown (the rest is cut, with a note)."""


def _sources(value: str) -> tuple[str, ...]:
    from evals.candidates import SOURCES

    chosen = tuple(dict.fromkeys(s.strip() for s in value.split(",") if s.strip()))
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown or not chosen:
        raise click.BadParameter(
            f"{', '.join(unknown) or 'nothing'}: choose among {', '.join(SOURCES)}", param_hint="--source"
        )
    return chosen


def _runs(number: int) -> str:
    return f"{number} run{'' if number == 1 else 's'}"


def _fail(problems: Sequence[str]) -> NoReturn:
    for problem in problems:
        click.echo(f"agentwatch cases review: {printable(problem)}", err=True)
    raise SystemExit(2)


@click.command("review")
@scope_options
@click.option(
    "--dataset",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The dataset (.csv or .jsonl) accepted cases join; created when missing.",
)
@click.option(
    "--source",
    "source_text",
    default="clusters,feedback,judged",
    show_default=True,
    help="Where candidates come from, comma-separated: clusters (failure signals), feedback "
    "(runs rated down), judged (runs a judge marked).",
)
@click.option(
    "--similarity",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.85,
    show_default=True,
    help="Queries at least this similar (Dice over character trigrams) are duplicates.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="List the candidates (and those dropped) as JSON; change nothing."
)
@click.option(
    "--accept-all", is_flag=True, help="Accept every candidate (but those --reject names), no questions."
)
@click.option(
    "--reject",
    "reject_ids",
    multiple=True,
    metavar="ID",
    help="Reject this candidate (its id or trace id), no questions; repeatable.",
)
def review(
    config_path: str | None,
    data_dir: str | None,
    agent: str | None,
    tenant: str | None,
    since: str,
    until_text: str | None,
    include_synthetic: bool,
    dataset: Path,
    source_text: str,
    similarity: float,
    as_json: bool,
    accept_all: bool,
    reject_ids: tuple[str, ...],
) -> None:
    """Review candidate eval cases from production, one at a time: accept (appended to the
    dataset), reject (not proposed again), skip, edit the guidance, or quit."""
    from evals import candidates as cand
    from report.cases import candidates as proposed_from
    from storage.runs import TEXTS, runs_in

    if agent is None:
        raise click.BadParameter("the agent whose runs to review is required", param_hint="--agent")
    if as_json and (accept_all or reject_ids):
        raise click.BadParameter("--json lists only: not with --accept-all or --reject", param_hint="--json")
    sources = _sources(source_text)
    if dataset.suffix.lower() not in (".csv", ".jsonl", ".json"):
        raise click.BadParameter(f"{dataset}: a dataset is a .csv or .jsonl file", param_hint="--dataset")
    directory, _ = settings_of(config_path, data_dir, "cases review")
    scope = scope_of(since, agent, tenant, until_text, include_synthetic)
    state = cand.state_path(dataset)
    try:
        existing = cand.existing_cases(dataset)
        rejected = cand.load_rejections(state)
    except DatasetError as exc:
        _fail(exc.problems)
    runs = runs_in(connect_or_exit(directory, "cases review"), scope, TEXTS)
    found = proposed_from(runs, sources)
    todo, dropped = cand.deduplicated(found.candidates, existing, rejected, similarity)
    if as_json:
        doc = {
            "agent": agent,
            "dataset": str(dataset),
            "sources": list(sources),
            "candidates": [c.to_json() for c in todo],
            "dropped": [{"id": d.id, "trace_id": d.trace_id, "why": d.why} for d in dropped],
            "skipped_without_input": found.skipped_without_input,
        }
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return
    left = (
        f", {_runs(found.skipped_without_input)} without input skipped" if found.skipped_without_input else ""
    )
    what = f"{len(todo)} candidates {printable(described(scope))}"
    click.echo(f"{what} ({len(dropped)} dropped as known{left})", err=True)
    if not todo:
        return
    by_id = {c.id: c for c in todo} | {c.trace_id: c for c in todo}
    if unknown := [i for i in reject_ids if i not in by_id]:
        _fail([f"--reject {printable(i)}: not a candidate (see --json)" for i in unknown])
    if accept_all or reject_ids:
        to_reject = {by_id[i].id for i in reject_ids}
        now = datetime.now(UTC)
        rejected += [cand.rejection(c, now) for c in todo if c.id in to_reject]
        cand.save_rejections(state, rejected)
        accepted = [c.case for c in todo if c.id not in to_reject] if accept_all else []
        cand.append_cases(dataset, accepted)
        click.echo(f"accepted {len(accepted)}, rejected {len(to_reject)} of {len(todo)} candidates", err=True)
        return
    _interactive(todo, dataset, state, rejected)


def _interactive(todo: list[Candidate], dataset: Path, state: Path, rejected: list[Rejection]) -> None:
    from rich.console import Console
    from rich.prompt import Prompt

    from evals import candidates as cand

    console = Console(highlight=False)
    counts = dict.fromkeys(("accepted", "rejected", "skipped"), 0)
    index = 0
    keys = "  ".join(f"{key} {what}" for key, what in _KEYS.items())
    while index < len(todo):
        candidate = todo[index]
        _show(console, candidate, index + 1, len(todo))
        try:
            key = Prompt.ask(keys, choices=list(_KEYS), console=console, show_choices=False)
        except EOFError:
            key = "q"
        if key == "q":
            break
        if key == "e":
            current = str(candidate.case.get("eval_guidance") or "")
            try:
                guidance = Prompt.ask("guidance (empty: keep it)", console=console, default="",
                                      show_default=False)  # fmt: skip
            except EOFError:
                break
            todo[index] = candidate.with_guidance(guidance.strip() or current)
            continue
        if key == "a":
            cand.append_cases(dataset, [candidate.case])
            counts["accepted"] += 1
        elif key == "r":
            rejected.append(cand.rejection(candidate, datetime.now(UTC)))
            cand.save_rejections(state, rejected)
            counts["rejected"] += 1
        else:
            counts["skipped"] += 1
        index += 1
    unseen = len(todo) - index
    summary = ", ".join(f"{what} {n}" for what, n in counts.items())
    console.print(f"{summary} of {len(todo)} candidates" + (f"; {unseen} not seen" if unseen else ""))


def _show(console: Console, candidate: Candidate, number: int, total: int) -> None:
    """One candidate, every value of it as literal text (never markup: it is the users' and the agents')."""
    from rich.table import Table
    from rich.text import Text

    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    answer = candidate.answer
    if answer is not None and len(answer) > _ANSWER_SHOWN:
        answer = f"{answer[:_ANSWER_SHOWN]}… ({len(answer) - _ANSWER_SHOWN} more characters)"
    rows = [
        ("query", printable_lines(candidate.query)),
        ("answer", "(none recorded)" if answer is None else printable_lines(answer)),
        ("failure", printable(candidate.failure_type or "none")),
        ("why", "\n".join(printable(reason) for reason in candidate.reasons)),
        ("comment", "\n".join(printable(c) for c in candidate.comments) or "(none)"),
        ("guidance", printable_lines(candidate.case.get("eval_guidance") or "")),
        ("run", printable(candidate.trace_id)),
    ]
    for name, value in rows:
        table.add_row(Text(name), Text(value))
    console.print(Text(f"\n[{number}/{total}] {printable(candidate.id)}", style="bold"))
    console.print(table)
