"""Plain prompt/response text out of the many shapes conventions send messages in.

Shapes understood, as JSON strings or as structured (array/kvlist) attribute values:

- OpenTelemetry GenAI ``gen_ai.input.messages`` / ``gen_ai.output.messages``:
  ``[{"role": "user", "parts": [{"type": "text", "content": "..."}]}]``
- OpenAI/Anthropic-style ``[{"role": ..., "content": "..." | [{"type": "text", "text": ...}]}]``
- wrappers: ``{"messages": [...]}``, ``{"choices": [{"message": {...}}]}``, ``{"message": {...}}``
- Gemini-style parts without a type: ``{"parts": [{"text": "..."}]}``
- a decorated function's arguments, as Langfuse ``@observe`` and Traceloop ``@workflow``/``@agent``/
  ``@task``/``@tool`` record them: ``{"args": [...], "kwargs": {...}}`` (``unwrap_arguments``)

Texts of all messages are joined with newlines. A tool's result sent back to the model is text
like a tool message's content. Parts that are not text (images, reasoning) are skipped; so are
tool calls in a prompt, while in an answer (``answer=True``) each tool call is
written ``name(arguments)``, the arguments as JSON (``get_weather({"city": "Paris"})``), one per
line after the message's text: every convention's tool-call answer reads the same. A
JSON-encoded string ('"hi"') is decoded. A value whose shape is not recognised is kept as it was
sent (a JSON string stays the string), so no text is lost; a recognised message with empty text
gives "" (an empty model response is a failure worth seeing, not a missing value).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})
# Parts and items that are a tool call: GenAI "tool_call", Anthropic "tool_use", OpenAI Responses
# "function_call" (arguments, or Anthropic's input).
_CALL_PART_TYPES = frozenset({"tool_call", "tool_use", "function_call"})
# Parts that carry a tool's result back to the model: GenAI, Anthropic, OpenAI Responses.
_RESULT_PART_TYPES = frozenset({"tool_call_response", "tool_result", "function_call_output"})
_WRAPPER_KEYS = ("messages", "choices")
_MAX_DEPTH = 6
# A decorated function's argument that holds the user's question, by name, most specific first.
QUESTION_ARGUMENTS = ("query", "question", "input", "prompt", "messages", "message")
_ARGUMENTS_KEYS = frozenset({"args", "kwargs"})


def text_of(value: Any, answer: bool = False, entity: str | None = None) -> str | None:
    """The text carried by one attribute value, or None when there is none.

    ``answer``: the value is a model's answer, whose tool calls are written out. ``entity``: the
    Traceloop entity name (``Class.method``), which tells a method's ``self`` in the arguments."""
    if value is None:
        return None
    if isinstance(value, str):
        return _text_of_string(value, answer, entity)
    if isinstance(value, list | dict):
        found = _extract_value(value, answer, entity)
        return found if found is not None else orjson.dumps(value).decode()
    return orjson.dumps(value).decode()


def _text_of_string(value: str, answer: bool, entity: str | None) -> str:
    head = value[:1]
    if head.isspace():
        head = value.lstrip()[:1]
    if head not in ('"', "[", "{"):
        return value
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return value
    if isinstance(parsed, str):  # a JSON-encoded string, as OpenLLMetry records return values
        return parsed
    found = _extract_value(parsed, answer, entity)
    return value if found is None else found


def _extract_value(obj: Any, answer: bool, entity: str | None) -> str | None:
    if isinstance(obj, dict) and obj.keys() == _ARGUMENTS_KEYS:
        return unwrap_arguments(obj, entity)
    return _extract(obj, 0, answer)


def unwrap_arguments(wrapper: dict[str, Any], entity: str | None) -> str | None:
    """The user's question in a decorated function's ``{"args": [...], "kwargs": {...}}``.

    - a named question argument (``QUESTION_ARGUMENTS``: query, question, input, prompt,
      messages, message), else
    - the only positional argument (a method's ``self``, which Traceloop records as the class
      name, is left out when the entity name ``Class.method`` says so), else
    - keyword arguments only: them, as a JSON object (a tool's arguments read like a tool call's),
    - else None: the wrapper is kept as sent.

    A message list gives its last user message's text; a string is itself; anything else is
    written as JSON. The wrapper stays in ``attributes`` either way."""
    args, kwargs = wrapper["args"], wrapper["kwargs"]
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        return None
    for name in QUESTION_ARGUMENTS:
        if name in kwargs:
            return _argument_text(kwargs[name])
    if args and entity and "." in entity and args[0] == entity.split(".")[-2]:
        args = args[1:]  # Traceloop's JSONEncoder writes a method's self as its class name
    if len(args) == 1 and not kwargs:
        return _argument_text(args[0])
    if kwargs and not args:
        return _json(kwargs)
    return None


def _argument_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(m, dict) and "role" in m for m in value):
        users = [m for m in value if m.get("role") == "user"]
        text = _message(users[-1], 0, False) if users else None
        if text is not None:
            return text
    found = _extract(value, 0, False) if isinstance(value, list | dict) else None
    return found if found is not None else _json(value)


def _json(value: Any) -> str:
    """JSON as Python writes it by default (``{"city": "Paris"}``), non-ASCII kept."""
    return json.dumps(value, ensure_ascii=False)


