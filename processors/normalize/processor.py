"""The ``normalize`` processor: undecoded OTLP requests → the canonical span table.

    processors:
      normalize:
        max_text_length: 8192          # input_text/output_text cut to this many characters
        capture_text: true             # false: no prompt/answer text stored (columns, attributes, events)
        max_attribute_value_length: 65536  # characters; longer string values are cut (and counted)
        max_attribute_count: 1024      # per span, event, resource and kvlist; the rest dropped (counted)
        max_attribute_key_length: 1024  # characters; longer keys are cut (and counted)
        max_array_length: 10000        # elements per array value; the rest are dropped (and counted)
        max_events_per_span: 1024      # first sent, first kept; the rest are dropped (and counted)
        attributes:                    # extra names per canonical column, tried before built-ins
          user_id: [glean.user.email]
          agent_owner: [glean.agent.creator]
        operations:                    # span name → operation, beats every convention
          "my-rag-step": retrieval
        provider_aliases:              # merged over the built-in alias table
          my-gateway: openai

It is the first processor of every pipeline: it consumes an ``OtlpBatch`` and hands the next
consumer one ``pyarrow.Table`` with exactly ``model.SPAN_SCHEMA``. A batch without spans is not
passed on at all. Which attribute names are read is data, in ``processors.normalize.conventions``.

Conversion is columnar, with no Python object per span in the common case: ``processors.normalize.wire``
scans the protobuf bytes of the whole batch into flat tables (numba), attribute names are looked
up once per distinct name in an inverted index (attribute name → canonical slots with
priorities), ``canonical`` resolves the slots and applies the rules once per distinct input, and
columns are gathered straight from the payload bytes into Arrow buffers (``columns``,
``attribute_json``). Output is identical to decoding every span with protobuf and applying the
rules span by span (tests/processors/test_golden.py).

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

import threading

import numpy as np
import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from core.component import BaseComponent, Consumer
from core.model import DEFAULT_TENANT, SPAN_COLUMNS, SPAN_SCHEMA, OtlpBatch, OtlpRecord
from core.tenants import sanitize_tenant
from processors.normalize.attribute_json import json_columns
from processors.normalize.canonical import Rules
from processors.normalize.columns import MAIN, NULL, Pool, Ranges, choose, string_array, timestamps_us
from processors.normalize.config import Config as Config  # re-exported: the factory's config
from processors.normalize.decoded import Decoded, Scratch, col, decode
from processors.normalize.error_text import STATUSES
from processors.normalize.kernels import hex_ranges
from processors.normalize.limits import LimitCounts, Limits
from processors.normalize.redact import Redaction
from processors.normalize.resolve import ProviderAliases, build_index
from processors.normalize.slots import attr_strings
from processors.normalize.wire import (
    A_OWNER,
    A_OWNER_KIND,
    OWNER_RESOURCE,
    S_END,
    S_ID_LEN,
    S_ID_OFF,
    S_KIND,
    S_MSG_LEN,
    S_MSG_OFF,
    S_NAME_LEN,
    S_NAME_OFF,
    S_PARENT_LEN,
    S_PARENT_OFF,
    S_RES,
    S_SCOPE,
    S_START,
    S_TRACE_LEN,
    S_TRACE_OFF,
    SC_NAME_LEN,
    SC_NAME_OFF,
)

TYPE = "normalize"

# --- the processor -----------------------------------------------------------------------

_KINDS: tuple[str | None, ...] = (None, "internal", "server", "client", "producer", "consumer")


class NormalizeProcessor(BaseComponent):
    def __init__(self, config: Config, next_consumer: Consumer) -> None:
        self.config = config
        self.next_consumer = next_consumer
        self.index = build_index(config.attributes)
        self.overrides = dict(config.operations)
        self.providers = ProviderAliases(config.provider_aliases)
        self.redaction = (
            None
            if config.capture_text
            else Redaction(
                name for column in ("input_text", "output_text") for name in config.attributes.get(column, ())
            )
        )
        self._tenants: dict[str, str] = {}
        self._scratch = Scratch()
        self._lock = threading.Lock()  # the scratch tables serve one batch at a time
        self.limits = Limits(
            config.max_attribute_value_length,
            config.max_attribute_count,
            config.max_attribute_key_length,
            config.max_array_length,
            config.max_events_per_span,
        )
        self._counts = LimitCounts()

    def start(self) -> None:
        """Compile (or load the cached) numba kernels now, not on the first real batch."""
        self.to_table(OtlpBatch([OtlpRecord(_warmup_request(), "warmup")]))
        self.take_counts()  # the warmup's own cuts are not the clients'

    def consume(self, batch: OtlpBatch) -> None:
        """Pass the batch on as one span table; a batch without spans is not passed on."""
        table = self.to_table(batch)
        if table.num_rows:
            self.next_consumer.consume(table)

    def to_table(self, batch: OtlpBatch) -> pa.Table:
        """The canonical table of every span in ``batch`` (empty table when there are none).

        Raises ValueError when a payload is not a valid ExportTraceServiceRequest.
        """
        with self._lock:
            decoded = decode(batch.records, self._scratch, self.limits)
            self._counts.add(decoded.limit_counts)
            if not decoded.spans.shape[0]:
                return SPAN_SCHEMA.empty_table()
            columns: dict[str, pa.Array | Ranges] = {}
            rules = Rules(decoded, self)
            columns.update(rules.columns())
            columns.update(span_columns(decoded, rules))
            if self.redaction is None:
                columns.update(json_columns(decoded))
            else:  # capture_text: false: message attributes and events are not stored either
                redact = self.redaction
                columns.update(json_columns(decoded, redact.keys(decoded), redact.events(decoded)))
            arrays = [
                column.to_arrow(decoded.buf, rules.pool) if isinstance(column, Ranges) else column
                for column in (columns[name] for name in SPAN_COLUMNS)
            ]
            return pa.Table.from_arrays(arrays, schema=SPAN_SCHEMA)

    def take_counts(self) -> dict[str, int]:
        """What the limits cut and dropped since the last call (``agentwatch_<name>_total``)."""
        with self._lock:
            counts, self._counts = self._counts, LimitCounts()
        return {
            "attribute_values_truncated": counts.values_truncated,
            "attributes_dropped": counts.attributes_dropped,
            "attribute_keys_truncated": counts.keys_truncated,
            "array_values_dropped": counts.array_values_dropped,
            "span_events_dropped": counts.events_dropped,
        }

    def tenant(self, raw: str | None) -> str:
        """A raw tenant, sanitised (memoised: a deployment has few tenants)."""
        if raw is None:
            return DEFAULT_TENANT
        clean = self._tenants.get(raw)
        if clean is None:
            clean = sanitize_tenant(raw)
            if len(self._tenants) < 10_000:  # bounded: tenants come from clients
                self._tenants[raw] = clean
        return clean


def span_columns(decoded: Decoded, rules: Rules) -> dict[str, pa.Array | Ranges]:
    """The columns that come from the span's own fields, its resource and its scope."""
    spans, buf = decoded.spans, decoded.buf
    n = spans.shape[0]
    out: dict[str, pa.Array | Ranges] = {}
    for column, off, length in (
        ("trace_id", S_TRACE_OFF, S_TRACE_LEN),
        ("span_id", S_ID_OFF, S_ID_LEN),
        ("parent_span_id", S_PARENT_OFF, S_PARENT_LEN),
    ):
        data, offsets = hex_ranges(buf, col(spans, off), col(spans, length))
        out[column] = string_array(
            data, offsets, spans[:, length] > 0 if column == "parent_span_id" else None
        )
    out["name"] = _ranges(spans, S_NAME_OFF, S_NAME_LEN, empty_is_null=False)
    out["scope_name"] = _ranges(
        decoded.scopes[spans[:, S_SCOPE]], SC_NAME_OFF, SC_NAME_LEN, empty_is_null=True
    )
    out["service_name"] = _service_names(decoded, rules.pool)
    kind = spans[:, S_KIND]
    out["kind"] = choose(_KINDS, np.where((kind >= 0) & (kind < 6), kind, 0))
    out["status"] = choose(STATUSES, rules.status)
    out["status_message"] = _ranges(spans, S_MSG_OFF, S_MSG_LEN, empty_is_null=True)
    start, end = spans[:, S_START], spans[:, S_END]
    if (start < 0).any() or (end < 0).any():
        raise ValueError("span times past 2**63 ns do not fit the int64 columns")
    out["start_time"] = timestamps_us(start // 1000)
    out["end_time"] = timestamps_us(end // 1000)
    out["start_time_unix_nano"] = pa.array(start.copy(), pa.int64())
    out["end_time_unix_nano"] = pa.array(end.copy(), pa.int64())
    out["duration_ms"] = pa.array(np.where(end > start, (end - start) / 1e6, 0.0), pa.float64())
    out["failure_type"] = pa.nulls(n, pa.string())  # set by the classify processor
    return out


def _ranges(table: np.ndarray, off: int, length: int, empty_is_null: bool) -> Ranges:
    """A string column straight from a table's byte ranges (protobuf's "" is null if asked)."""
    lens = col(table, length)
    source = np.where(lens > 0, MAIN, NULL) if empty_is_null else np.full(lens.shape[0], MAIN)
    return Ranges(source.astype(np.int8), col(table, off), lens)


def _service_names(decoded: Decoded, pool: Pool) -> Ranges:
    """``as_str`` of the resource's last ``service.name`` (a dict of the attributes keeps the last)."""
    attrs = decoded.attrs
    last = np.full(decoded.resources.shape[0], -1, np.int64)
    if "service.name" in decoded.keys:
        key = decoded.keys.index("service.name")
        hits = np.flatnonzero((decoded.key_id == key) & (attrs[:, A_OWNER_KIND] == OWNER_RESOURCE))
        np.maximum.at(last, attrs[hits, A_OWNER], hits)
    return attr_strings(decoded, last[decoded.spans[:, S_RES]], pool)


def _warmup_request() -> bytes:
    """A request that takes every kernel's code path once (a double, an array, an event)."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name").value.string_value = "warmup"
    span = resource_spans.scope_spans.add().spans.add(trace_id=b"\1" * 16, span_id=b"\2" * 8, name="chat")
    span.attributes.add(key="gen_ai.usage.input_tokens").value.int_value = 1
    span.attributes.add(key="gen_ai.request.temperature").value.double_value = 0.5
    span.attributes.add(key="tags").value.array_value.values.add(bool_value=True)
    span.events.add(name="exception").attributes.add(key="exception.type").value.string_value = "E"
    payload: bytes = request.SerializeToString()
    return payload


def create(config: Config, next_consumer: Consumer) -> NormalizeProcessor:
    return NormalizeProcessor(config, next_consumer)
