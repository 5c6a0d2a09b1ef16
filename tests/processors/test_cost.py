"""The cost processor on spans the OpenTelemetry SDK records, stored through the default pipeline
(normalize, classify, cost): exact costs for each pricing case, computed by hand from the
published prices (US dollars per million tokens): gpt-4o 2.50 input, 1.25 cached input, 10
output; claude-opus-4-6 5 input and 25 output, 10 and 37.50 past 200k input tokens until
2026-03-13 and no long-context tier after."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentwatch.config import load_config
from agentwatch.converter import InlineConverter
from agentwatch.pipeline import assemble
from storage.catalog import connect
from tests.helpers.store import store_spans

DAY = "2025-06-01 10:00"


def _ns(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp()) * 10**9


def chat(tracer: trace.Tracer, name: str, model: str, provider: str, when: str = DAY,
         parent: trace.Span | None = None, **usage: Any) -> None:  # fmt: skip
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": model, "gen_ai.provider.name": provider,
        "test.case": name,
    }  # fmt: skip
    keys = {"input": "gen_ai.usage.input_tokens", "output": "gen_ai.usage.output_tokens",
            "cached": "gen_ai.usage.cache_read.input_tokens", "cost": "gen_ai.usage.cost",
            "written": "gen_ai.usage.cache_creation.input_tokens"}  # fmt: skip
    attributes |= {keys[k]: v for k, v in usage.items()}
    context = trace.set_span_in_context(parent) if parent is not None else None
    span = tracer.start_span(f"chat {model}", context=context, start_time=_ns(when), attributes=attributes)
    span.end(end_time=_ns(when) + 10**9)


def recorded(tenant: str = "acme") -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bot", "agentwatch.tenant": tenant}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("cost-test")
    chat(tracer, "plain", "gpt-4o", "openai", input=1000, output=500)
    chat(tracer, "cached", "gpt-4o", "openai", input=1000, output=500, cached=400)
    chat(tracer, "reported", "gpt-4o", "openai", input=1000, output=500, cost=0.123)
    chat(tracer, "unknown", "our-private-model", "openai", input=1000, output=500)
    # The GenAI conventions' input counts the cache reads: 200 uncached + 50,000 cache reads.
    chat(tracer, "anthropic cached", "claude-sonnet-4", "anthropic", input=50_200, output=100, cached=50_000)
    # ... and the cache writes, priced at the cache-write rate: 200 + 1,000 read + 10,000 written.
    chat(tracer, "anthropic cache write", "claude-sonnet-4", "anthropic", input=11_200, output=100,
         cached=1000, written=10_000)  # fmt: skip
    chat(tracer, "negative", "gpt-4o", "openai", input=-1000, output=500)  # a broken count is no count
    chat(tracer, "per request", "sonar", "perplexity", input=1000, output=1000)  # a fixed fee per request
    chat(tracer, "before", "claude-opus-4-6", "anthropic", "2026-03-01 10:00", input=300_000, output=1000)
    chat(tracer, "after", "claude-opus-4-6", "anthropic", "2026-03-20 10:00", input=300_000, output=1000)
    # An agent span that repeats its child's totals: only the child is priced.
    agent = tracer.start_span("invoke_agent bot", start_time=_ns(DAY), attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 500, "test.case": "agent"})  # fmt: skip
    chat(tracer, "child", "gpt-4o", "openai", parent=agent, input=1000, output=500)
    agent.end(end_time=_ns(DAY) + 2 * 10**9)
    provider.shutdown()
    return list(memory.get_finished_spans())


def costs(tmp_path: Path, config: str = "") -> dict[str, tuple[float | None, str | None]]:
    path = tmp_path / "agentwatch.yaml"
    path.write_text(f"storage:\n  data_dir: {tmp_path / 'data'}\n{config}")
    store_spans(path, recorded())
    rows = (
        connect(tmp_path / "data")
        .execute(
            "SELECT json_extract_string(attributes, '$.\"test.case\"'), cost_usd, cost_source FROM spans"
        )
        .fetchall()
    )
    return {case: (None if cost is None else round(cost, 10), source) for case, cost, source in rows}


def test_every_pricing_case(tmp_path: Path) -> None:
    assert costs(tmp_path) == {
        "plain": (0.0075, "computed"),  # 1000 x 2.50 + 500 x 10, per million
        "cached": (0.007, "computed"),  # 600 x 2.50 + 400 x 1.25 (cached once, at its rate) + 500 x 10
        "reported": (0.123, "reported"),  # the span's own cost wins
        "unknown": (None, "unknown"),  # never a silent zero
        "anthropic cached": (0.0171, "computed"),  # 200 x 3 + 50,000 x 0.30 + 100 x 15, per million
        # 200 x 3 + 1,000 x 0.30 + 10,000 x 3.75 + 100 x 15, per million
        "anthropic cache write": (0.0399, "computed"),
        "negative": (0.005, "computed"),  # 500 x 10 per million: the input counts as none
        "per request": (0.014, "computed"),  # 1000 x 1 + 1000 x 1 per million + $0.012 a request
        "before": (3.0375, "computed"),  # 300k x 10 + 1000 x 37.50: the long-context tier
        "after": (1.525, "computed"),  # 300k x 5 + 1000 x 25: no tier after 2026-03-13
        "agent": (None, None),  # not a model call: its totals are its child's
        "child": (0.0075, "computed"),
    }


def test_config_prices_and_tenant_multipliers_win(tmp_path: Path) -> None:
    config = """
processors:
  cost:
    models:
      gpt-4o: {input: 2.0, output: 8.0, cached_input: 0.5}
      claude-sonnet-4: {input: 2.0, output: 10.0, cached_input: 0.2, cache_write_input: 2.5}
    tenant_multipliers: {acme: 0.8}
"""
    found = costs(tmp_path, config)
    written = 0.8 * (200 * 2.0 + 1000 * 0.2 + 10_000 * 2.5 + 100 * 10.0) / 1e6
    assert found["anthropic cache write"] == (round(written, 10), "computed")
    assert found["plain"] == (round(0.8 * (1000 * 2.0 + 500 * 8.0) / 1e6, 10), "computed")
    assert found["cached"] == (round(0.8 * (600 * 2.0 + 400 * 0.5 + 500 * 8.0) / 1e6, 10), "computed")
    assert found["reported"] == (0.123, "reported")  # a reported cost is never adjusted
    assert found["after"] == (round(0.8 * 1.525, 10), "computed")


def test_unknown_models_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "agentwatch.yaml"
    path.write_text(f"storage:\n  data_dir: {tmp_path / 'data'}\n")
    assembly = assemble(load_config(path))
    converter = InlineConverter(assembly, 20000)
    converter.start()
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from core.model import OtlpRecord

    spans = recorded()
    body = encode_spans(spans).SerializePartialToString()
    counts = converter.convert(0, [OtlpRecord(body, None, "otlp", len(spans))]).counts
    converter.shutdown()
    assert counts["cost_unknown_model_spans"] == 1


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        (
            "models: {gpt-4o: {input: -1, output: 1}}",
            "processors.cost.models.gpt-4o.input: must be at least 0",
        ),
        ("tenant_multipliers: {acme: -0.5}", "processors.cost.tenant_multipliers.acme: must be at least 0"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, config: str, problem: str) -> None:
    from core.errors import ConfigError

    path = tmp_path / "agentwatch.yaml"
    path.write_text(f"processors:\n  cost:\n    {config}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert problem in str(raised.value)
