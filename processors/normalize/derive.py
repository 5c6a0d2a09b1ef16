"""Canonical values that need more than "first attribute present wins".

Every function takes ``found`` (slot → raw attribute value, see ``processors.normalize.slots``) plus what
else it needs, and is pure: the normalize processor calls each once per distinct combination of
the inputs it reads (``processors.normalize.canonical``), so these stay the one statement of each rule.
"""

from __future__ import annotations

from typing import Any

from core.model import as_str
from processors.normalize import conventions as conv
from processors.normalize.message_text import text_of, tool_call_text
from processors.normalize.resolve import as_float, as_int, as_json_object

Usage = tuple[int | None, int | None, int | None, int | None, int | None, float | None]
NO_USAGE: Usage = (None, None, None, None, None, None)


def operation(name: str, found: dict[str, Any], overrides: dict[str, str]) -> str:
    """The operation, by the first convention that says: config, MCP, GenAI, OpenInference,
    OpenLLMetry, Langfuse, the span name, and finally "a model was called" → chat."""
    op = overrides.get(name)
    if op is not None:
        return op
    if "sig.mcp_method" in found:
        return mcp_operation(as_str(found["sig.mcp_method"]) or "")
    op = _lookup(found.get("sig.gen_ai_operation"), conv.GEN_AI_OPERATIONS)
    if op is not None:
        return op
    raw = found.get("sig.openinference_kind")
    if raw is not None:
        return _lookup(raw, conv.OPENINFERENCE_KINDS) or "other"
    op = _lookup(found.get("sig.traceloop_kind"), conv.TRACELOOP_KINDS) or _lookup(
        found.get("sig.llm_request_type"), conv.LLM_REQUEST_TYPES
    )
    if op is not None:
        return op
    raw = found.get("sig.langfuse_type")
    if raw is not None:
        return _lookup(raw, conv.LANGFUSE_TYPES) or "other"
    mcp = mcp_call(name)
    if mcp is not None:
        return mcp_operation(mcp[0])
    op = conv.SPAN_NAME_OPERATIONS.get(name.partition(" ")[0])
    if op is not None:
        return op
    return "chat" if "model" in found else "other"


def mcp_operation(method: str) -> str:
    """The operation of an MCP method: a tool call "mcp", a resource read "retrieval", else
    "mcp_protocol"."""
    return conv.MCP_METHOD_OPERATIONS.get(method.strip(), conv.MCP_PROTOCOL)


def mcp_call(name: str) -> tuple[str, str | None] | None:
    """(method, target) of an MCP span name, None when the name is not one.

    "MCP send tools/call get_weather" (MCP Python SDK 2.x client), "tools/call get_weather"
    (the MCP semantic conventions, the SDK's server), "tools/list.mcp" (Traceloop)."""
    rest = name.strip()
    explicit = False
    for prefix in conv.MCP_SPAN_NAME_PREFIXES:
        if rest.startswith(prefix):
            rest, explicit = rest[len(prefix) :].lstrip(), True
            break
    method, _, target = rest.partition(" ")
    if method.endswith(conv.MCP_SPAN_NAME_SUFFIX) and len(method) > len(conv.MCP_SPAN_NAME_SUFFIX):
        method, explicit = method[: -len(conv.MCP_SPAN_NAME_SUFFIX)], True
    known = method in conv.MCP_METHODS or (
        method.startswith(conv.MCP_NOTIFICATIONS) and len(method) > len(conv.MCP_NOTIFICATIONS)
    )
    if not method or not (explicit or known):
        return None
    return method, target.strip() or None


def _lookup(raw: Any, table: dict[str, str]) -> str | None:
    return table.get(raw.lower()) if isinstance(raw, str) else None


def _after_first_word(name: str) -> str | None:
    rest = name.partition(" ")[2].strip()
    return rest or None


def tool_name(name: str, op: str, found: dict[str, Any]) -> str | None:
    """Tool name: attributes, else the target in "tools/call get_weather" / "MCP send tools/call
    get_weather" / "execute_tool x", else OpenLLMetry's entity name, else the tool span's own name
    (OpenInference, Langfuse)."""
    tool = as_str(found.get("tool_name"))
    if tool is not None or op not in ("tool", "mcp"):
        return tool
    mcp = mcp_call(name)
    if mcp is not None:
        return mcp[1] if mcp[0] == "tools/call" else None
    head = name.partition(" ")[0]
    if head == "execute_tool":
        return _after_first_word(name)
    if op == "mcp":
        return None
    entity = as_str(found.get("sig.entity_name"))
    if entity is not None:
        return entity
    return None if head in conv.SPAN_NAME_OPERATIONS else name


