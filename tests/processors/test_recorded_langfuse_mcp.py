"""What agentwatch makes of real Langfuse v3 and MCP traffic (issue 12), recorded from the
libraries themselves (``tests/fixtures/instrumentations``: ``langfuse``, ``mcp_sdk``,
``mcp_traceloop``, ``mcp_openinference``) and stored in process through the real pipelines
(normalize, classify, the Parquet exporter): the span columns and the ``runs`` row of a
successful run, a run whose model call fails (HTTP 500) and a run whose tool raises.

Ids and times change with every recording, so spans are compared as multisets of their columns
and a run's failing span by its name. Every value is asserted as it must be: the items of issue
12 these recordings showed wrong are fixed, and none is marked as an expected failure.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.helpers.recorded import RECORDED, Stored, store_recording

SPAN_COLUMNS = (
    "service_name", "name", "kind", "operation", "agent_name", "agent_id", "tool_name", "model", "provider",
    "input_tokens", "output_tokens", "cached_tokens", "total_tokens", "status", "error_type", "failure_type",
    "user_id", "session_id",
)  # fmt: skip
TEXT_COLUMNS = ("name", "input_text", "output_text", "error_message")
RUN_COLUMNS = (
    "name", "outcome", "agent_name", "agent_id", "tool_calls", "tool_errors", "input_tokens", "output_tokens",
    "cached_tokens", "total_tokens", "models", "user_id", "session_id",
)  # fmt: skip

USER, SESSION = "user-42", "session-7"
QUESTION = "Is the blue kettle (SKU A-113) in stock?"
ANSWER = "Yes: 12 blue kettles (A-113) are in stock."
RESERVE = "Please reserve 2 blue kettles (A-113) for me."
APOLOGY = "Sorry, I could not reserve the kettles: the inventory service timed out."
HTTP_500 = "Error code: 500 - The server had an error while processing your request (fake 500)."
MARKER = "blue kettle"
"""In every recording's question (and answer): content that ``capture_text: false`` must drop."""

Row = tuple[Any, ...]


def span(
    service: str,
    name: str,
    operation: str,
    kind: str = "internal",
    *,
    agent: str | None = None,
    tool: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    tokens: tuple[int | None, int | None, int | None, int | None] = (None, None, None, None),
    status: str = "unset",
    error_type: str | None = None,
    failure: str | None = None,
    user: bool = False,
) -> Row:
    """A row of ``SPAN_COLUMNS``; ``user``: the span carries the user and the session."""
    who = (USER, SESSION) if user else (None, None)
    identity = (service, name, kind, operation, agent, None, tool, model, provider)
    return (*identity, *tokens, status, error_type, failure, *who)


# -- Langfuse v3: @observe(as_type="agent"/"tool"), langfuse.openai, propagate_attributes ---------

LF = "unknown_service:python"  # Langfuse sets no service.name
LF_AGENT = "support_bot"  # the decorated function's name: Langfuse has no agent-name attribute
LF_CHAT = "OpenAI-generation"
LF_SYSTEM = "You are a store's support agent."
LF_TOOL_CALL = 'lookup_inventory({"sku": "A-113"})'  # a tool-call-only answer (item 7), as OpenInference's
STOCK = '{"sku": "A-113", "in_stock": 12}'
SNAPSHOT = "gpt-4o-mini-2024-07-18"  # the response model; the request model is gpt-4o-mini

# -- MCP: the agent (support-bot) and the server (inventory-mcp) in two processes ---------------

BOT, MCP = "support-bot", "inventory-mcp"
GENAI_AGENT = "invoke_agent support-bot"  # hand-made GenAI agent span (mcp_sdk, mcp_traceloop)
OI_SYSTEM = "You are a store's support agent. Use the inventory tools."


def genai_agent(status: str = "unset", **error: str) -> Row:
    """The GenAI ``invoke_agent`` span: ``gen_ai.request.model`` gives it a model (not one called)."""
    return span(
        BOT,
        GENAI_AGENT,
        "agent_run",
        agent=BOT,
        model="gpt-4o-mini",
        provider="openai",
        status=status,
        user=True,
        **error,
    )


