"""The judge design against fake Glean and OpenAI-compatible servers on loopback that record
every call: groundedness judged on the content of the cited documents (fetched through Glean's
document API) and the agent's reasoning steps, factual accuracy asked of a search-capable fact
checker, a multi-judge ensemble with its disagreement stored per dimension, custom criteria,
golden-set mode, and the judge ledger's exact totals beside the agent's own."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from agentwatch.config import parse_config
from core.errors import ConfigError
from core.httpclient import RetryPolicy
from evals.config import CriterionConfig, EvalsConfig, JudgeConfig, TargetConfig
from evals.datasets import Case, load_dataset
from evals.judges.factory import build_judge
from evals.judges.heuristic import HeuristicJudge
from evals.judges.ledger import Pricer
from evals.judges.scores import Score, Vote
from evals.judges.similarity import token_set_f1
from evals.runner import EvalRun, run_eval, store
from evals.show import run_detail
from evals.targets.glean import GleanTarget
from evals.targets.python import PythonTarget
from processors.cost.config import Config as CostConfig
from processors.cost.config import ModelPrice
from storage.catalog import connect
from tests.evals.fakes import Backend, Call, OpenAIJudge, glean_messages, verdict

TRACER = TracerProvider().get_tracer("test")
FAST = RetryPolicy(timeout=5, retries=1, backoff=0.01, max_backoff=0.05)
GUIDANCE = "Mentions Concur and the 30-day limit"
ANSWER = "File it in Concur within 30 days; your manager approves."
PRICES = CostConfig(
    models={"judge-1": ModelPrice(input=1.0, output=2.0), "judge-2": ModelPrice(input=3.0, output=4.0)}
)
DOC_TEXT = ["Expenses are filed in Concur.", "Reports are due within 30 days."]


def openai(url: str, model: str = "judge-1", **extra: Any) -> JudgeConfig:
    return JudgeConfig(type="openai", url=f"{url}/v1", model=model, backoff=0.01, **extra)


def agent(query: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The python target of these tests: answers, cites a document, and reports its usage."""
    return {"output": fields.get("answer", ANSWER), "usage": {"input_tokens": 1000, "output_tokens": 200},
            "model": "gpt-4o-mini", "steps": ["Looked up the policy"]}  # fmt: skip


def python_target() -> PythonTarget:
    return PythonTarget("tests.evals.test_judge_design:agent")


# -- groundedness on fetched documents ------------------------------------------------------------


SCHEMAS, RUN = "/rest/api/v1/agents/agt_1/schemas", "/rest/api/v1/agents/runs/wait"


def glean_agent(documents: dict[str, Any]) -> Backend:
    def respond(call: Call) -> tuple[int, Any]:
        if call.path == SCHEMAS:  # a chat agent: no form fields
            return 200, {"agent_id": "agt_1", "input_schema": {}, "output_schema": {}}
        if call.path == "/rest/api/v1/agents/runs/wait":
            return 200, glean_messages(
                ANSWER,
                citations=[{"id": "doc-1", "url": "https://wiki/expenses", "title": "Expenses"},
                           {"url": "https://wiki/travel", "title": "Travel"}],
                steps=["Searching policies", "Reading Expenses"],
            )  # fmt: skip
        if call.path == "/rest/api/v1/getdocuments":
            return 200, {"documents": documents}
        return 404, {"error": "no such path"}

    return Backend(respond)


