"""Failure rules evaluated over a whole batch at once, with polars.

Each rule is compiled once into *stages*: its top-level conjuncts (the children of a top-level
``all``, else the whole condition), cheapest first, each one polars expression. A batch is
classified rule by rule; Python loops over rules and stages, never over spans:

- a rule only looks at rows no earlier rule decided (and of its operations), and each stage
  only at the rows the stages before it left. When those are fewer than ``COMPACT_BELOW`` of the
  batch, they are gathered into a batch of their own first: polars' string kernels scan every
  value of a column, nulls included, so masking rows out would not spare the regexes, the JSON
  parsing or the attribute extraction. Gathering copies 16-byte string views, not the text.
- attribute values are found with one regex search per attribute name over the ``attributes``
  JSON (``"name":<value>``), not a JSON parse per span, once per batch and attribute: the
  normaliser writes that JSON with orjson, so it is compact and a key cannot appear unescaped
  inside a string value. Only strings with escapes, and values nested more than two levels, go
  through a JSON parser. Keys of nested maps (an attribute whose value is an object) can match
  too: rule attribute names are meant to be top-level names.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import polars as pl

from core.model import SPAN_SCHEMA
from processors.classify.rules import Condition, Leaf, Node, Rule, Source, Test

# Each span column's polars type (the rules check theirs against the Arrow schema).
COLUMN_TYPES: dict[str, pl.DataType] = dict(pl.DataFrame(SPAN_SCHEMA.empty_table()).schema)

# A stage whose rows are fewer than this share of its batch runs on those rows alone, unless
# the batch is so small that the calls to gather them cost more than scanning everything.
COMPACT_BELOW = 0.75
MIN_COMPACT_ROWS = 4096

# Columns long enough that scanning them costs: their tests run after the cheaper ones.
LONG_TEXT = frozenset({"attributes", "resource_attributes", "events", "input_text", "output_text"})

_STRING = r'"(?:[^"\\]|\\.)*"'
_FLAT = rf'(?:[^\[\]{{}}"]|{_STRING})*'
_INNER = rf"(?:{_FLAT}|\{{{_FLAT}\}}|\[{_FLAT}\])*"
# A JSON string; an array or object up to two levels deep; a scalar; else the opening bracket
# of a deeper value (decoded by a JSON parser from the whole attributes document).
_VALUE = rf'(?:{_STRING}|\[{_INNER}\]|\{{{_INNER}\}}|[^,\]}}\[{{"]+|[\[{{])'
_ATTRIBUTE_PREFIX = "@"  # frame column names of extracted attributes; no span column has it


@dataclass(frozen=True)
class Stage:
    """One top-level conjunct of a rule, compiled."""

    expr: pl.Expr
    columns: tuple[str, ...]
    attributes: tuple[str, ...]


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    stages: tuple[Stage, ...]


def compile_rule(rule: Rule) -> CompiledRule:
    when = rule.when
    parts = when.children if isinstance(when, Node) and when.op == "all" else (when,)
    stages = [_stage(part) for part in sorted(parts, key=cost)]
    return CompiledRule(rule, tuple(stages))


def _stage(cond: Condition) -> Stage:
    sources = _sources(cond)
    columns = {s.name for s in sources if s.kind == "column"}
    attributes = sorted({s.name for s in sources if s.kind == "attribute"})
    if attributes:
        columns.add("attributes")
    return Stage(_expr(cond).alias("holds"), tuple(sorted(columns)), tuple(attributes))


def _sources(cond: Condition) -> list[Source]:
    if isinstance(cond, Leaf):
        return list(cond.sources)
    return [s for child in cond.children for s in _sources(child)]


def cost(cond: Condition) -> int:
    """Rough cost class, so stages that scan text run on as few rows as possible."""
    if isinstance(cond, Node):
        return max(cost(child) for child in cond.children)
    if any(t.op == "is_json" for t in cond.tests):
        return 3
    if all(t.op == "present" for t in cond.tests):
        return 1  # a null check costs the same on any column
    return max(_source_cost(s) for s in cond.sources)


def _source_cost(source: Source) -> int:
    if source.kind == "attribute" or source.name in LONG_TEXT:
        return 2
    return 0 if source.name in ("operation", "status", "kind") else 1


class Batch:
    """Rows rules read: the whole frame, or a compacted subset of a parent batch's rows.

    A subset gathers its parent's columns on first use, and attribute values are extracted once
    per batch, so every stage over the same rows shares them.
    """

    def __init__(
        self, frame: pl.DataFrame | None = None, parent: Batch | None = None, rows: pl.Series | None = None
    ):
        """The whole ``frame``, or the ``rows`` (indices) of ``parent``."""
        self._columns = {} if frame is None else {name: frame.get_column(name) for name in frame.columns}
        self._parent = parent
        self._rows = rows
        self._attributes: dict[str, pl.Series] = {}
        self.height = frame.height if frame is not None else 0 if rows is None else len(rows)

    def column(self, name: str) -> pl.Series:
        found = self._columns.get(name)
        if found is None:
            if self._parent is None or self._rows is None:
                raise KeyError(f"column {name!r} was not loaded for classification")
            found = self._parent.column(name).gather(self._rows)
            self._columns[name] = found
        return found

    def attribute(self, name: str) -> pl.Series:
        found = self._attributes.get(name)
        if found is None:
            found = attribute_values(self.column("attributes"), name)
            self._attributes[name] = found
        return found

    def holds(self, stage: Stage) -> pl.Series:
        """Where the stage's condition holds on every row of this batch."""
        data = {name: self.column(name) for name in stage.columns}
        data.update({_ATTRIBUTE_PREFIX + name: self.attribute(name) for name in stage.attributes})
        return pl.DataFrame(data).select(stage.expr).to_series()

    def where(self, stage: Stage, guard: pl.Series) -> pl.Series:
        """Where the stage holds within ``guard`` (False elsewhere)."""
        count = guard.sum()
        if count == 0:
            return guard
        if count >= self.height * COMPACT_BELOW or self.height < MIN_COMPACT_ROWS:
            return guard & self.holds(stage)
        rows = guard.arg_true()
        holds = Batch(parent=self, rows=rows).holds(stage)
        return self.none().scatter(rows.filter(holds), True)

    def none(self) -> pl.Series:
        return pl.repeat(False, self.height, dtype=pl.Boolean, eager=True)


