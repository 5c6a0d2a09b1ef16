"""Target specs: ``python:pkg.module:function``, ``openai:URL#model``, ``glean:URL#agent_id``
(or ``#workflow:ID``), ``http:URL``; or the name of a target under the config's
``evals.targets``, which adds an API key (``${env:…}``, never in the spec), timeouts, retries,
a concurrency limit and, for a Glean agent, its ``mode`` (``auto``: form or chat from its
schemas; ``form``; ``chat``)."""

from __future__ import annotations

from core.errors import TargetError
from core.httpclient import RetryPolicy
from evals.config import EvalsConfig
from evals.targets import Target
from evals.targets.glean import GleanTarget
from evals.targets.http import JsonHttpTarget
from evals.targets.openai import OpenAITarget
from evals.targets.python import PythonTarget

KINDS = ("python", "openai", "glean", "http")


def resolve_target(name_or_spec: str, evals: EvalsConfig, policy: RetryPolicy | None = None,
                   api_key: str | None = None) -> Target:  # fmt: skip
    """The target named under ``evals.targets``, else the target of the spec."""
    named = evals.targets.get(name_or_spec)
    if named is None:
        if (problem := evals.target_problem(name_or_spec)) is not None:
            raise TargetError(f"target {problem}")
        return from_spec(name_or_spec, policy, api_key)
    policy = RetryPolicy(timeout=named.timeout, retries=named.retries, backoff=named.backoff)
    target = from_spec(named.spec, policy, named.api_key, named.system_prompt, named.mode)
    target.name = name_or_spec
    target.concurrency = named.concurrency
    return target


def from_spec(
    spec: str, policy: RetryPolicy | None = None, api_key: str | None = None,
    system_prompt: str | None = None, mode: str = "auto",
) -> Target:  # fmt: skip
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in KINDS or not rest:
        raise TargetError(f"target {spec!r}: expected one of {', '.join(k + ':…' for k in KINDS)}")
    if kind == "python":
        return PythonTarget(rest)
    url, _, fragment = rest.partition("#")
    if not url.startswith(("http://", "https://")):
        raise TargetError(f"target {spec!r}: {url!r} is not an http(s) URL")
    if kind == "openai":
        if not fragment:
            raise TargetError(f"target {spec!r}: name the model after '#', e.g. openai:URL#gpt-4o")
        return OpenAITarget(url, fragment, api_key, policy, system_prompt=system_prompt)
    if kind == "glean":
        if not fragment:
            raise TargetError(f"target {spec!r}: name the agent after '#' (or #workflow:ID)")
        if fragment.startswith("workflow:"):
            return GleanTarget(
                url, workflow_id=fragment.removeprefix("workflow:"), api_key=api_key, policy=policy
            )
        return GleanTarget(url, agent_id=fragment, api_key=api_key, policy=policy, mode=mode)
    return JsonHttpTarget(url, policy=policy)
