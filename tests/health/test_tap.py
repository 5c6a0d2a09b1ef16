"""Where the health tap sits: after the Parquet exporter, once per stored batch."""

from __future__ import annotations

from pathlib import Path

from agentwatch.config import parse_config
from agentwatch.pipeline import FanOut, assemble
from health.digest import HealthTap


def taps(config_text: str) -> dict[str, int]:
    assembly = assemble(parse_config(config_text, "agentwatch.yaml"))
    try:
        out = {}
        for pipeline in assembly.pipelines:
            fan_out = pipeline.processors[-1].next_consumer if pipeline.processors else pipeline.head  # type: ignore[attr-defined]
            assert isinstance(fan_out, FanOut)
            out[pipeline.id] = sum(isinstance(c, HealthTap) for c in fan_out._consumers)
        return out
    finally:
        assembly.shutdown()


def test_a_second_pipeline_of_the_same_spans_is_not_digested_again(tmp_path: Path) -> None:
    text = f"""
storage:
  data_dir: {tmp_path}
exporters:
  memory:
service:
  pipelines:
    traces: {{receivers: [otlp], processors: [normalize], exporters: [parquet]}}
    traces/debug: {{receivers: [otlp], processors: [normalize], exporters: [memory]}}
"""
    assert taps(text) == {"traces": 1, "traces/debug": 0}


def test_no_tap_without_health_or_without_parquet(tmp_path: Path) -> None:
    base = f"storage:\n  data_dir: {tmp_path}\n"
    assert taps(base + "health:\n  enabled: false\n") == {"traces": 0}
    memory_only = (
        base
        + """exporters:
  memory:
service:
  pipelines:
    traces: {receivers: [otlp], processors: [normalize], exporters: [memory]}
"""
    )
    assert taps(memory_only) == {"traces": 0}
