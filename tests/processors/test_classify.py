"""The classify processor: fixture traces in several conventions → the exact failure_type per span.

Fixtures live in tests/fixtures/failures/: each is an OTLP/JSON export request, normalized with
the normalize processor and then classified. ``CASES`` lists every span of every fixture with
its expected failure type (None: no failure), so each span is checked. Further tests cover user
rules, ``disable``, loop thresholds, config validation messages, attribute extraction, and the
``runs`` view over classified spans written as Parquet.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from agentwatch.config import parse_config
from agentwatch.pipeline import assemble
from core.component import ExporterSettings
from core.configmodel import build_config
from core.errors import ConfigError
from core.model import SPAN_SCHEMA, OtlpBatch, OtlpRecord
from exporters import parquet
from exporters.memory import InMemoryExporter
from processors.classify import processor as classify
from processors.classify.evaluate import attribute_values
from processors.classify.taxonomy import FAILURE_TYPES, TAXONOMY
from processors.normalize import processor as normalize
from receiver.otlp.otlp_json import parse_json_request
from storage.catalog import connect

FIXTURES = Path(__file__).parent.parent / "fixtures" / "failures"
# Glean's export schema is not public: its output attributes are mapped by config, as a
# deployment would (the normaliser's built-in names do not include them).
GLEAN_NORMALIZE = {
    "attributes": {"output_text": ["glean.response", "glean.run.output"], "user_id": ["glean.user.email"]}
}


def span_id(trace: int, n: int) -> str:
    return f"{trace:04x}{n:012x}"


def trace_id(n: int) -> str:
    return f"fa11{n:028x}"


# fixture → (normalize config, {span id: expected failure_type}); every span of the fixture.
CASES: dict[str, tuple[dict[str, Any], dict[str, str | None]]] = {
    "timeout_genai.json": ({}, {span_id(1, 1): "timeout", span_id(1, 2): None, span_id(1, 3): "timeout"}),
    "tool_timeout_mcp.json": (
        {},
        {span_id(2, 1): None, span_id(2, 2): "tool_timeout", span_id(2, 3): "tool_timeout"},
    ),
    "rate_limit_openinference.json": ({}, {span_id(3, 1): "rate_limit", span_id(3, 2): "rate_limit"}),
    "quota_genai_pre137.json": (
        {},
        # OpenAI's quota error is a 429 RateLimitError; Google's per-minute "quota" is a rate limit.
        {span_id(4, 1): "quota_exceeded", span_id(5, 1): "rate_limit", span_id(6, 1): "rate_limit"},
    ),
    "auth_langfuse.json": (
        {},
        {span_id(7, 1): "auth_failed", span_id(7, 2): "auth_failed", span_id(7, 3): "auth_failed"},
    ),
    "context_overflow_openllmetry.json": (
        {},
        {span_id(8, 1): "context_overflow", span_id(8, 2): "context_overflow"},
    ),
    "glean_failures.json": (
        GLEAN_NORMALIZE,
        {
            span_id(9, 1): "dependency_unavailable",
            span_id(9, 2): "dependency_unavailable",
            span_id(10, 1): None,
            span_id(10, 2): "auth_failed",
            span_id(10, 3): None,
            span_id(11, 1): "empty_response",
            span_id(11, 2): "empty_response",
            span_id(12, 1): "blocked_response",
            span_id(12, 2): "blocked_response",
        },
    ),
    "tool_errors_mcp.json": (
        {},
        {
            span_id(13, 1): None,
            span_id(13, 2): "tool_error",  # a JSON-RPC error, though it blames the tool's upstream
            span_id(13, 3): "tool_error",  # MCP isError in a successful call
            span_id(13, 4): "tool_error",
            span_id(13, 5): None,
        },
    ),
    "tool_contract_mcp.json": (
        {},
        {
            span_id(14, 1): "tool_contract_mismatch",
            span_id(14, 2): "tool_selection_error",  # "Unknown tool": the tool, not its arguments
            span_id(14, 3): "tool_contract_mismatch",
        },
    ),
    "blocked_genai.json": (
        {},
        {
            span_id(15, 1): "blocked_response",
            span_id(15, 2): "blocked_response",  # finish reason content_filter, empty text
            span_id(15, 3): "blocked_response",
            span_id(15, 4): None,  # "I'm sorry, but I couldn't find ..." is an answer, not a refusal
            span_id(16, 1): "blocked_response",
            span_id(16, 2): None,
        },
    ),
    "empty_openinference.json": (
        {},
        {
            span_id(17, 1): "empty_response",  # output.value "" on a run that reported OK
            span_id(17, 2): None,  # no text because the model called a tool
            span_id(17, 3): None,
            span_id(17, 4): "empty_response",
            span_id(17, 5): None,  # no output recorded at all: nothing to judge
        },
    ),
    "invalid_json_genai.json": (
        {},
        {
            span_id(18, 1): "invalid_json",
            span_id(18, 2): None,
            span_id(18, 3): "invalid_json",  # fenced JSON does not parse as JSON
            span_id(19, 1): "invalid_json",
            span_id(19, 2): None,
        },
    ),
    "loop_genai.json": (
        {},
        {
            span_id(20, 1): None,
            span_id(20, 2): "loop_detected",
            span_id(20, 3): "loop_detected",
            span_id(20, 4): "loop_detected",
            span_id(20, 5): None,  # same tool, other arguments
            span_id(20, 6): None,  # only twice
            span_id(20, 7): None,
        },
    ),
    "other_error_openllmetry.json": ({}, {span_id(21, 1): "other_error", span_id(21, 2): "other_error"}),
    "success_genai.json": ({}, {span_id(22, n): None for n in range(1, 6)}),
    "dependency_genai.json": (
        {},
        {
            span_id(23, 1): "dependency_unavailable",
            span_id(23, 2): "dependency_unavailable",
            span_id(23, 3): "dependency_unavailable",
            span_id(24, 1): "dependency_unavailable",  # 504, though the text says "Gateway Timeout"
        },
    ),
    # A model provider's HTTP 500 in every shape the instrumentations send it, like 502/503/504.
    "provider_errors.json": (
        {},
        {
            span_id(25, 1): "dependency_unavailable",  # error.type InternalServerError, "Error code: 500"
            span_id(25, 2): "dependency_unavailable",  # error.type openai.InternalServerError alone
            span_id(25, 3): "dependency_unavailable",  # error.type "<class 'openai.InternalServerError'>"
            span_id(25, 4): "dependency_unavailable",  # APIStatusError, http.response.status_code 500
            span_id(25, 5): "dependency_unavailable",  # error.type "500" (HTTP conventions)
            span_id(25, 6): "dependency_unavailable",  # APIStatusError, only the message says 500
            span_id(26, 1): "dependency_unavailable",  # OpenInference: status and exception event
            span_id(26, 2): "dependency_unavailable",  # OpenInference: the exception event alone
            span_id(27, 1): "dependency_unavailable",  # Anthropic api_error 500
            span_id(27, 2): "dependency_unavailable",  # Anthropic OverloadedError 529
            span_id(27, 3): "dependency_unavailable",  # anthropic.InternalServerError
            span_id(28, 1): "dependency_unavailable",  # Bedrock InternalServerException
            span_id(28, 2): "dependency_unavailable",  # Bedrock ServiceUnavailableException, 503
            span_id(28, 3): "dependency_unavailable",  # Bedrock ModelNotReadyException
            span_id(28, 4): "rate_limit",  # Bedrock ThrottlingException, 429
            span_id(29, 1): "dependency_unavailable",  # Vertex google.api_core InternalServerError
            span_id(29, 2): "dependency_unavailable",  # google-genai ServerError 500 INTERNAL
            span_id(29, 3): "dependency_unavailable",  # google-genai 503 UNAVAILABLE, overloaded
            span_id(29, 4): "rate_limit",  # Vertex 429 "Resource has been exhausted (e.g. check quota)"
            span_id(29, 5): "dependency_unavailable",  # gRPC INTERNAL (13)
            span_id(30, 1): "dependency_unavailable",  # Langfuse generation, level ERROR
            span_id(31, 1): "other_error",  # a 400 whose message names the number 500
            span_id(31, 2): "tool_error",  # "at most 500" is no HTTP status
            span_id(31, 3): "rate_limit",  # a 429 stays a rate limit ("Limit 500" in its text)
        },
    ),
    # The rest of the taxonomy's rule detectors, on the shapes the libraries send.
    "taxonomy_rules.json": (
        {},
        {
            span_id(32, 1): "tool_selection_error",  # Agents SDK: Tool X not found in agent Y
            span_id(32, 2): "tool_selection_error",  # MCP: Unknown tool
            span_id(33, 1): None,
            span_id(33, 2): "bad_routing",  # Agents SDK: Multiple handoffs requested
            span_id(33, 3): "bad_routing",  # a failed transfer_to_ handoff tool
            span_id(34, 1): "policy_blocked",  # InputGuardrail triggered tripwire
            span_id(34, 2): "policy_blocked",  # the guardrail span itself
            span_id(34, 3): "policy_blocked",  # Bedrock Guardrails: guardrail_intervened
            span_id(35, 1): "approval_timeout",  # not tool_timeout
            span_id(35, 2): "approval_timeout",  # not timeout
            span_id(36, 1): "missing_context",  # "I don't have enough information"
            span_id(36, 2): "missing_context",  # a retrieval that returned []
            span_id(36, 3): None,  # "I couldn't find any expenses" is an answer
            span_id(37, 1): "unsafe_output",  # an AWS access key id
            span_id(37, 2): "unsafe_output",  # a private key
            span_id(37, 3): None,  # key shapes are case-sensitive
        },
    ),
}

BUILTIN_RULES = [
    "context_overflow",
    "quota_exceeded",
    "rate_limit",
    "auth_failed",
    "policy_blocked_finish_reason",
    "policy_blocked",
    "blocked_finish_reason",
    "blocked_by_policy",
    "tool_selection_error",
    "bad_routing",
    "tool_contract_mismatch",
    "dependency_unavailable_status",
    "approval_timeout",
    "tool_timeout",
    "timeout",
    "tool_error_reported",
    "dependency_unavailable",
    "tool_error",
    "refusal",
    "missing_context",
    "empty_retrieval",
    "unsafe_output",
    "empty_response",
    "empty_output_attribute",
    "invalid_json",
    "other_error",
]


class Sink:
    def __init__(self) -> None:
        self.batches: list[pa.Table] = []

    def consume(self, batch: pa.Table) -> None:
        self.batches.append(batch)


def make_config(data: dict[str, Any] | None = None) -> classify.Config:
    config, problems = build_config(classify.Config, data or {})
    assert problems == []
    assert config is not None
    return config


def problems_of(data: dict[str, Any]) -> list[str]:
    return build_config(classify.Config, data)[1]


def normalized(name: str) -> pa.Table:
    normalize_config, _ = CASES[name]
    config, problems = build_config(normalize.Config, normalize_config)
    assert problems == [] and config is not None
    request = parse_json_request((FIXTURES / name).read_bytes())
    return normalize.create(config, Sink()).to_table(OtlpBatch([OtlpRecord.from_request(request)]))


def classified(name: str, config: dict[str, Any] | None = None) -> pa.Table:
    return classify.create(make_config(config), Sink()).classify(normalized(name))


def failure_types(table: pa.Table) -> dict[str, str | None]:
    return dict(zip(table["span_id"].to_pylist(), table["failure_type"].to_pylist(), strict=True))


# --- fixtures ----------------------------------------------------------------------------


def test_every_fixture_has_a_case() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.json")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_failure_types(name: str) -> None:
    assert failure_types(classified(name)) == CASES[name][1]


@pytest.mark.parametrize("name", sorted(CASES))
def test_only_failure_type_changes(name: str) -> None:
    before = normalized(name)
    after = classify.create(make_config(), Sink()).classify(before)
    assert after.schema == SPAN_SCHEMA
    assert after.drop_columns(["failure_type"]).equals(before.drop_columns(["failure_type"]))


def test_consume_passes_the_classified_table_on() -> None:
    sink = Sink()
    classify.create(make_config(), sink).consume(normalized("timeout_genai.json"))
    assert [failure_types(b) for b in sink.batches] == [CASES["timeout_genai.json"][1]]


def test_empty_table_passes_through() -> None:
    sink = Sink()
    classify.create(make_config(), sink).consume(SPAN_SCHEMA.empty_table())
    assert [b.num_rows for b in sink.batches] == [0]
    assert sink.batches[0].schema == SPAN_SCHEMA


def test_failure_type_set_upstream_is_kept() -> None:
    table = normalized("timeout_genai.json")
    judged = pa.array(["groundedness_drop", None, None], pa.string())
    table = table.set_column(SPAN_SCHEMA.get_field_index("failure_type"), "failure_type", judged)
    got = classify.create(make_config(), Sink()).classify(table)
    assert failure_types(got) == {
        span_id(1, 1): "groundedness_drop",
        span_id(1, 2): None,
        span_id(1, 3): "timeout",
    }


def test_builtin_rules_in_order() -> None:
    assert [rule.name for rule in classify.builtin_rules()] == BUILTIN_RULES


# --- user rules, disable, loops -----------------------------------------------------------


def test_user_rule_runs_before_the_builtins() -> None:
    rule = {
        "name": "jira_outage",
        "failure_type": "dependency_unavailable",
        "operations": ["mcp"],
        "when": {
            "all": [{"column": "tool_name", "equals": "jira_create"}, {"column": "status", "equals": "error"}]
        },
    }
    got = failure_types(classified("tool_errors_mcp.json", {"rules": [rule]}))
    assert got == {**CASES["tool_errors_mcp.json"][1], span_id(13, 2): "dependency_unavailable"}


def test_user_rule_with_a_builtin_name_replaces_it() -> None:
    rule = {
        "name": "refusal",
        "failure_type": "blocked_response",
        "operations": ["chat"],
        "when": {"column": "output_text", "matches": "^unfortunately"},
    }
    got = failure_types(classified("blocked_genai.json", {"rules": [rule]}))
    assert got == {
        span_id(15, 1): None,
        span_id(15, 2): "blocked_response",
        span_id(15, 3): "blocked_response",
        span_id(15, 4): None,
        span_id(16, 1): None,
        span_id(16, 2): "blocked_response",
    }


def test_user_rule_with_null_failure_type_silences_later_rules() -> None:
    rule = {
        "name": "expected_validation",
        "failure_type": None,
        "when": {"column": "tool_name", "equals": "book_meeting"},
    }
    got = failure_types(classified("tool_contract_mcp.json", {"rules": [rule]}))
    assert got == {**CASES["tool_contract_mcp.json"][1], span_id(14, 3): None}


def test_a_rule_can_introduce_a_failure_type_of_its_own(tmp_path: Path) -> None:
    rule = {
        "name": "jira_down",
        "failure_type": "jira_outage",
        "operations": ["mcp"],
        "when": {
            "all": [{"column": "tool_name", "matches": "^jira_"}, {"column": "status", "equals": "error"}]
        },
    }
    table = classified("tool_errors_mcp.json", {"rules": [rule]})
    assert failure_types(table) == {**CASES["tool_errors_mcp.json"][1], span_id(13, 2): "jira_outage"}
    exporter = parquet.create(parquet.Config(), ExporterSettings("parquet", tmp_path))
    exporter.consume(table)
    runs = connect(tmp_path).execute("SELECT outcome, failure_type, failing_span_id FROM runs").fetchall()
    assert runs == [("degraded", "jira_outage", span_id(13, 2))]


@pytest.mark.parametrize(
    ("failure_type", "problem"),
    [
        ("jira_outage", None),
        ("x" * 64, None),
        ("x" * 65, "'" + "x" * 65 + "'"),
        ("Timeout", "'Timeout'"),
        ("2fa_failed", "'2fa_failed'"),
        ("slow-calls", "'slow-calls'"),
        (7, "7"),
    ],
)
def test_failure_type_names(failure_type: object, problem: str | None) -> None:
    rule = {"name": "r", "failure_type": failure_type, "when": {"column": "status", "equals": "error"}}
    expected = (
        []
        if problem is None
        else [
            f"rules.0.failure_type: {problem} is not a failure type name (lowercase letters, digits and _, "
            "starting with a letter, at most 64 characters: a built-in type or a new one, e.g. 'jira_outage')"
        ]
    )
    assert problems_of({"rules": [rule]}) == expected


def test_every_builtin_failure_type_has_a_detector() -> None:
    """Each type of the taxonomy is produced by a built-in rule, loop detection or a judge."""
    by_rules = {rule.failure_type for rule in classify.builtin_rules()}
    others = {"loop_detected": "loop detection", "groundedness_drop": "judge", "quality_regression": "judge"}
    for entry in TAXONOMY:
        if entry.name in others:
            assert entry.name not in by_rules and entry.detector.startswith(others[entry.name])
        else:
            assert entry.name in by_rules
            named = set(re.findall(r"`([a-z_]+)`", entry.detector))
            assert {r.name for r in classify.builtin_rules() if r.failure_type == entry.name} <= named
    assert by_rules == set(FAILURE_TYPES) - set(others)


def test_the_readme_lists_the_taxonomy() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### Failure types\n", 1)[1].split("\n#", 1)[0]  # up to the next heading
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = [tuple(cell.strip() for cell in row.strip("|").split(" | ")) for row in rows]
    assert documented == [(f"`{t.name}`", t.meaning, t.detector) for t in TAXONOMY]


def test_rules_file_rules_run_after_config_rules_and_before_builtins(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n"
        "  - name: slow_model\n"
        "    failure_type: timeout\n"
        "    operations: [chat]\n"
        "    when: {column: duration_ms, gte: 1000}\n"
        "  - name: busy_model\n"
        "    failure_type: rate_limit\n"
        "    when: {column: duration_ms, gte: 500}\n"
    )
    first = {"name": "slowest", "failure_type": "other_error", "when": {"column": "duration_ms", "gte": 1500}}
    got = failure_types(classified("success_genai.json", {"rules": [first], "rules_file": str(path)}))
    # durations: run 4000, chat 800, tool 600, chat 1500, retrieval 100
    assert got == {
        span_id(22, 1): "other_error",
        span_id(22, 2): "rate_limit",
        span_id(22, 3): "rate_limit",
        span_id(22, 4): "other_error",
        span_id(22, 5): None,
    }


def test_disable_drops_rules_and_loop_detection() -> None:
    config = {"disable": ["refusal", "timeout", "loop_detected"]}
    assert failure_types(classified("blocked_genai.json", config)) == {
        **CASES["blocked_genai.json"][1],
        span_id(15, 1): None,
        span_id(16, 1): None,
    }
    # without the timeout rule, a timed-out call is still an error: the generic rule catches it
    assert failure_types(classified("timeout_genai.json", config)) == {
        span_id(1, 1): "other_error",
        span_id(1, 2): None,
        span_id(1, 3): "other_error",
    }
    assert set(failure_types(classified("loop_genai.json", config)).values()) == {None}


@pytest.mark.parametrize(
    ("threshold", "looping"),
    [
        (2, {2, 3, 4, 6, 7}),
        (3, {2, 3, 4}),
        (4, set()),
    ],
)
def test_loop_threshold(threshold: int, looping: set[int]) -> None:
    got = failure_types(classified("loop_genai.json", {"loop_threshold": threshold}))
    assert got == {span_id(20, n): "loop_detected" if n in looping else None for n in range(1, 8)}


def test_a_classified_failure_wins_over_loop_detection() -> None:
    table = normalized("loop_genai.json")
    status = table["status"].to_pylist()
    status[2] = "error"  # the second identical search_flights call failed
    table = table.set_column(SPAN_SCHEMA.get_field_index("status"), "status", pa.array(status, pa.string()))
    got = failure_types(classify.create(make_config(), Sink()).classify(table))
    assert got == {**CASES["loop_genai.json"][1], span_id(20, 3): "tool_error"}


def test_identical_calls_in_different_traces_are_not_a_loop() -> None:
    table = normalized("loop_genai.json")
    traces = table["trace_id"].to_pylist()
    traces[3] = trace_id(99)  # the third identical call belongs to another trace
    table = table.set_column(
        SPAN_SCHEMA.get_field_index("trace_id"), "trace_id", pa.array(traces, pa.string())
    )
    got = failure_types(classify.create(make_config(), Sink()).classify(table))
    assert set(got.values()) == {None}


# --- config validation -------------------------------------------------------------------


def test_default_config_is_valid() -> None:
    assert problems_of({}) == []


def test_bad_rules_are_named_by_key() -> None:
    rules = [
        {"name": "ok", "failure_type": "timeout", "when": {"column": "duration_ms", "gte": 1}},
        {"name": "bad_type", "failure_type": "Slow Calls", "when": {"column": "status", "equals": "error"}},
        {
            "name": "bad_regex",
            "failure_type": "timeout",
            "when": {"column": "error_message", "matches": "time(out"},
        },
        {
            "name": "lookaround",
            "failure_type": "timeout",
            "when": {"any": [{"column": "name", "matches": "(?!x)y"}]},
        },
        {"name": "no_col", "failure_type": "timeout", "when": {"not": {"column": "latency", "gte": 1}}},
        {
            "name": "ok",
            "failure_type": "timeout",
            "operations": ["llm"],
            "when": {"column": "status", "present": True},
        },
        {
            "name": "leaf",
            "failure_type": "timeout",
            "when": {"column": "status", "attribute": "x", "equals": 1},
        },
        {"name": "tests", "failure_type": "timeout", "when": {"column": "status"}},
        {"name": "op", "failure_type": "timeout", "when": {"column": "status", "like": "e%", "in": []}},
        {
            "name": "types",
            "failure_type": "timeout",
            "when": {"column": "start_time", "gte": "1", "is_empty": True},
        },
        {"name": "text", "failure_type": "timeout", "when": {"column": "duration_ms", "is_json": True}},
        {"failure_type": "timeout", "when": {"all": []}, "severity": "high"},
        {
            "name": "loop_detected",
            "failure_type": "loop_detected",
            "when": {"column": "status", "present": True},
        },
        {"name": "no_when", "failure_type": "timeout"},
        {
            "name": "group",
            "failure_type": "timeout",
            "when": {"all": [{"column": "status", "present": True}], "any": []},
        },
    ]
    assert problems_of({"rules": rules, "disable": ["ok", "nope"], "loop_threshold": 1}) == [
        "rules.1.failure_type: 'Slow Calls' is not a failure type name (lowercase letters, digits and _, starting "
        "with a letter, at most 64 characters: a built-in type or a new one, e.g. 'jira_outage')",
        "rules.2.when.matches: invalid regex 'time(out': unclosed group",
        "rules.3.when.any.0.matches: invalid regex '(?!x)y': look-around, including look-ahead and look-behind, is not supported",
        "rules.4.when.not.column: unknown column 'latency'",
        "rules.5.operations.0: 'llm' is not an operation; one of agent_run, chat, tool, mcp, mcp_protocol, retrieval, embedding, workflow, other",
        "rules.6.when: a leaf needs exactly one of 'column' or 'attribute'",
        "rules.7.when: a leaf needs at least one test (equals, in, matches, is_empty, present, is_json, gte, lte)",
        "rules.8.when.like: unknown key (tests: equals, in, matches, is_empty, present, is_json, gte, lte)",
        "rules.8.when.in: must be a non-empty list of strings, numbers or booleans",
        "rules.9.when.gte: must be a number",
        "rules.9.when.is_empty: column 'start_time' is not text",
        "rules.10.when.is_json: column 'duration_ms' is not text",
        "rules.11.severity: unknown key",
        "rules.11.name: must be a non-empty string",
        "rules.11.when.all: must be a non-empty list of conditions",
        "rules.13.when: required",
        "rules.14.when: 'all' must be the only key (found also: any)",
        "rules.12.name: 'loop_detected' is reserved for loop detection",
        "disable.1: no rule named 'nope'",
        "loop_threshold: must be at least 2 (turn loops off with disable: [loop_detected])",
    ]


def test_duplicate_rule_names_and_numeric_tests_on_time_columns() -> None:
    rules = [
        {"name": "a", "failure_type": "timeout", "when": {"column": "start_time", "lte": 5}},
        {"name": "a", "failure_type": "timeout", "when": {"column": "synthetic", "gte": 1}},
    ]
    assert problems_of({"rules": rules}) == [
        "rules.0.when.lte: column 'start_time' is not numeric",
        "rules.1.when.gte: column 'synthetic' is not numeric",
    ]
    rules[0]["when"] = rules[1]["when"] = {"column": "status", "present": True}
    assert problems_of({"rules": rules}) == ["rules.1.name: duplicate rule name 'a'"]


def test_rules_file_problems(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    assert problems_of({"rules_file": str(missing)}) == [
        f"rules_file: cannot read {missing}: No such file or directory"
    ]
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [\n")
    assert problems_of({"rules_file": str(broken)})[0].startswith(f"rules_file: {broken}: not valid YAML: ")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        json.dumps(
            {
                "rules": [
                    {"name": "x", "failure_type": "timeout", "when": {"attribute": "a", "matches": "("}}
                ],
                "extra": 1,
            }
        )
    )
    assert problems_of({"rules_file": str(bad)}) == [
        f"rules_file: {bad}: extra: unknown key",
        f"rules_file: {bad}: rules.0.when.matches: invalid regex '(': unclosed group",
    ]
    clash = tmp_path / "clash.yaml"
    clash.write_text("rules:\n  - {name: x, failure_type: timeout, when: {column: status, present: true}}\n")
    rule = {"name": "x", "failure_type": "timeout", "when": {"column": "status", "present": True}}
    assert problems_of({"rules": [rule], "rules_file": str(clash)}) == [
        f"rules_file: {clash}: rules.0.name: duplicate rule name 'x'"
    ]


def test_type_errors_come_from_the_config_model() -> None:
    assert problems_of({"loop_threshold": "three", "rules": ["x"], "colour": 1}) == [
        "rules.0: Input should be a valid dictionary",
        "loop_threshold: Input should be a valid integer, unable to parse string as an integer",
        "colour: unknown key",
    ]


def test_create_refuses_an_invalid_config() -> None:
    with pytest.raises(ValueError, match=r"^invalid classify config: loop_threshold: must be at least 2"):
        classify.create(classify.Config(loop_threshold=0), Sink())


def test_config_file_errors_name_file_line_and_key() -> None:
    text = (
        "processors:\n"
        "  normalize: {}\n"
        "  classify:\n"
        "    rules:\n"
        "      - name: slow\n"
        "        failure_type: timeout\n"
        "        when: {column: duration, gte: 30000}\n"
        "service:\n"
        "  pipelines:\n"
        "    traces: {receivers: [otlp], processors: [normalize, classify], exporters: [parquet]}\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "agentwatch.yaml")
    assert (
        str(info.value)
        == "agentwatch.yaml:7: processors.classify.rules.0.when.column: unknown column 'duration'"
    )
    config = parse_config(text.replace("duration,", "duration_ms,"), "agentwatch.yaml")
    assert config.pipelines["traces"].processors == ("normalize", "classify")


def test_assembled_pipeline_classifies(tmp_path: Path) -> None:
    text = (
        "processors:\n"
        "  normalize: {}\n"
        "  classify: {loop_threshold: 2}\n"
        "exporters:\n"
        "  memory: {}\n"
        "service:\n"
        "  pipelines:\n"
        "    traces: {receivers: [otlp], processors: [normalize, classify], exporters: [memory]}\n"
    )
    assembly = assemble(parse_config(text, "agentwatch.yaml").with_data_dir(str(tmp_path)))
    request = parse_json_request((FIXTURES / "loop_genai.json").read_bytes())
    assembly.start()
    assembly.pipelines[0].consume(OtlpBatch([OtlpRecord.from_request(request)]))
    assembly.shutdown()
    (memory,) = assembly.exporters.values()
    assert isinstance(memory, InMemoryExporter)
    looping = {2, 3, 4, 6, 7}
    assert failure_types(memory.table()) == {
        span_id(20, n): "loop_detected" if n in looping else None for n in range(1, 8)
    }


# --- attribute values ----------------------------------------------------------------------


def test_attribute_values() -> None:
    import polars as pl

    docs = [
        {"http.response.status_code": 429, "x": "y"},
        {"http.response.status_code": "503"},
        {"other": {"http.response.status_code": 1}},
        {"gen_ai.response.finish_reasons": ["stop", "content_filter"]},
        {"msg": 'say "hi"\n'},
        {"deep": {"a": {"b": [1, {"c": 2}]}}},
        {"flag": True, "none": None},
    ]
    column = pl.Series([json.dumps(d, separators=(",", ":")) for d in docs])

    def values(name: str) -> list[str | None]:
        return attribute_values(column, name).to_list()

    assert values("http.response.status_code") == ["429", "503", "1", None, None, None, None]
    assert values("gen_ai.response.finish_reasons") == [
        None,
        None,
        None,
        '["stop","content_filter"]',
        None,
        None,
        None,
    ]
    assert values("msg") == [None, None, None, None, 'say "hi"\n', None, None]
    assert values("deep") == [None, None, None, None, None, '{"a":{"b":[1,{"c":2}]}}', None]
    assert values("flag") == [None, None, None, None, None, None, "true"]
    assert values("none") == [None] * 7
    assert values("absent") == [None] * 7


def test_leaf_tests_on_attributes() -> None:
    def rule(leaf: dict[str, Any]) -> dict[str, Any]:
        return {"name": "r", "failure_type": "other_error", "when": leaf}

    table = normalized("blocked_genai.json")

    def matching(leaf: dict[str, Any]) -> list[str]:
        config = {"rules": [rule(leaf)], "disable": [*BUILTIN_RULES, "loop_detected"]}
        got = classify.create(make_config(config), Sink()).classify(table)
        return [s for s, f in failure_types(got).items() if f is not None]

    finish = "gen_ai.response.finish_reasons"
    assert matching({"attribute": finish, "equals": "content_filter"}) == [span_id(15, 2)]
    assert matching({"attribute": finish, "in": ["stop", "length"]}) == [span_id(15, 4)]
    assert matching({"attribute": finish, "present": False}) == [
        span_id(15, 1),
        span_id(15, 3),
        span_id(16, 1),
        span_id(16, 2),
    ]
    assert matching({"attribute": "error.type", "equals": 400}) == [span_id(15, 3)]
    assert matching({"attribute": "error.type", "gte": 400, "lte": 499}) == [span_id(15, 3)]
    assert matching({"attribute": "error.type", "gte": 401}) == []
    assert matching(
        {"attribute": ["gen_ai.provider.name", "llm.model_name"], "matches": "^AZURE|SONNET"}
    ) == [
        span_id(15, 2),
        span_id(15, 3),
        span_id(16, 1),
        span_id(16, 2),
    ]
    assert matching({"column": "output_text", "is_empty": False, "matches": "sorry"}) == [
        span_id(15, 1),
        span_id(15, 4),
    ]
    assert matching({"not": {"column": "output_text", "present": True}}) == [span_id(15, 3)]


# --- runs view ---------------------------------------------------------------------------


def test_runs_outcome_and_decisive_failure_type(tmp_path: Path) -> None:
    exporter = parquet.create(parquet.Config(), ExporterSettings("parquet", tmp_path))
    for name in ("timeout_genai.json", "tool_errors_mcp.json", "success_genai.json", "empty_openinference.json",
                 "loop_genai.json", "glean_failures.json"):  # fmt: skip
        exporter.consume(classified(name))
    got = (
        connect(tmp_path)
        .execute(
            "SELECT trace_id, outcome, failure_type, failing_span_id, tool_errors FROM runs ORDER BY trace_id"
        )
        .fetchall()
    )
    assert got == [
        (trace_id(1), "failure", "timeout", span_id(1, 3), 0),  # the run itself timed out
        (trace_id(9), "failure", "dependency_unavailable", span_id(9, 2), 0),
        (trace_id(10), "degraded", "auth_failed", span_id(10, 2), 1),
        (trace_id(11), "failure", "empty_response", span_id(11, 2), 0),
        (trace_id(12), "failure", "blocked_response", span_id(12, 2), 0),
        (trace_id(13), "degraded", "tool_error", span_id(13, 2), 3),  # failed tools, but it answered
        (trace_id(17), "failure", "empty_response", span_id(17, 4), 0),  # OK status, empty answer
        (trace_id(20), "degraded", "loop_detected", span_id(20, 2), 3),
        (trace_id(22), "success", None, None, 0),
    ]


def _patterns(condition: Any) -> list[str]:
    from processors.classify.rules import Leaf

    if isinstance(condition, Leaf):
        return [str(t.value) for t in condition.tests if t.op == "matches"]
    return [p for child in condition.children for p in _patterns(child)]


def test_every_builtin_pattern_is_a_regex_polars_accepts() -> None:
    """The shipped rules are parsed without checking their patterns (reading a config must not
    load polars); this is where they are checked."""
    from processors.classify.rules import regex_problem

    patterns = [p for rule in classify.builtin_rules() for p in _patterns(rule.when)]
    assert len(patterns) >= 10
    assert [(p, regex_problem(p)) for p in patterns if regex_problem(p) is not None] == []


def test_a_configured_pattern_is_still_checked() -> None:
    config, problems = build_config(
        classify.Config,
        {
            "rules": [
                {"name": "x", "failure_type": "other_error", "when": {"column": "name", "matches": "a("}}
            ]
        },
    )
    assert config is None or problems
    assert any("rules.0.when.matches: invalid regex 'a('" in p for p in problems), problems
