"""The normalize processor: every convention's fixture → exact canonical rows.

Fixtures live in tests/fixtures/conventions/: ``<convention>.json`` is an OTLP/JSON export
request (hex ids) and ``<case>.expected.json`` lists, per span id, every canonical column that
is not null (plus ``common`` values shared by all spans, and an optional normalize ``config``).
A column an expected file does not mention must be null, so every column is checked.
"""

from __future__ import annotations

import base64
import functools
import json
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest

from core.configmodel import build_config
from core.model import SPAN_COLUMNS, SPAN_SCHEMA, OtlpBatch, OtlpRecord
from processors.normalize import processor as normalize
from processors.normalize.conventions import MAPPABLE_COLUMNS, REDACTED_EVENTS
from processors.normalize.message_text import text_of
from processors.normalize.redact import redacted_attribute
from receiver.otlp.otlp_json import parse_json_request

FIXTURES = Path(__file__).parent.parent / "fixtures" / "conventions"
CONVENTIONS = ("genai_pre137", "genai_current", "mcp", "openinference", "openllmetry", "langfuse", "glean")
JSON_COLUMNS = ("attributes", "resource_attributes", "events")
CANONICAL = tuple(c for c in SPAN_COLUMNS if c not in JSON_COLUMNS)
EXPECTED = sorted(FIXTURES.glob("*.expected.json"))
T0 = 1735689600000000000  # 2025-01-01T00:00:00Z


class Sink:
    def __init__(self) -> None:
        self.batches: list[pa.Table] = []

    def consume(self, batch: pa.Table) -> None:
        self.batches.append(batch)


def make_config(data: dict[str, Any] | None = None) -> normalize.Config:
    config, problems = build_config(normalize.Config, data or {})
    assert problems == []
    assert config is not None
    return config


def fixture_batch(name: str, tenant: str | None = None) -> OtlpBatch:
    request = parse_json_request((FIXTURES / name).read_bytes())
    return OtlpBatch([OtlpRecord.from_request(request, tenant=tenant)])


def rows_by_span(table: pa.Table) -> dict[str, dict[str, Any]]:
    return {row["span_id"]: row for row in table.to_pylist()}


