"""The ``otlp`` receiver component: OTLP/gRPC and OTLP/HTTP, sharing one export handler.

receivers:
  otlp:
    protocols:
      grpc:                           # present (even empty) = enabled
        endpoint: 127.0.0.1:4317
        max_recv_msg_size_mib: 16
      http:
        endpoint: 127.0.0.1:4318
        max_request_body_size_mib: 16 # after decompression
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BeforeValidator

from agentwatch.component import ReceiverSettings
from agentwatch.configmodel import STRICT, parse_endpoint
from agentwatch.httpserver import AsgiServer
from receiver.auth import AuthConfig, TlsConfig, TokenAuthenticator
from receiver.otlp_grpc import GrpcTransport
from receiver.otlp_handler import ExportHandler
from receiver.otlp_http import create_app

TYPE = "otlp"
MIB = 1024 * 1024


def _present_means_enabled(value: Any) -> Any:
    # In the Collector's schema `grpc:` with no value enables the protocol with its defaults.
    return {} if value is None else value


@dataclass(frozen=True)
class GrpcConfig:
    __pydantic_config__ = STRICT
    endpoint: str = "127.0.0.1:4317"
    max_recv_msg_size_mib: float = 16.0
    tls: TlsConfig | None = None


@dataclass(frozen=True)
class HttpConfig:
    __pydantic_config__ = STRICT
    endpoint: str = "127.0.0.1:4318"
    max_request_body_size_mib: float = 16.0
    traces_url_path: str = "/v1/traces"
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
        if http is not None:
            problems += _check_endpoint("protocols.http.endpoint", http.endpoint)
            if http.max_request_body_size_mib <= 0:
                problems.append("protocols.http.max_request_body_size_mib: must be positive")
            if not http.traces_url_path.startswith("/"):
                problems.append("protocols.http.traces_url_path: must start with '/'")
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
        self.handler = ExportHandler(settings.sink, settings.id, settings.stored)
        self.auth = TokenAuthenticator(config.auth) if config.auth else None
        self.grpc: GrpcTransport | None = None
        self.http: AsgiServer | None = None

    async def start(self) -> None:
        grpc, http = self.config.protocols.grpc, self.config.protocols.http
        if http is not None:
            host, port = parse_endpoint(http.endpoint)
            app = create_app(
                self.handler, int(http.max_request_body_size_mib * MIB), http.traces_url_path, self.auth
            )
            self.http = AsgiServer(app, host, port, "receivers.otlp.protocols.http.endpoint", http.tls)
            await self.http.start()
        if grpc is not None:
            host, port = parse_endpoint(grpc.endpoint)
            self.grpc = GrpcTransport(
                self.handler, host, port, int(grpc.max_recv_msg_size_mib * MIB), self.auth, grpc.tls
            )
            await self.grpc.start()

    async def shutdown(self, grace: float = 5.0) -> None:
        if self.grpc is not None:
            await self.grpc.stop(grace)
        if self.http is not None:
            await self.http.stop()


def create(config: Config, settings: ReceiverSettings) -> OtlpReceiver:
    return OtlpReceiver(config, settings)
