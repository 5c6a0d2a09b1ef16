"""The ``evals:`` section: named agent targets and judges, and judging of production runs.

evals:
  targets:                          # a name here works wherever a target spec does
    expense-glean:
      spec: glean:https://acme-be.glean.com#agt_123
      api_key: ${env:GLEAN_API_KEY}
      timeout: 60s                  # one attempt
      retries: 3                    # on 429, 5xx and transport errors, with backoff
      concurrency: 4                # cases in flight at once, shared by every run of it
  judges:                           # a name here works wherever a judge does
    openai:
      type: openai                  # heuristic | openai | glean
      url: https://api.openai.com/v1
      model: gpt-4o-mini
      api_key: ${env:OPENAI_API_KEY}
  groundedness_threshold: 5.0       # a groundedness score under it marks the run groundedness_drop
  quality_thresholds:               # a score under one of these marks the run quality_regression
    overall_score: 4.0              # (the default); also any dimension, e.g. topical_coverage: 5
  production:                       # judge a sample of production runs, off the ingest path
    judge: heuristic
    sample_rate: 0.05               # 0 (the default) turns it off
    interval: 1m
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from core.configmodel import STRICT
from core.units import Duration
from evals.judges.scores import OVERALL, SCALES

TARGET_KINDS = ("python", "openai", "glean", "http")
DEFAULT_QUALITY_THRESHOLDS: Mapping[str, float] = MappingProxyType({OVERALL: 4.0})
"""A judged run whose overall score is under 4 of 10 is marked ``quality_regression``."""
JUDGE_KINDS = ("heuristic", "openai", "glean")


@dataclass(frozen=True)
class TargetConfig:
    __pydantic_config__ = STRICT
    spec: str
    """python:pkg.module:function, openai:URL#model, glean:URL#agent_id (or #workflow:ID), http:URL."""
    api_key: str | None = None
    """Bearer key; use ${env:VAR}."""
    timeout: Duration = 60.0
    retries: int = 3
    backoff: Duration = 1.0
    """Seconds before the first retry; doubles each time."""
    concurrency: int = 4
    system_prompt: str | None = None
    """openai targets: a system message sent before each case."""

    def validate(self) -> list[str]:
        problems = []
        if self.spec.partition(":")[0] not in TARGET_KINDS:
            kinds = ", ".join(k + ":" for k in TARGET_KINDS)
            problems.append(f"spec: {self.spec!r} must start with one of {kinds}")
        if self.timeout <= 0:
            problems.append("timeout: must be positive")
        if self.retries < 0:
            problems.append("retries: must not be negative")
        if self.concurrency < 1:
            problems.append("concurrency: must be at least 1")
        return problems


@dataclass(frozen=True)
class JudgeConfig:
    __pydantic_config__ = STRICT
    type: Literal["heuristic", "openai", "glean"]
    url: str | None = None
    """openai: the API base (…/v1); glean: the backend (https://acme-be.glean.com)."""
    model: str | None = None
    """openai: the model asked."""
    api_key: str | None = None
    timeout: Duration = 60.0
    retries: int = 3
    """HTTP retries on 429, 5xx and transport errors."""
    backoff: Duration = 1.0
    """Seconds before the first HTTP retry; doubles each time."""
    parse_retries: int = 2
    """Times a judge group is asked again when its answer is not the strict JSON asked for."""
    factual_accuracy: bool = False
    """Also score factual_accuracy (needs a judge that can search, e.g. Glean)."""

    def validate(self) -> list[str]:
        problems = []
        if self.type != "heuristic":
            if not self.url or not self.url.startswith(("http://", "https://")):
                problems.append(f"url: {self.type} judges need an http(s) URL")
            if self.type == "openai" and not self.model:
                problems.append("model: an openai judge needs a model")
        if self.retries < 0:
            problems.append("retries: must not be negative")
        if self.parse_retries < 0:
            problems.append("parse_retries: must not be negative")
        return problems


@dataclass(frozen=True)
class ProductionJudging:
    __pydantic_config__ = STRICT
    judge: str = "heuristic"
    sample_rate: float = 0.0
    """Share of production runs judged (chosen by trace id, so every replica picks the same)."""
    interval: Duration = 60.0
    lookback: Duration = 3600.0
    """Runs that started this recently are considered."""
    settle: Duration = 30.0
    """A run is judged once it ended this long ago (its tool spans have arrived)."""
    max_runs: int = 200
    """Runs judged per pass at most; the rest wait for the next pass."""

    def validate(self) -> list[str]:
        problems = []
        if not 0 <= self.sample_rate <= 1:
            problems.append("sample_rate: must be between 0 and 1")
        if self.interval <= 0:
            problems.append("interval: must be positive")
        if self.max_runs < 1:
            problems.append("max_runs: must be at least 1")
        return problems


@dataclass(frozen=True)
class EvalsConfig:
    __pydantic_config__ = STRICT
    targets: dict[str, TargetConfig] = field(default_factory=dict)
    judges: dict[str, JudgeConfig] = field(default_factory=dict)
    groundedness_threshold: float = 5.0
    """Points (of 10): a groundedness score under it marks the run ``groundedness_drop``."""
    quality_thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_QUALITY_THRESHOLDS))
    """Points (of 10) per score (``overall_score`` or a dimension): a judged run scoring under any
    of them is marked ``quality_regression`` (unless it is already ``groundedness_drop``).
    ``{}`` turns it off."""
    production: ProductionJudging = field(default_factory=ProductionJudging)

    def validate(self) -> list[str]:
        problems = []
        for name, target in self.targets.items():
            problems += [f"targets.{name}.{p}" for p in target.validate()]
        for name, judge in self.judges.items():
            problems += [f"judges.{name}.{p}" for p in judge.validate()]
        if not 0 <= self.groundedness_threshold <= 10:
            problems.append("groundedness_threshold: must be between 0 and 10")
        for name, limit in self.quality_thresholds.items():
            if name != OVERALL and name not in SCALES:
                known = ", ".join((OVERALL, *SCALES))
                problems.append(f"quality_thresholds.{name}: not a score (one of {known})")
            elif not 0 <= limit <= 10:
                problems.append(f"quality_thresholds.{name}: must be between 0 and 10")
        problems += [f"production.{p}" for p in self.production.validate()]
        if (problem := self.judge_problem(self.production.judge)) is not None:
            problems.append(f"production.judge: {problem}")
        return problems

    def judge_problem(self, judge: str) -> str | None:
        """Why ``judge`` (a name or a spec) names no judge, or None."""
        if judge in self.judges or judge == "heuristic":
            return None
        kind, sep, rest = judge.partition(":")
        if sep and kind in ("openai", "glean") and rest.startswith(("http://", "https://")):
            return None
        names = ", ".join(["heuristic", *sorted(self.judges)])
        return (
            f"{judge!r} is not a judge: use one of {names} (judges are defined under evals.judges), "
            "or a spec openai:URL#model / glean:URL"
        )

    def target_problem(self, target: str) -> str | None:
        """Why ``target`` (a name or a spec) names no target, or None."""
        if target in self.targets:
            return None
        kind, sep, rest = target.partition(":")
        if sep and kind in TARGET_KINDS and rest:
            return None
        names = ", ".join(sorted(self.targets)) or "none defined"
        kinds = ", ".join(k + ":…" for k in TARGET_KINDS)
        return f"{target!r} is neither a target under evals.targets ({names}) nor a spec ({kinds})"