def sdk_protocol(method: str) -> list[Row]:
    """The MCP SDK 2.x's client and server spans of one protocol request (item 4: not a tool call)."""
    return [
        span(BOT, f"MCP send {method}", "mcp_protocol", "client"),
        span(MCP, method, "mcp_protocol", "server"),
    ]


def sdk_call(tool: str, *, failed: bool = False) -> list[Row]:
    """Both sides of one ``tools/call``: the client span named ``MCP send tools/call <tool>`` gets
    its tool name from the name (item 4); a raising tool fails only the server span."""
    server = (
        span(
            MCP,
            f"tools/call {tool}",
            "mcp",
            "server",
            tool=tool,
            status="error",
            error_type="tool_error",
            failure="tool_error",
        )
        if failed
        else span(MCP, f"tools/call {tool}", "mcp", "server", tool=tool)
    )
    return [span(BOT, f"MCP send tools/call {tool}", "mcp", "client", tool=tool), server]


def writers(client: int, server: int) -> list[Row]:
    """Traceloop's ``ResponseStreamWriter`` spans (one per message written): protocol traffic."""
    return [span(BOT, "ResponseStreamWriter", "mcp_protocol")] * client + [
        span(MCP, "ResponseStreamWriter", "mcp_protocol")
    ] * server


TL_HANDSHAKE = [span(BOT, "initialize.mcp", "mcp_protocol", status="ok"), *writers(2, 1)]
TL_LIST = [span(BOT, "tools/list.mcp", "mcp_protocol", status="ok"), *writers(1, 1)]


def oi_chat(*, failed: bool = False) -> Row:
    if failed:  # no response model: the request model from llm.invocation_parameters (item 6)
        failed_call = {
            "status": "error",
            "error_type": "openai.InternalServerError",
            "failure": "dependency_unavailable",
        }
        return span(
            BOT, "ChatCompletion", "chat", model="gpt-4o-mini", provider="openai", user=True, **failed_call
        )
    return span(
        BOT,
        "ChatCompletion",
        "chat",
        model=SNAPSHOT,
        provider="openai",
        tokens=(21, 9, 0, 30),
        status="ok",
        user=True,
    )


