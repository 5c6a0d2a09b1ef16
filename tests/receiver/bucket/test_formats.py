"""Records of each format → OTLP, and the field mapping (the built-in WORKFLOW_RUN one and its
adjustments): exact fields, deterministic bytes."""

from __future__ import annotations

from typing import Any

import pytest

from events.otlp import attributes_of, event_of_log
from receiver.bucket.formats import BadRecord, Chunk, Decoder, cloud_logging_record, json_record, traces_of
from receiver.bucket.mapping import WORKFLOW_RUN, MappingConfig, MatchRule, apply, resolve, trace_of_run
from tests.receiver.bucket.fixtures import workflow_run

OBSERVED = 1_700_000_000_000_000_000


def attrs(record: Any) -> dict[str, Any]:
    return attributes_of(record.attributes)


def test_a_cloud_logging_workflow_run_becomes_an_agent_event() -> None:
    made = cloud_logging_record(workflow_run(3, failed=True), WORKFLOW_RUN, OBSERVED)
    record = made.record
    assert record.time_unix_nano == 1796032803250000000
    assert record.observed_time_unix_nano == 1796036400000000000  # receiveTimestamp
    assert (record.severity_text, record.severity_number) == ("ERROR", 17)
    assert record.trace_id.hex() == "00000000000000000000000000000004"
    assert record.span_id.hex() == "0000000000000004"
    assert record.event_name == "agent.request.completed"
    assert attrs(record) == {
        "deployment": "acme",
        "log.record.uid": "ins-00003",
        "gcp.log_name": "projects/acme-prod/logs/glean.workflow_runs",
        "run_id": "run-00003",
        "workflow_id": "wf-expense",
        "agent_id": "wf-expense",
        "user_id": "user-3",
        "status": "FAILED",
        "error_type": "ToolTimeout",
        "error_message_hash": "8dbb28aa0f4d1430",
        "trace_id": "00000000000000000000000000000004",
        "span_id": "0000000000000004",
        "latency_ms": 250.0,
        "timestamp": 1796032803250000000,
    }
    assert record.body.kvlist_value.values[0].key == "type"
    assert attributes_of(made.resource.attributes) == {
        "cloud.provider": "gcp",
        "gcp.resource.type": "global",
        "gcp.resource.labels.project_id": "acme-prod",
        "cloud.account.id": "acme-prod",
    }
    event = event_of_log(record)
    assert event is not None
    assert (event.name, event.failed, event.trace_id.hex()) == (
        "agent.request.completed",
        True,
        "00000000000000000000000000000004",
    )
    assert event.numbers == {"latency_ms": 250.0}
    assert event.text["agent_id"] == "wf-expense"


def test_a_run_without_a_trace_gets_one_derived_from_its_run_id() -> None:
    first = cloud_logging_record(workflow_run(3, trace=False), WORKFLOW_RUN, OBSERVED).record
    again = cloud_logging_record(workflow_run(3, trace=False), WORKFLOW_RUN, OBSERVED).record
    assert trace_of_run("run-00003") == "2b9aa22e134f88925b15fbbc1d0bc976"
    assert first.trace_id.hex() == "2b9aa22e134f88925b15fbbc1d0bc976"
    assert attrs(first)["trace_id"] == "2b9aa22e134f88925b15fbbc1d0bc976"
    assert first.span_id == b""
    assert first.SerializeToString() == again.SerializeToString()  # the same line, the same bytes


def test_records_that_do_not_match_stay_plain_log_records() -> None:
    entry = workflow_run(1)
    entry["jsonPayload"]["type"] = "SEARCH"
    record = cloud_logging_record(entry, WORKFLOW_RUN, OBSERVED).record
    assert record.event_name == ""
    assert attrs(record) == {
        "deployment": "acme",
        "log.record.uid": "ins-00001",
        "gcp.log_name": "projects/acme-prod/logs/glean.workflow_runs",
    }
    text = cloud_logging_record(
        {
            "insertId": "t1",
            "textPayload": "hello",
            "severity": "DEFAULT",
            "timestamp": "2026-11-30T10:00:00Z",
        },
        None,
        OBSERVED,
    ).record
    assert (text.body.string_value, text.severity_number, text.severity_text) == ("hello", 0, "DEFAULT")
    assert text.observed_time_unix_nano == OBSERVED  # no receiveTimestamp: the object's time
    assert text.time_unix_nano == 1796032800000000000


