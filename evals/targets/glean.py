"""``glean``: Glean's agent API, or its workflow API.

- agents (Glean's Client API, documented at developers.glean.com, "Agents"): the agent's input
  schema is read once per target (``GET {base}/rest/api/v1/agents/{agent_id}/schemas``, answered
  ``{agent_id, input_schema, output_schema}``, the schemas in JSON Schema). An agent whose
  ``input_schema`` has ``properties`` (other than ``messages``) is a **form agent**: it is run
  with ``POST {base}/rest/api/v1/agents/runs/wait`` and ``{agent_id, input}``, ``input`` holding
  every field of the form (the documentation: a form agent needs all of its fields, an optional
  one as ``""``): the case's field of that name, else the query for a field named ``query`` or
  for a form of one field, else ``""``. Any other agent is a **chat agent**, run with
  ``{agent_id, messages: [{role: USER, content: [{text: query, type: text}]}]}``. ``mode: form``
  or ``mode: chat`` (``evals.targets.NAME.mode``) skips the lookup; a forced form sends the case's
  fields plus ``query``, as before auto-detection. A lookup that fails is the error of every case
  of the target (one lookup, with the retries), never a guess.
- workflow: ``POST {base}/rest/api/v1/runworkflow`` with ``{workflowId, fields, messages:
  [{author: USER, fragments: [{text}]}], enableTrace: true}`` (not in Glean's public
  documentation: the shape Glean's own clients send; a multi-turn case sends the conversation
  so far most recent first, as Glean's chat API documents its ``messages``).

Both answer with messages: the agents API's ``{role, content: [{text, type}]}``, the chat and
workflow APIs' ``{author, messageType, fragments, citations, ts}`` (fragments: ``text``,
``action`` for tool calls, ``citation``). ``messageType: UPDATE`` messages are reasoning steps
(``Step``: their text, the action they called, their ``ts``; ``ERROR`` messages are failing
steps); the last content message is the answer. The trace id comes from ``workflowTraceId`` or
``agentTraceInfo.traceId``. An agent run whose ``run.status`` is ``error`` (the documented
values: ``error``, ``success``) is the case's error, its messages kept.

Tokens: Glean's documentation of ``/agents/runs/wait`` shows no ``usage`` in its answer
(``{run, messages}``). We assume a deployment that reports tokens does so as ``usage`` at the
top level or in ``run`` (``input_tokens``/``output_tokens``, or ``prompt_tokens``/
``completion_tokens``, with ``model`` when given) and read it into the agent's side of the
ledger; an answer without it reports no tokens.

The cited documents (``citation.sourceDocument``: id, url, title) are kept as ``Document``s; a
judge that grounds on them has their text fetched through Glean's document API
(``fetch_documents``: ``POST {base}/rest/api/v1/getdocuments`` with ``documentSpecs`` by id,
else by url, and ``includeFields: [DOCUMENT_CONTENT]``; the text is ``content.fullTextList``
joined by newlines), at most ``MAX_DOCUMENTS`` per case, in one call.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import orjson

from core.httpclient import CallFailed, RetryPolicy, get_json, post_json
from evals.datasets import Case
from evals.targets import Document, Message, Step, TargetResult, ToolCall
from evals.targets.base import HttpTarget, Malformed, bearer

MAX_DOCUMENTS = 10
"""Documents fetched per case at most (the first cited)."""
AGENT_MODES = ("auto", "form", "chat")
"""How an agent is run: ``auto`` (from its input schema), or forced ``form`` or ``chat``."""


@dataclass(frozen=True)
class AgentKind:
    """What the schema lookup found (or the config forced): ``form`` or ``chat``."""

    mode: str
    fields: tuple[str, ...] | None = None
    """The form's fields, in the schema's order; None for a forced form (no lookup)."""
    problem: str | None = None
    """Why the schemas could not be read: every case of the target fails with it."""


_AUTHORS = {"user": "USER", "assistant": "GLEAN_AI"}
"""Glean's names of a conversation's roles (messages' ``role`` or ``author``)."""


def agent_kind(schemas: Any) -> AgentKind:
    """A form agent when ``input_schema.properties`` names fields (``messages`` aside: that is a
    chat input), else a chat agent. Glean documents ``input_schema`` as JSON Schema; a chat agent's
    is ``{}``."""
    if not isinstance(schemas, dict):
        return AgentKind("chat", problem="the schemas response is not a JSON object")
    schema = schemas.get("input_schema")
    properties = schema.get("properties") if isinstance(schema, dict) else None
    fields = tuple(k for k in properties if k != "messages") if isinstance(properties, dict) else ()
    return AgentKind("form", fields) if fields else AgentKind("chat")


def form_input(fields: Sequence[str], case: Case) -> dict[str, Any]:
    """Every field of the form: the case's value, else the query (a field named ``query``, or the
    form's only field), else ``""`` (Glean needs every field, an optional one empty)."""
    values: dict[str, Any] = {}
    for name in fields:
        if name in case.fields:
            values[name] = case.fields[name]
        elif name == "query" or len(fields) == 1:
            values[name] = case.query
        else:
            values[name] = ""
    return values


class GleanTarget(HttpTarget):
    def __init__(
        self, base_url: str, agent_id: str | None = None, workflow_id: str | None = None,
        api_key: str | None = None, use_messages: bool = False, policy: RetryPolicy | None = None,
        concurrency: int = 4, mode: str = "auto",
    ) -> None:  # fmt: skip
        if (agent_id is None) == (workflow_id is None):
            raise ValueError("a glean target needs exactly one of agent_id and workflow_id")
        if mode not in AGENT_MODES:
            raise ValueError(f"mode {mode!r}: must be one of {', '.join(AGENT_MODES)}")
        super().__init__(f"glean:{agent_id or workflow_id}", policy or RetryPolicy(), concurrency)
        self.base = base_url.rstrip("/")
        self.agent_id = agent_id
        self.workflow_id = workflow_id
        self.headers = bearer(api_key)
        self.mode = "chat" if use_messages else mode
        self._kind: AgentKind | None = None
        self._kind_lock = threading.Lock()

    def agent_kind(self) -> AgentKind:
        """Form or chat: forced by ``mode``, else read once from the agent's schemas."""
        with self._kind_lock:
            if self._kind is None:
                self._kind = self._lookup()
            return self._kind

    def _lookup(self) -> AgentKind:
        if self.mode != "auto":
            return AgentKind(self.mode)
        url = f"{self.base}/rest/api/v1/agents/{quote(self.agent_id or '', safe='')}/schemas"
        try:
            data, _ = get_json(self.client, url, self.policy, self.headers)
        except CallFailed as exc:
            return AgentKind("chat", problem=str(exc))
        return agent_kind(data)

    def invoke(self, case: Case) -> TargetResult:
        return self.converse(case, [Message("user", case.query)])

    def converse(self, case: Case, messages: Sequence[Message]) -> TargetResult:
        """The conversation so far in one call (a multi-turn case, ``evals.conversation``): a
        chat agent gets every message, oldest first; a workflow every message, most recent first
        (as Glean's chat API takes them); a form agent, which takes no history, the latest user
        message as its query."""
        if self.workflow_id is not None:
            url = f"{self.base}/rest/api/v1/runworkflow"
            history = [
                {"author": _AUTHORS[m.role], "fragments": [{"text": m.content}]} for m in reversed(messages)
            ]
            body: dict[str, Any] = {
                "workflowId": self.workflow_id, "fields": case.fields, "messages": history,
                "enableTrace": True,
            }  # fmt: skip
            return self.call(url, body, self.headers, parse)
        kind = self.agent_kind()
        if kind.problem is not None:
            return TargetResult(None, 0.0, error=f"the agent's schemas could not be read: {kind.problem}")
        url = f"{self.base}/rest/api/v1/agents/runs/wait"
        case = replace(case, query=messages[-1].content)
        if kind.mode == "chat":
            sent = [
                {"role": _AUTHORS[m.role], "content": [{"text": m.content, "type": "text"}]} for m in messages
            ]
            body = {"agent_id": self.agent_id, "messages": sent}
        elif kind.fields is None:
            body = {"agent_id": self.agent_id, "input": {**case.fields, "query": case.query}}
        else:
            body = {"agent_id": self.agent_id, "input": form_input(kind.fields, case)}
        result = self.call(url, body, self.headers, parse)
        run = result.raw.get("run")
        if result.error is None and isinstance(run, dict) and run.get("status") == "error":
            return replace(result, error="the agent's run ended with status error")
        return result

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
    reasoning: list[Step] = []
    calls: list[ToolCall] = []
    citations: list[str] = []
    documents: dict[str, Document] = {}
    answered_at: int | None = None
    for message in data["messages"]:
        if not isinstance(message, dict) or (message.get("author") or message.get("role")) == "USER":
            continue
        fragments = message.get("fragments") or message.get("content") or []
        texts = [f["text"] for f in fragments if isinstance(f, dict) and isinstance(f.get("text"), str)]
        actions: list[ToolCall] = []
        for fragment in fragments:
            action = fragment.get("action") if isinstance(fragment, dict) else None
            if isinstance(action, dict):
                meta = action.get("metadata") or {}
                name = meta.get("name") or meta.get("actionId") or "action"
                arguments = action.get("parameters") or meta.get("parameters") or {}
                actions.append(ToolCall(str(name), orjson.dumps(arguments).decode()))
            citation = fragment.get("citation") if isinstance(fragment, dict) else None
            if isinstance(citation, dict):
                source = citation.get("sourceDocument") or {}
                citations.append(str(source.get("url") or source.get("title") or citation.get("url") or ""))
                _cite(documents, source if source else citation)
        calls += actions
        for cited in message.get("citations") or []:
            citations.append(str(cited.get("url") or cited.get("title") or ""))
            _cite(documents, cited.get("sourceDocument") or cited)
        kind = message.get("messageType")
        at = timestamp_ns(message.get("ts"))
        if kind in ("UPDATE", "ERROR"):
            steps += texts
            reasoning += _steps(texts, actions, "error" if kind == "ERROR" else None, at)
        elif texts:
            answer = texts  # the last content message is the answer
            answered_at = at if at is not None else answered_at
    trace = data.get("workflowTraceId") or (data.get("agentTraceInfo") or {}).get("traceId")
    output = "".join(answer) if answer else None
    input_tokens, output_tokens, model = usage(data)
    return TargetResult(output, 0.0, tuple(calls), tuple(c for c in citations if c), tuple(steps), trace,
                        documents=tuple(documents.values()), input_tokens=input_tokens,
                        output_tokens=output_tokens, model=model,
                        reasoning=_timed(reasoning, answered_at))  # fmt: skip


def _steps(texts: list[str], actions: list[ToolCall], status: str | None, at: int | None) -> list[Step]:
    """The steps of one UPDATE (or ERROR) message: one, or one per action it called."""
    text = "".join(texts).strip()
    if not actions:
        return [Step(text, text, None, status, at)] if text else []
    found = [Step(text or actions[0].name, text, actions[0], status, at)]
    return found + [Step(call.name, "", call, status, at) for call in actions[1:]]


def _timed(steps: list[Step], answered_at: int | None) -> tuple[Step, ...]:
    """Each step with a reported start ends when the next step (or the answer) was reported."""
    timed = []
    for index, step in enumerate(steps):
        if step.start_ns is None:
            timed.append(step)
            continue
        after = [s.start_ns for s in steps[index + 1 :] if s.start_ns is not None] + [answered_at]
        end = next((t for t in after if t is not None and t >= step.start_ns), None)
        timed.append(replace(step, end_ns=end))
    return tuple(timed)


def timestamp_ns(value: Any) -> int | None:
    """A message's ``ts`` in Unix ns. Glean documents it only as the message's "response
    timestamp" (a string); read as an ISO 8601 time, or a number of seconds, milliseconds,
    microseconds or nanoseconds since the epoch (by its size). None when it is neither."""
    if isinstance(value, bool) or value is None:
        return None
    number: Decimal | None = None
    if isinstance(value, int | float):
        number = Decimal(repr(value))
    elif isinstance(value, str) and value.strip():
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            try:
                when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                return None
            if when.tzinfo is None:
                return None
            return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000
    if number is None or not number.is_finite() or number <= 0:
        return None
    for limit, scale in ((10**11, 10**9), (10**14, 10**6), (10**17, 10**3)):
        if number < limit:
            return int(number * scale)
    return int(number)


TOKEN_KEYS = (("input_tokens", "prompt_tokens", "inputTokens", "promptTokens"),
              ("output_tokens", "completion_tokens", "outputTokens", "completionTokens"))  # fmt: skip


def usage(data: dict[str, Any]) -> tuple[int | None, int | None, str | None]:
    """(input tokens, output tokens, model) from ``usage`` (top level, else ``run.usage``): not in
    Glean's documented answer, read when a deployment sends it (see the module's docstring)."""
    run: dict[str, Any] = data["run"] if isinstance(data.get("run"), dict) else {}
    found = data.get("usage") if isinstance(data.get("usage"), dict) else run.get("usage")
    if not isinstance(found, dict):
        return None, None, None
    counts = [next((v for k in keys if _count(v := found.get(k)) is not None), None) for keys in TOKEN_KEYS]
    model = found.get("model") or data.get("model") or run.get("model")
    return counts[0], counts[1], model if isinstance(model, str) and model else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


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