SPANS: dict[str, list[Row]] = {
    "langfuse/success": [
        span(LF, LF_AGENT, "agent_run", agent=LF_AGENT, user=True),
        # item 5: the cached tokens inside the raw usage object
        span(LF, LF_CHAT, "chat", model=SNAPSHOT, tokens=(412, 18, 384, 430), user=True),
        span(LF, "lookup_inventory", "tool", tool="lookup_inventory", user=True),
        span(LF, LF_CHAT, "chat", model=SNAPSHOT, tokens=(448, 14, 384, 462), user=True),
    ],
    "langfuse/model_error": [
        span(
            LF,
            LF_AGENT,
            "agent_run",
            agent=LF_AGENT,
            status="error",
            failure="dependency_unavailable",
            user=True,
        ),
        span(
            LF,
            LF_CHAT,
            "chat",
            model="gpt-4o-mini",
            status="error",
            failure="dependency_unavailable",
            user=True,
        ),
    ],
    "langfuse/tool_error": [
        span(LF, LF_AGENT, "agent_run", agent=LF_AGENT, status="error", failure="timeout", user=True),
        span(LF, LF_CHAT, "chat", model=SNAPSHOT, tokens=(412, 18, 384, 430), user=True),
        span(
            LF,
            "lookup_inventory",
            "tool",
            tool="lookup_inventory",
            status="error",
            failure="tool_timeout",
            user=True,
        ),
    ],
    "mcp_sdk/success": [
        *sdk_protocol("server/discover"),
        genai_agent(),
        *sdk_protocol("tools/list"),
        *sdk_call("lookup_inventory"),
    ],
    "mcp_sdk/success_initialize": [
        *sdk_protocol("initialize"),
        span(MCP, "notifications/initialized", "mcp_protocol", "server"),
        genai_agent(),
        *sdk_protocol("tools/list"),
        *sdk_call("lookup_inventory"),
    ],
    "mcp_sdk/model_error": [
        *sdk_protocol("server/discover"),
        genai_agent("error", error_type="openai.InternalServerError", failure="dependency_unavailable"),
        *sdk_protocol("tools/list"),
    ],
    "mcp_sdk/tool_error": [
        *sdk_protocol("server/discover"),
        genai_agent(),
        *sdk_protocol("tools/list"),
        *sdk_call("reserve_stock", failed=True),
    ],
    "mcp_traceloop/success": [
        *TL_HANDSHAKE,
        genai_agent(),
        *TL_LIST,
        span(BOT, "lookup_inventory.tool", "tool", tool="lookup_inventory", status="ok"),
        *writers(1, 1),
    ],
    "mcp_traceloop/model_error": [
        *TL_HANDSHAKE,
        genai_agent("error", error_type="openai.InternalServerError", failure="dependency_unavailable"),
        *TL_LIST,
    ],
    "mcp_traceloop/tool_error": [
        *TL_HANDSHAKE,
        genai_agent(),
        *TL_LIST,
        span(
            BOT,
            "reserve_stock.tool",
            "tool",
            tool="reserve_stock",
            status="error",
            error_type="tool_error",
            failure="tool_timeout",
        ),
        *writers(1, 0),
        # The server's response carrying isError: protocol traffic, failed, not a tool error of its own.
        span(MCP, "ResponseStreamWriter", "mcp_protocol", status="error", failure="timeout"),
    ],
    "mcp_openinference/success": [
        span(BOT, BOT, "agent_run", agent=BOT, status="ok", user=True),
        oi_chat(),
        # the server's tool span, in the agent's trace (the MCP instrumentation's propagation)
        span(MCP, "lookup_inventory", "tool", tool="lookup_inventory", status="ok"),
        oi_chat(),
    ],
    "mcp_openinference/model_error": [
        span(
            BOT,
            BOT,
            "agent_run",
            agent=BOT,
            status="error",
            error_type="openai.InternalServerError",
            failure="dependency_unavailable",
            user=True,
        ),
        oi_chat(failed=True),
    ],
    "mcp_openinference/tool_error": [
        span(BOT, BOT, "agent_run", agent=BOT, status="ok", user=True),
        oi_chat(),
        span(
            MCP,
            "reserve_stock",
            "tool",
            tool="reserve_stock",
            status="error",
            error_type="RuntimeError",
            failure="tool_timeout",
        ),
        oi_chat(),
    ],
}
RECORDINGS = tuple(SPANS)