def test_groundedness_is_judged_on_the_fetched_documents_and_the_reasoning_steps() -> None:
    documents = {"doc-1": {"id": "doc-1", "content": {"fullTextList": DOC_TEXT}},
                 "https://wiki/travel": {"error": "document not found"}}  # fmt: skip
    labels = {"topical_coverage": "full", "response_quality": "good", "groundedness": "grounded",
              "hallucination_risk": "low"}  # fmt: skip
    with glean_agent(documents) as glean, OpenAIJudge(labels) as model:
        target = GleanTarget(glean.url, agent_id="agt_1", api_key="glean-key", policy=FAST, concurrency=1)
        judge = build_judge("j", EvalsConfig(judges={"j": openai(model.url)}))
        run = run_eval([Case("c1", "How do I file expenses?", eval_guidance=GUIDANCE)], target, judge, TRACER,
                       agent="a", dataset="d")  # fmt: skip
    # The Glean calls, in order: the agent's schemas, its run, then one fetch of the cited documents.
    assert [c.path for c in glean.calls] == [SCHEMAS, RUN, "/rest/api/v1/getdocuments"]
    fetch = glean.calls[2]
    assert fetch.headers["Authorization"] == "Bearer glean-key"
    assert fetch.body == {"documentSpecs": [{"id": "doc-1"}, {"url": "https://wiki/travel"}],
                          "includeFields": ["DOCUMENT_CONTENT"]}  # fmt: skip
    (outcome,) = run.outcomes
    assert [d.content for d in outcome.result.documents] == ["\n".join(DOC_TEXT), None]
    assert outcome.judgement.problems == ("documents: https://wiki/travel: document not found",)
    assert [c.dimension for c in model.calls] == list(labels)
    grounded = model.calls[2].prompt
    assert (
        "Documents the agent cited or retrieved:\n[1] Expenses <https://wiki/expenses>\n"
        "Expenses are filed in Concur.\nReports are due within 30 days.\n\n"
        "The agent's reasoning steps:\n1. Searching policies\n2. Reading Expenses\n\n"
        "The agent's answer:\n" + ANSWER
    ) in grounded
    assert "https://wiki/travel" not in grounded  # unfetched: only what the documents say counts
    quality = model.calls[1].prompt
    assert DOC_TEXT[0] not in quality and GUIDANCE not in quality and "reasoning" not in quality
    assert DOC_TEXT[0] in model.calls[3].prompt  # hallucination_risk sees the retrieved text
    assert outcome.judgement.value("groundedness") == 10.0


def test_no_document_is_fetched_for_a_judge_that_does_not_read_them() -> None:
    with glean_agent({}) as glean:
        target = GleanTarget(glean.url, agent_id="agt_1", policy=FAST, concurrency=1)
        run = run_eval([Case("c1", "How?")], target, HeuristicJudge(), TRACER, agent="a", dataset="d")
    assert [c.path for c in glean.calls] == [SCHEMAS, RUN]
    assert run.outcomes[0].judgement.problems == ()


# -- the fact checker ----------------------------------------------------------------------------


def test_factual_accuracy_is_asked_of_a_search_capable_agent_target() -> None:
    def respond(call: Call) -> tuple[int, Any]:
        replies = [glean_messages("I checked: " + verdict("partly")),  # not strict JSON: asked again
                   glean_messages(verdict("partly", "the limit is 60 days, per the travel policy"))]  # fmt: skip
        return 200, replies[min(len(glean.calls), 2) - 1]

    labels = {"topical_coverage": "full", "response_quality": "good", "hallucination_risk": "low"}
    with Backend(respond) as glean, OpenAIJudge(labels) as model:
        evals = EvalsConfig(
            targets={
                "glean-advanced": TargetConfig(
                    spec=f"glean:{glean.url}#advanced-agent", api_key="g-key", mode="form"
                )
            },
            judges={"j": openai(model.url, fact_checker="glean-advanced")},
        )
        assert evals.validate() == []
        judge = build_judge("j", evals)
        judgement = judge.judge(Case("c1", "How long do I have?", eval_guidance=GUIDANCE),
                                _result("You have 30 days."))  # fmt: skip
        judge.close()
    assert [c.dimension for c in model.calls] == [
        "topical_coverage",
        "response_quality",
        "hallucination_risk",
    ]
    assert [c.path for c in glean.calls] == ["/rest/api/v1/agents/runs/wait"] * 2
    first, second = (c.body for c in glean.calls)
    assert first["agent_id"] == "advanced-agent" and glean.calls[0].headers["Authorization"] == "Bearer g-key"
    query = first["input"]["query"]
    assert (
        "Judge one dimension, factual_accuracy:" in query
        and "The agent's answer:\nYou have 30 days." in query
    )
    assert GUIDANCE not in query
    retry = second["input"]["query"]
    assert retry.startswith(query) and "\n\n[assistant]\nI checked: " + verdict("partly") in retry
    assert (
        retry.endswith(". Reply again with only the JSON object.")
        and "That reply is invalid: not JSON (" in retry
    )
    assert judgement.value("factual_accuracy") == 5.0
    assert judgement.scores[-1].explanation == "the limit is 60 days, per the travel policy"
    assert [(c.member, c.dimension, c.model, c.attempt) for c in judgement.calls if c.dimension == "factual_accuracy"] == [
        ("j/fact_checker:glean-advanced", "factual_accuracy", "glean-advanced", 1),
        ("j/fact_checker:glean-advanced", "factual_accuracy", "glean-advanced", 2),
    ]  # fmt: skip


