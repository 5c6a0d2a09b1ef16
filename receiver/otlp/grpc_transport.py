"""OTLP/gRPC transport: ``TraceService/Export`` and ``LogsService/Export`` over the shared ExportHandler.

The method is registered with no deserializer so the handler receives the raw request bytes,
exactly as the HTTP transport does; gRPC itself inflates gzip-compressed messages.

With ingest tokens, ``TokenInterceptor`` checks the ``authorization`` metadata before the
message is read: a refused call never has its body received (not even checked against
``max_recv_msg_size_mib``). Connection limits and keepalive mirror the Collector's configgrpc
(``GrpcServerLimits``, defaults there).

``ConcurrencyLimit`` bounds the calls in flight on the whole server (``max_concurrent_rpcs``),
so the messages held in memory at once are at most that many times the largest message,
whatever the number of connections and streams. It is agentwatch's own, not grpc's
``maximum_concurrent_rpcs``: grpc refuses with ``RESOURCE_EXHAUSTED`` and no ``RetryInfo``,
which OTLP exporters following the specification treat as final (the data is dropped); this
one answers ``UNAVAILABLE`` with ``RetryInfo``, as the other backpressure does.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc import aio

from core.configmodel import STRICT
from core.errors import ConfigError, Overloaded, RequestError, Unauthenticated, Unavailable
from core.model import Signal
from core.units import Duration
from receiver.otlp.auth import TlsConfig, TokenAuthenticator
from receiver.otlp.handler import ExportHandler

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"


def retry_metadata(message: str, retry_after: float) -> tuple[tuple[str, bytes], ...]:
    """``grpc-status-details-bin`` carrying RetryInfo, which OTLP exporters honour."""
    delay = duration_pb2.Duration(seconds=int(retry_after), nanos=int(retry_after % 1 * 1e9))
    details = any_pb2.Any()
    details.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=message, details=[details])
    return (("grpc-status-details-bin", status.SerializeToString()),)


log = logging.getLogger("agentwatch.receiver.grpc")

STATUS_CODES: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}
"""``google.rpc.Code`` numbers (``RequestError.grpc_code``) → grpc's enum."""

_MAX_MS = 2**31 - 1
"""gRPC's integer channel arguments: longer durations mean "never"."""


@dataclass(frozen=True)
class KeepaliveServerParameters:
    """configgrpc ``keepalive.server_parameters``; ``null`` means never."""

    __pydantic_config__ = STRICT
    max_connection_idle: Duration | None = 60.0
    """A connection with no call in flight for this long is closed (GOAWAY)."""
    max_connection_age: Duration | None = None
    """A connection is closed (GOAWAY) after this long, whatever it does."""
    max_connection_age_grace: Duration | None = None
    """After max_connection_age, calls in flight get this long to finish."""
    time: Duration = 7200.0
    """Ping a client after this long without activity..."""
    timeout: Duration = 20.0
    """...and close the connection if the ping is not answered within this time."""


@dataclass(frozen=True)
class KeepaliveEnforcementPolicy:
    """configgrpc ``keepalive.enforcement_policy``: clients pinging more often are disconnected."""

    __pydantic_config__ = STRICT
    min_time: Duration = 300.0
    """Least time between a client's keepalive pings."""
    permit_without_stream: bool = False
    """Whether a client may ping while it has no call in flight."""


@dataclass(frozen=True)
class KeepaliveConfig:
    __pydantic_config__ = STRICT
    server_parameters: KeepaliveServerParameters = field(default_factory=KeepaliveServerParameters)
    enforcement_policy: KeepaliveEnforcementPolicy = field(default_factory=KeepaliveEnforcementPolicy)


