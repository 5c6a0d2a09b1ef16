"""What the HTTP targets share: one client, the retry policy, timing, and turning a failed or
malformed call into a result with ``error`` set."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx

from core.httpclient import CallFailed, RetryPolicy, post_json
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


def bearer(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}
