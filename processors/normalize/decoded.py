"""A batch of OTLP requests decoded into flat tables (``processors.normalize.wire``), plus Python access to
the few values that need it (keys, distinct values, spans for the per-span fallbacks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from core.model import OtlpRecord
from processors.normalize import wire
from processors.normalize.kernels import intern_ranges, value_ids
from processors.normalize.limits import LimitCounts, Limits, apply_limits, limit_any_value, limit_span
from processors.normalize.otlp_decode import any_value, attributes_dict, events_list
from processors.normalize.wire import (
    A_INT,
    A_KEY_LEN,
    A_KEY_OFF,
    A_RAW_LEN,
    A_RAW_OFF,
    A_TYPE,
    A_VLEN,
    A_VOFF,
    T_BOOL,
    T_INT,
    T_NONE,
    T_STR,
    T_STRINDEX,
)


def col(table: np.ndarray, field: int) -> np.ndarray:
    """One column of a scanner table, contiguous.

    Kernels are compiled per argument layout: passing every column contiguous keeps it to the
    one version ``NormalizeProcessor.start`` compiled (or loaded), instead of compiling another
    in the middle of a batch.
    """
    return np.ascontiguousarray(table[:, field])


class Scratch:
    """The scanner's tables, kept between batches (fresh memory would cost page faults on
    every batch). Only ``decode`` writes them."""

    def __init__(self) -> None:
        self.tables = tuple(
            np.empty((16, width), np.int64)
            for width in (
                wire.SPAN_FIELDS,
                wire.ATTR_FIELDS,
                wire.RESOURCE_FIELDS,
                wire.SCOPE_FIELDS,
                wire.EVENT_FIELDS,
            )
        )


@dataclass
class Decoded:
    data: bytes  # every payload of the batch, concatenated: all offsets point into this
    buf: np.ndarray  # the same bytes as np.uint8 (no copy)
    spans: np.ndarray
    attrs: np.ndarray
    resources: np.ndarray
    scopes: np.ndarray
    events: np.ndarray
    token_tenants: list[str | None]  # per request: the tenant its ingest token fixed
    limits: Limits  # already applied to the tables by ``decode``; ``value``/``span_dicts`` apply them too
    limit_counts: LimitCounts
    limited: np.ndarray  # per span: whether the limits changed its attributes, events or theirs
    key_id: np.ndarray = field(init=False)  # per attribute: dense id of its key
    key_first: np.ndarray = field(init=False)  # key id → an attribute with that key
    keys: list[str] = field(init=False)  # key id → key
    _spans: dict[int, tuple[list[dict[str, Any]], dict[str, Any]]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        attrs = self.attrs
        self.key_id, self.key_first = intern_ranges(self.buf, col(attrs, A_KEY_OFF), col(attrs, A_KEY_LEN))
        self.keys = [self.text(attrs[a, A_KEY_OFF], attrs[a, A_KEY_LEN]) for a in self.key_first.tolist()]

    def text(self, off: int, length: int) -> str:
        return self.data[off : off + length].decode()

    def value(self, a: int) -> Any:
        """Attribute ``a``'s value exactly as ``otlp_decode.any_value`` gives it."""
        row = self.attrs[a]
        kind = row[A_TYPE]
        if kind == T_STR:
            return self.text(row[A_VOFF], row[A_VLEN])
        if kind in (T_INT, T_STRINDEX):
            return int(row[A_INT])
        if kind == T_BOOL:
            return bool(row[A_INT])
        if kind == T_NONE:
            return None
        return any_value(self.any_value_message(a))

    def any_value_message(self, a: int) -> AnyValue:
        """Attribute ``a``'s AnyValue, parsed, with the limits applied."""
        value = self.raw_value(a)
        if self.attrs[a, A_RAW_LEN] > self.limits.nothing_to_cut:
            limit_any_value(value, self.limits)
        return value

    def raw_value(self, a: int) -> AnyValue:
        """Attribute ``a``'s AnyValue as sent."""
        row = self.attrs[a]
        value: AnyValue = AnyValue.FromString(self.data[row[A_RAW_OFF] : row[A_RAW_OFF] + row[A_RAW_LEN]])
        return value

    def value_ids(self, picks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids shaped like ``picks``, first attribute per id): equal values share an id."""
        ids, first = value_ids(self.buf, self.attrs, np.ascontiguousarray(picks).reshape(-1))
        return ids.reshape(picks.shape), first

    def span_dicts(self, s: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """(events, attributes) of span ``s`` as the rules written per span read them, decoded
        by protobuf (once: several rules may ask for the same span)."""
        cached = self._spans.get(s)
        if cached is None:
            off, length = self.spans[s, wire.S_OFF], self.spans[s, wire.S_LEN]
            span = Span()
            span.ParseFromString(self.data[off : off + length])
            if self.limited[s]:
                limit_span(span, self.limits)
            cached = self._spans[s] = (events_list(span.events), attributes_dict(span.attributes))
        return cached


def decode(records: Sequence[OtlpRecord], scratch: Scratch, limits: Limits) -> Decoded:
    """Scan every request (a request the scanner cannot express is re-encoded by protobuf
    first), then apply the limits (``processors.normalize.limits``) to the tables.

    Raises ValueError for a payload that is not a valid ExportTraceServiceRequest.
    """
    payloads = [record.payload for record in records]
    reencoded: set[int] = set()
    while True:
        data = b"".join(payloads)
        buf = np.frombuffer(data, np.uint8)
        lengths = np.fromiter((len(p) for p in payloads), np.int64, len(payloads))
        ends = np.cumsum(lengths)
        status, request, *tables, counts = wire.scan(buf, ends - lengths, ends, *scratch.tables)
        scratch.tables = tuple(tables)
        if status == wire.OK:
            break
        if status == wire.NONCANONICAL and request not in reencoded:
            # Protobuf's own encoding merges repeated messages and writes fields in number
            # order. Each rescan covers the whole batch, so after a second such request every
            # later one is re-encoded at once (rescans stay few, whatever a client sends).
            todo = [request] if not reencoded else range(request, len(payloads))
            for r in todo:
                if r not in reencoded:
                    reencoded.add(r)
                    payloads[r] = _reencoded(payloads[r], r)
            continue
        raise _invalid(request)
    # Views into the scratch tables: valid until the next batch, so nothing built from them may
    # share their memory (every column handed to Arrow is computed into a new array).
    spans, attrs, resources, scopes, events = (t[:n] for t, n in zip(tables, counts, strict=True))
    cuts, n_events, irregular, limited = apply_limits(buf, spans, attrs, resources, events, limits.as_array())
    tenants = [record.tenant for record in records]
    limit_counts = LimitCounts(*cuts.tolist())
    decoded = Decoded(
        data, buf, spans, attrs, resources, scopes, events[:n_events], tenants, limits, limit_counts, limited
    )
    for a in np.flatnonzero(irregular).tolist():  # nested values encoded as only protobuf reads them
        limit_counts.add(limit_any_value(decoded.raw_value(a), limits))
    return decoded


def _reencoded(payload: bytes, request: int) -> bytes:
    try:
        canonical: bytes = ExportTraceServiceRequest.FromString(payload).SerializeToString()
    except DecodeError as exc:
        raise _invalid(request) from exc
    return canonical


def _invalid(request: int) -> ValueError:
    return ValueError(f"record {request}: payload is not a valid ExportTraceServiceRequest")
