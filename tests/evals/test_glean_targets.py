"""Glean targets as Seer drives them, against a fake Glean on loopback that records every call:
form or chat agents detected from the agent's schemas (``GET /agents/{id}/schemas``) and run
with exactly the body each needs; ``usage`` from ``/agents/runs/wait`` in the agent's side of
the ledger; the reasoning steps and citations as child spans and attributes of the case's
``agent_run`` span, read back from the ``spans`` view; and the model set a Glean judge asks for."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentwatch.cli import main
from agentwatch.config import parse_config
from core.errors import ConfigError
from core.httpclient import RetryPolicy
from evals.config import EvalsConfig, JudgeConfig, TargetConfig
from evals.datasets import Case
from evals.judges.factory import build_judge
from evals.judges.heuristic import HeuristicJudge
from evals.judges.ledger import Pricer
from evals.runner import run_eval, store
from evals.targets import Step, TargetResult, ToolCall
from evals.targets.glean import GleanTarget, agent_kind, timestamp_ns
from evals.targets.specs import resolve_target
from processors.cost.config import Config as CostConfig
from processors.cost.config import ModelPrice
from storage.catalog import connect
from tests.evals.fakes import Backend, Call, verdict

TRACER = TracerProvider().get_tracer("test")
FAST = RetryPolicy(timeout=5, retries=1, backoff=0.01, max_backoff=0.05)
RUN = "/rest/api/v1/agents/runs/wait"
QUERY = "How do I file expenses?"


def schemas_of(agent_id: str, input_schema: dict[str, Any]) -> dict[str, Any]:
    """Glean's answer to GET /agents/{id}/schemas (its documented shape)."""
    return {"agent_id": agent_id, "input_schema": input_schema, "output_schema": {}}


def answer(text: str, **extra: Any) -> dict[str, Any]:
    """An /agents/runs/wait answer as Glean documents it: {run, messages}, plus ``extra``."""
    return {"run": {"agent_id": "a", "status": "success"},
            "messages": [{"role": "GLEAN_AI", "content": [{"text": text, "type": "text"}]}], **extra}  # fmt: skip


def glean(schemas: dict[str, dict[str, Any]], runs: dict[str, Any] | None = None) -> Backend:
    """A fake Glean: the schemas of each agent (GET), and each query's answer (POST runs/wait)."""

    def respond(call: Call) -> tuple[int, Any]:
        found = re.fullmatch(r"/rest/api/v1/agents/([^/]+)/schemas", call.path)
        if call.method == "GET" and found:
            agent = found.group(1)
            return (200, schemas[agent]) if agent in schemas else (404, {"message": "no such agent"})
        if call.method == "POST" and call.path == RUN:
            body = call.body
            query = (
                (body.get("input") or {}).get("Question")
                or (body.get("input") or {}).get("query")
                or (body["messages"][0]["content"][0]["text"] if body.get("messages") else "")
            )
            return 200, (runs or {}).get(query, answer("Open Concur."))
        return 404, {"error": f"no such path {call.method} {call.path}"}

    return Backend(respond)


# -- form or chat, from the agent's schemas --------------------------------------------------------


FORM = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "properties": {"Region": {"type": "string"}, "query": {"type": "string"}, "Notes": {"type": "string"}},
        "required": ["Region", "query"]}  # fmt: skip


def test_a_form_agent_is_run_with_every_field_of_its_form() -> None:
    cases = [Case("c1", QUERY, fields={"Region": "EU", "Unused": 1}), Case("c2", "Where are receipts?")]
    with glean({"agt_form": schemas_of("agt_form", FORM)}) as fake:
        target = GleanTarget(fake.url, agent_id="agt_form", api_key="glean-key", policy=FAST, concurrency=1)
        results = [target.invoke(case) for case in cases]
    assert [r.output for r in results] == ["Open Concur.", "Open Concur."]
    # One schema lookup for the target, then one run per case.
    assert [(c.method, c.path, c.body) for c in fake.calls] == [
        ("GET", "/rest/api/v1/agents/agt_form/schemas", None),
        ("POST", RUN, {"agent_id": "agt_form", "input": {"Region": "EU", "query": QUERY, "Notes": ""}}),
        ("POST", RUN, {"agent_id": "agt_form", "input": {"Region": "", "query": "Where are receipts?", "Notes": ""}}),
    ]  # fmt: skip
    assert {c.headers["Authorization"] for c in fake.calls} == {"Bearer glean-key"}


