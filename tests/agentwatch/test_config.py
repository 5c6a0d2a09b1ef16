"""Config loading: Collector schema, defaults per section, env substitution, errors naming file:line:key."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentwatch.config import default_text, load_config, parse_config
from core.errors import ConfigError


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "cfg.yaml", env or {})
    return info.value.problems


def test_builtin_default_is_the_one_top_level_collector_config() -> None:
    root = Path(__file__).resolve().parents[2]
    packaged = root / "agentwatch" / "default_config.yaml"
    assert packaged.is_symlink() and packaged.resolve() == root / "otel-collector-config.yaml"
    assert default_text() == (root / "otel-collector-config.yaml").read_text()
    config = load_config(None, {})
    assert list(config.receivers) == ["otlp"]
    assert config.receivers["otlp"].config.protocols.grpc.endpoint == "127.0.0.1:4317"
    assert config.receivers["otlp"].config.protocols.http.endpoint == "127.0.0.1:4318"
    assert config.pipelines["traces"].processors == ("normalize", "classify", "cost")
    assert config.pipelines["traces"].exporters == ("parquet",)
    assert config.storage.data_dir == "./agentwatch-data"
    assert config.storage.flush_interval == 1.0
    assert config.api.endpoint == "127.0.0.1:8080"


def test_partial_file_keeps_other_sections_from_default() -> None:
    config = parse_config("storage:\n  data_dir: /tmp/x\n  flush_interval: 250ms\n", "cfg.yaml", {})
    assert config.storage.data_dir == "/tmp/x"
    assert config.storage.flush_interval == 0.25
    assert config.pipelines["traces"].receivers == ("otlp",)


def test_named_components_and_env_substitution() -> None:
    text = """
receivers:
  otlp/edge:
    protocols:
      grpc:
        endpoint: ${env:GRPC_ADDR}
      http:
exporters:
  parquet:
  memory/debug:
service:
  pipelines:
    traces:
      receivers: [otlp/edge]
      processors: [normalize]
      exporters: [parquet, memory/debug]
"""
    config = parse_config(text, "cfg.yaml", {"GRPC_ADDR": "0.0.0.0:5317"})
    edge = config.receivers["otlp/edge"]
    assert edge.type == "otlp"
    assert edge.config.protocols.grpc.endpoint == "0.0.0.0:5317"
    assert edge.config.protocols.http.endpoint == "127.0.0.1:4318"
    assert config.exporters["memory/debug"].type == "memory"
    assert config.pipelines["traces"].exporters == ("parquet", "memory/debug")


def test_env_default_and_dollar_escape() -> None:
    config = parse_config("storage:\n  data_dir: ${env:NOPE:-/srv/aw}$$x\n", "cfg.yaml", {})
    assert config.storage.data_dir == "/srv/aw$x"


def test_unset_env_var_names_key_and_line() -> None:
    assert problems("storage:\n  data_dir: ${env:MISSING_DIR}\n") == [
        "cfg.yaml:2: storage.data_dir: environment variable MISSING_DIR is not set"
    ]


def test_unknown_keys_are_named_with_line() -> None:
    text = "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:4317\n        bogus: 1\n"
    assert problems(text) == ["cfg.yaml:6: receivers.otlp.protocols.grpc.bogus: unknown key"]
    assert problems("storagge:\n  data_dir: x\n")[0].startswith("cfg.yaml:1: storagge: unknown section")


def test_budgets_is_a_mapping_of_named_budgets() -> None:
    assert problems("storage:\n  data_dir: x\nbudgets:\n  monthly_usd: 100\n") == [
        "cfg.yaml:4: budgets.monthly_usd: Input should be a dictionary or an instance of Budget"
    ]
    assert problems("alerts:\n  rules:\n    - {name: over, kind: forecast_overrun}\n") == [
        "cfg.yaml:3: alerts.rules.0.kind: a forecast_overrun rule without a threshold reads the config's "
        "budgets: and there are none"
    ]


def test_the_default_compaction_block_is_the_documented_defaults() -> None:
    compaction = load_config(None, {}).storage.compaction
    assert (compaction.first_tier_mib, compaction.memory_limit_mib, compaction.worker) == (
        1.0,
        256.0,
        "process",
    )
    assert compaction == type(compaction)()


def test_bad_port_and_unknown_type() -> None:
    text = (
        "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:99999\n  kafka: {}\n"
    )
    found = problems(text)
    assert found == [
        "cfg.yaml:5: receivers.otlp.protocols.http.endpoint: port 99999 is out of range 0-65535",
        "cfg.yaml:6: receivers.kafka: unknown receiver type 'kafka' (known: bucket, memory, otlp, synthetic)",
    ]


def test_pipeline_naming_unconfigured_component() -> None:
    text = """
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [normalize, batch]
      exporters: [parquet, clickhouse]