def test_a_glean_judge_with_the_advanced_agent_as_fact_checker() -> None:
    def respond(call: Call) -> tuple[int, Any]:
        return 200, glean_messages(verdict("correct"))

    with (
        Backend(respond) as glean,
        OpenAIJudge({"response_quality": "good", "hallucination_risk": "low"}) as model,
    ):
        evals = EvalsConfig(judges={
            "j": openai(model.url, fact_checker="checker"),
            "checker": JudgeConfig(type="glean", url=glean.url, agent="ADVANCED"),
        })  # fmt: skip
        judgement = build_judge("j", evals).judge(Case("c1", "How?"), _result("Use Concur."))
    (call,) = glean.calls
    assert call.path == "/rest/api/v1/chat"
    assert call.body["agentConfig"] == {"agent": "ADVANCED"}
    assert "Judge one dimension, factual_accuracy:" in call.prompt
    assert judgement.value("factual_accuracy") == 10.0
    assert len(model.calls) == 2


def test_fact_checker_and_ensemble_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            "evals:\n  judges:\n    j:\n      type: openai\n      url: http://x/v1\n      model: m\n"
            "      fact_checker: nobody\n    panel:\n      type: ensemble\n      members: [j, panel]\n"
            "      combine: median\n",
            "c.yaml",
        )
    assert str(caught.value).splitlines() == [
        "c.yaml:7: evals.judges.j.fact_checker: 'nobody' is neither a judge under evals.judges (j) "
        "nor a target under evals.targets (none)",
        "c.yaml:10: evals.judges.panel.members: 'panel' is the ensemble itself",
        "c.yaml:11: evals.judges.panel.combine: Input should be 'mean' or 'majority'",
    ]
    with pytest.raises(ConfigError) as caught:
        parse_config(
            "evals:\n  judges:\n    j:\n      type: openai\n      url: http://x/v1\n      model: m\n"
            "      fact_checker: nobody\n    h:\n      type: heuristic\n      fact_checker: j\n"
            "    panel:\n      type: ensemble\n      members: [j, panel]\n",
            "c.yaml",
        )
    assert str(caught.value).splitlines() == [
        "c.yaml:7: evals.judges.j.fact_checker: 'nobody' is neither a judge under evals.judges (j) "
        "nor a target under evals.targets (none)",
        "c.yaml:10: evals.judges.h.fact_checker: the heuristic judge cannot ask a fact checker",
        "c.yaml:13: evals.judges.panel.members: 'panel' is the ensemble itself",
    ]


# -- the ensemble --------------------------------------------------------------------------------


def _result(output: str) -> Any:
    from evals.targets import TargetResult

    return TargetResult(output, 5.0)


def ensemble_run(
    tmp_path: Path, combine: str, labels: list[dict[str, str]]
) -> tuple[EvalRun, list[OpenAIJudge]]:
    servers = [
        OpenAIJudge(judge_labels, model=f"judge-{i}") for i, judge_labels in enumerate(labels, start=1)
    ]
    for server in servers:
        server.__enter__()
    try:
        members = {f"m{i}": openai(s.url, model=f"judge-{i}") for i, s in enumerate(servers, start=1)}
        evals = EvalsConfig(judges={**members, "panel": JudgeConfig(type="ensemble", members=list(members),
                                                                    combine=combine)})  # type: ignore[arg-type]  # fmt: skip
        assert evals.validate() == []
        judge = build_judge("panel", evals)
        cases = [Case("c1", "How do I file expenses?", eval_guidance=GUIDANCE)]
        run = run_eval(cases, python_target(), judge, TRACER, agent="a", dataset="d", pricer=Pricer(PRICES))
    finally:
        for server in servers:
            server.__exit__()
    store(run, tmp_path, "acme")
    return run, servers


