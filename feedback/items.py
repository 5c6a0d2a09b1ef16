"""Feedback items as clients post them (``POST /api/v1/feedback``), checked and made rows.

    {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
     "user_id": "u-42", "value": "down", "comment": "wrong receipt total",
     "time": "2026-11-30T10:00:00Z", "metadata": {"app": "slack"}}

One object or a list of them. ``value`` is thumbs (``"up"``/``"down"``, ``true``/``false``), a
rating (an integer 1-5) or a score (a number in 0-1 written with a decimal point, or ``0``);
``kind`` (``thumbs``, ``rating``, ``score``) says which when the value alone would not (a score
of exactly 1: ``{"value": 1, "kind": "score"}``); ``"kind": "label"`` takes a category
(``"correct"``, ``"incorrect"``: negative when ``storage.feedback.NEGATIVE_LABELS`` has it).
Optional: ``span_id``, ``user_id``, ``name`` (what was rated; default ``user``), ``label``,
``comment``, ``time`` (ISO 8601 or Unix seconds; default: when received), ``metadata`` (an
object), ``id`` (the client's idempotency key: an item posted twice with one id is stored once, the
latest copy read; without it, identical items are one, a client's retry included), ``tenant``
(``request_tenant``: where the request's items are stored when the server has no ingest tokens,
as a span's tenant attribute says where the span is; with ingest tokens, the token's tenant only).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from core.tenants import sanitize_tenant
from storage.feedback import NEGATIVE_LABELS
from storage.tables import FeedbackRow

MAX_ITEMS = 1000
MAX_COMMENT = 10_000
"""Characters of a comment kept (the rest cut)."""
MAX_TEXT = 1_000
"""Characters of an id, user id, name or label at most."""
MAX_METADATA = 16_384
"""Bytes of metadata (as JSON) at most."""
KINDS = ("thumbs", "rating", "score", "label")
_TRACE = re.compile(r"[0-9a-fA-F]{32}")
_SPAN = re.compile(r"[0-9a-fA-F]{16}")
_UP = ("up", "thumbs_up", "thumbsup", "positive", "+1", "yes", "👍")
_DOWN = ("down", "thumbs_down", "thumbsdown", "negative", "-1", "no", "👎")
_KEYS = (
    "id", "trace_id", "span_id", "user_id", "name", "value", "kind", "label", "comment", "time", "metadata",
    "tenant",
)  # fmt: skip


def request_tenant(doc: Any, tenant: str, authenticated: bool) -> tuple[str, list[str]]:
    """The tenant a request's items (``doc``: one or a list) are stored under, and the problems of
    their ``tenant`` keys (``[index].tenant: message``).

    ``authenticated`` (the server has ingest tokens): ``tenant`` is the token's, and an item may
    name that one only. Otherwise the items may name theirs, one for the request, sanitised as a
    span's tenant attribute is (``core.tenants``); when none does, ``tenant`` (``default``)."""
    items = doc if isinstance(doc, list) else [doc]
    named: dict[str, tuple[int, str]] = {}  # sanitised → (first index naming it, as named)
    problems = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "tenant" not in item:
            continue
        value = item["tenant"]
        if not isinstance(value, str) or not value.strip():
            problems.append(f"[{i}].tenant: must be a non-empty string")
            continue
        clean = sanitize_tenant(value.strip())
        if authenticated and clean != tenant:
            problems.append(f"[{i}].tenant: {value[:100]!r} is not the ingest token's tenant ({tenant})")
        named.setdefault(clean, (i, value))
    if authenticated or not named:
        return tenant, problems
    (first, (i, one)), *others = named.items()
    problems += [f"[{j}].tenant: {other[:100]!r}, but [{i}] names {one[:100]!r}: one tenant a request"
                 for _, (j, other) in others]  # fmt: skip
    return first, problems


def parse(doc: Any, tenant: str, received_at: datetime) -> tuple[list[FeedbackRow], list[str]]:
    """The rows of a request's decoded JSON body (one item or a list), and the problems of the
    items refused (``[index].key: message``)."""
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        return [], ["body: no feedback item"]
    if len(items) > MAX_ITEMS:
        return [], [f"body: {len(items)} items, at most {MAX_ITEMS} a request"]
    rows, problems = [], []
    for i, item in enumerate(items):
        row, found = item_row(item, tenant, received_at)
        problems += [f"[{i}].{p}" for p in found]
        if row is not None:
            rows.append(row)
    return rows, problems