def agent_name(name: str, op: str, found: dict[str, Any]) -> str | None:
    """Agent name: attributes, else for an agent span its "invoke_agent X" target, entity name
    or own name, else Langfuse's trace name (Langfuse users name traces after the agent)."""
    agent = as_str(found.get("agent_name"))
    if agent is not None:
        return agent
    if op == "agent_run":
        head = name.partition(" ")[0]
        if head in ("invoke_agent", "create_agent"):
            agent = _after_first_word(name)
        elif "sig.entity_name" in found:
            agent = as_str(found["sig.entity_name"])
        elif head not in conv.SPAN_NAME_OPERATIONS:
            agent = name
        if agent is not None:
            return agent
    return as_str(found.get("sig.trace_name"))


def request_model(found: dict[str, Any]) -> str | None:
    """The model named in a span's request parameters (``llm.invocation_parameters``)."""
    params = as_json_object(found.get("sig.invocation_parameters"))
    if params is None:
        return None
    for key in conv.INVOCATION_MODEL_KEYS:
        model = params.get(key)
        if isinstance(model, str) and model.strip():
            return model.strip()
    return None


def usage(found: dict[str, Any]) -> Usage:
    """(input, output, cached, total, cache-write tokens, cost) of an LLM span.

    Token attributes first; Langfuse's usage_details fill the gaps (``usage_counts`` reads every
    provider's shape). Without a total, the total is input + output (+ cache reads and writes a
    provider counts apart from the input). A span with neither takes ``output_usage``."""
    inp = as_int(found.get("input_tokens"))
    out = as_int(found.get("output_tokens"))
    cached = as_int(found.get("cached_tokens"))
    total = as_int(found.get("total_tokens"))
    written = as_int(found.get("cache_write_tokens"))
    cost = as_float(found.get("cost_usd"))
    counts = usage_counts(as_json_object(found.get("sig.usage_details")))
    if counts is not None:
        inp = inp if inp is not None else counts[0]
        out = out if out is not None else counts[1]
        cached = cached if cached is not None else counts[2]
        total = total if total is not None else counts[3]
        written = written if written is not None else counts[4]
    if cost is None:
        cost = _total_cost(as_json_object(found.get("sig.cost_details")))
    if total is None and (inp is not None or out is not None):
        total = (inp or 0) + (out or 0)
    return inp, out, cached, total, written, cost


Counts = tuple[int | None, int | None, int | None, int | None, int | None]
"""(input, output, cached, total, cache-write) tokens, each as the provider counts it."""


def output_usage(output: Any) -> Counts | None:
    """The token counts of a raw provider response sent as an LLM span's output (its ``usage``,
    ``usage_metadata`` or ``usageMetadata``), for spans with no token attribute and no usage
    object; None when the output holds none."""
    if isinstance(output, str) and not any(key in output for key in conv.USAGE_WRAPPER_KEYS):
        return None  # not worth parsing
    response = as_json_object(output)
    if response is None:
        return None
    for key in conv.USAGE_WRAPPER_KEYS:
        value = response.get(key)
        if isinstance(value, dict):
            return usage_counts(value)
    return None


def usage_counts(obj: dict[str, Any] | None) -> Counts | None:
    """The token counts of a usage object in any provider's shape (``conventions.USAGE_*``), the
    input as the GenAI conventions count it (cache reads and writes included: added to the input
    of shapes that count them apart, Anthropic's, Bedrock's and Langfuse's); None when it has
    none of them."""
    if not obj:
        return None
    inp = _first_int(obj, *conv.USAGE_INPUT_KEYS)
    out = _first_int(obj, *conv.USAGE_OUTPUT_KEYS)
    total = _first_int(obj, *conv.USAGE_TOTAL_KEYS)
    apart = 0  # cache tokens the provider counts apart from the input
    cached = written = None
    for path, separate in conv.USAGE_CACHE_READ_PATHS:
        cached = _int_at(obj, path)
        if cached is not None:
            apart = cached if separate else 0
            break
    for path, separate in conv.USAGE_CACHE_WRITE_PATHS:
        written = _int_at(obj, path)
        if written is not None:
            apart += written if separate else 0
            break
    if inp is None and out is None and total is None and cached is None:
        return None
    if total is None and (inp is not None or out is not None):
        total = (inp or 0) + (out or 0) + apart
    if inp is not None:
        inp += apart  # the GenAI conventions' input: cache reads and writes included
    return inp, out, cached, total, written


def _int_at(obj: dict[str, Any], path: tuple[str, ...]) -> int | None:
    value: Any = obj
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return as_int(value)