@functools.cache
def expected_case(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(expected document, actual rows by span id) for one expected file."""
    doc = json.loads(path.read_text())
    processor = normalize.create(make_config(doc.get("config")), Sink())
    return doc, rows_by_span(processor.to_table(fixture_batch(doc["fixture"])))


def canonical(row: dict[str, Any]) -> dict[str, Any]:
    out = {c: row[c] for c in CANONICAL}
    out["start_time"] = row["start_time"].isoformat()
    out["end_time"] = row["end_time"].isoformat()
    return out


# --- OTLP/JSON → Python, written independently of the processor's protobuf decoding --------


def json_any(value: dict[str, Any]) -> Any:
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "arrayValue" in value:
        return [json_any(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return json_attrs(value["kvlistValue"].get("values", []))
    if "bytesValue" in value:
        return value["bytesValue"]  # OTLP/JSON already carries bytes as base64
    return None


def json_attrs(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    return {kv["key"]: json_any(kv.get("value", {})) for kv in pairs}


def fixture_spans(name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(resource attributes, span) pairs of a fixture, straight from its JSON."""
    doc = json.loads((FIXTURES / name).read_text())
    return [
        (json_attrs(rs["resource"]["attributes"]), span)
        for rs in doc["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    ]


# --- per-convention fixtures ---------------------------------------------------------------


def test_every_convention_has_a_fixture_and_an_expected_file() -> None:
    fixtures = {p.stem for p in FIXTURES.glob("*.json") if not p.name.endswith(".expected.json")}
    assert fixtures == set(CONVENTIONS)
    expected = {p.name.removesuffix(".expected.json") for p in EXPECTED}
    assert expected == {*CONVENTIONS, "glean_mapped"}


@pytest.mark.parametrize("path", EXPECTED, ids=lambda p: p.name.removesuffix(".expected.json"))
def test_every_span_of_the_fixture_is_expected(path: Path) -> None:
    doc, rows = expected_case(path)
    assert sorted(rows) == sorted(doc["spans"])


CASES = [(path, span_id) for path in EXPECTED for span_id in json.loads(path.read_text())["spans"]]


@pytest.mark.parametrize(
    ("path", "span_id"), CASES, ids=[f"{p.name.removesuffix('.expected.json')}:{s}" for p, s in CASES]
)
def test_canonical_columns(path: Path, span_id: str) -> None:
    doc, rows = expected_case(path)
    expected = {c: None for c in CANONICAL} | doc["common"] | doc["spans"][span_id]
    expected["span_id"] = span_id
    assert canonical(rows[span_id]) == expected


@pytest.mark.parametrize("name", CONVENTIONS)
def test_attributes_resource_attributes_and_events_round_trip(name: str) -> None:
    rows = rows_by_span(normalize.create(make_config(), Sink()).to_table(fixture_batch(f"{name}.json")))
    for resource, span in fixture_spans(f"{name}.json"):
        row = rows[span["spanId"]]
        assert orjson.loads(row["attributes"]) == json_attrs(span["attributes"])
        assert orjson.loads(row["resource_attributes"]) == resource
        if span.get("events"):
            events = [
                {
                    "name": e["name"],
                    "time_unix_nano": int(e["timeUnixNano"]),
                    "attributes": json_attrs(e["attributes"]),
                }
                for e in span["events"]
            ]
            assert orjson.loads(row["events"]) == events
        else:
            assert row["events"] is None


def test_every_any_value_kind_is_kept_as_json() -> None:
    rows = rows_by_span(normalize.create(make_config(), Sink()).to_table(fixture_batch("genai_current.json")))
    attrs = orjson.loads(rows["2000000000000005"]["attributes"])
    assert attrs == {
        "gen_ai.operation.name": "invoke_workflow",
        "app.payload": base64.b64encode(b"hi").decode(),
        "app.empty": None,
        "app.retries": 2,
        "app.flags": [True, 1.5, "x"],
    }
    structured = orjson.loads(rows["2000000000000002"]["attributes"])["gen_ai.input.messages"]
    assert structured[1] == {"role": "user", "parts": [{"type": "text", "content": "Find flights to Paris"}]}
    assert orjson.loads(rows["2000000000000005"]["resource_attributes"])["app.build"] == "AQI="


# --- small synthetic spans -----------------------------------------------------------------


def otlp_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [otlp_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": otlp_attrs(value)}}
    return {"stringValue": value}


def otlp_attrs(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": otlp_value(v)} for k, v in attrs.items()]


def otlp_span(
    span_id: str, name: str = "work", parent: str = "", attrs: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "traceId": "0123456789abcdef0123456789abcdef",
        "spanId": span_id,
        "parentSpanId": parent,
        "name": name,
        "startTimeUnixNano": str(T0),
        "endTimeUnixNano": str(T0 + 1_000_000),
        "attributes": otlp_attrs(attrs or {}),
    }


def table_of(
    spans: list[dict[str, Any]],
    resource: dict[str, Any] | None = None,
    tenant: str | None = None,
    config: dict[str, Any] | None = None,
) -> pa.Table:
    doc = {
        "resourceSpans": [
            {"resource": {"attributes": otlp_attrs(resource or {})}, "scopeSpans": [{"spans": spans}]}
        ]
    }
    request = parse_json_request(orjson.dumps(doc))
    return normalize.create(make_config(config), Sink()).to_table(
        OtlpBatch([OtlpRecord.from_request(request, tenant)])
    )


def one_row(
    attrs: dict[str, Any] | None = None,
    name: str = "work",
    resource: dict[str, Any] | None = None,
    tenant: str | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    span = otlp_span("00000000000000aa", name, attrs=attrs)
    rows: list[dict[str, Any]] = table_of([span], resource, tenant, config).to_pylist()
    assert len(rows) == 1
    return rows[0]


@pytest.mark.parametrize(
    ("token_tenant", "resource", "span_attrs", "config", "tenant"),
    [
        (None, {}, {}, None, "default"),
        ("acme", {"agentwatch.tenant": "other"}, {"tenant": "third"}, None, "acme"),
        (None, {"agentwatch.tenant": "Acme Corp/EU"}, {}, None, "Acme_Corp_EU"),
        (None, {"tenant.id": ".hidden"}, {}, None, "_hidden"),
        (None, {"tenant": "x" * 100}, {}, None, "x" * 64),
        (None, {"agentwatch.tenant": "from-resource"}, {"tenant": "from-span"}, None, "from-span"),
        ("../etc", {}, {}, None, "_._etc"),
        ("", {"agentwatch.tenant": "ignored"}, {}, None, "default"),
        (
            None,
            {"glean.deployment": "acme-prod"},
            {},
            {"attributes": {"tenant": ["glean.deployment"]}},
            "acme-prod",
        ),
        (None, {"tenant": "ünïcode"}, {}, None, "_n_code"),
    ],
)
def test_tenant_override_and_sanitisation(
    token_tenant: str | None,
    resource: dict[str, Any],
    span_attrs: dict[str, Any],
    config: dict[str, Any] | None,
    tenant: str,
) -> None:
    assert one_row(span_attrs, resource=resource, tenant=token_tenant, config=config)["tenant"] == tenant


def test_span_attributes_win_over_resource_attributes_and_resource_fills_gaps() -> None:
    row = one_row({"user.id": "span-user"}, resource={"user.id": "res-user", "agent.id": "res-agent"})
    assert (row["user_id"], row["agent_id"]) == ("span-user", "res-agent")


def test_configured_names_are_tried_before_built_in_names() -> None:
    config = {"attributes": {"user_id": ["corp.user"]}}
    assert (
        one_row({"user.id": "builtin", "corp.user": "configured"}, config=config)["user_id"] == "configured"
    )
    assert one_row({"user.id": "builtin"}, config=config)["user_id"] == "builtin"


def test_non_string_values_of_string_columns_are_stringified() -> None:
    row = one_row({"agent.version": 3, "session.id": True, "agent.id": 1.5, "user.id": ["a", "b"]})
    assert (row["agent_version"], row["session_id"], row["agent_id"], row["user_id"]) == (
        "3",
        "true",
        "1.5",
        '["a","b"]',
    )


def test_text_is_truncated_to_max_text_length() -> None:
    row = one_row(
        {"input.value": "Hello world", "output.value": "Bye", "openinference.span.kind": "LLM"},
        config={"max_text_length": 5},
    )
    assert (row["input_text"], row["output_text"]) == ("Hello", "Bye")
    assert orjson.loads(row["attributes"])["input.value"] == "Hello world"


def test_capture_text_false_redacts_every_text_source() -> None:
    config = make_config({"capture_text": False})
    for name in CONVENTIONS:
        table = normalize.create(config, Sink()).to_table(fixture_batch(f"{name}.json"))
        assert table["input_text"].null_count == table.num_rows
        assert table["output_text"].null_count == table.num_rows
        for row in table.to_pylist():
            kept = orjson.loads(row["attributes"])
            assert [key for key in kept if redacted_attribute(key)] == [], (name, row["span_id"])
            events = orjson.loads(row["events"] or "[]")
            assert [e["name"] for e in events if e["name"] in REDACTED_EVENTS] == [], (name, row["span_id"])
    rows = rows_by_span(normalize.create(config, Sink()).to_table(fixture_batch("genai_pre137.json")))
    # The messages' roles and finish reason stay (they describe, not say); their content goes.
    assert orjson.loads(rows["1000000000000002"]["attributes"]) == {
        "gen_ai.system": "OpenAI",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4",
        "gen_ai.response.model": "gpt-4-0613",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.usage.prompt_tokens": 100,
        "gen_ai.usage.completion_tokens": 20,
        "gen_ai.prompt.0.role": "system",
        "gen_ai.prompt.1.role": "user",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.finish_reason": "stop",
    }
    # Message events go, the exception event stays; a span left without events has none (null).
    assert orjson.loads(rows["1000000000000004"]["events"]) == [
        {
            "name": "exception",
            "time_unix_nano": 1735689603250000000,
            "attributes": {
                "exception.type": "anthropic.RateLimitError",
                "exception.message": "Error code: 429 - rate limited",
                "exception.escaped": False,
            },
        }
    ]
    assert (rows["1000000000000003"]["events"], rows["1000000000000006"]["events"]) == (None, None)
    assert (rows["1000000000000004"]["error_type"], rows["1000000000000004"]["error_message"]) == (
        "anthropic.RateLimitError",
        "Error code: 429 - rate limited",
    )


@pytest.mark.parametrize(
    ("key", "dropped"),
    [
        ("gen_ai.input.messages", True),
        ("gen_ai.prompt.3.content", True),
        ("gen_ai.prompt.3.role", False),
        ("gen_ai.completion.0.tool_calls.0.arguments", True),
        ("gen_ai.completion.0.tool_calls.0.name", False),
        ("gen_ai.completion.0.finish_reason", False),
        ("llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments", True),
        ("llm.output_messages.0.message.tool_calls.0.tool_call.function.name", False),
        ("llm.input_messages.1.message.contents.0.message_content.text", True),
        ("llm.input_messages.1.message.contents.0.message_content.type", False),
        ("llm.prompts", True),
        ("llm.prompts.0.content", True),
        ("retrieval.documents.2.document.content", True),
        ("retrieval.documents.2.document.id", False),
        ("embedding.embeddings.0.embedding.text", True),
        ("embedding.embeddings.0.embedding.vector", False),
        ("tool.parameters", False),  # the tool's JSON schema: a definition, not content
        ("llm.prompt_template.template", False),
        ("llm.prompt_template.variables", True),
        ("langfuse.trace.input", True),
        ("gen_ai.request.model", False),
        ("exception.message", False),
    ],
)
def test_which_attributes_capture_text_false_drops(key: str, dropped: bool) -> None:
    assert redacted_attribute(key) is dropped


@pytest.mark.parametrize(
    ("name", "attrs", "operation", "tool", "agent"),
    [
        ("chat gpt-4o", {}, "chat", None, None),
        ("execute_tool get_time", {}, "tool", "get_time", None),
        ("invoke_agent Planner", {}, "agent_run", None, "Planner"),
        ("embeddings text-embedding-3-small", {}, "embedding", None, None),
        ("tools/call fetch", {}, "mcp", "fetch", None),
        ("mystery", {"gen_ai.request.model": "gpt-4o"}, "chat", None, None),
        ("mystery", {}, "other", None, None),
        (
            "mystery",
            {"gen_ai.operation.name": "create_agent", "gen_ai.agent.name": "A"},
            "agent_run",
            None,
            "A",
        ),
        ("mystery", {"gen_ai.operation.name": "unknown_op"}, "other", None, None),
        ("mystery", {"llm.request.type": "rerank"}, "retrieval", None, None),
        (
            "mystery",
            {"openinference.span.kind": "EVALUATOR", "gen_ai.request.model": "m"},
            "other",
            None,
            None,
        ),
        ("mystery", {"langfuse.observation.type": "guardrail"}, "other", None, None),
        ("chat", {"mcp.method.name": "tools/call", "gen_ai.operation.name": "chat"}, "mcp", None, None),
        ("my-step", {"gen_ai.operation.name": "chat"}, "retrieval", None, None),
        # MCP: a tool call is "mcp", a resource read "retrieval", the rest of MCP "mcp_protocol"
        ("MCP send tools/call fetch", {"mcp.method.name": "tools/call"}, "mcp", "fetch", None),
        ("MCP send tools/call fetch", {}, "mcp", "fetch", None),
        ("MCP handle tools/call fetch", {}, "mcp", "fetch", None),
        ("tools/call", {"mcp.method.name": "tools/call"}, "mcp", None, None),
        ("MCP send initialize", {"mcp.method.name": "initialize"}, "mcp_protocol", None, None),
        ("MCP send ping", {}, "mcp_protocol", None, None),
        ("notifications/cancelled", {}, "mcp_protocol", None, None),
        ("x", {"mcp.method.name": "notifications/message"}, "mcp_protocol", None, None),
        ("prompts/get summarize", {"mcp.method.name": "prompts/get"}, "mcp_protocol", None, None),
        ("resources/read", {"mcp.method.name": "resources/read"}, "retrieval", None, None),
        ("resources/templates/list", {}, "mcp_protocol", None, None),
        ("initialize.mcp", {}, "mcp_protocol", None, None),
        ("tools/call.mcp", {}, "mcp", None, None),
        ("ResponseStreamWriter", {"mcp.request.id": "3"}, "mcp_protocol", None, None),
        ("mcp.client.session", {"traceloop.span.kind": "session"}, "mcp_protocol", None, None),
        ("mcp.server", {"traceloop.span.kind": "server"}, "mcp_protocol", None, None),
        (
            "get_weather.tool",
            {"traceloop.span.kind": "tool", "traceloop.entity.name": "get_weather"},
            "tool",
            "get_weather",
            None,
        ),
        ("initialize", {}, "other", None, None),  # alone, no evidence of MCP
        ("server/health", {}, "other", None, None),
        ("mcp", {"glean.tool.name": "search"}, "mcp", "search", None),
    ],
)
def test_operation_tool_and_agent_fallbacks(
    name: str, attrs: dict[str, Any], operation: str, tool: str | None, agent: str | None
) -> None:
    row = one_row(attrs, name=name, config={"operations": {"my-step": "retrieval"}})
    assert (row["operation"], row["tool_name"], row["agent_name"]) == (operation, tool, agent)


@pytest.mark.parametrize(
    ("raw", "config", "provider"),
    [
        ("AWS.Bedrock", None, "aws_bedrock"),
        ("bedrock", None, "aws_bedrock"),
        ("aws-bedrock", None, "aws_bedrock"),
        ("Azure OpenAI", None, "azure_openai"),
        ("azure.ai.openai", None, "azure_openai"),
        ("gcp.vertex_ai", None, "vertex_ai"),
        ("gcp.gemini", None, "google"),
        ("mistral_ai", None, "mistral"),
        ("x_ai", None, "xai"),
        ("My.Gateway", None, "my_gateway"),
        ("my-gateway", {"my-gateway": "OpenAI"}, "openai"),
        ("openai", {"OpenAI": "openai_proxy"}, "openai_proxy"),
    ],
)
def test_provider_aliases(raw: str, config: dict[str, str] | None, provider: str) -> None:
    row = one_row({"gen_ai.provider.name": raw}, config={"provider_aliases": config or {}})
    assert row["provider"] == provider


@pytest.mark.parametrize(
    ("child", "parent_tokens"),
    [
        ({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 5}, None),
        ({"gen_ai.operation.name": "embeddings", "gen_ai.usage.input_tokens": 5}, None),
        ({"gen_ai.operation.name": "execute_tool"}, 10),
    ],
)
def test_tokens_stay_on_leaf_llm_spans_only(child: dict[str, Any], parent_tokens: int | None) -> None:
    spans = [
        otlp_span(
            "00000000000000a1", "chat", attrs={"gen_ai.usage.input_tokens": 10, "gen_ai.usage.cost": 0.5}
        ),
        otlp_span("00000000000000a2", "child", parent="00000000000000a1", attrs=child),
    ]
    rows = rows_by_span(table_of(spans))
    parent = rows["00000000000000a1"]
    assert parent["input_tokens"] == parent_tokens
    assert parent["cost_usd"] == (None if parent_tokens is None else 0.5)


def test_same_span_id_in_another_trace_is_not_a_child() -> None:
    child = otlp_span(
        "00000000000000a2", "chat", parent="00000000000000a1", attrs={"gen_ai.usage.input_tokens": 1}
    )
    child["traceId"] = "ffffffffffffffffffffffffffffffff"
    spans = [otlp_span("00000000000000a1", "chat", attrs={"gen_ai.usage.input_tokens": 10}), child]
    assert rows_by_span(table_of(spans))["00000000000000a1"]["input_tokens"] == 10


def test_synthetic_and_eval_columns() -> None:
    row = one_row(
        {"agentwatch.synthetic": True, "agentwatch.eval_run_id": "run-1", "agentwatch.eval_case_id": "case-7"}
    )
    assert (row["synthetic"], row["eval_run_id"], row["eval_case_id"]) == (True, "run-1", "case-7")
    assert one_row(resource={"agentwatch.synthetic": "true"})["synthetic"] is True
    assert one_row({"agentwatch.synthetic": "no"})["synthetic"] is False


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ('[{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]}]', "hi"),
        ('{"choices": [{"message": {"role": "assistant", "content": "ok"}}]}', "ok"),
        ('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}', "a\nb"),
        (
            '[{"role": "assistant", "parts": [{"type": "tool_call", "name": "f"}]}]',
            '[{"role": "assistant", "parts": [{"type": "tool_call", "name": "f"}]}]',
        ),
        ('"quoted"', "quoted"),
        ("[draft] not json", "[draft] not json"),
        ({"parts": [{"text": "gemini"}]}, "gemini"),
        ([{"role": "assistant", "content": ""}], ""),
        (42, "42"),
        (None, None),
    ],
)
def test_text_of_message_shapes(value: Any, text: str | None) -> None:
    assert text_of(value) == text


# --- tokens in usage objects (issue 12, item 5) -----------------------------------------------

OPENAI_CHAT_USAGE = {
    "prompt_tokens": 412,
    "completion_tokens": 18,
    "total_tokens": 430,
    "prompt_tokens_details": {"cached_tokens": 384, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0},
}


@pytest.mark.parametrize(
    ("usage", "tokens"),
    [
        # (input, output, cached, total): the input as the GenAI conventions count it (cache reads
        # and writes included), the rest as the provider counts them
        (OPENAI_CHAT_USAGE, (412, 18, 384, 430)),  # OpenAI chat: cached inside the input
        (
            {"input_tokens": 300, "output_tokens": 20, "total_tokens": 320,
             "input_tokens_details": {"cached_tokens": 256}, "output_tokens_details": {"reasoning_tokens": 8}},
            (300, 20, 256, 320),
        ),  # OpenAI Responses
        # Anthropic: cache reads and writes apart from the input, so the input and total add them
        ({"input_tokens": 12, "output_tokens": 30, "cache_read_input_tokens": 1000,
          "cache_creation_input_tokens": 200}, (1212, 30, 1000, 1242)),
        ({"inputTokens": 50, "outputTokens": 10, "totalTokens": 860, "cacheReadInputTokens": 800},
         (850, 10, 800, 860)),  # Bedrock Converse
        ({"inputTokens": 50, "outputTokens": 10, "cacheReadInputTokens": 800, "cacheWriteInputTokens": 5},
         (855, 10, 800, 865)),  # Bedrock without a total
        ({"promptTokenCount": 900, "candidatesTokenCount": 40, "totalTokenCount": 940,
          "cachedContentTokenCount": 512}, (900, 40, 512, 940)),  # Gemini / Vertex AI (REST)
        ({"prompt_token_count": 900, "candidates_token_count": 40, "cached_content_token_count": 512},
         (900, 40, 512, 940)),  # google-genai's Python names
        ({"input_tokens": 70, "output_tokens": 7, "total_tokens": 77,
          "input_token_details": {"cache_read": 64, "cache_creation": 0}}, (70, 7, 64, 77)),  # LangChain
        ({"input": 10, "output": 5, "total": 15, "cache_read_input_tokens": 2}, (12, 5, 2, 15)),  # Langfuse
        ({"input": 8}, (8, None, None, 8)),  # Langfuse's embedding usage
        ({"note": "no counts"}, (None, None, None, None)),
    ],
)  # fmt: skip
def test_usage_details_in_every_providers_shape(
    usage: dict[str, Any], tokens: tuple[int | None, ...]
) -> None:
    row = one_row(
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.usage_details": orjson.dumps(usage).decode(),
        }
    )
    assert (row["input_tokens"], row["output_tokens"], row["cached_tokens"], row["total_tokens"]) == tokens


@pytest.mark.parametrize(
    ("attrs", "written"),
    [
        ({"gen_ai.usage.cache_creation.input_tokens": 2048}, 2048),  # GenAI conventions
        ({"gen_ai.usage.cache_creation_input_tokens": 1024}, 1024),  # OpenLLMetry
        ({"llm.token_count.prompt_details.cache_write": 512}, 512),  # OpenInference
        ({"langfuse.observation.usage_details": orjson.dumps(
            {"input_tokens": 12, "output_tokens": 30, "cache_creation_input_tokens": 200}).decode()}, 200),
        ({"langfuse.observation.usage_details": orjson.dumps(
            {"inputTokens": 5, "outputTokens": 1, "cacheWriteInputTokens": 64}).decode()}, 64),  # Bedrock
        ({"langfuse.observation.usage_details": orjson.dumps(OPENAI_CHAT_USAGE).decode()}, None),
    ],
)  # fmt: skip
def test_cache_writes_are_read_in_every_convention(attrs: dict[str, Any], written: int | None) -> None:
    row = one_row({"langfuse.observation.type": "generation", "gen_ai.usage.input_tokens": 10, **attrs})
    assert row["cache_write_tokens"] == written


def test_token_attributes_win_and_the_usage_object_fills_gaps() -> None:
    row = one_row(
        {
            "langfuse.observation.type": "generation",
            "gen_ai.usage.input_tokens": 400,
            "langfuse.observation.usage_details": orjson.dumps(OPENAI_CHAT_USAGE).decode(),
        }
    )
    assert (row["input_tokens"], row["output_tokens"], row["cached_tokens"], row["total_tokens"]) == (
        400,
        18,
        384,
        430,
    )


@pytest.mark.parametrize(
    ("attrs", "tokens"),
    [
        # no token attribute: a raw provider response in the output gives its usage
        (
            {"langfuse.observation.type": "generation",
             "langfuse.observation.output": orjson.dumps({"id": "r1", "usage": OPENAI_CHAT_USAGE}).decode()},
            (412, 18, 384, 430),
        ),
        (
            {"openinference.span.kind": "LLM",
             "output.value": orjson.dumps({"candidates": [], "usageMetadata": {"promptTokenCount": 5,
                                           "candidatesTokenCount": 2, "totalTokenCount": 7}}).decode()},
            (5, 2, None, 7),
        ),
        # a token attribute is there: the output is not read
        (
            {"openinference.span.kind": "LLM", "llm.token_count.prompt": 3,
             "output.value": orjson.dumps({"usage": OPENAI_CHAT_USAGE}).decode()},
            (3, None, None, 3),
        ),
        # an answer that merely has an "input" key is not a usage object
        (
            {"openinference.span.kind": "LLM", "output.value": '{"input": 3, "output": 4}'},
            (None, None, None, None),
        ),
        # not an LLM span: no tokens
        (
            {"openinference.span.kind": "TOOL", "output.value": orjson.dumps({"usage": OPENAI_CHAT_USAGE}).decode()},
            (None, None, None, None),
        ),
    ],
)  # fmt: skip
def test_usage_of_a_raw_response_in_the_output(attrs: dict[str, Any], tokens: tuple[int | None, ...]) -> None:
    row = one_row(attrs)
    assert (row["input_tokens"], row["output_tokens"], row["cached_tokens"], row["total_tokens"]) == tokens


# --- the model of a failed call (issue 12, item 6) ----------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "model"),
    [
        ({"llm.invocation_parameters": '{"model": "gpt-4o-mini", "temperature": 0}'}, "gpt-4o-mini"),
        ({"llm.invocation_parameters": '{"model_name": "claude-3-5-haiku"}'}, "claude-3-5-haiku"),
        (
            {"llm.invocation_parameters": '{"modelId": "anthropic.claude-3-haiku"}'},
            "anthropic.claude-3-haiku",
        ),
        ({"llm.invocation_parameters": '{"temperature": 0}'}, None),
        ({"llm.invocation_parameters": "not json"}, None),
        # the model attributes win: the response model is what served the call
        (
            {
                "llm.model_name": "gpt-4o-mini-2024-07-18",
                "llm.invocation_parameters": '{"model": "gpt-4o-mini"}',
            },
            "gpt-4o-mini-2024-07-18",
        ),
    ],
)
def test_model_from_the_invocation_parameters(attrs: dict[str, Any], model: str | None) -> None:
    row = one_row({"openinference.span.kind": "LLM", **attrs})
    assert (row["operation"], row["model"]) == ("chat", model)


# --- error types (issue 12, item 8) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "exception_type", "error_type"),
    [
        ({"error.type": "<class 'openai.InternalServerError'>"}, None, "openai.InternalServerError"),
        ({"error.type": "<class 'httpx.ConnectTimeout'>"}, None, "httpx.ConnectTimeout"),
        ({"error.type": "<type 'exceptions.ValueError'>"}, None, "exceptions.ValueError"),
        ({"error.type": " RuntimeError "}, None, "RuntimeError"),
        ({"error.type": "_OTHER"}, "openai.APIConnectionError", "openai.APIConnectionError"),
        ({"error.type": "_OTHER"}, None, "_OTHER"),
        ({"error.type": "InternalServerError"}, "openai.InternalServerError", "InternalServerError"),
        ({}, "<class 'anthropic.RateLimitError'>", "anthropic.RateLimitError"),
        ({"error.type": "500"}, None, "500"),
    ],
)
def test_error_types_are_names(attrs: dict[str, Any], exception_type: str | None, error_type: str) -> None:
    span = otlp_span("00000000000000aa", "chat gpt-4o", attrs={"gen_ai.operation.name": "chat", **attrs})
    span["status"] = {"code": 2, "message": "failed"}
    if exception_type is not None:
        span["events"] = [
            {
                "name": "exception",
                "timeUnixNano": str(T0),
                "attributes": otlp_attrs({"exception.type": exception_type, "exception.message": "boom"}),
            }
        ]
    (row,) = table_of([span]).to_pylist()
    assert row["error_type"] == error_type


# --- text as people wrote it (issue 12, item 7) --------------------------------------------------

WEATHER_CALL = 'get_weather({"city": "Paris"})'


@pytest.mark.parametrize(
    "answer",
    [
        # OpenTelemetry GenAI parts
        [{"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "get_weather",
                                          "arguments": {"city": "Paris"}}], "finish_reason": "tool_call"}],
        # OpenAI chat message (Langfuse's output), and the raw response (OpenInference's output.value)
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}}]},
        {"role": "assistant", "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        # Anthropic content blocks, OpenAI Responses output item, Gemini parts, Bedrock Converse
        [{"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_weather",
                                            "input": {"city": "Paris"}}]}],
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "get_weather",
                                                       "input": {"city": "Paris"}}}]},
    ],
)  # fmt: skip
def test_a_tool_call_answer_reads_the_same_in_every_shape(answer: Any) -> None:
    assert text_of(orjson.dumps(answer).decode(), answer=True) == WEATHER_CALL
    assert text_of(answer, answer=True) == WEATHER_CALL


