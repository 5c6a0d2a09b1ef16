"""Where alert messages go: a Slack incoming webhook or a generic JSON webhook.

``send`` never raises: a message that still fails after the retries (backoff on 429, 5xx and
transport errors) comes back as a failed ``Delivery`` that the caller counts and logs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from alerting.config import NotifierConfig
from alerting.messages import Message, slack_payload, webhook_payload
from core.httpclient import CallFailed, RetryPolicy, post


@dataclass(frozen=True)
class Delivery:
    notifier: str
    ok: bool
    attempts: int
    error: str | None = None


class Notifier(Protocol):
    name: str

    def send(self, message: Message) -> Delivery: ...

    def close(self) -> None: ...


class WebhookNotifier:
    """POSTs the payload ``render`` makes of a message; Slack and generic webhooks differ only there."""

    def __init__(
        self, name: str, config: NotifierConfig, render: Callable[[Message], dict[str, Any]],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:  # fmt: skip
        self.name = name
        self.url = config.webhook_url
        self.headers = dict(config.headers)
        self.policy = RetryPolicy(timeout=config.timeout, retries=config.retries, backoff=config.backoff)
        self.render = render
        self.sleep = sleep
        self.client = httpx.Client()

    def send(self, message: Message) -> Delivery:
        try:
            _, attempts = post(
                self.client, self.url, self.render(message), self.policy, self.headers, self.sleep
            )
        except CallFailed as exc:
            return Delivery(self.name, False, exc.attempts, str(exc))
        return Delivery(self.name, True, attempts)

    def close(self) -> None:
        self.client.close()


def create(name: str, config: NotifierConfig) -> Notifier:
    render = slack_payload if config.type == "slack" else webhook_payload
    return WebhookNotifier(name, config, render)


class MemoryNotifier:
    """Test double: keeps what it was sent."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.sent: list[Message] = []

    def send(self, message: Message) -> Delivery:
        self.sent.append(message)
        return Delivery(self.name, True, 1)

    def close(self) -> None:
        return None
