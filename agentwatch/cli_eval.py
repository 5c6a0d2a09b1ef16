"""``agentwatch eval``: run an agent on a dataset, show a stored run, pin a baseline, diff two runs."""

from __future__ import annotations

import math
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
import orjson

from agentwatch.cli_common import connect_or_exit, load_or_exit, usable_data_dir
from core.errors import ConfigError, DatasetError, StorageError, TargetError
from core.safetext import printable

if TYPE_CHECKING:
    from collections.abc import Sequence

    from evals.config import EvalsConfig
    from evals.conversation import Simulator
    from evals.datasets import Case
    from evals.judges.ledger import Usage
    from evals.runner import RecordedRun
    from evals.show import RunDetail


@click.group("eval")
def eval_group() -> None:
    """Scheduled-style eval runs from the command line: run, show, baseline, diff."""


@eval_group.command("run")
@click.option("--agent", required=True, help="The agent's id (as in spans and the agents: section).")
@click.option("--dataset", required=True, type=click.Path(dir_okay=False), help="JSONL or CSV cases.")
@click.option(
    "--target",
    "spec",
    required=True,
    help="python:mod:fn, openai:URL#model, glean:URL#agent, http:URL, or a name under evals.targets.",
)
@click.option(
    "--judge",
    default="heuristic",
    show_default=True,
    help="heuristic, a name under evals.judges (e.g. openai, glean), openai:URL#model or glean:URL.",
)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config.")
@click.option("--data-dir", help="Data directory (default: the config's storage.data_dir).")
@click.option("--tenant", default="default", show_default=True)
@click.option(
    "--kind", default="manual", type=click.Choice(["manual", "scheduled", "canary"]), show_default=True
)
@click.option("--threshold", default=1.0, show_default=True, help="Points (of 10) a dimension may drop.")
@click.option("--alpha", default=0.05, show_default=True, help="Significance of the paired test.")
@click.option("--format", "fmt", default="text", type=click.Choice(["text", "json"]), show_default=True)
@click.option("--fail-on-regression", is_flag=True, help="Exit 1 when the run regressed (CI).")
@click.option(
    "--simulator",
    help="The target playing the user in multi-turn cases (turns: 2 or more); "
    "default: the config's evals.multi_turn.simulator.",
)
def run(
    agent: str, dataset: str, spec: str, judge: str, config_path: str | None, data_dir: str | None,
    tenant: str, kind: str, threshold: float, alpha: float, fmt: str, fail_on_regression: bool,
    simulator: str | None,
) -> None:  # fmt: skip
    """Run every case of DATASET against the target, trace it, score it, store it, and compare it
    with the agent's pinned baseline (the pinned canary for --kind canary).

    Its spans take the durable ingest path: this process's write-ahead log, or, when a server is
    running on the data directory, that server's OTLP receiver."""
    from rich.markup import escape
    from rich.progress import Progress

    from agentwatch.ingest import eval_span_sink
    from evals.datasets import load_dataset
    from evals.judges.factory import build_judge
    from evals.runner import run_and_record
    from evals.targets.specs import resolve_target

    config = load_or_exit(config_path, data_dir)
    usable_data_dir(config.storage.data_dir, "eval run", creates=True)
    try:
        cases = load_dataset(dataset)
        target = resolve_target(spec, config.evals)
        judge_backend = build_judge(judge, config.evals)
    except ConfigError as exc:
        raise click.BadParameter(str(exc).removeprefix("judge: "), param_hint="--judge") from None
    except DatasetError as exc:
        for problem in exc.problems:
            click.echo(printable(problem), err=True)
        sys.exit(2)
    except TargetError as exc:
        raise click.BadParameter(str(exc), param_hint="--target") from None
    plays_user = _simulator(cases, simulator, config.evals)

    def notice(line: str) -> None:
        click.echo(printable(f"agentwatch: {line}"), err=True)

    cost_component = config.processors.get("cost")
    prices = cost_component.config if cost_component is not None else None

    try:
        with eval_span_sink(config, tenant, notice) as (sink, route), Progress(transient=True) as progress:
            # The description is rich markup: the agent's name is escaped, never styled or dropped.
            task = progress.add_task(escape(printable(f"{agent}: {len(cases)} cases")), total=len(cases))
            recorded = run_and_record(
                cases, target, judge_backend, sink, Path(config.storage.data_dir), agent=agent,
                dataset=str(dataset), tenant=tenant, kind=kind,
                groundedness_threshold=config.evals.groundedness_threshold,
                quality_thresholds=config.evals.quality_thresholds,
                regression_threshold=threshold, alpha=alpha,
                progress=lambda n: progress.update(task, completed=n), prices=prices,
                simulator=plays_user,
            )  # fmt: skip
    except StorageError as exc:
        click.echo(printable(f"agentwatch eval run: {exc}"), err=True)
        sys.exit(2)
    finally:
        target.close()
        judge_backend.close()
        if plays_user is not None:
            plays_user.target.close()
    result, regression = recorded.run, recorded.regression
    summary = {
        "run_id": result.run_id, "agent": agent, "kind": kind, "cases": len(result.outcomes),
        "errors": result.errors, "overall_score": result.overall_score,
        "dimensions": result.dimension_scores(), "judge": result.judge,
        "judge_problems": sum(bool(o.judgement.problems) for o in result.outcomes),
        "agent_usage": result.agent_usage.as_dict(), "judge_usage": result.judge_usage.as_dict(),
        "unstable": result.unstable(),
        "spans": {"made": recorded.spans, "stored": recorded.spans_stored, "route": route.kind,
                  "via": route.where, "problem": recorded.span_problem},
        "baseline_run": regression.baseline_run if regression else None,
        "regression": regression.regression if regression else None,
        "regressed_dimensions": regression.regressed_dimensions if regression else [],
    }  # fmt: skip
    if fmt == "json":
        click.echo(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    else:
        lines = [
            f"eval run {result.run_id}: {agent}, {len(result.outcomes)} cases, {result.errors} errors",
            f"overall score {_num(result.overall_score)} / 10",
            *(
                f"  {dimension:<20} {value:6.2f}{_unstable(result.unstable().get(dimension))}"
                for dimension, value in result.dimension_scores().items()
            ),
            _tokens("agent", result.agent_usage, "cases"),
            _tokens("judge", result.judge_usage, "calls"),
            f"spans: {recorded.spans_stored} of {recorded.spans} stored {route.describe()}",
            _compared(recorded),
        ]
        click.echo("\n".join(map(printable, lines)))
    if recorded.spans_lost:
        problem = recorded.span_problem or "dropped before export"
        click.echo(printable(f"agentwatch eval run: the run is recorded, but {recorded.spans_lost} of its "
                             f"{recorded.spans} spans are not stored: {problem}"), err=True)  # fmt: skip
        sys.exit(1)
    if fail_on_regression and regression is not None and regression.regression:
        sys.exit(1)


def _simulator(cases: Sequence[Case], name: str | None, evals: EvalsConfig) -> Simulator | None:
    """The simulated user of the dataset's multi-turn cases (None when it has none); a usage
    error naming the option and the key when such a case has no simulator."""
    from evals.conversation import Simulator
    from evals.targets.specs import resolve_target

    multi_turn = next((c for c in cases if c.multi_turn), None)
    if multi_turn is None:
        return None
    chosen = name or evals.multi_turn.simulator
    if chosen is None:
        raise click.UsageError(
            f"case {multi_turn.id!r} has turns: {multi_turn.turns}: name the target playing the user "
            "with --simulator or evals.multi_turn.simulator"
        )
    try:
        return Simulator(resolve_target(chosen, evals), evals.multi_turn.persona, evals.multi_turn.stop)
    except TargetError as exc:
        raise click.BadParameter(str(exc), param_hint="--simulator") from None


def _compared(recorded: RecordedRun) -> str:
    kind, regression = recorded.baseline_kind, recorded.regression
    if regression is None:
        canary = " --canary" if kind == "canary" else ""
        return (
            f"no {kind} pinned: pin this run with agentwatch eval baseline pin {recorded.run.run_id}{canary}"
            f" (or --agent {recorded.run.agent}{canary} for the agent's latest run)"
        )
    if regression.regression:
        dimensions = ", ".join(regression.regressed_dimensions)
        return f"REGRESSION against the {kind} {regression.baseline_run}: {dimensions}"
    return f"no regression against the {kind} {regression.baseline_run}"


def _num(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.2f}"


def _unstable(cases: int | None, spread: float | None = None) -> str:
    if not cases:
        return ""
    widest = f", spread up to {spread:g}" if spread is not None else ""
    return f"  unstable: judges disagreed on {cases} case{'s' if cases != 1 else ''}{widest}"


def _tokens(who: str, usage: Usage, unit: str) -> str:
    """``agent tokens: 1,200 in, 300 out over 8 cases, $0.000420`` (the ledger beside the agent)."""
    if usage.input_tokens is None and usage.output_tokens is None:
        return f"{who + ' tokens:':<14}none reported over {usage.calls} {unit}"
    inp = "-" if usage.input_tokens is None else f"{usage.input_tokens:,}"
    out = "-" if usage.output_tokens is None else f"{usage.output_tokens:,}"
    cost = "cost unknown" if usage.cost_usd is None else f"${usage.cost_usd:.6f}"
    return f"{who + ' tokens:':<14}{inp} in, {out} out over {usage.calls} {unit}, {cost}"


@eval_group.command("show")
@click.argument("run_id", required=False)
@click.option("--agent", help="Show this agent's latest eval run (instead of naming RUN_ID).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
@click.option("--data-dir")
@click.option("--format", "fmt", default="text", type=click.Choice(["text", "json"]), show_default=True)
def show(
    run_id: str | None, agent: str | None, config_path: str | None, data_dir: str | None, fmt: str
) -> None:
    """A stored eval run: its scores per dimension and case (with an ensemble's disagreement), and
    the agent's tokens and cost beside the judge's (the judge ledger, per judge and model)."""
    from evals.diff import EvalDiffError, latest_run
    from evals.show import run_detail

    if (run_id is None) == (agent is None):
        raise click.UsageError("name the run to show (RUN_ID), or --agent for its latest run")
    config = load_or_exit(config_path, data_dir)
    con = connect_or_exit(config.storage.data_dir, "eval show")
    try:
        detail = run_detail(con, run_id or latest_run(con, str(agent)))
    except EvalDiffError as exc:
        click.echo(printable(f"agentwatch eval show: {exc}"), err=True)
        sys.exit(2)
    if fmt == "json":
        click.echo(orjson.dumps(detail.as_dict(), option=orjson.OPT_INDENT_2).decode())
        return
    click.echo("\n".join(map(printable, _show_lines(detail))))


def _show_lines(detail: RunDetail) -> list[str]:
    from evals.judges.ledger import Usage

    run = detail.run
    agent_usage = Usage(run["cases"], run["agent_input_tokens"], run["agent_output_tokens"],
                        run["agent_cost_usd"])  # fmt: skip
    judge_usage = Usage(run["judge_calls"] or 0, run["judge_input_tokens"], run["judge_output_tokens"],
                        run["judge_cost_usd"])  # fmt: skip
    shaky = detail.unstable
    lines = [
        f"eval run {run['run_id']}: {run['agent']} ({run['kind']}), {run['cases']} cases, "
        f"{run['errors']} errors",
        f"target {run['target']}, judge {run['judge']}, dataset {run['dataset']}",
        f"overall score {_num(run['overall_score'])} / 10",
        *(f"  {d:<20} {_num(v):>6}{_unstable(*shaky.get(d, (0, None)))}"
          for d, v in detail.dimensions.items()),
        _tokens("agent", agent_usage, "cases"),
        _tokens("judge", judge_usage, "calls"),
    ]
    for line in detail.ledger:
        cost = "cost unknown" if line.cost_usd is None else f"${line.cost_usd:.6f}"
        extra = "".join([f", {line.retries} retries" if line.retries else "",
                         f", {line.failed} failed" if line.failed else ""])  # fmt: skip
        tokens = (
            "no tokens reported"
            if line.input_tokens is None
            else (f"{line.input_tokens:,} in, {line.output_tokens or 0:,} out")
        )
        lines.append(f"  {line.member} ({line.model}): {line.calls} calls{extra}, {tokens}, {cost}")
    lines.append("cases:")
    for case in detail.cases:
        head = f"  {case.case_id}: overall {_num(case.overall_score)}"
        if case.error:
            head += f"  error: {case.error}"
        lines.append(head)
        for s in case.scores:
            votes = ""
            if s.spread:
                votes = f"  spread {s.spread:g}, dissent {s.dissent or 0:.0%}"
            elif s.spread is not None:
                votes = "  judges agree"
            lines.append(f"    {s.dimension:<20} {s.label or '-':<12} {_num(s.value):>5}{votes}")
        for name, value in case.metrics.items():
            if name == "golden_token_f1":
                lines.append(f"    {name:<20} {'':<12} {value:5.4f}")
        if case.judge_problems:
            lines.append(f"    judge problems: {case.judge_problems}")
    return lines


@eval_group.group("baseline")
def baseline() -> None:
    """Pinned runs that later runs are compared with."""


@baseline.command("pin")
@click.argument("run_id", required=False)
@click.option("--agent", help="Pin this agent's latest eval run (instead of naming RUN_ID).")
@click.option("--canary", is_flag=True, help="Pin as the canary baseline instead.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
@click.option("--data-dir")
def pin(
    run_id: str | None, agent: str | None, canary: bool, config_path: str | None, data_dir: str | None
) -> None:
    """Pin RUN_ID (or --agent's latest run) as its agent's baseline."""
    from evals.diff import EvalDiffError, latest_run, run_agent
    from storage.tables import EvalBaselineRow, write_rows

    if (run_id is None) == (agent is None):
        raise click.UsageError("name the run to pin (RUN_ID), or --agent to pin its latest run")
    config = load_or_exit(config_path, data_dir)
    usable_data_dir(config.storage.data_dir, "eval baseline pin", writes=True)
    con = connect_or_exit(config.storage.data_dir, "eval baseline pin")
    try:
        if run_id is None:
            assert agent is not None
            run_id = latest_run(con, agent, "canary" if canary else None)
        agent = run_agent(con, run_id)
    except EvalDiffError as exc:
        raise click.BadParameter(str(exc), param_hint="--agent" if agent else "RUN_ID") from None
    tenant = str(
        con.execute("SELECT tenant FROM eval_runs WHERE run_id = $r", {"r": run_id}).fetchall()[0][0]
    )
    kind = "canary" if canary else "baseline"
    now = datetime.now(UTC)
    write_rows(Path(config.storage.data_dir), tenant, now, [EvalBaselineRow(agent, kind, run_id, now)])
    click.echo(printable(f"pinned {run_id} as the {kind} of {agent}"))


@eval_group.command("diff")
@click.argument("run_a", required=False)
@click.argument("run_b", required=False)
@click.option("--agent", help="Which agent (when no run is given): latest run vs pinned baseline.")
@click.option("--threshold", default=1.0, show_default=True, help="Points (of 10) a dimension may drop.")
@click.option("--alpha", default=0.05, show_default=True, help="Significance of the paired test.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
@click.option("--data-dir")
@click.option("--format", "fmt", default="text", type=click.Choice(["text", "json"]), show_default=True)
@click.option("--fail-on-regression", is_flag=True, help="Exit 1 when a regression is flagged.")
def diff_command(
    run_a: str | None, run_b: str | None, agent: str | None, threshold: float, alpha: float,
    config_path: str | None, data_dir: str | None, fmt: str, fail_on_regression: bool,
) -> None:  # fmt: skip
    """Compare RUN_B (default: the latest run) with RUN_A (default: the pinned baseline)."""
    from evals.diff import EvalDiffError, diff, latest_run, pinned, run_agent

    config = load_or_exit(config_path, data_dir)
    con = connect_or_exit(config.storage.data_dir, "eval diff")
    try:
        if run_a is None and agent is None:
            raise EvalDiffError("name the runs, or --agent to compare its latest run with its baseline")
        owner = agent or run_agent(con, str(run_a))
        baseline_run = run_a or pinned(con, owner)
        candidate_run = run_b or latest_run(con, owner)
        result = diff(con, baseline_run, candidate_run, threshold, alpha)
    except EvalDiffError as exc:
        click.echo(printable(f"agentwatch eval diff: {exc}"), err=True)
        sys.exit(2)
    if fmt == "json":
        doc = {
            "agent": result.agent, "baseline_run": result.baseline_run, "candidate_run": result.candidate_run,
            "threshold": threshold, "alpha": alpha, "regression": result.regression,
            "regressed_dimensions": result.regressed_dimensions,
            "dimensions": [asdict(d) for d in result.dimensions],
            "worse_cases": [asdict(c) for c in result.worse_cases],
        }  # fmt: skip
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    else:
        lines = [f"{result.agent}: {result.candidate_run} vs baseline {result.baseline_run}"]
        for d in result.dimensions:
            flag = f"  REGRESSED: {d.reason}" if d.regressed else ""
            change = f"({d.delta:+.2f}, p={d.p_value:.4f}, {d.rule})"
            lines.append(f"  {d.dimension:<20} {d.baseline:6.2f} → {d.candidate:6.2f}  {change}{flag}"
                         f"{_unstable(d.unstable_cases, d.max_spread)}")  # fmt: skip
        for c in result.worse_cases[:10]:
            lines.append(f"  worse: {c.case_id} {c.baseline:.2f} → {c.candidate:.2f}")
        lines.append("REGRESSION" if result.regression else "no regression")
        click.echo("\n".join(map(printable, lines)))
    if fail_on_regression and result.regression:
        sys.exit(1)
