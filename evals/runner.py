"""One eval run: every case of a dataset sent to a target (``target.concurrency`` at a time),
traced as an ``agent_run`` span with a child span per reasoning step the target reported (an
``execute_tool`` span for a step that called a tool, else a ``reasoning_step`` span) and per
other tool call, scored by a judge, stored (``storage.tables``) and compared with the agent's
pinned baseline.

``run_and_record`` is the one way to do all of it, used by ``agentwatch eval run`` and the
scheduled ``synthetic`` receiver alike; they differ only in the span sink they give it
(``evals.tracing``) and where they say the result.

Before judging, a judge that grounds on documents (``Judge.wants_documents``) has the content of
the documents the agent cited fetched through the target, when the target can
(``evals.targets.DocumentSource``: Glean's document API); a fetch that fails is a judge problem
of the case, never an error of the run. After judging, the judge's calls (the judge ledger) and
the agent's reported tokens are priced like the cost processor prices spans
(``evals.judges.ledger``) and stored beside the run: ``judge_calls`` rows, and totals on
``eval_runs`` and ``eval_results``.

The run span carries ``agentwatch.synthetic``, ``agentwatch.eval_run_id`` and
``agentwatch.eval_case_id``, the case's query and the answer, the target's own trace id
(``agentwatch.target_trace_id``) when it returned one, so a synthetic run joins the agent's
own trace, and the documents the answer cited (``agentwatch.citations``: a JSON list of
``{id, url, title}``, each key only when known). A step's span carries ``agentwatch.step.index``
(from 1), ``agentwatch.step.name`` and ``agentwatch.step.text``, its tool as the GenAI
conventions name it (``gen_ai.tool.name``, ``gen_ai.tool.call.arguments``), ``output.value``
(the text of a step that called no tool), the times the agent reported (else the run's), and
an error status when the agent said the step failed.

A multi-turn case (``turns`` of 2 or more: ``evals.conversation``) is a conversation with a
simulated user: its ``agent_run`` span (input: the query; output: the transcript) has one child
span per turn, ``agent_turn N`` (``agentwatch.turn.index`` from 1, ``agentwatch.turn.simulated``,
the user's message as ``input.value``, the agent's answer as ``output.value``, the agent call's
times, an error status when the call failed), and each turn's steps and tool calls are children
of its turn span. The whole conversation is judged, and ``turns_used`` is stored beside the
direct metrics.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Status, StatusCode, Tracer

from core.errors import Cancelled
from evals.config import DEFAULT_QUALITY_THRESHOLDS
from evals.conversation import TURNS_USED, Simulator, converse, judged_case
from evals.datasets import Case
from evals.judges.ledger import Pricer, Usage
from evals.judges.marks import marks
from evals.judges.scores import Judge, Judgement, score_rows
from evals.targets import DocumentSource, Step, Target, TargetResult, ToolCall, Turn
from evals.tracing import SpanSink, tracer_provider
from processors.cost.config import Config as CostConfig
from storage.tables import EvalResultRow, EvalRunRow, JudgeCallRow, RunMarkRow, ScoreRow, write_rows

if TYPE_CHECKING:
    from evals.diff import EvalDiff


@dataclass(frozen=True)
class CaseOutcome:
    case: Case
    result: TargetResult
    judgement: Judgement
    trace_id: str
    span_id: str
    started_at: datetime
    agent_cost_usd: float | None = None
    """The agent's reported tokens priced (None: no tokens, or no price for its model)."""

    @property
    def agent_usage(self) -> Usage:
        return Usage().add(self.result.input_tokens, self.result.output_tokens, self.agent_cost_usd)

    @property
    def judge_usage(self) -> Usage:
        usage = Usage()
        for call in self.judgement.calls:
            usage = usage.add(call.input_tokens, call.output_tokens, call.cost_usd)
        return usage


