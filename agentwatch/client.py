"""A tiny client for agents that read their own health and heal themselves.

    from agentwatch.client import Health

    health = Health("http://agentwatch:8080", agent="expense-bot", token="...")
    advice = health.advice()                 # cached for ``ttl`` seconds; never raises
    if "search_expenses" in advice.avoid_tools:
        ...                                  # fall back, and say so on the span:
    health.record_fallback(span, reason="tool failing", from_="search_expenses", to="ask_finance")

Fail-open: when agentwatch cannot be reached, answers slowly (``timeout`` for the whole answer:
one that trickles is cut at the first chunk past it) or answers nonsense,
``advice()`` returns the last advice while it is younger than ``stale_after``, else no advice
(``NO_ADVICE``): agentwatch never stands in the agent's way. Asking again after a failure waits
``ttl`` seconds, so an unreachable agentwatch costs one short timeout per ``ttl``.

Only ``httpx`` and the span names of ``core.selfhealing`` are imported: an agent pulls nothing
else of agentwatch into its process.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from core.selfhealing import ADVICE_ID_ATTRIBUTE, FALLBACK_EVENT, FALLBACK_FROM, FALLBACK_REASON, FALLBACK_TO

log = logging.getLogger("agentwatch.client")
MAX_BODY = 1 << 20
"""Bytes of a health answer at most (they are a few KiB)."""


class _Span(Protocol):
    """What the client needs of an OpenTelemetry span."""

    def set_attribute(self, key: str, value: Any) -> None: ...

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None: ...


@dataclass(frozen=True)
class Advice:
    """What agentwatch advises now (see ``health.advice``); ``NO_ADVICE`` when it cannot say."""

    id: str = ""
    avoid_tools: frozenset[str] = frozenset()
    fallback_model: str | None = None
    """The model to use instead of a rate-limited one (None: none advised, or none configured)."""
    rate_limited_model: str | None = None
    skip_optional_steps: bool = False
    add_disclaimer: bool = False
    human_review: bool = False
    over_budget: bool = False
    reasons: tuple[dict[str, Any], ...] = ()
    health: Mapping[str, Any] = field(default_factory=dict)
    """The whole health document it came with (empty for ``NO_ADVICE``)."""

    def avoid(self, tool: str) -> bool:
        return tool in self.avoid_tools


NO_ADVICE = Advice()


def advice_of(document: Mapping[str, Any]) -> Advice:
    """The advice of a health document (``GET /api/v1/agents/{agent}/health``)."""
    raw = document["advice"]
    fallback = raw.get("fallback_model") or {}
    return Advice(
        id=str(raw.get("id") or ""),
        avoid_tools=frozenset(str(t) for t in raw.get("avoid_tools") or ()),
        fallback_model=fallback.get("to"),
        rate_limited_model=fallback.get("from"),
        skip_optional_steps=bool(raw.get("skip_optional_steps")),
        add_disclaimer=bool(raw.get("add_disclaimer")),
        human_review=bool(raw.get("human_review")),
        over_budget=bool(raw.get("over_budget")),
        reasons=tuple(raw.get("reasons") or ()),
        health=document,
    )


class Health:
    def __init__(
        self,
        base_url: str,
        agent: str,
        *,
        token: str | None = None,
        tenant: str | None = None,
        window: str = "15m",
        ttl: float = 5.0,
        timeout: float = 0.5,
        stale_after: float = 60.0,
        client: httpx.Client | None = None,
    ) -> None:
        """``agent``: its id or its name; ``token``: an ingest or read token; ``tenant``: only
        for a read token that reads several tenants."""
        self.url = f"{base_url.rstrip('/')}/api/v1/agents/{quote(agent, safe='')}/health"
        self.params = {"window": window} | ({"tenant": tenant} if tenant else {})
        self.headers = {"authorization": f"Bearer {token}"} if token else {}
        self.ttl = ttl
        self.stale_after = stale_after
        self.timeout = timeout
        self._client = client or httpx.Client(timeout=timeout)
        self._lock = threading.Lock()
        self._advice = NO_ADVICE
        self._fetched_at = float("-inf")
        """When the cached advice was fetched (monotonic)."""
        self._tried_at = float("-inf")

    def advice(self) -> Advice:
        """The advice now: cached for ``ttl`` seconds; ``NO_ADVICE`` when agentwatch cannot say."""
        now = time.monotonic()
        with self._lock:
            if now - self._tried_at < self.ttl:
                return self._current(now)
            self._tried_at = now
        fetched = self._fetch()
        with self._lock:
            if fetched is not None:
                self._advice, self._fetched_at = fetched, time.monotonic()
            return self._current(time.monotonic())

    def _current(self, now: float) -> Advice:
        return self._advice if now - self._fetched_at <= self.stale_after else NO_ADVICE

    def _fetch(self) -> Advice | None:
        deadline = time.monotonic() + self.timeout
        try:
            with self._client.stream("GET", self.url, params=self.params, headers=self.headers) as response:
                response.raise_for_status()
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if time.monotonic() > deadline or len(body) > MAX_BODY:
                        raise TimeoutError("agentwatch answered too slowly or too much")
            return advice_of(json.loads(body))
        except Exception as exc:  # fail-open: nothing agentwatch does may raise in the agent's path
            log.debug("agentwatch health unavailable (%s: %s): no advice", type(exc).__name__, exc)
            return None

    def annotate(self, span: _Span, advice: Advice | None = None) -> None:
        """Put the id of the advice followed on ``span`` (nothing when there is no advice)."""
        followed = advice if advice is not None else self._advice
        if followed.id:
            span.set_attribute(ADVICE_ID_ATTRIBUTE, followed.id)

    def record_fallback(
        self, span: _Span, reason: str, from_: str | None = None, to: str | None = None,
        advice: Advice | None = None,
    ) -> None:  # fmt: skip
        """Record on ``span`` that the agent fell back (the ``agent.fallback.triggered`` event
        agentwatch's fallback report reads), with the id of the advice it followed."""
        attributes: dict[str, Any] = {FALLBACK_REASON: reason}
        if from_ is not None:
            attributes[FALLBACK_FROM] = from_
        if to is not None:
            attributes[FALLBACK_TO] = to
        followed = advice if advice is not None else self._advice
        if followed.id:
            attributes[ADVICE_ID_ATTRIBUTE] = followed.id
        span.add_event(FALLBACK_EVENT, attributes)
        self.annotate(span, followed)

    def close(self) -> None:
        self._client.close()
