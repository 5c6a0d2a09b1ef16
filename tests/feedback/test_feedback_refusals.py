"""The feedback endpoints' refusals in process: each answers with the HTTP status of a
``core.errors`` class (the one place wire codes are decided), in the bodies clients read."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from agentwatch.config import parse_config
from agentwatch.feedback_api import MAX_BODY, feedback_routes
from core import errors
from feedback.items import MAX_ITEMS
from tests.helpers.auth import ACME

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
BEARER = {"authorization": f"Bearer {ACME}"}


def client(data_dir: Path) -> TestClient:
    config = parse_config(
        f"""
receivers:
  otlp:
    auth:
      tokens:
        - {{token: {ACME}, tenant: acme}}
storage:
  data_dir: {data_dir}
""",
        "agentwatch.yaml",
    )
    return TestClient(Starlette(routes=feedback_routes(config)))


def refusals(c: TestClient) -> list[tuple[int, object]]:
    """Every kind of refusal, as (status, body)."""
    answers = [
        c.post("/api/v1/feedback", json={"trace_id": TRACE, "value": "up"}),
        c.post("/api/v1/feedback", content=b"{not json", headers=BEARER),
        c.post("/api/v1/feedback", content=b" " * (MAX_BODY + 1), headers=BEARER),
        c.post("/api/v1/feedback", json={"trace_id": "nope", "value": "up"}, headers=BEARER),
        c.post("/api/public/scores", json={"traceId": "nope", "name": "q", "value": 1}, headers=BEARER),
        c.post("/api/public/ingestion", json={"batch": "none"}, headers=BEARER),
        c.post("/api/public/ingestion", json={"batch": [{}] * (MAX_ITEMS + 1)}, headers=BEARER),
        c.post("/v1/span_annotations", json={"data": []}, headers=BEARER),
    ]
    return [(a.status_code, a.json()) for a in answers]


def test_refusals_keep_their_statuses_and_bodies(tmp_path: Path) -> None:
    got = refusals(client(tmp_path))
    assert [status for status, _ in got] == [401, 400, 413, 400, 400, 400, 413, 400]
    assert got[0][1] == {"error": "send an ingest token: 'Authorization: Bearer <token>'"}
    not_json = got[1][1]
    assert isinstance(not_json, dict) and not_json["problems"] == [not_json["error"]]
    assert not_json["error"].startswith("body: not JSON")
    assert got[2][1] == {"error": f"body over {MAX_BODY} bytes"}
    assert got[3][1] == {
        "error": "[0].trace_id: must be 32 hex digits",
        "problems": ["[0].trace_id: must be 32 hex digits"],
    }
    assert got[4][1] == {
        "message": "trace_id: must be 32 hex digits",
        "problems": ["trace_id: must be 32 hex digits"],
    }
    assert got[5][1] == {"message": "batch: must be a list of events"}
    assert got[6][1] == {"message": f"batch: {MAX_ITEMS + 1} events, at most {MAX_ITEMS} a request"}
    assert got[7][1] == {"error": f"data: a list of 1 to {MAX_ITEMS} annotations"}


def test_refusal_statuses_come_from_the_error_classes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for cls, status in ((errors.Unauthenticated, 491), (errors.DecodeError, 490), (errors.PayloadTooLarge, 493),
                        (errors.RequestError, 492)):  # fmt: skip
        monkeypatch.setattr(cls, "http_status", status)
    c = client(tmp_path)
    assert [status for status, _ in refusals(c)] == [491, 490, 493, 492, 492, 492, 493, 492]
    batch = {"batch": [{"id": "e1", "type": "trace-create", "body": {}}]}
    answer = c.post("/api/public/ingestion", json=batch, headers=BEARER)
    assert answer.status_code == 207
    assert [e["status"] for e in answer.json()["errors"]] == [492]


OTHER = "0af7651916cd43dd8448eb211c80319c"


def test_an_item_may_name_the_tokens_tenant_only(tmp_path: Path) -> None:
    c = client(tmp_path)
    items = [
        {"trace_id": TRACE, "value": "up", "tenant": "acme"},
        {"trace_id": OTHER, "value": "down", "tenant": "globex"},
    ]
    refused = c.post("/api/v1/feedback", json=items, headers=BEARER)
    problem = "[1].tenant: 'globex' is not the ingest token's tenant (acme)"
    assert (refused.status_code, refused.json()) == (400, {"error": problem, "problems": [problem]})
    taken = c.post("/api/v1/feedback", json=items[:1], headers=BEARER)
    assert (taken.status_code, taken.json()) == (200, {"accepted": 1, "tenant": "acme"})


def test_without_ingest_tokens_the_items_name_their_tenant(tmp_path: Path) -> None:
    """As a span's tenant attribute does without ingest tokens (the demo's feedback joins its
    runs under acme and globex so); one tenant a request."""
    from storage.catalog import connect

    config = parse_config(f"storage:\n  data_dir: {tmp_path}\n", "agentwatch.yaml")
    c = TestClient(Starlette(routes=feedback_routes(config)))
    named = [
        {"trace_id": TRACE, "value": "down", "tenant": "globex"},
        {"trace_id": OTHER, "value": 4, "tenant": "globex"},
    ]
    assert c.post("/api/v1/feedback", json=named).json() == {"accepted": 2, "tenant": "globex"}
    assert c.post("/api/v1/feedback", json={"trace_id": TRACE, "value": "up"}).json() == {
        "accepted": 1, "tenant": "default",
    }  # fmt: skip
    assert c.post("/api/v1/feedback", json={"trace_id": TRACE, "value": 1, "tenant": "acme corp"}).json() == {
        "accepted": 1, "tenant": "acme_corp",  # sanitised as a span's tenant is
    }  # fmt: skip
    mixed = [{"trace_id": TRACE, "value": "up", "tenant": "acme"}, {"trace_id": TRACE, "value": "up", "tenant": "globex"},
             {"trace_id": TRACE, "value": "up", "tenant": 5}]  # fmt: skip
    refused = c.post("/api/v1/feedback", json=mixed)
    assert (refused.status_code, refused.json()["problems"]) == (400, [
        "[2].tenant: must be a non-empty string", "[1].tenant: 'globex', but [0] names 'acme': one tenant a request",
    ])  # fmt: skip
    stored = connect(tmp_path).execute("SELECT tenant, trace_id, value, negative FROM feedback ORDER BY ALL")
    assert stored.fetchall() == [
        ("acme_corp", TRACE, 1.0, True), ("default", TRACE, 1.0, False),
        ("globex", OTHER, 4.0, False), ("globex", TRACE, 0.0, True),
    ]  # fmt: skip
