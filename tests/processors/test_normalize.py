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
from processors.normalize.conventions import MAPPABLE_COLUMNS
from processors.normalize.message_text import text_of
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
    rows = rows_by_span(normalize.create(config, Sink()).to_table(fixture_batch("genai_pre137.json")))
    assert orjson.loads(rows["1000000000000002"]["attributes"])["gen_ai.prompt.1.content"] == "What is OTel?"


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