def _extract(obj: Any, depth: int, answer: bool) -> str | None:
    """Text of a message list or a wrapper around one; None when the shape is unknown."""
    if depth > _MAX_DEPTH:
        return None
    if isinstance(obj, list):
        return _join(obj, depth, answer)
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, list):
                return _join(inner, depth, answer)
        return _message(obj, depth, answer)
    return None


def _join(items: list[Any], depth: int, answer: bool) -> str | None:
    recognised = False
    pieces: list[str] = []
    for item in items:
        text = _message(item, depth + 1, answer)
        if text is None:
            continue
        recognised = True
        if text:
            pieces.append(text)
    return "\n".join(pieces) if recognised else None


def _message(msg: Any, depth: int, answer: bool) -> str | None:
    """Text of one message (or choice, or content part); None when it has no text field.
    In an answer, the message's tool calls follow its text."""
    if isinstance(msg, str):
        return msg
    if not isinstance(msg, dict) or depth > _MAX_DEPTH:
        return None
    text = _message_text(msg, depth, answer)
    if answer:
        calls = [call for call in map(_call, _message_calls(msg)) if call is not None]
        if calls:
            return "\n".join([text, *calls] if text else calls)
    return text


def _message_text(msg: dict[str, Any], depth: int, answer: bool) -> str | None:
    parts = msg.get("parts")
    if isinstance(parts, list):
        return _parts(parts, answer)
    content = msg.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return _parts(content, answer)
    if isinstance(content, dict):
        return _message(content, depth + 1, answer)
    text = msg.get("text")
    if isinstance(text, str):
        return text
    inner = msg.get("message")
    if isinstance(inner, dict):
        return _message(inner, depth + 1, answer)
    kind = msg.get("type")
    if answer and kind in _CALL_PART_TYPES:
        return _call(msg)  # an OpenAI Responses output item
    if kind in _RESULT_PART_TYPES:
        return _result(msg)  # an OpenAI Responses input item
    return None


def _message_calls(msg: dict[str, Any]) -> list[Any]:
    """The tool calls a message carries beside its content (OpenAI ``tool_calls``, the legacy
    ``function_call``)."""
    calls = msg.get("tool_calls")
    found = list(calls) if isinstance(calls, list) else []
    legacy = msg.get("function_call")
    if isinstance(legacy, dict):
        found.append(legacy)
    return found


def _call(call: Any) -> str | None:
    """``name(arguments)`` of one tool call in any of the shapes models answer with: OpenAI
    ``{"function": {"name", "arguments"}}``, GenAI/Responses ``{"name", "arguments"}``, Anthropic
    ``{"name", "input"}``, Gemini ``{"functionCall": {"name", "args"}}``, Bedrock ``{"toolUse":
    {"name", "input"}}``; None when it has no name."""
    if not isinstance(call, dict):
        return None
    for key in ("function", "functionCall", "function_call", "toolUse"):
        inner = call.get(key)
        if isinstance(inner, dict):
            call = inner
            break
    name = call.get("name")
    if not isinstance(name, str) or not name:
        return None
    for key in ("arguments", "input", "args"):
        if key in call:
            return tool_call_text(name, call[key])
    return f"{name}()"


def tool_call_text(name: str, arguments: Any) -> str:
    """``name(arguments)``: arguments sent as a JSON string are parsed and written again, so
    every convention's call reads the same; arguments that are not JSON are kept as sent."""
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments) if arguments.strip() else None
        except orjson.JSONDecodeError:
            return f"{name}({arguments})"
    return f"{name}()" if arguments is None else f"{name}({_json(arguments)})"


def _result(part: dict[str, Any]) -> str | None:
    """The text of a tool's result sent back to the model, as a tool message's content is:
    GenAI ``{"type": "tool_call_response", "response": ...}``, Anthropic ``{"type":
    "tool_result", "content": ...}``, OpenAI Responses ``{"type": "function_call_output",
    "output": ...}``, Gemini ``{"functionResponse": {"response": ...}}``, Bedrock
    ``{"toolResult": {"content": [{"text": ...} | {"json": ...}]}}``."""
    inner = part.get("functionResponse") or part.get("toolResult")
    if isinstance(inner, dict):
        part = inner
    for key in ("response", "content", "output", "result"):
        if key not in part:
            continue
        value = part[key]
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            pieces = [_result_piece(item) for item in value]
            return "\n".join(p for p in pieces if p)
        return None if value is None else _json(value)
    return None


def _result_piece(item: Any) -> str | None:
    if isinstance(item, dict) and "json" in item and "text" not in item:
        return _json(item["json"])  # Bedrock's JSON result block
    return _part(item, False)


def _parts(parts: list[Any], answer: bool) -> str | None:
    recognised = False
    pieces: list[str] = []
    for part in parts:
        text = _part(part, answer)
        if text is None:
            continue
        recognised = True
        if text:
            pieces.append(text)
    return "\n".join(pieces) if recognised else None


def _part(part: Any, answer: bool) -> str | None:
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        return None
    kind = part.get("type")
    if answer and (kind in _CALL_PART_TYPES or "functionCall" in part or "toolUse" in part):
        return _call(part)
    if kind in _RESULT_PART_TYPES or "functionResponse" in part or "toolResult" in part:
        return _result(part)
    if kind is not None and kind not in _TEXT_PART_TYPES:
        return None
    text = part.get("content")
    if not isinstance(text, str):
        text = part.get("text")
    return text if isinstance(text, str) else None
