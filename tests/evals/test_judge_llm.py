"""The openai and glean judges against local fake models: one isolated call per dimension (the
response-quality call without the guidance), strict JSON, retries on bad answers and on HTTP
errors, unscored dimensions (never a crash) when the judge cannot answer, and every call in the
judge ledger with the tokens the backend reported."""

from __future__ import annotations

import json

import pytest

from core.errors import ConfigError
from evals.config import EvalsConfig, JudgeConfig
from evals.datasets import Case
from evals.judges.factory import build_judge
from evals.judges.llm import SYSTEM
from evals.judges.scores import JudgeCall, Score
from evals.targets import TargetResult, ToolCall
from tests.evals.fakes import OpenAIJudge, verdict
from tests.helpers.fake_http import FakeServer, Reply

GUIDANCE = "Mentions Concur and manager approval"
CASE = Case("c1", "How do I file expenses?", eval_guidance=GUIDANCE)
TOOL_OUTPUT = "Expenses are filed in Concur."
RESULT = TargetResult(
    "File them in Concur; your manager approves.", 120.0, (ToolCall("search", '{"q": "expenses"}', TOOL_OUTPUT),),
)  # fmt: skip
LABELS = {"topical_coverage": "most", "response_quality": "good", "groundedness": "weak",
          "hallucination_risk": "medium"}  # fmt: skip
EXPECTED = (
    Score("topical_coverage", "most", 7.5, "topical_coverage is most"),
    Score("response_quality", "good", 10.0, "response_quality is good"),
    Score("groundedness", "weak", 4.0, "groundedness is weak"),
    Score("hallucination_risk", "medium", 5.0, "hallucination_risk is medium"),
)


def openai_judge(url: str, **extra: object) -> EvalsConfig:
    config = JudgeConfig(type="openai", url=f"{url}/v1", model="judge-1", api_key="sk-test", backoff=0.01,
                         **extra)  # type: ignore[arg-type]  # fmt: skip
    return EvalsConfig(judges={"openai": config})


def ledger(calls: tuple[JudgeCall, ...]) -> list[tuple[object, ...]]:
    return [(c.member, c.dimension, c.model, c.attempt, c.ok, c.problem, c.input_tokens, c.output_tokens)
            for c in calls]  # fmt: skip


def test_one_isolated_call_per_dimension() -> None:
    with OpenAIJudge(LABELS) as fake:
        judge = build_judge("openai", openai_judge(fake.url))
        judgement = judge.judge(CASE, RESULT)
        judge.close()
    assert judgement.scores == EXPECTED
    assert judgement.overall_score == 6.7222  # (3*7.5 + 2*10 + 2*4 + 2*5) / 9
    assert judgement.judge_model == "openai:judge-1"
    assert judgement.problems == ()
    # Four dimensions, four calls, in this order, each asking exactly one dimension.
    assert [c.dimension for c in fake.calls] == list(LABELS)
    assert [c.path for c in fake.calls] == ["/v1/chat/completions"] * 4
    for call, dimension in zip(fake.calls, LABELS, strict=True):
        assert call.headers["Authorization"] == "Bearer sk-test"
        assert call.body["model"] == "judge-1"
        assert call.body["temperature"] == 0
        assert call.body["response_format"] == {"type": "json_object"}
        assert call.body["messages"][0] == {"role": "system", "content": SYSTEM}
        assert len(call.body["messages"]) == 2
        prompt = call.prompt
        assert prompt.count("Judge one dimension") == 1 and f"Judge one dimension, {dimension}:" in prompt
        assert prompt.startswith("Question:\nHow do I file expenses?\n")
        assert "The agent's answer:\nFile them in Concur; your manager approves." in prompt
    coverage, quality, grounded, hallucination = (c.prompt for c in fake.calls)
    # Response quality is judged without the guidance; the other dimensions see it.
    assert GUIDANCE not in quality and "guidance" not in quality
    assert all(GUIDANCE in p for p in (coverage, grounded, hallucination))
    assert TOOL_OUTPUT in grounded and TOOL_OUTPUT in hallucination
    assert TOOL_OUTPUT not in coverage and TOOL_OUTPUT not in quality
    assert ledger(judgement.calls) == [
        ("openai", "topical_coverage", "judge-1", 1, True, None, 101, 10),
        ("openai", "response_quality", "judge-1", 1, True, None, 102, 10),
        ("openai", "groundedness", "judge-1", 1, True, None, 103, 10),
        ("openai", "hallucination_risk", "judge-1", 1, True, None, 104, 10),
    ]


