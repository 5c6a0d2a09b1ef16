"""The classify processor's settings (``Config``) and the rules they select (``load_rules``):
light to import, so a process that only reads or checks a config never loads polars (it is
imported only to check the pattern of a configured ``matches`` rule)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from core.configmodel import STRICT
from processors.classify.rules import CHECK_REGEX, Rule, parse_rule_document, parse_rules
from processors.classify.taxonomy import FAILURE_TYPES

LOOP_RULE = "loop_detected"


@dataclass(frozen=True)
class Config:
    """Settings of the classify processor; the defaults run every built-in rule."""

    __pydantic_config__ = STRICT

    rules: list[dict[str, Any]] = field(default_factory=list)
    """Extra rules (format: processors.classify.rules), evaluated before the built-ins. A rule
    named like a built-in replaces it. Default: none."""

    rules_file: str | None = None
    """A YAML file with more rules (``rules: [...]``, the built-in file's format), evaluated
    after ``rules`` and before the built-ins; relative to the working directory. Default: none."""

    disable: list[str] = field(default_factory=list)
    """Names of rules not to run (built-in or configured); ``loop_detected`` turns off loop
    detection. Default: none."""

    loop_threshold: int = 3
    """Identical tool calls (same tool, same arguments) in one trace that make a loop."""

    def validate(self) -> list[str]:
        return load_rules(self)[1]


@functools.cache
def builtin_rules() -> tuple[Rule, ...]:
    """The shipped rules; a broken shipped file is a bug, so it raises."""
    text = resources.files("processors.classify").joinpath("failure_rules.yaml").read_text(encoding="utf-8")
    unchecked = CHECK_REGEX.set(False)  # their patterns are checked by the tests, not at every start
    try:
        rules, problems = parse_rule_document(yaml.safe_load(text), "failure_rules.yaml")
    finally:
        CHECK_REGEX.reset(unchecked)
    if problems:
        raise RuntimeError("built-in failure rules are invalid: " + "; ".join(problems))
    return tuple(rules)


def load_rules(config: Config) -> tuple[list[Rule], list[str]]:
    """The rules to run, in order, and every problem with the config's part in them."""
    user, problems = parse_rules(config.rules, "rules")
    if config.rules_file is not None:
        file_rules, found = _read_rules_file(config.rules_file)
        user += file_rules
        problems += found
    problems += _name_problems(user)
    builtin = builtin_rules()
    known = {LOOP_RULE} | {r.name for r in user} | {r.name for r in builtin}
    for i, name in enumerate(config.disable):
        if name not in known:
            problems.append(f"disable.{i}: no rule named {name!r}")
    if config.loop_threshold < 2:
        problems.append("loop_threshold: must be at least 2 (turn loops off with disable: [loop_detected])")
    mine = {r.name for r in user}
    ordered = user + [r for r in builtin if r.name not in mine]
    return [r for r in ordered if r.name not in config.disable], problems


def failure_types(config: Config) -> set[str]:
    """Every failure type spans can get with ``config``: the built-in taxonomy (its judges' types
    included) and the types of the config's own rules."""
    rules, _ = load_rules(config)
    return set(FAILURE_TYPES) | {r.failure_type for r in rules if r.failure_type is not None}


def _read_rules_file(path: str) -> tuple[list[Rule], list[str]]:
    """The file's rules; problems read ``rules_file: <path>: rules.2.when: ...``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return [], [f"rules_file: cannot read {path}: {exc.strerror}"]
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [], [f"rules_file: {path}: not valid YAML: {' '.join(str(exc).split())}"]
    return parse_rule_document(doc, f"rules_file: {path}")


def _name_problems(rules: list[Rule]) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for rule in rules:
        if rule.name == LOOP_RULE:
            problems.append(f"{rule.key}.name: {LOOP_RULE!r} is reserved for loop detection")
        elif rule.name in seen:
            problems.append(f"{rule.key}.name: duplicate rule name {rule.name!r}")
        seen.add(rule.name)
    return problems
