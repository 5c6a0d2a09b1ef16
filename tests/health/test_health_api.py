"""``GET /api/v1/agents/{agent}/health`` on a real server fed by the OpenTelemetry SDK's OTLP
exporter: fresh within seconds, one tenant per token; and the example self-healing agent, fed a
failing tool, falls back on the advice and the report shows it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from tests.helpers.auth import ACME, AUTH, GLOBEX
from tests.helpers.fake_http import FakeServer, Reply
from tests.helpers.server import ServerProcess

pytestmark = pytest.mark.process
ROOT = Path(__file__).resolve().parents[2]


def health(server: ServerProcess, agent: str, token: str | None = None, **params: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    url = f"http://127.0.0.1:{server.api_port}/api/v1/agents/{agent}/health"
    return httpx.get(url, params=params, headers=headers, timeout=5)


def wait_for(
    server: ServerProcess, agent: str, token: str | None, done: Any, timeout: float = 15
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc: dict[str, Any] = health(server, agent, token).json()
        if done(doc) or time.monotonic() > deadline:
            return doc
        time.sleep(0.05)


def test_health_reflects_spans_within_seconds_and_only_the_tokens_tenant(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f"- token: {GLOBEX}\n  tenant: globex\n")
    server = ServerProcess(tmp_path, otlp_extra=AUTH.replace("TOKENS_FILE", str(tokens))).start()
    try:
        provider = TracerProvider(resource=Resource.create({"service.name": "expense-bot"}))
        exporter = OTLPSpanExporter(endpoint=server.http_url, headers={"authorization": f"Bearer {ACME}"})
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("test")
        for _ in range(3):
            with tracer.start_as_current_span("invoke_agent", attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "expense-bot"}) as run:  # fmt: skip
                with tracer.start_as_current_span("execute_tool", attributes={
                    "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search_expenses"}) as tool:  # fmt: skip
                    tool.set_status(Status(StatusCode.ERROR, "search_expenses: 503 Service Unavailable"))
                run.set_status(Status(StatusCode.ERROR, "the tool failed"))
        acknowledged = time.monotonic()  # SimpleSpanProcessor: each export returned once durable
        doc = wait_for(server, "expense-bot", ACME, lambda d: d["runs"] == 3)
        assert time.monotonic() - acknowledged < 5
        assert (doc["tenant"], doc["agent"], doc["runs"], doc["failures"], doc["consecutive_failures"]) == (
            "acme", "expense-bot", 3, 3, 3,
        )  # fmt: skip
        (tool_doc,) = doc["tools"]
        assert (tool_doc["name"], tool_doc["calls"], tool_doc["errors"]) == ("search_expenses", 3, 3)
        assert doc["advice"]["avoid_tools"] == ["search_expenses"]
        assert (
            doc["advice"]["reasons"][0]["why"]
            == "search_expenses: its last 3 calls failed (threshold 3 in a row)"
        )
        # Another tenant's token sees its own tenant only.
        other = health(server, "expense-bot", GLOBEX)
        assert (other.status_code, other.json()["tenant"], other.json()["runs"]) == (200, "globex", 0)
        refused = health(server, "expense-bot", GLOBEX, tenant="acme")
        assert (refused.status_code, refused.json()) == (
            403,
            {"error": "tenant: this token may not read tenant 'acme'"},
        )
        assert health(server, "expense-bot").status_code == 401
        assert health(server, "expense-bot", "not-a-token").status_code == 401
        bad = health(server, "expense-bot", ACME, window="soon")
        assert bad.status_code == 400 and bad.json()["error"].startswith("window: ")
        assert health(server, "expense-bot", ACME, window="2h").json() == {
            "error": "window: at most 1h (health.max_window)"
        }
        provider.shutdown()
    finally:
        assert server.stop() == 0


def test_the_example_agent_falls_back_on_advice_and_the_report_shows_it(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    try:
        with FakeServer() as tool:
            tool.script("/search", Reply(503, {"error": "search is down"}))
            agent = subprocess.run(
                [sys.executable, str(ROOT / "examples" / "selfhealing_agent.py"),
                 "--agentwatch", f"http://127.0.0.1:{server.api_port}", "--otlp", server.http_url,
                 "--tool-url", f"{tool.url}/search", "--runs", "14", "--interval", "0.3"],
                capture_output=True, text=True, timeout=120, check=True,
            )  # fmt: skip
        lines = agent.stdout.splitlines()
        how = [line.split(": ")[1] for line in lines]
        # It failed until agentwatch advised avoiding the tool (3 failures in a row, seen within
        # seconds), then fell back every time.
        first = how.index("fell back")
        assert 3 <= first <= 10, lines
        assert set(how[:first]) == {"failed"} and set(how[first:]) == {"fell back"}, lines
        fell_back, failed = len(how) - first, first
        assert len(tool.seen) == failed  # the tool was not called once avoided
        server.wait_for_count("SELECT count(*) FROM runs", 14, timeout=15)
        report = subprocess.run(
            [sys.executable, "-m", "agentwatch", "report", "--data-dir", str(server.data_dir),
             "--agent", "expense-bot", "--format", "json"],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        (bot,) = json.loads(report.stdout)["agents"]
        assert (bot["runs"], bot["failures"]) == (14, failed)
        assert bot["fallbacks"] == {
            "runs": 14, "fell_back": fell_back, "activation_rate": fell_back / 14,
            "reasons": {"search_expenses failing": fell_back}, "success_rate_with": 1.0,
            "success_rate_without": 0.0, "followed_advice": fell_back,
        }  # fmt: skip
    finally:
        assert server.stop() == 0
