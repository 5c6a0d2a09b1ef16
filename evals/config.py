"""The ``evals:`` section: named agent targets and judges, and judging of production runs.

evals:
  targets:                          # a name here works wherever a target spec does
    expense-glean:
      spec: glean:https://acme-be.glean.com#agt_123
      api_key: ${env:GLEAN_API_KEY}
      timeout: 60s                  # one attempt
      retries: 3                    # on 429, 5xx and transport errors, with backoff
      concurrency: 4                # cases in flight at once, shared by every run of it
      mode: auto                    # glean agents: auto (from its input schema) | form | chat
  judges:                           # a name here works wherever a judge does
    openai:
      type: openai                  # heuristic | openai | glean | ensemble
      url: https://api.openai.com/v1
      model: gpt-4o-mini
      api_key: ${env:OPENAI_API_KEY}
      fact_checker: glean-advanced  # factual_accuracy asked of a search-capable judge or target
    glean-advanced:
      type: glean
      url: https://acme-be.glean.com
      agent: ADVANCED               # Glean chat's agentConfig.agent
      model_set: ADVANCED           # or: the model set (FAST | ADVANCED | AUTO), sent as agentConfig.agent
    panel:
      type: ensemble                # every member judges; combined per dimension
      members: [openai, glean-advanced]
      combine: mean                 # mean | majority (of labels)
    seer-judge:
      type: openai
      url: https://api.openai.com/v1
      model: gpt-4o-mini
      scale: seer                   # Seer's labels (full..failure, low/medium/high); default: default
  seer:                             # the dimensions a `scale: seer` judge scores (evals.judges.seer)
    dimensions:                     # Seer's name -> the dimension or criterion judged, its weight
      topicalCoverage: {dimension: topical_coverage, weight: 3}
  criteria:                         # custom dimensions, judged by the LLM judges
    cites_policy:
      rubric: Does the answer name the policy document it relies on?
      scale: {named: 10, vague: 5, missing: 0}   # quote yes/no: YAML reads them as true/false
      weight: 1.0
      guidance: true                # the call sees the case's guidance
  groundedness_threshold: 5.0       # a groundedness score under it marks the run groundedness_drop
  quality_thresholds:               # a score under one of these marks the run quality_regression
    overall_score: 4.0              # (the default); also any dimension, e.g. topical_coverage: 5
  multi_turn:                       # cases with turns: 2 or more (evals.conversation)
    simulator: user-sim             # the target playing the user (a name under targets, or a spec);
                                    # default: none (--simulator, else each such case is an error)
    persona: A busy employee who writes short messages.   # default: DEFAULT_PERSONA
    stop: "[DONE]"                  # the simulator's reply holding it ends the conversation
  production:                       # judge a sample of production runs, off the ingest path
    judge: heuristic
    sample_rate: 0.05               # 0 (the default) turns it off
    interval: 1m
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from pydantic import StrictFloat

from core.configmodel import STRICT
from core.units import Duration
from evals.judges.scores import METRICS, OVERALL, SCALES

TARGET_KINDS = ("python", "openai", "glean", "http")
DEFAULT_QUALITY_THRESHOLDS: Mapping[str, float] = MappingProxyType({OVERALL: 4.0})
"""A judged run whose overall score is under 4 of 10 is marked ``quality_regression``."""
JUDGE_KINDS = ("heuristic", "openai", "glean", "ensemble")
JUDGE_SCALES = ("default", "seer")
"""``default``: each dimension's own labels (``evals.judges.scores.SCALES``); ``seer``: Seer's
categorical labels (``evals.judges.seer``)."""
GLEAN_AGENTS = ("DEFAULT", "GPT", "UNIVERSAL", "FAST", "ADVANCED", "AUTO")
"""Glean chat's ``agentConfig.agent`` values (its Client API's ``AgentConfig``)."""
GLEAN_MODEL_SETS = ("FAST", "ADVANCED", "AUTO")
"""The agentic engine's model sets, by the ``agentConfig.agent`` that selects each: ``FAST`` (a fast
model set, less reasoning), ``ADVANCED`` (the best model set), ``AUTO`` (routed per question)."""
CRITERION_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
DEFAULT_PERSONA = "A user of this agent who wants the goal below done and answers in a sentence or two."
"""The simulated user of a multi-turn case that names no ``persona`` (``evals.multi_turn.persona``)."""
DEFAULT_STOP = "[DONE]"


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
    mode: Literal["auto", "form", "chat"] = "auto"
    """glean agent targets: ``auto`` (the default) reads the agent's input schema (a form agent
    is run with its fields, any other with the query as a message); ``form`` or ``chat`` forces
    the mode without the lookup."""

    def validate(self) -> list[str]:
        problems = []
        kind = self.spec.partition(":")[0]
        if kind not in TARGET_KINDS:
            kinds = ", ".join(k + ":" for k in TARGET_KINDS)
            problems.append(f"spec: {self.spec!r} must start with one of {kinds}")
        elif self.mode != "auto" and (kind != "glean" or "#workflow:" in self.spec):
            problems.append(
                f"mode: only a glean agent target (glean:URL#agent_id) has one, not {self.spec!r}"
            )
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
    type: Literal["heuristic", "openai", "glean", "ensemble"]
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
    """Times a judge call is asked again when its answer is not the strict JSON asked for."""
    factual_accuracy: bool = False
    """Also score factual_accuracy (needs a judge that can search, e.g. Glean)."""
    fact_checker: str | None = None
    """A judge under ``evals.judges`` (openai or glean) or a target under ``evals.targets`` that
    is asked for factual_accuracy instead of this judge (a search-capable agent: Glean's ADVANCED
    agent, or one of yours); setting it scores factual_accuracy. Default: none."""
    agent: str | None = None
    """glean: the chat agent (``agentConfig.agent``: DEFAULT, GPT, UNIVERSAL, FAST, ADVANCED or
    AUTO, any case); default: none sent (Glean's default)."""
    model_set: str | None = None
    """glean: the model set the judge's answers come from, ``FAST``, ``ADVANCED`` or ``AUTO`` (any
    case), sent as ``agentConfig.agent`` (Glean's chat API selects its model set so; it has no
    model set id). Default: none (Glean's default chat)."""

    members: list[str] = field(default_factory=list)
    """ensemble: the judges (names under ``evals.judges``, ``heuristic`` or specs) that each judge
    every case, at least two."""
    combine: Literal["mean", "majority"] = "mean"
    """ensemble: ``mean`` of the votes' values, or ``majority`` of their labels."""
    scale: str = "default"
    """openai, glean and ensemble judges: ``default`` (each dimension's own labels) or ``seer``
    (Seer's labels, scored under the names and weights of ``evals.seer.dimensions``)."""

    @property
    def glean_agent(self) -> str | None:
        """What a glean judge sends as ``agentConfig.agent``: the model set, else the agent."""
        chosen = self.model_set or self.agent
        return chosen.upper() if chosen else None

    def validate(self) -> list[str]:
        problems = []
        if self.type == "ensemble":
            if len(self.members) < 2:
                problems.append("members: an ensemble needs at least two judges")
            if len(set(self.members)) != len(self.members):
                problems.append("members: a judge is named twice")
            if self.fact_checker is not None:
                problems.append("fact_checker: set it on the ensemble's members, not the ensemble")
        elif self.members:
            problems.append(f"members: only an ensemble has members, not a {self.type} judge")
        if self.type in ("openai", "glean"):
            if not self.url or not self.url.startswith(("http://", "https://")):
                problems.append(f"url: {self.type} judges need an http(s) URL")
            if self.type == "openai" and not self.model:
                problems.append("model: an openai judge needs a model")
        if self.type == "heuristic" and self.fact_checker is not None:
            problems.append("fact_checker: the heuristic judge cannot ask a fact checker")
        if self.agent is not None and self.type != "glean":
            problems.append("agent: only a glean judge has a chat agent")
        elif self.agent is not None and self.agent.upper() not in GLEAN_AGENTS:
            problems.append(f"agent: {self.agent!r} is not one of {', '.join(GLEAN_AGENTS)}")
        if self.model_set is not None and self.type != "glean":
            problems.append("model_set: only a glean judge has a model set")
        elif self.model_set is not None and self.model_set.upper() not in GLEAN_MODEL_SETS:
            problems.append(f"model_set: {self.model_set!r} is not one of {', '.join(GLEAN_MODEL_SETS)}")
        elif self.model_set is not None and self.agent is not None and self.glean_agent != self.agent.upper():
            problems.append(
                f"model_set: {self.model_set!r} and agent: {self.agent!r} differ: set one of them"
            )
        if self.scale not in JUDGE_SCALES:
            problems.append(f"scale: {self.scale!r} is not one of {', '.join(JUDGE_SCALES)}")
        elif self.scale == "seer" and self.type == "heuristic":
            problems.append("scale: the heuristic judge scores its own labels; seer is for openai, glean "
                            "and ensemble judges")  # fmt: skip
        if self.retries < 0:
            problems.append("retries: must not be negative")
        if self.parse_retries < 0:
            problems.append("parse_retries: must not be negative")
        return problems


@dataclass(frozen=True)
class CriterionConfig:
    """A custom dimension: its rubric, its labels' points and its weight in the overall score."""

    __pydantic_config__ = STRICT
    rubric: str
    """The question the judge answers about the answer."""
    scale: dict[str, float]
    """Label → points (0-10); at least two labels."""
    weight: float = 1.0
    """Its weight in ``overall_score`` (the built-in weights: topical_coverage 3, response_quality,
    groundedness, hallucination_risk and golden 2, factual_accuracy 1); 0 keeps it out."""
    guidance: bool = True
    """Whether its judge call sees the case's guidance."""

    def validate(self) -> list[str]:
        problems = []
        if not self.rubric.strip():
            problems.append("rubric: must not be empty")
        if len(self.scale) < 2:
            problems.append("scale: needs at least two labels")
        for label, points in self.scale.items():
            if label in ("True", "False"):
                problems.append(f"scale.{label}: YAML reads yes/no/on/off as true/false: quote the label")
            elif not label.strip() or label != label.strip().lower():
                problems.append(f"scale.{label}: a label must be lowercase, without surrounding spaces")
            elif not 0 <= points <= 10:
                problems.append(f"scale.{label}: must be between 0 and 10")
        if self.weight < 0:
            problems.append("weight: must not be negative")
        return problems


@dataclass(frozen=True)
class SeerDimension:
    """One of Seer's dimensions: what a ``scale: seer`` judge asks for it, and its weight."""

    __pydantic_config__ = STRICT
    dimension: str
    """The built-in dimension or custom criterion (``evals.criteria``) whose question is asked."""
    weight: StrictFloat
    """Its weight in ``overall_score``: Seer's, as ``agentwatch eval import-seer`` read it; a
    finite number, not negative (not a boolean), one of the dimensions' positive."""


@dataclass(frozen=True)
class SeerConfig:
    """Seer's dimensions by Seer's names (``agentwatch eval import-seer`` prints them from a Seer
    database). Empty (the default): a ``scale: seer`` judge scores the built-in dimensions under
    their own names and weights, and the custom criteria, with Seer's labels."""

    __pydantic_config__ = STRICT
    dimensions: dict[str, SeerDimension] = field(default_factory=dict)

    def validate(self, criteria: Mapping[str, object]) -> list[str]:
        problems = []
        judged: dict[str, str] = {}
        for name, d in self.dimensions.items():
            key = f"dimensions.{name}"
            if not name.strip() or name != name.strip():
                problems.append(f"{key}: a name must not be empty or have surrounding spaces")
            elif name in (OVERALL, "overall", *METRICS):
                problems.append(f"{key}: {name!r} is the overall score or a metric, not a dimension")
            elif name in SCALES and d.dimension != name:
                problems.append(f"{key}: a built-in dimension's name can only be that dimension")
            if d.dimension not in SCALES and d.dimension not in criteria:
                known = ", ".join((*SCALES, *criteria))
                problems.append(f"{key}.dimension: {d.dimension!r} is not a dimension (one of {known})")
            elif d.dimension in judged:
                first = judged[d.dimension]
                problems.append(f"{key}.dimension: {d.dimension!r} is judged already, for {first!r}")
            judged.setdefault(d.dimension, name)
            if not math.isfinite(d.weight) or d.weight < 0:
                problems.append(f"{key}.weight: must be a finite number, not negative")
        if self.dimensions and not any(d.weight > 0 for d in self.dimensions.values()):
            problems.append("dimensions: at least one weight must be positive")
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
class MultiTurnConfig:
    """Multi-turn cases (a dataset row with ``turns`` of 2 or more): who plays the user."""

    __pydantic_config__ = STRICT
    simulator: str | None = None
    """The target (a name under ``evals.targets`` or a spec, e.g. ``openai:URL#model``) that writes
    each next user turn; default: none (``agentwatch eval run --simulator`` names one; without
    either, a multi-turn case is refused by ``eval run`` and is an error of a scheduled run)."""
    persona: str = DEFAULT_PERSONA
    """Who the simulated user is, for a case that names no ``persona``."""
    stop: str = DEFAULT_STOP
    """A simulator reply holding this text ends the conversation (nothing more is sent)."""

    def validate(self) -> list[str]:
        problems = []
        if not self.persona.strip():
            problems.append("persona: must not be empty")
        if not self.stop.strip():
            problems.append("stop: must not be empty")
        return problems


@dataclass(frozen=True)
class EvalsConfig:
    __pydantic_config__ = STRICT
    targets: dict[str, TargetConfig] = field(default_factory=dict)
    judges: dict[str, JudgeConfig] = field(default_factory=dict)
    criteria: dict[str, CriterionConfig] = field(default_factory=dict)
    """Custom dimensions (name → rubric, scale, weight), judged by the LLM judges, one call each."""
    groundedness_threshold: float = 5.0
    """Points (of 10): a groundedness score under it marks the run ``groundedness_drop``."""
    quality_thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_QUALITY_THRESHOLDS))
    """Points (of 10) per score (``overall_score`` or a dimension): a judged run scoring under any
    of them is marked ``quality_regression`` (unless it is already ``groundedness_drop``).
    ``{}`` turns it off."""
    production: ProductionJudging = field(default_factory=ProductionJudging)
    multi_turn: MultiTurnConfig = field(default_factory=MultiTurnConfig)
    seer: SeerConfig = field(default_factory=SeerConfig)
    """Seer's dimension names and weights, for ``scale: seer`` judges."""

    def validate(self) -> list[str]:
        problems = []
        for name, target in self.targets.items():
            problems += [f"targets.{name}.{p}" for p in target.validate()]
        for name, judge in self.judges.items():
            problems += [f"judges.{name}.{p}" for p in judge.validate()]
            problems += [f"judges.{name}.{p}" for p in self._references(name, judge)]
        for name, criterion in self.criteria.items():
            if not CRITERION_NAME.match(name):
                problems.append(f"criteria.{name}: a name is lowercase letters, digits and _, from a letter")
            elif name in SCALES or name in METRICS or name == OVERALL:
                problems.append(f"criteria.{name}: a built-in dimension or metric has this name")
            problems += [f"criteria.{name}.{p}" for p in criterion.validate()]
        if not 0 <= self.groundedness_threshold <= 10:
            problems.append("groundedness_threshold: must be between 0 and 10")
        for name, limit in self.quality_thresholds.items():
            if name != OVERALL and name not in SCALES and name not in self.criteria:
                known = ", ".join((OVERALL, *SCALES, *self.criteria))
                problems.append(f"quality_thresholds.{name}: not a score (one of {known})")
            elif not 0 <= limit <= 10:
                problems.append(f"quality_thresholds.{name}: must be between 0 and 10")
        problems += [f"production.{p}" for p in self.production.validate()]
        problems += [f"multi_turn.{p}" for p in self.multi_turn.validate()]
        problems += [f"seer.{p}" for p in self.seer.validate(self.criteria)]
        simulator = self.multi_turn.simulator
        if simulator is not None and (problem := self.target_problem(simulator)) is not None:
            problems.append(f"multi_turn.simulator: {problem}")
        if (problem := self.judge_problem(self.production.judge)) is not None:
            problems.append(f"production.judge: {problem}")
        return problems

    def _references(self, name: str, judge: JudgeConfig) -> list[str]:
        """What an ensemble's members and a fact checker name, checked against the config."""
        problems = []
        for member in judge.members:
            if member == name:
                problems.append(f"members: {member!r} is the ensemble itself")
            elif (problem := self.judge_problem(member)) is not None:
                problems.append(f"members: {problem}")
            elif (found := self.judges.get(member)) is not None and found.type == "ensemble":
                problems.append(f"members: {member!r} is an ensemble (ensembles do not nest)")
            elif (found.scale if found is not None else "default") != judge.scale:
                problems.append(f"members: {member!r} does not score on the ensemble's scale "
                                f"({judge.scale}): give it scale: {judge.scale}")  # fmt: skip
        checker = judge.fact_checker
        if checker is not None:
            found = self.judges.get(checker)
            if checker == name:
                problems.append(f"fact_checker: {checker!r} is this judge itself")
            elif found is not None and found.type not in ("openai", "glean"):
                problems.append(f"fact_checker: {checker!r} is a {found.type} judge, not openai or glean")
            elif found is None and checker not in self.targets:
                judges = ", ".join(sorted(n for n, j in self.judges.items() if j.type in ("openai", "glean")))
                targets = ", ".join(sorted(self.targets))
                problems.append(
                    f"fact_checker: {checker!r} is neither a judge under evals.judges ({judges or 'none'}) "
                    f"nor a target under evals.targets ({targets or 'none'})"
                )
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
