"""Multi-turn cases against one fake OpenAI-compatible server on loopback that plays the agent,
the simulated user and the judge (told apart by the model each call names) and records every
call in order: the exact message lists of a 3-turn conversation, an early stop, the judge
reading the whole transcript, the stored results, scores and spans (a child span per turn), a
target that takes one query, failures, validation, and a single-turn case unchanged."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentwatch.cli import main
from agentwatch.config import parse_config
from core.errors import ConfigError, DatasetError
from core.httpclient import RetryPolicy
from evals.config import EvalsConfig, JudgeConfig
from evals.conversation import Simulator, simulator_prompt
from evals.datasets import Case, load_dataset
from evals.judges.factory import build_judge
from evals.judges.heuristic import HeuristicJudge
from evals.runner import run_eval, span_count
from evals.targets import TargetResult, Turn
from evals.targets.openai import OpenAITarget
from evals.targets.python import PythonTarget
from storage.catalog import connect
from tests.evals.fakes import Backend, Call, Served, completion, verdict

FAST = RetryPolicy(timeout=5, retries=0, backoff=0.01, max_backoff=0.05)
QUERY = "Book me a flight to Paris"
GUIDANCE = "Books a flight and confirms the date"
PERSONA = "A terse traveller"
LABELS = {"topical_coverage": "full", "response_quality": "good", "hallucination_risk": "low"}


class Fake(Served):
    """The agent (``agent-model``: answers ``A<n>`` at its n-th user message, 10·n prompt tokens,
    5 completion tokens), the simulator (``sim-model``: its scripted replies in order; ``None``
    is an HTTP 500) and the judge (``judge-model``: ``LABELS``)."""

    def __init__(self, script: list[str | None]) -> None:
        self.script = list(script)
        self.backend = Backend(self.respond)

    def respond(self, call: Call) -> tuple[int, Any]:
        model = call.body["model"]
        if model == "agent-model":
            n = sum(m["role"] == "user" for m in call.body["messages"])
            return 200, completion(f"A{n}", 10 * n, 5, "agent-model")
        if model == "sim-model":
            reply = self.script.pop(0)
            return (500, {"error": "down"}) if reply is None else (200, completion(reply))
        return 200, completion(verdict(LABELS[call.dimension or ""]))

    def calls(self, model: str | None = None) -> list[Call]:
        return [c for c in self.backend.calls if model is None or c.body["model"] == model]

    def order(self) -> list[str]:
        return [c.body["model"] for c in self.backend.calls]


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def agent_said(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def sim_prompt(conversation: str) -> str:
    return (
        "You play the user in a conversation with an AI agent, to test the agent.\n"
        f"Your persona: {PERSONA}\nYour goal: {QUERY}\nWhat the agent should get done: {GUIDANCE}\n\n"
        f"The conversation so far:\n{conversation}\n\n"
        "Write the user's next message, in the persona's voice, and nothing else. When the goal is "
        "reached or the conversation cannot go further, reply with exactly [DONE]"
    )


TRANSCRIPT = (
    f"User: {QUERY}\n\nAgent: A1\n\nUser: Tuesday\n\nAgent: A2\n\nUser: Morning, economy\n\nAgent: A3"
)


def test_a_three_turn_case_end_to_end_and_a_single_turn_case_unchanged(tmp_path: Path) -> None:
    with Fake(["Tuesday", "Morning, economy"]) as fake:
        data = tmp_path / "data"
        config = tmp_path / "agentwatch.yaml"
        config.write_text(f"""storage: {{data_dir: "{data}"}}
evals:
  targets:
    bot: {{spec: "openai:{fake.url}/v1#agent-model", concurrency: 1, retries: 0}}
    user-sim: {{spec: "openai:{fake.url}/v1#sim-model", retries: 0}}
  judges:
    j: {{type: openai, url: "{fake.url}/v1", model: judge-model, retries: 0}}
  multi_turn: {{simulator: user-sim}}
