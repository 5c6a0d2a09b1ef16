"""The canonical span row: every span, whatever convention it arrived in, becomes one of these.

Analysts and every exporter rely on these column names (see DESIGN.md); columns may be added,
never renamed. A batch of rows travels through the pipeline as a ``pyarrow.Table`` with
``SPAN_SCHEMA``; ``tenant`` is stored as a hive partition (``tenant=<t>/date=<d>``) on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import pyarrow as pa
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

UTC_MICROS = pa.timestamp("us", tz="UTC")

# "mcp" is an MCP tool call (tools/call), like "tool"; "mcp_protocol" is the rest of MCP's traffic
# (initialize, tools/list, notifications, ...): neither a tool call nor a run of its own.
OPERATIONS = (
    "agent_run", "chat", "tool", "mcp", "mcp_protocol", "retrieval", "embedding", "workflow", "other",
)  # fmt: skip
# Operations by what they are to a run (``storage.runs``).
AGENT_OPERATION = "agent_run"
LLM_OPERATIONS = ("chat", "embedding")
"""Calls of a model: where tokens and a run's ``models`` come from."""
TOOL_OPERATIONS = ("tool", "mcp")
"""Tool calls: a run's ``tool_calls`` and ``tool_errors``."""
PROTOCOL_OPERATIONS = ("mcp_protocol",)
"""Protocol traffic: not a tool call, and a trace of nothing else is not a run."""
WRAPPER_OPERATIONS = ("agent_run", "workflow")
"""Spans that fail because a span under them did: the last place a run's root cause is looked for."""
STATUSES = ("ok", "error", "unset")
EVENT_SCOPE = "agentwatch.agent_events"
"""The instrumentation scope of spans made from agent events (``events.spans``): the run model
counts them only for traces with no spans of their own (``storage.runs``)."""

