"""The score and annotation shapes of Langfuse and Phoenix clients, as native feedback items
(``feedback.items``), so those clients can send their scores here unchanged.

- **Langfuse** scores (``POST /api/public/scores``, and ``score-create`` events of the batch
  ``POST /api/public/ingestion`` its SDKs use): ``traceId``, ``observationId``, ``name``,
  ``value``, ``dataType`` (``NUMERIC``, ``CATEGORICAL``, ``BOOLEAN``), ``comment``, ``id``,
  ``metadata``, ``timestamp``. A numeric value is a score when in 0-1, else a 1-5 rating (other
  scales are refused); a categorical one a label; a boolean one (true/false, 1/0) thumbs. A UUID
  trace id (Langfuse v2) is its 32 hex digits. A re-post of a score id updates it.
- **Phoenix** annotations (``POST /v1/span_annotations``, ``POST /v1/trace_annotations``):
  ``{"data": [{"span_id" | "trace_id", "name", "annotator_kind", "result": {"label", "score",
  "explanation"}, "metadata", "identifier"}]}``. A score wins over a label; the explanation is the
  comment; the annotator kind goes into the metadata; a re-post with the same name, span (or trace)
  and identifier updates the annotation. A span annotation names no trace: the caller resolves it
  from the stored spans.
"""

from __future__ import annotations

import re
from typing import Any

Item = dict[str, Any]
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _numeric(value: Any) -> Item:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1:
        return {"value": float(value), "kind": "score"}
    return {"value": value, "kind": "rating"}


def langfuse_item(score: Any) -> Item | str:
    """A Langfuse score as an item, or what is wrong with it."""
    if not isinstance(score, dict):
        return "(score): must be an object"
    kind = score.get("dataType")
    value = score.get("value")
    if kind == "BOOLEAN":
        typed: Item = {"value": value, "kind": "thumbs"}  # true/false or 1/0; anything else refused
    elif kind == "CATEGORICAL" or (kind is None and isinstance(value, str)):
        typed = {"value": value, "kind": "label"}
    elif kind in (None, "NUMERIC"):
        typed = _numeric(value)
    else:
        return f"dataType: one of NUMERIC, CATEGORICAL, BOOLEAN, not {kind!r}"
    trace_id = score.get("traceId")
    if isinstance(trace_id, str) and _UUID.fullmatch(trace_id):
        trace_id = trace_id.replace("-", "")  # Langfuse v2's UUID trace ids: the same 32 hex digits
    item = {
        "trace_id": trace_id, "span_id": score.get("observationId"), "name": score.get("name"),
        "comment": score.get("comment"), "id": score.get("id"), "metadata": score.get("metadata"),
        "time": score.get("timestamp"), **typed,
    }  # fmt: skip
    return {k: v for k, v in item.items() if v is not None}


def phoenix_item(annotation: Any, trace_of: dict[str, str]) -> Item | str:
    """A Phoenix annotation as an item (``trace_of``: span id → trace id, for span annotations),
    or what is wrong with it."""
    if not isinstance(annotation, dict):
        return "(annotation): must be an object"
    result = annotation.get("result") or {}
    if not isinstance(result, dict):
        return "result: must be an object"
    if result.get("score") is not None:
        typed = _numeric(result["score"])
    elif result.get("label") is not None:
        typed = {"value": result["label"], "kind": "label"}
    else:
        return "result: needs a score or a label"
    span_id = annotation.get("span_id")
    trace_id = annotation.get("trace_id")
    if trace_id is None and isinstance(span_id, str):
        trace_id = trace_of.get(span_id.lower())
        if trace_id is None:
            return f"span_id: no stored span {span_id} (send the trace first, or annotate the trace)"
    metadata = annotation.get("metadata")
    kind = annotation.get("annotator_kind")
    if kind is not None:
        metadata = {**(metadata if isinstance(metadata, dict) else {}), "annotator_kind": kind}
    # Phoenix keeps one annotation per (name, span or trace, identifier): a re-post updates it.
    identifier = annotation.get("identifier")
    key = None if not identifier else f"phoenix|{annotation.get('name')}|{span_id or trace_id}|{identifier}"
    item = {
        "trace_id": trace_id, "span_id": span_id, "name": annotation.get("name"),
        "label": result.get("label") if typed["kind"] != "label" else None,
        "comment": result.get("explanation"), "id": key, "metadata": metadata, **typed,
    }  # fmt: skip
    return {k: v for k, v in item.items() if v is not None}
