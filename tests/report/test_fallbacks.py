"""Fallbacks (report/fallbacks.py): decisions recorded as the agent.fallback.triggered event or as
agent.fallback.* attributes, the activation rate per agent and reason, and whether the runs that
fell back succeeded more than the others. bot's five runs, hand-computed:

    R1  event agent.fallback.triggered (reason search_down)            success
    R2  attributes agent.fallback.reason rate_limit, from/to models    failure
    R3  -                                                              success
    R4  -                                                              failure
    R5  -  (an event of another name: not a fallback)                  failure

2 of 5 fell back (40%); 1 of those 2 succeeded (50%), 1 of the other 3 (33%).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from report.fallbacks import FallbackSummary, fallbacks
from storage.catalog import connect
from storage.runs import Scope, runs_in
from tests.helpers.store import store_spans

T = datetime(2026, 6, 1, 9, tzinfo=UTC)


def test_fallbacks_per_agent(tmp_path: Path) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"agentwatch.tenant": "acme"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    runs = [
        ("event", {"agent.fallback.reason": "search_down"}, False),
        ("attributes", {"agent.fallback.reason": "rate_limit", "agent.fallback.from": "gpt-4o",
                        "agent.fallback.to": "gpt-4o-mini"}, True),
        (None, {}, False),
        (None, {}, True),
        ("other event", {}, True),
    ]  # fmt: skip
    for i, (how, attributes, failed) in enumerate(runs):
        start = int((T + timedelta(minutes=i)).timestamp() * 10**9)
        span = tracer.start_span("invoke_agent bot", start_time=start, attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "bot",
            **(attributes if how == "attributes" else {})})  # fmt: skip
        if how == "event":
            span.add_event("agent.fallback.triggered", attributes, timestamp=start + 1000)
        elif how == "other event":
            span.add_event("agent.retry", {"agent.fallback.reason": "not a fallback"}, timestamp=start + 1000)
        if failed:
            span.set_status(Status(StatusCode.ERROR, "failed"))
        span.end(end_time=start + 10**9)
    provider.shutdown()
    (tmp_path / "agentwatch.yaml").write_text(f"storage:\n  data_dir: {tmp_path / 'data'}\n")
    store_spans(tmp_path / "agentwatch.yaml", memory.get_finished_spans())
    found = fallbacks(runs_in(connect(tmp_path / "data"), Scope(T, T + timedelta(hours=1))))
    assert found == {
        ("acme", "bot"): FallbackSummary(
            runs=5, fell_back=2, activation_rate=0.4, reasons={"rate_limit": 1, "search_down": 1},
            success_rate_with=0.5, success_rate_without=1 / 3,
        )
    }  # fmt: skip
    # One agent's report says it in words (and its JSON carries the numbers).
    from report.formats import agent_dict, fallback_line
    from report.health import IMPLICIT_COLUMNS, NAME_COLUMNS, build_report

    scoped = runs_in(connect(tmp_path / "data"), Scope(T, T + timedelta(hours=1), "bot"),
                     (*NAME_COLUMNS, *IMPLICIT_COLUMNS))  # fmt: skip
    (bot,) = build_report(scoped, ()).agents
    assert bot.fallbacks is not None and agent_dict(bot)["fallbacks"]["fell_back"] == 2
    assert fallback_line(bot.fallbacks) == (
        "2 of 5 runs fell back (40.0%: rate_limit 1, search_down 1); 50.0% of them succeeded, 33.3% of the others"
    )
