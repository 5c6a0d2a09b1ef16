"""Who an API request is by its ingest token (``receivers.<otlp>.auth``): the tenant it writes
feedback under and whose agents' health it reads. One answer for every endpoint of the API
port that takes ingest tokens (``feedback_api``, ``health_api``) and for whether the dashboard
must ask for read tokens."""

from __future__ import annotations

from agentwatch.config import AgentwatchConfig
from core.errors import Unauthenticated
from receiver.otlp.auth import TokenAuthenticator


class IngestTokens:
    def __init__(self, config: AgentwatchConfig) -> None:
        self._authenticators = [
            TokenAuthenticator(r.config.auth)
            for r in config.receivers.values()
            if getattr(r.config, "auth", None) is not None
        ]

    @property
    def configured(self) -> bool:
        """Whether any receiver takes ingest tokens (without, the API binds to loopback open)."""
        return bool(self._authenticators)

    def tenant_of(self, *authorizations: str) -> str | None:
        """The tenant of the first ``Authorization`` value (``Bearer <token>``) that is a valid
        ingest token of any receiver; None when none is."""
        for authenticator in self._authenticators:
            for authorization in authorizations:
                try:
                    return authenticator.tenant_for(authorization)
                except Unauthenticated:
                    continue
        return None
