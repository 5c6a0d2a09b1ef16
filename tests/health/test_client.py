"""``agentwatch.client.Health``: cached, short timeouts, fail-open; fallbacks recorded on spans."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentwatch.client import NO_ADVICE, Health
from tests.helpers.fake_http import FakeServer, Reply

PATH = "/api/v1/agents/expense%20bot/health"


def document(avoid: list[str], advice_id: str = "adv_1") -> dict[str, Any]:
    return {
        "tenant": "acme", "agent": "expense bot", "runs": 3,
        "advice": {"id": advice_id, "avoid_tools": avoid, "fallback_model": {"from": "gpt-4o", "to": "small"},
                   "skip_optional_steps": True, "add_disclaimer": False, "human_review": False,
                   "over_budget": False, "reasons": [{"flag": "avoid_tools", "why": "3 in a row"}]},
    }  # fmt: skip


def test_advice_is_read_cached_and_sent_with_the_token() -> None:
    with FakeServer() as fake:
        fake.script(PATH, Reply(200, document(["search"])), Reply(200, document([], "")))
        health = Health(fake.url, "expense bot", token="tok", window="5m", ttl=0.3)
        advice = health.advice()
        assert (advice.id, advice.avoid("search"), advice.fallback_model, advice.rate_limited_model) == (
            "adv_1", True, "small", "gpt-4o",
        )  # fmt: skip
        assert advice.skip_optional_steps and advice.reasons == (
            {"flag": "avoid_tools", "why": "3 in a row"},
        )
        assert health.advice() is advice  # within the TTL: no request
        assert len(fake.seen) == 1
        assert fake.seen[0].path == f"{PATH}?window=5m"
        assert fake.seen[0].headers["authorization"] == "Bearer tok"
        time.sleep(0.35)
        assert health.advice().avoid_tools == frozenset()
        assert len(fake.seen) == 2


def test_unreachable_slow_or_broken_agentwatch_means_no_advice() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert Health(f"http://127.0.0.1:{port}", "bot").advice() is NO_ADVICE
    with FakeServer() as fake:
        fake.script(PATH, Reply(200, document(["search"]), delay=1.0))
        started = time.monotonic()
        assert Health(fake.url, "expense bot", timeout=0.2).advice() is NO_ADVICE
        assert time.monotonic() - started < 0.9
        for reply in (Reply(503, {"error": "x"}), Reply(200, raw=b"not json"), Reply(200, {"advice": "odd"})):
            fake.script(PATH, reply)
            assert Health(fake.url, "expense bot").advice() is NO_ADVICE


def test_the_last_advice_holds_through_a_blip_then_goes_stale() -> None:
    with FakeServer() as fake:
        fake.script(PATH, Reply(200, document(["search"])), Reply(503, {"error": "restarting"}))
        health = Health(fake.url, "expense bot", ttl=0.05, stale_after=0.4)
        assert health.advice().avoid("search")
        time.sleep(0.1)
        assert health.advice().avoid("search")  # agentwatch blipped: the last advice holds
        time.sleep(0.4)
        assert health.advice() is NO_ADVICE


def test_record_fallback_puts_the_event_and_the_advice_id_on_the_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with FakeServer() as fake:
        fake.script(PATH, Reply(200, document(["search"])))
        health = Health(fake.url, "expense bot")
        advice = health.advice()
        with provider.get_tracer("t").start_as_current_span("run") as span:
            health.record_fallback(span, "search failing", from_="search", to="cache", advice=advice)
    (run,) = exporter.get_finished_spans()
    assert run.attributes == {"agentwatch.advice.id": "adv_1"}
    (event,) = run.events
    assert (event.name, dict(event.attributes or {})) == ("agent.fallback.triggered", {
        "agent.fallback.reason": "search failing", "agent.fallback.from": "search", "agent.fallback.to": "cache",
        "agentwatch.advice.id": "adv_1",
    })  # fmt: skip


@pytest.mark.process
def test_the_client_imports_nothing_heavy() -> None:
    """An agent importing the client pulls in neither DuckDB, Arrow nor the server."""
    code = (
        "import sys, agentwatch.client; "
        "print(sorted(m for m in ('duckdb', 'pyarrow', 'polars', 'numba', 'starlette', 'health') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_nested_or_trickling_answer_is_no_advice_within_the_timeout() -> None:
    with FakeServer() as fake:
        fake.script(PATH, Reply(200, raw=b"[" * 200_000))
        assert Health(fake.url, "expense bot").advice() is NO_ADVICE  # RecursionError in the parser
    # A server that sends its body a byte every 0.1 s: cut at the first chunk past the timeout.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n")
        for _ in range(100):
            if stop.wait(0.1):
                break
            conn.sendall(b" ")
        conn.close()

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    started = time.monotonic()
    assert Health(f"http://127.0.0.1:{listener.getsockname()[1]}", "bot", timeout=0.5).advice() is NO_ADVICE
    assert time.monotonic() - started < 1.5  # not 10 s
    stop.set()
    listener.close()
