"""End to end: the OpenTelemetry SDK's own exporters → a real server → Parquet read back with DuckDB."""

from __future__ import annotations

import datetime as dt
import gzip
import json

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import StatusCode

from storage.catalog import connect
from tests.helpers.otlp import json_span, make_trace, otlp_json
from tests.helpers.server import ServerProcess

pytestmark = pytest.mark.process  # a real server


def stored(server: ServerProcess, trace_hex: str) -> dict[str, dict[str, object]]:
    con = connect(server.data_dir)
    cursor = con.execute("SELECT * FROM spans WHERE trace_id = ? ORDER BY start_time", [trace_hex])
    columns = [d[0] for d in cursor.description]
    return {row[columns.index("span_id")]: dict(zip(columns, row, strict=True)) for row in cursor.fetchall()}


def assert_stored_exactly(server: ServerProcess, spans: list[ReadableSpan]) -> None:
    trace_hex = format(spans[0].context.trace_id, "032x")
    assert server.wait_for_count(
        f"SELECT count(*) FROM spans WHERE trace_id = '{trace_hex}'", len(spans)
    ) == len(spans)
    rows = stored(server, trace_hex)
    for span in spans:
        row = rows[format(span.context.span_id, "016x")]
        assert row["trace_id"] == trace_hex
        parent = format(span.parent.span_id, "016x") if span.parent else None
        assert row["parent_span_id"] == parent
        assert row["name"] == span.name
        assert row["service_name"] == "expense-bot-svc"
        assert row["scope_name"] == "agent-sdk"
        assert row["start_time_unix_nano"] == span.start_time
        assert row["end_time_unix_nano"] == span.end_time
        assert row["start_time"] == dt.datetime.fromtimestamp(span.start_time // 1000 / 1e6, dt.UTC)
        assert row["duration_ms"] == (span.end_time - span.start_time) / 1e6
        assert (
            row["status"]
            == {StatusCode.OK: "ok", StatusCode.ERROR: "error", StatusCode.UNSET: "unset"}[
                span.status.status_code
            ]
        )
        assert json.loads(str(row["attributes"])) == {
            k: list(v) if isinstance(v, tuple) else v for k, v in (span.attributes or {}).items()
        }
        resource = json.loads(str(row["resource_attributes"]))
        assert resource["service.name"] == "expense-bot-svc"
        assert resource["deployment.environment"] == "prod"
        assert row["tenant"] == "default"
        assert row["date"] == dt.date(2025, 11, 22)
    by_name = {str(r["name"]): r for r in rows.values()}
    assert by_name["invoke_agent expense-bot"]["operation"] == "agent_run"
    assert by_name["invoke_agent expense-bot"]["agent_id"] == "expense-bot"
    assert by_name["invoke_agent expense-bot"]["user_id"] == "carol@acme.com"
    chat = by_name["chat gpt-4o"]
    assert (chat["operation"], chat["model"], chat["provider"]) == ("chat", "gpt-4o", "openai")
    assert (chat["input_tokens"], chat["output_tokens"], chat["total_tokens"]) == (120, 30, 150)
    assert json.loads(str(chat["events"]))[0]["name"] == "gen_ai.choice"
    tool = by_name["execute_tool lookup_receipt"]
    assert (tool["operation"], tool["tool_name"], tool["status"]) == ("tool", "lookup_receipt", "error")
    assert tool["status_message"] == "receipt service returned 503"
    assert tool["input_tokens"] is None


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_grpc_sdk_exporter_round_trip(server: ServerProcess, compression: str | None) -> None:
    from grpc import Compression

    spans = make_trace()
    exporter = GrpcExporter(
        endpoint=server.grpc_endpoint, insecure=True, compression=Compression.Gzip if compression else None
    )
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()
    assert_stored_exactly(server, spans)


@pytest.mark.parametrize("compression", [HttpCompression.NoCompression, HttpCompression.Gzip])
def test_http_protobuf_sdk_exporter_round_trip(server: ServerProcess, compression: HttpCompression) -> None:
    spans = make_trace()
    exporter = HttpExporter(endpoint=server.http_url, compression=compression)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()
    assert_stored_exactly(server, spans)


def test_hand_built_otlp_json(server: ServerProcess) -> None:
    body = otlp_json(
        json_span(
            "5b8efff798038103d269b633813fc60c",
            "eee19b7ec3c1b174",
            attributes=[
                {"key": "user.id", "value": {"stringValue": "dave@acme.com"}},
                {"key": "count", "value": {"intValue": "42"}},
                {
                    "key": "tags",
                    "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"boolValue": True}]}},
                },
            ],
        )
    )
    response = httpx.post(server.http_url, json=body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    server.wait_for_count("SELECT count(*) FROM spans", 1)
    row = server.query(
        "SELECT tenant, trace_id, span_id, name, operation, status, status_message, user_id, "
        "duration_ms, attributes, service_name FROM spans"
    )[0]
    assert row[:9] == (
        "acme",
        "5b8efff798038103d269b633813fc60c",
        "eee19b7ec3c1b174",
        "agent_run",
        "agent_run",
        "error",
        "boom",
        "dave@acme.com",
        1500.0,
    )
    assert json.loads(str(row[9])) == {"user.id": "dave@acme.com", "count": 42, "tags": ["a", True]}
    assert row[10] == "json-svc"


def test_partial_success_for_bad_ids_json_and_protobuf(server: ServerProcess) -> None:
    body = otlp_json(
        json_span("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"),
        json_span("not-hex", "eee19b7ec3c1b175"),
        json_span("5b8efff798038103d269b633813fc60c", "00"),
    )
    response = httpx.post(server.http_url, json=body)
    assert response.status_code == 200
    assert response.json() == {
        "partialSuccess": {
            "rejectedSpans": "2",
            "errorMessage": "2 span(s) rejected; first: span 'agent_run': invalid trace_id '': must be 16 bytes, not all zero",
        }
    }
    from receiver.otlp.otlp_json import parse_json_request

    body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = "eee19b7ec3c1b176"  # type: ignore[index]
    proto = parse_json_request(json.dumps(body).encode()).SerializeToString()
    response = httpx.post(server.http_url, content=proto, headers={"content-type": "application/x-protobuf"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    parsed = ExportTraceServiceResponse.FromString(response.content)
    assert parsed.partial_success.rejected_spans == 2
    assert server.wait_for_count("SELECT count(*) FROM spans", 2) == 2
    assert server.query("SELECT span_id FROM spans ORDER BY span_id") == [
        ("eee19b7ec3c1b174",),
        ("eee19b7ec3c1b176",),
    ]


def rpc_status(response: httpx.Response) -> tuple[int, str]:
    from google.rpc import status_pb2

    if response.headers["content-type"] == "application/json":
        doc = response.json()
        return int(doc.get("code", 0)), str(doc["message"])
    status = status_pb2.Status.FromString(response.content)
    return status.code, status.message


def test_bad_input_gets_the_right_status_and_server_keeps_serving(server: ServerProcess) -> None:
    url = server.http_url
    proto = {"content-type": "application/x-protobuf"}
    garbage = httpx.post(url, content=b"\xff\xff\xff\xff not protobuf", headers=proto)
    assert garbage.status_code == 400
    assert rpc_status(garbage)[0] == 3  # INVALID_ARGUMENT
    bad_json = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert bad_json.status_code == 400
    code, message = rpc_status(bad_json)
    assert (code, message.startswith("request body is not valid JSON: ")) == (3, True)
    wrong_type = httpx.post(url, content=b"x", headers={"content-type": "text/plain"})
    assert wrong_type.status_code == 415
    assert (
        rpc_status(wrong_type)[1]
        == "unsupported Content-Type 'text/plain': use application/x-protobuf or application/json"
    )
    missing_type = httpx.post(url, content=b"x", headers={"content-type": ""})
    assert missing_type.status_code == 415
    gzip_lie = httpx.post(url, content=b"plain bytes", headers={**proto, "content-encoding": "gzip"})
    assert gzip_lie.status_code == 400
    assert rpc_status(gzip_lie)[1].startswith("body is labelled gzip but does not inflate")
    unknown_encoding = httpx.post(url, content=b"x", headers={**proto, "content-encoding": "br"})
    assert unknown_encoding.status_code == 415
    too_big = httpx.post(url, content=b"\x00" * (1024 * 1024 + 1), headers=proto)
    assert too_big.status_code == 413
    bomb = httpx.post(
        url, content=gzip.compress(b"\x00" * (8 * 1024 * 1024)), headers={**proto, "content-encoding": "gzip"}
    )
    assert bomb.status_code == 413
    assert rpc_status(bomb) == (8, "request body exceeds 1048576 bytes after decompression")
    assert httpx.get(url).status_code == 405
    assert httpx.put(url, content=b"").status_code == 405
    assert httpx.post(url.replace("/v1/traces", "/v1/nope"), content=b"", headers=proto).status_code == 404
    empty = httpx.post(url, content=b"", headers=proto)
    assert (empty.status_code, empty.content) == (200, b"")
    empty_json = httpx.post(url, content=b"{}", headers={"content-type": "application/json"})
    assert (empty_json.status_code, empty_json.json()) == (200, {})
    # Still serving, and nothing of the above was written.
    good = httpx.post(url, json=otlp_json(json_span("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")))
    assert good.status_code == 200
    assert server.wait_for_count("SELECT count(*) FROM spans", 1) == 1


def test_grpc_garbage_is_invalid_argument(server: ServerProcess) -> None:
    import grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
    with pytest.raises(grpc.RpcError) as info:
        export(b"\xff\xff\xff\xff garbage", timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert export(b"", timeout=5) == b""
    channel.close()


def test_sigterm_flushes_everything_and_exits_zero(server: ServerProcess) -> None:
    spans = make_trace()
    exporter = HttpExporter(endpoint=server.http_url)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert server.stop() == 0
    assert server.query("SELECT count(*) FROM spans")[0][0] == 3
    assert sorted(p.name for p in (server.data_dir / "wal").iterdir()) == []
