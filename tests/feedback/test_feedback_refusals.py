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