TEXTS: dict[str, list[Row]] = {
    "langfuse/success": [
        (LF_AGENT, QUESTION, ANSWER, None),  # item 7: the question, not {"args": [...], "kwargs": {}}
        (LF_CHAT, f"{LF_SYSTEM}\n{QUESTION}", LF_TOOL_CALL, None),
        ("lookup_inventory", '{"sku": "A-113"}', STOCK, None),  # keyword arguments: them, as an object
        (LF_CHAT, f"{LF_SYSTEM}\n{QUESTION}\n{STOCK}", ANSWER, None),
    ],
    "langfuse/model_error": [
        (LF_AGENT, QUESTION, None, HTTP_500),
        (LF_CHAT, f"{LF_SYSTEM}\n{QUESTION}", None, HTTP_500),
    ],
    "langfuse/tool_error": [
        (LF_AGENT, QUESTION, None, "inventory service timed out"),
        (LF_CHAT, f"{LF_SYSTEM}\n{QUESTION}", LF_TOOL_CALL, None),
        ("lookup_inventory", '{"sku": "A-113"}', None, "inventory service timed out"),
    ],
    "mcp_sdk/success": [
        (GENAI_AGENT, QUESTION, ANSWER, None),
        ("MCP send tools/call lookup_inventory", None, None, None),
        ("tools/call lookup_inventory", None, None, None),
    ],
    "mcp_sdk/model_error": [(GENAI_AGENT, QUESTION, None, HTTP_500)],
    "mcp_sdk/tool_error": [
        (GENAI_AGENT, RESERVE, APOLOGY, None),
        ("MCP send tools/call reserve_stock", None, None, None),
        ("tools/call reserve_stock", None, None, None),
    ],
    "mcp_traceloop/success": [
        (GENAI_AGENT, QUESTION, ANSWER, None),
        (
            "lookup_inventory.tool",
            '{"tool_name": "lookup_inventory", "arguments": {"sku": "A-113"}}',
            '{"result": "{\\"sku\\": \\"A-113\\", \\"in_stock\\": 12}"}',
            None,
        ),
    ],
    "mcp_traceloop/model_error": [(GENAI_AGENT, QUESTION, None, HTTP_500)],
    "mcp_traceloop/tool_error": [
        (GENAI_AGENT, RESERVE, APOLOGY, None),
        (
            "reserve_stock.tool",
            '{"tool_name": "reserve_stock", "arguments": {"sku": "A-113", "quantity": 2}}',
            '{"result": "Error executing tool reserve_stock: inventory service timed out", "is_error": true}',
            "Error executing tool reserve_stock: inventory service timed out",
        ),
    ],
    "mcp_openinference/success": [
        (BOT, QUESTION, ANSWER, None),
        ("ChatCompletion", f"{OI_SYSTEM}\n{QUESTION}", LF_TOOL_CALL, None),
        ("lookup_inventory", '{"sku": "A-113"}', STOCK, None),
        ("ChatCompletion", f"{OI_SYSTEM}\n{QUESTION}\n{STOCK}", ANSWER, None),
    ],
    "mcp_openinference/model_error": [
        (BOT, QUESTION, None, HTTP_500),
        ("ChatCompletion", f"{OI_SYSTEM}\n{QUESTION}", None, HTTP_500),
    ],
    "mcp_openinference/tool_error": [
        (BOT, RESERVE, APOLOGY, None),
        ("ChatCompletion", f"{OI_SYSTEM}\n{RESERVE}", 'reserve_stock({"sku": "A-113", "quantity": 2})', None),
        ("reserve_stock", '{"sku": "A-113", "quantity": 2}', None, "inventory service timed out"),
        (
            "ChatCompletion",
            f"{OI_SYSTEM}\n{RESERVE}\nError executing tool reserve_stock: inventory service timed out",
            APOLOGY,
            None,
        ),
    ],
}
TEXTS["mcp_sdk/success_initialize"] = TEXTS["mcp_sdk/success"]


def run(
    name: str,
    outcome: str,
    agent: str,
    *,
    tools: tuple[int, int] = (0, 0),
    tokens: tuple[int | None, int | None, int | None, int | None] = (None, None, None, None),
    models: list[str] | None = None,
) -> dict[str, Any]:
    """A ``runs`` row of ``RUN_COLUMNS``."""
    values = (name, outcome, agent, None, *tools, *tokens, models or [], USER, SESSION)
    return dict(zip(RUN_COLUMNS, values, strict=True))


