"""Multi-turn cases: a simulated user carries a conversation with the agent for up to ``turns``
turns, and the whole conversation is judged.

A case opts in with ``turns`` of 2 or more (``evals.datasets``); ``evals.multi_turn`` (or
``agentwatch eval run --simulator``) names the simulator, a target like any other (an
``openai:`` target with a model, typically). Then:

1. turn 1 is the case's query, sent to the agent;
2. before each next turn the simulator is asked, in one call (the prompt of ``simulator_prompt``
   as the query of a case: its persona, the goal, the conversation so far), for the user's next
   message; a reply holding the stop token (``evals.multi_turn.stop``, ``[DONE]`` by default)
   ends the conversation, and so does a failed or empty reply (said in the case's judge
   problems, ``simulator: …``; not the agent's error);
3. the agent is sent the conversation so far when it takes one (``ConversationTarget``:
   ``openai``), else the new user message alone as its query; an agent call that fails ends the
   conversation and is the case's error (``turn N: …``).

The case's result (``combined``) has the transcript (``transcript``) as its output, the turns'
tool calls, citations, documents, steps and tokens together, and its turns in ``conversation``
(the runner traces each as a child span). It is judged with the goal (the case's
``eval_guidance``, else its query) as the guidance (``judged_case``); ``turns_used`` (the agent's
calls) is a metric beside the judge's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from evals.config import DEFAULT_PERSONA, DEFAULT_STOP
from evals.datasets import Case
from evals.targets import ConversationTarget, Message, Target, TargetResult, Turn

TURNS_USED = "turns_used"


@dataclass(frozen=True)
class Simulator:
    """Who plays the user: a target, the persona of cases that name none, the stop token."""

    target: Target
    persona: str = DEFAULT_PERSONA
    stop: str = DEFAULT_STOP


def goal(case: Case) -> str:
    """What the simulated user wants, and what the conversation is judged against."""
    return case.eval_guidance or case.query


def transcript(turns: tuple[Turn, ...] | list[Turn]) -> str:
    """The conversation as one text: ``User: …`` and ``Agent: …`` paragraphs, oldest first."""
    parts: list[str] = []
    for turn in turns:
        parts.append(f"User: {turn.user}")
        if turn.result.error is None:
            parts.append(f"Agent: {turn.result.output or ''}")
    return "\n\n".join(parts)


def simulator_prompt(case: Case, persona: str, turns: list[Turn], stop: str) -> str:
    """The simulator's one message before the next turn."""
    lines = [
        "You play the user in a conversation with an AI agent, to test the agent.",
        f"Your persona: {persona}",
        f"Your goal: {case.query}",
    ]
    if case.eval_guidance:
        lines.append(f"What the agent should get done: {case.eval_guidance}")
    lines += [
        "",
        "The conversation so far:",
        transcript(turns),
        "",
        "Write the user's next message, in the persona's voice, and nothing else. "
        f"When the goal is reached or the conversation cannot go further, reply with exactly {stop}",
    ]
    return "\n".join(lines)


def converse(case: Case, target: Target, simulator: Simulator | None) -> tuple[TargetResult, list[str]]:
    """Run a multi-turn case: the combined result and the simulator's problems (judge problems)."""
    if simulator is None:
        error = "a multi-turn case needs a simulator: set evals.multi_turn.simulator"
        return TargetResult(None, 0.0, error=error), []
    persona = case.persona or simulator.persona
    turns: list[Turn] = []
    problems: list[str] = []
    user = case.query
    limit = case.turns or 1
    while True:
        start_ns = time.time_ns()
        if isinstance(target, ConversationTarget):
            history = [m for t in turns for m in (Message("user", t.user), Message("assistant", _said(t)))]
            result = target.converse(case, [*history, Message("user", user)])
        else:
            result = target.invoke(replace(case, query=user))
        turns.append(Turn(user, result, start_ns, simulated=bool(turns)))
        if result.error is not None or len(turns) >= limit:
            break
        number = len(turns) + 1
        asked = Case(f"{case.id}/simulator-{number}", simulator_prompt(case, persona, turns, simulator.stop))
        reply = simulator.target.invoke(asked)
        text = (reply.output or "").strip()
        if reply.error is not None:
            problems.append(f"simulator: turn {number}: {reply.error}")
            break
        if not text:
            problems.append(f"simulator: turn {number}: an empty reply")
            break
        if simulator.stop in text:
            break
        user = text
    return combined(turns), problems


def _said(turn: Turn) -> str:
    return turn.result.output or ""


def combined(turns: list[Turn]) -> TargetResult:
    """The turns as one result: the transcript as output, everything they reported together."""
    results = [t.result for t in turns]
    failed = next(((n, r.error) for n, r in enumerate(results, start=1) if r.error is not None), None)
    return TargetResult(
        transcript(turns),
        sum(r.latency_ms for r in results),
        tuple(c for r in results for c in r.tool_calls),
        tuple(c for r in results for c in r.citations),
        tuple(s for r in results for s in r.steps),
        trace_id=next((r.trace_id for r in results if r.trace_id), None),
        error=f"turn {failed[0]}: {failed[1]}" if failed else None,
        attempts=sum(r.attempts for r in results),
        documents=tuple(d for r in results for d in r.documents),
        input_tokens=_total([r.input_tokens for r in results]),
        output_tokens=_total([r.output_tokens for r in results]),
        model=next((r.model for r in reversed(results) if r.model), None),
        conversation=tuple(turns),
    )


def _total(counts: list[int | None]) -> int | None:
    known = [c for c in counts if c is not None]
    return sum(known) if known else None


def judged_case(case: Case) -> Case:
    """The case as the judge sees a conversation: the goal as its guidance."""
    return replace(case, eval_guidance=goal(case))
