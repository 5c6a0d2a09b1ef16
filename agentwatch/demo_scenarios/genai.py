"""OpenTelemetry GenAI spans (current names) with MCP client spans."""

from __future__ import annotations

from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from agentwatch.demo_scenarios.catalog import REFUSAL
from agentwatch.demo_scenarios.spans import (
    LlmCall,
    RunContext,
    RunOutcome,
    SpanSpec,
    ToolCall,
    compact_json,
    error_attributes,
    status_only,
    text_message,
)

_GENAI_INSTRUMENTATION = {
    "openai": "opentelemetry.instrumentation.openai_v2",
    "anthropic": "opentelemetry.instrumentation.anthropic",
    "gcp.vertex_ai": "opentelemetry.instrumentation.vertexai",
}


class GenAiShape:
    agent_scope = "acme.agents"
    mcp_scope = "opentelemetry.instrumentation.mcp"

    def root(self, ctx: RunContext) -> SpanSpec:
        agent = ctx.agent
        attrs: dict[str, AttributeValue] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.provider.name": agent.answerer.provider,
            "gen_ai.agent.id": agent.agent_id,
            "gen_ai.agent.name": agent.name,
            "gen_ai.agent.version": agent.version,
            "gen_ai.request.model": agent.answerer.name,
            "gen_ai.conversation.id": ctx.plan.session_id,
            "gen_ai.input.messages": compact_json([text_message("user", ctx.question)]),
            "user.id": ctx.plan.user,
            "session.id": ctx.plan.session_id,
            "agent.owner": agent.owner,
        }
        name = f"invoke_agent {agent.name}"
        return SpanSpec(name, self.agent_scope, SpanKind.INTERNAL, attrs, ctx.rng.uniform(20, 120))

    def llm(self, ctx: RunContext, call: LlmCall) -> SpanSpec:
        model = call.model
        attrs: dict[str, AttributeValue] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": model.provider,
            "gen_ai.request.model": model.name,
            "gen_ai.request.temperature": 0.2,
            "gen_ai.request.max_tokens": 1024,
            "gen_ai.conversation.id": ctx.plan.session_id,
            "gen_ai.system_instructions": compact_json(
                [{"type": "text", "content": f"You are {ctx.agent.name}."}]
            ),
            "gen_ai.input.messages": compact_json(self._input(ctx, call)),
            "server.address": model.server,
            "server.port": 443,
        }
        if call.error is None:
            attrs |= {
                "gen_ai.response.model": model.response_model,
                "gen_ai.response.id": call.response_id,
                "gen_ai.response.finish_reasons": (call.finish_reason,),
                "gen_ai.usage.input_tokens": call.input_tokens,
                "gen_ai.usage.output_tokens": call.output_tokens,
                "gen_ai.output.messages": compact_json([self._output(call)]),
            }
        attrs |= error_attributes(call.error)
        scope = _GENAI_INSTRUMENTATION[model.provider]
        return SpanSpec(f"chat {model.name}", scope, SpanKind.CLIENT, attrs, call.ms, call.gap_ms, call.error)

    def _input(self, ctx: RunContext, call: LlmCall) -> list[dict[str, object]]:
        messages = [text_message("user", ctx.question)]
        tool = call.tool_result
        if tool is not None:
            request = {
                "type": "tool_call",
                "id": tool.call_id,
                "name": tool.name,
                "arguments": tool.arguments,
            }
            messages.append({"role": "assistant", "parts": [request]})
            response = {"type": "tool_call_response", "id": tool.call_id, "response": tool.result}
            messages.append({"role": "tool", "parts": [response]})
        return messages

    def _output(self, call: LlmCall) -> dict[str, object]:
        task = call.tool_call
        if task is None:
            return text_message("assistant", call.text, call.finish_reason)
        request = {
            "type": "tool_call",
            "id": call.response_id,
            "name": task.tool,
            "arguments": task.arguments,
        }
        return {"role": "assistant", "parts": [request], "finish_reason": call.finish_reason}

    def tool(self, ctx: RunContext, call: ToolCall) -> SpanSpec:
        server = ctx.agent.tool_server
        attrs: dict[str, AttributeValue] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": call.name,
            "gen_ai.tool.call.id": call.call_id,
            "gen_ai.tool.type": "extension" if server else "function",
            "gen_ai.tool.call.arguments": call.arguments,
        }
        if call.result:
            attrs["gen_ai.tool.call.result"] = call.result
        attrs |= error_attributes(call.error)
        if not server:
            return SpanSpec(f"execute_tool {call.name}", self.agent_scope, SpanKind.INTERNAL, attrs, call.ms,
                            call.gap_ms, call.error)  # fmt: skip
        span = SpanSpec(f"execute_tool {call.name}", self.agent_scope, SpanKind.INTERNAL, attrs,
                        ctx.rng.uniform(5, 30), call.gap_ms, status_only(call.error))  # fmt: skip
        span.children.append(self._mcp(ctx, call))
        return span

    def _mcp(self, ctx: RunContext, call: ToolCall) -> SpanSpec:
        server = ctx.agent.tool_server
        attrs: dict[str, AttributeValue] = {
            "mcp.method.name": "tools/call",
            "mcp.protocol.version": "2025-06-18",
            "mcp.session.id": f"{server}-{ctx.plan.session_id}",
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": call.name,
            "jsonrpc.request.id": str(call.request_id),
            "network.transport": "tcp",
            "server.address": f"mcp.{server}.acme.internal",
            "server.port": 443,
        }
        if call.result:
            attrs["gen_ai.tool.call.result"] = call.result
        attrs |= error_attributes(call.error)
        return SpanSpec(
            f"tools/call {call.name}", self.mcp_scope, SpanKind.CLIENT, attrs, call.ms, 1.0, call.error
        )

    def finish(self, ctx: RunContext, root: SpanSpec, outcome: RunOutcome) -> None:
        if outcome.error is not None:
            root.attributes |= error_attributes(outcome.error)
            root.error = outcome.error  # the exception escaped the agent loop, so it is recorded here too
            return
        finish = "content_filter" if outcome.answer == REFUSAL else "stop"
        root.attributes["gen_ai.output.messages"] = compact_json(
            [text_message("assistant", outcome.answer or "", finish)]
        )