def test_a_chat_agent_is_run_with_the_query_as_a_message() -> None:
    with glean({"agt_chat": schemas_of("agt_chat", {})}) as fake:
        result = GleanTarget(fake.url, agent_id="agt_chat", policy=FAST).invoke(
            Case("c1", QUERY, fields={"x": 1})
        )
    assert result.output == "Open Concur." and result.error is None
    assert [(c.method, c.path, c.body) for c in fake.calls] == [
        ("GET", "/rest/api/v1/agents/agt_chat/schemas", None),
        ("POST", RUN, {"agent_id": "agt_chat",
                       "messages": [{"role": "USER", "content": [{"text": QUERY, "type": "text"}]}]}),
    ]  # fmt: skip


def test_a_form_of_one_field_gets_the_query_and_messages_alone_is_a_chat_input() -> None:
    one = {"properties": {"Question": {"type": "string"}}, "type": "object"}
    chat_shaped = {"properties": {"messages": {"type": "array"}}, "type": "object"}
    with glean({"one": schemas_of("one", one), "msgs": schemas_of("msgs", chat_shaped)}) as fake:
        GleanTarget(fake.url, agent_id="one", policy=FAST).invoke(Case("c1", QUERY))
        GleanTarget(fake.url, agent_id="msgs", policy=FAST).invoke(Case("c1", QUERY))
    assert [c.body for c in fake.calls if c.method == "POST"] == [
        {"agent_id": "one", "input": {"Question": QUERY}},
        {"agent_id": "msgs", "messages": [{"role": "USER", "content": [{"text": QUERY, "type": "text"}]}]},
    ]
    assert agent_kind({"agent_id": "x"}).mode == "chat"  # no input_schema: no form
    assert agent_kind([]).problem == "the schemas response is not a JSON object"


def test_a_run_that_ended_in_error_is_the_cases_error() -> None:
    failed = {**answer("I could not finish."), "run": {"agent_id": "agt", "status": "error"}}
    with glean({"agt": schemas_of("agt", {})}, {QUERY: failed}) as fake:
        result = GleanTarget(fake.url, agent_id="agt", policy=FAST).invoke(Case("c1", QUERY))
    assert (result.output, result.error) == ("I could not finish.", "the agent's run ended with status error")


def test_the_config_can_force_the_mode_without_a_lookup() -> None:
    with glean({}) as fake:
        evals = EvalsConfig(targets={
            "as-chat": TargetConfig(spec=f"glean:{fake.url}#agt_1", mode="chat"),
            "as-form": TargetConfig(spec=f"glean:{fake.url}#agt_1", mode="form"),
        })  # fmt: skip
        assert evals.validate() == []
        for name in ("as-chat", "as-form"):
            resolve_target(name, evals).invoke(Case("c1", QUERY, fields={"Region": "EU"}))
    assert [(c.method, c.body) for c in fake.calls] == [
        ("POST", {"agent_id": "agt_1", "messages": [{"role": "USER", "content": [{"text": QUERY, "type": "text"}]}]}),
        ("POST", {"agent_id": "agt_1", "input": {"Region": "EU", "query": QUERY}}),
    ]  # fmt: skip


def test_a_schema_lookup_that_fails_is_every_cases_error_after_one_lookup() -> None:
    with glean({}) as fake:
        target = GleanTarget(fake.url, agent_id="ghost", policy=FAST)
        results = [target.invoke(Case(f"c{i}", QUERY)) for i in (1, 2)]
    assert [r.error for r in results] == [
        'the agent\'s schemas could not be read: HTTP 404: {"message": "no such agent"}'
    ] * 2
    assert [(c.method, c.path) for c in fake.calls] == [("GET", "/rest/api/v1/agents/ghost/schemas")]


