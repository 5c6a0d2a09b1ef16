"""The field mapping: which records are agent events, and where their fields are.

A mapping names the records it applies to (``match``: every condition holds), the event they
are (``event``, one of ``events.model.EVENT_NAMES``) and, for each field of the agent event
model (``events.model.FIELDS``, or any other attribute name), the dotted paths it is read from,
the first one present winning. Paths start at the record: for a Cloud Logging ``LogEntry``,
``jsonPayload.run_id``, ``labels.user``, ``trace``, ``timestamp``; for a JSON line, its keys.

Besides the model's fields a mapping reads ``run_id`` (a trace id is derived from it,
deterministically, when the record names none), ``start_time`` and ``end_time`` (``latency_ms``
is their difference when not given; the event's ``timestamp`` is the end, else the start plus
the latency) and ``error_message`` (kept only as ``error_message_hash``). ``values`` rewrites
values of a field (``status: {SUCCEEDED: ok}``), matched case-insensitively.

``WORKFLOW_RUN`` is the built-in mapping (``mapping: workflow_run``) for Glean's workflow run
records in Cloud Logging exports. Glean's exact schema is not public: the paths below are
assumptions, each with the spellings seen in similar exports, and a config adjusts them with
``mapping: {extends: workflow_run, fields: {user_id: jsonPayload.actor.email}}`` (the fields
given replace the built-in ones of the same name; the rest stay).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field, replace
from typing import Any

from core.configmodel import STRICT
from events.model import EVENT_NAMES, FIELDS, REQUEST_COMPLETED
from events.model import time_ns_of as model_time_ns  # the event model's own reading of a time

Paths = str | list[str]

SPECIAL = ("run_id", "start_time", "end_time", "error_message")
"""Fields a mapping reads that are not attributes of the event as they are."""

_CLOUD_TRACE = re.compile(r"(?:^|/)traces/([0-9a-fA-F]{32})$")


@dataclass(frozen=True)
class MatchRule:
    __pydantic_config__ = STRICT
    path: Paths
    """Where the value is (the first of several paths present)."""
    equals: str | list[str]
    """What it must be (one of several), compared as text, case-insensitively."""


@dataclass(frozen=True)
class MappingConfig:
    __pydantic_config__ = STRICT
    extends: str | None = None
    """``workflow_run``: start from the built-in mapping; the keys given here replace its own
    (``fields`` and ``values`` field by field)."""
    match: list[MatchRule] | None = None
    """Which records are events: every rule holds. Empty: every record."""
    event: str | None = None
    """The event a matching record is (default ``agent.request.completed``)."""
    fields: dict[str, Paths] = field(default_factory=dict)
    """Event field (``events.model.FIELDS``, ``run_id``, ``start_time``, ``end_time``,
    ``error_message``, or another attribute name) → the paths it is read from."""
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    """Field → {value as found: value to use}, e.g. ``status: {SUCCEEDED: ok, FAILED: error}``."""

    def validate(self) -> list[str]:
        problems = []
        if self.extends is not None and self.extends not in BUILT_IN:
            problems.append(
                f"extends: {self.extends!r} is not a built-in mapping (known: {', '.join(BUILT_IN)})"
            )
        if self.event is not None and self.event not in EVENT_NAMES:
            problems.append(f"event: {self.event!r} is not an agent event (known: {', '.join(EVENT_NAMES)})")
        for name, paths in self.fields.items():
            if not _paths(paths):
                problems.append(f"fields.{name}: give a dotted path or a list of them")
        for i, rule in enumerate(self.match or []):
            if not _paths(rule.path):
                problems.append(f"match.{i}.path: give a dotted path or a list of them")
        return problems


def _paths(paths: Paths) -> list[str]:
    return [p for p in ([paths] if isinstance(paths, str) else paths) if p.strip()]


def _j(*names: str) -> list[str]:
    return [f"jsonPayload.{name}" for name in names]


WORKFLOW_RUN = MappingConfig(
    match=[MatchRule(path=_j("type", "eventType", "event_type", "Type"), equals="WORKFLOW_RUN")],
    event=REQUEST_COMPLETED,
    fields={
        "run_id": _j("run_id", "runId", "workflow_run_id", "workflowRunId"),
        "trace_id": [*_j("trace_id", "traceId"), "trace"],
        "span_id": [*_j("span_id"), "spanId"],
        "workflow_id": _j("workflow_id", "workflowId"),
        "agent_id": _j("agent_id", "agentId", "workflow_id", "workflowId"),
        "workflow_version": _j("workflow_version", "workflowVersion"),
        "user_id": _j("user_id", "userId", "user.id", "user.email"),
        "org_id": _j("org_id", "orgId"),
        "status": _j("status", "state"),
        "error_type": _j("error_type", "errorType", "error.type", "error.code"),
        "error_message": _j("error_message", "errorMessage", "error.message"),
        "start_time": _j("start_time", "startTime"),
        "end_time": [*_j("end_time", "endTime"), "timestamp"],
        "latency_ms": _j("latency_ms", "latencyMs", "duration_ms", "durationMs"),
        "model": _j("model"),
        "tokens_prompt": _j("tokens_prompt", "prompt_tokens"),
        "tokens_completion": _j("tokens_completion", "completion_tokens"),
        "tokens_total": _j("tokens_total", "total_tokens"),
        "cost_usd": _j("cost_usd"),
    },
)
"""The built-in mapping of ``WORKFLOW_RUN`` records (assumed field paths; see the module doc)."""

BUILT_IN = {"workflow_run": WORKFLOW_RUN}


def resolve(config: MappingConfig | str | None) -> MappingConfig | None:
    """The mapping a config names: a built-in by name, or its own keys over the one it extends."""
    if config is None:
        return None
    if isinstance(config, str):
        return BUILT_IN[config]
    if config.extends is None:
        return config
    base = BUILT_IN[config.extends]
    values = {**base.values, **{k: {**base.values.get(k, {}), **v} for k, v in config.values.items()}}
    return replace(
        base,
        extends=None,
        match=config.match if config.match is not None else base.match,
        event=config.event or base.event,
        fields={**base.fields, **config.fields},
        values=values,
    )


def lookup(record: MappingType[str, Any], path: str) -> Any:
    """The value at a dotted path (``jsonPayload.error.type``); a key holding dots is found whole
    too (``labels.k8s.io/name``). None when absent."""
    return walk(record, tuple(path.split(".")))


def walk(value: Any, keys: tuple[str, ...], at: int = 0) -> Any:
    """``lookup`` over a path already split at its dots."""
    while at < len(keys):
        if not isinstance(value, dict):
            return None
        key = keys[at]
        if key in value:
            value = value[key]
            at += 1
            continue
        for end in range(at + 2, len(keys) + 1):  # a key holding dots
            joined = ".".join(keys[at:end])
            if joined in value:
                found = walk(value[joined], keys, end)
                if found is not None:
                    return found
        return None
    return value


def first(record: MappingType[str, Any], paths: Paths) -> Any:
    return first_of(record, [_split(p) for p in _paths(paths)])


Path = tuple[tuple[str, ...], str]
"""A dotted path split at its dots, and whole (a key may hold dots)."""


def _split(path: str) -> Path:
    return tuple(path.split(".")), path


def first_of(record: MappingType[str, Any], paths: list[Path]) -> Any:
    """The first value present (not null, not empty) at one of ``paths``."""
    for keys, whole in paths:
        if len(keys) == 2:  # the common case, inline: jsonPayload.x
            inner = record.get(keys[0])
            value = inner.get(keys[1]) if type(inner) is dict else None
            if value is None:
                value = record.get(whole)
        elif len(keys) == 1:
            value = record.get(whole)
        else:
            value = walk(record, keys)
        if value is not None and value != "":
            return value
    return None


def trace_hex(value: Any) -> str | None:
    """A trace id as 32 hex digits: hex (dashes allowed) or Cloud Trace's ``projects/P/traces/ID``."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    cloud = _CLOUD_TRACE.search(text)
    if cloud:
        text = cloud.group(1)
    text = text.replace("-", "").lower()
    return text if len(text) == 32 and _is_hex(text) and text.strip("0") else None