""")
        cases = tmp_path / "cases.jsonl"
        rows = [{"id": "c1", "query": QUERY, "eval_guidance": GUIDANCE, "turns": 3, "persona": PERSONA},
                {"id": "c2", "query": "What is the baggage allowance?"}]  # fmt: skip
        cases.write_text("".join(json.dumps(r) + "\n" for r in rows))
        result = CliRunner().invoke(main, ["eval", "run", "--agent", "travel-bot", "--dataset", str(cases),
                                           "--config", str(config), "--target", "bot", "--judge", "j"],
                                    catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    # c1: agent, simulator, agent, simulator, agent, then one judge call per dimension; c2: as always.
    agent, sim, judge = "agent-model", "sim-model", "judge-model"
    assert fake.order() == [agent, sim, agent, sim, agent, judge, judge, judge, agent, judge, judge]
    assert [c.body["messages"] for c in fake.calls(agent)] == [
        [user(QUERY)],
        [user(QUERY), agent_said("A1"), user("Tuesday")],
        [user(QUERY), agent_said("A1"), user("Tuesday"), agent_said("A2"), user("Morning, economy")],
        [user("What is the baggage allowance?")],  # the single-turn case: the body it always had
    ]
    assert fake.calls(agent)[3].body == {"model": agent, "messages": [user("What is the baggage allowance?")]}
    assert [c.body["messages"] for c in fake.calls(sim)] == [
        [user(sim_prompt(f"User: {QUERY}\n\nAgent: A1"))],
        [user(sim_prompt(f"User: {QUERY}\n\nAgent: A1\n\nUser: Tuesday\n\nAgent: A2"))],
    ]
    judged = fake.calls(judge)
    assert [c.dimension for c in judged] == [*LABELS, "response_quality", "hallucination_risk"]
    for call in judged[:3]:  # the whole conversation, labelled as one, in place of the answer
        assert (
            "The conversation (a simulated user and the agent; judge the agent's turns):\n"
            + TRANSCRIPT
            + "\n\n"
        ) in call.prompt
        assert call.prompt.startswith(f"Question:\n{QUERY}\n\n")
    assert f"What a good answer covers (guidance):\n{GUIDANCE}\n\n" in judged[0].prompt
    assert GUIDANCE not in judged[1].prompt  # response_quality: still without the guidance
    assert "The agent's answer:\nA1\n\n" in judged[3].prompt  # c2 as before

    assert "spans: 5 of 5 stored" in result.output  # c1: its run and 3 turns; c2: its run
    run_id = re.search(r"eval run (\S+):", result.output).group(1)  # type: ignore[union-attr]
    con = connect(data)
    assert con.execute(
        "SELECT case_id, query, output, error, tool_call_count, agent_input_tokens, agent_output_tokens,"
        " overall_score, judge_calls, judge_problems FROM eval_results WHERE run_id = $r ORDER BY case_id",
        {"r": run_id},
    ).fetchall() == [
        ("c1", QUERY, TRANSCRIPT, None, 0, 60, 15, 10.0, 3, None),  # tokens: 10 + 20 + 30, 3 x 5
        ("c2", "What is the baggage allowance?", "A1", None, 0, 10, 5, 10.0, 2, None),
    ]
    assert con.execute(
        "SELECT eval_case_id, evaluator, dimension, value FROM scores WHERE eval_run_id = $r"
        " AND dimension IN ('turns_used', 'tool_call_count') ORDER BY eval_case_id, dimension",
        {"r": run_id},
    ).fetchall() == [
        ("c1", "metric", "tool_call_count", 0.0), ("c1", "metric", "turns_used", 3.0),
        ("c2", "metric", "tool_call_count", 0.0),  # no turns_used for a single-turn case
    ]  # fmt: skip
    roots = con.execute(
        "SELECT eval_case_id, span_id, name, input_text, output_text FROM spans"
        " WHERE eval_run_id = $r AND parent_span_id IS NULL ORDER BY eval_case_id",
        {"r": run_id},
    ).fetchall()
    assert [(r[0], r[2], r[3], r[4]) for r in roots] == [
        ("c1", "agent_run", QUERY, TRANSCRIPT), ("c2", "agent_run", "What is the baggage allowance?", "A1"),
    ]  # fmt: skip
    turns = con.execute(
        "SELECT eval_case_id, name, parent_span_id = $p, input_text, output_text, status,"
        " json_extract_string(attributes, '$.\"agentwatch.turn.index\"'),"
        " json_extract_string(attributes, '$.\"agentwatch.turn.simulated\"')"
        " FROM spans WHERE eval_run_id = $r AND parent_span_id IS NOT NULL ORDER BY start_time_unix_nano",
        {"r": run_id, "p": roots[0][1]},
    ).fetchall()
    assert turns == [
        ("c1", "agent_turn 1", True, QUERY, "A1", "unset", "1", "false"),
        ("c1", "agent_turn 2", True, "Tuesday", "A2", "unset", "2", "true"),
        ("c1", "agent_turn 3", True, "Morning, economy", "A3", "unset", "3", "true"),
    ]


def tracer() -> tuple[Any, InMemorySpanExporter]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("t"), exporter


def conversation_case(turns: int = 4) -> Case:
    return Case("c1", QUERY, eval_guidance=GUIDANCE, turns=turns, persona=PERSONA)


def test_the_simulator_ends_the_conversation_early_with_the_stop_token() -> None:
    with Fake(["Tuesday", "Thanks, that is all. [DONE]"]) as fake:
        agent = OpenAITarget(f"{fake.url}/v1", "agent-model", policy=FAST, concurrency=1)
        simulator = Simulator(OpenAITarget(f"{fake.url}/v1", "sim-model", policy=FAST), PERSONA)
        judge = build_judge("j", EvalsConfig(judges={"j": JudgeConfig(type="openai", url=f"{fake.url}/v1",
                                                                        model="judge-model")}))  # fmt: skip
        spans_to, exporter = tracer()
        run = run_eval(
            [conversation_case(4)], agent, judge, spans_to, agent="a", dataset="d", simulator=simulator
        )
    assert fake.order() == ["agent-model", "sim-model", "agent-model", "sim-model", *["judge-model"] * 3]
    assert [c.body["messages"] for c in fake.calls("agent-model")] == [
        [user(QUERY)], [user(QUERY), agent_said("A1"), user("Tuesday")],
    ]  # fmt: skip
    assert fake.calls("sim-model")[1].body["messages"] == [
        user(sim_prompt(f"User: {QUERY}\n\nAgent: A1\n\nUser: Tuesday\n\nAgent: A2"))
    ]
    (outcome,) = run.outcomes
    assert outcome.result.output == f"User: {QUERY}\n\nAgent: A1\n\nUser: Tuesday\n\nAgent: A2"
    assert outcome.judgement.metrics["turns_used"] == 2.0
    assert outcome.judgement.problems == ()
    assert [(t.user, t.simulated) for t in outcome.result.conversation] == [(QUERY, False), ("Tuesday", True)]
    assert [s.name for s in exporter.get_finished_spans()] == ["agent_turn 1", "agent_turn 2", "agent_run"]


QUERIES: list[str] = []


def one_query_agent(query: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A python target: one query per call; reports a tool call on every turn."""
    QUERIES.append(query)
    return {"output": f"reply to {query}", "tool_calls": [{"name": "search", "arguments": "{}"}]}


