"""``glean``: Glean's agent API, or its workflow API.

- agents: ``POST {base}/rest/api/v1/agents/runs/wait`` with ``{agent_id, input}`` (the case's
  fields plus ``query``), or ``{agent_id, messages}`` with ``use_messages``;
- workflow: ``POST {base}/rest/api/v1/runworkflow`` with ``{workflowId, fields, messages:
  [{author: USER, fragments: [{text}]}], enableTrace: true}``.

Both answer with messages made of fragments (``text``, ``action.metadata`` for tool calls,
citations); ``messageType: UPDATE`` messages are reasoning steps, the last ``CONTENT`` message
is the answer. The trace id comes from ``workflowTraceId`` or ``agentTraceInfo.traceId``.
"""

from __future__ import annotations

from typing import Any

import orjson

from core.httpclient import RetryPolicy
from evals.datasets import Case
from evals.targets import TargetResult, ToolCall
from evals.targets.base import HttpTarget, Malformed, bearer


class GleanTarget(HttpTarget):
    def __init__(
        self, base_url: str, agent_id: str | None = None, workflow_id: str | None = None,
        api_key: str | None = None, use_messages: bool = False, policy: RetryPolicy | None = None,
        concurrency: int = 4,
    ) -> None:  # fmt: skip
        if (agent_id is None) == (workflow_id is None):
            raise ValueError("a glean target needs exactly one of agent_id and workflow_id")
        super().__init__(f"glean:{agent_id or workflow_id}", policy or RetryPolicy(), concurrency)
        self.base = base_url.rstrip("/")
        self.agent_id = agent_id
        self.workflow_id = workflow_id
        self.headers = bearer(api_key)
        self.use_messages = use_messages

    def invoke(self, case: Case) -> TargetResult:
        user = [{"author": "USER", "fragments": [{"text": case.query}]}]
        if self.workflow_id is not None:
            url = f"{self.base}/rest/api/v1/runworkflow"
            body: dict[str, Any] = {
                "workflowId": self.workflow_id, "fields": case.fields, "messages": user, "enableTrace": True,
            }  # fmt: skip
        elif self.use_messages:
            url = f"{self.base}/rest/api/v1/agents/runs/wait"
            body = {
                "agent_id": self.agent_id,
                "messages": [{"role": "USER", "content": [{"text": case.query}]}],
            }
        else:
            url = f"{self.base}/rest/api/v1/agents/runs/wait"
            body = {"agent_id": self.agent_id, "input": {**case.fields, "query": case.query}}
        return self.call(url, body, self.headers, parse)


def parse(data: Any) -> TargetResult:
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise Malformed("no messages")
    answer: list[str] = []
    steps: list[str] = []
    calls: list[ToolCall] = []
    citations: list[str] = []
    for message in data["messages"]:
        if (message.get("author") or message.get("role")) == "USER":
            continue
        fragments = message.get("fragments") or message.get("content") or []
        texts = [f["text"] for f in fragments if isinstance(f, dict) and isinstance(f.get("text"), str)]
        for fragment in fragments:
            action = fragment.get("action") if isinstance(fragment, dict) else None
            if isinstance(action, dict):
                meta = action.get("metadata") or {}
                name = meta.get("name") or meta.get("actionId") or "action"
                arguments = action.get("parameters") or meta.get("parameters") or {}
                calls.append(ToolCall(str(name), orjson.dumps(arguments).decode()))
            citation = fragment.get("citation") if isinstance(fragment, dict) else None
            if isinstance(citation, dict):
                source = citation.get("sourceDocument") or {}
                citations.append(str(source.get("url") or source.get("title") or citation.get("url") or ""))
        citations += [str(c.get("url") or c.get("title") or "") for c in message.get("citations") or []]
        if message.get("messageType") == "UPDATE":
            steps += texts
        elif texts:
            answer = texts  # the last content message is the answer
    trace = data.get("workflowTraceId") or (data.get("agentTraceInfo") or {}).get("traceId")
    output = "".join(answer) if answer else None
    return TargetResult(output, 0.0, tuple(calls), tuple(c for c in citations if c), tuple(steps), trace)
