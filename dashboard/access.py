"""Who may read what: read tokens for the dashboard and the JSON API.

Without ingest tokens (``receivers.otlp.auth``) the API is open, as the receivers are, and binds
where ``api.endpoint`` says (loopback by default). With them, every page and endpoint needs a
read token from ``api.auth.tokens``: a tenant's token reads that tenant only (another tenant's
agent or trace answers 404, as one that does not exist), an ``admin`` token reads every tenant.
Ingest tokens configured and no read token: nothing can be read (fail closed), and the page
says how to configure one. Tokens come as ``Authorization: Bearer`` or the login page's cookie.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from core.configmodel import STRICT

COOKIE = "agentwatch_token"
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class ReadToken:
    __pydantic_config__ = STRICT
    token: str
    tenant: str | None = None
    """The tenant it reads; leave it out with ``admin: true``."""
    admin: bool = False
    """Reads every tenant."""

    def validate(self) -> list[str]:
        problems = []
        if len(self.token) < MIN_TOKEN_LENGTH:
            problems.append(f"token: must be at least {MIN_TOKEN_LENGTH} characters")
        if self.admin == (self.tenant is not None):
            problems.append("give either tenant (a tenant's read token) or admin: true, not both")
        return problems


@dataclass(frozen=True)
class ApiAuthConfig:
    __pydantic_config__ = STRICT
    tokens: list[ReadToken] = field(default_factory=list)

    def validate(self) -> list[str]:
        return [f"tokens.{i}.{p}" for i, t in enumerate(self.tokens) for p in t.validate()]


@dataclass(frozen=True)
class Viewer:
    """Who a request is: ``tenants`` it may read (None: every tenant)."""

    tenants: frozenset[str] | None


ANYONE = Viewer(None)


class Access:
    """Answers "who is this token" (``None``: nobody, the request is refused)."""

    def __init__(self, tokens: list[ReadToken], required: bool) -> None:
        self.required = required or bool(tokens)
        self.open_but_locked = required and not tokens
        self._tokens = [(_digest(t.token), None if t.admin else t.tenant) for t in tokens]

    def viewer(self, token: str | None) -> Viewer | None:
        if not self.required:
            return ANYONE
        if not token or self.open_but_locked:
            return None
        offered = _digest(token)
        for digest, tenant in self._tokens:
            if hmac.compare_digest(digest, offered):
                return ANYONE if tenant is None else Viewer(frozenset({tenant}))
        return None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
