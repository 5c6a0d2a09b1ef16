"""Failure rules as data: the rule format of the classify processor, parsed and checked.

A rule file is a mapping with ``rules:`` (a list, evaluated in order; the first rule that
matches a span decides its failure type) and optionally ``definitions:``, which is never read:
it is the place for YAML anchors that several rules share. One rule::

    - name: rate_limit                  # unique; `disable: [rate_limit]` turns it off
      failure_type: rate_limit          # a built-in type (taxonomy.py) or a new one; null = "no
                                        # failure" (stops later rules)
      operations: [chat, agent_run]     # optional: only spans of these operations
      when: <condition>

A condition is ``{all: [<condition>, ...]}``, ``{any: [<condition>, ...]}``, ``{not: <condition>}``
or a leaf: ``column: <name>`` (a SPAN_SCHEMA column) or ``attribute: <name>`` (a top-level key of
the span's ``attributes`` JSON, e.g. ``http.response.status_code``), either one name or a list of
names (the leaf holds when any of them passes), plus one or more tests, all of which must hold:

- ``equals: <scalar>`` / ``in: [<scalar>, ...]``: numbers compare numerically (so "429" equals
  429), booleans case-insensitively, strings exactly; an array attribute holds when an element does
- ``matches: <regex>``: case-insensitive search, Rust regex syntax (no look-around)
- ``is_empty: true``: present and only whitespace (``false``: present with some text)
- ``present: true|false``: the value is (not) null
- ``is_json: true|false``: the text parses as one JSON value
- ``gte: <number>`` / ``lte: <number>``: numeric bounds

Problems are reported as ``"<key>: <message>"`` with the key relative to the rule list's owner,
e.g. ``rules.2.when.any.0.matches: invalid regex 'a(': unclosed group``.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa

from core.model import OPERATIONS, SPAN_SCHEMA
from processors.classify.taxonomy import name_problem

Scalar = str | int | float | bool
TestOp = Literal["equals", "in", "matches", "is_empty", "present", "is_json", "gte", "lte"]
TEST_OPS: tuple[TestOp, ...] = ("equals", "in", "matches", "is_empty", "present", "is_json", "gte", "lte")
_BOOL_TESTS = frozenset({"is_empty", "present", "is_json"})
_TEXT_TESTS = frozenset({"is_empty", "is_json"})
_RULE_KEYS = ("name", "failure_type", "operations", "when")

# Each column's type, so a test that cannot apply to a column is reported up front.
COLUMN_TYPES: dict[str, pa.DataType] = {f.name: f.type for f in SPAN_SCHEMA}

CHECK_REGEX: ContextVar[bool] = ContextVar("CHECK_REGEX", default=True)
"""False while the shipped rules are parsed: their patterns are checked by the tests, so reading
a config does not load polars (the engine that checks a pattern) in a process that never
classifies."""


@dataclass(frozen=True)
class Source:
    kind: Literal["column", "attribute"]
    name: str


@dataclass(frozen=True)
class Test:
    op: TestOp
    value: Any
    """A Scalar; a tuple of Scalars for ``in``; a bool for is_empty/present/is_json."""


@dataclass(frozen=True)
class Leaf:
    sources: tuple[Source, ...]
    tests: tuple[Test, ...]


@dataclass(frozen=True)
class Node:
    op: Literal["all", "any", "not"]
    children: tuple[Condition, ...]


Condition = Leaf | Node


@dataclass(frozen=True)
class Rule:
    name: str
    failure_type: str | None
    operations: tuple[str, ...] | None
    when: Condition
    key: str
    """Where the rule was written (``rules.3``), for messages about it."""


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a regex polars accepts (Rust syntax), or None when it is."""
    import polars as pl  # only when a configured rule has a pattern: polars takes 0.2 s to import

    try:
        pl.Series([""], dtype=pl.String).str.contains(f"(?i){pattern}")
    except pl.exceptions.ComputeError as exc:
        lines = [line.strip() for line in str(exc).splitlines()]
        reason = next((line.removeprefix("error: ") for line in lines if line.startswith("error:")), lines[0])
        return f"invalid regex {pattern!r}: {reason}"
    return None


def parse_rules(data: Any, key: str) -> tuple[list[Rule], list[str]]:
    """Rules from a YAML list at ``key``; every problem found, each as ``"<key>...: message"``."""
    if not isinstance(data, list):
        return [], [f"{key}: must be a list of rules"]
    rules: list[Rule] = []
    problems: list[str] = []
    for i, item in enumerate(data):
        rule = _rule(item, f"{key}.{i}", problems)
        if rule is not None:
            rules.append(rule)
    return rules, problems


def parse_rule_document(doc: Any, where: str) -> tuple[list[Rule], list[str]]:
    """A rule file's parsed YAML: ``{rules: [...], definitions: <anything>}``."""
    if not isinstance(doc, dict):
        return [], [f"{where}: must be a mapping with 'rules'"]
    problems = [f"{where}: {k}: unknown key" for k in doc if k not in ("rules", "definitions")]
    rules, found = parse_rules(doc.get("rules"), f"{where}: rules")
    return rules, problems + found


