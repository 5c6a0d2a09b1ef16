"""Ingest tokens map to tenants on both transports; TLS on both servers."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.rpc import code_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.helpers.auth import ACME, AUTH, GLOBEX, proto_body
from tests.helpers.otlp import make_trace
from tests.helpers.server import ServerProcess


@pytest.fixture
def authed(tmp_path: Path) -> ServerProcess:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f"- token: {GLOBEX}\n  tenant: globex\n")
    server = ServerProcess(tmp_path, otlp_extra=AUTH.replace("TOKENS_FILE", str(tokens))).start()
    yield server  # type: ignore[misc]
    server.kill()


@pytest.mark.process
def test_http_missing_and_wrong_tokens_write_nothing(authed: ServerProcess) -> None:
    headers = {"content-type": "application/x-protobuf"}
    missing = httpx.post(authed.http_url, content=proto_body("acme"), headers=headers)
    assert (missing.status_code, missing.headers["www-authenticate"]) == (401, 'Bearer realm="agentwatch"')
    status = status_pb2.Status.FromString(missing.content)
    assert (status.code, status.message) == (
        code_pb2.UNAUTHENTICATED,
        "missing ingest token: send 'Authorization: Bearer <token>'",
    )
    wrong = httpx.post(
        authed.http_url, content=proto_body("acme"), headers={**headers, "authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    basic = httpx.post(
        authed.http_url, content=proto_body("acme"), headers={**headers, "authorization": f"Basic {ACME}"}
    )
    assert basic.status_code == 401
    assert authed.stop() == 0
    assert authed.query("SELECT count(*) FROM spans") == [(0,)]


@pytest.mark.process
def test_grpc_missing_and_wrong_tokens_are_unauthenticated(authed: ServerProcess) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{authed.grpc_port}")
    export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
    for metadata in ((), (("authorization", "Bearer wrong-token-0123456789"),)):
        with pytest.raises(grpc.RpcError) as info:
            export(proto_body("acme"), metadata=metadata, timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    channel.close()
    assert authed.stop() == 0
    assert authed.query("SELECT count(*) FROM spans") == [(0,)]


@pytest.mark.process
def test_a_token_writes_only_its_own_tenant_whatever_the_resource_says(authed: ServerProcess) -> None:
    # The globex token sends spans whose resource claims tenant "acme": they land in globex.
    ok = httpx.post(
        authed.http_url,
        content=proto_body("acme"),
        headers={"content-type": "application/x-protobuf", "authorization": f"Bearer {GLOBEX}"},
    )
    assert ok.status_code == 200
    spans = make_trace()
    grpc_exporter = GrpcExporter(
        endpoint=authed.grpc_endpoint, insecure=True, headers={"authorization": f"Bearer {ACME}"}
    )
    assert grpc_exporter.export(spans) == SpanExportResult.SUCCESS
    http_exporter = HttpExporter(endpoint=authed.http_url, headers={"Authorization": f"Bearer {GLOBEX}"})
    assert http_exporter.export(make_trace("other-svc")) == SpanExportResult.SUCCESS
    assert authed.wait_for_count("SELECT count(*) FROM spans", 7) == 7
    assert authed.query("SELECT tenant, service_name, count(*) FROM spans GROUP BY ALL ORDER BY ALL") == [
        ("acme", "expense-bot-svc", 3),
        ("globex", "json-svc", 1),
        ("globex", "other-svc", 3),
    ]
    tenants = sorted(p.name for p in (authed.data_dir / "spans").iterdir())
    assert tenants == ["tenant=acme", "tenant=globex"]


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        # Its own issuer: clients that trust this file as a CA need it marked as one.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.mark.process
def test_tls_on_both_transports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override the exporter's certificate_file.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    cert, key = self_signed(tmp_path)
    tls = f"        tls:\n          cert_file: {cert}\n          key_file: {key}\n"
    server = ServerProcess(tmp_path, grpc_extra=tls, http_extra=tls).start()
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        grpc_exporter = GrpcExporter(
            endpoint=f"https://127.0.0.1:{server.grpc_port}", credentials=credentials
        )
        assert grpc_exporter.export(make_trace()) == SpanExportResult.SUCCESS
        https_url = f"https://127.0.0.1:{server.http_port}/v1/traces"
        http_exporter = HttpExporter(endpoint=https_url, certificate_file=str(cert))
        assert http_exporter.export(make_trace()) == SpanExportResult.SUCCESS
        with pytest.raises(httpx.TransportError):
            httpx.post(server.http_url, content=b"", headers={"content-type": "application/x-protobuf"})
        assert server.wait_for_count("SELECT count(*) FROM spans", 6) == 6
    finally:
        server.kill()


def test_bad_auth_and_tls_config_name_the_key(tmp_path: Path) -> None:
    from agentwatch.config import parse_config
    from core.errors import ConfigError

    text = """receivers:
  otlp:
    protocols:
      grpc:
        tls:
          cert_file: /nope/cert.pem
          key_file: /nope/key.pem
    auth:
      tokens:
        - token: short
          tenant: acme
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "cfg.yaml", {})
    assert info.value.problems == [
        "cfg.yaml:6: receivers.otlp.protocols.grpc.tls.cert_file: file /nope/cert.pem does not exist",
        "cfg.yaml:7: receivers.otlp.protocols.grpc.tls.key_file: file /nope/key.pem does not exist",
        "cfg.yaml:10: receivers.otlp.auth.tokens.0.token: must be at least 16 characters",
    ]
