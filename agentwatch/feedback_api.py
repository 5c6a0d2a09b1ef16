"""``POST /api/v1/feedback`` on the API port: users' feedback on runs (``feedback.items``), and
the score and annotation endpoints of Langfuse and Phoenix clients (``feedback.shapes``):
``POST /api/public/scores``, ``POST /api/public/ingestion`` (``score-create`` events),
``POST /v1/span_annotations``, ``POST /v1/trace_annotations``.

Authenticated with the ingest tokens (``receivers.<otlp>.auth``) and stored under the token's
tenant; without ingest tokens, under the tenant ``POST /api/v1/feedback``'s items name (as a
span's tenant attribute names its tenant), else ``default`` (the API binds to loopback). A request is
answered 200 only once its items are on disk (written and fsynced, as span files are); a bad
item refuses the whole request (400, every problem named by index and key) and stores nothing.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from agentwatch.config import AgentwatchConfig
from agentwatch.ingest_tokens import IngestTokens
from core.errors import DecodeError, PayloadTooLarge, RequestError, Unauthenticated
from core.model import DEFAULT_TENANT
from feedback.items import MAX_ITEMS, item_row, parse, request_tenant
from feedback.shapes import langfuse_item, phoenix_item
from storage.groupcommit import GroupCommit
from storage.tables import FeedbackRow

MAX_BODY = 1 << 20
"""Bytes of a feedback request at most (1 MiB)."""
LOOKUP_DAYS = 30
"""Days of spans a Phoenix span annotation's trace is looked up in."""