@dataclass(frozen=True)
class EvalRun:
    run_id: str
    agent: str
    kind: str
    dataset: str
    target: str
    judge: str
    started_at: datetime
    finished_at: datetime
    outcomes: list[CaseOutcome]

    @property
    def errors(self) -> int:
        return sum(o.result.error is not None for o in self.outcomes)

    @property
    def overall_score(self) -> float | None:
        values = [o.judgement.overall_score for o in self.outcomes if o.judgement.overall_score is not None]
        return round(sum(values) / len(values), 4) if values else None

    def dimension_scores(self) -> dict[str, float]:
        by_dimension: dict[str, list[float]] = {}
        for outcome in self.outcomes:
            for score in outcome.judgement.scores:
                by_dimension.setdefault(score.dimension, []).append(score.value)
        return {d: round(sum(v) / len(v), 4) for d, v in by_dimension.items()}

    @property
    def agent_usage(self) -> Usage:
        """The agent's tokens and cost over the run (``calls``: the cases)."""
        usage = Usage()
        for o in self.outcomes:
            usage = usage.add(o.result.input_tokens, o.result.output_tokens, o.agent_cost_usd)
        return usage

    @property
    def judge_usage(self) -> Usage:
        """The judge's calls, tokens and cost over the run (the judge ledger's totals)."""
        usage = Usage()
        for o in self.outcomes:
            for call in o.judgement.calls:
                usage = usage.add(call.input_tokens, call.output_tokens, call.cost_usd)
        return usage

    def unstable(self) -> dict[str, int]:
        """dimension → cases on which an ensemble's judges disagreed (spread above 0)."""
        found: dict[str, int] = {}
        for o in self.outcomes:
            for score in o.judgement.scores:
                if score.spread:
                    found[score.dimension] = found.get(score.dimension, 0) + 1
        return found


@dataclass(frozen=True)
class RecordedRun:
    """What ``run_and_record`` did: the run, its comparison with the pinned baseline, its spans."""

    run: EvalRun
    regression: EvalDiff | None
    """The run against the agent's pinned baseline (canary runs: the pinned canary); None when
    none is pinned."""
    spans: int
    """Spans the run made: one per case, one per reasoning step and one per other tool call the
    target reported (``span_count``)."""
    spans_stored: int
    """Spans the sink made durable; fewer than ``spans`` when it failed (``span_problem``)."""
    span_problem: str | None = None
    """Why the sink refused spans (the SDK may also have dropped some: ``spans_lost`` says)."""

    @property
    def spans_lost(self) -> int:
        return self.spans - self.spans_stored

    @property
    def baseline_kind(self) -> str:
        return "canary" if self.run.kind == "canary" else "baseline"


def run_and_record(
    cases: Sequence[Case],
    target: Target,
    judge: Judge,
    sink: SpanSink,
    data_dir: Path,
    *,
    agent: str,
    dataset: str,
    tenant: str,
    kind: str = "manual",
    groundedness_threshold: float = 5.0,
    quality_thresholds: Mapping[str, float] = DEFAULT_QUALITY_THRESHOLDS,
    regression_threshold: float = 1.0,
    alpha: float = 0.05,
    progress: Callable[[int], None] | None = None,
    cancelled: threading.Event | None = None,
    prices: CostConfig | None = None,
    simulator: Simulator | None = None,
) -> RecordedRun:
    """Run, judge and trace every case (``run_eval``), with the spans going to ``sink``; once
    they are all durable, store the run (``store``) and compare it with the pinned baseline,
    recording a regression as an ``eval_events`` row (``evals.regressions``). ``prices``: the
    cost processor's config (its ``models`` prices and tenant multipliers), to price the judge
    ledger and the agent's tokens as spans are priced. ``simulator``: who plays the user in
    multi-turn cases (``evals.conversation``); without one such a case is an error."""
    provider, exporter = tracer_provider(sink, tenant)
    try:
        tracer = provider.get_tracer("agentwatch.eval")
        run = run_eval(cases, target, judge, tracer, agent=agent, dataset=dataset, kind=kind,
                       progress=progress, cancelled=cancelled, pricer=Pricer(prices, tenant),
                       simulator=simulator)  # fmt: skip
    finally:
        # Every span handed to the sink (force_flush has no deadline; shutdown alone gives up
        # after 30 s): durable before the run is recorded.
        provider.force_flush()
        provider.shutdown()
    store(run, data_dir, tenant, groundedness_threshold, quality_thresholds)
    from evals.regressions import check_regression  # duckdb: only once a run exists

    regression = check_regression(run, data_dir, tenant, regression_threshold, alpha)
    spans = sum(span_count(o.result) for o in run.outcomes)
    return RecordedRun(run, regression, spans, exporter.spans_exported, exporter.problem)


_limits_lock = threading.Lock()
_limits: dict[tuple[str, int], threading.BoundedSemaphore] = {}


