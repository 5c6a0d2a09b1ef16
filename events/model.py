"""The agent event model: what an application that emits events instead of spans sends.

An event is named ``agent.request.started`` ... ``agent.budget.threshold_hit`` (``EVENT_NAMES``)
and carries any of ``FIELDS``. It arrives as an OTLP log record (its ``event_name``, or an
``event.name`` attribute; the fields as attributes, or as the keys of a map body), as a span
event of that name (the fields as the event's attributes) or as a JSON line (``name`` or
``event`` and the fields). Whatever the way in, it becomes an ``AgentEvent``; ``events.spans``
says which spans it stands for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

REQUEST_STARTED = "agent.request.started"
REQUEST_COMPLETED = "agent.request.completed"
STEP_STARTED = "agent.step.started"
STEP_COMPLETED = "agent.step.completed"
TOOL_CALLED = "agent.tool.called"
TOOL_FAILED = "agent.tool.failed"
RETRY = "agent.retry"
FALLBACK_TRIGGERED = "agent.fallback.triggered"
POLICY_DECISION = "agent.policy.decision"
BUDGET_THRESHOLD_HIT = "agent.budget.threshold_hit"

EVENT_NAMES = (
    REQUEST_STARTED, REQUEST_COMPLETED, STEP_STARTED, STEP_COMPLETED, TOOL_CALLED, TOOL_FAILED,
    RETRY, FALLBACK_TRIGGERED, POLICY_DECISION, BUDGET_THRESHOLD_HIT,
)  # fmt: skip

IDS = ("trace_id", "span_id", "parent_span_id")
TEXT_FIELDS = (
    "org_id", "workspace_id", "project_id", "user_id", "agent_id", "workflow_id", "workflow_version",
    "provider", "model", "prompt_version", "status", "error_type", "error_message_hash", "tool_name",
    "policy_id", "policy_result",
)  # fmt: skip
INT_FIELDS = ("tokens_prompt", "tokens_completion", "tokens_total")
FLOAT_FIELDS = ("latency_ms", "cost_usd")
FIELDS = ("timestamp", *IDS, *TEXT_FIELDS, *INT_FIELDS, *FLOAT_FIELDS)
"""Every field of the model, in the order the issue that defined it lists them."""

NAME_KEYS = ("event_name", "event.name", "name", "event")
"""Where a JSON line or a log record's attributes name the event (the first present wins)."""

FAILED_STATUSES = frozenset(
    {"error", "failed", "failure", "fail", "timeout", "timed_out", "cancelled", "canceled", "aborted",
     "denied"}
)  # fmt: skip
"""``status`` values meaning the request, step or tool call did not succeed (case-insensitive).
Any other value (``ok``, ``success``, ``completed``...) or none means it did, unless the event is
``agent.tool.failed`` or names an ``error_type``."""


@dataclass(frozen=True)
class AgentEvent:
    name: str
    time_unix_nano: int
    trace_id: bytes = b""
    span_id: bytes = b""
    parent_span_id: bytes = b""
    text: dict[str, str] = field(default_factory=dict)
    """The text fields present (``TEXT_FIELDS``)."""
    numbers: dict[str, float] = field(default_factory=dict)
    """The numeric fields present (``INT_FIELDS``, ``FLOAT_FIELDS``)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Attributes outside the model, carried onto the span as they are (e.g. ``agent.fallback.reason``)."""

    def get(self, name: str) -> str | None:
        return self.text.get(name)

    @property
    def failed(self) -> bool:
        if self.name == TOOL_FAILED or self.text.get("error_type"):
            return True
        return (self.text.get("status") or "").strip().lower() in FAILED_STATUSES


def is_agent_event(name: str | None) -> bool:
    return name in EVENT_NAMES


def hex_id(value: Any, size: int) -> bytes:
    """An id given as hex text (any case, dashes allowed: W3C or UUID style) or raw bytes; b""
    when it is missing or not ``size`` bytes (a malformed id is dropped, not guessed)."""
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
    elif isinstance(value, str):
        text = value.strip().replace("-", "")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            return b""
    else:
        return b""
    return raw if len(raw) == size and any(raw) else b""


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def time_ns_of(value: Any) -> int | None:
    """A timestamp as epoch seconds, milliseconds, microseconds or nanoseconds (told apart by
    size), or as ISO 8601 text (``Z`` or an offset; naive means UTC)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        magnitude = abs(float(value))
        scale = 1e9 if magnitude < 1e11 else 1e6 if magnitude < 1e14 else 1e3 if magnitude < 1e17 else 1.0
        return int(float(value) * scale) if value > 0 else None
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.replace(".", "", 1).isdigit():
            return time_ns_of(float(text))
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000
    return None


def event_of(name: str, fields: Mapping[str, Any], time_unix_nano: int = 0) -> AgentEvent:
    """An event named ``name`` from its fields (a log record's or span event's attributes, a JSON
    object). ``time_unix_nano`` is the carrier's own time, used when ``timestamp`` is absent or
    unreadable. Ids (``trace_id``...) in the fields are used only where the carrier gave none."""
    text: dict[str, str] = {}
    numbers: dict[str, float] = {}
    extra: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None or key in NAME_KEYS:
            continue
        if key in TEXT_FIELDS:
            shown = value if isinstance(value, str) else str(value)
            if shown.strip():
                text[key] = shown.strip()
        elif key in INT_FIELDS or key in FLOAT_FIELDS:
            number = _number(value)
            if number is not None:
                numbers[key] = float(int(number)) if key in INT_FIELDS else number
        elif key not in ("timestamp", *IDS):
            extra[key] = value
    when = time_ns_of(fields.get("timestamp")) or time_unix_nano
    return AgentEvent(
        name,
        when,
        hex_id(fields.get("trace_id"), 16),
        hex_id(fields.get("span_id"), 8),
        hex_id(fields.get("parent_span_id"), 8),
        text,
        numbers,
        extra,
    )


def with_ids(event: AgentEvent, trace_id: bytes, span_id: bytes) -> AgentEvent:
    """``event`` with the carrier's trace and span ids where it names none of its own."""
    trace = event.trace_id or (trace_id if len(trace_id) == 16 and any(trace_id) else b"")
    span = event.span_id or (span_id if len(span_id) == 8 and any(span_id) else b"")
    if trace == event.trace_id and span == event.span_id:
        return event
    return replace(event, trace_id=trace, span_id=span)
