"""Agent targets: what the synthetic runner sends a case to, one small module per kind.

Every target answers ``invoke(case) -> TargetResult``: the answer, the tool calls and citations
the agent reported (and the documents behind them: ``Document``, whose content a target that is
a ``DocumentSource`` can fetch for the judge), its own trace id when it returns one, the
reasoning steps (their text, and as ``Step``s with the tool each called and its timing, traced
as child spans of the case), and the tokens it reported using. A call that
still fails after the retries comes back as a result with ``error`` set, never as an exception:
a failing agent is data for the eval, not a crash of the runner.

A target that takes a conversation (``ConversationTarget``: ``openai``) is sent the whole
message history in multi-turn cases (``evals.conversation``); any other gets each new user turn
as the query of its own call.

Specs (``agentwatch eval run --target``): ``python:pkg.module:function``,
``openai:URL#model``, ``glean:URL`` (``#agent_id`` names the agent), ``http:URL``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from evals.datasets import Case


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str = ""  # JSON text, as agents report them
    output: str | None = None


@dataclass(frozen=True)
class Document:
    """A document the agent cited or retrieved: at least one of ``id`` and ``url``; ``content``
    once known (returned by the agent, or fetched: ``DocumentSource``)."""

    id: str | None = None
    url: str | None = None
    title: str | None = None
    content: str | None = None


@dataclass(frozen=True)
class Step:
    """One reasoning step the agent reported (Glean: an ``UPDATE`` message of its run), traced as a
    child span of the case's ``agent_run`` span: an ``execute_tool`` span when it called a tool."""

    name: str
    """What the step said it does (its text, else the tool's name)."""
    text: str = ""
    call: ToolCall | None = None
    """The tool (Glean: the action) the step called."""
    status: str | None = None
    """``error`` when the agent reported the step failed; None: not reported."""
    start_ns: int | None = None
    """When the step was reported (Unix ns); None: not reported (the span covers the run)."""
    end_ns: int | None = None


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
    documents: tuple[Document, ...] = ()
    """The documents behind the citations (and any the agent said it retrieved)."""
    input_tokens: int | None = None
    """Tokens the agent reported using (a chat completion's ``usage``; a python target's)."""
    output_tokens: int | None = None
    model: str | None = None
    """The model the agent reported answering with, to price its tokens."""
    reasoning: tuple[Step, ...] = ()
    """The reasoning steps as the agent reported them (``steps`` holds their text for judges)."""
    conversation: tuple[Turn, ...] = ()
    """A multi-turn case's turns, in order (``output`` is then the transcript); () otherwise."""


@dataclass(frozen=True)
class Message:
    """One message of a conversation, as chat APIs name the roles."""

    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class Turn:
    """One turn of a multi-turn case: the user's message and the agent's call answering it,
    traced as a child span of the case (``agent_turn N``)."""

    user: str
    result: TargetResult
    start_ns: int
    """When the agent was called (Unix ns)."""
    simulated: bool
    """The user's message came from the simulator (every turn but the first)."""


class Target(Protocol):
    name: str
    concurrency: int

    def invoke(self, case: Case) -> TargetResult: ...

    def close(self) -> None: ...


@runtime_checkable
class ConversationTarget(Protocol):
    """A target that takes the message history (``openai``): in a multi-turn case it is sent every
    message so far, the new user turn last."""

    def converse(self, case: Case, messages: Sequence[Message]) -> TargetResult: ...


@runtime_checkable
class DocumentSource(Protocol):
    """A target that can fetch the content of the documents its agent cited (Glean: its document
    API), for judging groundedness against what the documents say."""

    def fetch_documents(self, documents: Sequence[Document]) -> tuple[tuple[Document, ...], list[str]]:
        """The documents with their content where it could be fetched, and why it could not."""
        ...
