"""Load, merge and validate agentwatch's YAML configuration (the OpenTelemetry Collector's schema).

A file may give only some sections; every section it leaves out comes whole from the built-in
default, the top-level ``otel-collector-config.yaml`` (shipped in the package as
``agentwatch/default_config.yaml``, a symbolic link to it: one file). The component sections
(``receivers``, ``processors``, ``exporters``) merge with the default by component id, as the
Collector merges its config files: a component the file defines replaces the default one of that
id, whole, and the default's others stay defined. So a file that configures ``normalize`` keeps
the default ``classify``, and the default pipeline still runs it; a pipeline runs exactly the
processors its ``processors:`` list names, so leaving ``classify`` out of a pipeline's list is
how it is removed. Every problem is reported at once, each naming the file, the line and the
YAML key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from agentwatch.registry import SECTIONS, component_module
from agentwatch.settings import ApiConfig, StorageConfig
from alerting.config import AlertsConfig
from core.agents import AgentConfig, build_agents
from core.configmodel import build_config
from core.errors import ConfigError
from core.yamlsource import Source, load_yaml
from evals.config import EvalsConfig
from feedback.implicit import ImplicitConfig
from health.config import HealthConfig
from processors.classify.taxonomy import FAILURE_TYPES
from spend.budgets import Budget, build_budgets
from spend.ledger import ChargebackConfig

TOP_LEVEL = (
    "receivers",
    "processors",
    "exporters",
    "service",
    "storage",
    "api",
    "agents",
    "evals",
    "alerts",
    "budgets",
    "chargeback",
    "feedback",
    "health",
)
PIPELINE_KEYS = ("receivers", "processors", "exporters")


@dataclass(frozen=True)
class ComponentConfig:
    id: str
    """``type`` or ``type/name``, as written in the YAML."""
    type: str
    config: Any


@dataclass(frozen=True)
class PipelineConfig:
    id: str
    receivers: tuple[str, ...]
    processors: tuple[str, ...]
    exporters: tuple[str, ...]


@dataclass(frozen=True)
class AgentwatchConfig:
    source: str
    receivers: dict[str, ComponentConfig]
    processors: dict[str, ComponentConfig]
    exporters: dict[str, ComponentConfig]
    pipelines: dict[str, PipelineConfig]
    storage: StorageConfig = field(default_factory=StorageConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    agents: tuple[AgentConfig, ...] = ()
    evals: EvalsConfig = field(default_factory=EvalsConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    budgets: dict[str, Budget] = field(default_factory=dict)
    chargeback: ChargebackConfig = field(default_factory=ChargebackConfig)
    feedback: ImplicitConfig = field(default_factory=ImplicitConfig)
    health: HealthConfig = field(default_factory=HealthConfig)

    def with_data_dir(self, data_dir: str | None) -> AgentwatchConfig:
        if not data_dir:
            return self
        return replace(self, storage=replace(self.storage, data_dir=data_dir))


def default_text() -> str:
    return resources.files("agentwatch").joinpath("default_config.yaml").read_text(encoding="utf-8")


class _Problems:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, path: tuple[str, ...], message: str) -> None:
        self.items.append(f"{self.source.where(path)}: {'.'.join(path)}: {message}")

    def add_relative(self, base: tuple[str, ...], problems: list[str]) -> None:
        """``problems`` are ``"key.sub: message"`` relative to ``base``."""
        for problem in problems:
            key, _, message = problem.partition(": ")
            rel = tuple(part for part in key.split(".") if part and part != "(section)")
            self.add((*base, *rel), message)


def _components(section: str, data: Any, problems: _Problems) -> dict[str, ComponentConfig]:
    out: dict[str, ComponentConfig] = {}
    if data is None:
        return out
    if not isinstance(data, dict):
        problems.add((section,), "must be a mapping of component ids to their settings")
        return out
    for comp_id, body in data.items():
        type_name, _, name = comp_id.partition("/")
        if type_name not in SECTIONS[section] or (comp_id.count("/") and not name):
            known = ", ".join(sorted(SECTIONS[section]))
            problems.add((section, comp_id), f"unknown {section[:-1]} type {type_name!r} (known: {known})")
            continue
        module = component_module(section, type_name)
        config, found = build_config(module.Config, body)
        problems.add_relative((section, comp_id), found)
        if config is not None:
            out[comp_id] = ComponentConfig(id=comp_id, type=type_name, config=config)
    return out


def _id_list(value: Any, path: tuple[str, ...], problems: _Problems) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.add(path, "must be a list of component ids")
        return ()
    return tuple(value)


def _pipelines(
    data: Any, sections: dict[str, dict[str, ComponentConfig]], raw: dict[str, Any], problems: _Problems
) -> dict[str, PipelineConfig]:
    out: dict[str, PipelineConfig] = {}
    if not isinstance(data, dict):
        problems.add(("service",), "must be a mapping with 'pipelines'")
        return out
    for key in data:
        if key not in ("pipelines", "telemetry", "extensions"):
            problems.add(("service", key), "unknown key")
    pipelines = data.get("pipelines")
    if not isinstance(pipelines, dict) or not pipelines:
        problems.add(("service", "pipelines"), "must define at least one pipeline, e.g. 'traces'")
        return out
    for pipe_id, body in pipelines.items():
        base = ("service", "pipelines", pipe_id)
        if pipe_id.partition("/")[0] != "traces":
            problems.add(base, "only 'traces' pipelines are supported (use 'traces' or 'traces/<name>')")
            continue
        if not isinstance(body, dict):
            problems.add(base, "must be a mapping with receivers, processors and exporters")
            continue
        for key in body:
            if key not in PIPELINE_KEYS:
                problems.add((*base, key), "unknown key")
        lists = {k: _id_list(body.get(k), (*base, k), problems) for k in PIPELINE_KEYS}
        for kind in PIPELINE_KEYS:
            for i, comp_id in enumerate(lists[kind]):
                if comp_id not in sections[kind] and comp_id not in (raw.get(kind) or {}):
                    problems.add(
                        (*base, kind, str(i)), f"{kind[:-1]} {comp_id!r} is not configured under '{kind}'"
                    )
        for kind in ("receivers", "exporters"):
            if not lists[kind]:
                problems.add((*base, kind), f"a pipeline needs at least one {kind[:-1]}")
        procs = lists["processors"]
        if not procs or procs[0].partition("/")[0] != "normalize":
            problems.add(
                (*base, "processors"), "must start with 'normalize' (it turns OTLP spans into canonical rows)"
            )
        out[pipe_id] = PipelineConfig(pipe_id, lists["receivers"], procs, lists["exporters"])
    return out


def _section(cls: Any, name: str, data: Any, problems: _Problems) -> Any:
    config, found = build_config(cls, data)
    problems.add_relative((name,), found)
    return config if config is not None else cls()


def _line_order(problem: str) -> tuple[str, int]:
    name, _, rest = problem.partition(":")
    line = rest.partition(":")[0]
    return name, int(line) if line.isdigit() else 0


def parse_config(text: str, name: str, env: Mapping[str, str] | None = None) -> AgentwatchConfig:
    user = load_yaml(text, name, env)
    default = load_yaml(default_text(), "<built-in default>", env)
    problems = _Problems(user)
    for key in user.data:
        if key not in TOP_LEVEL:
            problems.add((key,), f"unknown section (known: {', '.join(TOP_LEVEL)})")
    merged = {**default.data, **{k: v for k, v in user.data.items() if k in TOP_LEVEL}}
    for section in SECTIONS:
        merged[section] = _merge_components(default.data.get(section), user.data.get(section, {}))
    sections = {s: _components(s, merged.get(s), problems) for s in SECTIONS}
    pipelines = _pipelines(merged.get("service"), sections, merged, problems)
    storage = _section(StorageConfig, "storage", merged.get("storage"), problems)
    api = _section(ApiConfig, "api", merged.get("api"), problems)
    agents, agent_problems = build_agents(merged.get("agents"))
    problems.add_relative(("agents",), agent_problems)
    evals = _section(EvalsConfig, "evals", merged.get("evals"), problems)
    _check_eval_references(sections["receivers"], evals, problems)
    alerts = _section(AlertsConfig, "alerts", merged.get("alerts"), problems)
    _check_failure_types(sections["processors"], alerts, problems)
    budgets, budget_problems = build_budgets(merged.get("budgets"))
    problems.add_relative(("budgets",), budget_problems)
    for i, rule in enumerate(alerts.rules):
        reads_budgets = rule.kind == "forecast_overrun" or (rule.kind == "budget" and rule.threshold is None)
        if reads_budgets and not budgets:
            problems.add(
                ("alerts", "rules", str(i), "kind"),
                f"a {rule.kind} rule without a threshold reads the config's budgets: and there are none",
            )
    chargeback = _section(ChargebackConfig, "chargeback", merged.get("chargeback"), problems)
    feedback = _section(ImplicitConfig, "feedback", merged.get("feedback"), problems)
    health = _section(HealthConfig, "health", merged.get("health"), problems)
    if problems.items:
        raise ConfigError(sorted(problems.items, key=_line_order))
    return AgentwatchConfig(
        name,
        sections["receivers"],
        sections["processors"],
        sections["exporters"],
        pipelines,
        storage,
        api,
        agents,
        evals,
        alerts,
        budgets,
        chargeback,
        feedback,
        health,
    )


def _merge_components(default: Any, user: Any) -> Any:
    """A component section: the default's components, and the file's by id over them (a file's
    section that is not a mapping is left as it is, for ``_components`` to report)."""
    if user is None:
        return default
    if not isinstance(user, dict) or not isinstance(default, dict):
        return user
    return {**default, **user}


def _check_failure_types(
    processors: dict[str, ComponentConfig], alerts: AlertsConfig, problems: _Problems
) -> None:
    """An alert rule's ``failure_type`` is one spans can get: built in, or given by a classify
    rule of this config (the taxonomy is open, so a typo would otherwise never fire)."""
    from processors.classify.config import failure_types

    wanted = [(i, r.failure_type) for i, r in enumerate(alerts.rules) if r.failure_type is not None]
    if not wanted:
        return
    known = set(FAILURE_TYPES)
    for proc in processors.values():
        if proc.type == "classify":
            known |= failure_types(proc.config)
    for i, failure_type in wanted:
        if failure_type not in known:
            ours = sorted(known - set(FAILURE_TYPES))
            added = f"; your rules add: {', '.join(ours)}" if ours else ""
            problems.add(
                ("alerts", "rules", str(i), "failure_type"),
                f"{failure_type!r} is not a failure type spans can get (built in: {', '.join(FAILURE_TYPES)}"
                f"{added}); a classify rule may add it (processors.classify.rules)",
            )


def _check_eval_references(
    receivers: dict[str, ComponentConfig], evals: EvalsConfig, problems: _Problems
) -> None:
    """Synthetic receivers name targets and judges that ``evals:`` may define."""
    for rec_id, rec in receivers.items():
        for key in ("target", "judge"):
            value = getattr(rec.config, key, None)
            if not isinstance(value, str) or rec.type != "synthetic":
                continue
            problem = evals.target_problem(value) if key == "target" else evals.judge_problem(value)
            if problem is not None:
                problems.add(("receivers", rec_id, key), problem)


def load_config(path: str | Path | None, env: Mapping[str, str] | None = None) -> AgentwatchConfig:
    """The config in ``path``, or the built-in default when ``path`` is None."""
    if path is None:
        return parse_config("", "<built-in default>", env)
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config file: {exc.strerror}") from None
    return parse_config(text, str(file), env)