"""
    assert problems(text) == [
        "cfg.yaml:6: service.pipelines.traces.processors.1: processor 'batch' is not configured under 'processors'",
        "cfg.yaml:7: service.pipelines.traces.exporters.1: exporter 'clickhouse' is not configured under 'exporters'",
    ]


def test_bad_duration_and_yaml_syntax() -> None:
    assert problems("storage:\n  flush_interval: soon\n") == [
        "cfg.yaml:2: storage.flush_interval: 'soon' is not a duration: use a number of seconds "
        "or e.g. '500ms', '2s', '15m', '7d'"
    ]
    assert problems("storage: [\n")[0].startswith("cfg.yaml:2: invalid YAML:")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml", {})
    assert info.value.problems == [
        f"{tmp_path / 'nope.yaml'}: cannot read config file: No such file or directory"
    ]


def test_agents_section() -> None:
    text = (
        "agents:\n"
        "  - id: expense-bot\n"
        "    owner: alice@acme.com\n"
        "    thresholds: {failure_rate: 0.2, min_runs: 5}\n"
        "  - id: faq-bot\n"
        "    tenant: globex\n"
    )
    config = parse_config(text, "cfg.yaml", {})
    assert [(a.id, a.owner, a.tenant) for a in config.agents] == [
        ("expense-bot", "alice@acme.com", None),
        ("faq-bot", None, "globex"),
    ]
    assert config.agents[0].thresholds.failure_rate == 0.2
    assert config.agents[0].thresholds.min_runs == 5
    assert parse_config("", "cfg.yaml", {}).agents == ()


def test_agents_problems_name_line_and_key() -> None:
    text = (
        "agents:\n"
        "  - id: expense-bot\n"
        "    thresholds:\n"
        "      failure_rate: 20\n"
        "  - id: expense-bot\n"
        "  - id: faq-bot\n"
        "    colour: red\n"
    )
    assert problems(text) == [
        "cfg.yaml:4: agents.0.thresholds.failure_rate: must be between 0 and 1 (a share of runs)",
        "cfg.yaml:5: agents.1.id: 'expense-bot' is already defined at agents.0",
        "cfg.yaml:7: agents.2.colour: unknown key",
    ]
    assert problems("agents:\n  id: x\n") == ["cfg.yaml:1: agents: must be a list of agents (- id: ...)"]


# A span whose call failed with a 500: classify makes it dependency_unavailable.
_FAILED_SPAN = (
    '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "5eed0000000000000000000000000001",'
    ' "spanId": "5eed000000000001", "name": "chat gpt-4o", "startTimeUnixNano": "1735689600000000000",'
    ' "endTimeUnixNano": "1735689601000000000", "status": {"code": 2, "message": "Error code: 500"},'
    ' "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}]}]}]}]}'
)


def _stored_failure_types(text: str, tmp_path: Path) -> tuple[tuple[str, ...], list[str | None]]:
    """The processors of the assembled ``traces`` pipeline and the failure types it stores."""
    from agentwatch.pipeline import assemble
    from core.model import OtlpBatch, OtlpRecord
    from exporters.memory import InMemoryExporter
    from receiver.otlp.otlp_json import parse_json_request

    config = parse_config(text, "cfg.yaml", {}).with_data_dir(str(tmp_path))
    assembly = assemble(config)
    assembly.start()
    assembly.pipelines[0].consume(
        OtlpBatch([OtlpRecord.from_request(parse_json_request(_FAILED_SPAN.encode()))])
    )
    assembly.shutdown()
    memory = assembly.exporters["memory"]
    assert isinstance(memory, InMemoryExporter)
    types = [type(p).__name__ for p in assembly.pipelines[0].processors]
    return tuple(types), memory.table()["failure_type"].to_pylist()


def test_a_file_configuring_its_own_processors_keeps_classify(tmp_path: Path) -> None:
    text = """processors:
  normalize:
    attributes: {user_id: [glean.user.email]}
exporters:
  memory: {}
service:
  pipelines:
    traces: {receivers: [otlp], processors: [normalize, classify], exporters: [memory]}
"""
    config = parse_config(text, "cfg.yaml", {})
    assert list(config.processors) == ["normalize", "classify", "cost"]  # the default's others stay defined
    assert config.processors["normalize"].config.attributes == {"user_id": ["glean.user.email"]}
    assert config.processors["classify"].config.loop_threshold == 3  # the default's classify
    assert _stored_failure_types(text, tmp_path) == (
        ("NormalizeProcessor", "ClassifyProcessor"),
        ["dependency_unavailable"],
    )
    # Without a pipeline of its own, the file gets the default pipeline, classify included.
    only_processors = parse_config(text.split("exporters:")[0], "cfg.yaml", {})
    assert only_processors.pipelines["traces"].processors == ("normalize", "classify", "cost")


def test_a_component_of_the_file_replaces_the_default_of_its_id() -> None:
    config = parse_config("processors:\n  classify:\n    loop_threshold: 5\n", "cfg.yaml", {})
    assert config.processors["classify"].config.loop_threshold == 5
    assert config.processors["normalize"].config.max_text_length == 8192  # still the default's
    assert config.pipelines["traces"].processors == ("normalize", "classify", "cost")


def test_a_pipeline_that_leaves_classify_out_removes_it(tmp_path: Path) -> None:
    text = """processors:
  normalize: {}
exporters:
  memory: {}
service:
  pipelines:
    traces: {receivers: [otlp], processors: [normalize], exporters: [memory]}
"""
    assert parse_config(text, "cfg.yaml", {}).pipelines["traces"].processors == ("normalize",)
    assert _stored_failure_types(text, tmp_path) == (("NormalizeProcessor",), [None])


def test_type_errors_and_semantic_errors_are_reported_in_one_pass() -> None:
    text = """\
storage:
  max_queue_mib: -5
  flush_interval: soon
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:notaport
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "agentwatch.yaml")
    assert info.value.problems == [
        "agentwatch.yaml:2: storage.max_queue_mib: must be positive",
        "agentwatch.yaml:3: storage.flush_interval: 'soon' is not a duration: use a number of seconds "
        "or e.g. '500ms', '2s', '15m', '7d'",
        "agentwatch.yaml:8: receivers.otlp.protocols.grpc.endpoint: port 'notaport' is not a number",
    ]
