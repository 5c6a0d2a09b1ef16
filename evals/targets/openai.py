"""``openai``: any OpenAI-compatible chat-completions endpoint (``POST {base}/chat/completions``).
The answer's ``usage`` (``prompt_tokens``, ``completion_tokens``) and ``model`` are kept, to show
the agent's tokens and cost beside the judge's. In a multi-turn case it is sent the conversation
so far (``converse``): the system prompt, then every user and assistant message."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from core.httpclient import RetryPolicy
from evals.datasets import Case
from evals.targets import Message, TargetResult, ToolCall
from evals.targets.base import HttpTarget, Malformed, bearer


class OpenAITarget(HttpTarget):
    def __init__(
        self, base_url: str, model: str, api_key: str | None = None,
        policy: RetryPolicy | None = None, concurrency: int = 4, system_prompt: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__(f"openai:{model}", policy or RetryPolicy(), concurrency)
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.headers = bearer(api_key)
        self.system_prompt = system_prompt

    def invoke(self, case: Case) -> TargetResult:
        return self.converse(case, [Message("user", case.query)])

    def converse(self, case: Case, messages: Sequence[Message]) -> TargetResult:
        """The conversation so far (the case's ``fields`` follow its first message) in one call."""
        sent = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        for index, message in enumerate(messages):
            content = message.content
            if index == 0 and case.fields:
                content = f"{content}\n\nInputs: {case.fields}"
            sent.append({"role": message.role, "content": content})
        result = self.call(self.url, {"model": self.model, "messages": sent}, self.headers, parse)
        return result if result.model or result.error else replace(result, model=self.model)


def parse(data: Any) -> TargetResult:
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices:
        raise Malformed("no choices")
    message = choices[0]["message"]
    calls = tuple(
        ToolCall(call["function"]["name"], call["function"].get("arguments", ""))
        for call in message.get("tool_calls") or []
    )
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise Malformed("message content is not text")
    usage: dict[str, Any] = data["usage"] if isinstance(data.get("usage"), dict) else {}
    model = data.get("model")
    return TargetResult(
        content, 0.0, calls, input_tokens=_count(usage.get("prompt_tokens")),
        output_tokens=_count(usage.get("completion_tokens")), model=model if isinstance(model, str) else None,
    )  # fmt: skip


def _count(value: Any) -> int | None:
    """A token count as reported; None when absent or not a count."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
