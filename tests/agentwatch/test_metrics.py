"""/metrics: Prometheus text with exact counts after a known sequence of requests."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson
import pytest

from core.model import OtlpRecord
from receiver.otlp.handler import screen_spans
from receiver.otlp.otlp_json import parse_json_request
from storage.wal import encode_record
from tests.helpers.otlp import json_span, otlp_json
from tests.helpers.server import ServerProcess, scrape

pytestmark = pytest.mark.process  # real servers


def test_metrics_count_accepted_rejected_refused_and_written(server: ServerProcess) -> None:
    good = otlp_json(
        json_span("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"),
        json_span("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b175"),
        json_span("5b8efff798038103d269b633813fc60c", "00"),
    )
    assert httpx.post(server.http_url, json=good).status_code == 200
    assert (
        httpx.post(server.http_url, content=b"{", headers={"content-type": "application/json"}).status_code
        == 400
    )
    assert (
        httpx.post(server.http_url, content=b"x", headers={"content-type": "text/plain"}).status_code == 415
    )
    assert (
        httpx.post(server.http_url, content=b"x", headers={"content-type": "text/plain"}).status_code == 415
    )
    assert server.wait_for_count("SELECT count(*) FROM spans", 2) == 2
    # The files are readable a moment before the drain counts the batch written: wait for it.
    deadline = time.monotonic() + 15
    while scrape(server)[("agentwatch_spans_written_total", ())] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    m = scrape(server)
    otlp = (("receiver", "otlp"),)
    assert m[("agentwatch_receiver_accepted_spans_total", otlp)] == 2
    assert m[("agentwatch_receiver_rejected_spans_total", otlp)] == 1
    assert (
        m[("agentwatch_receiver_refused_requests_total", (("reason", "decode_error"), ("receiver", "otlp")))]
        == 1
    )
    refused_415 = (("reason", "unsupported_media_type"), ("receiver", "otlp"))
    assert m[("agentwatch_receiver_refused_requests_total", refused_415)] == 2
    assert m[("agentwatch_spans_written_total", ())] == 2
    assert m[("agentwatch_queue_spans", ())] == 0
    assert m[("agentwatch_queue_bytes", ())] == 0
    assert m[("agentwatch_queue_limit_bytes", ())] == 256 * 1024 * 1024
    request = parse_json_request(orjson.dumps(good))
    screen_spans(request)
    logged = encode_record(OtlpRecord.from_request(request, receiver="otlp"))
    assert m[("agentwatch_wal_bytes_written_total", ())] == len(logged)
    assert m[("agentwatch_wal_write_failures_total", ())] == 0


def test_attribute_limits_cut_and_count_without_rejecting(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path,
        extra_config="""
processors:
  normalize:
    max_attribute_value_length: 4
    max_attribute_count: 2
  classify: {}
""",
    ).start()
    try:
        attributes = [
            {"key": "user.id", "value": {"stringValue": "dave@acme.com"}},
            {"key": "gen_ai.agent.name", "value": {"stringValue": "expense-bot"}},
            {"key": "third", "value": {"stringValue": "x"}},
        ]
        body = otlp_json(
            json_span("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", attributes=attributes),
            json_span("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b175", attributes=attributes[2:]),
        )
        response = httpx.post(server.http_url, json=body)
        assert response.status_code == 200
        assert response.json() == {}  # nothing rejected
        assert server.wait_for_count("SELECT count(*) FROM spans", 2) == 2
        rows = server.query(
            "SELECT span_id, user_id, agent_name, attributes, resource_attributes FROM spans ORDER BY span_id"
        )
        assert rows == [
            ("eee19b7ec3c1b174", "dave", "expe", '{"user.id":"dave","gen_ai.agent.name":"expe"}',
             '{"service.name":"json","agentwatch.tenant":"acme"}'),
            ("eee19b7ec3c1b175", None, None, '{"third":"x"}', '{"service.name":"json","agentwatch.tenant":"acme"}'),
        ]  # fmt: skip
        m = scrape(server)
        # Cut: user.id, gen_ai.agent.name, and the one resource's service.name ("acme" fits).
        assert m[("agentwatch_attribute_values_truncated_total", ())] == 3
        assert m[("agentwatch_attributes_dropped_total", ())] == 1
    finally:
        server.kill()
