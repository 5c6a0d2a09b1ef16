"""OTLP/gRPC transport: ``TraceService/Export`` over the shared ExportHandler.

The method is registered with no deserializer so the handler receives the raw request bytes,
exactly as the HTTP transport does; gRPC itself inflates gzip-compressed messages.
"""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc import aio

from agentwatch.errors import ConfigError, RequestError, Unauthenticated, Unavailable
from receiver.auth import TlsConfig, TokenAuthenticator
from receiver.otlp_handler import ExportHandler

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


def retry_metadata(message: str, retry_after: float) -> tuple[tuple[str, bytes], ...]:
    """``grpc-status-details-bin`` carrying RetryInfo, which OTLP exporters honour."""
    delay = duration_pb2.Duration(seconds=int(retry_after), nanos=int(retry_after % 1 * 1e9))
    details = any_pb2.Any()
    details.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=message, details=[details])
    return (("grpc-status-details-bin", status.SerializeToString()),)


log = logging.getLogger("agentwatch.receiver.grpc")


class GrpcTransport:
    def __init__(
        self,
        handler: ExportHandler,
        host: str,
        port: int,
        max_recv_msg_size: int,
        auth: TokenAuthenticator | None = None,
        tls: TlsConfig | None = None,
    ) -> None:
        self._handler = handler
        self._auth = auth
        self._tls = tls
        self._address = f"{host}:{port}"
        self._max = max_recv_msg_size
        self._server: aio.Server | None = None
        self.port = port

    async def _export(self, request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
        try:
            tenant = None
            if self._auth is not None:
                metadata = dict(context.invocation_metadata() or ())
                tenant = self._auth.tenant_for(str(metadata.get("authorization", "")) or None)
            result = await self._handler.export(request, "protobuf", tenant)
        except RequestError as exc:
            self._handler.note_refusal(exc)
            await self._abort(exc, context)
        response: bytes = result.response().SerializeToString()
        return response

    @staticmethod
    async def _abort(exc: RequestError, context: aio.ServicerContext[bytes, bytes]) -> None:
        if isinstance(exc, Unauthenticated):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        if isinstance(exc, Unavailable):
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, str(exc), retry_metadata(str(exc), exc.retry_after)
            )
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    async def start(self) -> None:
        server = aio.server(
            options=[
                ("grpc.max_receive_message_length", self._max),
                ("grpc.so_reuseport", 0),
            ]
        )
        handler = grpc.method_handlers_generic_handler(
            SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(self._export)}
        )
        server.add_generic_rpc_handlers((handler,))
        try:
            if self._tls is not None:
                key = Path(self._tls.key_file).read_bytes()
                cert = Path(self._tls.cert_file).read_bytes()
                self.port = server.add_secure_port(self._address, grpc.ssl_server_credentials([(key, cert)]))
            else:
                self.port = server.add_insecure_port(self._address)
        except (RuntimeError, OSError) as exc:
            raise ConfigError(
                f"receivers.otlp.protocols.grpc.endpoint: cannot listen on {self._address}: {exc}"
            ) from None
        await server.start()
        self._server = server
        log.info("OTLP/gRPC listening on %s", self._address)

    async def stop(self, grace: float) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