SPAN_SCHEMA = pa.schema(
    [
        pa.field("tenant", pa.string(), nullable=False),
        pa.field("trace_id", pa.string(), nullable=False),
        pa.field("span_id", pa.string(), nullable=False),
        pa.field("parent_span_id", pa.string()),
        pa.field("service_name", pa.string()),
        pa.field("scope_name", pa.string()),
        pa.field("name", pa.string(), nullable=False),
        pa.field("kind", pa.string()),
        pa.field("operation", pa.string(), nullable=False),
        pa.field("start_time", UTC_MICROS, nullable=False),
        pa.field("end_time", UTC_MICROS, nullable=False),
        pa.field("start_time_unix_nano", pa.int64(), nullable=False),
        pa.field("end_time_unix_nano", pa.int64(), nullable=False),
        pa.field("duration_ms", pa.float64(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("status_message", pa.string()),
        pa.field("agent_id", pa.string()),
        pa.field("agent_name", pa.string()),
        pa.field("agent_name_derived", pa.bool_()),
        pa.field("agent_version", pa.string()),
        pa.field("agent_owner", pa.string()),
        pa.field("user_id", pa.string()),
        pa.field("session_id", pa.string()),
        # Who pays (processors/normalize/conventions.py: "team", "org", ...; mapped in config).
        pa.field("team", pa.string()),
        pa.field("org", pa.string()),
        pa.field("workspace", pa.string()),
        pa.field("project", pa.string()),
        pa.field("workflow", pa.string()),
        pa.field("model", pa.string()),
        pa.field("provider", pa.string()),
        pa.field("input_tokens", pa.int64()),
        pa.field("output_tokens", pa.int64()),
        pa.field("cached_tokens", pa.int64()),
        pa.field("total_tokens", pa.int64()),
        pa.field("cache_write_tokens", pa.int64()),  # prompt-cache writes (Anthropic, Bedrock)
        pa.field("cost_usd", pa.float64()),
        pa.field("cost_source", pa.string()),  # reported | computed | unknown (processors/cost)
        pa.field("tool_name", pa.string()),
        pa.field("error_type", pa.string()),
        pa.field("error_message", pa.string()),
        pa.field("failure_type", pa.string()),
        pa.field("input_text", pa.string()),
        pa.field("output_text", pa.string()),
        pa.field("synthetic", pa.bool_(), nullable=False),
        pa.field("eval_run_id", pa.string()),
        pa.field("eval_case_id", pa.string()),
        pa.field("attributes", pa.string(), nullable=False),
        pa.field("resource_attributes", pa.string(), nullable=False),
        pa.field("events", pa.string()),
    ]
)

SPAN_COLUMNS: tuple[str, ...] = tuple(SPAN_SCHEMA.names)

DEFAULT_TENANT = "default"


def as_str(value: Any) -> str | None:
    """An attribute value as the string columns hold it (and the tenant is read): strings as
    they are, booleans ``true``/``false``, numbers as Python prints them, the rest as JSON."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value).decode()


Signal = Literal["traces", "logs"]
"""What an OTLP request carries: spans (``ExportTraceServiceRequest``) or log records
(``ExportLogsServiceRequest``)."""
SIGNALS: tuple[Signal, ...] = ("traces", "logs")


@dataclass(frozen=True)
class OtlpRecord:
    """One acknowledged export request, as written to the write-ahead log.

    The serialized request is the record's one form: it is what the log holds, what a converter
    process is sent and what the columnar decoder reads, so nothing re-encodes it on the way.
    ``tenant`` is set when the request's tenant is fixed by how it arrived (an ingest token);
    otherwise it is None and the tenant comes from the resource attributes.
    """

    payload: bytes
    """A serialized ``ExportTraceServiceRequest`` (or, for ``signal == "logs"``,
    ``ExportLogsServiceRequest``) whose items all passed validation."""
    tenant: str | None = None
    receiver: str = "otlp"
    spans: int = 0
    """How many items the request holds: spans, or log records (counted by whoever validated it)."""
    signal: Signal = "traces"

    @classmethod
    def from_request(
        cls, request: ExportTraceServiceRequest, tenant: str | None = None, receiver: str = "otlp"
    ) -> OtlpRecord:
        return cls(request.SerializeToString(), tenant, receiver, _span_count(request))

    @classmethod
    def from_logs_request(
        cls, request: ExportLogsServiceRequest, tenant: str | None = None, receiver: str = "otlp"
    ) -> OtlpRecord:
        return cls(request.SerializeToString(), tenant, receiver, _log_record_count(request), "logs")

    def parse(self) -> ExportTraceServiceRequest:
        if self.signal != "traces":
            raise ValueError(f"a {self.signal} record holds no ExportTraceServiceRequest")
        request = ExportTraceServiceRequest()
        request.ParseFromString(self.payload)
        return request

    def parse_logs(self) -> ExportLogsServiceRequest:
        if self.signal != "logs":
            raise ValueError(f"a {self.signal} record holds no ExportLogsServiceRequest")
        request = ExportLogsServiceRequest()
        request.ParseFromString(self.payload)
        return request


def count_items(signal: Signal, payload: bytes) -> int:
    """How many spans or log records a serialized request of ``signal`` holds (it must parse)."""
    if signal == "logs":
        return _log_record_count(ExportLogsServiceRequest.FromString(payload))
    return _span_count(ExportTraceServiceRequest.FromString(payload))


def _span_count(request: ExportTraceServiceRequest) -> int:
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


def _log_record_count(request: ExportLogsServiceRequest) -> int:
    return sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)


@dataclass
class OtlpBatch:
    """Undecoded OTLP requests on their way into the pipeline's first processor (normalize)."""

    records: list[OtlpRecord] = field(default_factory=list)

    def span_count(self) -> int:
        return sum(rec.spans for rec in self.records)


def empty_span_table() -> pa.Table:
    return SPAN_SCHEMA.empty_table()


# -- the canonical log row ---------------------------------------------------------------------
# Every OTLP log record becomes one row of ``LOG_SCHEMA``; on disk
# ``logs/tenant=<t>/date=<YYYY-MM-DD>/*.parquet``, ``date`` being the UTC date of ``time``.
LOG_SCHEMA = pa.schema(
    [
        pa.field("tenant", pa.string(), nullable=False),
        # The record's time; its observed time when it has none (0), as the logs data model asks.
        pa.field("time", UTC_MICROS, nullable=False),
        pa.field("observed_time", UTC_MICROS),
        pa.field("time_unix_nano", pa.int64(), nullable=False),
        pa.field("severity_number", pa.int32()),
        pa.field("severity_text", pa.string()),
        pa.field("body", pa.string()),  # a string body as it is; any other body as JSON
        pa.field("event_name", pa.string()),  # the record's event_name, else its event.name attribute
        pa.field("trace_id", pa.string()),  # lowercase hex; null when the record has none
        pa.field("span_id", pa.string()),
        pa.field("service_name", pa.string()),
        pa.field("scope_name", pa.string()),
        pa.field("agent_id", pa.string()),
        pa.field("user_id", pa.string()),
        pa.field("attributes", pa.string(), nullable=False),
        pa.field("resource_attributes", pa.string(), nullable=False),
        pa.field("record_id", pa.string(), nullable=False),
        # a digest of the record (and its resource): what deduplication compares
    ]
)
