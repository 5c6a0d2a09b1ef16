"""Span trees. ``SpanSpec`` is what ``agentwatch.demo`` turns into one real span.

Also the steps a run is made of (``LlmCall``, ``ToolCall``), the ``Shape`` protocol each convention
implements, and the attribute helpers the shapes share.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Protocol

from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from agentwatch.demo_scenarios.catalog import Agent, Model, Task
from agentwatch.demo_scenarios.plan import RunPlan


@dataclass(frozen=True)
class ErrorSpec:
    error_type: str  # the ``error.type`` attribute, where the convention sets one
    message: str  # the span's status message
    exception: tuple[str, str, str] | None = None  # (module, class, message), recorded as an event
    http_status: int | None = None
    jsonrpc_code: int | None = None


@dataclass
class SpanSpec:
    name: str
    scope: str  # instrumentation scope, i.e. which library "emitted" the span
    kind: SpanKind
    attributes: dict[str, AttributeValue]
    own_ms: float  # a leaf's duration; a parent's time outside its children (half before, half after)
    gap_ms: float = 0.0  # idle time after the previous sibling ended
    error: ErrorSpec | None = None
    status_ok: bool = False  # most instrumentations leave a good span UNSET; some say OK
    children: list[SpanSpec] = field(default_factory=list)

    def count(self) -> int:
        return 1 + sum(child.count() for child in self.children)


@dataclass(frozen=True)
class LlmCall:
    model: Model
    phase: str  # "plan" picks the tool, "answer" writes the reply
    ms: float
    gap_ms: float
    input_tokens: int = 0
    output_tokens: int = 0
    text: str = ""
    finish_reason: str = ""
    tool_call: Task | None = None  # set when the model asks for a tool
    tool_result: ToolCall | None = None  # set when the tool's answer is in the prompt
    response_id: str = ""
    error: ErrorSpec | None = None


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str
    result: str
    ms: float
    gap_ms: float
    call_id: str
    request_id: int
    error: ErrorSpec | None = None


@dataclass(frozen=True)
class RunOutcome:
    answer: str | None = None
    error: ErrorSpec | None = None


@dataclass
class RunContext:
    plan: RunPlan
    question: str
    rng: random.Random

    @property
    def agent(self) -> Agent:
        return self.plan.agent


class Shape(Protocol):
    """How one convention dresses the same steps."""

    def root(self, ctx: RunContext) -> SpanSpec: ...
    def llm(self, ctx: RunContext, call: LlmCall) -> SpanSpec: ...
    def tool(self, ctx: RunContext, call: ToolCall) -> SpanSpec: ...
    def finish(self, ctx: RunContext, root: SpanSpec, outcome: RunOutcome) -> None: ...


def error_attributes(err: ErrorSpec | None) -> dict[str, AttributeValue]:
    """The attributes instrumentations put next to an ERROR status."""
    if err is None:
        return {}
    attrs: dict[str, AttributeValue] = {"error.type": err.error_type}
    if err.http_status is not None:
        attrs["http.response.status_code"] = err.http_status
    if err.jsonrpc_code is not None:
        attrs["rpc.jsonrpc.error_code"] = err.jsonrpc_code
        attrs["rpc.response.status_code"] = str(err.jsonrpc_code)
    return attrs


def status_only(err: ErrorSpec | None) -> ErrorSpec | None:
    """The same error on a parent span: status and type, without a second exception event."""
    return None if err is None else ErrorSpec(err.error_type, err.message)


def compact_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def text_message(role: str, content: str, finish: str | None = None) -> dict[str, object]:
    message: dict[str, object] = {"role": role, "parts": [{"type": "text", "content": content}]}
    if finish is not None:
        message["finish_reason"] = finish
    return message