def shared_limit(target: str, concurrency: int) -> threading.BoundedSemaphore:
    """A concurrency limit per target, shared by every run of it in the process: the scheduled
    run and the canary run of one agent API never send it more than ``concurrency`` cases at once."""
    with _limits_lock:
        key = (target, max(1, concurrency))
        if key not in _limits:
            _limits[key] = threading.BoundedSemaphore(key[1])
        return _limits[key]


def new_run_id(now: datetime) -> str:
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


def run_eval(
    cases: Sequence[Case],
    target: Target,
    judge: Judge,
    tracer: Tracer,
    *,
    agent: str,
    dataset: str,
    kind: str = "manual",
    progress: Callable[[int], None] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    cancelled: threading.Event | None = None,
    pricer: Pricer | None = None,
    simulator: Simulator | None = None,
) -> EvalRun:
    """Run, judge and trace every case, and price the judge's calls and the agent's tokens; a
    multi-turn case is a conversation with ``simulator`` (``evals.conversation``).
    When ``cancelled`` is set, cases not yet started are skipped and ``Cancelled`` is raised: a
    partial run is never recorded."""
    started = now()
    run_id = new_run_id(started)
    limit = shared_limit(target.name, target.concurrency)

    def one(case: Case) -> CaseOutcome:
        if cancelled is not None and cancelled.is_set():
            raise Cancelled(f"eval run {run_id} given up: shutting down")
        with limit:
            begin = now()
            begin_ns = time.time_ns()
            notes: list[str] = []
            if case.multi_turn:
                result, notes = converse(case, target, simulator)
            else:
                result = target.invoke(case)
            if judge.wants_documents and result.documents and isinstance(target, DocumentSource):
                documents, fetched = target.fetch_documents(result.documents)
                result = replace(result, documents=documents)
                notes += fetched
        if case.multi_turn:
            judgement = judge.judge(judged_case(case), result)
            used = {TURNS_USED: float(len(result.conversation))}
            judgement = replace(judgement, metrics={**judgement.metrics, **used})
        else:
            judgement = judge.judge(case, result)
        if notes:
            judgement = replace(judgement, problems=(*judgement.problems, *notes))
        trace_id, span_id = _trace(tracer, agent, run_id, case, result, judgement, begin_ns)
        return CaseOutcome(case, result, judgement, trace_id, span_id, begin)

    outcomes: list[CaseOutcome] = []
    with ThreadPoolExecutor(max(1, target.concurrency), thread_name_prefix="agentwatch-eval") as pool:
        for done, outcome in enumerate(pool.map(one, cases), start=1):
            outcomes.append(outcome)
            if progress is not None:
                progress(done)
    outcomes = priced(outcomes, pricer or Pricer(), started)
    return EvalRun(run_id, agent, kind, dataset, target.name, judge.name, started, now(), outcomes)


def priced(outcomes: list[CaseOutcome], pricer: Pricer, when: datetime) -> list[CaseOutcome]:
    """The outcomes with the agent's tokens and every judge call priced, in one pass."""
    items = [(o.result.model, o.result.input_tokens, o.result.output_tokens) for o in outcomes]
    items += [(c.model, c.input_tokens, c.output_tokens) for o in outcomes for c in o.judgement.calls]
    prices = iter(pricer.price(items, when))
    agent_costs = [next(prices)[0] for _ in outcomes]
    found = []
    for outcome, agent_cost in zip(outcomes, agent_costs, strict=True):
        costs = [next(prices) for _ in outcome.judgement.calls]
        calls = tuple(replace(c, cost_usd=cost, cost_source=source)
                      for c, (cost, source) in zip(outcome.judgement.calls, costs, strict=True))  # fmt: skip
        judgement = replace(outcome.judgement, calls=calls)
        found.append(replace(outcome, judgement=judgement, agent_cost_usd=agent_cost))
    return found


def span_count(result: TargetResult) -> int:
    """The spans one case makes: its run, its steps, and the tool calls no step made; for a
    conversation, its run and each turn's span, steps and tool calls."""
    if result.conversation:
        return 1 + sum(span_count(turn.result) for turn in result.conversation)
    return 1 + len(result.reasoning) + len(_unstepped(result))


def _unstepped(result: TargetResult) -> list[ToolCall]:
    """The tool calls that are not a step's (those are traced as the step), in their order."""
    stepped = [step.call for step in result.reasoning if step.call is not None]
    calls = []
    for call in result.tool_calls:
        if call in stepped:
            stepped.remove(call)
        else:
            calls.append(call)
    return calls