def test_a_target_that_takes_one_query_gets_each_new_user_turn_and_its_tool_calls_nest_in_the_turn() -> None:
    QUERIES.clear()
    with Fake(["Tuesday", "Morning"]) as fake:
        simulator = Simulator(OpenAITarget(f"{fake.url}/v1", "sim-model", policy=FAST), PERSONA)
        spans_to, exporter = tracer()
        target = PythonTarget("tests.evals.test_multi_turn:one_query_agent")
        run = run_eval([conversation_case(3)], target, HeuristicJudge(), spans_to, agent="a", dataset="d",
                       simulator=simulator)  # fmt: skip
    assert QUERIES == [QUERY, "Tuesday", "Morning"]
    assert fake.calls("sim-model")[0].body["messages"] == [
        user(sim_prompt(f"User: {QUERY}\n\nAgent: reply to {QUERY}"))
    ]
    (outcome,) = run.outcomes
    assert outcome.judgement.metrics == {"latency_ms": pytest.approx(outcome.result.latency_ms, abs=1e-3),
                                         "tool_call_count": 3.0, "turns_used": 3.0}  # fmt: skip
    assert span_count(outcome.result) == 7
    spans = {s.name: s for s in exporter.get_finished_spans() if s.name.startswith("agent_")}
    tools = [s for s in exporter.get_finished_spans() if s.name == "execute_tool search"]
    turn_ids = [spans[f"agent_turn {n}"].context.span_id for n in (1, 2, 3)]
    assert [s.parent.span_id for s in tools if s.parent] == turn_ids
    assert all(spans[f"agent_turn {n}"].parent.span_id == spans["agent_run"].context.span_id  # type: ignore[union-attr]
               for n in (1, 2, 3))  # fmt: skip


