"""Where money leaks (spend/leaks.py), on SDK spans stored through the default pipeline, against
hand-computed values. m1 costs $1 per million input tokens and nothing for output, so a call's
cost is its input tokens x 1e-6.

Five runs of ``bot`` (inputs 1,000 / 1,000 + 1,000 / 2,000 / 10,000 / 500: median 1,000):

- R1 succeeds, its tool's output is used in the answer ("invoice", "approved");
- R2 succeeds but calls the model twice with the same input (a retry: $0.001) and its
  tool's output ("sunny skies tomorrow", 20 characters = 5 tokens at R2's $1e-6 per input token)
  shares no word with the answer;
- R3 fails ($0.002; its unused tool output is not counted again);
- R4's 10,000-token prompt is over 3x the median: 9,000 tokens too many, $0.009;
- R5 calls one tool three times with the same arguments (loop_detected): its $0.0005 leaks,
  and the two repeats are retried calls (tool calls cost nothing themselves).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from spend.leaks import leak_dict, leaks
from storage.catalog import connect
from storage.runs import Scope, runs_in
from tests.helpers.store import store_spans

CONFIG = "processors:\n  cost:\n    models:\n      m1: {input: 1.0, output: 0.0}\n"
START = datetime(2026, 6, 1, 9, tzinfo=UTC)


def _run(tracer: trace.Tracer, minute: int, answer: str | None, calls: list[int | str],
         tools: list[tuple[str, str, str]], failed: bool = False) -> None:  # fmt: skip
    """``calls``: input tokens of model calls (a string ``"N:text"``: with that input text);
    ``tools``: (name, arguments, output)."""
    begin = int(START.timestamp() * 10**9) + minute * 60 * 10**9
    attributes: dict[str, Any] = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "bot"}
    if answer is not None:
        attributes["gen_ai.output.messages"] = answer
    run = tracer.start_span("invoke_agent bot", start_time=begin, attributes=attributes)
    context = trace.set_span_in_context(run)
    for i, call in enumerate(calls):
        tokens, _, text = str(call).partition(":")
        chat = tracer.start_span("chat m1", context=context, start_time=begin + (i + 1) * 10**6, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "m1",
            "gen_ai.usage.input_tokens": int(tokens), "gen_ai.usage.output_tokens": 10,
            **({"gen_ai.input.messages": text} if text else {})})  # fmt: skip
        chat.end(end_time=begin + (i + 2) * 10**6)
    for i, (name, arguments, output) in enumerate(tools):
        tool = tracer.start_span(f"execute_tool {name}", context=context, start_time=begin + (50 + i) * 10**6,
                                 attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name,
                                             "gen_ai.tool.call.arguments": arguments,
                                             "gen_ai.tool.call.result": output})  # fmt: skip
        tool.end(end_time=begin + (51 + i) * 10**6)
    if failed:
        run.set_status(Status(StatusCode.ERROR, "gave up"))
    run.end(end_time=begin + 10**9)


def _recorded() -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bot", "agentwatch.tenant": "acme"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("leaks-test")
    _run(tracer, 0, "The invoice total is approved", [1000], [("search", '{"q": "inv"}', "invoice approved")])
    _run(tracer, 1, "Hello there friend", ["1000:same question", "1000:same question"],
         [("weather", '{"city": "Oslo"}', "sunny skies tomorrow")])  # fmt: skip
    # A failed run counts whole: its unused tool output is not counted again.
    _run(tracer, 2, "Sorry, something broke", [2000], [("weather", '{"city": "Rome"}', "sunny skies tomorrow")],
         failed=True)  # fmt: skip
    _run(tracer, 3, "A long answer", [10_000], [])
    _run(tracer, 4, None, [500], [("lookup", '{"id": 7}', "")] * 3)
    provider.shutdown()
    return list(memory.get_finished_spans())


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("leaks")
    path = root / "agentwatch.yaml"
    path.write_text(f"storage:\n  data_dir: {root / 'data'}\n{CONFIG}")
    store_spans(path, _recorded())
    return root / "data"


def test_each_kind_of_leak_per_agent(data: Path) -> None:
    con = connect(data)
    scope = Scope(START, datetime(2026, 6, 2, tzinfo=UTC))
    (found,) = leaks(runs_in(con, scope, ("agent_name",)))
    doc = {k: round(v, 9) if isinstance(v, float) else v for k, v in leak_dict(found).items()}
    assert doc == {
        "tenant": "acme", "agent": "bot", "agent_name": "bot", "runs": 5,
        "spend_usd": 0.0155,  # 0.001 + 0.002 + 0.002 + 0.01 + 0.0005
        "failed_runs_usd": 0.002,
        "retries_usd": 0.001, "retried_calls": 3,  # R2's model call, R5's two repeated tool calls
        "loops_usd": 0.0005,
        "oversized_usd": 0.009, "oversized_calls": 1,
        "unused_tool_calls": 1, "unused_tool_output_usd": 0.000005,
        "wasted_usd": 0.012505,
        "wasted_share": round(0.012505 / 0.0155, 9),
    }  # fmt: skip


def test_another_window_or_tenant_has_none(data: Path) -> None:
    con = connect(data)
    globex = Scope(START, datetime(2026, 6, 2, tzinfo=UTC), tenant="globex")
    assert leaks(runs_in(con, globex, ("agent_name",))) == []
    later = Scope(datetime(2026, 6, 3, tzinfo=UTC), datetime(2026, 6, 4, tzinfo=UTC))
    assert leaks(runs_in(con, later, ("agent_name",))) == []


def test_cost_leaks_on_the_command_line(data: Path) -> None:
    import json

    from click.testing import CliRunner

    from agentwatch.cli import main

    args = ["cost", "--data-dir", str(data), "--since", "1d", "--until", "2026-06-02T00:00:00Z", "--leaks"]
    result = CliRunner().invoke(main, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    (leak,) = json.loads(result.stdout)["leaks"]
    assert (leak["agent"], round(leak["wasted_usd"], 9)) == ("bot", 0.012505)
    text = CliRunner().invoke(main, args).stdout
    assert "where money leaks" in text
    assert "│ acme   │ bot   │ $0.0155 │ $0.0125 │ 80.7% │     $0.0020 │ $0.0010 (3) │ $0.0005 │" in text
