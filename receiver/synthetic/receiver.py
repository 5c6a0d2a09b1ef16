"""The ``synthetic`` receiver: runs an agent on its dataset by cron, traces every case into the
pipeline like production traffic, scores it, stores the run and flags regressions.

    receivers:
      synthetic/expense:
        agent: expense-bot
        dataset: ./evals/expense.csv        # JSONL or CSV (evals.datasets)
        target: glean:https://acme-be.glean.com#agt_123   # or a name under evals.targets
        api_key: ${env:GLEAN_API_KEY}
        judge: heuristic                    # or a name under evals.judges, openai:URL#model, glean:URL
        schedule: "0 */6 * * *"             # cron, UTC
        canary:                              # optional: a small set on a tighter schedule
          dataset: ./evals/expense-canary.jsonl
          schedule: "*/15 * * * *"
    service:
      pipelines:
        traces:
          receivers: [otlp, synthetic/expense]

Each run is ``evals.runner.run_and_record``, as for ``agentwatch eval run``; its span sink is
this receiver's export handler (validation, dedup, write-ahead log), so the spans are durable
before the run is recorded. After each run, the run is compared with the agent's pinned
baseline (``agentwatch eval baseline pin``; for canary runs, the pinned canary): a regression is
logged and stored as a row of ``eval_events`` for alerting.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.component import ReceiverCounters, ReceiverSettings
from core.configmodel import STRICT
from core.httpclient import RetryPolicy
from core.units import Duration
from evals.config import EvalsConfig
from evals.conversation import Simulator
from evals.datasets import load_dataset
from evals.judges.factory import build_judge
from evals.runner import EvalRun, run_and_record
from evals.scheduler import Job, Schedule, Scheduler, valid_cron
from evals.targets.specs import resolve_target
from evals.tracing import SpanSinkError
from processors.cost.config import Config as CostConfig
from receiver.otlp.handler import ExportHandler, TenantKeys

TYPE = "synthetic"
log = logging.getLogger("agentwatch.synthetic")


@dataclass(frozen=True)
class CanaryConfig:
    __pydantic_config__ = STRICT
    dataset: str
    schedule: str = "*/15 * * * *"


@dataclass(frozen=True)
class Config:
    __pydantic_config__ = STRICT
    agent: str
    dataset: str
    target: str
    """A target spec (python:mod:fn, openai:URL#model, glean:URL#agent_id, http:URL) or the name of
    a target under ``evals.targets`` (checked against that section when the config is loaded)."""
    schedule: str = "0 * * * *"
    """Cron expression, UTC. Default: hourly."""
    api_key: str | None = None
    """Bearer key for the target; use ${env:VAR}."""
    judge: str = "heuristic"
    """heuristic, a name under ``evals.judges``, or openai:URL#model / glean:URL."""
    tenant: str = "default"
    timeout: Duration = 60.0
    retries: int = 3
    concurrency: int = 4
    regression_threshold: float = 1.0
    """Points (of 10) a dimension may drop before the paired test is asked."""
    alpha: float = 0.05
    run_on_start: bool = False
    """Also run once as soon as the service starts."""
    canary: CanaryConfig | None = None

    def validate(self) -> list[str]:
        problems = []
        schedules = [("schedule", self.schedule)]
        if self.canary is not None:
            schedules.append(("canary.schedule", self.canary.schedule))
        for key, expression in schedules:
            if not valid_cron(expression):
                problems.append(f'{key}: {expression!r} is not a cron expression (e.g. "0 * * * *")')
        if self.concurrency < 1:
            problems.append("concurrency: must be at least 1")
        if not self.agent.strip():
            problems.append("agent: must not be empty")
        return problems


class HandlerSink:
    """Eval spans (OTLP bytes) → the receiver's export handler, on the service's event loop."""

    def __init__(self, handler: ExportHandler, loop: asyncio.AbstractEventLoop, tenant: str) -> None:
        self.handler, self.loop, self.tenant = handler, loop, tenant

    def submit(self, payload: bytes, spans: int) -> None:
        future = asyncio.run_coroutine_threadsafe(
            self.handler.export(payload, "protobuf", self.tenant), self.loop
        )
        result = future.result()  # durable (in the write-ahead log) when this returns
        if result.rejected:
            raise SpanSinkError(result.message)


class SyntheticReceiver:
    def __init__(self, config: Config, settings: ReceiverSettings) -> None:
        self.config = config
        self.id = settings.id
        self.data_dir = settings.data_dir
        evals = settings.sections.get("evals")
        self.evals = evals if isinstance(evals, EvalsConfig) else EvalsConfig()
        prices = settings.sections.get("prices")
        self.prices = prices if isinstance(prices, CostConfig) else None
        """The cost processor's prices, for the judge ledger (None: the built-in price tables)."""
        self.handler = ExportHandler(
            settings.sink,
            settings.id,
            settings.stored,
            TenantKeys(settings.tenant_attributes),
            settings.budget,
        )
        self.scheduler: Scheduler | None = None
        self.sink: HandlerSink | None = None
        self.last_run: EvalRun | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.sink = HandlerSink(self.handler, loop, self.config.tenant)
        self.scheduler = Scheduler(self.jobs(datetime.now(UTC)))
        if self.config.run_on_start:
            loop.run_in_executor(None, self.scheduler.run, self.scheduler.jobs[0])
        self.scheduler.start()

    def jobs(self, now: datetime) -> list[Job]:
        c = self.config
        jobs = [
            Job(
                f"{self.id}:scheduled",
                Schedule(c.schedule, now),
                lambda: self.run_once(c.dataset, "scheduled"),
            )
        ]
        if c.canary is not None:
            canary = c.canary
            jobs.append(Job(f"{self.id}:canary", Schedule(canary.schedule, now),
                            lambda: self.run_once(canary.dataset, "canary")))  # fmt: skip
        return jobs

    def run_once(self, dataset: str, kind: str) -> EvalRun:
        assert self.sink is not None and self.data_dir is not None
        c = self.config
        policy = RetryPolicy(timeout=c.timeout, retries=c.retries)
        target = resolve_target(c.target, self.evals, policy, c.api_key)
        if c.target not in self.evals.targets:  # a named target brings its own limit
            target.concurrency = c.concurrency
        judge = build_judge(c.judge, self.evals)
        turns = self.evals.multi_turn
        simulator = (
            Simulator(resolve_target(turns.simulator, self.evals, policy), turns.persona, turns.stop)
            if turns.simulator
            else None
        )
        try:
            cases = load_dataset(dataset)
            cancelled = self.scheduler.stopping if self.scheduler is not None else None
            recorded = run_and_record(
                cases, target, judge, self.sink, Path(self.data_dir), agent=c.agent, dataset=dataset,
                tenant=c.tenant, kind=kind, groundedness_threshold=self.evals.groundedness_threshold,
                quality_thresholds=self.evals.quality_thresholds,
                regression_threshold=c.regression_threshold, alpha=c.alpha, cancelled=cancelled,
                prices=self.prices, simulator=simulator,
            )  # fmt: skip
        finally:
            target.close()
            judge.close()
            if simulator is not None:
                simulator.target.close()
        run = recorded.run
        self.last_run = run
        if recorded.spans_lost:
            log.error("%s: run %s is recorded, but %d of its %d spans are not stored: %s", self.id,
                      run.run_id, recorded.spans_lost, recorded.spans, recorded.span_problem)  # fmt: skip
        log.info("%s: %s run %s of %s: %d cases, overall %s", self.id, kind, run.run_id, c.agent,
                 len(run.outcomes), run.overall_score)  # fmt: skip
        return run

    def endpoints(self) -> dict[str, int]:
        return {}  # no port: runs are started by its schedule

    def counters(self) -> ReceiverCounters:
        return self.handler.counters()

    async def shutdown(self, grace: float = 5.0) -> None:
        # Blocks (a running job gives up between cases; its last spans are exported through this
        # loop): on a worker thread, never on the loop itself.
        loop = asyncio.get_running_loop()
        if self.scheduler is not None:
            await loop.run_in_executor(None, self.scheduler.stop)


def create(config: Config, settings: ReceiverSettings) -> SyntheticReceiver:
    return SyntheticReceiver(config, settings)
