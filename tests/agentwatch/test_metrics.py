"""/metrics: Prometheus text with exact counts after a known sequence of requests."""

from __future__ import annotations

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from agentwatch.model import OtlpRecord
from receiver.otlp_handler import screen_spans
from receiver.otlp_json import parse_json_request
from storage.wal import encode_record
from tests.receiver.test_otlp_e2e import json_span, otlp_json
from tests.server import ServerProcess


def scrape(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"http://127.0.0.1:{server.api_port}/metrics")
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    out = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


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