def citations(result: TargetResult) -> list[dict[str, str]]:
    """The documents the answer cited (``id``, ``url``, ``title`` when known), else its citations."""
    if result.documents:
        return [{k: v for k, v in (("id", d.id), ("url", d.url), ("title", d.title)) if v}
                for d in result.documents]  # fmt: skip
    return [{"source": c} for c in result.citations]


def _trace(
    tracer: Tracer,
    agent: str,
    run_id: str,
    case: Case,
    result: TargetResult,
    judgement: Judgement,
    begin_ns: int,
) -> tuple[str, str]:
    ids: dict[str, Any] = {
        "agentwatch.synthetic": True,
        "agentwatch.eval_run_id": run_id,
        "agentwatch.eval_case_id": case.id,
    }
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.id": agent,
        **ids,
        "input.value": case.query,
    }
    if result.output is not None:
        attributes["output.value"] = result.output
    if result.trace_id:
        attributes["agentwatch.target_trace_id"] = result.trace_id
    if judgement.overall_score is not None:
        attributes["agentwatch.eval.overall_score"] = judgement.overall_score
    if cited := citations(result):
        attributes["agentwatch.citations"] = orjson.dumps(cited).decode()
    end_ns = begin_ns + int(result.latency_ms * 1e6)
    if result.conversation:
        last = result.conversation[-1]
        end_ns = max(end_ns, last.start_ns + int(last.result.latency_ms * 1e6))
    span = tracer.start_span("agent_run", start_time=begin_ns, attributes=attributes)
    context = trace.set_span_in_context(span)
    for index, turn in enumerate(result.conversation, start=1):
        _turn_span(tracer, context, ids, index, turn)
    if not result.conversation:
        _children(tracer, context, ids, result, begin_ns, end_ns)
    if result.error is not None:
        span.set_status(Status(StatusCode.ERROR, result.error))
    span.end(end_time=end_ns)
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def _children(
    tracer: Tracer, context: Context, ids: dict[str, Any], result: TargetResult, begin_ns: int, end_ns: int
) -> None:
    """A call's reasoning steps and the tool calls no step made, as child spans of ``context``."""
    for index, step in enumerate(result.reasoning, start=1):
        _step_span(tracer, context, ids, index, step, begin_ns, end_ns)
    for call in _unstepped(result):
        child = tracer.start_span(f"execute_tool {call.name}", context, start_time=begin_ns,
                                  attributes={**ids, **_tool_attributes(call)})  # fmt: skip
        child.end(end_time=end_ns)


def _turn_span(tracer: Tracer, context: Context, ids: dict[str, Any], index: int, turn: Turn) -> None:
    """One turn of a conversation: the agent's call, with its steps and tool calls as children."""
    result = turn.result
    attributes: dict[str, Any] = {
        **ids,
        "agentwatch.turn.index": index,
        "agentwatch.turn.simulated": turn.simulated,
        "input.value": turn.user,
    }
    if result.output is not None:
        attributes["output.value"] = result.output
    if result.trace_id:
        attributes["agentwatch.target_trace_id"] = result.trace_id
    end_ns = turn.start_ns + int(result.latency_ms * 1e6)
    span = tracer.start_span(f"agent_turn {index}", context, start_time=turn.start_ns, attributes=attributes)
    _children(tracer, trace.set_span_in_context(span), ids, result, turn.start_ns, end_ns)
    if result.error is not None:
        span.set_status(Status(StatusCode.ERROR, result.error))
    span.end(end_time=end_ns)


def _tool_attributes(call: ToolCall) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": call.name,
        "gen_ai.tool.call.arguments": call.arguments,
    }
    if call.output is not None:
        attributes["gen_ai.tool.call.result"] = call.output
    return attributes


def _step_span(
    tracer: Tracer, context: Context, ids: dict[str, Any], index: int, step: Step, begin_ns: int, end_ns: int
) -> None:
    """One reasoning step as a child span: ``execute_tool NAME`` when it called a tool (the
    normaliser's ``tool`` operation), else ``reasoning_step NAME`` (``other``: no convention's
    operation). Its times are the agent's when reported, else the run's."""
    attributes: dict[str, Any] = {**ids, "agentwatch.step.index": index, "agentwatch.step.name": step.name}
    if step.text:
        attributes["agentwatch.step.text"] = step.text
    if step.call is not None:
        name = f"execute_tool {step.call.name}"
        attributes.update(_tool_attributes(step.call))
    else:
        name = f"reasoning_step {' '.join(step.name.split())[:80]}".rstrip()  # one line, at most 80 chars
        attributes["output.value"] = step.text
    start = begin_ns if step.start_ns is None else step.start_ns
    end = step.end_ns if step.end_ns is not None else max(start, end_ns)
    child = tracer.start_span(name, context, start_time=start, attributes=attributes)
    if step.status == "error":
        child.set_status(Status(StatusCode.ERROR, step.text or "the step failed"))
    child.end(end_time=end)


