"""The heuristic judge is deterministic: hand-worked cases, exact labels, values and overall."""

from __future__ import annotations

from evals.datasets import Case
from evals.judges.heuristic import HeuristicJudge, content_words, themes
from evals.judges.scores import Score
from evals.targets import TargetResult, ToolCall

JUDGE = HeuristicJudge()


def test_words_and_themes() -> None:
    assert content_words("Approves the 30-day receipts, Concur's rules") == ["approve", "30", "day", "receipt",
                                                                            "concur", "rule"]  # fmt: skip
    assert themes("Mentions Concur, the 30-day receipt rule and manager approval") == [
        ["concur"], ["30", "day", "receipt", "rule"], ["manager", "approval"],
    ]  # fmt: skip


def test_a_covered_grounded_answer() -> None:
    case = Case(
        "c1",
        "How do I file expenses?",
        eval_guidance="Mentions Concur, the 30-day receipt rule and manager approval",
    )
    result = TargetResult(
        "File expenses in Concur within 30 days and attach every receipt; your manager approves the report afterwards.",
        1234.5,
        (ToolCall("search", "{}", "Policy: submit in Concur within 30 days with a receipt. Manager approves."),),
    )  # fmt: skip
    judgement = JUDGE.judge(case, result)
    assert judgement.scores == (
        Score("topical_coverage", "full", 10.0, "3 of 3 themes"),
        Score("response_quality", "adequate", 7.0, "17 words"),
        Score("groundedness", "mostly", 7.0, "54% of the answer's words are in what the run retrieved"),
        Score("hallucination_risk", "low", 10.0, "no unsupported numbers"),
    )
    assert judgement.overall_score == 8.6667  # (3*10 + 2*7 + 2*7 + 2*10) / 9
    assert judgement.metrics == {"latency_ms": 1234.5, "tool_call_count": 1.0}
    assert JUDGE.judge(case, result) == judgement  # deterministic


def test_refusal_empty_and_invented_numbers() -> None:
    refusal = JUDGE.judge(Case("r", "Who approves?", eval_guidance="Names the manager"),
                          TargetResult("I'm sorry, I can't help with that.", 10.0))  # fmt: skip
    assert refusal.scores == (
        Score("topical_coverage", "none", 0.0, "0 of 1 themes; missing: manager"),
        Score("response_quality", "refusal", 0.0, "the answer refuses"),
        Score("hallucination_risk", "low", 10.0, "no unsupported numbers"),
    )
    assert refusal.overall_score == 2.8571  # 20 / 7
    empty = JUDGE.judge(Case("e", "Q?", eval_guidance="Names the manager"),
                        TargetResult(None, 5.0, error="HTTP 500: down"))  # fmt: skip
    assert empty.scores == (
        Score("topical_coverage", "none", 0.0, "0 of 1 themes; missing: manager"),
        Score("response_quality", "empty", 0.0, "no answer (HTTP 500: down)"),
    )
    assert empty.overall_score == 0.0
    invented = JUDGE.judge(
        Case("n", "What is the limit?"), TargetResult("The limit is 75 dollars and 12 days.", 1.0)
    )
    assert invented.scores == (
        Score("response_quality", "adequate", 7.0, "8 words"),
        Score("hallucination_risk", "high", 0.0, "unsupported numbers: 12, 75"),
    )
    assert invented.overall_score == 3.5
