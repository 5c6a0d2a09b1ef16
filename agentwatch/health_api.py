"""``GET /api/v1/agents/{agent}/health?window=15m`` on the API port: an agent's health now, and
advice, for agents that read it to heal themselves (``agentwatch.client.Health``).

Answered from memory (``health.board`` and ``health.context``), never from a query: an answer
is kept for the second it was made in and while no new digest or refresh has come, so a
thousand agents polling cost one computation a second each.

The tenant comes from the token: an ingest token (``receivers.<otlp>.auth``) reads its own
tenant; a read token (``api.auth.tokens``) the tenants it may read (``?tenant=`` chooses among
them). Without tokens configured, ``?tenant=`` (default ``default``). Asking for a tenant the
token may not read is refused (403, naming the key).
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agentwatch.config import AgentwatchConfig
from agentwatch.ingest_tokens import IngestTokens
from core.agents import AgentRegistry
from core.errors import ConfigError, Forbidden, RequestError, Unauthenticated
from core.model import DEFAULT_TENANT
from core.units import format_duration, parse_window
from dashboard.access import Access
from health.advice import advise
from health.board import AgentFacts, HealthBoard, StepFacts
from health.context import AgentContext, HealthContext

DEFAULT_WINDOW = "15m"
CACHED_ANSWERS = 10_000


def health_routes(config: AgentwatchConfig, board: HealthBoard, context: HealthContext) -> list[BaseRoute]:
    # {agent:path}: an agent name may hold a "/" (sent as %2F, which the server decodes).
    return [
        Route("/api/v1/agents/{agent:path}/health", HealthEndpoint(config, board, context), methods=["GET"])
    ]


class HealthEndpoint:
    def __init__(self, config: AgentwatchConfig, board: HealthBoard, context: HealthContext) -> None:
        self.board = board
        self.context = context
        self.max_window = config.health.max_window
        self.registry = AgentRegistry(config.agents)
        self.ingest = IngestTokens(config)
        self.access = Access(list(config.api.auth.tokens), required=self.ingest.configured)
        self._answers: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        response = self.answer(Request(scope, receive))
        await response(scope, receive, send)

    def answer(self, request: Request) -> Response:
        tenants = self._tenants(request.headers.get("authorization"))
        if tenants is None:
            return _refused(Unauthenticated("send an ingest or read token: 'Authorization: Bearer <token>'"))
        asked = request.query_params.get("tenant")
        if isinstance(tenants, str):  # any tenant
            tenant = asked or DEFAULT_TENANT
        elif asked is None:
            if len(tenants) != 1:
                return _refused(
                    RequestError("tenant: this token reads several tenants; say which (?tenant=)")
                )
            tenant = next(iter(tenants))
        elif asked in tenants:
            tenant = asked
        else:
            return _refused(Forbidden(f"tenant: this token may not read tenant {asked!r}"))
        text = request.query_params.get("window", DEFAULT_WINDOW)
        try:
            window = parse_window(text, "window").total_seconds()
        except ConfigError as exc:
            return _refused(RequestError(str(exc)))
        if window > self.max_window:
            return _refused(
                RequestError(f"window: at most {format_duration(self.max_window)} (health.max_window)")
            )
        now = self.board.now()
        agent = request.path_params["agent"]
        key = (tenant, agent, window, int(now), self.board.version, self.context.version)
        body = self._answers.get(key)
        if body is None:
            body = orjson.dumps(self.document(tenant, agent, window, now))
            self._answers[key] = body
            if len(self._answers) > CACHED_ANSWERS:
                self._answers.popitem(last=False)
        return Response(body, media_type="application/json", headers={"cache-control": "no-store"})

    def _tenants(self, authorization: str | None) -> frozenset[str] | str | None:
        """The tenants the request may read: ``"any"``, a set, or None (refused)."""
        if not self.access.required:
            return "any"
        tenant = self.ingest.tenant_of(authorization or "")
        if tenant is not None:
            return frozenset({tenant})
        header = authorization or ""
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        viewer = self.access.viewer(token)
        if viewer is None:
            return None
        return "any" if viewer.tenants is None else viewer.tenants

    def document(self, tenant: str, agent: str, window: float, now: float) -> dict[str, Any]:
        if self.board.label(tenant, agent) == agent:  # not known by that name in memory
            agent = self.context.label(tenant, agent)
        facts = self.board.facts(tenant, agent, window, now)
        hours = _hours(now, window)
        context = self.context.of(tenant, facts.agent, facts.name, hours)
        rules = self.registry.advice(tenant, facts.agent, facts.name)
        advice = advise(facts, context, rules)
        return health_document(facts, context, now) | {"advice": advice.as_dict()}


def health_document(facts: AgentFacts, context: AgentContext, now: float) -> dict[str, Any]:
    baseline = context.baseline
    return {
        "tenant": facts.tenant, "agent": facts.agent, "name": facts.name,
        "window": format_duration(facts.window_seconds), "window_seconds": facts.window_seconds,
        "as_of": datetime.fromtimestamp(now, UTC).isoformat(),
        "runs": facts.runs, "failures": facts.failures, "degraded": facts.degraded,
        "failure_rate": facts.failure_rate, "consecutive_failures": facts.consecutive_failures,
        "failure_types": facts.failure_types,
        "latency_ms": {"p50": facts.p50_ms, "p95": facts.p95_ms},
        "baseline": None if baseline is None else {
            "runs": baseline.runs, "days": baseline.days, "failure_rate": baseline.failure_rate,
            "latency_ms": {"p50": baseline.p50_ms, "p95": baseline.p95_ms},
        },
        "tools": [_step(s) for s in facts.tools],
        "models": [_step(s) for s in facts.models],
        "judge": {"judged_runs": context.judged_runs, "groundedness": context.groundedness,
                  "hallucination_risk": context.hallucination_risk},
        "feedback": {"pieces": context.feedback, "negative": context.negative_feedback,
                     "negative_rate": context.negative_feedback_rate},
        "open_alerts": list(context.open_alerts),
        "budgets": [
            {"name": s.name, "monthly_usd": s.budget.monthly_usd, "spend_usd": s.spend_usd, "used": s.used,
             "hard": s.budget.hard, "month": s.month}
            for s in context.budgets
        ],
    }  # fmt: skip


def _step(step: StepFacts) -> dict[str, Any]:
    return {
        "name": step.name, "calls": step.calls, "errors": step.errors, "error_rate": step.error_rate,
        "rate_limited": step.rate_limited, "consecutive_failures": step.consecutive_failures,
        "consecutive_rate_limits": step.consecutive_rate_limits, "last_failure_type": step.last_failure_type,
        "last_failure_at": None if step.last_failure_at is None else step.last_failure_at.isoformat(),
    }  # fmt: skip


def _hours(now: float, window: float) -> tuple[int, ...]:
    """The UTC hours of day the window ``[now - window, now]`` touches."""
    first, last = int((now - window) // 3600), int(now // 3600)
    return tuple(sorted({h % 24 for h in range(first, last + 1)}))


def _refused(error: RequestError) -> Response:
    """A refused request, answered with the HTTP status of ``error``'s class (``core.errors``)."""
    return Response(
        orjson.dumps({"error": str(error)}), status_code=error.http_status, media_type="application/json"
    )