def test_a_failing_simulator_ends_the_conversation_and_a_failing_turn_is_the_error() -> None:
    with Fake([None]) as fake:
        agent = OpenAITarget(f"{fake.url}/v1", "agent-model", policy=FAST, concurrency=1)
        simulator = Simulator(OpenAITarget(f"{fake.url}/v1", "sim-model", policy=FAST))
        run = run_eval([conversation_case(3)], agent, HeuristicJudge(), tracer()[0], agent="a", dataset="d",
                       simulator=simulator)  # fmt: skip
    (outcome,) = run.outcomes
    assert outcome.result.error is None and outcome.result.output == f"User: {QUERY}\n\nAgent: A1"
    assert outcome.judgement.metrics["turns_used"] == 1.0
    assert len(outcome.judgement.problems) == 1
    assert outcome.judgement.problems[0].startswith("simulator: turn 2: HTTP 500")

    class FailsSecond:
        name, concurrency, calls = "f", 1, 0

        def invoke(self, case: Case) -> TargetResult:
            self.calls += 1
            return TargetResult("ok", 2.0) if self.calls == 1 else TargetResult(None, 3.0, error="HTTP 503")

        def close(self) -> None:
            return None

    with Fake(["Tuesday", "never asked"]) as fake:
        simulator = Simulator(OpenAITarget(f"{fake.url}/v1", "sim-model", policy=FAST))
        run = run_eval([conversation_case(3)], FailsSecond(), HeuristicJudge(), tracer()[0], agent="a",
                       dataset="d", simulator=simulator)  # fmt: skip
        assert len(fake.calls("sim-model")) == 1
    (outcome,) = run.outcomes
    assert outcome.result.error == "turn 2: HTTP 503"
    assert outcome.result.output == f"User: {QUERY}\n\nAgent: ok\n\nUser: Tuesday"
    assert outcome.result.latency_ms == 5.0
    assert run.errors == 1

    no_simulator = run_eval([conversation_case(3)], FailsSecond(), HeuristicJudge(), tracer()[0], agent="a",
                            dataset="d")  # fmt: skip
    assert no_simulator.outcomes[0].result.error == (
        "a multi-turn case needs a simulator: set evals.multi_turn.simulator"
    )


def test_turns_1_is_a_single_call() -> None:
    result = TargetResult("x", 1.0)
    assert span_count(result) == 1
    assert not Case("c", "q", turns=1).multi_turn and Case("c", "q", turns=2).multi_turn
    assert simulator_prompt(Case("c", "q"), "p", [Turn("q", result, 0, False)], "STOP").endswith(
        "reply with exactly STOP"
    )


def test_dataset_and_config_errors_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "cases.jsonl"
    bad.write_text("\n".join(json.dumps(r) for r in [
        {"query": "q", "turns": "three"}, {"query": "q", "turns": 0}, {"query": "q", "turns": True},
        {"query": "q", "persona": "p"}, {"query": "q", "turns": 2, "persona": " "},
        {"query": "q", "turns": 51},
    ]) + "\n")  # fmt: skip
    with pytest.raises(DatasetError) as raised:
        load_dataset(bad)
    assert raised.value.problems == [
        f"{bad}:1: turns: must be a whole number, not str",
        f"{bad}:2: turns: must be between 1 and 50, not 0",
        f"{bad}:3: turns: must be a whole number, not bool",
        f"{bad}:4: persona: only a multi-turn case (turns of 2 or more) has one",
        f"{bad}:5: persona: must not be empty",
        f"{bad}:6: turns: must be between 1 and 50, not 51",
    ]
    csv = tmp_path / "cases.csv"
    csv.write_text('query,turns,persona\nq1,3,"A terse traveller"\nq2,,\nq3,x,\n')
    with pytest.raises(DatasetError) as raised:
        load_dataset(csv)
    assert raised.value.problems == [f"{csv}:4: turns: must be a whole number, not 'x'"]
    csv.write_text('query,turns,persona\nq1,3,"A terse traveller"\nq2,,\n')
    assert [(c.turns, c.persona) for c in load_dataset(csv)] == [(3, "A terse traveller"), (None, None)]

    with pytest.raises(ConfigError) as config_error:
        parse_config('evals: {multi_turn: {simulator: nobody, stop: " ", persona: ""}}', "c.yaml")
    text = str(config_error.value)
    assert "evals.multi_turn.persona: must not be empty" in text
    assert "evals.multi_turn.stop: must not be empty" in text
    assert "evals.multi_turn.simulator: 'nobody' is neither a target under evals.targets" in text
    defaults = parse_config("{}", "c.yaml").evals.multi_turn
    assert (defaults.simulator, defaults.stop) == (None, "[DONE]")


