"""The report shows agents' names beside their ids, in every format (in process: the runs are
stored through the pipelines, the report built and rendered as ``agentwatch report`` does).

    agent id        name on the spans   agents: name   reads
    agt_7f3a9c21    expense-bot         -              expense-bot (agt_7f3a9c21)
    agt_0b1c        -                   HR helper      HR helper (agt_0b1c)
    agt_77          x-bot               Travel desk    Travel desk (agt_77)     (the config wins)
    -               faq-bot             -              faq-bot                  (its name is its id)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from core.agents import AgentConfig, agent_label, build_agents
from report.formats import render_markdown, render_text, to_json_dict
from report.health import NAME_COLUMNS, HealthReport, build_report
from report.html import render_html
from report.signals import Signal, clusters
from storage.catalog import connect
from storage.runs import Scope, runs_in
from tests.helpers.store import store_spans

UNTIL = datetime(2025, 11, 22, 12, 0, tzinfo=UTC)
UTC_10 = datetime(2025, 11, 22, 10, 0, tzinfo=UTC)
AGENTS = (AgentConfig("agt_0b1c", name="HR helper"), AgentConfig("agt_77", name="Travel desk"))
# (agent id, agent name on the spans, minute after 10:00, failed)
RUNS = [
    ("agt_7f3a9c21", "expense-bot", 0, False),
    ("agt_7f3a9c21", "expense-bot", 5, True),
    ("agt_0b1c", None, 10, True),
    ("agt_77", "x-bot", 15, False),
    (None, "faq-bot", 20, True),
]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("names")
    config = root / "agentwatch.yaml"
    config.write_text(f"storage:\n  data_dir: {root / 'data'}\n")
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "agents"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("names")
    for agent_id, name, minute, failed in RUNS:
        begin = int((UTC_10 + timedelta(minutes=minute)).timestamp()) * 10**9
        attributes = {"user.id": "bob@acme.com"}
        if agent_id:
            attributes["gen_ai.agent.id"] = agent_id
        if name:
            attributes["gen_ai.agent.name"] = name
        span = tracer.start_span("agent_run", start_time=begin, attributes=attributes)
        if failed:
            span.set_status(Status(StatusCode.ERROR, "upstream failed"))
        span.end(end_time=begin + 10**9)
    provider.shutdown()
    assert store_spans(config, memory.get_finished_spans()) == len(RUNS)
    return root / "data"


def built(data: Path) -> tuple[HealthReport, list[Signal]]:
    runs = runs_in(connect(data), Scope.last(timedelta(days=1), now=UNTIL), NAME_COLUMNS)
    return build_report(runs, AGENTS), clusters(runs, 10)


def test_agent_label() -> None:
    assert agent_label("agt_7f3a9c21", "expense-bot") == "expense-bot (agt_7f3a9c21)"
    assert agent_label("faq-bot", "faq-bot") == "faq-bot"
    assert agent_label("agt_1", None) == "agt_1"


def test_agents_name_in_config() -> None:
    agents, problems = build_agents([{"id": "agt_1", "name": "Expense bot"}, {"id": "agt_2", "name": " "}])
    assert [(a.id, a.name) for a in agents] == [("agt_1", "Expense bot"), ("agt_2", " ")]
    assert problems == ["1.name: must not be empty (leave it out when unknown)"]


def test_json_has_the_name_beside_the_id(stored: Path) -> None:
    report, signals = built(stored)
    doc = json.loads(orjson.dumps(to_json_dict(report, signals)))
    assert [(a["agent"], a["agent_name"]) for a in doc["agents"]] == [
        ("agt_0b1c", "HR helper"),
        ("agt_77", "Travel desk"),
        ("agt_7f3a9c21", "expense-bot"),
        ("faq-bot", None),
    ]
    assert [(s["failure_type"], s["agents"]) for s in doc["signals"]] == [
        ("other_error", ["agt_0b1c", "agt_7f3a9c21", "faq-bot"])
    ]


def test_text_markdown_and_html_read_name_and_id(stored: Path) -> None:
    report, signals = built(stored)
    text = render_text(report, signals, width=250)
    rows = [line.split("│")[2].strip() for line in text.splitlines() if line.startswith("│ default")]
    assert rows == ["HR helper (agt_0b1c)", "Travel desk (agt_77)", "expense-bot (agt_7f3a9c21)", "faq-bot"]
    sections = [line for line in text.splitlines() if line.endswith(", tenant default")]
    assert sections == [
        "HR helper (agt_0b1c), tenant default",
        "Travel desk (agt_77), tenant default",
        "expense-bot (agt_7f3a9c21), tenant default",
        "faq-bot, tenant default",
    ]
    assert "HR helper (agt_0b1c), expense-bot (agt_7f3a9c21), faq-bot" in text  # the signal's agents

    md = render_markdown(report, signals)
    assert "| default | expense-bot (agt_7f3a9c21) | ? | 2 | 1 | 50.0% | 0 |" in md
    assert "## expense-bot (agt_7f3a9c21), tenant default\n" in md
    assert "| HR helper (agt_0b1c), expense-bot (agt_7f3a9c21), faq-bot | 1 |" in md  # agents, users

    page = render_html(report, signals)
    assert "<td>default</td><td>expense-bot (agt_7f3a9c21)</td><td>?</td><td class=n>2</td>" in page
    assert "<h2 id='agent-agt_7f3a9c21'>expense-bot (agt_7f3a9c21), tenant default</h2>" in page
