"""gRPC checks the ingest token on the call's metadata, before the message is read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.helpers.auth import ACME, AUTH, GLOBEX, proto_body
from tests.helpers.server import ServerProcess, scrape

pytestmark = pytest.mark.process  # a real server

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
MIB = 1024 * 1024
UNAUTHENTICATED = (
    "agentwatch_receiver_refused_requests_total",
    (("reason", "unauthenticated"), ("receiver", "otlp")),
)


@pytest.fixture
def authed(tmp_path: Path) -> Iterator[ServerProcess]:
    """Ingest tokens, and gRPC messages limited to 1 MiB."""
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f"- token: {GLOBEX}\n  tenant: globex\n")
    server = ServerProcess(
        tmp_path,
        otlp_extra=AUTH.replace("TOKENS_FILE", str(tokens)),
        grpc_extra="        max_recv_msg_size_mib: 1\n",
    ).start()
    yield server
    server.kill()


def _code(export: grpc.UnaryUnaryMultiCallable, body: bytes, token: str | None) -> grpc.StatusCode:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with pytest.raises(grpc.RpcError) as info:
        export(body, metadata=metadata, timeout=30)
    code: grpc.StatusCode = info.value.code()
    return code


def test_a_bad_token_is_refused_before_the_message_is_read(authed: ServerProcess) -> None:
    channel = grpc.insecure_channel(
        f"127.0.0.1:{authed.grpc_port}", options=[("grpc.max_send_message_length", 64 * MIB)]
    )
    export = channel.unary_unary(EXPORT)
    huge = bytes(15 * MIB)
    # 15 MiB is over the 1 MiB limit: UNAUTHENTICATED (not RESOURCE_EXHAUSTED) shows it was never read.
    assert _code(export, huge, "wrong-token-0123456789") == grpc.StatusCode.UNAUTHENTICATED
    assert _code(export, huge, None) == grpc.StatusCode.UNAUTHENTICATED
    # An authenticated caller still meets the size limit.
    assert _code(export, huge, ACME) == grpc.StatusCode.RESOURCE_EXHAUSTED
    # And a good token stores its spans in its own tenant, whatever the resource claims.
    assert export(proto_body("globex"), metadata=(("authorization", f"Bearer {ACME}"),), timeout=30) == b""
    channel.close()
    assert scrape(authed)[UNAUTHENTICATED] == 2
    assert authed.wait_for_count("SELECT count(*) FROM spans", 1) == 1
    assert authed.query("SELECT tenant, service_name FROM spans") == [("acme", "json-svc")]