@pytest.mark.parametrize(
    "attrs",
    [
        {"gen_ai.operation.name": "chat", "gen_ai.output.messages": orjson.dumps(
            [{"role": "assistant", "parts": [{"type": "tool_call", "name": "get_weather",
                                              "arguments": {"city": "Paris"}}]}]).decode()},
        {"openinference.span.kind": "LLM", "llm.output_messages.0.message.role": "assistant",
         "llm.output_messages.0.message.tool_calls.0.tool_call.id": "c1",
         "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "get_weather",
         "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"city":"Paris"}'},
        {"llm.request.type": "chat", "gen_ai.completion.0.role": "assistant",
         "gen_ai.completion.0.finish_reason": "tool_calls", "gen_ai.completion.0.tool_calls.0.id": "c1",
         "gen_ai.completion.0.tool_calls.0.name": "get_weather",
         "gen_ai.completion.0.tool_calls.0.arguments": '{"city": "Paris"}'},
        {"langfuse.observation.type": "generation", "langfuse.observation.output": orjson.dumps(
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {
                "name": "get_weather", "arguments": '{"city": "Paris"}'}}], "content": None}).decode()},
    ],
    ids=["genai", "openinference", "openllmetry", "langfuse"],
)  # fmt: skip
def test_a_tool_call_answer_is_the_same_output_text_in_every_convention(attrs: dict[str, Any]) -> None:
    assert one_row(attrs)["output_text"] == WEATHER_CALL