def test_an_ensemble_of_two_means_the_votes_and_stores_their_disagreement(tmp_path: Path) -> None:
    run, (one, two) = ensemble_run(tmp_path, "mean", [
        {"topical_coverage": "full", "response_quality": "good", "hallucination_risk": "low"},
        {"topical_coverage": "partial", "response_quality": "good", "hallucination_risk": "medium"},
    ])  # fmt: skip
    dimensions = ["topical_coverage", "response_quality", "hallucination_risk"]
    assert [c.dimension for c in one.calls] == dimensions and [c.dimension for c in two.calls] == dimensions
    (outcome,) = run.outcomes
    assert outcome.judgement.scores == (
        Score("topical_coverage", "most", 7.5, "mean of 2 judges (m1: full, m2: partial)",
              (Vote("m1", "full", 10.0), Vote("m2", "partial", 5.0)), 5.0, 1.0),
        Score("response_quality", "good", 10.0, "mean of 2 judges (m1: good, m2: good)",
              (Vote("m1", "good", 10.0), Vote("m2", "good", 10.0)), 0.0, 0.0),
        Score("hallucination_risk", "medium", 7.5, "mean of 2 judges (m1: low, m2: medium)",
              (Vote("m1", "low", 10.0), Vote("m2", "medium", 5.0)), 5.0, 0.5),
    )  # fmt: skip
    assert outcome.judgement.overall_score == 8.2143  # (3*7.5 + 2*10 + 2*7.5) / 7
    assert outcome.judgement.judge_model == "ensemble:mean(openai:judge-1,openai:judge-2)"
    assert run.unstable() == {"topical_coverage": 1, "hallucination_risk": 1}
    con = connect(tmp_path)
    assert con.execute(
        "SELECT dimension, label, value, spread, dissent, votes FROM scores WHERE evaluator = 'panel' ORDER BY 1"
    ).fetchall() == [
        ("hallucination_risk", "medium", 7.5, 5.0, 0.5, '[["m1","low",10.0],["m2","medium",5.0]]'),
        ("response_quality", "good", 10.0, 0.0, 0.0, '[["m1","good",10.0],["m2","good",10.0]]'),
        ("topical_coverage", "most", 7.5, 5.0, 1.0, '[["m1","full",10.0],["m2","partial",5.0]]'),
    ]
    detail = run_detail(con, run.run_id)
    assert detail.unstable == {"hallucination_risk": (1, 5.0), "response_quality": (0, 0.0),
                               "topical_coverage": (1, 5.0)}  # fmt: skip


def test_an_ensemble_of_three_takes_the_majority_label(tmp_path: Path) -> None:
    run, servers = ensemble_run(tmp_path, "majority", [
        {"response_quality": "good", "hallucination_risk": "low", "topical_coverage": "full"},
        {"response_quality": "terse", "hallucination_risk": "low", "topical_coverage": "most"},
        {"response_quality": "good", "hallucination_risk": "high", "topical_coverage": "none"},
    ])  # fmt: skip
    assert [len(s.calls) for s in servers] == [3, 3, 3]
    scores = {s.dimension: (s.label, s.value, s.spread, s.dissent) for s in run.outcomes[0].judgement.scores}
    assert scores == {
        "response_quality": ("good", 10.0, 7.0, 0.3333),
        "hallucination_risk": ("low", 10.0, 10.0, 0.3333),
        "topical_coverage": ("none", 0.0, 10.0, 0.6667),  # a three-way tie: the cautious label
    }


