"""The ``classify`` processor: each span's ``failure_type``, from rules that are data.

    processors:
      classify:
        loop_threshold: 3          # the same tool called with the same arguments this often
                                   # in one trace marks those calls loop_detected
        disable: [refusal]         # rule names (built-in or yours), or loop_detected
        rules_file: ./my_rules.yaml   # more rules, in the format of the built-in file
        rules:                     # run before the built-ins; a built-in's name replaces it
          - name: slow_search
            failure_type: tool_timeout     # a built-in type (taxonomy.py) or a new one of yours
            operations: [tool]
            when:
              all:
                - {column: tool_name, equals: search}
                - {column: duration_ms, gte: 20000}

It consumes a ``pyarrow.Table`` with exactly ``model.SPAN_SCHEMA`` (normalize's output) and passes
on the same table with ``failure_type`` set, null where there is no failure. Per span, in order:
a failure type already set upstream is kept; else the first matching rule decides (config
``rules``, then ``rules_file``, then the built-ins in ``processors/classify/failure_rules.yaml``; the rule
format is described in ``processors.classify.rules``); else, for tool/MCP spans, loop detection.

Loop detection sees one batch: a loop whose calls arrive in different batches is not counted.
A call's arguments are ``gen_ai.tool.call.arguments``, else its input text; a call with neither
is never part of a loop (without arguments, repeated calls cannot be told from a loop).
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from core.component import BaseComponent, Consumer
from core.model import SPAN_SCHEMA, TOOL_OPERATIONS
from processors.classify.config import LOOP_RULE as LOOP_RULE
from processors.classify.config import Config as Config
from processors.classify.config import builtin_rules as builtin_rules
from processors.classify.config import failure_types as failure_types
from processors.classify.config import load_rules as load_rules
from processors.classify.evaluate import Batch, attribute_values, classify, compile_rule
from processors.classify.rules import Condition, Leaf

TYPE = "classify"

LOOP_ARGUMENTS = "gen_ai.tool.call.arguments"
# Columns loop detection and the processor itself read, whatever the rules say.
_ALWAYS = ("tenant", "trace_id", "operation", "tool_name", "input_text", "attributes", "failure_type")


class ClassifyProcessor(BaseComponent):
    def __init__(self, config: Config, next_consumer: Consumer) -> None:
        rules, problems = load_rules(config)
        if problems:
            raise ValueError("invalid classify config: " + "; ".join(problems))
        self.rules = [compile_rule(rule) for rule in rules]
        self.next_consumer = next_consumer
        self.loop_threshold = None if LOOP_RULE in config.disable else config.loop_threshold
        read = {name for rule in rules for name in _columns(rule.when)}
        self._columns = [name for name in SPAN_SCHEMA.names if name in read or name in _ALWAYS]
        self._index = SPAN_SCHEMA.get_field_index("failure_type")

    def consume(self, batch: pa.Table) -> None:
        self.next_consumer.consume(self.classify(batch))

    def classify(self, table: pa.Table) -> pa.Table:
        """``table`` with its ``failure_type`` column set; every other column untouched."""
        if table.num_rows == 0:
            return table
        frame = pl.DataFrame(pl.from_arrow(table.select(self._columns)))
        batch = Batch(frame)
        types, decided = classify(batch, self.rules, frame.get_column("failure_type"))
        if self.loop_threshold is not None:
            loops = repeated_tool_calls(frame, self.loop_threshold) & ~decided
            types = pl.select(pl.when(loops).then(pl.lit(LOOP_RULE)).otherwise(types)).to_series()
        column = types.to_arrow().cast(pa.string())
        return table.set_column(self._index, SPAN_SCHEMA.field(self._index), column)


def repeated_tool_calls(frame: pl.DataFrame, threshold: int) -> pl.Series:
    """Tool/MCP spans whose (tenant, trace, tool, arguments) occurs ``threshold`` times or more."""
    tools = frame.get_column("operation").is_in(TOOL_OPERATIONS)
    calls = tools & frame.get_column("tool_name").is_not_null()
    found = pl.repeat(False, frame.height, dtype=pl.Boolean, eager=True)
    rows = calls.arg_true()
    if rows.len() < threshold:
        return found
    subset = frame.select("tenant", "trace_id", "tool_name", "input_text", "attributes")[rows]
    arguments = attribute_values(subset.get_column("attributes"), LOOP_ARGUMENTS)
    keys = ("tenant", "trace_id", "tool_name", "arguments")
    repeated = subset.with_columns(arguments=pl.coalesce(arguments, pl.col("input_text"))).select(
        pl.col("arguments").is_not_null() & (pl.len().over(keys) >= threshold)
    )
    return found.scatter(rows.filter(repeated.to_series()), True)


def _columns(cond: Condition) -> set[str]:
    if isinstance(cond, Leaf):
        return {s.name if s.kind == "column" else "attributes" for s in cond.sources}
    return set().union(*(_columns(child) for child in cond.children))


def create(config: Config, next_consumer: Consumer) -> ClassifyProcessor:
    return ClassifyProcessor(config, next_consumer)
