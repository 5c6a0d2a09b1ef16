"""/metrics: the event, key and array limits counted end to end (the converter workers' counts)."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest

from tests.helpers.otlp import json_span, otlp_json
from tests.helpers.server import ServerProcess, scrape

pytestmark = pytest.mark.process  # a real server

LIMITS = """
processors:
  normalize:
    max_attribute_count: 2
    max_attribute_key_length: 17  # agentwatch.tenant, the longest key sent, fits
    max_array_length: 3
    max_events_per_span: 2
  classify: {}
"""


def test_event_key_and_array_limits_cut_and_count_without_rejecting(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, extra_config=LIMITS).start()
    try:
        before = scrape(server)
        for name in ("span_events_dropped", "attribute_keys_truncated", "array_values_dropped"):
            assert before[(f"agentwatch_{name}_total", ())] == 0
        ints = [{"intValue": str(i)} for i in range(10)]
        pairs = [{"key": f"k{i}", "value": {"intValue": str(i)}} for i in range(3)]
        attributes = [
            {"key": "user.identity.of.caller", "value": {"stringValue": "dave"}},  # key: 17 characters kept
            {"key": "vec", "value": {"arrayValue": {"values": ints}}},  # 7 elements dropped
        ]
        events = [{"name": f"e{i}", "timeUnixNano": str(i)} for i in range(5)]  # 3 dropped
        events[0]["attributes"] = [{"key": "map", "value": {"kvlistValue": {"values": pairs}}}]  # k2 dropped
        body = otlp_json(
            json_span(
                "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", attributes=attributes, events=events
            )
        )
        response = httpx.post(server.http_url, json=body)
        assert response.status_code == 200
        assert response.json() == {}  # nothing rejected
        assert server.wait_for_count("SELECT count(*) FROM spans", 1) == 1
        ((stored_attributes, stored_events, tenant),) = server.query(
            "SELECT attributes, events, tenant FROM spans"
        )
        assert tenant == "acme"
        assert orjson.loads(str(stored_attributes)) == {"user.identity.of.": "dave", "vec": [0, 1, 2]}
        assert orjson.loads(str(stored_events)) == [
            {"name": "e0", "time_unix_nano": 0, "attributes": {"map": {"k0": 0, "k1": 1}}},
            {"name": "e1", "time_unix_nano": 1, "attributes": {}},
        ]
        m = scrape(server)
        assert m[("agentwatch_span_events_dropped_total", ())] == 3
        assert m[("agentwatch_attribute_keys_truncated_total", ())] == 1
        assert m[("agentwatch_array_values_dropped_total", ())] == 7
        assert m[("agentwatch_attributes_dropped_total", ())] == 1  # the kvlist's third entry
        assert m[("agentwatch_attribute_values_truncated_total", ())] == 0
    finally:
        server.kill()
