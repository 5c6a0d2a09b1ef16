"""Glean-shaped spans: agent_run / chat / mcp."""

from __future__ import annotations

from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from agentwatch.demo_scenarios.spans import (
    LlmCall,
    RunContext,
    RunOutcome,
    SpanSpec,
    ToolCall,
    error_attributes,
    status_only,
)


class GleanShape:
    scope = "glean.agents"

    def _run_attrs(self, ctx: RunContext) -> dict[str, AttributeValue]:
        return {"glean.agent.id": ctx.agent.agent_id, "glean.run.id": f"run_{ctx.plan.seed:08x}"}

    def root(self, ctx: RunContext) -> SpanSpec:
        agent = ctx.agent
        attrs = self._run_attrs(ctx) | {
            "glean.agent.name": agent.name,
            "glean.agent.creator": agent.owner,
            "glean.agent.version": agent.version,
            "glean.run.trigger": "chat",
            "gen_ai.prompt": ctx.question,  # the run's input: what cases export turns into a case
            "user.id": ctx.plan.user,
            "session.id": ctx.plan.session_id,
        }
        return SpanSpec("agent_run", self.scope, SpanKind.SERVER, attrs, ctx.rng.uniform(20, 120))

    def llm(self, ctx: RunContext, call: LlmCall) -> SpanSpec:
        # Glean's chat spans use the older GenAI names (gen_ai.system, prompt/completion tokens).
        attrs = self._run_attrs(ctx) | {
            "glean.step": call.phase,
            "gen_ai.system": call.model.provider,
            "gen_ai.request.model": call.model.name,
            "gen_ai.prompt": ctx.question,
        }
        if call.error is None:
            completion = call.tool_call.arguments if call.tool_call else call.text
            attrs |= {
                "gen_ai.response.model": call.model.response_model,
                "gen_ai.response.finish_reasons": (call.finish_reason,),
                "gen_ai.usage.prompt_tokens": call.input_tokens,
                "gen_ai.usage.completion_tokens": call.output_tokens,
                "gen_ai.completion": completion,
            }
        attrs |= error_attributes(call.error)
        return SpanSpec("chat", self.scope, SpanKind.CLIENT, attrs, call.ms, call.gap_ms, call.error)

    def tool(self, ctx: RunContext, call: ToolCall) -> SpanSpec:
        attrs = self._run_attrs(ctx) | {
            "glean.connector": ctx.agent.tool_server,
            "mcp.method.name": "tools/call",
            "gen_ai.tool.name": call.name,
            "gen_ai.tool.call.id": call.call_id,
            "gen_ai.tool.call.arguments": call.arguments,
            "jsonrpc.request.id": str(call.request_id),
        }
        if call.result:
            attrs["gen_ai.tool.call.result"] = call.result
        attrs |= error_attributes(call.error)
        return SpanSpec("mcp", self.scope, SpanKind.CLIENT, attrs, call.ms, call.gap_ms, call.error)

    def finish(self, ctx: RunContext, root: SpanSpec, outcome: RunOutcome) -> None:
        if outcome.error is not None:
            root.attributes |= {"glean.run.status": "ERROR"} | error_attributes(outcome.error)
            root.error = status_only(outcome.error)
        else:
            root.attributes |= {"glean.run.status": "SUCCESS", "gen_ai.completion": outcome.answer or ""}
            root.status_ok = True