def test_a_three_dimension_case_makes_three_calls() -> None:
    """Guidance and no retrieval: topical_coverage, response_quality, hallucination_risk."""
    with OpenAIJudge(LABELS) as fake:
        judgement = build_judge("openai", openai_judge(fake.url)).judge(
            CASE, TargetResult("Use Concur.", 5.0)
        )
    assert [c.dimension for c in fake.calls] == ["topical_coverage", "response_quality", "hallucination_risk"]
    assert [s.dimension for s in judgement.scores] == [c.dimension for c in fake.calls]
    assert GUIDANCE not in fake.calls[1].prompt
    assert "Text the agent retrieved" not in fake.calls[2].prompt


def test_a_bad_answer_is_said_back_and_asked_again() -> None:
    bad = {"response_quality": ["Sure! Here is my verdict: " + verdict("good"),  # prose around it: not strict
                                json.dumps({"label": "superb"})]}  # not a label of the scale  # fmt: skip
    with OpenAIJudge(LABELS, bad) as fake:
        judgement = build_judge("openai", openai_judge(fake.url)).judge(CASE, RESULT)
    assert judgement.scores == EXPECTED
    assert [c.dimension for c in fake.calls] == ["topical_coverage", *["response_quality"] * 3,
                                                 "groundedness", "hallucination_risk"]  # fmt: skip
    second, third = fake.calls[2].body["messages"], fake.calls[3].body["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[2]["content"] == "Sure! Here is my verdict: " + verdict("good")
    assert second[3]["content"].startswith("That reply is invalid: not JSON")
    assert [m["role"] for m in third] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert third[5]["content"] == (
        "That reply is invalid: 'superb' is not one of good, adequate, terse, refusal, empty. "
        "Reply again with only the JSON object."
    )
    # Every try is in the ledger, the refused ones with why.
    assert [(c.dimension, c.attempt, c.problem is None) for c in judgement.calls] == [
        ("topical_coverage", 1, True), ("response_quality", 1, False), ("response_quality", 2, False),
        ("response_quality", 3, True), ("groundedness", 1, True), ("hallucination_risk", 1, True),
    ]  # fmt: skip
    assert judgement.calls[2].problem == "'superb' is not one of good, adequate, terse, refusal, empty"


def test_a_dimension_that_never_answers_well_is_left_unscored() -> None:
    bad = {"topical_coverage": [json.dumps({"topical_coverage": {"label": "full"}}), json.dumps({"x": 1}),
                                json.dumps([1, 2])]}  # fmt: skip
    with OpenAIJudge(LABELS, bad) as fake:
        judgement = build_judge("openai", openai_judge(fake.url, parse_retries=2)).judge(CASE, RESULT)
    assert judgement.scores == EXPECTED[1:]
    assert judgement.problems == (
        "topical_coverage: no valid answer after 3 tries (last: not a JSON object)",
    )
    assert judgement.overall_score == 6.3333  # (2*10 + 2*4 + 2*5) / 6
    assert len(fake.calls) == 6
    assert [c.problem for c in judgement.calls[:3]] == [
        "keys must be label and explanation; got topical_coverage",
        "keys must be label and explanation; got x",
        "not a JSON object",
    ]


def test_http_errors_are_retried_then_reported() -> None:
    def chat(content: str) -> Reply:
        return Reply(200, {"choices": [{"message": {"role": "assistant", "content": content}}]})

    with FakeServer() as fake:
        fake.script("/v1/chat/completions", Reply(503, {"error": "busy"}), chat(verdict("most")),
                    chat(verdict("good")), chat(verdict("weak")), Reply(500, {"e": 1}))  # fmt: skip
        judgement = build_judge("openai", openai_judge(fake.url, retries=1)).judge(CASE, RESULT)
    assert [s.label for s in judgement.scores] == ["most", "good", "weak"]
    assert judgement.problems == ('hallucination_risk: the judge call failed: HTTP 500: {"e": 1}',)
    assert len(fake.seen) == 6  # 503 → retry → answer; two answers; 500 → retry → 500
    assert [(c.dimension, c.ok, c.problem) for c in judgement.calls][-1] == (
        "hallucination_risk",
        False,
        'HTTP 500: {"e": 1}',
    )


def test_malformed_response_and_empty_answer() -> None:
    with FakeServer() as fake:
        fake.script("/v1/chat/completions", Reply(200, {"id": "x"}))
        judge = build_judge("openai", openai_judge(fake.url))
        malformed = judge.judge(CASE, RESULT)
        empty = judge.judge(CASE, TargetResult(None, 5.0, error="HTTP 502: down"))
    assert malformed.scores == ()
    assert malformed.problems[0] == (
        "topical_coverage: the judge call failed: "
        "malformed chat-completions response (no choices[0].message.content)"
    )
    assert len(malformed.problems) == 4
    assert empty.scores == (Score("response_quality", "empty", 0.0, "no answer (HTTP 502: down)"),)
    assert empty.calls == ()
    assert len(fake.seen) == 4  # one per dimension; the empty answer asked nothing


def test_glean_judge_uses_the_chat_api() -> None:
    def glean(content: str) -> Reply:
        return Reply(200, {"messages": [
            {"author": "GLEAN_AI", "messageType": "UPDATE", "fragments": [{"text": "Reading…"}]},
            {"author": "GLEAN_AI", "messageType": "CONTENT", "fragments": [{"text": content}]},
        ]})  # fmt: skip

    with FakeServer() as fake:
        evals = EvalsConfig(judges={"glean": JudgeConfig(type="glean", url=fake.url, api_key="glean-key",
                                                         factual_accuracy=True)})  # fmt: skip
        replies = [glean(verdict(LABELS[s.dimension], s.explanation)) for s in EXPECTED]
        fake.script("/rest/api/v1/chat", *replies, glean(verdict("partly", "approval is by finance")))
        judgement = build_judge("glean", evals).judge(CASE, RESULT)
    assert judgement.scores == (*EXPECTED, Score("factual_accuracy", "partly", 5.0, "approval is by finance"))
    assert judgement.overall_score == 6.55  # (60.5 + 1*5) / 10
    assert judgement.judge_model == "glean:chat"
    assert len(fake.seen) == 5
    body = fake.seen[0].body
    assert fake.seen[0].headers["Authorization"] == "Bearer glean-key"
    assert body["stream"] is False and "agentConfig" not in body
    (message,) = body["messages"]
    assert message["author"] == "USER"
    assert message["fragments"][0]["text"].startswith(f"[system]\n{SYSTEM}\n\n[user]\nQuestion:")
    facts = fake.seen[4].body["messages"][0]["fragments"][0]["text"]
    assert "Judge one dimension, factual_accuracy:" in facts and GUIDANCE not in facts
    # Glean's chat reports no tokens: its calls are in the ledger without them.
    assert {(c.model, c.input_tokens, c.output_tokens) for c in judgement.calls} == {
        ("glean:chat", None, None)
    }


def test_judge_names_and_specs() -> None:
    evals = EvalsConfig()
    assert build_judge("heuristic", evals).name == "heuristic"
    assert build_judge("openai:http://127.0.0.1:9/v1#m", evals).name == "openai:http://127.0.0.1:9/v1#m"
    with pytest.raises(ConfigError) as caught:
        build_judge("openai", evals)
    assert str(caught.value) == (
        "judge: 'openai' is not a judge: use one of heuristic (judges are defined under evals.judges), "
        "or a spec openai:URL#model / glean:URL"
    )
    with pytest.raises(ConfigError, match="name the model after '#'"):
        build_judge("openai:http://127.0.0.1:9/v1", evals)