def test_a_tool_call_answer_in_a_choice_event() -> None:
    span = otlp_span("00000000000000aa", "chat gpt-4o", attrs={"gen_ai.operation.name": "chat"})
    message = {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": "Paris"}'}}]}  # fmt: skip
    span["events"] = [
        {
            "name": "gen_ai.choice",
            "timeUnixNano": str(T0),
            "attributes": otlp_attrs({"index": 0, "message": message}),
        }
    ]
    (row,) = table_of([span]).to_pylist()
    assert row["output_text"] == WEATHER_CALL


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("Here you go.", "Here you go."),
        ([{"role": "assistant", "parts": [{"type": "text", "content": "Checking."},
          {"type": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}},
          {"type": "tool_call", "name": "get_time", "arguments": None}]}],
         f"Checking.\n{WEATHER_CALL}\nget_time()"),
        ({"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "not json"}}]}, "f(not json)"),
        ({"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}, '{"role":"assistant","tool_calls":[{"function":{"arguments":"{}"}}]}'),
    ],
)  # fmt: skip
def test_tool_calls_follow_the_text_of_an_answer(value: Any, text: str) -> None:
    assert text_of(value, answer=True) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        # GenAI: the tool's result sent back is text, like a tool message's content
        ([{"role": "user", "parts": [{"type": "text", "content": "Weather?"}]},
          {"role": "assistant", "parts": [{"type": "tool_call", "name": "get_weather", "arguments": {}}]},
          {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "22 C"}]}],
         "Weather?\n22 C"),
        ([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                        "content": [{"type": "text", "text": "22 C"}]}]}], "22 C"),  # Anthropic
        ([{"type": "function_call_output", "call_id": "c1", "output": "22 C"}], "22 C"),  # OpenAI Responses
        ([{"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                                                          "response": {"temp": 22}}}]}], '{"temp": 22}'),  # Gemini
        ([{"role": "user", "content": [{"toolResult": {"toolUseId": "t1",
                                                       "content": [{"json": {"temp": 22}}]}}]}], '{"temp": 22}'),
    ],
)  # fmt: skip
def test_tool_results_in_a_prompt_are_text(value: Any, text: str) -> None:
    assert text_of(value) == text


MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "first question"},
    {"role": "assistant", "content": "an answer"},
    {"role": "user", "content": [{"type": "text", "text": "the last question"}]},
]