def _rule(item: Any, key: str, problems: list[str]) -> Rule | None:
    if not isinstance(item, dict):
        problems.append(f"{key}: must be a mapping with name, failure_type and when")
        return None
    before = len(problems)
    problems.extend(f"{key}.{k}: unknown key" for k in item if k not in _RULE_KEYS)
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{key}.name: must be a non-empty string")
    if "failure_type" not in item:
        problems.append(f"{key}.failure_type: required (a failure type, built-in or new, or null)")
    failure_type = item.get("failure_type")
    if failure_type is not None and (reason := name_problem(failure_type)) is not None:
        problems.append(f"{key}.failure_type: {reason}")
    operations = _operations(item.get("operations"), f"{key}.operations", problems)
    if "when" not in item:
        problems.append(f"{key}.when: required")
        return None
    when = _condition(item["when"], f"{key}.when", problems)
    if when is None or len(problems) > before:
        return None
    return Rule(str(name), failure_type, operations, when, key)


def _operations(value: Any, key: str, problems: list[str]) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        problems.append(f"{key}: must be a non-empty list of operations")
        return None
    for i, op in enumerate(value):
        if op not in OPERATIONS:
            problems.append(f"{key}.{i}: {op!r} is not an operation; one of {', '.join(OPERATIONS)}")
    return tuple(str(op) for op in value)


def _condition(value: Any, key: str, problems: list[str]) -> Condition | None:
    if not isinstance(value, dict) or not value:
        problems.append(f"{key}: must be a mapping: all, any, not, or a leaf with column/attribute")
        return None
    groups = [k for k in ("all", "any", "not") if k in value]
    if not groups:
        return _leaf(value, key, problems)
    op = groups[0]
    extra = [k for k in value if k != op]
    if extra:
        problems.append(f"{key}: '{op}' must be the only key (found also: {', '.join(map(str, extra))})")
        return None
    if op == "not":
        child = _condition(value["not"], f"{key}.not", problems)
        return None if child is None else Node("not", (child,))
    return _group("all" if op == "all" else "any", value[op], f"{key}.{op}", problems)


def _group(op: Literal["all", "any"], value: Any, key: str, problems: list[str]) -> Node | None:
    if not isinstance(value, list) or not value:
        problems.append(f"{key}: must be a non-empty list of conditions")
        return None
    children = [_condition(child, f"{key}.{i}", problems) for i, child in enumerate(value)]
    if any(child is None for child in children):
        return None
    return Node(op, tuple(c for c in children if c is not None))


def _leaf(value: dict[str, Any], key: str, problems: list[str]) -> Leaf | None:
    before = len(problems)
    kinds = [k for k in ("column", "attribute") if k in value]
    if len(kinds) != 1:
        problems.append(f"{key}: a leaf needs exactly one of 'column' or 'attribute'")
        return None
    kind: Literal["column", "attribute"] = "column" if kinds[0] == "column" else "attribute"
    sources = _sources(kind, value[kind], f"{key}.{kind}", problems)
    tests: list[Test] = []
    for name, arg in value.items():
        if name == kind:
            continue
        if name not in TEST_OPS:
            problems.append(f"{key}.{name}: unknown key (tests: {', '.join(TEST_OPS)})")
            continue
        test = _test(name, arg, f"{key}.{name}", problems)
        if test is not None:
            tests.append(test)
            _check_applies(test, sources, f"{key}.{name}", problems)
    if not tests and len(problems) == before:
        problems.append(f"{key}: a leaf needs at least one test ({', '.join(TEST_OPS)})")
    if len(problems) > before:
        return None
    return Leaf(tuple(sources), tuple(tests))


def _sources(kind: Literal["column", "attribute"], value: Any, key: str, problems: list[str]) -> list[Source]:
    names = value if isinstance(value, list) else [value]
    if not names or not all(isinstance(n, str) and n for n in names):
        problems.append(f"{key}: must be a name or a non-empty list of names")
        return []
    if kind == "column":
        for name in names:
            if name not in COLUMN_TYPES:
                problems.append(f"{key}: unknown column {name!r}")
    return [Source(kind, n) for n in names]


def _test(op: TestOp, arg: Any, key: str, problems: list[str]) -> Test | None:
    if op in _BOOL_TESTS:
        if not isinstance(arg, bool):
            problems.append(f"{key}: must be true or false")
            return None
        return Test(op, arg)
    if op in ("gte", "lte"):
        if isinstance(arg, bool) or not isinstance(arg, int | float):
            problems.append(f"{key}: must be a number")
            return None
        return Test(op, float(arg))
    if op == "matches":
        if not isinstance(arg, str) or not arg:
            problems.append(f"{key}: must be a non-empty regex string")
            return None
        reason = regex_problem(arg) if CHECK_REGEX.get() else None
        if reason is not None:
            problems.append(f"{key}: {reason}")
            return None
        return Test(op, arg)
    if op == "in":
        if not isinstance(arg, list) or not arg or not all(_is_scalar(v) for v in arg):
            problems.append(f"{key}: must be a non-empty list of strings, numbers or booleans")
            return None
        return Test(op, tuple(arg))
    if not _is_scalar(arg):
        problems.append(f"{key}: must be a string, number or boolean")
        return None
    return Test(op, arg)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _check_applies(test: Test, sources: list[Source], key: str, problems: list[str]) -> None:
    """Tests that cannot apply to a column's type are config errors, not silent mismatches."""
    for source in sources:
        if source.kind != "column" or source.name not in COLUMN_TYPES:
            continue
        dtype = COLUMN_TYPES[source.name]
        if test.op in _TEXT_TESTS and not (pa.types.is_string(dtype) or pa.types.is_large_string(dtype)):
            problems.append(f"{key}: column {source.name!r} is not text")
        elif test.op in ("gte", "lte") and (pa.types.is_boolean(dtype) or pa.types.is_temporal(dtype)):
            problems.append(f"{key}: column {source.name!r} is not numeric")
