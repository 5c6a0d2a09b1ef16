"""The openai and glean judges against a local fake model: one call per judge group, strict JSON,
retries on bad answers and on HTTP errors, and unscored dimensions (never a crash) when the
judge cannot answer."""

from __future__ import annotations

import json

import pytest

from core.errors import ConfigError
from evals.config import EvalsConfig, JudgeConfig
from evals.datasets import Case
from evals.judges.factory import build_judge
from evals.judges.llm import SYSTEM
from evals.judges.scores import Score
from evals.targets import TargetResult, ToolCall
from tests.helpers.fake_http import FakeServer, Reply

CASE = Case("c1", "How do I file expenses?", eval_guidance="Mentions Concur and manager approval")
RESULT = TargetResult(
    "File them in Concur; your manager approves.", 120.0,
    (ToolCall("search", '{"q": "expenses"}', "Expenses are filed in Concur."),),
)  # fmt: skip
ANSWER = {"topical_coverage": {"label": "most", "explanation": "approval is vague"},
          "response_quality": {"label": "good", "explanation": "clear"}}  # fmt: skip
GROUNDING = {"groundedness": {"label": "weak", "explanation": "approval is not in the text"},
             "hallucination_risk": {"label": "medium", "explanation": "one unsupported claim"}}  # fmt: skip
EXPECTED = (
    Score("topical_coverage", "most", 7.5, "approval is vague"),
    Score("response_quality", "good", 10.0, "clear"),
    Score("groundedness", "weak", 4.0, "approval is not in the text"),
    Score("hallucination_risk", "medium", 5.0, "one unsupported claim"),
)


def chat(content: object) -> Reply:
    text = content if isinstance(content, str) else json.dumps(content)
    return Reply(200, {"choices": [{"message": {"role": "assistant", "content": text}}]})


def openai_judge(url: str, **extra: object) -> EvalsConfig:
    config = JudgeConfig(type="openai", url=f"{url}/v1", model="judge-1", api_key="sk-test", backoff=0.01,
                         **extra)  # type: ignore[arg-type]  # fmt: skip
    return EvalsConfig(judges={"openai": config})


def test_openai_judge_one_call_per_group() -> None:
    with FakeServer() as fake:
        fake.script("/v1/chat/completions", chat(ANSWER), chat(GROUNDING))
        judge = build_judge("openai", openai_judge(fake.url))
        judgement = judge.judge(CASE, RESULT)
        judge.close()
    assert judgement.scores == EXPECTED
    assert judgement.overall_score == 6.7222  # (3*7.5 + 2*10 + 2*4 + 2*5) / 9
    assert judgement.judge_model == "openai:judge-1"
    assert judgement.problems == ()
    assert [s.path for s in fake.seen] == ["/v1/chat/completions"] * 2
    first = fake.seen[0]
    assert first.headers["Authorization"] == "Bearer sk-test"
    assert first.body["model"] == "judge-1"
    assert first.body["temperature"] == 0
    assert first.body["response_format"] == {"type": "json_object"}
    assert first.body["messages"][0] == {"role": "system", "content": SYSTEM}
    prompt = first.body["messages"][1]["content"]
    assert "Mentions Concur and manager approval" in prompt
    assert "- topical_coverage:" in prompt and "- groundedness:" not in prompt
    grounding_prompt = fake.seen[1].body["messages"][1]["content"]
    assert "Expenses are filed in Concur." in grounding_prompt
    assert "- groundedness:" in grounding_prompt and "- hallucination_risk:" in grounding_prompt


def test_a_bad_answer_is_said_back_and_asked_again() -> None:
    with FakeServer() as fake:
        fake.script(
            "/v1/chat/completions",
            chat("Sure! Here is my verdict: " + json.dumps(ANSWER)),  # prose around it: not strict
            chat({**ANSWER, "response_quality": {"label": "superb"}}),  # not a label of the scale
            chat(ANSWER),
            chat(GROUNDING),
        )
        judgement = build_judge("openai", openai_judge(fake.url)).judge(CASE, RESULT)
    assert judgement.scores == EXPECTED
    assert len(fake.seen) == 4
    retry = fake.seen[1].body["messages"]
    assert [m["role"] for m in retry] == ["system", "user", "assistant", "user"]
    assert retry[3]["content"].startswith("That reply is invalid: not JSON")
    third = fake.seen[2].body["messages"][-1]["content"]
    assert third == (
        "That reply is invalid: response_quality: 'superb' is not one of good, adequate, terse, refusal, "
        "empty. Reply again with only the JSON object."
    )