def feedback_routes(config: AgentwatchConfig) -> list[BaseRoute]:
    tokens = IngestTokens(config)
    data_dir = Path(config.storage.data_dir)
    # Each day's rows in one file of its partition (by the feedback's time), fsynced; requests
    # arriving together share the file and its fsyncs.
    commit = GroupCommit(data_dir)

    def tenant_of(request: Request) -> str | None:
        """The ingest token's tenant: ``Bearer <token>``, or HTTP Basic with the token as the user
        or the password (Langfuse clients send their key pair so)."""
        if not tokens.configured:
            return DEFAULT_TENANT
        header = request.headers.get("authorization") or ""
        candidates = [header]
        if header.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user = password = ""
            candidates = [f"Bearer {user}", f"Bearer {password}"]
        return tokens.tenant_of(*candidates)

    async def body_of(request: Request) -> bytes | JSONResponse:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
            return _refusal(PayloadTooLarge(f"body over {MAX_BODY} bytes"))
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return _refusal(PayloadTooLarge(f"body over {MAX_BODY} bytes"))
        return bytes(body)

    async def accepted(request: Request) -> tuple[str, Any] | JSONResponse:
        """(tenant, the JSON body), or the answer refusing the request."""
        tenant = tenant_of(request)
        if tenant is None:
            return _refusal(Unauthenticated("send an ingest token: 'Authorization: Bearer <token>'"))
        body = await body_of(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            return tenant, orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            problem = f"body: not JSON ({exc})"
            return _refusal(DecodeError(problem), problems=[problem])

    async def post(request: Request) -> JSONResponse:
        got = await accepted(request)
        if isinstance(got, JSONResponse):
            return got
        tenant, doc = got
        tenant, problems = request_tenant(doc, tenant, tokens.configured)
        rows, found = parse(doc, tenant, datetime.now(UTC))
        problems += found
        if problems:
            return _refusal(RequestError("; ".join(problems[:20])), problems=problems)
        await run_in_threadpool(commit.write, tenant, rows)
        return JSONResponse({"accepted": len(rows), "tenant": tenant})

    async def langfuse_score(request: Request) -> JSONResponse:
        got = await accepted(request)
        if isinstance(got, JSONResponse):
            return got
        tenant, doc = got
        item = langfuse_item(doc)
        row, problems = _row(item, tenant, "langfuse")
        if row is None:
            return _refusal(RequestError("; ".join(problems)), "message", problems)
        await run_in_threadpool(commit.write, tenant, [row])
        return JSONResponse({"id": row.feedback_id})

    async def langfuse_ingestion(request: Request) -> JSONResponse:
        """Langfuse's batch ingestion: its ``score-create`` events are feedback (207, per event)."""
        got = await accepted(request)
        if isinstance(got, JSONResponse):
            return got
        tenant, doc = got
        batch = doc.get("batch") if isinstance(doc, dict) else None
        if not isinstance(batch, list):
            return _refusal(RequestError("batch: must be a list of events"), "message")
        if len(batch) > MAX_ITEMS:
            too_many = f"batch: {len(batch)} events, at most {MAX_ITEMS} a request"
            return _refusal(PayloadTooLarge(too_many), "message")
        rows, successes, errors = [], [], []
        for event in batch:
            event_id = event.get("id") if isinstance(event, dict) else None
            if not isinstance(event, dict) or event.get("type") != "score-create":
                refused = "only score-create events are taken here; send traces over OTLP"
                errors.append({"id": event_id, "status": RequestError.http_status, "message": refused})
                continue
            item = langfuse_item(event.get("body"))
            row, problems = _row(item, tenant, "langfuse")
            if row is None:
                errors.append(
                    {"id": event_id, "status": RequestError.http_status, "message": "; ".join(problems)}
                )
            else:
                rows.append(row)
                successes.append({"id": event_id, "status": 201})
        if rows:
            await run_in_threadpool(commit.write, tenant, rows)
        return JSONResponse({"successes": successes, "errors": errors}, 207)

    async def phoenix_annotations(request: Request) -> JSONResponse:
        got = await accepted(request)
        if isinstance(got, JSONResponse):
            return got
        tenant, doc = got
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, list) or not data or len(data) > MAX_ITEMS:
            return _refusal(RequestError(f"data: a list of 1 to {MAX_ITEMS} annotations"))
        spans = [
            a["span_id"].lower()
            for a in data
            if isinstance(a, dict) and isinstance(a.get("span_id"), str) and not a.get("trace_id")
        ]
        trace_of = await run_in_threadpool(_traces_of, data_dir, tenant, spans) if spans else {}
        rows, problems = [], []
        for i, annotation in enumerate(data):
            item = phoenix_item(annotation, trace_of)
            row, found = _row(item, tenant, "phoenix")
            problems += [f"[{i}].{p}" for p in found]
            if row is not None:
                rows.append(row)
        if problems:
            return _refusal(RequestError("; ".join(problems[:20])), problems=problems)
        await run_in_threadpool(commit.write, tenant, rows)
        return JSONResponse({"data": [{"id": row.feedback_id} for row in rows]})

    return [
        Route("/api/v1/feedback", post, methods=["POST"]),
        Route("/api/public/scores", langfuse_score, methods=["POST"]),
        Route("/api/public/ingestion", langfuse_ingestion, methods=["POST"]),
        Route("/v1/span_annotations", phoenix_annotations, methods=["POST"]),
        Route("/v1/trace_annotations", phoenix_annotations, methods=["POST"]),
    ]


def _refusal(error: RequestError, key: str = "error", problems: list[str] | None = None) -> JSONResponse:
    """The answer refusing a request: the HTTP status of ``error``'s class (``core.errors``, one
    place for every endpoint's wire codes), its message under ``key`` (``message`` in Langfuse's
    shape) and, when given, every problem."""
    body: dict[str, Any] = {key: str(error)}
    if problems is not None:
        body["problems"] = problems
    return JSONResponse(body, error.http_status)


def _row(item: dict[str, Any] | str, tenant: str, source: str) -> tuple[FeedbackRow | None, list[str]]:
    """A translated item's row, or its problems (``item`` is one when it could not translate)."""
    if isinstance(item, str):
        return None, [item]
    return item_row(item, tenant, datetime.now(UTC), source)


def _traces_of(data_dir: Path, tenant: str, span_ids: list[str]) -> dict[str, str]:
    """span id → trace id of the tenant's spans among ``span_ids``, stored in the last
    ``LOOKUP_DAYS`` days (older spans are not looked for: annotate their trace)."""
    from storage.catalog import connect

    con = connect(data_dir)
    try:
        rows = con.execute(
            "SELECT span_id, trace_id FROM spans"
            " WHERE tenant = ? AND date >= ? AND span_id IN (SELECT unnest(?))",
            [tenant, (datetime.now(UTC) - timedelta(days=LOOKUP_DAYS)).date(), span_ids],
        ).fetchall()
    finally:
        con.close()
    return {str(s): str(t) for s, t in rows}