def test_an_ensemble_member_that_fails_does_not_vote(tmp_path: Path) -> None:
    run, _ = ensemble_run(tmp_path, "mean", [
        {"response_quality": "good", "hallucination_risk": "low", "topical_coverage": "full"},
        {"response_quality": "adequate", "hallucination_risk": "low"},  # no verdict on coverage: HTTP 500
    ])  # fmt: skip
    judgement = run.outcomes[0].judgement
    coverage = judgement.scores[0]
    assert (coverage.dimension, coverage.value, coverage.votes, coverage.spread) == (
        "topical_coverage",
        10.0,
        (Vote("m1", "full", 10.0),),
        0.0,
    )
    assert judgement.problems == (
        'm2: topical_coverage: the judge call failed: HTTP 500: {"error": "no verdict for \'topical_coverage\'"}',
    )
    quality = judgement.scores[1]
    assert (quality.value, quality.spread, quality.dissent) == (8.5, 3.0, 0.5)  # (10 + 7) / 2
    assert quality.label == "adequate"  # 8.5 is 1.5 from good and from adequate: the lower label


# -- custom criteria -----------------------------------------------------------------------------


def test_custom_criteria_are_asked_one_call_each_with_their_rubric_scale_and_weight() -> None:
    criteria = {
        "cites_policy": CriterionConfig(rubric="Does the answer name the policy it relies on?",
                                        scale={"named": 10, "vague": 4, "missing": 0}, weight=4.0, guidance=False),
        "tone": CriterionConfig(rubric="Is the tone friendly?", scale={"friendly": 10, "cold": 0}),
    }  # fmt: skip
    labels = {"topical_coverage": "full", "response_quality": "good", "hallucination_risk": "low",
              "cites_policy": "vague", "tone": "cold"}  # fmt: skip
    with OpenAIJudge(labels) as model:
        evals = EvalsConfig(judges={"j": openai(model.url)}, criteria=criteria)
        assert evals.validate() == []
        case = Case("c1", "How do I file expenses?", eval_guidance=GUIDANCE)
        judgement = build_judge("j", evals).judge(case, _result(ANSWER))
    assert [c.dimension for c in model.calls] == list(labels)
    assert [(s.dimension, s.label, s.value) for s in judgement.scores] == [
        ("topical_coverage", "full", 10.0), ("response_quality", "good", 10.0), ("hallucination_risk", "low", 10.0),
        ("cites_policy", "vague", 4.0), ("tone", "cold", 0.0),
    ]  # fmt: skip
    assert judgement.overall_score == 7.1667  # (3*10 + 2*10 + 2*10 + 4*4 + 1*0) / 12
    cites, tone = model.calls[3].prompt, model.calls[4].prompt
    assert (
        "Judge one dimension, cites_policy: Does the answer name the policy it relies on?\n"
        "Labels: named | vague | missing"
    ) in cites
    assert GUIDANCE not in cites  # guidance: false
    assert GUIDANCE in tone and "Labels: friendly | cold" in tone


def test_criteria_validation_names_the_yaml_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            "evals:\n  criteria:\n    Tone:\n      rubric: ''\n      scale: {Great: 12, ok: 5}\n"
            "      weight: -1\n    groundedness:\n      rubric: again\n      scale: {yes: 10, 'no': 0, bad: 11}\n"
            "  quality_thresholds:\n    tone: 5\n",
            "c.yaml",
        )
    assert str(caught.value).splitlines() == [
        "c.yaml:3: evals.criteria.Tone: a name is lowercase letters, digits and _, from a letter",
        "c.yaml:4: evals.criteria.Tone.rubric: must not be empty",
        "c.yaml:5: evals.criteria.Tone.scale.Great: a label must be lowercase, without surrounding spaces",
        "c.yaml:6: evals.criteria.Tone.weight: must not be negative",
        "c.yaml:7: evals.criteria.groundedness: a built-in dimension or metric has this name",
        "c.yaml:9: evals.criteria.groundedness.scale.True: YAML reads yes/no/on/off as true/false: quote the label",
        "c.yaml:9: evals.criteria.groundedness.scale.bad: must be between 0 and 10",
        "c.yaml:11: evals.quality_thresholds.tone: not a score (one of overall_score, topical_coverage, "
        "response_quality, groundedness, hallucination_risk, factual_accuracy, golden, Tone, groundedness)",
    ]


# -- golden-set mode -----------------------------------------------------------------------------

