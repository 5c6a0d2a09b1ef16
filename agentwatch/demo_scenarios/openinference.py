"""OpenInference spans, as the LangChain instrumentation emits them."""

from __future__ import annotations

from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from agentwatch.demo_scenarios.spans import (
    LlmCall,
    RunContext,
    RunOutcome,
    SpanSpec,
    ToolCall,
    compact_json,
)

_LANGCHAIN_CHAT_CLASS = {
    "anthropic": "ChatAnthropic",
    "openai": "ChatOpenAI",
    "gcp.vertex_ai": "ChatVertexAI",
}


class OpenInferenceShape:
    scope = "openinference.instrumentation.langchain"

    def root(self, ctx: RunContext) -> SpanSpec:
        agent = ctx.agent
        attrs: dict[str, AttributeValue] = {
            "openinference.span.kind": "AGENT",
            "agent.name": agent.name,
            "agent.owner": agent.owner,
            "user.id": ctx.plan.user,
            "session.id": ctx.plan.session_id,
            "metadata": compact_json({"agent_id": agent.agent_id, "agent_version": agent.version}),
            "input.value": ctx.question,
            "input.mime_type": "text/plain",
        }
        root = SpanSpec("AgentExecutor", self.scope, SpanKind.INTERNAL, attrs, ctx.rng.uniform(20, 120))
        root.children.append(self._retriever(ctx))
        return root

    def _retriever(self, ctx: RunContext) -> SpanSpec:
        attrs: dict[str, AttributeValue] = {
            "openinference.span.kind": "RETRIEVER",
            "input.value": ctx.question,
            "retrieval.documents.0.document.id": "playbook-enterprise",
            "retrieval.documents.0.document.score": round(ctx.rng.uniform(0.62, 0.91), 3),
            "retrieval.documents.0.document.content": "Sales playbook: check renewals first.",
        }
        return SpanSpec(
            "VectorStoreRetriever", self.scope, SpanKind.INTERNAL, attrs, ctx.rng.uniform(40, 250)
        )

    def llm(self, ctx: RunContext, call: LlmCall) -> SpanSpec:
        model = call.model
        attrs: dict[str, AttributeValue] = {
            "openinference.span.kind": "LLM",
            "llm.model_name": model.name,
            "llm.provider": model.provider,
            "llm.system": model.provider,
            "llm.invocation_parameters": compact_json({"temperature": 0.2, "max_tokens": 1024}),
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": ctx.question,
            "input.value": compact_json({"messages": [{"role": "user", "content": ctx.question}]}),
            "input.mime_type": "application/json",
        }
        if call.tool_result is not None:
            attrs["llm.input_messages.1.message.role"] = "tool"
            attrs["llm.input_messages.1.message.content"] = call.tool_result.result
        if call.error is None:
            attrs |= self._output(call)
        return SpanSpec(
            "ChatAnthropic", self.scope, SpanKind.INTERNAL, attrs, call.ms, call.gap_ms, call.error
        )

    def _output(self, call: LlmCall) -> dict[str, AttributeValue]:
        attrs: dict[str, AttributeValue] = {
            "llm.output_messages.0.message.role": "assistant",
            "llm.token_count.prompt": call.input_tokens,
            "llm.token_count.completion": call.output_tokens,
            "llm.token_count.total": call.input_tokens + call.output_tokens,
            "output.value": call.text,
            "output.mime_type": "text/plain",
        }
        if call.tool_call is not None:
            tool_call = {"name": call.tool_call.tool, "arguments": call.tool_call.arguments}
            attrs["output.value"] = compact_json({"tool_calls": [tool_call]})
            attrs["output.mime_type"] = "application/json"
            prefix = "llm.output_messages.0.message.tool_calls.0.tool_call.function"
            attrs[f"{prefix}.name"] = call.tool_call.tool
            attrs[f"{prefix}.arguments"] = call.tool_call.arguments
        else:
            attrs["llm.output_messages.0.message.content"] = call.text
        return attrs

    def tool(self, ctx: RunContext, call: ToolCall) -> SpanSpec:
        attrs: dict[str, AttributeValue] = {
            "openinference.span.kind": "TOOL",
            "tool.name": call.name,
            "tool.parameters": call.arguments,
            "input.value": call.arguments,
            "input.mime_type": "application/json",
            "output.value": call.result,
        }
        return SpanSpec(call.name, self.scope, SpanKind.INTERNAL, attrs, call.ms, call.gap_ms, call.error)

    def finish(self, ctx: RunContext, root: SpanSpec, outcome: RunOutcome) -> None:
        if outcome.error is not None:
            root.error = outcome.error
            return
        root.attributes |= {"output.value": outcome.answer or "", "output.mime_type": "text/plain"}
