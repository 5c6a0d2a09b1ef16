"""The spans agent events stand for, as an OTLP request the normaliser reads like any other.

- ``agent.request.completed``: the run, ``invoke_agent {agent_id}`` (operation ``agent_run``),
  ending at the event's time and lasting ``latency_ms`` (else since its
  ``agent.request.started``); failed when ``status`` says so or an ``error_type`` is given.
- ``agent.request.started``, ``agent.step.started``: no span alone; the start of the span their
  completed event makes, when that has no ``latency_ms``.
- ``agent.step.completed``: a step under the run, ``chat {model}`` (operation ``chat``) when it
  names a model or tokens, else ``step`` (``other``); its tokens and ``cost_usd`` on it.
- ``agent.tool.called`` / ``agent.tool.failed``: a tool call ``execute_tool {tool_name}``
  (operation ``tool``); ``failed`` makes it an error and wins over a ``called`` of the same span.
- ``agent.retry``, ``agent.fallback.triggered``, ``agent.policy.decision``,
  ``agent.budget.threshold_hit``: a zero-length span of that name under the run, carrying the
  fields (a fallback's ``reason``/``from``/``to`` as ``agent.fallback.*``).

Fields become the attributes the normaliser reads: ``agent_id`` → ``gen_ai.agent.id``,
``user_id`` → ``user.id``, ``org_id``/``workspace_id``/``project_id``/``workflow_id`` → ``org.id``,
``workspace.id``, ``project.id``, ``workflow.id``, ``workflow_version`` → ``gen_ai.agent.version``,
``provider``/``model`` → ``gen_ai.provider.name``/``gen_ai.request.model``, ``tokens_*`` →
``gen_ai.usage.input_tokens``/``output_tokens``/``total_tokens``, ``cost_usd`` →
``gen_ai.usage.cost``, ``error_type`` → ``error.type``, ``tool_name`` → ``gen_ai.tool.name``; the
rest as ``agent.<field>``. A run's tokens and cost come from its step events; a completed request
carrying totals whose steps carry none gets one ``chat`` span holding them, so nothing is summed
twice. Every span is written by the instrumentation scope ``EVENT_SCOPE``: the run model leaves
such spans out of a trace that also has spans of its own, so a trace sent both ways counts once.

Ids: an event's ``span_id`` is its span's (so a started and a completed event of one step, or a
called and a failed event of one tool call, are one span); without one, a request's span id is
derived from its trace and agent (steps then find their parent across batches) and any other
event's from its trace, name, time and tool or model. Events without a ``trace_id`` stand for no
span (they are still stored as log records).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from core.model import EVENT_SCOPE
from events.model import (
    BUDGET_THRESHOLD_HIT,
    FALLBACK_TRIGGERED,
    POLICY_DECISION,
    REQUEST_COMPLETED,
    REQUEST_STARTED,
    RETRY,
    STEP_COMPLETED,
    STEP_STARTED,
    TOOL_CALLED,
    TOOL_FAILED,
    AgentEvent,
)

EVENT_NAME_ATTRIBUTE = "agentwatch.event.name"

ATTRIBUTE_OF_FIELD = {
    "agent_id": "gen_ai.agent.id",
    "user_id": "user.id",
    "org_id": "org.id",
    "workspace_id": "workspace.id",
    "project_id": "project.id",
    "workflow_id": "workflow.id",
    "workflow_version": "gen_ai.agent.version",
    "provider": "gen_ai.provider.name",
    "model": "gen_ai.request.model",
    "prompt_version": "agent.prompt_version",
    "error_type": "error.type",
    "error_message_hash": "agent.error_message_hash",
    "tool_name": "gen_ai.tool.name",
    "policy_id": "agent.policy.id",
    "policy_result": "agent.policy.result",
    "status": "agent.status",
}
USAGE_ATTRIBUTES = {
    "tokens_prompt": "gen_ai.usage.input_tokens",
    "tokens_completion": "gen_ai.usage.output_tokens",
    "tokens_total": "gen_ai.usage.total_tokens",
    "cost_usd": "gen_ai.usage.cost",
}
OPERATION_OF_EVENT = {
    REQUEST_STARTED: "invoke_agent",
    REQUEST_COMPLETED: "invoke_agent",
    STEP_COMPLETED: "chat",
    TOOL_CALLED: "execute_tool",
    TOOL_FAILED: "execute_tool",
}
"""What a span an event describes is (``gen_ai.operation.name``); a step only with a model or usage."""


def attribute_of_field(name: str) -> str:
    """The span attribute a text field of the model becomes."""
    return ATTRIBUTE_OF_FIELD.get(name, f"agent.{name}")


FALLBACK_FIELDS = {
    "reason": "agent.fallback.reason",
    "from": "agent.fallback.from",
    "to": "agent.fallback.to",
}
MARKERS = (RETRY, FALLBACK_TRIGGERED, POLICY_DECISION, BUDGET_THRESHOLD_HIT)
_STARTS = {REQUEST_STARTED: REQUEST_COMPLETED, STEP_STARTED: STEP_COMPLETED}


def _digest(*parts: object) -> bytes:
    return hashlib.blake2b("\0".join(str(p) for p in parts).encode(), digest_size=8).digest()


def request_span_id(event: AgentEvent) -> bytes:
    """The run span's id: the event's own, else one derived from its trace and agent."""
    return event.span_id or _digest(event.trace_id.hex(), "request", event.get("agent_id") or "")


def _span_id(event: AgentEvent) -> bytes:
    if event.name in (REQUEST_STARTED, REQUEST_COMPLETED):
        return request_span_id(event)
    if event.span_id:
        return event.span_id
    what = event.get("tool_name") or event.get("model") or event.get("policy_id") or ""
    return _digest(event.trace_id.hex(), event.name, event.time_unix_nano, what)


def kv(key: str, value: object) -> KeyValue:
    kv = KeyValue(key=key)
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = value if isinstance(value, str) else str(value)
    return kv


@dataclass
class _Pending:
    """One span being made: the event that names it and the start its started event gave."""

    event: AgentEvent
    started_at: int | None = None


class _Spans:
    """The spans of one resource's events, by (trace, span id), in the order first seen."""

    def __init__(self) -> None:
        self.by_id: dict[tuple[bytes, bytes], _Pending] = {}
        self.starts: dict[tuple[bytes, bytes], int] = {}
        self.runs: dict[tuple[bytes, str], bytes] = {}
        """(trace, agent) → the run span's id, for parents of steps with none."""

    def add(self, event: AgentEvent) -> None:
        key = (event.trace_id, _span_id(event))
        if event.name in _STARTS:
            self.starts[key] = min(self.starts.get(key, event.time_unix_nano), event.time_unix_nano)
            return
        if event.name == REQUEST_COMPLETED:
            self.runs.setdefault((event.trace_id, event.get("agent_id") or ""), key[1])
            self.runs.setdefault((event.trace_id, ""), key[1])
        found = self.by_id.get(key)
        if found is None:
            self.by_id[key] = _Pending(event)
        elif event.name == TOOL_FAILED or (event.failed and not found.event.failed):
            # A failed call and the call itself are one span: the failure wins, the fields merge.
            self.by_id[key] = _Pending(_merged(found.event, event))
        else:
            self.by_id[key] = _Pending(_merged(event, found.event))

    def spans(self) -> list[Span]:
        # The runs one of whose steps carries usage of its own: their totals stand for no span.
        itemised = {
            (trace_id, self._parent(p.event, span_id))
            for (trace_id, span_id), p in self.by_id.items()
            if p.event.name == STEP_COMPLETED and usage_of(p.event)
        }
        out: list[Span] = []
        for (trace_id, span_id), pending in self.by_id.items():
            pending.started_at = self.starts.get((trace_id, span_id))
            out.extend(self._spans_of(trace_id, span_id, pending, (trace_id, span_id) in itemised))
        return out

    def _parent(self, event: AgentEvent, span_id: bytes) -> bytes:
        if event.parent_span_id:
            return event.parent_span_id
        if event.name == REQUEST_COMPLETED:
            return b""
        agent = event.get("agent_id") or ""
        parent = self.runs.get((event.trace_id, agent)) or self.runs.get((event.trace_id, ""))
        if parent is None:
            # The run's completed event is in another batch (or never comes): the id it will have.
            run = AgentEvent(REQUEST_COMPLETED, 0, event.trace_id, text={"agent_id": agent})
            parent = request_span_id(run)
        return b"" if parent == span_id else parent

    def _spans_of(self, trace_id: bytes, span_id: bytes, pending: _Pending, itemised: bool) -> list[Span]:
        event = pending.event
        end = event.time_unix_nano
        latency = event.numbers.get("latency_ms")
        if latency is not None:
            start = max(end - int(latency * 1e6), 0)
        elif pending.started_at is not None and pending.started_at <= end:
            start = pending.started_at
        else:
            start = end
        span = Span(trace_id=trace_id, span_id=span_id, parent_span_id=self._parent(event, span_id))
        span.start_time_unix_nano, span.end_time_unix_nano = start, end
        span.kind = Span.SPAN_KIND_INTERNAL
        name, operation = _name_and_operation(event)
        span.name = name
        attributes = [kv(EVENT_NAME_ATTRIBUTE, event.name)]
        if operation:
            attributes.append(kv("gen_ai.operation.name", operation))
        for field_name, value in event.text.items():
            attributes.append(kv(attribute_of_field(field_name), value))
        usage = usage_of(event) if operation == "chat" else {}
        for field_name, number in usage.items():
            attributes.append(kv(USAGE_ATTRIBUTES[field_name], as_number(field_name, number)))
        renamed = FALLBACK_FIELDS if event.name == FALLBACK_TRIGGERED else {}
        for key, value in event.extra.items():
            attributes.append(kv(renamed.get(key, key), value))
        span.attributes.extend(attributes)
        if event.name == FALLBACK_TRIGGERED:
            # The fallback report reads the event (a fallback that names no reason still counts).
            fallback = span.events.add(name=FALLBACK_TRIGGERED, time_unix_nano=end)
            fallback.attributes.extend(kv(renamed.get(k, k), v) for k, v in event.extra.items())
        if event.failed:
            span.status.code = Status.STATUS_CODE_ERROR
            span.status.message = event.get("error_type") or event.get("status") or "failed"
        elif event.name in (REQUEST_COMPLETED, STEP_COMPLETED, TOOL_CALLED):
            span.status.code = Status.STATUS_CODE_OK
        out = [span]
        if event.name == REQUEST_COMPLETED and not itemised and (totals := usage_of(event)):
            out.append(self._totals_span(event, span, totals))
        return out

    def _totals_span(self, event: AgentEvent, run: Span, totals: dict[str, float]) -> Span:
        """The model call a run's totals stand for (made only when no step of the run carries
        usage of its own)."""
        model = event.get("model") or ""
        span_id = _digest(run.span_id.hex(), "usage")
        span = Span(trace_id=run.trace_id, span_id=span_id, parent_span_id=run.span_id)
        span.start_time_unix_nano, span.end_time_unix_nano = run.start_time_unix_nano, run.end_time_unix_nano
        span.name = f"chat {model}".strip()
        span.kind = Span.SPAN_KIND_CLIENT
        attributes = [
            kv(EVENT_NAME_ATTRIBUTE, event.name),
            kv("gen_ai.operation.name", "chat"),
            kv("agentwatch.event.usage_totals", True),
        ]
        for field_name in ("agent_id", "user_id", "provider", "model"):
            if (value := event.get(field_name)) is not None:
                attributes.append(kv(ATTRIBUTE_OF_FIELD[field_name], value))
        for field_name, number in totals.items():
            attributes.append(kv(USAGE_ATTRIBUTES[field_name], as_number(field_name, number)))
        span.attributes.extend(attributes)
        span.status.code = Status.STATUS_CODE_OK
        return span