@pytest.mark.parametrize(
    ("wrapper", "entity", "text"),
    [
        ({"args": ["What is OTel?"], "kwargs": {}}, None, "What is OTel?"),
        ({"args": [], "kwargs": {"question": "Q?", "user": "u-1"}}, None, "Q?"),
        ({"args": ["ignored"], "kwargs": {"query": "Q?"}}, None, "Q?"),
        ({"args": [], "kwargs": {"prompt": "P", "input": "I"}}, None, "I"),  # query, question, input, prompt, ...
        ({"args": [], "kwargs": {"messages": MESSAGES}}, None, "the last question"),
        ({"args": [MESSAGES], "kwargs": {}}, None, "the last question"),
        ({"args": [[{"role": "system", "content": "S"}]], "kwargs": {}}, None, "S"),
        ({"args": [], "kwargs": {"sku": "A-113", "count": 2}}, None, '{"sku": "A-113", "count": 2}'),
        ({"args": [{"city": "Paris"}], "kwargs": {}}, None, '{"city": "Paris"}'),
        ({"args": [3], "kwargs": {}}, None, "3"),
        # Traceloop writes a method's self as its class name; the entity name Class.method tells it
        ({"args": ["SupportBot", "Q?"], "kwargs": {}}, "SupportBot.run", "Q?"),
        ({"args": ["SupportBot", "Q?"], "kwargs": {}}, "support_bot", '{"args": ["SupportBot", "Q?"], "kwargs": {}}'),
        ({"args": ["a", "b"], "kwargs": {}}, None, '{"args": ["a", "b"], "kwargs": {}}'),
        ({"args": [], "kwargs": {}}, None, '{"args": [], "kwargs": {}}'),
        ({"args": "x", "kwargs": {}}, None, '{"args": "x", "kwargs": {}}'),
    ],
)  # fmt: skip
def test_decorator_arguments_are_unwrapped_to_the_question(
    wrapper: dict[str, Any], entity: str | None, text: str
) -> None:
    sent = json.dumps(wrapper)
    assert text_of(sent, entity=entity) == text


