"""OTLP log records → canonical log rows (``core.model.LOG_SCHEMA``).

Log records are far fewer than spans in the deployments agentwatch serves (an event per run or
step), and each is read once, so this is plain Python over the protobuf; the columns are built
as Arrow arrays at the end.

A record's tenant: the request's (an ingest token), else a tenant attribute of its resource, else
of the record itself (``core.tenants.TENANT_ATTRIBUTES`` and the configured names), else
``default``. ``agent_id`` and ``user_id`` are read from the record's attributes, then its
resource's, by the names the span normaliser reads for them (and the agent event fields
``agent_id``/``user_id``). ``record_id`` is the record's digest (``storage.dedup.record_digest``): what
deduplication compares.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from core.model import DEFAULT_TENANT, LOG_SCHEMA, OtlpRecord, as_str
from core.tenants import TENANT_ATTRIBUTES, sanitize_tenant
from events.model import AgentEvent
from events.otlp import NEEDLE, attributes_of, event_of_log, log_event_name, plain
from processors.normalize.conventions import COLUMN_CANDIDATES
from storage.dedup import record_digest

AGENT_KEYS = ("agent_id", *COLUMN_CANDIDATES["agent_id"])
USER_KEYS = ("user_id", *COLUMN_CANDIDATES["user_id"])


def _first(names: Sequence[str], *maps: dict[str, Any]) -> str | None:
    for found in maps:
        for name in names:
            value = found.get(name)
            if value is not None and not isinstance(value, dict | list):
                return as_str(value)
    return None


def _json(value: dict[str, Any]) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


@dataclass
class ReadLogs:
    """What a batch of logs records holds: its rows, and per record the agent events among them
    (grouped by resource, as ``events.otlp.derived_spans`` takes them)."""

    rows: pa.Table
    events: list[tuple[OtlpRecord, list[tuple[Resource, list[AgentEvent]]]]] = field(default_factory=list)


def log_rows(records: Iterable[OtlpRecord], tenant_names: Sequence[str] = ()) -> pa.Table:
    """The rows of the log records of ``records`` (logs records only)."""
    return read_logs(records, tenant_names).rows


def read_logs(records: Iterable[OtlpRecord], tenant_names: Sequence[str] = ()) -> ReadLogs:
    """The rows of the log records of ``records`` (logs records only) and their agent events."""
    names = tuple(dict.fromkeys([*tenant_names, *TENANT_ATTRIBUTES]))
    columns: dict[str, list[Any]] = {name: [] for name in LOG_SCHEMA.names}
    found_events: list[tuple[OtlpRecord, list[tuple[Resource, list[AgentEvent]]]]] = []
    for record in records:
        request = record.parse_logs()
        groups: list[tuple[Resource, list[AgentEvent]]] = []
        may_hold_events = NEEDLE in record.payload
        for rl in request.resource_logs:
            events: list[AgentEvent] = []
            resource = attributes_of(rl.resource.attributes)
            resource_json = _json(resource)
            resource_bytes = rl.resource.SerializeToString()
            resource_tenant = _first(names, resource)
            service = _first(("service.name",), resource)
            for sl in rl.scope_logs:
                scope = sl.scope.name or None
                for item in sl.log_records:
                    attributes = attributes_of(item.attributes)
                    tenant = record.tenant or resource_tenant or _first(names, attributes) or DEFAULT_TENANT
                    when = item.time_unix_nano or item.observed_time_unix_nano
                    columns["tenant"].append(sanitize_tenant(tenant))
                    columns["time"].append(when // 1000)
                    columns["observed_time"].append(item.observed_time_unix_nano // 1000 or None)
                    columns["time_unix_nano"].append(when)
                    columns["severity_number"].append(item.severity_number or None)
                    columns["severity_text"].append(item.severity_text or None)
                    columns["body"].append(_body(item))
                    columns["event_name"].append(log_event_name(item, attributes))
                    # All-zero ids are no ids (the OTLP data model's invalid id): stored as null.
                    trace = item.trace_id
                    columns["trace_id"].append(trace.hex() if len(trace) == 16 and any(trace) else None)
                    span = item.span_id
                    columns["span_id"].append(span.hex() if len(span) == 8 and any(span) else None)
                    columns["service_name"].append(service)
                    columns["scope_name"].append(scope)
                    columns["agent_id"].append(_first(AGENT_KEYS, attributes, resource))
                    columns["user_id"].append(_first(USER_KEYS, attributes, resource))
                    columns["attributes"].append(_json(attributes))
                    columns["resource_attributes"].append(resource_json)
                    columns["record_id"].append(record_digest(resource_bytes, item).hex())
                    if may_hold_events and (event := event_of_log(item, attributes)) is not None:
                        events.append(event)
            if events:
                groups.append((rl.resource, events))
        if groups:
            found_events.append((record, groups))
    arrays = []
    for column in LOG_SCHEMA:
        values = columns[column.name]
        if pa.types.is_timestamp(column.type):
            arrays.append(pa.array(values, pa.int64()).cast(column.type))
        else:
            arrays.append(pa.array(values, column.type))
    return ReadLogs(pa.Table.from_arrays(arrays, schema=LOG_SCHEMA), found_events)


def _body(item: LogRecord) -> str | None:
    if not item.HasField("body"):
        return None
    value = plain(item.body)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()