def _first_int(details: dict[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = as_int(details.get(key))
        if value is not None:
            return value
    return None


def _total_cost(details: dict[str, Any] | None) -> float | None:
    """Langfuse cost_details: "total" when sent, else the sum of the parts (as Langfuse does)."""
    if not details:
        return None
    total = as_float(details.get("total"))
    if total is not None:
        return total
    parts = [as_float(v) for v in details.values()]
    known = [p for p in parts if p is not None]
    return sum(known) if known else None


def exception_of(events: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    """(exception.type, exception.message) of the first exception event."""
    for event in events:
        if event["name"] == conv.EXCEPTION_EVENT:
            attrs = event["attributes"]
            return as_str(attrs.get("exception.type")), as_str(attrs.get("exception.message"))
    return None, None


def error_type(found: dict[str, Any], exc_type: str | None) -> str | None:
    """error.type, else the exception event's exception.type, else the JSON-RPC error code;
    a class's repr ("<class 'openai.InternalServerError'>") is its name. error.type "_OTHER"
    (the GenAI conventions' "no better value") gives way to an exception type."""
    reported = clean_error_type(as_str(found.get("error_type")))
    exception = clean_error_type(exc_type)
    if reported == conv.ERROR_TYPE_OTHER and exception:
        return exception
    if reported or exception:
        return reported or exception
    code = as_str(found.get("sig.rpc_error_code"))
    if code is not None and code not in conv.RPC_SUCCESS_CODES:
        return code
    return None


def clean_error_type(raw: str | None) -> str | None:
    """An error type as people write it: "<class 'openai.InternalServerError'>" (a class's repr,
    as some libraries record ``str(type(exc))``) is "openai.InternalServerError"; surrounding
    white space goes; empty is None."""
    if raw is None:
        return None
    text = raw.strip()
    match = conv.ERROR_TYPE_REPR.fullmatch(text)
    if match is not None:
        text = match.group(1).strip()
    return text or None


def tool_error(found: dict[str, Any]) -> str | None:
    """ "tool_error" when a tool/MCP result says isError (the JSON-RPC call itself succeeded)."""
    flag = found.get("sig.tool_is_error")
    if flag is True or (isinstance(flag, str) and flag.lower() == "true"):
        return "tool_error"
    result = as_json_object(found.get("sig.tool_result"))
    return "tool_error" if result is not None and result.get("isError") is True else None


def error_message(
    found: dict[str, Any], exc_message: str | None, status: str, status_message: str | None
) -> str | None:
    message = as_str(found.get("error_message")) or exc_message or as_str(found.get("sig.error_message"))
    if message:
        return message
    return status_message if status == "error" else None


def indexed_text(
    attrs: dict[str, Any], families: tuple[tuple[str, str, str], ...], answer: bool = False
) -> str | None:
    """Text of flattened message lists (gen_ai.prompt.0.content, llm.input_messages.0.message...);
    in an ``answer``, each message's flattened tool calls follow its text (message_text's form)."""
    for prefix, content_suffix, role_suffix in families:
        if f"{prefix}0{content_suffix}" not in attrs and f"{prefix}0{role_suffix}" not in attrs:
            continue
        calls = conv.INDEXED_TOOL_CALLS.get(prefix) if answer else None
        pieces: list[str] = []
        for i in range(10_000):
            base = f"{prefix}{i}"
            content = attrs.get(base + content_suffix)
            if content is None and base + role_suffix not in attrs:
                break
            text = text_of(content, answer) if content is not None else _openinference_contents(attrs, base)
            if text:
                pieces.append(text)
            if calls is not None:
                pieces.extend(_indexed_calls(attrs, base, calls))
        return "\n".join(pieces)
    return None


def _indexed_calls(attrs: dict[str, Any], base: str, paths: tuple[str, str, str]) -> list[str]:
    """``name(arguments)`` of each flattened tool call of one message."""
    middle, name_suffix, arguments_suffix = paths
    out: list[str] = []
    for j in range(10_000):
        name = as_str(attrs.get(f"{base}{middle}{j}{name_suffix}"))
        if name is None:
            break
        out.append(tool_call_text(name, attrs.get(f"{base}{middle}{j}{arguments_suffix}")))
    return out


def _openinference_contents(attrs: dict[str, Any], base: str) -> str | None:
    middle, suffix = conv.OPENINFERENCE_CONTENTS
    pieces: list[str] = []
    for j in range(10_000):
        text = attrs.get(f"{base}{middle}{j}{suffix}")
        if text is None:
            break
        if isinstance(text, str) and text:
            pieces.append(text)
    return "\n".join(pieces) if pieces else None


def event_text(events: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    """(input, output) text carried by GenAI message events, each None when no event has any."""
    inputs: list[str] = []
    outputs: list[str] = []
    for event in events:
        name = event["name"]
        attrs = event["attributes"]
        if name in conv.INPUT_EVENTS:
            _collect(attrs, conv.INPUT_EVENT_KEYS, inputs)
        elif name in conv.OUTPUT_EVENTS:
            _collect(attrs, conv.OUTPUT_EVENT_KEYS, outputs, answer=True)
        elif name == conv.DETAILS_EVENT:
            _collect(attrs, ("gen_ai.input.messages",), inputs)
            _collect(attrs, ("gen_ai.output.messages",), outputs, answer=True)
    return ("\n".join(inputs) if inputs else None), ("\n".join(outputs) if outputs else None)


def _collect(attrs: dict[str, Any], keys: tuple[str, ...], into: list[str], answer: bool = False) -> None:
    for key in keys:
        value = attrs.get(key)
        if value is not None:
            text = text_of(value, answer)
            if text:
                into.append(text)
            return