def test_eval_run_refuses_a_multi_turn_case_without_a_simulator(tmp_path: Path) -> None:
    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps({"id": "c1", "query": QUERY, "turns": 3}) + "\n")
    config = tmp_path / "agentwatch.yaml"
    config.write_text(f'storage: {{data_dir: "{tmp_path / "data"}"}}\n')
    result = CliRunner().invoke(main, ["eval", "run", "--agent", "a", "--dataset", str(cases), "--config",
                                       str(config), "--target", "python:tests.evals.test_multi_turn:one_query_agent"])  # fmt: skip
    assert result.exit_code == 2
    assert "case 'c1' has turns: 3: name the target playing the user with --simulator or " in result.output
    assert "evals.multi_turn.simulator" in result.output


def test_a_glean_chat_agent_gets_the_conversation_oldest_first_and_a_workflow_most_recent_first() -> None:
    """Glean's agents API takes a chat agent's messages (USER, GLEAN_AI) in order; Glean's chat API
    documents its messages most recent first, and the workflow API is sent them so."""
    from evals.targets.glean import GleanTarget

    replies = iter(["Tuesday", "Morning", "Tuesday", "Morning"])  # the simulator's, per conversation
    answers = {"agent": iter(["A1", "A2", "A3"]), "workflow": iter(["W1", "W2", "W3"])}

    def respond(call: Call) -> tuple[int, Any]:
        if call.path.endswith("/schemas"):
            return 200, {"agent_id": "a1", "input_schema": {"type": "object"}}
        if call.path == "/rest/api/v1/agents/runs/wait":
            text = next(answers["agent"])
            return 200, {"run": {"status": "success"}, "messages": [{"role": "GLEAN_AI", "content": [{"text": text}]}]}
        if call.path == "/rest/api/v1/runworkflow":
            text = next(answers["workflow"])
            return 200, {"messages": [{"author": "GLEAN_AI", "messageType": "CONTENT", "fragments": [{"text": text}]}]}
        return 200, completion(next(replies))

    def said(role: str, text: str) -> dict[str, Any]:
        return {"role": role, "content": [{"text": text, "type": "text"}]}

    def wrote(author: str, text: str) -> dict[str, Any]:
        return {"author": author, "fragments": [{"text": text}]}

    with Backend(respond) as glean:
        simulator = Simulator(OpenAITarget(f"{glean.url}/v1", "sim-model", policy=FAST), PERSONA)
        for target in (GleanTarget(glean.url, agent_id="a1", policy=FAST),
                       GleanTarget(glean.url, workflow_id="w1", policy=FAST)):  # fmt: skip
            spans_to, _ = tracer()
            run_eval([conversation_case(3)], target, HeuristicJudge(), spans_to, agent="a", dataset="d",
                     simulator=simulator)  # fmt: skip
    agent = [c.body["messages"] for c in glean.on("/rest/api/v1/agents/runs/wait")]
    assert agent == [
        [said("USER", QUERY)],
        [said("USER", QUERY), said("GLEAN_AI", "A1"), said("USER", "Tuesday")],
        [said("USER", QUERY), said("GLEAN_AI", "A1"), said("USER", "Tuesday"), said("GLEAN_AI", "A2"),
         said("USER", "Morning")],
    ]  # fmt: skip
    workflow = [c.body["messages"] for c in glean.on("/rest/api/v1/runworkflow")]
    assert workflow == [
        [wrote("USER", QUERY)],
        [wrote("USER", "Tuesday"), wrote("GLEAN_AI", "W1"), wrote("USER", QUERY)],
        [wrote("USER", "Morning"), wrote("GLEAN_AI", "W2"), wrote("USER", "Tuesday"), wrote("GLEAN_AI", "W1"),
         wrote("USER", QUERY)],
    ]  # fmt: skip
