"""``glean``: Glean's agent API, or its workflow API.

- agents: ``POST {base}/rest/api/v1/agents/runs/wait`` with ``{agent_id, input}`` (the case's
  fields plus ``query``), or ``{agent_id, messages}`` with ``use_messages``;
- workflow: ``POST {base}/rest/api/v1/runworkflow`` with ``{workflowId, fields, messages:
  [{author: USER, fragments: [{text}]}], enableTrace: true}``.

Both answer with messages made of fragments (``text``, ``action.metadata`` for tool calls,
citations); ``messageType: UPDATE`` messages are reasoning steps, the last ``CONTENT`` message
is the answer. The trace id comes from ``workflowTraceId`` or ``agentTraceInfo.traceId``.

The cited documents (``citation.sourceDocument``: id, url, title) are kept as ``Document``s; a
judge that grounds on them has their text fetched through Glean's document API
(``fetch_documents``: ``POST {base}/rest/api/v1/getdocuments`` with ``documentSpecs`` by id,
else by url, and ``includeFields: [DOCUMENT_CONTENT]``; the text is ``content.fullTextList``
joined by newlines), at most ``MAX_DOCUMENTS`` per case, in one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import orjson

from core.httpclient import CallFailed, RetryPolicy, post_json
from evals.datasets import Case
from evals.targets import Document, TargetResult, ToolCall
from evals.targets.base import HttpTarget, Malformed, bearer

MAX_DOCUMENTS = 10
"""Documents fetched per case at most (the first cited)."""


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

    def fetch_documents(self, documents: Sequence[Document]) -> tuple[tuple[Document, ...], list[str]]:
        """``documents`` with the text Glean's document API has for them; why some have none."""
        wanted = [d for d in documents if d.content is None and (d.id or d.url)][:MAX_DOCUMENTS]
        if not wanted:
            return tuple(documents), []
        specs = [{"id": d.id} if d.id else {"url": d.url} for d in wanted]
        body = {"documentSpecs": specs, "includeFields": ["DOCUMENT_CONTENT"]}
        try:
            data, _ = post_json(self.client, f"{self.base}/rest/api/v1/getdocuments", body, self.policy,
                                self.headers)  # fmt: skip
        except CallFailed as exc:
            return tuple(documents), [f"documents: the document fetch failed: {exc}"]
        found = data.get("documents") if isinstance(data, dict) else None
        found = found if isinstance(found, dict) else {}
        problems: list[str] = []
        texts: dict[int, str] = {}
        for index, document in enumerate(wanted):
            key = document.id or document.url or ""
            entry = found.get(key)
            text = _document_text(entry)
            if text is None:
                why = entry.get("error") if isinstance(entry, dict) and entry.get("error") else "no content"
                said = why if isinstance(why, str) else orjson.dumps(why).decode()
                problems.append(f"documents: {key}: {said}")
            else:
                texts[index] = text
        by_key = {id(d): texts[i] for i, d in enumerate(wanted) if i in texts}
        return tuple(replace(d, content=by_key[id(d)]) if id(d) in by_key else d for d in documents), problems


def parse(data: Any) -> TargetResult:
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise Malformed("no messages")
    answer: list[str] = []
    steps: list[str] = []
    calls: list[ToolCall] = []
    citations: list[str] = []
    documents: dict[str, Document] = {}
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
                _cite(documents, source if source else citation)
        for cited in message.get("citations") or []:
            citations.append(str(cited.get("url") or cited.get("title") or ""))
            _cite(documents, cited.get("sourceDocument") or cited)
        if message.get("messageType") == "UPDATE":
            steps += texts
        elif texts:
            answer = texts  # the last content message is the answer
    trace = data.get("workflowTraceId") or (data.get("agentTraceInfo") or {}).get("traceId")
    output = "".join(answer) if answer else None
    return TargetResult(output, 0.0, tuple(calls), tuple(c for c in citations if c), tuple(steps), trace,
                        documents=tuple(documents.values()))  # fmt: skip


def _cite(documents: dict[str, Document], source: Any) -> None:
    """Keep a cited document once (by id, else url)."""
    if not isinstance(source, dict):
        return
    doc_id, url, title = (source.get(k) for k in ("id", "url", "title"))
    document = Document(*(v if isinstance(v, str) and v else None for v in (doc_id, url, title)))
    key = document.id or document.url
    if key and key not in documents:
        documents[key] = document


def _document_text(entry: Any) -> str | None:
    """The text of a ``getdocuments`` entry: ``content.fullTextList`` joined; None without it."""
    content = entry.get("content") if isinstance(entry, dict) else None
    lines = content.get("fullTextList") if isinstance(content, dict) else None
    if not isinstance(lines, list) or not any(isinstance(line, str) for line in lines):
        return None
    return "\n".join(line for line in lines if isinstance(line, str))
