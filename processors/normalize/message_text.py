"""Plain prompt/response text out of the many shapes conventions send messages in.

Shapes understood, as JSON strings or as structured (array/kvlist) attribute values:

- OpenTelemetry GenAI ``gen_ai.input.messages`` / ``gen_ai.output.messages``:
  ``[{"role": "user", "parts": [{"type": "text", "content": "..."}]}]``
- OpenAI/Anthropic-style ``[{"role": ..., "content": "..." | [{"type": "text", "text": ...}]}]``
- wrappers: ``{"messages": [...]}``, ``{"choices": [{"message": {...}}]}``, ``{"message": {...}}``
- Gemini-style parts without a type: ``{"parts": [{"text": "..."}]}``

Texts of all messages are joined with newlines. Parts that are not text (tool calls, images,
reasoning) are skipped. A JSON-encoded string ('"hi"') is decoded. A value whose shape is not
recognised is kept as it was sent (a JSON string stays the string), so no text is lost; a
recognised message with empty text gives "" (an empty model response is a failure worth
seeing, not a missing value).
"""

from __future__ import annotations

from typing import Any

import orjson

_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})
_WRAPPER_KEYS = ("messages", "choices")
_MAX_DEPTH = 6


def text_of(value: Any) -> str | None:
    """The text carried by one attribute value, or None when there is none."""
    if value is None:
        return None
    if isinstance(value, str):
        return _text_of_string(value)
    if isinstance(value, list | dict):
        found = _extract(value, 0)
        return found if found is not None else orjson.dumps(value).decode()
    return orjson.dumps(value).decode()


def _text_of_string(value: str) -> str:
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
    found = _extract(parsed, 0)
    return value if found is None else found


def _extract(obj: Any, depth: int) -> str | None:
    """Text of a message list or a wrapper around one; None when the shape is unknown."""
    if depth > _MAX_DEPTH:
        return None
    if isinstance(obj, list):
        return _join(obj, depth)
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, list):
                return _join(inner, depth)
        return _message(obj, depth)
    return None


def _join(items: list[Any], depth: int) -> str | None:
    recognised = False
    pieces: list[str] = []
    for item in items:
        text = _message(item, depth + 1)
        if text is None:
            continue
        recognised = True
        if text:
            pieces.append(text)
    return "\n".join(pieces) if recognised else None


def _message(msg: Any, depth: int) -> str | None:
    """Text of one message (or choice, or content part); None when it has no text field."""
    if isinstance(msg, str):
        return msg
    if not isinstance(msg, dict) or depth > _MAX_DEPTH:
        return None
    parts = msg.get("parts")
    if isinstance(parts, list):
        return _parts(parts)
    content = msg.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return _parts(content)
    if isinstance(content, dict):
        return _message(content, depth + 1)
    text = msg.get("text")
    if isinstance(text, str):
        return text
    inner = msg.get("message")
    if isinstance(inner, dict):
        return _message(inner, depth + 1)
    return None


def _parts(parts: list[Any]) -> str | None:
    recognised = False
    pieces: list[str] = []
    for part in parts:
        text = _part(part)
        if text is None:
            continue
        recognised = True
        if text:
            pieces.append(text)
    return "\n".join(pieces) if recognised else None


def _part(part: Any) -> str | None:
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        return None
    kind = part.get("type")
    if kind is not None and kind not in _TEXT_PART_TYPES:
        return None
    text = part.get("content")
    if not isinstance(text, str):
        text = part.get("text")
    return text if isinstance(text, str) else None
