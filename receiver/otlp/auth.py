"""Ingest authentication: bearer tokens, each mapped to the tenant it may write.

    receivers:
      otlp:
        auth:
          tokens:
            - token: ${env:ACME_INGEST_TOKEN}
              tenant: acme
          tokens_file: /etc/agentwatch/tokens.yaml   # the same list, kept out of the config

A request without a valid ``Authorization: Bearer <token>`` is refused (401 /
UNAUTHENTICATED) before its body is read, and writes nothing. An authenticated request's spans
belong to the token's tenant, whatever their resource attributes claim.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from core.configmodel import STRICT
from core.errors import ConfigError, Unauthenticated


@dataclass(frozen=True)
class TokenConfig:
    __pydantic_config__ = STRICT
    token: str
    tenant: str


@dataclass(frozen=True)
class AuthConfig:
    __pydantic_config__ = STRICT
    tokens: list[TokenConfig] = field(default_factory=list)
    tokens_file: str | None = None
    """A YAML file holding a list of ``{token, tenant}``; read at start."""

    def validate(self) -> list[str]:
        problems = []
        for i, entry in enumerate(self.tokens):
            if len(entry.token) < 16:
                problems.append(f"tokens.{i}.token: must be at least 16 characters")
            if not entry.tenant:
                problems.append(f"tokens.{i}.tenant: must not be empty")
        if not self.tokens and not self.tokens_file:
            problems.append(
                "tokens: give tokens or tokens_file (or remove 'auth' to accept unauthenticated data)"
            )
        return problems

    def entries(self) -> list[TokenConfig]:
        """Every ``{token, tenant}``: the inline ones, then the tokens file's (read now)."""
        return list(self.tokens) + (_load_tokens_file(self.tokens_file) if self.tokens_file else [])


@dataclass(frozen=True)
class TlsConfig:
    __pydantic_config__ = STRICT
    cert_file: str
    key_file: str

    def validate(self) -> list[str]:
        return [
            f"{key}: file {path} does not exist"
            for key, path in (("cert_file", self.cert_file), ("key_file", self.key_file))
            if not Path(path).is_file()
        ]


def _digest(token: str) -> bytes:
    # Looking tokens up by digest keeps lookup time independent of how much of a guess matches.
    return hashlib.sha256(token.encode()).digest()


def _load_tokens_file(path: str) -> list[TokenConfig]:
    try:
        entries = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or []
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read tokens file: {exc}") from None
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: must be a list of {{token, tenant}}")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry.get("token") or not entry.get("tenant"):
            raise ConfigError(f"{path}: entry {i} must have 'token' and 'tenant'")
        out.append(TokenConfig(str(entry["token"]), str(entry["tenant"])))
    return out


class TokenAuthenticator:
    def __init__(self, config: AuthConfig) -> None:
        self._tenants = {_digest(e.token): e.tenant for e in config.entries()}
        self.refused = 0

    def tenant_for(self, authorization: str | None) -> str:
        """The tenant of a valid ``Bearer`` credential; raises Unauthenticated otherwise."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        tenant = self._tenants.get(_digest(token.strip())) if scheme.lower() == "bearer" else None
        if tenant is None:
            self.refused += 1
            reason = "missing" if not authorization else "invalid"
            raise Unauthenticated(f"{reason} ingest token: send 'Authorization: Bearer <token>'")
        return tenant
