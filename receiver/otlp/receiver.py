"""The ``otlp`` receiver component: OTLP/gRPC and OTLP/HTTP, traces and logs, sharing one export
handler.

receivers:
  otlp:
    max_future_skew: 1h               # spans starting further ahead of this server's clock are
                                      # rejected (partial success); null = no bound. Spans older
                                      # than storage.compaction.retention are rejected too.
    protocols:
      grpc:                           # present (even empty) = enabled
        endpoint: 127.0.0.1:4317
        max_recv_msg_size_mib: 16
        max_connections: 1000         # more are closed as soon as they are accepted
        max_concurrent_streams: 100   # calls in flight per connection
        max_concurrent_rpcs: 16       # calls in flight on the whole server, each holding its
                                      # message: past it UNAVAILABLE + RetryInfo
        handshake_timeout: 10s        # TLS and HTTP/2 handshake
        keepalive:                    # the Collector's configgrpc keepalive
          server_parameters:
            max_connection_idle: 60s  # no call in flight this long: GOAWAY (null = never)
            max_connection_age: null  # GOAWAY after this long, busy or not (null = never)
            max_connection_age_grace: null
            time: 2h                  # ping a silent client after this long
            timeout: 20s              # and close if the ping is not answered in this time
          enforcement_policy:
            min_time: 5m              # clients pinging more often are disconnected
            permit_without_stream: false
      http:
        endpoint: 127.0.0.1:4318
        max_request_body_size_mib: 16 # after decompression
        max_connections: 1000         # past it, the longest-idle connection is closed
        read_header_timeout: 10s      # request line and headers
        read_timeout: 30s             # the whole request, body included (else 408)
        idle_timeout: 60s             # a kept-alive connection between requests
        traces_url_path: /v1/traces
        logs_url_path: /v1/logs       # log records (and agent events) go through the same checks,
                                      # log and limits as spans
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BeforeValidator

from core.component import ReceiverCounters, ReceiverSettings
from core.configmodel import STRICT, parse_endpoint
from core.httpserver import AsgiServer, HttpServerLimits
from core.units import Duration
from receiver.otlp.auth import AuthConfig, TlsConfig, TokenAuthenticator
from receiver.otlp.grpc_transport import GrpcServerLimits, GrpcTransport
from receiver.otlp.handler import ExportHandler, TenantKeys, TimeWindow
from receiver.otlp.http_transport import create_app

TYPE = "otlp"
MIB = 1024 * 1024


def _present_means_enabled(value: Any) -> Any:
    # In the Collector's schema `grpc:` with no value enables the protocol with its defaults.
    return {} if value is None else value


@dataclass(frozen=True)
class GrpcConfig(GrpcServerLimits):
    """Also the limits and keepalive keys of ``GrpcServerLimits``."""

    __pydantic_config__ = STRICT
    endpoint: str = "127.0.0.1:4317"
    max_recv_msg_size_mib: float = 16.0
    tls: TlsConfig | None = None


@dataclass(frozen=True)
class HttpConfig(HttpServerLimits):
    """Also the connection limit and timeouts of ``HttpServerLimits``."""

    __pydantic_config__ = STRICT
    endpoint: str = "127.0.0.1:4318"
    max_request_body_size_mib: float = 16.0
    traces_url_path: str = "/v1/traces"
    logs_url_path: str = "/v1/logs"
    tls: TlsConfig | None = None


@dataclass(frozen=True)
class Protocols:
    __pydantic_config__ = STRICT
    grpc: Annotated[GrpcConfig | None, BeforeValidator(_present_means_enabled)] = None
    http: Annotated[HttpConfig | None, BeforeValidator(_present_means_enabled)] = None


@dataclass(frozen=True)
class Config:
    __pydantic_config__ = STRICT
    protocols: Protocols = field(default_factory=lambda: Protocols(GrpcConfig(), HttpConfig()))
    auth: AuthConfig | None = None
    """Bearer-token authentication; without it any client may write (to its resource's tenant)."""
    max_future_skew: Duration | None = 3600.0
    """Spans starting more than this after the server's clock are rejected (partial success):
    each far date would open a partition of its own. ``null``: no bound. (Spans older than
    ``storage.compaction.retention`` are rejected too, when it is set.)"""

    def validate(self) -> list[str]:
        problems = [f"auth.{p}" for p in self.auth.validate()] if self.auth else []
        for name, proto in (("grpc", self.protocols.grpc), ("http", self.protocols.http)):
            if proto is not None and proto.tls is not None:
                problems += [f"protocols.{name}.tls.{p}" for p in proto.tls.validate()]
        grpc, http = self.protocols.grpc, self.protocols.http
        if grpc is None and http is None:
            problems.append("protocols: enable at least one of grpc, http")
        if grpc is not None:
            problems += _check_endpoint("protocols.grpc.endpoint", grpc.endpoint)
            if grpc.max_recv_msg_size_mib <= 0:
                problems.append("protocols.grpc.max_recv_msg_size_mib: must be positive")
            problems += [f"protocols.grpc.{p}" for p in grpc.validate()]
        if http is not None:
            problems += _check_endpoint("protocols.http.endpoint", http.endpoint)
            if http.max_request_body_size_mib <= 0:
                problems.append("protocols.http.max_request_body_size_mib: must be positive")
            for key, path in (
                ("traces_url_path", http.traces_url_path),
                ("logs_url_path", http.logs_url_path),
            ):
                if not path.startswith("/"):
                    problems.append(f"protocols.http.{key}: must start with '/'")
            if http.traces_url_path == http.logs_url_path:
                problems.append("protocols.http.logs_url_path: must differ from traces_url_path")
            problems += [f"protocols.http.{p}" for p in http.validate()]
        return problems


def _check_endpoint(key: str, endpoint: str) -> list[str]:
    try:
        parse_endpoint(endpoint)
    except ValueError as exc:
        return [f"{key}: {exc}"]
    return []


class OtlpReceiver:
    def __init__(self, config: Config, settings: ReceiverSettings) -> None:
        self.config = config
        self.handler = ExportHandler(
            settings.sink,
            settings.id,
            settings.stored,
            TenantKeys(settings.tenant_attributes),
            settings.budget,
            TimeWindow(settings.retention, config.max_future_skew),
        )
        self.auth = TokenAuthenticator(config.auth) if config.auth else None
        self.grpc: GrpcTransport | None = None
        self.http: AsgiServer | None = None

    async def start(self) -> None:
        grpc, http = self.config.protocols.grpc, self.config.protocols.http
        if http is not None:
            host, port = parse_endpoint(http.endpoint)
            max_body = int(http.max_request_body_size_mib * MIB)
            app = create_app(self.handler, max_body, http.traces_url_path, self.auth, http.logs_url_path)
            what = "receivers.otlp.protocols.http.endpoint"
            self.http = AsgiServer(app, host, port, what, http.tls, limits=http)
            await self.http.start()
        if grpc is not None:
            host, port = parse_endpoint(grpc.endpoint)
            max_recv = int(grpc.max_recv_msg_size_mib * MIB)
            self.grpc = GrpcTransport(self.handler, host, port, max_recv, self.auth, grpc.tls, limits=grpc)
            await self.grpc.start()

    async def shutdown(self, grace: float = 5.0) -> None:
        if self.grpc is not None:
            await self.grpc.stop(grace)
        if self.http is not None:
            await self.http.stop()

    def endpoints(self) -> dict[str, int]:
        ports = {"grpc": self.grpc, "http": self.http}
        return {name: server.port for name, server in ports.items() if server is not None}

    def counters(self) -> ReceiverCounters:
        return self.handler.counters()


def create(config: Config, settings: ReceiverSettings) -> OtlpReceiver:
    return OtlpReceiver(config, settings)
