"""Agent targets: what the synthetic runner sends a case to, one small module per kind.

Every target answers ``invoke(case) -> TargetResult``: the answer, the tool calls and citations
the agent reported, its own trace id when it returns one, and the reasoning steps. A call that
still fails after the retries comes back as a result with ``error`` set, never as an exception:
a failing agent is data for the eval, not a crash of the runner.

Specs (``agentwatch eval run --target``): ``python:pkg.module:function``,
``openai:URL#model``, ``glean:URL`` (``#agent_id`` names the agent), ``http:URL``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from evals.datasets import Case


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str = ""  # JSON text, as agents report them
    output: str | None = None


@dataclass(frozen=True)
class TargetResult:
    output: str | None
    latency_ms: float
    tool_calls: tuple[ToolCall, ...] = ()
    citations: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()
    trace_id: str | None = None
    error: str | None = None
    attempts: int = 1
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


class Target(Protocol):
    name: str
    concurrency: int

    def invoke(self, case: Case) -> TargetResult: ...

    def close(self) -> None: ...