def test_mode_and_model_set_config_errors_name_the_key(tmp_path: Path) -> None:
    config = tmp_path / "agentwatch.yaml"
    config.write_text("""evals:
  targets:
    bot: {spec: "openai:http://x/v1#m", mode: chat}
    flow: {spec: "glean:http://g#workflow:wf", mode: form}
    odd: {spec: "glean:http://g#a", mode: voice}
  judges:
    g1: {type: glean, url: http://g, model_set: turbo}
    g2: {type: glean, url: http://g, model_set: fast, agent: ADVANCED}
    g3: {type: glean, url: http://g, agent: wizard}
    o: {type: openai, url: http://o/v1, model: m, model_set: FAST}
""")
    with pytest.raises(ConfigError) as raised:
        parse_config(config.read_text(), str(config))
    said = str(raised.value)
    for problem in [
        "evals.targets.bot.mode: only a glean agent target (glean:URL#agent_id) has one, not 'openai:http://x/v1#m'",
        "evals.targets.flow.mode: only a glean agent target (glean:URL#agent_id) has one, not "
        "'glean:http://g#workflow:wf'",
        "evals.judges.g1.model_set: 'turbo' is not one of FAST, ADVANCED, AUTO",
        "evals.judges.g2.model_set: 'fast' and agent: 'ADVANCED' differ: set one of them",
        "evals.judges.g3.agent: 'wizard' is not one of DEFAULT, GPT, UNIVERSAL, FAST, ADVANCED, AUTO",
        "evals.judges.o.model_set: only a glean judge has a model set",
    ]:
        assert problem in said, said
    assert "evals.targets.odd.mode" in said


# -- usage tokens in the agent's side of the ledger ------------------------------------------------

PRICES = CostConfig(models={"glean-model": ModelPrice(input=1.0, output=2.0)})


def test_usage_from_runs_wait_lands_in_the_agents_side_of_the_ledger(tmp_path: Path) -> None:
    in_run = {
        "agent_id": "a",
        "usage": {"prompt_tokens": 800, "completion_tokens": 100},
        "model": "glean-model",
    }
    runs = {
        "q1": answer("A1", usage={"input_tokens": 1200, "output_tokens": 300, "model": "glean-model"}),
        "q2": answer("A2", run=in_run),  # usage in run, OpenAI's names
        "q3": answer("A3"),  # no usage: no tokens
    }
    with glean({"agt": schemas_of("agt", {})}, runs) as fake:
        target = GleanTarget(fake.url, agent_id="agt", policy=FAST, concurrency=1)
        cases = [Case("c1", "q1"), Case("c2", "q2"), Case("c3", "q3")]
        run = run_eval(cases, target, HeuristicJudge(), TRACER, agent="a", dataset="d", pricer=Pricer(PRICES))
    assert [(o.result.input_tokens, o.result.output_tokens, o.result.model, o.agent_cost_usd)
            for o in run.outcomes] == [
        (1200, 300, "glean-model", 0.0018),  # 1200 x $1 + 300 x $2 per million
        (800, 100, "glean-model", 0.001),
        (None, None, None, None),
    ]  # fmt: skip
    assert run.agent_usage.as_dict() == {"calls": 3, "input_tokens": 2000, "output_tokens": 400,
                                         "cost_usd": 0.0028}  # fmt: skip
    store(run, tmp_path, "acme")
    con = connect(tmp_path)
    assert con.execute(
        "SELECT agent_input_tokens, agent_output_tokens, agent_cost_usd FROM eval_runs WHERE run_id = $r",
        {"r": run.run_id},
    ).fetchall() == [(2000, 400, 0.0028)]
    assert con.execute(
        "SELECT case_id, agent_input_tokens, agent_output_tokens, agent_cost_usd FROM eval_results ORDER BY case_id"
    ).fetchall() == [("c1", 1200, 300, 0.0018), ("c2", 800, 100, 0.001), ("c3", None, None, None)]