EXPECTED_ANSWER = "Expenses are filed in Concur within 30 days and approved by your manager."


def test_golden_mode_compares_with_the_expected_answer_by_llm_and_token_f1(tmp_path: Path) -> None:
    # A = {file, concur, within, 30, day, manager, approve}, E = {expense, filed, concur, within, 30,
    # day, approved, manager}: 5 shared, P = 5/7, R = 5/8, F1 = 2PR / (P + R) = 2/3.
    assert token_set_f1(ANSWER, EXPECTED_ANSWER) == 0.6667
    assert token_set_f1("manager then Concur", "Concur, then your manager") == 1.0
    assert token_set_f1("", EXPECTED_ANSWER) == 0.0 and token_set_f1("the of", "and") == 0.0
    (tmp_path / "cases.csv").write_text(
        f'id,query,expected\ng1,How do I file expenses?,"{EXPECTED_ANSWER}"\n'
    )
    (case,) = load_dataset(tmp_path / "cases.csv")
    assert case.expected == EXPECTED_ANSWER
    labels = {"topical_coverage": "most", "response_quality": "good", "hallucination_risk": "low",
              "golden": "mostly"}  # fmt: skip
    with OpenAIJudge(labels) as model:
        judge = build_judge("j", EvalsConfig(judges={"j": openai(model.url)}))
        run = run_eval([case], python_target(), judge, TRACER, agent="a", dataset="d")
    assert [c.dimension for c in model.calls] == list(labels)
    golden = model.calls[3].prompt
    assert f"The expected (golden) answer:\n{EXPECTED_ANSWER}\n\nThe agent's answer:\n{ANSWER}" in golden
    assert EXPECTED_ANSWER not in model.calls[1].prompt  # response quality: not anchored on it either
    judgement = run.outcomes[0].judgement
    assert judgement.value("golden") == 7.5
    assert judgement.metrics["golden_token_f1"] == 0.6667
    assert judgement.overall_score == 8.6111  # (3*7.5 + 2*10 + 2*10 + 2*7.5) / 9
    store(run, tmp_path / "data", "acme")
    heuristic = run_eval([case], python_target(), HeuristicJudge(), TRACER, agent="a", dataset="d")
    store(heuristic, tmp_path / "data", "acme")
    con = connect(tmp_path / "data")
    # Both halves are stored: the LLM's comparison as the golden dimension, the F1 as a metric
    # (the heuristic judge has the F1 alone).
    assert con.execute(
        "SELECT eval_run_id = $llm, evaluator, dimension, label, value FROM scores"
        " WHERE dimension IN ('golden', 'golden_token_f1') ORDER BY 1 DESC, 2, 3",
        {"llm": run.run_id},
    ).fetchall() == [
        (True, "j", "golden", "mostly", 7.5),
        (True, "metric", "golden_token_f1", None, 0.6667),
        (False, "metric", "golden_token_f1", None, 0.6667),
    ]


# -- the judge ledger ----------------------------------------------------------------------------