def test_a_group_that_never_answers_well_is_left_unscored() -> None:
    with FakeServer() as fake:
        fake.script("/v1/chat/completions", chat({"topical_coverage": {"label": "full"}}), chat({"x": 1}),
                    chat([1, 2]), chat(GROUNDING))  # fmt: skip
        judgement = build_judge("openai", openai_judge(fake.url, parse_retries=2)).judge(CASE, RESULT)
    assert judgement.scores == EXPECTED[2:]
    assert judgement.problems == (
        "topical_coverage+response_quality: no valid answer after 3 tries (last: not a JSON object)",
    )
    assert judgement.overall_score == 4.5  # (2*4 + 2*5) / 4


def test_http_errors_are_retried_then_reported() -> None:
    with FakeServer() as fake:
        fake.script("/v1/chat/completions", Reply(503, {"error": "busy"}), chat(ANSWER), Reply(500, {"e": 1}))
        judgement = build_judge("openai", openai_judge(fake.url, retries=1)).judge(CASE, RESULT)
    assert judgement.scores == EXPECTED[:2]
    assert judgement.problems == (
        'groundedness+hallucination_risk: the judge call failed: HTTP 500: {"e": 1}',
    )
    assert len(fake.seen) == 4  # 503 → retry → answer; 500 → retry → 500


def test_malformed_response_and_empty_answer() -> None:
    with FakeServer() as fake:
        fake.script("/v1/chat/completions", Reply(200, {"id": "x"}))
        judge = build_judge("openai", openai_judge(fake.url))
        malformed = judge.judge(CASE, RESULT)
        empty = judge.judge(CASE, TargetResult(None, 5.0, error="HTTP 502: down"))
    assert malformed.scores == ()
    assert malformed.problems[0] == (
        "topical_coverage+response_quality: the judge call failed: "
        "malformed chat-completions response (no choices[0].message.content)"
    )
    assert empty.scores == (Score("response_quality", "empty", 0.0, "no answer (HTTP 502: down)"),)
    assert len(fake.seen) == 2  # the empty answer asked nothing


def test_glean_judge_uses_the_chat_api() -> None:
    def glean(content: dict[str, object]) -> Reply:
        return Reply(200, {"messages": [
            {"author": "GLEAN_AI", "messageType": "UPDATE", "fragments": [{"text": "Reading…"}]},
            {"author": "GLEAN_AI", "messageType": "CONTENT", "fragments": [{"text": json.dumps(content)}]},
        ]})  # fmt: skip

    with FakeServer() as fake:
        evals = EvalsConfig(judges={"glean": JudgeConfig(type="glean", url=fake.url, api_key="glean-key",
                                                         factual_accuracy=True)})  # fmt: skip
        facts = {"factual_accuracy": {"label": "partly", "explanation": "approval is by finance"}}
        fake.script("/rest/api/v1/chat", glean(ANSWER), glean(GROUNDING), glean(facts))
        judgement = build_judge("glean", evals).judge(CASE, RESULT)
    assert judgement.scores == (*EXPECTED, Score("factual_accuracy", "partly", 5.0, "approval is by finance"))
    assert judgement.overall_score == 6.55  # (60.5 + 1*5) / 10
    assert judgement.judge_model == "glean:chat"
    body = fake.seen[0].body
    assert fake.seen[0].headers["Authorization"] == "Bearer glean-key"
    assert body["stream"] is False
    (message,) = body["messages"]
    assert message["author"] == "USER"
    assert message["fragments"][0]["text"].startswith(f"[system]\n{SYSTEM}\n\n[user]\nQuestion:")


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
