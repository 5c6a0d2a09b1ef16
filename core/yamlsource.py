"""YAML with line numbers and ``${env:VAR}`` substitution, so config errors can name file:line:key."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from core.errors import ConfigError

Path = tuple[str, ...]

# ${env:NAME} or ${env:NAME:-default}; "$$" escapes a literal "$" (as in the Collector).
_ENV_REF = re.compile(r"\$\$|\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class Source:
    """A parsed YAML document: plain data plus the line each key path was written on."""

    name: str
    data: dict[str, Any]
    lines: dict[Path, int] = field(default_factory=dict)

    def where(self, path: Path) -> str:
        """``file:line`` of the longest prefix of ``path`` that was written in the file."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return f"{self.name}:{line}"
        return self.name


def _substitute(text: str, path: Path, env: Mapping[str, str], problems: list[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        problems.append(f"{'.'.join(path)}: environment variable {name} is not set")
        return ""

    return _ENV_REF.sub(replace, text)


def _convert(node: yaml.Node, path: Path, source: Source, env: Mapping[str, str], problems: list[str]) -> Any:
    source.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(_construct(key_node))
            child = (*path, key)
            if key in out:
                problems.append(
                    f"{source.name}:{key_node.start_mark.line + 1}: {'.'.join(child)}: duplicate key"
                )
            source.lines[child] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, child, source, env, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, str(i)), source, env, problems) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    if node.tag == "tag:yaml.org,2002:str" and "$" in str(node.value):
        before = len(problems)
        text = _substitute(str(node.value), path, env, problems)
        for i in range(before, len(problems)):
            problems[i] = f"{source.name}:{node.start_mark.line + 1}: {problems[i]}"
        return text
    return _construct(node)


def _construct(node: yaml.Node) -> Any:
    """A scalar's value with YAML's safe tag resolution (null, bool, int, float, str)."""
    return yaml.SafeLoader("").construct_object(node, deep=True)


def load_yaml(text: str, name: str, env: Mapping[str, str] | None = None) -> Source:
    """Parse ``text``; raise ConfigError naming the line for bad YAML or unset variables."""
    env = os.environ if env is None else env
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    source = Source(name=name, data={})
    if root is None:
        return source
    problems: list[str] = []
    data = _convert(root, (), source, env, problems)
    if problems:
        raise ConfigError(problems)
    if not isinstance(data, dict):
        raise ConfigError(f"{name}:1: the configuration must be a mapping of sections")
    source.data = data
    return source