# -- reasoning steps and citations as spans -----------------------------------------------------------


def test_message_times_are_read_in_any_unit_or_iso() -> None:
    ns = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
    assert [timestamp_ns(v) for v in (1_767_225_600, "1767225600.5", 1_767_225_600_000, 1_767_225_600_000_000,
                                      ns, "2026-01-01T00:00:00.250Z", "2026-01-01T00:00:00", "soon", True)] == [
        ns, ns + 500_000_000, ns, ns, ns, ns + 250_000_000, None, None, None,
    ]  # fmt: skip


def workflow_answer(t0: float) -> dict[str, Any]:
    """A workflow run: a reasoning step, a step calling Glean Search, a failing step and the answer
    with two citations, each message with its ts (ISO, then seconds)."""

    def iso(seconds: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d}Z"

    return {
        "workflowTraceId": "wf-trace-1",
        "messages": [
            {"author": "USER", "fragments": [{"text": QUERY}]},
            {"author": "GLEAN_AI", "messageType": "UPDATE", "ts": iso(t0), "fragments": [{"text": "Planning"}]},
            {"author": "GLEAN_AI", "messageType": "UPDATE", "ts": str(t0 + 0.25), "fragments": [
                {"text": "Searching policies"},
                {"action": {"metadata": {"name": "Glean Search"}, "parameters": {"query": "expenses"}}}]},
            {"author": "GLEAN_AI", "messageType": "ERROR", "ts": str(t0 + 1.0),
             "fragments": [{"text": "Jira is unavailable"}]},
            {"author": "GLEAN_AI", "messageType": "CONTENT", "ts": str(t0 + 1.5), "fragments": [
                {"text": "File it in Concur."},
                {"citation": {"sourceDocument": {"id": "doc-1", "url": "https://wiki/expenses", "title": "Expenses"}}},
                {"citation": {"sourceDocument": {"url": "https://wiki/travel"}}}]},
        ],
    }  # fmt: skip