def span_hex(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    return text if len(text) == 16 and _is_hex(text) and text.strip("0") else None


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def trace_of_run(run_id: str) -> str:
    """The trace id of a run that names none: a digest of its run id (the same run, the same
    trace, on every read and in every process)."""
    return hashlib.blake2b(f"agentwatch.run:{run_id}".encode(), digest_size=16).hexdigest()


def time_ns(value: Any) -> int | None:
    """An ISO 8601 time or an epoch number (seconds to nanoseconds, told apart by size)."""
    return model_time_ns(value)


@dataclass(frozen=True)
class Mapped:
    """What a mapping made of a record: the event and its attributes."""

    event: str
    attributes: dict[str, Any]
    trace_id: str | None
    span_id: str | None
    time_unix_nano: int | None


@dataclass(frozen=True)
class Compiled:
    """A mapping with its paths split once, as records are matched against it."""

    match: list[tuple[list[Path], frozenset[str]]]
    fields: list[tuple[str, list[Path], dict[str, str] | None]]
    event: str


def compile_mapping(mapping: MappingConfig) -> Compiled:
    def split(paths: Paths) -> list[Path]:
        return [_split(p) for p in _paths(paths)]

    match = []
    for rule in mapping.match or []:
        wanted = [rule.equals] if isinstance(rule.equals, str) else rule.equals
        match.append((split(rule.path), frozenset(w.strip().lower() for w in wanted)))
    fields = []
    for name, paths in mapping.fields.items():
        rewrite = mapping.values.get(name)
        fields.append((name, split(paths), {k.lower(): v for k, v in rewrite.items()} if rewrite else None))
    return Compiled(match, fields, mapping.event or REQUEST_COMPLETED)


def apply(mapping: MappingConfig | Compiled, record: MappingType[str, Any]) -> Mapped | None:
    """The agent event ``record`` is under ``mapping``; None when it does not match."""
    compiled = mapping if isinstance(mapping, Compiled) else compile_mapping(mapping)
    for paths, wanted in compiled.match:
        got = first_of(record, paths)
        if got is None or str(got).strip().lower() not in wanted:
            return None
    values: dict[str, Any] = {}
    for name, paths, rewrite in compiled.fields:
        value = first_of(record, paths)
        if value is None:
            continue
        if rewrite and isinstance(value, str | int | float):
            value = rewrite.get(str(value).strip().lower(), value)
        values[name] = value
    attributes = {
        k: v
        for k, v in values.items()
        if k not in SPECIAL and k not in ("trace_id", "span_id") and not isinstance(v, dict | list)
    }
    run_id = values.get("run_id")
    if run_id is not None:
        attributes["run_id"] = str(run_id)
    trace = trace_hex(values.get("trace_id"))
    if trace is None and run_id is not None:
        trace = trace_of_run(str(run_id))
    span = span_hex(values.get("span_id"))
    if trace is not None:
        attributes["trace_id"] = trace
    if span is not None:
        attributes["span_id"] = span
    message = values.get("error_message")
    if message is not None and "error_message_hash" not in attributes:
        attributes["error_message_hash"] = hashlib.sha256(str(message).encode()).hexdigest()[:16]
    start = time_ns(values.get("start_time"))
    end = time_ns(values.get("end_time"))
    latency = attributes.get("latency_ms")
    if latency is None and start is not None and end is not None and end >= start:
        latency = (end - start) / 1e6
        attributes["latency_ms"] = latency
    when = end
    if when is None and start is not None:
        number = _number(latency)
        when = start + int(number * 1e6) if number is not None else start
    if when is not None:
        attributes["timestamp"] = when
    return Mapped(compiled.event, attributes, trace, span, when)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


MODEL_FIELDS = frozenset(FIELDS)