def item_row(
    item: Any, tenant: str, received_at: datetime, source: str = "api"
) -> tuple[FeedbackRow | None, list[str]]:
    """One item's row, or the problems that refuse it (``key: message``); ``source`` names the
    shape it came in (``api``, ``langfuse``, ``phoenix``)."""
    if not isinstance(item, dict):
        return None, ["(item): must be an object"]
    problems = [f"{k}: unknown key (known: {', '.join(_KEYS)})" for k in item if k not in _KEYS]
    trace_id = item.get("trace_id")
    if not isinstance(trace_id, str) or not _TRACE.fullmatch(trace_id):
        problems.append("trace_id: must be 32 hex digits")
    span_id = item.get("span_id")
    if span_id is not None and (not isinstance(span_id, str) or not _SPAN.fullmatch(span_id)):
        problems.append("span_id: must be 16 hex digits")
    texts = {k: item.get(k) for k in ("id", "user_id", "name", "label", "comment")}
    problems += [f"{k}: must be a string" for k, v in texts.items() if not isinstance(v, str | None)]
    problems += [
        f"{k}: at most {MAX_TEXT} characters"
        for k, v in texts.items()
        if k != "comment" and isinstance(v, str) and len(v) > MAX_TEXT
    ]
    metadata = item.get("metadata")
    metadata_json = None
    if metadata is not None and not isinstance(metadata, dict):
        problems.append("metadata: must be an object")
    elif metadata is not None:
        try:
            metadata_json = orjson.dumps(metadata).decode()
        except orjson.JSONEncodeError:
            problems.append("metadata: nested too deeply")
        if metadata_json is not None and len(metadata_json) > MAX_METADATA:
            problems.append(f"metadata: at most {MAX_METADATA} bytes as JSON")
    valued = _value(item.get("value"), item.get("kind"))
    if isinstance(valued, str):
        problems.append(valued)
    when = _time(item.get("time"), received_at)
    if isinstance(when, str):
        problems.append(when)
    if problems or isinstance(valued, str) or isinstance(when, str):
        return None, problems
    kind, value, score = valued
    negative = score < 0.5 if kind != "rating" else value <= 2
    label = texts["label"] if kind != "label" else str(item["value"]).strip()
    comment = texts["comment"]
    trace, span = str(trace_id).lower(), span_id.lower() if isinstance(span_id, str) else None
    name = texts["name"] or "user"
    # The item's identity: the client's id, else everything the item says (its own time if it
    # gave one; never when it was received, so a client's retry is the same item).
    identity = (
        ["id", texts["id"]] if texts["id"] else
        ["item", trace, span, texts["user_id"], name, kind, repr(value), label, comment, metadata_json,
         item.get("time") is not None and when.isoformat()]
    )  # fmt: skip
    digest = hashlib.sha256(orjson.dumps([tenant, *identity])).hexdigest()[:32]
    return FeedbackRow(
        digest, trace, span, texts["user_id"], name, kind, value, score, negative, label,
        comment[:MAX_COMMENT] if comment else comment, when, received_at, source, metadata_json,
    ), []  # fmt: skip


def _value(value: Any, kind: Any) -> tuple[str, float, float] | str:
    """(kind, value, score on 0-1), or the problem."""
    if kind is not None and kind not in KINDS:
        return f"kind: one of {', '.join(KINDS)}"
    if value is None:
        return "value: required (thumbs up/down, a rating 1-5 or a score 0-1)"
    if kind == "label":
        if not isinstance(value, str) or not value.strip():
            return "value: a label is a string"
        bad = value.strip().lower() in NEGATIVE_LABELS
        return "label", 0.0 if bad else 1.0, 0.0 if bad else 1.0
    if isinstance(value, bool | str):
        if kind not in (None, "thumbs"):
            return f"value: {kind} must be a number"
        text = str(value).lower() if isinstance(value, str) else ("up" if value else "down")
        if text in _UP:
            return "thumbs", 1.0, 1.0
        if text in _DOWN:
            return "thumbs", 0.0, 0.0
        return "value: thumbs must be up or down (or true/false)"
    if not isinstance(value, int | float) or value != value or value in (float("inf"), float("-inf")):
        return "value: must be up/down, a rating 1-5 or a score 0-1"
    if kind == "thumbs":
        if value in (0, 1):
            return "thumbs", float(value), float(value)
        return "value: thumbs must be up or down (or 1/0)"
    if kind == "rating" or (kind is None and isinstance(value, int) and value != 0):
        if value != int(value) or not 1 <= value <= 5:
            return "value: a rating is an integer 1-5 (send kind: score for a score)"
        return "rating", float(value), (float(value) - 1) / 4
    if not 0 <= value <= 1:
        return "value: a score is between 0 and 1"
    return "score", float(value), float(value)


def _time(value: Any, received_at: datetime) -> datetime | str:
    """When the feedback was given: 1970 at the earliest, a day after it was received at the latest."""
    if value is None:
        return received_at
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            when = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return "time: not a Unix time in seconds"
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return f"time: not an ISO 8601 time: {value[:40]!r}"
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    else:
        return "time: an ISO 8601 string or Unix seconds"
    if when.year < 1970 or when > received_at + timedelta(days=1):
        return "time: between 1970 and a day from now"
    return when
