"""``capture_text: false`` stores no text people wrote or models answered, anywhere (issue 12, item 10).

One request carries a distinct secret in every place a convention puts message content (the table
in the README's "Conventions the normaliser reads"); it is stored through the real pipelines
(normalize, classify, the Parquet exporter, run partials) with uncompressed Parquet, so a stored
secret would show in the files' bytes. With text captured every secret is found there (the test
can fail); with ``capture_text: false`` none is, while errors and the messages' non-content fields
are kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from receiver.otlp.otlp_json import parse_json_request
from storage.catalog import connect
from tests.helpers.store import store_request
from tests.processors.test_normalize import otlp_attrs

T0 = 1735689600000000000
TRACE = "5ec2e75ec2e75ec2e75ec2e75ec2e75e"


def secret(place: str) -> str:
    return f"zqsecret[{place}]zq"


# Span attributes that carry content, per convention (value: the secret, or a shape holding it).
ATTRIBUTES: dict[str, Any] = {
    # OpenTelemetry GenAI, current
    "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "%s"}]}]',
    "gen_ai.output.messages": '[{"role": "assistant", "parts": [{"type": "text", "content": "%s"}]}]',
    "gen_ai.system_instructions": '[{"type": "text", "content": "%s"}]',
    "gen_ai.tool.call.arguments": '{"q": "%s"}',
    "gen_ai.tool.call.result": '{"r": "%s"}',
    # pre-1.37 and OpenLLMetry's flattened messages
    "gen_ai.prompt": "%s",
    "gen_ai.completion": "%s",
    "gen_ai.prompt.0.content": "%s",
    "gen_ai.completion.0.content": "%s",
    "gen_ai.completion.0.tool_calls.0.arguments": '{"q": "%s"}',
    "llm.prompts.0.content": "%s",
    "llm.completions.0.content": "%s",
    # OpenInference
    "input.value": "%s",
    "output.value": "%s",
    "llm.input_messages.0.message.content": "%s",
    "llm.input_messages.1.message.contents.0.message_content.text": "%s",
    "llm.output_messages.0.message.content": "%s",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"q": "%s"}',
    "llm.prompts": ["%s"],
    "llm.prompt_template.variables": '{"city": "%s"}',
    "retrieval.documents.0.document.content": "%s",
    "reranker.query": "%s",
    "reranker.input_documents.0.document.content": "%s",
    "reranker.output_documents.0.document.content": "%s",
    "embedding.embeddings.0.embedding.text": "%s",
    # OpenLLMetry / Traceloop, its MCP instrumentation
    "traceloop.entity.input": '{"args": ["%s"], "kwargs": {}}',
    "traceloop.entity.output": '"%s"',
    "mcp.response.value": '{"content": [{"type": "text", "text": "%s"}]}',
    # Langfuse
    "langfuse.observation.input": '{"args": ["%s"], "kwargs": {}}',
    "langfuse.observation.output": "%s",
    "langfuse.trace.input": "%s",
    "langfuse.trace.output": "%s",
    # Glean-shaped
    "glean.prompt": "%s",
    "glean.response": "%s",
    "glean.search.query": "%s",
    "glean.run.input": "%s",
    "glean.run.output": "%s",
    # a deployment's own name, mapped to input_text in the config
    "corp.question": "%s",
}
# Events that carry messages: (event name, attribute holding the text).
EVENTS = (
    ("gen_ai.system.message", "content"),
    ("gen_ai.user.message", "content"),
    ("gen_ai.assistant.message", "content"),
    ("gen_ai.tool.message", "content"),
    ("gen_ai.choice", "message"),
    ("gen_ai.content.prompt", "gen_ai.prompt"),
    ("gen_ai.content.completion", "gen_ai.completion"),
    ("gen_ai.client.inference.operation.details", "gen_ai.input.messages"),
)
KEPT_ERROR = "zqkept-error-zq"  # an exception's message is kept: failures are classified by it


def with_secret(value: Any, place: str) -> Any:
    if isinstance(value, list):
        return [with_secret(v, place) for v in value]
    return value % secret(place)


def request() -> bytes:
    """One trace: an agent span with every content attribute, a chat span with every message
    event and an exception event."""
    attrs = {key: with_secret(value, key) for key, value in ATTRIBUTES.items()}
    attrs |= {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "support-bot",
        "gen_ai.completion.0.finish_reason": "stop",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup_inventory",
    }
    events = [
        {
            "name": name,
            "timeUnixNano": str(T0 + i),
            "attributes": otlp_attrs({key: secret(name), "gen_ai.system": "openai"}),
        }
        for i, (name, key) in enumerate(EVENTS)
    ]
    events.append(
        {
            "name": "exception",
            "timeUnixNano": str(T0 + 99),
            "attributes": otlp_attrs(
                {"exception.type": "openai.InternalServerError", "exception.message": KEPT_ERROR}
            ),
        }
    )
    spans = [
        {
            "traceId": TRACE,
            "spanId": "5ec2e75ec2e70001",
            "name": "invoke_agent support-bot",
            "startTimeUnixNano": str(T0),
            "endTimeUnixNano": str(T0 + 5_000_000),
            "attributes": otlp_attrs(attrs),
        },
        {
            "traceId": TRACE,
            "spanId": "5ec2e75ec2e70002",
            "parentSpanId": "5ec2e75ec2e70001",
            "name": "chat gpt-4o",
            "startTimeUnixNano": str(T0 + 1_000_000),
            "endTimeUnixNano": str(T0 + 2_000_000),
            "attributes": otlp_attrs({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}),
            "events": events,
            "status": {"code": 2, "message": "model failed"},
        },
    ]
    doc = {
        "resourceSpans": [
            {
                "resource": {"attributes": otlp_attrs({"service.name": "bot"})},
                "scopeSpans": [{"spans": spans}],
            }
        ]
    }
    payload: bytes = parse_json_request(orjson.dumps(doc)).SerializeToString()
    return payload


def store(root: Path, capture_text: bool) -> Path:
    data = root / "data"
    config = root / "agentwatch.yaml"
    config.write_text(
        f"storage:\n  data_dir: {data}\n"
        "processors:\n  normalize:\n"
        f"    capture_text: {'true' if capture_text else 'false'}\n"
        "    attributes:\n      input_text: [corp.question]\n"
        "exporters:\n  parquet:\n    compression: none\n"  # stored text shows in the bytes
    )
    assert store_request(config, request(), 2) == 2
    return data


def stored_bytes(data: Path) -> bytes:
    files = sorted(p for p in data.rglob("*") if p.is_file())
    assert [p for p in files if p.suffix == ".parquet"]
    return b"".join(p.read_bytes() for p in files)


PLACES = [*ATTRIBUTES, *(name for name, _ in EVENTS)]


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return stored_bytes(store(tmp_path_factory.mktemp("captured"), capture_text=True))


@pytest.fixture(scope="module")
def redacted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return store(tmp_path_factory.mktemp("redacted"), capture_text=False)


@pytest.mark.parametrize("place", PLACES)
def test_with_text_captured_every_secret_is_stored(captured: bytes, place: str) -> None:
    """The control: each place really reaches storage when text is captured."""
    assert secret(place).encode() in captured


def test_capture_text_false_stores_no_secret_in_any_file(redacted: Path) -> None:
    found = sorted({place for place in PLACES if secret(place).encode() in stored_bytes(redacted)})
    assert found == []
    assert b"zqsecret" not in stored_bytes(redacted)


def test_capture_text_false_keeps_errors_and_what_describes_the_messages(redacted: Path) -> None:
    con = connect(redacted)
    try:
        rows = con.execute(
            "SELECT span_id, input_text, output_text, error_type, error_message, attributes, events "
            "FROM spans ORDER BY span_id"
        ).fetchall()
    finally:
        con.close()
    (agent_id, agent_in, agent_out, _, _, agent_attrs, _), chat = rows
    assert (agent_id, agent_in, agent_out) == ("5ec2e75ec2e70001", None, None)
    assert orjson.loads(agent_attrs) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "support-bot",
        "gen_ai.completion.0.finish_reason": "stop",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup_inventory",
    }
    assert chat[1:5] == (None, None, "openai.InternalServerError", KEPT_ERROR)
    assert [event["name"] for event in orjson.loads(chat[6])] == ["exception"]
    assert KEPT_ERROR.encode() in stored_bytes(redacted)
