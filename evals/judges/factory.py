"""Judge backends by name: ``heuristic`` (offline, the default), a judge defined under the
config's ``evals.judges``, or a spec ``openai:URL#model`` / ``glean:URL``.

- ``openai``: any OpenAI-compatible chat-completions endpoint, ``temperature: 0`` and
  ``response_format: json_object``; its ``usage`` (``prompt_tokens``, ``completion_tokens``)
  and ``model`` go to the judge ledger;
- ``glean``: Glean's chat API (``POST {base}/rest/api/v1/chat``), the prompt as one user
  message, ``agentConfig: {agent}`` when the judge names a ``model_set`` (``FAST``, ``ADVANCED``
  or ``AUTO``: the agentic engine's model sets, which Glean's chat API selects by
  ``agentConfig.agent``) or an ``agent`` (e.g. ``ADVANCED``, the agent that searches the
  company's documents); the answer is the text of the last content message (Glean's chat
  reports no tokens: its calls are in the ledger without them, under the model
  ``glean:<agent>``, e.g. ``glean:advanced``, or ``glean:chat``);
- ``ensemble``: its ``members`` (``evals.judges.ensemble``).

A judge's ``fact_checker`` (an openai or glean judge, or any target under ``evals.targets``) is
asked for factual_accuracy in its place: a target gets the prompt as the query of a case and its
answer is read as the judge's reply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from core.errors import ConfigError
from core.httpclient import CallFailed, RetryPolicy, post_json
from evals.config import EvalsConfig, JudgeConfig
from evals.datasets import Case
from evals.judges.criteria import Rubrics, rubrics_of
from evals.judges.ensemble import EnsembleJudge
from evals.judges.heuristic import HeuristicJudge
from evals.judges.llm import Asker, BadAnswer, Complete, LLMJudge, Reply
from evals.judges.scores import Judge
from evals.judges.seer import seer_rubrics
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
    return from_config(name_or_spec, config, evals)


def from_config(name: str, config: JudgeConfig, evals: EvalsConfig | None = None) -> Judge:
    evals = evals or EvalsConfig()
    rubrics = seer_rubrics(evals) if config.scale == "seer" else rubrics_of(evals)
    if config.type == "heuristic":
        return HeuristicJudge()
    if config.type == "ensemble":
        members = [build_judge(member, evals) for member in config.members]
        return EnsembleJudge(name, members, config.combine, rubrics)
    model, complete, close = _backend(config)
    checker: Asker | None = None
    closers = [close]
    if config.fact_checker is not None:
        checker, close_checker = _fact_checker(name, config.fact_checker, evals)
        closers.append(close_checker)

    def close_all() -> None:
        for closer in closers:
            closer()

    return LLMJudge(name, model, complete, config.parse_retries, config.factual_accuracy, close_all, rubrics,
                    checker)  # fmt: skip


def _backend(config: JudgeConfig) -> tuple[str, Complete, Callable[[], None]]:
    """(model label, how to ask it, how to close it) of an openai or glean judge."""
    assert config.url is not None  # validated
    client = httpx.Client()
    policy = RetryPolicy(timeout=config.timeout, retries=config.retries, backoff=config.backoff)
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    if config.type == "openai":
        assert config.model is not None
        url = config.url.rstrip("/") + "/chat/completions"
        model = config.model

        def complete(messages: list[dict[str, str]]) -> Reply:
            body = {"model": model, "messages": messages, "temperature": 0,
                    "response_format": {"type": "json_object"}}  # fmt: skip
            data, _ = post_json(client, url, body, policy, headers)
            return _openai_reply(data, model)

        return f"openai:{model}", complete, client.close
    url = config.url.rstrip("/") + "/rest/api/v1/chat"
    agent = config.glean_agent

    def complete_glean(messages: list[dict[str, str]]) -> Reply:
        body: dict[str, Any] = {"messages": [{"author": "USER", "messageType": "CONTENT",
                                              "fragments": [{"text": flatten(messages)}]}],
                                "stream": False, "saveChat": False}  # fmt: skip
        if agent is not None:
            body["agentConfig"] = {"agent": agent}
        data, _ = post_json(client, url, body, policy, headers)
        return Reply(_glean_text(data))

    return f"glean:{agent.lower()}" if agent else "glean:chat", complete_glean, client.close


def flatten(messages: list[dict[str, str]]) -> str:
    """A chat exchange as one text, oldest first (for backends that take one user turn)."""
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)


def _fact_checker(judge: str, checker: str, evals: EvalsConfig) -> tuple[Asker, Callable[[], None]]:
    member = f"{judge}/fact_checker:{checker}"
    config = evals.judges.get(checker)
    if config is not None:
        model, complete, close = _backend(config)
        return Asker(member, model, complete), close
    from evals.targets.specs import resolve_target

    target = resolve_target(checker, evals)

    def ask_target(messages: list[dict[str, str]]) -> Reply:
        result = target.invoke(Case(id="fact-check", query=flatten(messages)))
        if result.error is not None:
            raise CallFailed(result.error, result.attempts)
        return Reply(result.output or "", result.input_tokens, result.output_tokens, result.model)

    return Asker(member, target.name, ask_target), target.close


def _openai_reply(data: Any, model: str) -> Reply:
    """The model's answer, read as the openai target reads a chat completion, with its usage."""
    try:
        parsed = openai_target.parse(data)
    except (Malformed, KeyError, IndexError, TypeError, AttributeError):
        parsed = None
    if parsed is None or parsed.output is None:
        raise CallFailed("malformed chat-completions response (no choices[0].message.content)", 1)
    return Reply(parsed.output, parsed.input_tokens, parsed.output_tokens, parsed.model or model)


def _glean_text(data: Any) -> str:
    """The last content message, read as the glean target reads a run's messages."""
    try:
        return glean_target.parse(data).output or ""
    except (Malformed, KeyError, IndexError, TypeError, AttributeError):
        raise CallFailed("malformed chat response (no messages)", 1) from None


__all__ = ["BadAnswer", "Rubrics", "build_judge", "from_config"]