def classify(batch: Batch, rules: list[CompiledRule], types: pl.Series) -> tuple[pl.Series, pl.Series]:
    """(failure types, decided rows): the first matching rule decides each row ``types`` left null.

    A rule whose failure type is null decides its rows as "no failure": they stay null but are
    decided, so later rules and loop detection leave them alone.
    """
    operation = batch.column("operation")
    taken = types.is_not_null()
    found: list[pl.Expr] = []
    for compiled in rules:
        rule = compiled.rule
        hit = ~taken
        if rule.operations is not None:
            hit = hit & operation.is_in(rule.operations)
        for stage in compiled.stages:
            hit = batch.where(stage, hit)
        if rule.failure_type is not None:
            found.append(pl.when(hit).then(pl.lit(rule.failure_type)))
        taken = taken | hit
    # Rows are decided once, so the rules' hits never overlap and one pass sets every type.
    return pl.select(pl.coalesce(types, *found).alias("failure_type")).to_series(), taken


# --- conditions → polars expressions ------------------------------------------------------


def _expr(cond: Condition) -> pl.Expr:
    if isinstance(cond, Leaf):
        return _leaf(cond)
    children = [_expr(child) for child in cond.children]
    if cond.op == "not":
        return ~children[0]
    return pl.all_horizontal(children) if cond.op == "all" else pl.any_horizontal(children)


def _leaf(leaf: Leaf) -> pl.Expr:
    """Some source passes every test; a missing value passes none (never null, so ``not`` works)."""
    per_source = [pl.all_horizontal([_test(source, test) for test in leaf.tests]) for source in leaf.sources]
    return pl.any_horizontal(per_source).fill_null(False)


