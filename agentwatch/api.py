"""The API port (default 8080): health, readiness, and the JSON API as it grows."""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def create_api(is_ready: Callable[[], bool], stats: Callable[[], dict[str, object]]) -> Starlette:
    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        if is_ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "starting"}, status_code=503)

    async def stats_endpoint(request: Request) -> JSONResponse:
        return JSONResponse(stats())

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/api/v1/stats", stats_endpoint, methods=["GET"]),
        ]
    )
