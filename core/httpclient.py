"""HTTP calls with a timeout, and retries with exponential backoff on 429, 5xx and transport
errors (honouring ``Retry-After`` up to the backoff cap). Other statuses are final."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

RETRYABLE = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    timeout: float = 60.0
    """Seconds for one attempt (connect + read)."""
    retries: int = 3
    """Attempts after the first."""
    backoff: float = 1.0
    """Seconds before the first retry; doubles each time."""
    max_backoff: float = 30.0


class CallFailed(Exception):
    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


def post_json(
    client: httpx.Client,
    url: str,
    body: dict[str, Any],
    policy: RetryPolicy,
    headers: dict[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Any, int]:
    """(decoded JSON response, attempts). Raises CallFailed with the last error."""
    return _json(*post(client, url, body, policy, headers, sleep))


def post(
    client: httpx.Client,
    url: str,
    body: dict[str, Any] | bytes,
    policy: RetryPolicy,
    headers: dict[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[httpx.Response, int]:
    """(the 2xx response, attempts). Raises CallFailed with the last error. A ``bytes`` body is
    sent as is (its Content-Type in ``headers``), a dict as JSON."""
    return send(client, "POST", url, policy, body, headers, sleep)


def get_json(
    client: httpx.Client,
    url: str,
    policy: RetryPolicy,
    headers: dict[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Any, int]:
    """(decoded JSON of a GET, attempts), retried as a POST is. Raises CallFailed."""
    return _json(*send(client, "GET", url, policy, None, headers, sleep))


def _json(response: httpx.Response, attempt: int) -> tuple[Any, int]:
    """(the response's decoded JSON, ``attempt``); CallFailed when it is not JSON."""
    try:
        return response.json(), attempt
    except ValueError:
        raise CallFailed(f"HTTP {response.status_code}: the response is not JSON", attempt) from None


def send(
    client: httpx.Client,
    method: str,
    url: str,
    policy: RetryPolicy,
    body: dict[str, Any] | bytes | None = None,
    headers: dict[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[httpx.Response, int]:
    """(the 2xx response of ``method``, attempts), retried on 429, 5xx and transport errors with
    backoff, honouring ``Retry-After``. Raises CallFailed with the last error."""
    delay = policy.backoff
    last = ""
    for attempt in range(1, policy.retries + 2):
        wait = delay
        try:
            if isinstance(body, bytes):
                response = client.request(method, url, content=body, headers=headers, timeout=policy.timeout)
            else:
                response = client.request(method, url, json=body, headers=headers, timeout=policy.timeout)
        except httpx.TimeoutException:
            last = f"timed out after {policy.timeout:g}s"
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code < 300:
                return response, attempt
            last = f"HTTP {response.status_code}: {response.text[:200]}"
            if response.status_code not in RETRYABLE:
                raise CallFailed(last, attempt)
            wait = max(delay, _retry_after(response))
        if attempt <= policy.retries:
            sleep(min(wait, policy.max_backoff))
            delay = min(delay * 2, policy.max_backoff)
    raise CallFailed(last, policy.retries + 1)


def _retry_after(response: httpx.Response) -> float:
    try:
        return float(response.headers.get("retry-after", "0"))
    except ValueError:
        return 0.0