RUNS: dict[str, dict[str, Any]] = {
    "langfuse/success": run(
        LF_AGENT, "success", LF_AGENT, tools=(1, 0), tokens=(860, 32, 768, 892), models=[SNAPSHOT]
    ),
    "langfuse/model_error": run(LF_AGENT, "failure", LF_AGENT, models=["gpt-4o-mini"]),  # item 6
    "langfuse/tool_error": run(
        LF_AGENT, "failure", LF_AGENT, tools=(1, 1), tokens=(412, 18, 384, 430), models=[SNAPSHOT]
    ),
    # item 6: no LLM span, so no model called (the agent span's request model is not one)
    "mcp_sdk/success": run(GENAI_AGENT, "success", BOT, tools=(1, 0)),  # item 4: client + server = one call
    "mcp_sdk/success_initialize": run(GENAI_AGENT, "success", BOT, tools=(1, 0)),
    "mcp_sdk/model_error": run(GENAI_AGENT, "failure", BOT),
    "mcp_sdk/tool_error": run(GENAI_AGENT, "degraded", BOT, tools=(1, 1)),  # the model answered the error
    "mcp_traceloop/success": run(GENAI_AGENT, "success", BOT, tools=(1, 0)),
    "mcp_traceloop/model_error": run(GENAI_AGENT, "failure", BOT),
    "mcp_traceloop/tool_error": run(GENAI_AGENT, "degraded", BOT, tools=(1, 1)),
    "mcp_openinference/success": run(
        BOT, "success", BOT, tools=(1, 0), tokens=(42, 18, 0, 60), models=[SNAPSHOT]
    ),
    "mcp_openinference/model_error": run(BOT, "failure", BOT, models=["gpt-4o-mini"]),
    "mcp_openinference/tool_error": run(
        BOT, "degraded", BOT, tools=(1, 1), tokens=(42, 18, 0, 60), models=[SNAPSHOT]
    ),
}

ROOT_CAUSES: dict[str, tuple[str | None, str | None, str | None]] = {
    # failure_type, the failing span's name, error_message (item 3: root cause, not the wrapper)
    "langfuse/success": (None, None, None),
    "langfuse/model_error": ("dependency_unavailable", LF_CHAT, HTTP_500),  # item 8: a provider's 500
    "langfuse/tool_error": ("tool_timeout", "lookup_inventory", "inventory service timed out"),
    "mcp_sdk/success": (None, None, None),
    "mcp_sdk/success_initialize": (None, None, None),
    "mcp_sdk/model_error": ("dependency_unavailable", GENAI_AGENT, HTTP_500),
    "mcp_sdk/tool_error": ("tool_error", "tools/call reserve_stock", None),  # the SDK sends no message
    "mcp_traceloop/success": (None, None, None),
    "mcp_traceloop/model_error": ("dependency_unavailable", GENAI_AGENT, HTTP_500),
    "mcp_traceloop/tool_error": (
        "tool_timeout",
        "reserve_stock.tool",
        "Error executing tool reserve_stock: inventory service timed out",
    ),
    "mcp_openinference/success": (None, None, None),
    "mcp_openinference/model_error": ("dependency_unavailable", "ChatCompletion", HTTP_500),
    "mcp_openinference/tool_error": ("tool_timeout", "reserve_stock", "inventory service timed out"),
}

# -- storing a recording ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Stored]:
    """Each recording stored once for the module (with the default config)."""
    cache: dict[str, Stored] = {}

    def get(recording: str) -> Stored:
        if recording not in cache:
            root = tmp_path_factory.mktemp(recording.replace("/", "-"))
            cache[recording] = store_recording(root, recording)
        return cache[recording]

    return get


def columns(rows: list[dict[str, Any]], names: tuple[str, ...]) -> Counter[Row]:
    return Counter(tuple(row[c] for c in names) for row in rows)


# -- spans -----------------------------------------------------------------------------------


def test_every_recording_is_tested() -> None:
    on_disk = {f"{p.parent.name}/{p.stem}" for r in ("langfuse", "mcp_sdk", "mcp_traceloop", "mcp_openinference")
               for p in (RECORDED / r).glob("*.pb")}  # fmt: skip
    assert on_disk == set(RECORDINGS) == set(TEXTS) == set(RUNS) == set(ROOT_CAUSES)


@pytest.mark.parametrize("recording", RECORDINGS)
def test_span_columns(stored: Callable[[str], Stored], recording: str) -> None:
    """Operation, agent, tool, model, tokens, status, error and failure type, user and session of
    every span (item 4: MCP protocol traffic is ``mcp_protocol``, a tools/call ``mcp``)."""
    assert columns(stored(recording).spans, SPAN_COLUMNS) == Counter(SPANS[recording])


