"""The API port (default 8080): health, readiness, metrics, and the dashboard with its JSON API."""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentwatch.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE


def create_api(
    readiness: Callable[[], tuple[bool, str]],
    stats: Callable[[], dict[str, object]],
    metrics: Callable[[], bytes],
    dashboard: list[BaseRoute] | None = None,
) -> Starlette:
    """Health, readiness, metrics and stats; and the dashboard's pages and JSON API
    (``dashboard.app.routes``) when given."""

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        ready, status = readiness()
        return JSONResponse({"status": status}, status_code=200 if ready else 503)

    async def stats_endpoint(request: Request) -> JSONResponse:
        return JSONResponse(stats())

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics(), media_type=METRICS_CONTENT_TYPE)

    return Starlette(
        routes=[
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/api/v1/stats", stats_endpoint, methods=["GET"]),
            *(dashboard or []),
        ]
    )
