"""OTLP/gRPC transport: ``TraceService/Export`` over the shared ExportHandler.

The method is registered with no deserializer so the handler receives the raw request bytes,
exactly as the HTTP transport does; gRPC itself inflates gzip-compressed messages.
"""

from __future__ import annotations

import logging

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc import aio

from agentwatch.errors import RequestError, Unavailable
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
    def __init__(self, handler: ExportHandler, host: str, port: int, max_recv_msg_size: int) -> None:
        self._handler = handler
        self._address = f"{host}:{port}"
        self._max = max_recv_msg_size
        self._server: aio.Server | None = None
        self.port = port

    async def _export(self, request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
        try:
            result = await self._handler.export(request, "protobuf")
        except Unavailable as exc:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, str(exc), retry_metadata(str(exc), exc.retry_after)
            )
        except RequestError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        response: bytes = result.response().SerializeToString()
        return response

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
        self.port = server.add_insecure_port(self._address)
        await server.start()
        self._server = server
        log.info("OTLP/gRPC listening on %s", self._address)

    async def stop(self, grace: float) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