def _test(source: Source, test: Test) -> pl.Expr:
    dtype: pl.DataType
    if source.kind == "attribute":
        values, dtype = pl.col(_ATTRIBUTE_PREFIX + source.name), pl.String()
    else:
        values, dtype = pl.col(source.name), COLUMN_TYPES[source.name]
    op, arg = test.op, test.value
    if op == "equals":
        return _equals(values, dtype, arg, source.kind == "attribute")
    if op == "in":
        return pl.any_horizontal([_equals(values, dtype, v, source.kind == "attribute") for v in arg])
    if op == "matches":
        return _text(values, dtype).str.contains(f"(?i){arg}")
    if op == "present":
        return values.is_not_null() if arg else values.is_null()
    if op == "is_empty":
        blank = values.str.strip_chars() == ""
        return blank if arg else ~blank
    if op == "is_json":
        return _is_json(values) if arg else ~_is_json(values)
    number, bound = values.cast(pl.Float64, strict=False), float(arg)
    return number >= bound if op == "gte" else number <= bound


def _equals(values: pl.Expr, dtype: pl.DataType, arg: str | int | float | bool, array_aware: bool) -> pl.Expr:
    if isinstance(arg, bool) and dtype == pl.Boolean:
        hit = values == arg
    elif isinstance(arg, bool):  # attributes and text columns spell booleans "true", "True", ...
        hit = _text(values, dtype).str.to_lowercase() == str(arg).lower()
    elif isinstance(arg, int | float):
        hit = values.cast(pl.Float64, strict=False) == float(arg)
    else:
        hit = _text(values, dtype) == arg
    if array_aware:  # an attribute array holds when one of its elements does
        hit = hit | values.str.contains(_element_pattern(arg))
    return hit


def _element_pattern(arg: str | int | float | bool) -> str:
    if isinstance(arg, bool):
        element = "true" if arg else "false"
    elif isinstance(arg, int | float):
        number = float(arg)
        text = str(int(number)) if number.is_integer() else repr(number)
        element = f'"?{pl.escape_regex(text)}(?:\\.0+)?"?'
    else:
        element = pl.escape_regex(orjson.dumps(arg).decode())
    return rf"^\[(?:.*,)?{element}[,\]]"


def _text(values: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    return values if dtype == pl.String else values.cast(pl.String)


def _is_json(values: pl.Expr) -> pl.Expr:
    """Whether the text parses as one JSON value; null (nothing to judge) stays null."""
    valid = values.str.json_path_match("$").is_not_null() | (values.str.strip_chars() == "null")
    return pl.when(values.is_not_null()).then(valid)


# --- attribute extraction -----------------------------------------------------------------


def attribute_values(attributes: pl.Series, name: str) -> pl.Series:
    """The value of attribute ``name`` in each row's attributes JSON, as text (null when absent).

    Strings are unquoted, numbers and booleans as written (429, true), arrays and objects as
    compact JSON text. JSON null reads as absent.
    """
    key = orjson.dumps(name).decode()
    # The whole match, not a capture group: finding only the match bounds is much faster.
    matched = attributes.str.extract(f"{pl.escape_regex(key)}:{_VALUE}", 0)
    if matched.null_count() == len(matched):
        return matched
    token = pl.col("token")
    is_string = token.str.starts_with('"')
    escaped = is_string & token.str.contains("\\", literal=True)
    nested = token.is_in(["[", "{"])
    # The JSON parser skips null rows, so masking hands it only the rows that need it.
    decoded = (
        pl.when(escaped)
        .then(pl.when(escaped).then(token).str.json_path_match("$"))
        .when(is_string)
        .then(token.str.strip_prefix('"').str.strip_suffix('"'))
        .when(nested)
        .then(pl.when(nested).then(pl.col("document")).str.json_path_match(f"$[{key}]"))
        .when(token == "null")
        .then(None)
        .otherwise(token)
    )
    frame = pl.DataFrame({"token": matched.str.slice(len(key) + 1), "document": attributes})
    return frame.select(decoded.alias(attributes.name)).to_series()
