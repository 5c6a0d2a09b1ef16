"""A day of agent runs with hand-computable numbers, recorded by the OpenTelemetry SDK with
deterministic trace ids, and stored through the pipelines as a server would store them.

expense-bot (owner alice@acme.com from the config's agents: section), 2025-11-22 UTC:

    run  start  ms    user   outcome    failure_type  message
    R1   10:05  1000  alice  success
    R2   10:20  2000  alice  success
    R3   10:30  3000  bob    failure    timeout       deadline exceeded after 30000ms for request 789
    R4   11:10  4000  carol  failure    timeout       deadline exceeded after 30000ms for request 123
    R5   11:20  5000  dave   failure    rate_limit    429 Too Many Requests: retry after 30s
    R6   11:30  6000  bob    failure    timeout       deadline exceeded after 30000ms for request 456
    R7   11:40  7000  erin   degraded   tool_error    ticket 4711 not found   (its tool span failed)
    R8   11:50  8000  erin   success
    R10  2025-11-21 11:00, bob, failure: before the window; R9 12:00, alice: at its end (excluded)

faq-bot (owner frank@acme.com from the spans' agent.owner):

    F1   09:00   500  frank  success
    F2   09:10  1500  frank  failure    timeout       deadline exceeded after 20000ms for request 9
    F3   09:20  2500  gina   failure    rate_limit    429 Too Many Requests: retry after 5s

Trace ids are the run numbers: R3 is 0000...0003, F2 is 0000...0102 (faq-bot = 100 + n).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Status, StatusCode

from tests.helpers.store import store_spans

UNTIL = "2025-11-22T12:00:00Z"
AGENTS_CONFIG = """
agents:
  - id: expense-bot
    owner: alice@acme.com
"""
QUESTION = "How do I file an expense report?"
ANSWER = "Open Concur and choose New Report."

# (trace number, agent, owner attribute, "YYYY-MM-DD HH:MM", duration ms, user, kind, message)
RUNS = [
    (10, "expense-bot", None, "2025-11-21 11:00", 900, "bob", "error", "deadline exceeded after 1ms for request 1"),
    (1, "expense-bot", None, "2025-11-22 10:05", 1000, "alice", "ok", None),
    (2, "expense-bot", None, "2025-11-22 10:20", 2000, "alice", "ok", None),
    (3, "expense-bot", None, "2025-11-22 10:30", 3000, "bob", "error", "deadline exceeded after 30000ms for request 789"),
    (4, "expense-bot", None, "2025-11-22 11:10", 4000, "carol", "error", "deadline exceeded after 30000ms for request 123"),
    (5, "expense-bot", None, "2025-11-22 11:20", 5000, "dave", "error", "429 Too Many Requests: retry after 30s"),
    (6, "expense-bot", None, "2025-11-22 11:30", 6000, "bob", "error", "deadline exceeded after 30000ms for request 456"),
    (7, "expense-bot", None, "2025-11-22 11:40", 7000, "erin", "tool_error", "ticket 4711 not found"),
    (8, "expense-bot", None, "2025-11-22 11:50", 8000, "erin", "ok", None),
    (9, "expense-bot", None, "2025-11-22 12:00", 100, "alice", "ok", None),
    (101, "faq-bot", "frank@acme.com", "2025-11-22 09:00", 500, "frank", "ok", None),
    (102, "faq-bot", "frank@acme.com", "2025-11-22 09:10", 1500, "frank", "error", "deadline exceeded after 20000ms for request 9"),
    (103, "faq-bot", "frank@acme.com", "2025-11-22 09:20", 2500, "gina", "error", "429 Too Many Requests: retry after 5s"),
]  # fmt: skip


def trace_hex(number: int) -> str:
    return f"{number:032x}"


class FixtureIds(IdGenerator):
    """Trace ids from the run table; span ids counted up."""

    def __init__(self) -> None:
        self.next_trace = 0
        self.span = 0

    def generate_trace_id(self) -> int:
        return self.next_trace

    def generate_span_id(self) -> int:
        self.span += 1
        return self.span


def _ns(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp()) * 10**9


def fixture_spans() -> list[ReadableSpan]:
    """Every run's spans, in the order they ended (the order an exporter sends them)."""
    memory = InMemorySpanExporter()
    ids = FixtureIds()
    provider = TracerProvider(resource=Resource.create({"service.name": "agents"}), id_generator=ids)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("health-fixture")
    for number, agent, owner, start, duration, user, kind, message in RUNS:
        ids.next_trace = number
        begin = _ns(start)
        attributes = {"gen_ai.agent.id": agent, "user.id": f"{user}@acme.com", "input.value": QUESTION}
        if owner:
            attributes["agent.owner"] = owner
        if kind != "error":
            attributes["output.value"] = ANSWER
        run = tracer.start_span("agent_run", start_time=begin, attributes=attributes)
        if kind == "tool_error":
            tool = tracer.start_span(
                "execute_tool create_ticket",
                context=trace.set_span_in_context(run),
                start_time=begin + 10**6,
                attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "create_ticket"},
            )
            tool.set_status(Status(StatusCode.ERROR, message))
            tool.end(end_time=begin + 2 * 10**6)
        elif kind == "error":
            run.set_status(Status(StatusCode.ERROR, message))
        run.end(end_time=begin + duration * 10**6)
    provider.shutdown()
    return list(memory.get_finished_spans())


def store_fixture(config_path: Path) -> int:
    """Store every run under the data directory of the config at ``config_path``, as a server
    with that config would (``tests.helpers.store``); returns the number of spans stored."""
    return store_spans(config_path, fixture_spans())