def test_the_mapping_is_adjusted_in_yaml_terms() -> None:
    adjusted = resolve(
        MappingConfig(
            extends="workflow_run",
            fields={"user_id": "jsonPayload.actor.email", "agent_id": "labels.agent"},
            values={"status": {"SUCCEEDED": "ok", "FAILED": "error"}},
        )
    )
    assert adjusted is not None
    entry = workflow_run(2, failed=True)
    entry["jsonPayload"]["actor"] = {"email": "ana@acme.com"}
    entry["labels"]["agent"] = "expense-bot"
    mapped = apply(adjusted, entry)
    assert mapped is not None
    assert (mapped.attributes["user_id"], mapped.attributes["agent_id"], mapped.attributes["status"]) == (
        "ana@acme.com",
        "expense-bot",
        "error",
    )
    assert mapped.attributes["workflow_id"] == "wf-expense"  # the built-in's other fields stay
    own = MappingConfig(
        match=[MatchRule(path="kind", equals=["tool_error", "TOOL_FAILURE"])],
        event="agent.tool.failed",
        fields={"trace_id": "trace", "tool_name": "tool", "latency_ms": "took"},
    )
    found = apply(
        own,
        {"kind": "tool_failure", "trace": "0af7651916cd43dd8448eb211c80319c", "tool": "search", "took": 12},
    )
    assert found is not None
    assert (found.event, found.trace_id) == ("agent.tool.failed", "0af7651916cd43dd8448eb211c80319c")
    assert found.attributes == {
        "tool_name": "search",
        "latency_ms": 12,
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
    }
    assert apply(own, {"kind": "other"}) is None
    assert MappingConfig(extends="glean", event="agent.nope").validate() == [
        "extends: 'glean' is not a built-in mapping (known: workflow_run)",
        "event: 'agent.nope' is not an agent event (known: agent.request.started, agent.request.completed, "
        "agent.step.started, agent.step.completed, agent.tool.called, agent.tool.failed, agent.retry, "
        "agent.fallback.triggered, agent.policy.decision, agent.budget.threshold_hit)",
    ]


def test_a_json_line_naming_an_agent_event_is_that_event() -> None:
    line = {
        "event": "agent.tool.failed",
        "timestamp": "2026-11-30T10:00:00Z",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "agent_id": "expense-bot",
        "tool_name": "search",
        "error_type": "Timeout",
        "note": {"nested": True},
    }
    record = json_record(line, None, OBSERVED).record
    assert record.event_name == "agent.tool.failed"
    assert record.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    assert attrs(record) == {
        "timestamp": "2026-11-30T10:00:00Z",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "agent_id": "expense-bot",
        "tool_name": "search",
        "error_type": "Timeout",
    }
    plain = json_record({"msg": "hi", "level": "warn", "ts": 1796032800}, None, OBSERVED).record
    assert (plain.event_name, plain.severity_number, plain.time_unix_nano) == ("", 13, 1796032800000000000)
    assert attrs(plain) == {}


def test_otlp_json_traces_and_tempo_dumps() -> None:
    span = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "name": "invoke_agent expense-bot",
        "startTimeUnixNano": "1796032800000000000",
        "endTimeUnixNano": "1796032801000000000",
    }
    for doc in (
        {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [span]}]}]},
        {"batches": [{"resource": {}, "instrumentationLibrarySpans": [{"spans": [span]}]}]},
    ):
        request = traces_of(doc)
        spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        assert [(s.trace_id.hex(), s.span_id.hex(), s.name) for s in spans] == [
            ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "invoke_agent expense-bot")
        ]
    # Tempo's trace API writes ids as protobuf's JSON mapping does: base64 (a link's too).
    tempo = dict(span, traceId="CvdlGRbNQ92ESOshHIAxnA==", spanId="t61rcWkgMzE=", parentSpanId="AAAAAAAAAAE=",
                 links=[{"traceId": "CvdlGRbNQ92ESOshHIAxnA==", "spanId": "AAAAAAAAAAI="}])  # fmt: skip
    request = traces_of({"batches": [{"resource": {}, "instrumentationLibrarySpans": [{"spans": [tempo]}]}]})
    (stored,) = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert (stored.trace_id.hex(), stored.span_id.hex(), stored.parent_span_id.hex()) == (
        "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "0000000000000001"
    )  # fmt: skip
    assert stored.links[0].span_id.hex() == "0000000000000002"
    # Neither hex nor base64 of the right size: left for validation to refuse by name.
    bad = traces_of({"resourceSpans": [{"scopeSpans": [{"spans": [dict(span, spanId="not an id")]}]}]})
    assert bad.resource_spans[0].scope_spans[0].spans[0].span_id == b""
    chunk = Chunk()
    decoder = Decoder("auto", None)
    decoder.add(chunk, {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}, OBSERVED)
    decoder.add(
        chunk, {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "x"}}]}]}]}, 0
    )
    decoder.add(chunk, workflow_run(1), OBSERVED)
    assert (chunk.spans, chunk.log_records) == (1, 2)
    with pytest.raises(BadRecord, match="not an OTLP/JSON request"):
        Decoder("otlp_json", None).add(Chunk(), {"hello": 1}, 0)
    with pytest.raises(BadRecord, match="a record must be a JSON object, not list"):
        decoder.add(Chunk(), [1, 2], 0)
