"""The ``heuristic`` judge: offline and deterministic (the same inputs, the same scores), so
everything works without an LLM.

- topical_coverage: the guidance (``eval_guidance``, else ``expected``) is cut into themes at
  commas, semicolons, full stops and "and"; a theme is covered when at least half of its content
  words (lowercased, plural "s" dropped, stop words ignored) appear in the answer. The share of
  covered themes picks the label: 1 full, ≥.6 most, ≥.3 partial, >0 minimal, else none.
- response_quality: empty, refusal wording, terse (< 8 words), adequate, good (≥ 20 words and
  a finished sentence).
- groundedness: the share of the answer's content words found in what the run retrieved (tool
  outputs, citations, the case's context): ≥.6 grounded, ≥.4 mostly, ≥.2 weak, else
  ungrounded. Not scored when nothing was retrieved.
- hallucination_risk: the answer's numbers that appear nowhere in the question, guidance,
  context or evidence: none low, one medium, more high; ungrounded answers are at least medium.

Custom criteria and the golden dimension need an LLM judge; for a case with an ``expected``
answer the heuristic judge records the deterministic half of golden-set mode, the
``golden_token_f1`` metric (``evals.judges.similarity``).
"""

from __future__ import annotations

import re

from evals.datasets import Case
from evals.judges.scores import Judge, Judgement, Score, metrics, overall, retrieved, score
from evals.targets import TargetResult

STOP_WORDS = frozenset(
    (
        "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "has",
        "have", "how", "i", "if", "in", "is", "it", "its", "of", "on", "or", "should", "that", "the",
        "their", "them", "then", "there", "these", "this", "to", "was", "were", "what", "when",
        "where", "which", "who", "will", "with", "you", "your",
        # words guidance uses about the answer, not in it
        "mention", "mentions", "name", "names", "answer", "explain", "explains", "include", "includes",
    )
)  # fmt: skip
REFUSAL = re.compile(
    r"^\s*(i'?m sorry|i am sorry|sorry,|i can(?:no|')t|i am unable|i'm unable|i won'?t|as an ai|"
    r"i do not have access|i don'?t have access)",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z0-9]+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_THEME_SPLIT = re.compile(r"[,;.\n]|\band\b", re.IGNORECASE)


def content_words(text: str) -> list[str]:
    words = []
    for word in _WORD.findall(text.lower()):
        if word in STOP_WORDS or len(word) < 2:
            continue
        words.append(word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word)
    return words


def themes(guidance: str) -> list[list[str]]:
    return [words for part in _THEME_SPLIT.split(guidance) if (words := content_words(part))]


class HeuristicJudge(Judge):
    name = "heuristic"

    def judge(self, case: Case, result: TargetResult) -> Judgement:
        answer = result.output or ""
        evidence = " ".join(retrieved(case, result))
        scores: list[Score] = [self._quality(answer, result)]
        guidance = case.eval_guidance or case.expected
        if guidance:
            scores.append(self._coverage(answer, guidance))
        grounded = self._groundedness(answer, evidence) if evidence.strip() and answer.strip() else None
        if grounded is not None:
            scores.append(grounded)
        if answer.strip():
            known = " ".join([case.query, guidance or "", evidence, case.expected or ""])
            scores.append(self._hallucination(answer, known, grounded))
        ordered = tuple(sorted(scores, key=lambda s: list(_ORDER).index(s.dimension)))
        return Judgement(ordered, overall(ordered), metrics(result, case), self.name)

    def _quality(self, answer: str, result: TargetResult) -> Score:
        if not answer.strip():
            why = f"no answer ({result.error})" if result.error else "the answer is empty"
            return score("response_quality", "empty", why)
        if REFUSAL.search(answer):
            return score("response_quality", "refusal", "the answer refuses")
        words = len(answer.split())
        if words < 8:
            return score("response_quality", "terse", f"{words} words")
        if words >= 20 and answer.rstrip()[-1:] in ".!?)\"'":
            return score("response_quality", "good", f"{words} words, finished sentences")
        return score("response_quality", "adequate", f"{words} words")

    def _coverage(self, answer: str, guidance: str) -> Score:
        wanted = themes(guidance)
        if not wanted:
            return score("topical_coverage", "full", "the guidance names no themes")
        have = set(content_words(answer))
        covered = [t for t in wanted if sum(w in have for w in t) * 2 >= len(t)]
        share = len(covered) / len(wanted)
        label = ("full" if share == 1 else "most" if share >= 0.6 else "partial" if share >= 0.3
                 else "minimal" if share > 0 else "none")  # fmt: skip
        missing = [" ".join(t) for t in wanted if t not in covered]
        why = f"{len(covered)} of {len(wanted)} themes" + (
            f"; missing: {', '.join(missing)}" if missing else ""
        )
        return score("topical_coverage", label, why)

    def _groundedness(self, answer: str, evidence: str) -> Score:
        words = content_words(answer)
        found = set(content_words(evidence))
        share = sum(w in found for w in words) / len(words) if words else 0.0
        label = (
            "grounded"
            if share >= 0.6
            else "mostly"
            if share >= 0.4
            else "weak"
            if share >= 0.2
            else "ungrounded"
        )
        return score(
            "groundedness", label, f"{share:.0%} of the answer's words are in what the run retrieved"
        )

    def _hallucination(self, answer: str, known: str, grounded: Score | None) -> Score:
        known_numbers = set(_NUMBER.findall(known))
        unsupported = sorted({n for n in _NUMBER.findall(answer) if n not in known_numbers})
        label = "low" if not unsupported else "medium" if len(unsupported) == 1 else "high"
        if grounded is not None and grounded.label == "ungrounded" and label == "low":
            label = "medium"
        why = f"unsupported numbers: {', '.join(unsupported)}" if unsupported else "no unsupported numbers"
        if grounded is not None and grounded.label == "ungrounded":
            why += "; the answer is not grounded in what the run retrieved"
        return score("hallucination_risk", label, why)


_ORDER = ("topical_coverage", "response_quality", "groundedness", "hallucination_risk", "factual_accuracy")
