"""Feedback items (feedback/items.py) and the Langfuse and Phoenix shapes (feedback/shapes.py) on
hostile and edge-case input: every refusal names the key, nothing crashes, and an item's identity
is what it says (a retry is the same item; a different comment is another)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from feedback.items import MAX_METADATA, item_row, parse
from feedback.shapes import langfuse_item, phoenix_item
from report.cost import csv_safe

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def problems_of(item: dict[str, Any]) -> list[str]:
    return item_row(item, "acme", NOW)[1]


def nested(depth: int) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for _ in range(depth):
        doc = {"a": doc}
    return doc


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ({"value": "up", "metadata": nested(300)}, "metadata: nested too deeply"),
        ({"value": "up", "metadata": {"x": "y" * MAX_METADATA}}, f"metadata: at most {MAX_METADATA} bytes as JSON"),
        ({"value": "up", "user_id": "u" * 1001}, "user_id: at most 1000 characters"),
        ({"value": "up", "time": -1e10}, "time: between 1970 and a day from now"),
        ({"value": "up", "time": 2.5e11}, "time: between 1970 and a day from now"),
        ({"value": "up", "time": "2026-12-03T00:00:00Z"}, "time: between 1970 and a day from now"),
        ({"value": "up", "time": 1e300}, "time: not a Unix time in seconds"),
        ({"value": float("nan")}, "value: must be up/down, a rating 1-5 or a score 0-1"),
        ({"value": 1e308}, "value: a score is between 0 and 1"),
        ({"value": [1]}, "value: must be up/down, a rating 1-5 or a score 0-1"),
        ({"value": "", "kind": "label"}, "value: a label is a string"),
    ],
)  # fmt: skip
def test_refusals_name_the_key(item: dict[str, Any], problem: str) -> None:
    assert problems_of({"trace_id": TRACE, **item}) == [problem]


def test_a_retry_is_the_same_item_and_a_different_comment_is_another() -> None:
    item = {"trace_id": TRACE, "user_id": "u1", "value": "down", "comment": "wrong"}
    first, _ = parse(item, "acme", NOW)
    retry, _ = parse(item, "acme", NOW.replace(minute=5))  # received later, no time given
    other, _ = parse({**item, "comment": "still wrong"}, "acme", NOW)
    elsewhere, _ = parse(item, "globex", NOW)
    assert first[0].feedback_id == retry[0].feedback_id
    assert len({first[0].feedback_id, other[0].feedback_id, elsewhere[0].feedback_id}) == 3


def test_langfuse_shapes() -> None:
    uuid = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"
    assert langfuse_item({"traceId": uuid, "value": 0.3, "dataType": "NUMERIC"}) == {
        "trace_id": TRACE, "value": 0.3, "kind": "score"}  # fmt: skip
    bad_boolean = langfuse_item({"traceId": TRACE, "value": 0.3, "dataType": "BOOLEAN"})
    assert isinstance(bad_boolean, dict) and problems_of(bad_boolean) == [
        "value: thumbs must be up or down (or 1/0)"
    ]
    assert langfuse_item({"traceId": TRACE, "value": 1, "dataType": "SCALE"}) == (
        "dataType: one of NUMERIC, CATEGORICAL, BOOLEAN, not 'SCALE'"
    )


def test_phoenix_identity_is_name_target_and_identifier() -> None:
    one = phoenix_item({"trace_id": TRACE, "name": "qa", "identifier": "x", "result": {"score": 1}}, {})
    other = phoenix_item({"trace_id": "0" * 31 + "1", "name": "qa", "identifier": "x", "result": {"score": 1}}, {})
    assert isinstance(one, dict) and isinstance(other, dict)
    rows = [item_row(i, "acme", NOW, "phoenix")[0] for i in (one, other)]
    assert rows[0] is not None and rows[1] is not None and rows[0].feedback_id != rows[1].feedback_id


def test_csv_cells_never_start_a_formula() -> None:
    assert [csv_safe(x) for x in ("=1+2", "\t=1", "\r=1", "ok")] == ["'=1+2", "'\t=1", "'\r=1", "ok"]
