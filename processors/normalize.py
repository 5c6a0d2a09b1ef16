"""The ``normalize`` processor: undecoded OTLP requests → the canonical span table.

    processors:
      normalize:
        max_text_length: 8192          # input_text/output_text cut to this many characters
        capture_text: true             # false: input_text/output_text are always null
        attributes:                    # extra names per canonical column, tried before built-ins
          user_id: [glean.user.email]
          agent_owner: [glean.agent.creator]
        operations:                    # span name → operation, beats every convention
          "my-rag-step": retrieval
        provider_aliases:              # merged over the built-in alias table
          my-gateway: openai

It is the first processor of every pipeline: it consumes an ``OtlpBatch`` and hands the next
consumer one ``pyarrow.Table`` with exactly ``model.SPAN_SCHEMA``. A batch without spans is not
passed on at all. Which attribute names are read is data, in ``processors.conventions``.

Each span's attributes are walked once: decoded into a dict and, in the same pass, looked up in
an inverted index (attribute name → canonical slots with priorities), so the work per span
grows with the number of attributes it carries, not with the number of names the conventions
know. Rows are built as Python lists and converted to Arrow column by column, once per batch.

Rules that are not a plain "first attribute present wins":

- tenant: the ingest token's tenant, else the mapped attribute, else ``default``; sanitised
  to ``[A-Za-z0-9._-]``, at most 64 characters, never starting with "." (a directory name).
- tokens and cost only on leaf LLM spans: operation chat/embedding with no chat/embedding child
  in the same table; other spans' aggregated usage stays in ``attributes`` only. A child that
  arrives in a later batch cannot be seen, so such a parent keeps its numbers.
- error_message: configured names, else the first exception event's message, else
  ``rpc.jsonrpc.error_message``/``error.message``, else the status message of an error span.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from agentwatch.component import BaseComponent, Consumer
from agentwatch.configmodel import STRICT
from agentwatch.model import DEFAULT_TENANT, OPERATIONS, SPAN_COLUMNS, SPAN_SCHEMA, OtlpBatch
from processors import conventions as conv
from processors import derive
from processors.message_text import text_of
from processors.otlp_decode import events_list
from processors.resolve import (
    ProviderAliases,
    as_bool,
    as_str,
    build_index,
    decode_and_resolve,
    sanitize_tenant,
)

TYPE = "normalize"

_MAPPABLE = ", ".join(conv.MAPPABLE_COLUMNS)
_OPERATIONS = ", ".join(OPERATIONS)


@dataclass(frozen=True)
class Config:
    """Settings of the normalize processor; every field has a working default."""

    __pydantic_config__ = STRICT

    attributes: dict[str, list[str]] = field(default_factory=dict)
    """Canonical column → extra attribute names, tried in order BEFORE the built-in names.
    Span attributes are searched first, then resource attributes. Default: none."""

    operations: dict[str, str] = field(default_factory=dict)
    """Span name → operation (one of model.OPERATIONS); wins over every convention. Default: none."""

    provider_aliases: dict[str, str] = field(default_factory=dict)
    """Provider spelling → canonical provider, merged over conventions.PROVIDER_ALIASES
    (case-insensitive). Default: none."""

    max_text_length: int = 8192
    """input_text/output_text are truncated to this many characters."""

    capture_text: bool = True
    """False redacts: input_text/output_text are always null (the attributes keep the originals)."""

    def validate(self) -> list[str]:
        problems: list[str] = []
        for column, names in self.attributes.items():
            if column not in conv.MAPPABLE_COLUMNS:
                problems.append(f"attributes.{column}: not a mappable column; one of {_MAPPABLE}")
            problems.extend(
                f"attributes.{column}.{i}: attribute name must not be empty"
                for i, name in enumerate(names)
                if not name.strip()
            )
        for span_name, operation in self.operations.items():
            if not span_name:
                problems.append("operations: a span name must not be empty")
            if operation not in OPERATIONS:
                problems.append(
                    f"operations.{span_name}: {operation!r} is not an operation; one of {_OPERATIONS}"
                )
        for alias, provider in self.provider_aliases.items():
            if not alias.strip():
                problems.append("provider_aliases: an alias must not be empty")
            if not provider.strip():
                problems.append(f"provider_aliases.{alias}: the canonical provider must not be empty")
        if self.max_text_length < 1:
            problems.append("max_text_length: must be at least 1 (use capture_text: false to drop text)")
        return problems


# --- the processor -----------------------------------------------------------------------

_KINDS: tuple[str | None, ...] = (None, "internal", "server", "client", "producer", "consumer")
_STATUSES = ("unset", "ok", "error")
_COL = {name: i for i, name in enumerate(SPAN_COLUMNS)}
_TOKEN_COLUMNS = tuple(
    _COL[c] for c in ("input_tokens", "output_tokens", "cached_tokens", "total_tokens", "cost_usd")
)


@dataclass
class _ResourceContext:
    """What every span of one ResourceSpans shares: decoded once, not per span."""

    tenant: str  # sanitised; from the ingest token, else the resource attributes, else default
    token_tenant: bool  # the ingest token fixed the tenant: span attributes cannot change it
    attrs_json: bytes
    found: dict[str, Any]
    service_name: str | None
    scope_name: str | None = None


# Slots whose presence means the span may report an error (so error columns are worth deriving).
_ERROR_SLOTS = frozenset({"error_type", "error_message", "sig.rpc_error_code", "sig.error_message"})
_TEXT_SLOTS = frozenset(
    {
        "input_text",
        "output_text",
        "sig.indexed_input",
        "sig.indexed_output",
        "sig.input_other",
        "sig.output_other",
    }
)
_TOOL_OPERATIONS = frozenset({"tool", "mcp"})


class NormalizeProcessor(BaseComponent):
    def __init__(self, config: Config, next_consumer: Consumer) -> None:
        self.config = config
        self.next_consumer = next_consumer
        self._index = build_index(config.attributes)
        self._overrides = dict(config.operations)
        self._providers = ProviderAliases(config.provider_aliases)
        self._tenants: dict[str, str] = {}

    def consume(self, batch: OtlpBatch) -> None:
        """Pass the batch on as one span table; a batch without spans is not passed on."""
        table = self.to_table(batch)
        if table.num_rows:
            self.next_consumer.consume(table)

    def to_table(self, batch: OtlpBatch) -> pa.Table:
        """The canonical table of every span in ``batch`` (empty table when there are none)."""
        rows: list[list[Any]] = []
        for record in batch.records:
            for resource_spans in record.parse().resource_spans:
                ctx = self._resource_context(resource_spans.resource.attributes, record.tenant)
                for scope_spans in resource_spans.scope_spans:
                    ctx.scope_name = scope_spans.scope.name or None
                    rows.extend(self._row(span, ctx) for span in scope_spans.spans)
        if not rows:
            return SPAN_SCHEMA.empty_table()
        _keep_usage_on_leaves_only(rows)
        return _to_arrow(rows)

    def _resource_context(self, pairs: Iterable[KeyValue], token_tenant: str | None) -> _ResourceContext:
        attrs, found = decode_and_resolve(pairs, self._index)
        raw_tenant = token_tenant if token_tenant is not None else as_str(found.get("tenant"))
        return _ResourceContext(
            tenant=self._tenant(raw_tenant),
            token_tenant=token_tenant is not None,
            attrs_json=orjson.dumps(attrs),
            found=found,
            service_name=as_str(attrs.get("service.name")),
        )

    def _tenant(self, raw: str | None) -> str:
        if raw is None:
            return DEFAULT_TENANT
        clean = self._tenants.get(raw)
        if clean is None:
            clean = sanitize_tenant(raw)
            if len(self._tenants) < 10_000:  # bounded: tenants come from clients
                self._tenants[raw] = clean
        return clean

    def _row(self, span: Span, ctx: _ResourceContext) -> list[Any]:
        """One canonical row. String slots are passed raw: _to_arrow coerces the rare non-str."""
        attrs, own = decode_and_resolve(span.attributes, self._index)
        found = {**ctx.found, **own} if ctx.found else own  # span attributes win over resource's
        get = found.get
        tenant = ctx.tenant
        if not ctx.token_tenant and "tenant" in own:
            tenant = self._tenant(as_str(own["tenant"]))
        events = events_list(span.events) if span.events else []
        name = span.name
        op = derive.operation(name, found, self._overrides)
        start = span.start_time_unix_nano
        end = span.end_time_unix_nano
        span_status = span.status
        code = span_status.code
        status = _STATUSES[code] if 0 <= code < 3 else "unset"
        status_message = span_status.message or None
        # The derive.* calls below are skipped when the span carries nothing they could use.
        error_type = error_message = None
        if events or status == "error" or not _ERROR_SLOTS.isdisjoint(found):
            exc_type, exc_message = derive.exception_of(events)
            error_type = derive.error_type(found, exc_type)
            error_message = derive.error_message(found, exc_message, status, status_message)
        agent_name = get("agent_name")
        if agent_name is None and (op == "agent_run" or "sig.trace_name" in found):
            agent_name = derive.agent_name(name, op, found)
        tool_name = get("tool_name")
        if op in _TOOL_OPERATIONS:
            if tool_name is None:
                tool_name = derive.tool_name(name, op, found)
            if error_type is None:  # MCP reports a failed tool inside a successful result
                error_type = derive.tool_error(found)
        provider = get("provider")
        if provider is not None:
            provider = self._providers.canonical(as_str(provider) or "")
        usage = derive.usage(found) if op in conv.LLM_OPERATIONS else derive.NO_USAGE
        input_text = output_text = None
        if self.config.capture_text and (events or not _TEXT_SLOTS.isdisjoint(found)):
            input_text, output_text = self._texts(attrs, found, events)
        kind = span.kind
        # The order of this list is SPAN_SCHEMA's.
        return [
            tenant,
            span.trace_id.hex(),
            span.span_id.hex(),
            span.parent_span_id.hex() or None,
            ctx.service_name,
            ctx.scope_name,
            name,
            _KINDS[kind] if 0 <= kind < 6 else None,
            op,
            start // 1000,
            end // 1000,
            start,
            end,
            (end - start) / 1e6 if end > start else 0.0,
            status,
            status_message,
            get("agent_id"),
            agent_name,
            get("agent_version"),
            get("agent_owner"),
            get("user_id"),
            get("session_id"),
            get("model"),
            provider,
            *usage,
            tool_name,
            error_type,
            error_message,
            None,  # failure_type: set by the classify processor
            input_text,
            output_text,
            as_bool(get("synthetic")),
            get("eval_run_id"),
            get("eval_case_id"),
            orjson.dumps(attrs),
            ctx.attrs_json,
            orjson.dumps(events) if events else None,
        ]

    def _texts(
        self, attrs: dict[str, Any], found: dict[str, Any], events: list[dict[str, Any]]
    ) -> tuple[str | None, str | None]:
        """(input_text, output_text), each from the first source that has it, truncated.

        Sources, most specific first: message attributes (and configured names), flattened
        message lists, GenAI message events, then generic inputs/outputs such as input.value.
        """
        ev_in = ev_out = None
        if events:
            ev_in, ev_out = derive.event_text(events)
        inp = text_of(found.get("input_text"))
        if inp is None and "sig.indexed_input" in found:
            inp = derive.indexed_text(attrs, conv.INPUT_MESSAGE_FAMILIES)
        if inp is None:
            inp = ev_in if ev_in is not None else text_of(found.get("sig.input_other"))
        out = text_of(found.get("output_text"))
        if out is None and "sig.indexed_output" in found:
            out = derive.indexed_text(attrs, conv.OUTPUT_MESSAGE_FAMILIES)
        if out is None:
            out = ev_out if ev_out is not None else text_of(found.get("sig.output_other"))
        limit = self.config.max_text_length
        if inp is not None and len(inp) > limit:
            inp = inp[:limit]
        if out is not None and len(out) > limit:
            out = out[:limit]
        return inp, out


def _keep_usage_on_leaves_only(rows: list[list[Any]]) -> None:
    """Null tokens/cost of an LLM span that has an LLM child in the same table.

    Frameworks often wrap the provider call in a second "chat" span that repeats its usage;
    counting both would double the spend, so only the innermost LLM span keeps the numbers.
    """
    trace, span, parent = _COL["trace_id"], _COL["span_id"], _COL["parent_span_id"]
    operation = _COL["operation"]
    llm_rows = [row for row in rows if row[operation] in conv.LLM_OPERATIONS]
    parents = {(row[trace], row[parent]) for row in llm_rows if row[parent] is not None}
    if not parents:
        return
    for row in llm_rows:
        if (row[trace], row[span]) in parents:
            for i in _TOKEN_COLUMNS:
                row[i] = None


def _to_arrow(rows: list[list[Any]]) -> pa.Table:
    """Rows → Arrow, one conversion per column; all-null columns skip the conversion.

    Attribute values for string columns are passed raw from the span: coercing the rare
    non-string here, per column and only on failure, keeps a call per column off every span.
    """
    count = len(rows)
    arrays = []
    for column, schema_field in zip(zip(*rows, strict=True), SPAN_SCHEMA, strict=True):
        if column.count(None) == count:
            arrays.append(pa.nulls(count, schema_field.type))
            continue
        try:
            arrays.append(pa.array(column, type=schema_field.type))
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            # Only string columns take raw attribute values (an int agent.version, a list...).
            if schema_field.type != pa.string():
                raise
            arrays.append(pa.array([as_str(v) for v in column], type=schema_field.type))
    return pa.Table.from_arrays(arrays, schema=SPAN_SCHEMA)


def create(config: Config, next_consumer: Consumer) -> NormalizeProcessor:
    return NormalizeProcessor(config, next_consumer)
