"""Two tenants' agent runs as the OpenTelemetry SDK records them, for the usage views' and the
ledger's tests: acme (team ``search`` as a resource attribute) runs expense-bot three times,
globex (team ``ops`` from ``k8s.namespace.name``, mapped in ``CONFIG``) runs faq-bot once.

Prices come from ``CONFIG`` (m1: 1.00 input, 0.50 cached input, 2.00 output, per million tokens):
run A 800 x 1 + 200 x 0.5 + 500 x 2 = 1,900 micro-dollars, run B 2,000 x 1 = 2,000, run C
1,000 x 2 = 2,000; globex's model has no price.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

CONFIG = """
processors:
  normalize:
    attributes:
      team: [k8s.namespace.name]
  cost:
    models:
      m1: {input: 1.0, output: 2.0, cached_input: 0.5}
"""


def _ns(clock: str) -> int:
    return int(datetime.fromisoformat(f"2026-05-04T{clock}+00:00").timestamp() * 10**9)


def _run(tracer: trace.Tracer, agent: str, user: str, session: str | None, start: str, seconds: int,
         calls: list[dict[str, Any]], tool_failed: bool | None = None, failed: bool = False) -> None:  # fmt: skip
    attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent, "user.id": user}
    if session is not None:
        attributes["session.id"] = session
    begin = _ns(start)
    run = tracer.start_span(f"invoke_agent {agent}", start_time=begin, attributes=attributes)
    context = trace.set_span_in_context(run)
    for call in calls:
        usage = {f"gen_ai.usage.{k}": v for k, v in call.items() if k != "model"}
        span = tracer.start_span("chat", context=context, start_time=begin + 10**8, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": call["model"], **usage})  # fmt: skip
        span.end(end_time=begin + 2 * 10**8)
    if tool_failed is not None:
        tool = tracer.start_span("execute_tool search", context=context, start_time=begin + 3 * 10**8,
                                 attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"})  # fmt: skip
        if tool_failed:
            tool.set_status(Status(StatusCode.ERROR, "search backend down"))
        tool.end(end_time=begin + 4 * 10**8)
    if failed:
        run.set_status(Status(StatusCode.ERROR, "agent gave up"))
    run.end(end_time=begin + seconds * 10**9)


def recorded() -> list[ReadableSpan]:
    spans: list[ReadableSpan] = []
    for resource, runs in (
        ({"agentwatch.tenant": "acme", "team.name": "search"}, "acme"),
        ({"agentwatch.tenant": "globex", "k8s.namespace.name": "ops"}, "globex"),
    ):
        memory = InMemorySpanExporter()  # one per provider: shutting a provider down shuts its exporter
        provider = TracerProvider(resource=Resource.create({"service.name": "bot", **resource}))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        tracer = provider.get_tracer("usage-test")
        if runs == "acme":
            _run(tracer, "expense-bot", "u1", "s1", "10:00:00", 10,
                 [{"model": "m1", "input_tokens": 1000, "output_tokens": 500, "cache_read.input_tokens": 200}],
                 tool_failed=False)  # fmt: skip
            _run(tracer, "expense-bot", "u1", "s1", "10:00:05", 20, [{"model": "m1", "input_tokens": 2000}],
                 tool_failed=True, failed=True)  # fmt: skip
            _run(tracer, "expense-bot", "u2", "s2", "10:01:05", 5, [{"model": "m1", "output_tokens": 1000}])
        else:
            _run(tracer, "faq-bot", "u3", None, "10:00:05", 60,
                 [{"model": "m-unknown", "input_tokens": 100, "output_tokens": 100}])  # fmt: skip
        provider.shutdown()
        spans += memory.get_finished_spans()
    return spans
