"""LLM-as-judge: one isolated model call per dimension, each answer strict JSON naming a label
of the dimension's scale. An answer that is not gets the problem said back and is asked again
(``parse_retries`` times); a dimension that still fails, or whose call fails after the HTTP
retries, is left unscored with the reason in ``Judgement.problems``, never an exception. Every
call (retries included) is a line of the judge ledger (``Judgement.calls``).

The calls, in this order (only the dimensions a case can be judged on are asked):

1. topical_coverage (needs ``eval_guidance`` or ``expected``), with the guidance;
2. response_quality, **without** the guidance or the expected answer (not anchored on them);
3. groundedness (needs retrieved text): the content of the documents the agent cited or
   retrieved (fetched for the judge where the target can: ``evals.targets.DocumentSource``),
   its other retrieved text (tool outputs, the case's context) and its reasoning steps;
4. hallucination_risk, with the guidance and the retrieved text;
5. factual_accuracy, when the judge is configured to: asked of the fact checker when one is
   configured (a search-capable judge or agent target), else of this judge; without the guidance;
6. golden (golden-set mode: the case has an ``expected`` answer): the answer against it;
7. each custom criterion of ``evals.criteria``, with the guidance unless its ``guidance`` is false.

A multi-turn case (``evals.conversation``) is judged the same way, on its transcript (labelled
as a conversation in place of the answer) with its goal as the guidance.

An empty answer is judged without a call: response_quality ``empty``, nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from core.httpclient import CallFailed
from evals.datasets import Case
from evals.judges.criteria import Criterion, Rubrics
from evals.judges.scores import Judge, JudgeCall, Judgement, Score, metrics
from evals.targets import TargetResult


@dataclass(frozen=True)
class Reply:
    """A judge backend's answer: its text and, when the backend reports them, its tokens and model."""

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    model: str | None = None


# messages (role, content) → the backend's reply; raises CallFailed.
Complete = Callable[[list[dict[str, str]]], Reply]


@dataclass(frozen=True)
class Asker:
    """Who answers a call: its name in the ledger, its model, and how to ask it."""

    member: str
    model: str
    complete: Complete


SYSTEM = (
    "You are a strict evaluator of an AI agent's answer. Judge only what you are given. "
    "Reply with one JSON object and nothing else: no prose, no code fences."
)
MAX_EVIDENCE_CHARS = 12_000
SHAPE = '{"label": "...", "explanation": "..."}'


class BadAnswer(ValueError):
    """The judge's reply is not the JSON asked for."""


def dimensions(case: Case, result: TargetResult, rubrics: Rubrics, factual_accuracy: bool) -> list[str]:
    """The dimensions asked for this case, in call order: the built-in ones (those ``rubrics``
    has) by built-in name, then the custom criteria by name."""
    asked = ["topical_coverage"] if case.eval_guidance or case.expected else []
    asked.append("response_quality")
    if retrieved_text(case, result):
        asked.append("groundedness")
    asked.append("hallucination_risk")
    if factual_accuracy:
        asked.append("factual_accuracy")
    if case.expected:
        asked.append("golden")
    return [name for name in asked if name in rubrics.builtin] + [c.name for c in rubrics.custom]


def retrieved_text(case: Case, result: TargetResult) -> str:
    """Tool outputs, fetched document content and the case's context (what claims can rest on)."""
    parts = [*(c.output or "" for c in result.tool_calls), *(d.content or "" for d in result.documents),
             case.context or ""]  # fmt: skip
    parts += [] if any(d.content for d in result.documents) else list(result.citations)
    return "\n---\n".join(p for p in parts if p.strip())[:MAX_EVIDENCE_CHARS]


def prompt(criterion: Criterion, case: Case, result: TargetResult) -> str:
    name = criterion.asked
    lines = ["Question:", case.query, ""]
    if criterion.guidance and (guidance := case.eval_guidance or case.expected):
        lines += ["What a good answer covers (guidance):", guidance, ""]
    if name == "golden" and case.expected:
        lines += ["The expected (golden) answer:", case.expected, ""]
    if name == "groundedness":
        lines += _grounding(case, result)
    elif name == "hallucination_risk" and (evidence := retrieved_text(case, result)):
        lines += ["Text the agent retrieved:", evidence, ""]
    if result.conversation:  # a multi-turn case: the transcript is what is judged
        lines += ["The conversation (a simulated user and the agent; judge the agent's turns):"]
    else:
        lines += ["The agent's answer:"]
    lines += [result.output or "", ""]
    labels = " | ".join(criterion.scale)
    lines += [f"Judge one dimension, {name}: {criterion.ask}", f"Labels: {labels}", "",
              f"Reply with exactly this JSON object: {SHAPE}"]  # fmt: skip
    return "\n".join(lines)


