"""Where ``agentwatch demo --config`` sends: the config's OTLP endpoint and API, and the ingest
token of each tenant the demo writes when the receiver wants one."""

from __future__ import annotations

from agentwatch.config import AgentwatchConfig
from agentwatch.demo_scenarios import AGENTS
from receiver.otlp.auth import AuthConfig
from receiver.otlp.receiver import Config as OtlpConfig


class DemoTargetError(RuntimeError):
    """The config names no endpoint the demo can use, or no token for a tenant it writes."""


def demo_target(
    config: AgentwatchConfig, protocol: str, tenant: str | None
) -> tuple[str, dict[str, dict[str, str]]]:
    """(endpoint URL, tenant → headers) for the config's first OTLP receiver with ``protocol``."""
    for receiver_id, component in config.receivers.items():
        otlp = component.config
        if not isinstance(otlp, OtlpConfig):
            continue
        listener = otlp.protocols.grpc if protocol == "grpc" else otlp.protocols.http
        if listener is None:
            continue
        host, _, port = listener.endpoint.rpartition(":")
        if host in ("", "0.0.0.0", "::", "[::]"):  # a wildcard listens on loopback too
            host = "127.0.0.1"
        scheme = "https" if listener.tls is not None else "http"
        return f"{scheme}://{host}:{port}", _headers(otlp.auth, receiver_id, tenant)
    raise DemoTargetError(
        f"the config has no OTLP receiver with {protocol} enabled (receivers.otlp.protocols.{protocol})"
    )


def api_url(config: AgentwatchConfig) -> str:
    """The URL of the config's API (``api.endpoint``), where the demo posts its users' feedback."""
    host, _, port = config.api.endpoint.rpartition(":")
    if host in ("", "0.0.0.0", "::", "[::]"):  # a wildcard listens on loopback too
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def _headers(auth: AuthConfig | None, receiver_id: str, tenant: str | None) -> dict[str, dict[str, str]]:
    if auth is None:
        return {}
    tokens: dict[str, str] = {}
    for entry in auth.entries():
        tokens.setdefault(entry.tenant, entry.token)
    wanted = [tenant] if tenant is not None else sorted({agent.tenant for agent in AGENTS})
    missing = [t for t in wanted if t not in tokens]
    if missing:
        raise DemoTargetError(
            f"receivers.{receiver_id}.auth has no ingest token for tenant {', '.join(map(repr, missing))}: "
            "add one, or pass --tenant with a tenant that has one"
        )
    return {t: {"Authorization": f"Bearer {tokens[t]}"} for t in wanted}