@dataclass(frozen=True)
class GrpcServerLimits:
    """Connection limits of the gRPC server (configgrpc names where the Collector has them)."""

    __pydantic_config__ = STRICT
    max_connections: int = 1000
    """Open connections at most; a connection past it is closed as soon as it is accepted."""
    max_concurrent_streams: int = 100
    """Calls in flight per connection."""
    max_concurrent_rpcs: int = 16
    """Calls in flight on the whole server. Each holds its message (up to
    ``max_recv_msg_size_mib``) in memory until it is answered, so this times the largest message
    bounds what gRPC holds. A call past it is refused before its message is read, ``UNAVAILABLE``
    with ``RetryInfo``, so OTLP exporters retry it."""
    handshake_timeout: Duration = 10.0
    """A connection must complete its TLS and HTTP/2 handshake within this time."""
    keepalive: KeepaliveConfig = field(default_factory=KeepaliveConfig)

    def validate(self) -> list[str]:
        problems = [
            f"{key}: must be at least 1"
            for key in ("max_connections", "max_concurrent_streams", "max_concurrent_rpcs")
            if getattr(self, key) < 1
        ]
        params = self.keepalive.server_parameters
        durations = {
            "handshake_timeout": self.handshake_timeout,
            "keepalive.server_parameters.max_connection_idle": params.max_connection_idle,
            "keepalive.server_parameters.max_connection_age": params.max_connection_age,
            "keepalive.server_parameters.max_connection_age_grace": params.max_connection_age_grace,
            "keepalive.server_parameters.time": params.time,
            "keepalive.server_parameters.timeout": params.timeout,
        }
        problems += [f"{key}: must be positive" for key, value in durations.items() if value == 0]
        return problems


def _ms(seconds: float) -> int:
    return min(_MAX_MS, max(1, round(seconds * 1000)))


def server_options(limits: GrpcServerLimits, max_recv_msg_size: int) -> list[tuple[str, int]]:
    """The grpc core channel arguments for ``limits``."""
    params, policy = limits.keepalive.server_parameters, limits.keepalive.enforcement_policy
    options = [
        ("grpc.max_receive_message_length", max_recv_msg_size),
        ("grpc.so_reuseport", 0),
        ("grpc.max_allowed_incoming_connections", limits.max_connections),
        ("grpc.max_concurrent_streams", limits.max_concurrent_streams),
        ("grpc.server_handshake_timeout_ms", _ms(limits.handshake_timeout)),
        ("grpc.keepalive_time_ms", _ms(params.time)),
        ("grpc.keepalive_timeout_ms", _ms(params.timeout)),
        ("grpc.http2.min_ping_interval_without_data_ms", _ms(policy.min_time)),
        ("grpc.keepalive_permit_without_calls", int(policy.permit_without_stream)),
    ]
    optional = (
        ("grpc.max_connection_idle_ms", params.max_connection_idle),
        ("grpc.max_connection_age_ms", params.max_connection_age),
        ("grpc.max_connection_age_grace_ms", params.max_connection_age_grace),
    )
    options += [(name, _ms(value)) for name, value in optional if value is not None]
    return options


_TENANT: contextvars.ContextVar[str] = contextvars.ContextVar("agentwatch_grpc_tenant")
"""The authenticated tenant of the call being handled, set by ``TokenInterceptor``."""

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


def _authorization(details: grpc.HandlerCallDetails) -> str | None:
    for key, value in details.invocation_metadata or ():
        if key == "authorization":
            return str(value)
    return None


def _refusal(exc: RequestError) -> grpc.RpcMethodHandler:
    """A handler that answers ``exc`` without reading the request message (a stream whose
    messages are never asked for is never received)."""

    async def refuse(requests: AsyncIterator[bytes], context: aio.ServicerContext[bytes, bytes]) -> bytes:
        await GrpcTransport.abort(exc, context)
        raise AssertionError("abort() returns only by raising")

    return grpc.stream_unary_rpc_method_handler(refuse)


class TokenInterceptor(aio.ServerInterceptor):  # type: ignore[misc]
    """Check the bearer token on the call's metadata, before the message is read."""

    def __init__(self, auth: TokenAuthenticator, on_refused: Callable[[RequestError], None]) -> None:
        self._auth = auth
        self._on_refused = on_refused

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        try:
            tenant = self._auth.tenant_for(_authorization(handler_call_details))
        except Unauthenticated as exc:
            self._on_refused(exc)
            return _refusal(exc)
        _TENANT.set(tenant)  # the handler runs in this call's task, so it sees it
        return await continuation(handler_call_details)