@pytest.mark.parametrize(
    "attrs",
    [
        {"langfuse.observation.type": "agent", "langfuse.observation.input": '{"args": ["Q?"], "kwargs": {}}'},
        {"traceloop.span.kind": "agent", "traceloop.entity.name": "Bot.answer",
         "traceloop.entity.input": '{"args": ["Bot", "Q?"], "kwargs": {}}'},
        {"traceloop.span.kind": "workflow", "traceloop.entity.name": "flow",
         "traceloop.entity.input": '{"args": [], "kwargs": {"question": "Q?"}}'},
    ],
)  # fmt: skip
def test_decorated_functions_input_is_the_question_and_attributes_keep_the_wrapper(
    attrs: dict[str, Any],
) -> None:
    row = one_row(attrs)
    assert row["input_text"] == "Q?"
    assert orjson.loads(row["attributes"]) == attrs


# --- schema, batching, config ---------------------------------------------------------------


def test_output_schema_is_exactly_span_schema() -> None:
    table = normalize.create(make_config(), Sink()).to_table(fixture_batch("genai_current.json"))
    assert table.schema.equals(SPAN_SCHEMA, check_metadata=True)
    assert table.schema.names == list(SPAN_COLUMNS)
    assert table.column("failure_type").null_count == table.num_rows


