"""The time window and tenant a dashboard request asks for (``?since=24h&tenant=acme``, or a
custom ``?from=...&to=...``): one parser for every page and endpoint, errors naming the key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from core.errors import ConfigError, RequestError
from core.units import parse_window

RANGES = ("15m", "1h", "24h", "7d", "30d")
DEFAULT_RANGE = "24h"
MAX_WINDOW = timedelta(days=366)


class BadRequest(RequestError, ValueError):
    """A query parameter the dashboard cannot use; the message names it (answered with
    ``RequestError``'s status, 400)."""


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime
    tenant: str | None
    label: str
    """``24h`` for a preset, ``custom`` for ``from``/``to``."""

    @property
    def length(self) -> timedelta:
        return self.until - self.since

    def previous(self) -> Window:
        """The window of the same length just before this one."""
        return Window(self.since - self.length, self.since, self.tenant, self.label)

    def tenant_clause(self) -> tuple[str, dict[str, Any]]:
        """`` AND tenant = $tenant`` and its parameter, or nothing for every tenant."""
        if self.tenant is None:
            return "", {}
        return " AND tenant = $tenant", {"tenant": self.tenant}

    def as_dict(self) -> dict[str, object]:
        return {
            "since": _iso(self.since),
            "until": _iso(self.until),
            "tenant": self.tenant,
            "range": self.label,
        }


def window_of(params: Mapping[str, str], now: datetime | None = None) -> Window:
    """The window of a request's query parameters; ``BadRequest`` naming the parameter."""
    tenant = params.get("tenant") or None
    start, end = params.get("from"), params.get("to")
    if start or end:
        since = _time(start, "from")
        until = _time(end, "to") if end else (now or datetime.now(UTC))
        if until <= since:
            raise BadRequest("to: must be after from")
        if until - since > MAX_WINDOW:
            raise BadRequest("from: the window may be at most 366 days")
        return Window(since, until, tenant, "custom")
    label = params.get("since") or DEFAULT_RANGE
    try:
        length = parse_window(label, "since")
    except ConfigError as exc:
        raise BadRequest(str(exc)) from None
    if length > MAX_WINDOW:
        raise BadRequest("since: the window may be at most 366 days")
    until = now or datetime.now(UTC)
    return Window(until - length, until, tenant, label)


def _time(text: str | None, key: str) -> datetime:
    try:
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{key}: not an ISO 8601 time: {text!r}") from None
    if not 1970 <= value.year <= 9000:
        raise BadRequest(f"{key}: {text!r} is outside the years 1970 to 9000")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
