"""``http``: a generic JSON endpoint. The request body is a template whose string values may use
``{query}``, ``{id}`` and ``{fields}`` (a JSON object when it is the whole value); the answer is
read at a dot path (``data.answer``, ``choices.0.text``)."""

from __future__ import annotations

from typing import Any

from core.httpclient import RetryPolicy
from evals.datasets import Case
from evals.targets import TargetResult
from evals.targets.base import HttpTarget, Malformed

DEFAULT_TEMPLATE: dict[str, Any] = {"query": "{query}", "fields": "{fields}"}


class JsonHttpTarget(HttpTarget):
    def __init__(
        self, url: str, template: dict[str, Any] | None = None, response_path: str = "output",
        headers: dict[str, str] | None = None, policy: RetryPolicy | None = None, concurrency: int = 4,
    ) -> None:  # fmt: skip
        super().__init__(f"http:{url}", policy or RetryPolicy(), concurrency)
        self.url = url
        self.template = template or DEFAULT_TEMPLATE
        self.response_path = response_path
        self.headers = headers or {}

    def invoke(self, case: Case) -> TargetResult:
        body = fill(self.template, case)
        assert isinstance(body, dict)
        return self.call(self.url, body, self.headers, self._parse)

    def _parse(self, data: Any) -> TargetResult:
        value = at_path(data, self.response_path)
        if not isinstance(value, str):
            raise Malformed(f"{self.response_path} is {type(value).__name__}, not text")
        return TargetResult(value, 0.0)


def fill(template: Any, case: Case) -> Any:
    if isinstance(template, dict):
        return {k: fill(v, case) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, case) for v in template]
    if template == "{fields}":
        return case.fields
    if isinstance(template, str):
        return template.replace("{query}", case.query).replace("{id}", case.id)
    return template


def at_path(data: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            raise Malformed(f"no {path!r} in the response")
    return data