def test_reasoning_steps_and_citations_are_stored_as_child_spans_of_the_case(tmp_path: Path) -> None:
    t0 = float(int(time.time()) - 60)  # a whole second a minute ago: exact in every unit
    with Backend(lambda call: (200, workflow_answer(t0))) as fake:
        data = tmp_path / "data"
        config = tmp_path / "agentwatch.yaml"
        config.write_text(f"""storage: {{data_dir: "{data}"}}
evals:
  targets:
    flow: {{spec: "glean:{fake.url}#workflow:wf_1", api_key: k}}
""")
        cases = tmp_path / "cases.jsonl"
        cases.write_text(json.dumps({"id": "c1", "query": QUERY}) + "\n")
        result = CliRunner().invoke(main, ["eval", "run", "--agent", "expense-bot", "--dataset", str(cases),
                                           "--config", str(config), "--target", "flow"], catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "spans: 4 of 4 stored through the write-ahead log" in result.output
    run_id = re.search(r"eval run (\S+):", result.output).group(1)  # type: ignore[union-attr]
    con = connect(data)
    ((root, citations, target_trace),) = con.execute(
        "SELECT span_id, json_extract_string(attributes, '$.\"agentwatch.citations\"'),"
        " json_extract_string(attributes, '$.\"agentwatch.target_trace_id\"')"
        " FROM spans WHERE eval_run_id = $r AND parent_span_id IS NULL",
        {"r": run_id},
    ).fetchall()
    assert json.loads(citations) == [{"id": "doc-1", "url": "https://wiki/expenses", "title": "Expenses"},
                                     {"url": "https://wiki/travel"}]  # fmt: skip
    assert target_trace == "wf-trace-1"
    ns = int(t0 * 1e9)
    steps = con.execute(
        "SELECT name, operation, tool_name, status, status_message, start_time_unix_nano - $t,"
        " end_time_unix_nano - $t, json_extract_string(attributes, '$.\"agentwatch.step.index\"'),"
        " json_extract_string(attributes, '$.\"agentwatch.step.text\"'), output_text, parent_span_id = $p"
        " FROM spans WHERE eval_run_id = $r AND parent_span_id IS NOT NULL ORDER BY start_time_unix_nano",
        {"r": run_id, "t": ns, "p": root},
    ).fetchall()
    assert steps == [
        ("reasoning_step Planning", "other", None, "unset", None, 0, 250_000_000, "1", "Planning", "Planning", True),
        ("execute_tool Glean Search", "tool", "Glean Search", "unset", None, 250_000_000, 1_000_000_000, "2",
         "Searching policies", None, True),
        ("reasoning_step Jira is unavailable", "other", None, "error", "Jira is unavailable", 1_000_000_000,
         1_500_000_000, "3", "Jira is unavailable", "Jira is unavailable", True),
    ]  # fmt: skip
    assert con.execute(
        "SELECT bool_and(synthetic), count(DISTINCT eval_case_id), min(eval_case_id) FROM spans WHERE eval_run_id = $r",
        {"r": run_id},
    ).fetchall() == [(True, 1, "c1")]


class Answers:
    """A target that answers every case with one result."""

    name, concurrency = "fixed", 1

    def __init__(self, result: TargetResult) -> None:
        self.result = result

    def invoke(self, case: Case) -> TargetResult:
        return self.result

    def close(self) -> None:
        return None


def test_a_tool_call_no_step_made_keeps_its_own_span() -> None:
    from evals.runner import span_count

    call, other = ToolCall("search", "{}"), ToolCall("lookup", '{"id":1}')
    long = "Thinking\n  about " + "x" * 100
    result = TargetResult(
        "ok", 1.0, (call, other), reasoning=(Step("Searching", "Searching", call), Step(long))
    )
    assert span_count(result) == 4  # the run, the two steps (one of them the call), the other call
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    run_eval(
        [Case("c1", QUERY)],
        Answers(result),
        HeuristicJudge(),
        provider.get_tracer("t"),
        agent="a",
        dataset="d",
    )
    assert [
        (s.name, (s.attributes or {}).get("gen_ai.tool.name")) for s in exporter.get_finished_spans()
    ] == [
        ("execute_tool search", "search"),
        ("reasoning_step Thinking about " + "x" * 65, None),
        ("execute_tool lookup", "lookup"),
        ("agent_run", None),
    ]


# -- the model set a Glean judge asks for ------------------------------------------------------------


def test_a_glean_judge_sends_its_model_set_as_the_chat_agent() -> None:
    def respond(call: Call) -> tuple[int, Any]:
        text = verdict({"response_quality": "good", "hallucination_risk": "low"}[call.dimension or ""])
        return 200, {
            "messages": [{"author": "GLEAN_AI", "messageType": "CONTENT", "fragments": [{"text": text}]}]
        }

    with Backend(respond) as fake:
        evals = EvalsConfig(
            judges={"g": JudgeConfig(type="glean", url=fake.url, api_key="gk", model_set="fast")}
        )
        assert evals.validate() == []
        judgement = build_judge("g", evals).judge(Case("c1", QUERY), TargetResult("Use Concur.", 1.0))
    assert [(c.path, c.dimension) for c in fake.calls] == [
        ("/rest/api/v1/chat", "response_quality"), ("/rest/api/v1/chat", "hallucination_risk"),
    ]  # fmt: skip
    first = fake.calls[0].body
    assert {k: v for k, v in first.items() if k != "messages"} == {
        "stream": False, "saveChat": False, "agentConfig": {"agent": "FAST"},
    }  # fmt: skip
    assert [(m["author"], m["messageType"]) for m in first["messages"]] == [("USER", "CONTENT")]
    assert judgement.judge_model == "glean:fast"
    assert [(c.model, c.input_tokens) for c in judgement.calls] == [("glean:fast", None)] * 2
    assert JudgeConfig(type="glean", url="http://g", model_set="advanced", agent="advanced").validate() == []