def store(
    run: EvalRun, data_dir: Path, tenant: str, groundedness_threshold: float = 5.0,
    quality_thresholds: Mapping[str, float] = DEFAULT_QUALITY_THRESHOLDS,
) -> None:  # fmt: skip
    """The run, its per-case results, every score and the runs' marks, as rows of the eval tables."""
    finished = run.finished_at
    agent_usage, judge_usage = run.agent_usage, run.judge_usage
    write_rows(data_dir, tenant, run.started_at, [EvalRunRow(
        run_id=run.run_id, agent=run.agent, kind=run.kind, dataset=run.dataset, target=run.target,
        judge=run.judge, started_at=run.started_at, finished_at=finished, cases=len(run.outcomes),
        errors=run.errors, overall_score=run.overall_score,
        dimension_scores=orjson.dumps(run.dimension_scores()).decode(),
        agent_input_tokens=agent_usage.input_tokens, agent_output_tokens=agent_usage.output_tokens,
        agent_cost_usd=agent_usage.cost_usd, judge_calls=judge_usage.calls,
        judge_input_tokens=judge_usage.input_tokens, judge_output_tokens=judge_usage.output_tokens,
        judge_cost_usd=judge_usage.cost_usd,
    )])  # fmt: skip
    results: list[EvalResultRow] = []
    scores: list[ScoreRow] = []
    run_marks: list[RunMarkRow] = []
    ledger: list[JudgeCallRow] = []
    for o in run.outcomes:
        agent_case, judge_case = o.agent_usage, o.judge_usage
        results.append(EvalResultRow(
            run_id=run.run_id, agent=run.agent, case_id=o.case.id, trace_id=o.trace_id,
            span_id=o.span_id, target_trace_id=o.result.trace_id, query=o.case.query,
            output=o.result.output, error=o.result.error, latency_ms=o.result.latency_ms,
            tool_call_count=len(o.result.tool_calls), overall_score=o.judgement.overall_score,
            started_at=o.started_at, judge_problems="; ".join(o.judgement.problems) or None,
            agent_input_tokens=agent_case.input_tokens, agent_output_tokens=agent_case.output_tokens,
            agent_cost_usd=agent_case.cost_usd, judge_calls=judge_case.calls,
            judge_input_tokens=judge_case.input_tokens, judge_output_tokens=judge_case.output_tokens,
            judge_cost_usd=judge_case.cost_usd,
        ))  # fmt: skip
        ledger += ledger_rows(o.judgement, run.judge, o.trace_id, o.span_id, finished, run.run_id, o.case.id)
        run_marks += marks(o.trace_id, o.span_id, o.judgement, groundedness_threshold, run.judge, finished,
                           quality_thresholds)  # fmt: skip
        scores += score_rows(o.judgement, o.trace_id, o.span_id, run.judge, finished, run.run_id, o.case.id,
                             with_metrics=True)  # fmt: skip
    write_rows(data_dir, tenant, run.started_at, results)
    write_rows(data_dir, tenant, run.started_at, scores)
    write_rows(data_dir, tenant, run.started_at, run_marks)
    write_rows(data_dir, tenant, run.started_at, ledger)


def ledger_rows(
    judgement: Judgement, judge: str, trace_id: str, span_id: str, when: datetime,
    run_id: str | None = None, case_id: str | None = None,
) -> list[JudgeCallRow]:  # fmt: skip
    """The judge ledger's rows of one judgement: one per call, in the order made."""
    return [
        JudgeCallRow(run_id=run_id, case_id=case_id, trace_id=trace_id, span_id=span_id, judge=judge,
                     member=c.member, dimension=c.dimension, model=c.model, attempt=c.attempt, ok=c.ok,
                     problem=c.problem, input_tokens=c.input_tokens, output_tokens=c.output_tokens,
                     cost_usd=c.cost_usd, cost_source=c.cost_source, latency_ms=c.latency_ms, time=when)
        for c in judgement.calls
    ]  # fmt: skip
