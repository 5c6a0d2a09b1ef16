"""Fake judge backends on loopback for the judge tests: an OpenAI-compatible chat-completions
server and a Glean server (chat, agents, document API) that answer each call from the request,
so a test states what each dimension gets instead of the order calls arrive in. Every call is
recorded (method, path, headers, JSON body) in order: a GET (Glean's agent schemas) too."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

DIMENSION = re.compile(r"Judge one dimension, ([a-z0-9_]+):")


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: Any
    method: str = "POST"

    @property
    def prompt(self) -> str:
        """The last user turn of a chat-completions call, or the text of a Glean call's message."""
        if "messages" in self.body and self.body["messages"] and "role" in self.body["messages"][-1]:
            return str(self.body["messages"][-1]["content"])
        if "messages" in self.body:
            return str(self.body["messages"][-1]["fragments"][0]["text"])
        return str(self.body.get("input", {}).get("query", ""))

    @property
    def text(self) -> str:
        """Everything the call sent, as one text."""
        return json.dumps(self.body)

    @property
    def dimension(self) -> str | None:
        found = DIMENSION.findall(self.text.replace("\\n", "\n"))
        return found[0] if found else None


Responder = Callable[[Call], tuple[int, Any]]


class Backend:
    """A loopback HTTP server whose answer to each POST is ``respond(call)``: (status, JSON body)."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.do_POST("GET")

            def do_POST(self, method: str = "POST") -> None:
                length = int(self.headers.get("content-length", "0"))
                data = self.rfile.read(length)
                call = Call(self.path, dict(self.headers), json.loads(data) if data else None, method)
                with backend._lock:
                    backend.calls.append(call)
                    status, body = backend.respond(call)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Backend:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def on(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]


def verdict(label: str, why: str = "") -> str:
    return json.dumps({"label": label, "explanation": why or f"{label}, because"})


def completion(text: str, prompt_tokens: int | None = None, completion_tokens: int | None = None,
               model: str | None = None) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {"choices": [{"message": {"role": "assistant", "content": text}}]}
    if prompt_tokens is not None:
        body["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                         "total_tokens": prompt_tokens + (completion_tokens or 0)}  # fmt: skip
    if model is not None:
        body["model"] = model
    return body


class Served:
    """A fake answering the calls of its loopback ``backend`` (a ``with`` block serves it)."""

    backend: Backend

    def __enter__(self) -> Self:
        self.backend.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.backend.__exit__()

    @property
    def url(self) -> str:
        return self.backend.url


class OpenAIJudge(Served):
    """An OpenAI-compatible judge: ``labels[dimension]`` is its verdict; ``bad[dimension]`` are
    replies given (in order) before it; every reply reports ``usage`` tokens: input = 100 +
    the call's number (1, 2, …), output = 10."""

    def __init__(self, labels: dict[str, str], bad: dict[str, list[str]] | None = None,
                 model: str | None = None, usage: bool = True) -> None:  # fmt: skip
        self.labels = labels
        self.bad = {k: list(v) for k, v in (bad or {}).items()}
        self.model = model
        self.usage = usage
        self.number = 0
        self.backend = Backend(self.respond)

    def respond(self, call: Call) -> tuple[int, Any]:
        self.number += 1
        dimension = call.dimension or ""
        if self.bad.get(dimension):
            text = self.bad[dimension].pop(0)
        elif dimension in self.labels:
            text = verdict(self.labels[dimension], f"{dimension} is {self.labels[dimension]}")
        else:
            return 500, {"error": f"no verdict for {dimension!r}"}
        if not self.usage:
            return 200, completion(text, model=self.model)
        return 200, completion(text, 100 + self.number, 10, self.model)

    @property
    def calls(self) -> list[Call]:
        return self.backend.calls


def glean_messages(text: str, *, citations: list[dict[str, str]] | None = None,
                   steps: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """A Glean answer: reasoning steps as UPDATE messages, then the CONTENT message (with citations)."""
    messages: list[dict[str, Any]] = [
        {"author": "GLEAN_AI", "messageType": "UPDATE", "fragments": [{"text": step}]} for step in steps or []
    ]
    fragments: list[dict[str, Any]] = [{"text": text}]
    fragments += [{"citation": {"sourceDocument": c}} for c in citations or []]
    messages.append({"author": "GLEAN_AI", "messageType": "CONTENT", "fragments": fragments})
    return {"messages": messages}
