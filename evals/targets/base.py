"""What the HTTP targets share: one client, the retry policy, timing, and turning a failed or
malformed call into a result with ``error`` set."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx

from core.httpclient import RETRYABLE, CallFailed, RetryPolicy, post_json
from evals.targets import TargetResult


class Malformed(Exception):
    """The agent answered, but not in the shape this target reads."""


class HttpTarget:
    def __init__(self, name: str, policy: RetryPolicy, concurrency: int) -> None:
        self.name = name
        self.policy = policy
        self.concurrency = concurrency
        self.client = httpx.Client()

    def call(
        self,
        url: str,
        body: dict[str, Any],
        headers: dict[str, str],
        parse: Callable[[Any], TargetResult],
    ) -> TargetResult:
        start = time.perf_counter()
        try:
            data, attempts = post_json(self.client, url, body, self.policy, headers)
        except CallFailed as exc:
            return TargetResult(None, _ms(start), error=str(exc), attempts=exc.attempts)
        try:
            parsed = parse(data)
        except (Malformed, KeyError, IndexError, TypeError, AttributeError) as exc:
            return TargetResult(None, _ms(start), error=f"malformed response: {exc}", attempts=attempts)
        return replace(parsed, latency_ms=_ms(start), error=None, attempts=attempts,
                       raw=data if isinstance(data, dict) else {})  # fmt: skip

    def close(self) -> None:
        self.client.close()


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def get_json(
    client: httpx.Client, url: str, policy: RetryPolicy, headers: dict[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Any, int]:  # fmt: skip
    """(decoded JSON of a GET, attempts), retried as ``core.httpclient.post`` retries a POST: on
    429, 5xx and transport errors, with backoff, honouring ``Retry-After``. Raises CallFailed."""
    delay, last = policy.backoff, ""
    for attempt in range(1, policy.retries + 2):
        wait = delay
        try:
            response = client.get(url, headers=headers, timeout=policy.timeout)
        except httpx.TimeoutException:
            last = f"timed out after {policy.timeout:g}s"
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code < 300:
                try:
                    return response.json(), attempt
                except ValueError:
                    last = f"HTTP {response.status_code}: the response is not JSON"
                    raise CallFailed(last, attempt) from None
            last = f"HTTP {response.status_code}: {response.text[:200]}"
            if response.status_code not in RETRYABLE:
                raise CallFailed(last, attempt)
            try:
                wait = max(delay, float(response.headers.get("retry-after", "0")))
            except ValueError:
                wait = delay
        if attempt <= policy.retries:
            sleep(min(wait, policy.max_backoff))
            delay = min(delay * 2, policy.max_backoff)
    raise CallFailed(last, policy.retries + 1)


def bearer(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}
