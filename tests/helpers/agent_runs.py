"""Agent runs made with the OpenTelemetry SDK at fixed times: an ``invoke_agent`` span, and
under it a tool call and a model call, each failing or not (the health tests' fixtures)."""

from __future__ import annotations

from datetime import UTC, datetime

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

NOW = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC).timestamp()
S = 1_000_000_000


class Spans:
    def __init__(self, tenant: str = "acme") -> None:
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": "bot", "tenant.id": tenant}))
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = provider.get_tracer("test")

    def run(
        self, start: float, ms: float, *, agent: str = "expense-bot", agent_id: str | None = None,
        fail: bool = False, tool: tuple[str, bool] | None = None, model: tuple[str, str | None] | None = None,
        synthetic: bool = False, tokens: tuple[int, int] | None = None,
    ) -> str:  # fmt: skip
        """One run starting ``start`` seconds after ``NOW`` (negative: before) lasting ``ms``; a
        tool call (name, failed) and a model call (model, error message; ``tokens`` in and out)
        under it. Returns the trace id (hex)."""
        begin = int((NOW + start) * S)
        attributes: dict[str, str | bool] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": agent,
        }
        if agent_id:
            attributes["gen_ai.agent.id"] = agent_id
        if synthetic:
            attributes["agentwatch.synthetic"] = True
        root = self.tracer.start_span(f"invoke_agent {agent}", attributes=attributes, start_time=begin)
        context = trace.set_span_in_context(root)
        if tool is not None:
            name, failed = tool
            span = self.tracer.start_span(
                f"execute_tool {name}", context, start_time=begin + S // 1000,
                attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name},
            )  # fmt: skip
            if failed:
                span.set_status(Status(StatusCode.ERROR, f"{name} raised ToolError"))
            span.end(begin + 2 * S // 1000)
        if model is not None:
            name, error = model
            span = self.tracer.start_span(
                f"chat {name}", context, start_time=begin + 3 * S // 1000,
                attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": name,
                            "gen_ai.system": "openai"},
            )  # fmt: skip
            if tokens is not None:
                span.set_attribute("gen_ai.usage.input_tokens", tokens[0])
                span.set_attribute("gen_ai.usage.output_tokens", tokens[1])
            if error:
                span.set_status(Status(StatusCode.ERROR, error))
            span.end(begin + 4 * S // 1000)
        if fail:
            root.set_status(Status(StatusCode.ERROR, "the agent gave up"))
        root.end(begin + int(ms * S / 1000))
        return f"{root.get_span_context().trace_id:032x}"

    def take(self) -> list[ReadableSpan]:
        spans = list(self.exporter.get_finished_spans())
        self.exporter.clear()
        return spans
