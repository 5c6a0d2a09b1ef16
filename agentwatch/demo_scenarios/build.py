"""One run's span tree: its steps (plan call, tool call, answer call) and where its failure shows.

The failure logic is written once here; the shapes in ``glean``, ``genai`` and ``openinference``
only decide names and attributes.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace

from agentwatch.demo_scenarios.catalog import REFUSAL, Convention, Model, Task
from agentwatch.demo_scenarios.genai import GenAiShape
from agentwatch.demo_scenarios.glean import GleanShape
from agentwatch.demo_scenarios.openinference import OpenInferenceShape
from agentwatch.demo_scenarios.plan import RunPlan
from agentwatch.demo_scenarios.spans import (
    ErrorSpec,
    LlmCall,
    RunContext,
    RunOutcome,
    Shape,
    SpanSpec,
    ToolCall,
)

SHAPES: dict[Convention, Shape] = {
    "glean": GleanShape(),
    "genai": GenAiShape(),
    "openinference": OpenInferenceShape(),
}


def build_run(plan: RunPlan) -> SpanSpec:
    """The span tree of one run; the same plan always gives the same tree."""
    question = plan.agent.blocked_question if plan.failure == "blocked_response" else plan.task.question
    ctx = RunContext(plan, question, random.Random(plan.seed))
    shape = SHAPES[plan.agent.convention]
    root = shape.root(ctx)
    outcome = _play(ctx, shape, root.children)
    shape.finish(ctx, root, outcome)
    return root


def _play(ctx: RunContext, shape: Shape, out: list[SpanSpec]) -> RunOutcome:
    """Append the run's steps (plan call, tool call, answer call) and say how the run ended.

    The failure logic is written once here; the shapes only decide names and attributes.
    """
    early = _fail_before_tool(ctx, shape, out)
    if early is not None:
        return early
    agent, task = ctx.agent, ctx.plan.task
    out.append(shape.llm(ctx, _plan_call(ctx, agent.planner, task)))
    tool = _tool_call(ctx)
    out.append(shape.tool(ctx, tool))
    if ctx.plan.failure == "auth_failed" and tool.error is not None:
        return RunOutcome(error=tool.error)
    err = _answer_error(ctx)
    if err is not None:
        ms = _timeout_ms(ctx.rng) if err is TIMEOUT else ctx.rng.uniform(300, 700)
        out.append(shape.llm(ctx, _failed(ctx, agent.answerer, "answer", err, ms)))
        return RunOutcome(error=err)
    text = {"tool_error": _degraded(task.tool), "empty_response": ""}.get(ctx.plan.failure or "", task.answer)
    out.append(shape.llm(ctx, _answer(ctx, agent.answerer, text, "stop", tool=tool)))
    return RunOutcome(answer=text)


def _fail_before_tool(ctx: RunContext, shape: Shape, out: list[SpanSpec]) -> RunOutcome | None:
    """Failures that end (or answer) the run before any tool is called."""
    agent, rng, failure = ctx.agent, ctx.rng, ctx.plan.failure
    if failure == "blocked_response":
        out.append(shape.llm(ctx, _answer(ctx, agent.answerer, REFUSAL, "content_filter")))
        return RunOutcome(answer=REFUSAL)
    if failure == "rate_limit":
        err = _rate_limit(agent.planner)
        out.append(shape.llm(ctx, _failed(ctx, agent.planner, "plan", err, rng.uniform(300, 600))))
        # The provider SDK retries once after a backoff, then gives up.
        backoff = rng.uniform(1000, 2000)
        out.append(shape.llm(ctx, _failed(ctx, agent.planner, "plan", err, rng.uniform(300, 600), backoff)))
        return RunOutcome(error=err)
    # Half the timeouts hit the first model call, half the one after the tool.
    if failure == "timeout" and rng.random() < 0.5:
        out.append(shape.llm(ctx, _failed(ctx, agent.planner, "plan", TIMEOUT, _timeout_ms(rng))))
        return RunOutcome(error=TIMEOUT)
    return None


def _answer_error(ctx: RunContext) -> ErrorSpec | None:
    if ctx.plan.failure == "timeout":
        return TIMEOUT
    if ctx.plan.failure == "context_overflow":
        return _context_overflow(ctx.agent.answerer, ctx.rng)
    return None


TIMEOUT = ErrorSpec(
    error_type="TimeoutError",
    message="Request timed out after 30s",
    exception=("builtins", "TimeoutError", "Request timed out after 30s"),
)


def _rate_limit(model: Model) -> ErrorSpec:
    return ErrorSpec(
        error_type="429",
        message="Rate limit exceeded",
        exception=(model.sdk_module, model.rate_limit_exception, "Error code: 429 - Rate limit exceeded"),
        http_status=429,
    )


def _context_overflow(model: Model, rng: random.Random) -> ErrorSpec:
    text = f"maximum context length exceeded: {rng.randint(201_000, 260_000)} tokens requested, limit 200000"
    return ErrorSpec(
        error_type="400",
        message=text,
        exception=(model.sdk_module, "BadRequestError", f"Error code: 400 - {text}"),
        http_status=400,
    )


def _timeout_ms(rng: random.Random) -> float:
    return 30_000 + rng.uniform(0, 250)


def _degraded(tool: str) -> str:
    return f"I couldn't reach {tool} just now, so I can't confirm the details. Please try again shortly."


def _response_id(rng: random.Random) -> str:
    return f"resp_{rng.getrandbits(48):012x}"


def _plan_call(ctx: RunContext, model: Model, task: Task) -> LlmCall:
    rng = ctx.rng
    return LlmCall(
        model=model,
        phase="plan",
        ms=rng.uniform(300, 1500),
        gap_ms=rng.uniform(2, 30),
        input_tokens=rng.randint(600, 2500),
        output_tokens=rng.randint(20, 80),
        finish_reason="tool_call",
        tool_call=task,
        response_id=_response_id(rng),
    )


def _answer(ctx: RunContext, model: Model, text: str, finish: str, tool: ToolCall | None = None) -> LlmCall:
    rng = ctx.rng
    return LlmCall(
        model=model,
        phase="answer",
        # An empty answer comes back fast; a real one takes a while to generate.
        ms=rng.uniform(900, 4000) if text else rng.uniform(300, 900),
        gap_ms=rng.uniform(2, 30),
        input_tokens=rng.randint(900, 4000),
        output_tokens=rng.randint(12, 400) if text else 0,
        text=text,
        finish_reason=finish,
        tool_result=tool,
        response_id=_response_id(rng),
    )


def _failed(
    ctx: RunContext, model: Model, phase: str, err: ErrorSpec, ms: float, gap_ms: float | None = None
) -> LlmCall:
    gap = ctx.rng.uniform(2, 30) if gap_ms is None else gap_ms
    return LlmCall(model=model, phase=phase, ms=ms, gap_ms=gap, error=err)


def _tool_call(ctx: RunContext) -> ToolCall:
    rng, task = ctx.rng, ctx.plan.task
    call = ToolCall(
        name=task.tool,
        arguments=task.arguments,
        result=task.result,
        ms=rng.uniform(50, 1200),
        gap_ms=rng.uniform(2, 30),
        call_id=f"call_{rng.getrandbits(48):012x}",
        request_id=rng.randint(1, 400),
    )
    if ctx.plan.failure == "auth_failed":
        message = f"401 Unauthorized: the {ctx.agent.tool_server} connector rejected the user's credentials"
        err = ErrorSpec("401", message, ("glean.connectors", "ConnectorAuthError", message), http_status=401)
        return replace(call, error=err, result="", ms=rng.uniform(50, 300))
    if ctx.plan.failure == "tool_error":
        return _broken_tool(call, rng)
    return call


def _broken_tool(call: ToolCall, rng: random.Random) -> ToolCall:
    # MCP reports a broken tool two ways: a JSON-RPC error, or a result flagged isError.
    if rng.random() < 0.5:
        err = ErrorSpec("-32603", "Internal error: upstream API returned 503", jsonrpc_code=-32603)
        return replace(call, error=err, result="")
    text = "ServiceNow API request failed: 503 Service Unavailable"
    result = json.dumps({"content": [{"type": "text", "text": text}], "isError": True})
    return replace(call, error=ErrorSpec("tool_error", text), result=result)