@pytest.mark.parametrize("recording", RECORDINGS)
def test_span_texts(stored: Callable[[str], Stored], recording: str) -> None:
    """The texts of every span that is not protocol traffic (item 7: as people wrote them)."""
    work = [s for s in stored(recording).spans if s["operation"] != "mcp_protocol"]
    assert columns(work, TEXT_COLUMNS) == Counter(TEXTS[recording])


def test_langfuse_keeps_the_decorators_input_in_the_attributes(stored: Callable[[str], Stored]) -> None:
    """Item 7: the ``@observe`` wrapper is unwrapped into ``input_text``, its structure kept."""
    agent = next(s for s in stored("langfuse/success").spans if s["operation"] == "agent_run")
    attributes = json.loads(agent["attributes"])
    assert attributes["langfuse.observation.input"] == json.dumps({"args": [QUESTION], "kwargs": {}})
    assert attributes["langfuse.observation.type"] == "agent"


def test_langfuse_reads_cached_tokens_from_the_raw_usage_object(stored: Callable[[str], Stored]) -> None:
    """Item 5: Langfuse's OpenAI integration sends OpenAI's usage object as it came, the cached
    tokens nested in ``prompt_tokens_details``."""
    chat = [s for s in stored("langfuse/success").spans if s["operation"] == "chat"]
    usage = [json.loads(json.loads(s["attributes"])["langfuse.observation.usage_details"]) for s in chat]
    assert [u["prompt_tokens_details"]["cached_tokens"] for u in usage] == [384, 384]
    assert [s["cached_tokens"] for s in chat] == [384, 384]


# -- runs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("recording", RECORDINGS)
def test_one_run_with_its_outcome_agent_tools_tokens_and_models(
    stored: Callable[[str], Stored], recording: str
) -> None:
    """Exactly one run per recording: the MCP handshake (``server/discover`` or ``initialize``)
    and ``notifications/initialized`` are traces of their own and no run (item 4)."""
    runs = stored(recording).runs
    assert len(runs) == 1
    assert {c: runs[0][c] for c in RUN_COLUMNS} == RUNS[recording]


@pytest.mark.parametrize("recording", RECORDINGS)
def test_run_root_cause(stored: Callable[[str], Stored], recording: str) -> None:
    """The run's failure type, failing span and message are the root cause's (item 3)."""
    found = stored(recording)
    (only,) = found.runs
    cause = (only["failure_type"], found.span_name(only["failing_span_id"]), only["error_message"])
    assert cause == ROOT_CAUSES[recording]


def test_mcp_sdk_traces_the_handshake_apart_from_the_run(stored: Callable[[str], Stored]) -> None:
    """Item 4: the 2.x client opens a session with ``server/discover`` (or ``initialize`` and
    ``notifications/initialized``) before the agent runs; those traces are protocol traffic only."""
    for recording, traces in (("mcp_sdk/success", 2), ("mcp_sdk/success_initialize", 3)):
        found = stored(recording)
        (only,) = found.runs
        others = [s for s in found.spans if s["trace_id"] != only["trace_id"]]
        assert found.traces == traces
        assert {s["operation"] for s in others} == {"mcp_protocol"}


# -- capture_text: false ---------------------------------------------------------------------


@pytest.mark.parametrize("recording", RECORDINGS)
def test_capture_text_false_stores_the_question_nowhere(tmp_path: Path, recording: str) -> None:
    """Item 10: with ``capture_text: false`` the question and the answer are in no column of any
    Parquet file (texts, attributes, events, run partials), nor in the files' bytes."""
    found = store_recording(tmp_path, recording, capture_text=False)
    files = sorted(found.data_dir.rglob("*.parquet"))
    assert files
    for path in files:
        assert MARKER.encode() not in path.read_bytes(), path
        table = pq.read_table(path)
        for name in table.column_names:
            values = table.column(name).to_pylist()
            assert not [v for v in values if isinstance(v, str) and MARKER in v], (path.name, name)
    assert {s["input_text"] for s in found.spans} == {None}
