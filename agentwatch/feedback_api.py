"""``POST /api/v1/feedback`` on the API port: users' feedback on runs (``feedback.items``).

Authenticated with the ingest tokens (``receivers.<otlp>.auth``) and stored under the token's
tenant; without ingest tokens, under ``default`` (the API binds to loopback). A request is
answered 200 only once its items are on disk (written and fsynced, as span files are); a bad
item refuses the whole request (400, every problem named by index and key) and stores nothing.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from agentwatch.config import AgentwatchConfig
from core.errors import Unauthenticated
from core.model import DEFAULT_TENANT
from feedback.items import parse
from receiver.otlp.auth import TokenAuthenticator
from storage.tables import FeedbackRow, write_rows

MAX_BODY = 1 << 20
"""Bytes of a feedback request at most (1 MiB)."""


def feedback_routes(config: AgentwatchConfig) -> list[BaseRoute]:
    authenticators = [
        TokenAuthenticator(r.config.auth)
        for r in config.receivers.values()
        if getattr(r.config, "auth", None) is not None
    ]
    data_dir = Path(config.storage.data_dir)

    def tenant_of(request: Request) -> str | None:
        if not authenticators:
            return DEFAULT_TENANT
        for authenticator in authenticators:
            try:
                return authenticator.tenant_for(request.headers.get("authorization"))
            except Unauthenticated:
                continue
        return None

    async def post(request: Request) -> JSONResponse:
        tenant = tenant_of(request)
        if tenant is None:
            return JSONResponse({"error": "send an ingest token: 'Authorization: Bearer <token>'"}, 401)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
            return JSONResponse({"error": f"body over {MAX_BODY} bytes"}, 413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return JSONResponse({"error": f"body over {MAX_BODY} bytes"}, 413)
        rows, problems = parse(bytes(body), tenant, datetime.now(UTC))
        if problems:
            return JSONResponse({"error": "; ".join(problems[:20]), "problems": problems}, 400)
        await run_in_threadpool(_store, data_dir, tenant, rows)
        return JSONResponse({"accepted": len(rows), "tenant": tenant})

    return [Route("/api/v1/feedback", post, methods=["POST"])]


def _store(data_dir: Path, tenant: str, rows: list[FeedbackRow]) -> None:
    """Each day's rows in one file of its partition (by the feedback's time), fsynced."""
    by_day: dict[str, list[FeedbackRow]] = defaultdict(list)
    for row in rows:
        by_day[row.time.astimezone(UTC).date().isoformat()].append(row)
    for day_rows in by_day.values():
        write_rows(data_dir, tenant, day_rows[0].time.astimezone(UTC), day_rows)
