"""An agent named by its name resolves within the tenant asked about: another tenant's agent of
that id (or name) is never picked, and never hides this tenant's."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from storage.catalog import connect
from storage.runs import Scope, runs_in
from tests.helpers.store import store_spans

BEGIN = int(datetime(2025, 11, 22, 10, tzinfo=UTC).timestamp()) * 10**9


def test_names_resolve_within_the_tenant(tmp_path: Path) -> None:
    config = tmp_path / "agentwatch.yaml"
    config.write_text(f"storage:\n  data_dir: {tmp_path / 'data'}\n")
    for tenant, agent_id, name, runs in (
        ("acme", "expense-bot", None, 2),
        ("globex", "agt_g1", "expense-bot", 3),
    ):
        memory = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"agentwatch.tenant": tenant}))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        for i in range(runs):
            attributes = {"gen_ai.agent.id": agent_id} | ({"gen_ai.agent.name": name} if name else {})
            span = provider.get_tracer("t").start_span(
                "invoke_agent", start_time=BEGIN + i, attributes=attributes
            )
            span.end(end_time=BEGIN + i + 10**9)
        provider.shutdown()
        store_spans(config, memory.get_finished_spans())
    con = connect(tmp_path / "data")
    since, until = datetime(2025, 11, 22, tzinfo=UTC), datetime(2025, 11, 23, tzinfo=UTC)
    globex = runs_in(con, Scope(since, until, "expense-bot", "globex"))
    assert globex.query("SELECT agent, count(*) FROM runs GROUP BY agent") == [("agt_g1", 3)]
    acme = runs_in(con, Scope(since, until, "expense-bot", "acme"))
    assert acme.query("SELECT agent, count(*) FROM runs GROUP BY agent") == [("expense-bot", 2)]


def test_eval_runs_labelled_by_name_never_hide_the_production_runs_of_the_id(tmp_path: Path) -> None:
    """agentwatch's own eval runs of expense-bot name it by its name only; its production runs
    carry the id: asked by name, production is the id's runs, eval traffic the name's."""
    config = tmp_path / "agentwatch.yaml"
    config.write_text(f"storage:\n  data_dir: {tmp_path / 'data'}\n")
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"agentwatch.tenant": "acme"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for i, attributes in enumerate(
        [{"gen_ai.agent.id": "agt_1", "gen_ai.agent.name": "expense-bot"}] * 3
        + [{"gen_ai.agent.name": "expense-bot", "agentwatch.synthetic": True}] * 2
    ):
        span = provider.get_tracer("t").start_span("invoke_agent", start_time=BEGIN + i, attributes=attributes)
        span.end(end_time=BEGIN + i + 10**9)
    provider.shutdown()
    store_spans(config, memory.get_finished_spans())
    con = connect(tmp_path / "data")
    since, until = datetime(2025, 11, 22, tzinfo=UTC), datetime(2025, 11, 23, tzinfo=UTC)
    production = runs_in(con, Scope(since, until, "expense-bot"))
    assert production.query("SELECT agent, count(*) FROM runs GROUP BY agent") == [("agt_1", 3)]
    evals = runs_in(con, Scope(since, until, "expense-bot", synthetic=True))
    assert evals.query("SELECT agent, count(*) FROM runs GROUP BY agent") == [("expense-bot", 2)]