def test_the_judge_ledger_prices_every_call_beside_the_agents_tokens(tmp_path: Path) -> None:
    labels = {"response_quality": "good", "hallucination_risk": "low"}
    with OpenAIJudge(labels, bad={"response_quality": ["not json"]}) as model:
        judge = build_judge("j", EvalsConfig(judges={"j": openai(model.url)}))
        cases = [Case("c1", "How do I file expenses?"), Case("c2", "Where are receipts kept?")]
        run = run_eval(cases, python_target(), judge, TRACER, agent="a", dataset="d", pricer=Pricer(PRICES))
    # c1: response_quality (a bad answer, then a good one), hallucination_risk; c2: one call each.
    # Call n reports 100 + n input tokens and 10 output tokens; judge-1 costs $1 / $2 per million.
    assert [(c.dimension, c.attempt) for o in run.outcomes for c in o.judgement.calls] == [
        ("response_quality", 1), ("response_quality", 2), ("hallucination_risk", 1),
        ("response_quality", 1), ("hallucination_risk", 1),
    ]  # fmt: skip
    assert [(c.input_tokens, c.output_tokens, c.cost_usd, c.cost_source) for o in run.outcomes
            for c in o.judgement.calls] == [
        (101, 10, 0.000121, "computed"), (102, 10, 0.000122, "computed"), (103, 10, 0.000123, "computed"),
        (104, 10, 0.000124, "computed"), (105, 10, 0.000125, "computed"),
    ]  # fmt: skip
    assert run.judge_usage.as_dict() == {"calls": 5, "input_tokens": 515, "output_tokens": 50,
                                         "cost_usd": 0.000615}  # fmt: skip
    # The agent: 1000 in, 200 out per case on gpt-4o-mini, priced from the genai-prices tables
    # ($0.15 / $0.60 per million): 2 x (0.00015 + 0.00012).
    assert run.agent_usage.as_dict() == {"calls": 2, "input_tokens": 2000, "output_tokens": 400,
                                         "cost_usd": 0.00054}  # fmt: skip
    store(run, tmp_path, "acme")
    con = connect(tmp_path)
    assert con.execute(
        "SELECT agent_input_tokens, agent_output_tokens, agent_cost_usd, judge_calls, judge_input_tokens,"
        " judge_output_tokens, judge_cost_usd FROM eval_runs WHERE run_id = $r",
        {"r": run.run_id},
    ).fetchall() == [(2000, 400, 0.00054, 5, 515, 50, 0.000615)]
    assert con.execute(
        "SELECT case_id, agent_input_tokens, agent_cost_usd, judge_calls, judge_input_tokens, judge_cost_usd"
        " FROM eval_results ORDER BY case_id"
    ).fetchall() == [("c1", 1000, 0.00027, 3, 306, 0.000366), ("c2", 1000, 0.00027, 2, 209, 0.000249)]
    assert con.execute(
        "SELECT case_id, judge, member, dimension, model, attempt, ok, problem IS NOT NULL, input_tokens,"
        " cost_usd FROM judge_calls ORDER BY case_id, input_tokens"
    ).fetchall() == [
        ("c1", "j", "j", "response_quality", "judge-1", 1, True, True, 101, 0.000121),
        ("c1", "j", "j", "response_quality", "judge-1", 2, True, False, 102, 0.000122),
        ("c1", "j", "j", "hallucination_risk", "judge-1", 1, True, False, 103, 0.000123),
        ("c2", "j", "j", "response_quality", "judge-1", 1, True, False, 104, 0.000124),
        ("c2", "j", "j", "hallucination_risk", "judge-1", 1, True, False, 105, 0.000125),
    ]
    (line,) = run_detail(con, run.run_id).ledger
    assert vars(line) == {"member": "j", "model": "judge-1", "calls": 5, "retries": 1, "failed": 0,
                          "input_tokens": 515, "output_tokens": 50, "cost_usd": 0.000615}  # fmt: skip


def test_a_judge_model_without_a_price_is_unknown_and_no_tokens_no_cost() -> None:
    when = datetime(2026, 1, 5, tzinfo=UTC)
    assert Pricer(PRICES).price(
        [("no-such-model-xyz", 10, 10), ("judge-2", None, None), (None, 5, 5), ("judge-2", 1_000_000, 0)],
        when,
    ) == [
        (None, "unknown"),
        (None, None),
        (None, None),
        (3.0, "computed"),
    ]
    assert Pricer(CostConfig(models=PRICES.models, tenant_multipliers={"acme": 0.5}), "acme").price(
        [("judge-2", 0, 1_000_000)], when
    ) == [(2.0, "computed")]


# -- the command line: eval run, eval show and eval diff -----------------------------------------