def as_number(field_name: str, number: float) -> int | float:
    return number if field_name == "cost_usd" else int(number)


def usage_of(event: AgentEvent) -> dict[str, float]:
    return {name: event.numbers[name] for name in USAGE_ATTRIBUTES if name in event.numbers}


def _merged(winner: AgentEvent, other: AgentEvent) -> AgentEvent:
    return AgentEvent(
        winner.name,
        max(winner.time_unix_nano, other.time_unix_nano),
        winner.trace_id,
        winner.span_id or other.span_id,
        winner.parent_span_id or other.parent_span_id,
        {**other.text, **winner.text},
        {**other.numbers, **winner.numbers},
        {**other.extra, **winner.extra},
    )


def _name_and_operation(event: AgentEvent) -> tuple[str, str | None]:
    if event.name == REQUEST_COMPLETED:
        agent = event.get("agent_id") or event.get("workflow_id") or ""
        return f"invoke_agent {agent}".strip(), "invoke_agent"
    if event.name == STEP_COMPLETED:
        if event.get("model") or usage_of(event):
            return f"chat {event.get('model') or ''}".strip(), "chat"
        return str(event.extra.get("step_name") or event.extra.get("step") or "step"), None
    if event.name in (TOOL_CALLED, TOOL_FAILED):
        return f"execute_tool {event.get('tool_name') or ''}".strip(), "execute_tool"
    return event.name, None


def request_spans(groups: Iterable[tuple[Resource, Sequence[AgentEvent]]]) -> ExportTraceServiceRequest:
    """The spans the events of each resource stand for (events without a trace id stand for none).
    A run's totals stand for no span when one of its steps among the same events carries usage."""
    request = ExportTraceServiceRequest()
    for resource, events in groups:
        made = _Spans()
        for event in events:
            if event.trace_id:
                made.add(event)
        spans = made.spans()
        if not spans:
            continue
        rs = request.resource_spans.add()
        rs.resource.CopyFrom(resource)
        ss = rs.scope_spans.add()
        ss.scope.name = EVENT_SCOPE
        ss.spans.extend(spans)
    return request
