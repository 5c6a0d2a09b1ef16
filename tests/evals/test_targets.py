"""Agent targets against local fake servers: answers, tool calls, retries on 429/5xx, timeouts,
malformed responses, and the python target in process."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from core.errors import TargetError
from core.httpclient import RetryPolicy
from evals.datasets import Case
from evals.targets import TargetResult, ToolCall
from evals.targets.glean import GleanTarget
from evals.targets.http import JsonHttpTarget
from evals.targets.openai import OpenAITarget
from evals.targets.python import PythonTarget
from evals.targets.specs import from_spec
from tests.helpers.fake_http import FakeServer, Reply

FAST = RetryPolicy(timeout=0.5, retries=2, backoff=0.01, max_backoff=0.05)
CASE = Case("c1", "How do I file expenses?", fields={"region": "EU"})


def answer(result: TargetResult) -> tuple[object, ...]:
    return (result.output, result.tool_calls, result.citations, result.steps, result.trace_id, result.error,
            result.attempts)  # fmt: skip


def test_openai_answer_tool_calls_and_request() -> None:
    with FakeServer() as fake:
        fake.script("/v1/chat/completions", Reply(body={"choices": [{"message": {
            "content": "Use Concur.",
            "tool_calls": [{"function": {"name": "search", "arguments": '{"q": "expenses"}'}}],
        }}]}))  # fmt: skip
        target = OpenAITarget(fake.url + "/v1", "gpt-4o", api_key="sk-test", policy=FAST)
        result = target.invoke(CASE)
        assert answer(result) == (
            "Use Concur.",
            (ToolCall("search", '{"q": "expenses"}'),),
            (),
            (),
            None,
            None,
            1,
        )
        (seen,) = fake.seen
        assert seen.headers["Authorization"] == "Bearer sk-test"
        assert seen.body == {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "How do I file expenses?\n\nInputs: {'region': 'EU'}"}],
        }


def test_retries_on_429_and_503_then_succeeds() -> None:
    with FakeServer() as fake:
        fake.script(
            "/chat/completions",
            Reply(429, {"error": "slow down"}, {"Retry-After": "0"}),
            Reply(503, {"error": "busy"}),
            Reply(body={"choices": [{"message": {"content": "ok"}}]}),
        )
        result = OpenAITarget(fake.url, "m", policy=FAST).invoke(CASE)
        assert (result.output, result.error, result.attempts) == ("ok", None, 3)
        assert len(fake.seen) == 3


def test_gives_up_after_the_retries_and_does_not_retry_400() -> None:
    with FakeServer() as fake:
        fake.script("/chat/completions", Reply(500, {"error": "down"}))
        result = OpenAITarget(fake.url, "m", policy=FAST).invoke(CASE)
        assert (result.output, result.error, result.attempts) == (None, 'HTTP 500: {"error": "down"}', 3)
        fake.script("/chat/completions", Reply(400, {"error": "bad"}))
        result = OpenAITarget(fake.url, "m", policy=FAST).invoke(CASE)
        assert (result.error, result.attempts) == ('HTTP 400: {"error": "bad"}', 1)


def test_timeout_and_malformed_responses_are_errors_not_exceptions() -> None:
    with FakeServer() as fake:
        fake.script("/chat/completions", Reply(body={"choices": []}, delay=1.0))
        policy = RetryPolicy(timeout=0.2, retries=1, backoff=0.01)
        result = OpenAITarget(fake.url, "m", policy=policy).invoke(CASE)
        assert (result.output, result.error, result.attempts) == (None, "timed out after 0.2s", 2)
        fake.script("/chat/completions", Reply(body={"choices": []}))
        assert OpenAITarget(fake.url, "m", policy=FAST).invoke(CASE).error == "malformed response: no choices"
        fake.script("/chat/completions", Reply(raw=b"<html>"))
        assert (
            OpenAITarget(fake.url, "m", policy=FAST).invoke(CASE).error
            == "HTTP 200: the response is not JSON"
        )


def test_glean_agent_api_forced_form_sends_the_fields_and_the_query() -> None:
    with FakeServer() as fake:
        fake.script("/rest/api/v1/agents/runs/wait", Reply(body={"messages": [
            {"role": "USER", "content": [{"text": "How do I file expenses?"}]},
            {"role": "GLEAN_AI", "content": [{"text": "Open Concur. "}, {"text": "Attach receipts."}]},
        ]}))  # fmt: skip
        target = GleanTarget(fake.url, agent_id="agt_1", api_key="glean-key", policy=FAST, mode="form")
        result = target.invoke(CASE)
        assert answer(result) == ("Open Concur. Attach receipts.", (), (), (), None, None, 1)
        assert len(fake.seen) == 1  # no schema lookup
        assert fake.seen[0].body == {
            "agent_id": "agt_1",
            "input": {"region": "EU", "query": "How do I file expenses?"},
        }
        assert fake.seen[0].headers["Authorization"] == "Bearer glean-key"


def test_glean_workflow_api_keeps_trace_tools_citations_and_steps() -> None:
    with FakeServer() as fake:
        fake.script("/rest/api/v1/runworkflow", Reply(body={
            "messages": [
                {"author": "GLEAN_AI", "messageType": "UPDATE", "fragments": [{"text": "Searching policies"}]},
                {"author": "GLEAN_AI", "messageType": "UPDATE", "fragments": [
                    {"action": {"metadata": {"name": "Glean Search"}, "parameters": {"query": "expenses"}}}]},
                {"author": "GLEAN_AI", "messageType": "CONTENT", "fragments": [
                    {"text": "File it in Concur."},
                    {"citation": {"sourceDocument": {"url": "https://wiki/expenses", "title": "Expenses"}}}]},
            ],
            "workflowTraceId": "wf-trace-9",
        }))  # fmt: skip
        result = GleanTarget(fake.url, workflow_id="wf_1", policy=FAST).invoke(CASE)
        assert answer(result) == (
            "File it in Concur.", (ToolCall("Glean Search", '{"query":"expenses"}'),), ("https://wiki/expenses",),
            ("Searching policies",), "wf-trace-9", None, 1,
        )  # fmt: skip
        assert fake.seen[0].body == {
            "workflowId": "wf_1", "fields": {"region": "EU"}, "enableTrace": True,
            "messages": [{"author": "USER", "fragments": [{"text": "How do I file expenses?"}]}],
        }  # fmt: skip
        fake.script("/rest/api/v1/runworkflow", Reply(body={"agentTraceInfo": {"traceId": "t"}}))
        assert GleanTarget(fake.url, workflow_id="wf_1", policy=FAST).invoke(CASE).error == (
            "malformed response: no messages"
        )


def test_http_target_template_and_path() -> None:
    with FakeServer() as fake:
        fake.script("/ask", Reply(body={"data": {"answers": [{"text": "42"}]}}))
        target = JsonHttpTarget(
            fake.url + "/ask", {"q": "{query}", "meta": {"case": "{id}"}, "inputs": "{fields}"},
            "data.answers.0.text", policy=FAST,
        )  # fmt: skip
        assert target.invoke(CASE).output == "42"
        assert fake.seen[0].body == {
            "q": "How do I file expenses?",
            "meta": {"case": "c1"},
            "inputs": {"region": "EU"},
        }
        target.response_path = "data.missing"
        assert target.invoke(CASE).error == "malformed response: no 'data.missing' in the response"


def agent(query: str, fields: dict[str, object]) -> object:
    if query == "boom":
        raise RuntimeError("tool exploded")
    if query == "dict":
        return {"output": "done", "tool_calls": [{"name": "lookup", "arguments": {"id": 1}, "output": "row"}],
                "citations": ["doc-1"], "trace_id": "abc"}  # fmt: skip
    return f"{query} / {json.dumps(fields)}"


def test_python_target_and_specs() -> None:
    target = from_spec("python:tests.evals.test_targets:agent")
    assert target.invoke(CASE).output == 'How do I file expenses? / {"region": "EU"}'
    result = target.invoke(Case("d", "dict"))
    assert answer(result) == (
        "done",
        (ToolCall("lookup", '{"id":1}', "row"),),
        ("doc-1",),
        (),
        "abc",
        None,
        1,
    )
    assert target.invoke(Case("b", "boom")).error == "RuntimeError: tool exploded"
    for spec, message in [
        ("python:nope", "python target 'nope': expected pkg.module:function or file.py:function"),
        ("python:tests.evals.test_targets:missing", "python target 'tests.evals.test_targets:missing': "
         "tests.evals.test_targets has no callable missing"),
        ("openai:http://x", "target 'openai:http://x': name the model after '#', e.g. openai:URL#gpt-4o"),
        ("glean:ftp://x#a", "target 'glean:ftp://x#a': 'ftp://x' is not an http(s) URL"),
        ("bedrock:x", "target 'bedrock:x': expected one of python:…, openai:…, glean:…, http:…"),
    ]:  # fmt: skip
        with pytest.raises(TargetError) as info:
            from_spec(spec)
        assert str(info.value) == message
    assert from_spec("glean:http://g#workflow:wf").name == "glean:wf"
    assert from_spec("http:http://x").name == "http:http://x"


AGENT_SOURCE = "def answer(query, fields):\n    return 'echo: ' + query\n"


def test_a_python_target_in_the_current_directory_needs_no_pythonpath(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cwd_agent_mod.py").write_text(AGENT_SOURCE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "cwd_agent_mod", raising=False)
    target = from_spec("python:cwd_agent_mod:answer")
    assert target.invoke(Case("q", "hello")).output == "echo: hello"
    assert sys.path[0] == str(tmp_path)


def test_a_python_target_may_name_a_file(tmp_path: Path) -> None:
    (tmp_path / "file_agent.py").write_text(AGENT_SOURCE)
    target = from_spec(f"python:{tmp_path / 'file_agent.py'}:answer")
    assert target.invoke(Case("q", "hi")).output == "echo: hi"
    with pytest.raises(TargetError) as info:
        from_spec(f"python:{tmp_path / 'absent.py'}:answer")
    assert str(info.value).startswith(f"python target '{tmp_path / 'absent.py'}:answer': cannot import ")


def stepping(query: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A python target reporting its steps: a text, a step calling a tool, a failing step."""
    return {"output": "ok", "steps": [
        "Plan", {"name": "Search", "text": "Searching", "tool": "search", "arguments": {"q": "x"}, "output": "found"},
        {"text": "Failed", "status": "error"},
    ]}  # fmt: skip


def test_a_python_target_reports_structured_steps() -> None:
    from evals.runner import span_count
    from evals.targets import Step

    result = PythonTarget("tests.evals.test_targets:stepping").invoke(CASE)
    search = ToolCall("search", '{"q":"x"}', "found")
    assert (result.steps, result.tool_calls) == (("Plan", "Searching", "Failed"), (search,))
    assert result.reasoning == (
        Step("Plan", "Plan"), Step("Search", "Searching", search), Step("Failed", "Failed", None, "error"),
    )  # fmt: skip
    assert span_count(result) == 4  # the run and its three steps (the search is the second)