class ConcurrencyLimit(aio.ServerInterceptor):  # type: ignore[misc]
    """At most ``limit`` calls in flight on the server; one past it is refused retryably
    (``Overloaded``: ``UNAVAILABLE`` with ``RetryInfo``) before its message is read.

    Interceptors run in the call's own task, before its message is received. A call admitted
    here gives its slot back when its handler returns, before the answer is sent (so a client
    sending one call at a time never meets its own previous call), or else when the call's task
    ends, however it ends (a client's deadline or a dropped connection before or while the
    message arrives). Used from the server's event loop only.
    """

    def __init__(self, limit: int, on_refused: Callable[[RequestError], None]) -> None:
        self.limit = limit
        self.active = 0
        self._on_refused = on_refused

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        if self.active >= self.limit:
            exc = Overloaded(
                f"agentwatch has {self.active} gRPC calls in flight "
                f"(receivers.otlp.protocols.grpc.max_concurrent_rpcs: {self.limit}); retry shortly"
            )
            self._on_refused(exc)
            return _refusal(exc)
        self.active += 1
        held = [True]

        def release(*_: object) -> None:
            if held[0]:
                held[0] = False
                self.active -= 1

        task = asyncio.current_task()
        if task is not None:  # grpc runs every call in a task of its own
            task.add_done_callback(release)
        try:
            handler = await continuation(handler_call_details)
        except BaseException:
            release()
            raise
        if handler is None:  # no such method: answered UNIMPLEMENTED, no message read
            release()
            return None
        if handler.unary_unary is None:  # (none here) held until the call's task ends
            return handler
        behaviour = handler.unary_unary

        async def answered_then_released(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            try:
                return await behaviour(request, context)
            finally:
                release()

        return grpc.unary_unary_rpc_method_handler(
            answered_then_released, handler.request_deserializer, handler.response_serializer
        )


class GrpcTransport:
    def __init__(
        self,
        handler: ExportHandler,
        host: str,
        port: int,
        max_recv_msg_size: int,
        auth: TokenAuthenticator | None = None,
        tls: TlsConfig | None = None,
        limits: GrpcServerLimits | None = None,
    ) -> None:
        self._handler = handler
        self._auth = auth
        self._tls = tls
        self._limits = limits or GrpcServerLimits()
        self._address = f"{host}:{port}"
        self._max = max_recv_msg_size
        self._server: aio.Server | None = None
        self.limit = ConcurrencyLimit(self._limits.max_concurrent_rpcs, handler.note_refusal)
        self.port = port

    async def _export(self, request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
        return await self._export_signal(request, context, "traces")

    async def _export_logs(self, request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
        return await self._export_signal(request, context, "logs")

    async def _export_signal(
        self, request: bytes, context: aio.ServicerContext[bytes, bytes], signal: Signal
    ) -> bytes:
        try:
            tenant = self._tenant(context)
            result = await self._handler.export(request, "protobuf", tenant, signal)
        except RequestError as exc:
            self._handler.note_refusal(exc)
            await self.abort(exc, context)
        response: bytes = result.response().SerializeToString()
        return response

    def _tenant(self, context: aio.ServicerContext[bytes, bytes]) -> str | None:
        if self._auth is None:
            return None
        tenant = _TENANT.get(None)
        if tenant is not None:
            return tenant
        # Not through the interceptor (it always runs first): check here, failing closed.
        metadata = dict(context.invocation_metadata() or ())
        return self._auth.tenant_for(str(metadata.get("authorization", "")) or None)

    @staticmethod
    async def abort(exc: RequestError, context: aio.ServicerContext[Any, bytes]) -> None:
        """Answer ``exc`` with its status code; retryable refusals carry ``RetryInfo``."""
        details = retry_metadata(str(exc), exc.retry_after) if isinstance(exc, Unavailable) else ()
        await context.abort(STATUS_CODES[exc.grpc_code], str(exc), details)

    async def start(self) -> None:
        interceptors: list[aio.ServerInterceptor] = [self.limit]
        if self._auth is not None:  # first: a call refused for its token takes no slot
            interceptors.insert(0, TokenInterceptor(self._auth, self._handler.note_refusal))
        server = aio.server(interceptors=interceptors, options=server_options(self._limits, self._max))
        traces = grpc.method_handlers_generic_handler(
            SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(self._export)}
        )
        logs = grpc.method_handlers_generic_handler(
            LOGS_SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(self._export_logs)}
        )
        server.add_generic_rpc_handlers((traces, logs))
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
