"""LLM-as-judge: the dimensions are asked in groups, one model call per group, and each answer
must be strict JSON naming a label of the dimension's scale. An answer that is not gets the
problem said back and is asked again (``parse_retries`` times); a group that still fails, or
whose call fails after the HTTP retries, leaves its dimensions unscored and the reason in
``Judgement.problems``, never an exception.

Groups (only the dimensions a case can be judged on are asked):

- ``answer``: topical_coverage (needs ``eval_guidance`` or ``expected``), response_quality;
- ``grounding``: groundedness (needs retrieved text), hallucination_risk;
- ``facts``: factual_accuracy, when the judge is configured to (it needs a judge that can search).

An empty answer is judged without a call: response_quality ``empty``, nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from core.httpclient import CallFailed
from evals.datasets import Case
from evals.judges.scores import SCALES, Judge, Judgement, Score, metrics, overall, retrieved, score
from evals.targets import TargetResult

# messages (role, content) → the model's text; raises CallFailed.
Complete = Callable[[list[dict[str, str]]], str]

SYSTEM = (
    "You are a strict evaluator of an AI agent's answer. Judge only what you are given. "
    "Reply with one JSON object and nothing else: no prose, no code fences."
)
MAX_EVIDENCE_CHARS = 12_000

_ASKS: dict[str, str] = {
    "topical_coverage": "How much of what the guidance asks for does the answer cover?",
    "response_quality": "Is the answer clear, complete and useful (a refusal or an empty answer is not)?",
    "groundedness": "Is every claim of the answer supported by the retrieved text?",
    "hallucination_risk": "How likely is the answer to contain invented facts, names or numbers?",
    "factual_accuracy": "Are the answer's facts correct? Search to check them.",
}


class BadAnswer(ValueError):
    """The judge's reply is not the JSON asked for."""


def groups(case: Case, result: TargetResult, factual_accuracy: bool) -> list[tuple[str, ...]]:
    guidance = case.eval_guidance or case.expected
    answer = ["topical_coverage"] if guidance else []
    grounding = ["groundedness"] if evidence_of(case, result) else []
    found = [(*answer, "response_quality"), (*grounding, "hallucination_risk")]
    if factual_accuracy:
        found.append(("factual_accuracy",))
    return found


def evidence_of(case: Case, result: TargetResult) -> str:
    return "\n---\n".join(retrieved(case, result))[:MAX_EVIDENCE_CHARS]


def prompt(dimensions: tuple[str, ...], case: Case, result: TargetResult) -> str:
    lines = ["Question:", case.query, ""]
    if guidance := case.eval_guidance or case.expected:
        lines += ["What a good answer covers (guidance):", guidance, ""]
    if evidence := evidence_of(case, result):
        lines += ["Text the agent retrieved:", evidence, ""]
    lines += ["The agent's answer:", result.output or "", "", "Judge these dimensions:"]
    for dimension in dimensions:
        labels = " | ".join(SCALES[dimension])
        lines.append(f"- {dimension}: {_ASKS[dimension]} Labels: {labels}")
    shape = ", ".join(f'"{d}": {{"label": "...", "explanation": "..."}}' for d in dimensions)
    lines += ["", f"Reply with exactly this JSON object: {{{shape}}}"]
    return "\n".join(lines)


def parse(text: str, dimensions: tuple[str, ...]) -> tuple[Score, ...]:
    """Strict: one JSON object, exactly the dimensions asked, each a known label."""
    try:
        data: Any = orjson.loads(text.strip())
    except orjson.JSONDecodeError as exc:
        raise BadAnswer(f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise BadAnswer("not a JSON object")
    if sorted(data) != sorted(dimensions):
        raise BadAnswer(f"keys must be exactly {', '.join(dimensions)}; got {', '.join(map(str, data))}")
    scores = []
    for dimension in dimensions:
        item = data[dimension]
        if not isinstance(item, dict) or not isinstance(item.get("label"), str):
            raise BadAnswer(f"{dimension}: must be an object with a label")
        label = item["label"].strip().lower()
        if label not in SCALES[dimension]:
            raise BadAnswer(f"{dimension}: {item['label']!r} is not one of {', '.join(SCALES[dimension])}")
        explanation = item.get("explanation")
        scores.append(score(dimension, label, explanation if isinstance(explanation, str) else ""))
    return tuple(scores)


class LLMJudge(Judge):
    def __init__(
        self, name: str, model: str, complete: Complete, parse_retries: int = 2,
        factual_accuracy: bool = False, close: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        self.name = name
        self.model = model
        self.complete = complete
        self.parse_retries = parse_retries
        self.factual_accuracy = factual_accuracy
        self._close = close

    def judge(self, case: Case, result: TargetResult) -> Judgement:
        if not (result.output or "").strip():
            why = f"no answer ({result.error})" if result.error else "the answer is empty"
            empty = (score("response_quality", "empty", why),)
            return Judgement(empty, overall(empty), metrics(result), self.model)
        scores: list[Score] = []
        problems: list[str] = []
        for dimensions in groups(case, result, self.factual_accuracy):
            found, problem = self._ask(dimensions, case, result)
            scores += found
            if problem is not None:
                problems.append(f"{'+'.join(dimensions)}: {problem}")
        ordered = tuple(sorted(scores, key=lambda s: list(SCALES).index(s.dimension)))
        return Judgement(ordered, overall(ordered), metrics(result), self.model, tuple(problems))

    def _ask(
        self, dimensions: tuple[str, ...], case: Case, result: TargetResult
    ) -> tuple[tuple[Score, ...], str | None]:
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": prompt(dimensions, case, result)}]  # fmt: skip
        problem = ""
        for _ in range(self.parse_retries + 1):
            try:
                text = self.complete(messages)
            except CallFailed as exc:
                return (), f"the judge call failed: {exc}"
            try:
                return parse(text, dimensions), None
            except BadAnswer as exc:
                problem = str(exc)
            messages = [*messages, {"role": "assistant", "content": text},
                        {"role": "user", "content": f"That reply is invalid: {problem}. "
                                                    "Reply again with only the JSON object."}]  # fmt: skip
        return (), f"no valid answer after {self.parse_retries + 1} tries (last: {problem})"

    def close(self) -> None:
        if self._close is not None:
            self._close()
