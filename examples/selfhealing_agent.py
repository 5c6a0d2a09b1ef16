"""An agent that reads its own health from agentwatch and heals itself.

Each question is one run, traced with the OpenTelemetry SDK and sent to agentwatch over OTLP:
an ``invoke_agent`` span, and under it the tool call. The agent's preferred tool,
``search_expenses``, is a remote service (``--tool-url``); when agentwatch advises avoiding it
(``avoid_tools``: it failed several times in a row), the agent falls back to
``search_policy_cache``, a local copy of the policy, and records the fallback on its run span
(the ``agent.fallback.triggered`` event, with the advice's id). The report then shows how often
it fell back and whether the runs that did succeeded.

    python examples/selfhealing_agent.py --agentwatch http://127.0.0.1:8080 \\
        --otlp http://127.0.0.1:4318/v1/traces --tool-url http://127.0.0.1:9000/search --runs 20

With agentwatch down the agent works as before: ``Health.advice()`` fails open.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from agentwatch.client import Health

AGENT = "expense-bot"
TOOL = "search_expenses"
FALLBACK_TOOL = "search_policy_cache"
POLICY_CACHE = {
    "per-diem": "The UK per-diem is 75 GBP a day.",
    "receipts": "Attach itemised receipts to every expense report.",
}


@dataclass
class Outcome:
    answer: str | None
    fell_back: bool
    failed: bool


class SelfHealingAgent:
    def __init__(self, tracer: Tracer, health: Health, tool_url: str, user: str = "erin@acme.com") -> None:
        self.tracer = tracer
        self.health = health
        self.tool_url = tool_url
        self.user = user
        self.http = httpx.Client(timeout=2.0)

    def ask(self, question: str) -> Outcome:
        attributes = {
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": AGENT, "user.id": self.user,
            "gen_ai.input.messages": question,
        }  # fmt: skip
        with self.tracer.start_as_current_span(f"invoke_agent {AGENT}", attributes=attributes) as run:
            advice = self.health.advice()
            if advice.avoid(TOOL):
                self.health.record_fallback(run, reason=f"{TOOL} failing", from_=TOOL, to=FALLBACK_TOOL,
                                            advice=advice)  # fmt: skip
                return Outcome(self._cached(question), fell_back=True, failed=False)
            try:
                return Outcome(self._search(question), fell_back=False, failed=False)
            except httpx.HTTPError as exc:
                run.set_status(Status(StatusCode.ERROR, f"{TOOL} failed: {exc}"))
                return Outcome(None, fell_back=False, failed=True)

    def _search(self, question: str) -> str:
        with self.tracer.start_as_current_span(f"execute_tool {TOOL}", attributes=_tool(TOOL)) as span:
            try:
                response = self.http.post(self.tool_url, json={"query": question})
                response.raise_for_status()
            except httpx.HTTPError as exc:
                _failed(span, exc)
                raise
            return str(response.json().get("answer", ""))

    def _cached(self, question: str) -> str:
        name = f"execute_tool {FALLBACK_TOOL}"
        with self.tracer.start_as_current_span(name, attributes=_tool(FALLBACK_TOOL)):
            found = [text for key, text in POLICY_CACHE.items() if key in question.lower()]
            return " ".join(found) or "See the expense policy."


def _tool(name: str) -> dict[str, str]:
    return {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name}


def _failed(span: Span, exc: Exception) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, str(exc)))


def tracing(otlp_url: str, token: str | None = None) -> TracerProvider:
    headers = {"authorization": f"Bearer {token}"} if token else None
    provider = TracerProvider(resource=Resource.create({"service.name": "expense-bot"}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_url, headers=headers), schedule_delay_millis=200)
    )
    return provider


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agentwatch", default="http://127.0.0.1:8080", help="agentwatch's API")
    parser.add_argument("--otlp", default="http://127.0.0.1:4318/v1/traces", help="OTLP/HTTP traces URL")
    parser.add_argument("--tool-url", default="http://127.0.0.1:9000/search", help="the search_expenses tool")
    parser.add_argument("--token", default=None, help="an ingest token, for agentwatch with auth")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between questions")
    args = parser.parse_args(argv)
    provider = tracing(args.otlp, args.token)
    health = Health(args.agentwatch, AGENT, token=args.token, ttl=1.0)
    agent = SelfHealingAgent(provider.get_tracer("selfhealing-agent"), health, args.tool_url)
    try:
        for i in range(args.runs):
            outcome = agent.ask("What is the per-diem in the UK?")
            how = "fell back" if outcome.fell_back else "failed" if outcome.failed else "answered"
            print(f"run {i + 1}: {how}: {outcome.answer or '-'}", flush=True)
            time.sleep(args.interval)
    finally:
        provider.shutdown()
        health.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