@pytest.mark.process  # the CLI as a subprocess
def test_eval_run_show_and_diff_put_the_judge_ledger_and_the_disagreement_beside_the_scores(
    tmp_path: Path,
) -> None:
    from tests.helpers.evals import agentwatch

    cases = tmp_path / "cases.jsonl"
    cases.write_text("".join(json.dumps({"id": f"c{i}", "query": f"Question {i}?"}) + "\n" for i in (1, 2)))
    data = tmp_path / "data"
    one_labels = {"response_quality": "good", "hallucination_risk": "low"}
    two_labels = {"response_quality": "terse", "hallucination_risk": "low"}
    with OpenAIJudge(one_labels) as one, OpenAIJudge(two_labels) as two:
        config = tmp_path / "agentwatch.yaml"
        config.write_text(f"""storage:
  data_dir: {data}
processors:
  cost:
    models:
      judge-1: {{input: 1.0, output: 2.0}}
      judge-2: {{input: 3.0, output: 4.0}}
evals:
  judges:
    one: {{type: openai, url: "{one.url}/v1", model: judge-1}}
    two: {{type: openai, url: "{two.url}/v1", model: judge-2}}
    panel: {{type: ensemble, members: [one, two], combine: mean}}
""")
        result = agentwatch("eval", "run", "--agent", "expense-bot", "--dataset", str(cases), "--config", str(config),
                            "--target", "python:tests.evals.test_judge_design:agent", "--judge", "panel")  # fmt: skip
    assert result.returncode == 0, result.stderr
    # Per judge, per case: response_quality then hallucination_risk (input 101, 102 then 103, 104).
    assert [len(one.calls), len(two.calls)] == [4, 4]
    lines = result.stdout.strip().splitlines()
    run_id = lines[0].split()[2].rstrip(":")
    assert lines[:6] == [
        f"eval run {run_id}: expense-bot, 2 cases, 0 errors",
        "overall score 8.25 / 10",  # response_quality (10 + 3) / 2 = 6.5, hallucination_risk 10
        "  response_quality       6.50  unstable: judges disagreed on 2 cases",
        "  hallucination_risk    10.00",
        # the agent: 2 x (1000 in, 200 out) of gpt-4o-mini at $0.15 / $0.60 per million
        "agent tokens: 2,000 in, 400 out over 2 cases, $0.000540",
        # judge-1: 410 in, 40 out at $1 / $2 ($0.00049); judge-2: the same at $3 / $4 ($0.00139)
        "judge tokens: 820 in, 80 out over 8 calls, $0.001880",
    ]
    shown = agentwatch("eval", "show", run_id, "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    assert (
        shown.stdout.splitlines()
        == [
            f"eval run {run_id}: expense-bot (manual), 2 cases, 0 errors",
            "target python:tests.evals.test_judge_design:agent, judge panel, dataset " + str(cases),
            "overall score 8.25 / 10",
            "  response_quality       6.50  unstable: judges disagreed on 2 cases, spread up to 7",
            "  hallucination_risk    10.00",
            "agent tokens: 2,000 in, 400 out over 2 cases, $0.000540",
            "judge tokens: 820 in, 80 out over 8 calls, $0.001880",
            "  one (judge-1): 4 calls, 410 in, 40 out, $0.000490",
            "  two (judge-2): 4 calls, 410 in, 40 out, $0.001390",
            "cases:",
            "  c1: overall 8.25",
            "    response_quality     adequate      6.50  spread 7, dissent 100%",  # good and terse: 6.5 is nearest adequate
            "    hallucination_risk   low          10.00  judges agree",
            "  c2: overall 8.25",
            "    response_quality     adequate      6.50  spread 7, dissent 100%",  # good and terse: 6.5 is nearest adequate
            "    hallucination_risk   low          10.00  judges agree",
        ]
    )
    as_json = json.loads(agentwatch("eval", "show", "--agent", "expense-bot", "--config", str(config),
                                    "--format", "json").stdout)  # fmt: skip
    assert as_json["judge_cost_usd"] == 0.00188 and as_json["agent_cost_usd"] == 0.00054
    assert as_json["unstable"] == {"hallucination_risk": {"cases": 0, "max_spread": 0.0},
                                   "response_quality": {"cases": 2, "max_spread": 7.0}}  # fmt: skip
    compared = agentwatch("eval", "diff", run_id, run_id, "--config", str(config))
    assert compared.returncode == 0, compared.stderr
    assert (
        "  response_quality       6.50 →   6.50  (+0.00, p=1.0000, small-sample)  unstable: judges disagreed on"
        " 2 cases, spread up to 7" in compared.stdout.splitlines()
    )