def test_consume_passes_one_table_and_skips_empty_batches() -> None:
    sink = Sink()
    processor = normalize.create(make_config(), sink)
    processor.consume(OtlpBatch([]))
    processor.consume(OtlpBatch([OtlpRecord.from_request(parse_json_request(b'{"resourceSpans": []}'))]))
    assert sink.batches == []
    assert processor.to_table(OtlpBatch([])).schema.equals(SPAN_SCHEMA)
    processor.consume(
        OtlpBatch([fixture_batch("mcp.json").records[0], fixture_batch("glean.json").records[0]])
    )
    assert [t.num_rows for t in sink.batches] == [21]
    assert sink.batches[0].schema.equals(SPAN_SCHEMA)


@pytest.mark.parametrize(
    ("data", "problems"),
    [
        ({}, []),
        (
            {"attributes": {"agent_idd": ["x"]}},
            [f"attributes.agent_idd: not a mappable column; one of {', '.join(MAPPABLE_COLUMNS)}"],
        ),
        (
            {"attributes": {"user_id": ["ok", " "]}},
            ["attributes.user_id.1: attribute name must not be empty"],
        ),
        (
            {"operations": {"my-span": "llm"}},
            [
                "operations.my-span: 'llm' is not an operation; one of "
                "agent_run, chat, tool, mcp, mcp_protocol, retrieval, embedding, workflow, other"
            ],
        ),
        ({"provider_aliases": {"gw": ""}}, ["provider_aliases.gw: the canonical provider must not be empty"]),
        (
            {"max_text_length": 0},
            ["max_text_length: must be at least 1 (use capture_text: false to drop text)"],
        ),
        ({"max_length": 10}, ["max_length: unknown key"]),
        (
            {"attributes": {"user_id": "glean.user.email"}},
            ["attributes.user_id: Input should be a valid list"],
        ),
    ],
)
def test_config_problems_name_the_key(data: dict[str, Any], problems: list[str]) -> None:
    assert build_config(normalize.Config, data)[1] == problems


def test_config_defaults() -> None:
    config = normalize.Config()
    assert (config.attributes, config.operations, config.provider_aliases) == ({}, {}, {})
    assert (config.max_text_length, config.capture_text) == (8192, True)
    assert normalize.TYPE == "normalize"
