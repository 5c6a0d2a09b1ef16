"""Judge backends by name: ``heuristic`` (offline, the default), a judge defined under the
config's ``evals.judges``, or a spec ``openai:URL#model`` / ``glean:URL``.

- ``openai``: any OpenAI-compatible chat-completions endpoint, ``temperature: 0`` and
  ``response_format: json_object``;
- ``glean``: Glean's chat API (``POST {base}/rest/api/v1/chat``), the prompt as one user
  message; the answer is the text of the last content message.
"""

from __future__ import annotations

from typing import Any

import httpx

from core.errors import ConfigError
from core.httpclient import CallFailed, RetryPolicy, post_json
from evals.config import EvalsConfig, JudgeConfig
from evals.judges.heuristic import HeuristicJudge
from evals.judges.llm import BadAnswer, LLMJudge
from evals.judges.scores import Judge
from evals.targets import glean as glean_target
from evals.targets import openai as openai_target
from evals.targets.base import Malformed


def build_judge(name_or_spec: str, evals: EvalsConfig) -> Judge:
    """The judge ``name_or_spec`` names; ConfigError saying why when it names none."""
    config = evals.judges.get(name_or_spec)
    if config is None:
        problem = evals.judge_problem(name_or_spec)
        if problem is not None:
            raise ConfigError(f"judge: {problem}")
        if name_or_spec == "heuristic":
            return HeuristicJudge()
        kind, _, rest = name_or_spec.partition(":")
        url, _, model = rest.partition("#")
        if kind == "openai" and not model:
            raise ConfigError(f"judge: {name_or_spec!r}: name the model after '#', e.g. openai:URL#gpt-4o")
        config = JudgeConfig(type="openai" if kind == "openai" else "glean", url=url, model=model or None)
    return from_config(name_or_spec, config)


def from_config(name: str, config: JudgeConfig) -> Judge:
    if config.type == "heuristic":
        return HeuristicJudge()
    assert config.url is not None  # validated
    client = httpx.Client()
    policy = RetryPolicy(timeout=config.timeout, retries=config.retries, backoff=config.backoff)
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    if config.type == "openai":
        assert config.model is not None
        url = config.url.rstrip("/") + "/chat/completions"
        model = config.model

        def complete(messages: list[dict[str, str]]) -> str:
            body = {"model": model, "messages": messages, "temperature": 0,
                    "response_format": {"type": "json_object"}}  # fmt: skip
            data, _ = post_json(client, url, body, policy, headers)
            return _openai_text(data)

        return LLMJudge(name, f"openai:{model}", complete, config.parse_retries,
                        config.factual_accuracy, client.close)  # fmt: skip
    url = config.url.rstrip("/") + "/rest/api/v1/chat"

    def complete_glean(messages: list[dict[str, str]]) -> str:
        # Glean's chat takes user turns; the whole exchange goes in one message, oldest first.
        text = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
        body = {"messages": [{"author": "USER", "messageType": "CONTENT", "fragments": [{"text": text}]}],
                "stream": False, "saveChat": False}  # fmt: skip
        data, _ = post_json(client, url, body, policy, headers)
        return _glean_text(data)

    return LLMJudge(name, "glean:chat", complete_glean, config.parse_retries, config.factual_accuracy,
                    client.close)  # fmt: skip


def _openai_text(data: Any) -> str:
    """The model's answer, read as the openai target reads a chat completion."""
    try:
        content = openai_target.parse(data).output
    except (Malformed, KeyError, IndexError, TypeError, AttributeError):
        content = None
    if content is None:
        raise CallFailed("malformed chat-completions response (no choices[0].message.content)", 1)
    return content


def _glean_text(data: Any) -> str:
    """The last content message, read as the glean target reads a run's messages."""
    try:
        return glean_target.parse(data).output or ""
    except (Malformed, KeyError, IndexError, TypeError, AttributeError):
        raise CallFailed("malformed chat response (no messages)", 1) from None


__all__ = ["BadAnswer", "build_judge", "from_config"]