def _grounding(case: Case, result: TargetResult) -> list[str]:
    lines: list[str] = []
    budget = MAX_EVIDENCE_CHARS
    documents = [d for d in result.documents if d.content]
    if documents:
        lines.append("Documents the agent cited or retrieved:")
        for number, document in enumerate(documents, start=1):
            head = " ".join(x for x in (document.title, f"<{document.url}>" if document.url else None) if x)
            text = (document.content or "")[: max(0, budget)]
            budget -= len(text)
            lines += [f"[{number}] {head or document.id or ''}".rstrip(), text]
        lines.append("")
    other = [*(c.output or "" for c in result.tool_calls), case.context or ""]
    if not documents:
        other += list(result.citations)
    other_text = "\n---\n".join(p for p in other if p.strip())[: max(0, budget)]
    if other_text:
        lines += ["Other text the agent retrieved:", other_text, ""]
    if result.steps:
        steps = [f"{i}. {step}" for i, step in enumerate(result.steps, start=1)]
        lines += ["The agent's reasoning steps:", *steps, ""]
    return lines


def parse(text: str, criterion: Criterion) -> Score:
    """Strict: one JSON object with a ``label`` of the scale and, optionally, an ``explanation``."""
    try:
        data: Any = orjson.loads(text.strip())
    except orjson.JSONDecodeError as exc:
        raise BadAnswer(f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise BadAnswer("not a JSON object")
    extra = sorted(set(data) - {"label", "explanation"})
    if extra:
        raise BadAnswer(f"keys must be label and explanation; got {', '.join(map(str, extra))}")
    if not isinstance(data.get("label"), str):
        raise BadAnswer("label: must be a string")
    label = data["label"].strip().lower()
    if label not in criterion.scale:
        raise BadAnswer(f"{data['label']!r} is not one of {', '.join(criterion.scale)}")
    explanation = data.get("explanation")
    why = explanation if isinstance(explanation, str) else ""
    return Score(criterion.name, label, float(criterion.scale[label]), why)


class LLMJudge(Judge):
    wants_documents = True

    def __init__(
        self, name: str, model: str, complete: Complete, parse_retries: int = 2,
        factual_accuracy: bool = False, close: Callable[[], None] | None = None,
        rubrics: Rubrics | None = None, fact_checker: Asker | None = None,
    ) -> None:  # fmt: skip
        self.name = name
        self.model = model
        self.asker = Asker(name, model, complete)
        self.parse_retries = parse_retries
        self.factual_accuracy = factual_accuracy or fact_checker is not None
        self.rubrics = rubrics or Rubrics()
        self.fact_checker = fact_checker
        self._close = close

    def judge(self, case: Case, result: TargetResult) -> Judgement:
        if not (result.output or "").strip():
            why = f"no answer ({result.error})" if result.error else "the answer is empty"
            empty = self._empty(why)
            return Judgement(empty, self.rubrics.overall(empty), metrics(result, case), self.model)
        scores: list[Score] = []
        problems: list[str] = []
        calls: list[JudgeCall] = []
        for name in dimensions(case, result, self.rubrics, self.factual_accuracy):
            criterion = self.rubrics.get(name)
            asker = self.fact_checker if name == "factual_accuracy" and self.fact_checker else self.asker
            found, problem = self._ask(asker, criterion, case, result, calls)
            if found is not None:
                scores.append(found)
            if problem is not None:
                problems.append(f"{name}: {problem}")
        ordered = self.rubrics.ordered(scores)
        return Judgement(ordered, self.rubrics.overall(ordered), metrics(result, case), self.model,
                         tuple(problems), tuple(calls))  # fmt: skip

    def _empty(self, why: str) -> tuple[Score, ...]:
        """An empty answer's score, without a call: response_quality's ``empty`` label (its lowest
        on another scale, e.g. Seer's ``failure``), under the name its scores are stored under."""
        quality = self.rubrics.builtin.get("response_quality")
        if quality is None:
            return ()
        label = "empty" if "empty" in quality.scale else min(quality.scale, key=lambda k: quality.scale[k])
        return (Score(quality.name, label, float(quality.scale[label]), why),)

    def _ask(
        self, asker: Asker, criterion: Criterion, case: Case, result: TargetResult, calls: list[JudgeCall]
    ) -> tuple[Score | None, str | None]:
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": prompt(criterion, case, result)}]  # fmt: skip
        problem = ""
        for attempt in range(1, self.parse_retries + 2):
            start = time.perf_counter()
            try:
                reply = asker.complete(messages)
            except CallFailed as exc:
                calls.append(JudgeCall(asker.member, criterion.name, asker.model, attempt, False, str(exc),
                                       None, None, _ms(start)))  # fmt: skip
                return None, f"the judge call failed: {exc}"
            found: Score | None = None
            try:
                found = parse(reply.text, criterion)
            except BadAnswer as exc:
                problem = str(exc)
            model = reply.model or asker.model
            refused = None if found else problem
            calls.append(JudgeCall(asker.member, criterion.name, model, attempt, True, refused,
                                   reply.input_tokens, reply.output_tokens, _ms(start)))  # fmt: skip
            if found is not None:
                return found, None
            messages = [*messages, {"role": "assistant", "content": reply.text},
                        {"role": "user", "content": f"That reply is invalid: {problem}. "
                                                    "Reply again with only the JSON object."}]  # fmt: skip
        return None, f"no valid answer after {self.parse_retries + 1} tries (last: {problem})"

    def close(self) -> None:
        if self._close is not None:
            self._close()


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)
