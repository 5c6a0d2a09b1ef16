"""OTLP/HTTP transport: ``POST /v1/traces`` and ``POST /v1/logs`` over the shared ExportHandler.

Protobuf (``application/x-protobuf``) and JSON (``application/json``) bodies, optionally gzip;
the answer uses the request's content type. Error bodies are ``google.rpc.Status`` messages,
as the OTLP specification asks. The size limit applies after decompression, and inflation
stops as soon as it is crossed, so a gzip bomb never grows in memory. Inflation runs on a worker
thread (zlib lets go of the interpreter lock meanwhile): a small gzip body may inflate to the
whole limit, and the event loop every port shares must not wait for it.
"""

from __future__ import annotations

import asyncio
import zlib

import orjson
from google.protobuf import json_format
from google.rpc import status_pb2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.errors import (
    DecodeError,
    PayloadTooLarge,
    RequestError,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
)
from core.model import Signal
from receiver.otlp.auth import TokenAuthenticator
from receiver.otlp.handler import Encoding, ExportHandler
from receiver.otlp.otlp_json import response_to_json

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_MEDIA_TYPES: dict[str, Encoding] = {PROTOBUF: "protobuf", "application/protobuf": "protobuf", JSON: "json"}


def _error_headers(exc: RequestError) -> dict[str, str] | None:
    if isinstance(exc, Unavailable):
        return {"Retry-After": str(max(1, round(exc.retry_after)))}
    if isinstance(exc, Unauthenticated):
        return {"WWW-Authenticate": 'Bearer realm="agentwatch"'}
    return None


def media_encoding(content_type: str | None) -> Encoding:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in _MEDIA_TYPES:
        shown = media or "none"
        raise UnsupportedMediaType(f"unsupported Content-Type {shown!r}: use {PROTOBUF} or {JSON}")
    return _MEDIA_TYPES[media]


def _status_body(exc: RequestError, encoding: Encoding) -> tuple[bytes, str]:
    rpc_status = status_pb2.Status(code=exc.grpc_code, message=str(exc))
    if encoding == "json":
        return orjson.dumps(json_format.MessageToDict(rpc_status)), JSON
    return rpc_status.SerializeToString(), PROTOBUF


def inflate(body: bytes, limit: int) -> bytes:
    """Gunzip ``body``, every member of it (RFC 1952 allows several, concatenated), refusing as
    soon as the output would pass ``limit`` bytes."""
    out = bytearray()
    rest = body
    while True:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise DecodeError(f"body is labelled gzip but does not inflate: {exc}") from None
        if len(out) > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes after decompression")
        if not inflater.eof:
            raise DecodeError("gzip body is truncated")
        rest = inflater.unused_data
        if not rest:
            return bytes(out)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, decompressed, never holding more than ``limit`` bytes of it."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        raise UnsupportedMediaType(f"unsupported Content-Encoding {encoding!r}: use gzip or none")
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
    body = bytes(chunks)
    return await asyncio.to_thread(inflate, body, limit) if encoding == "gzip" else body


def _expected_size(request: Request, max_body: int) -> int:
    """What reading the body may cost: its declared length, or the limit when it is compressed
    or its length is not declared."""
    declared = request.headers.get("content-length", "")
    identity = request.headers.get("content-encoding", "identity").strip().lower() in ("identity", "")
    if identity and declared.isdigit():
        return min(int(declared), max_body)
    return max_body


def create_app(
    handler: ExportHandler,
    max_body: int,
    path: str = "/v1/traces",
    auth: TokenAuthenticator | None = None,
    logs_path: str = "/v1/logs",
) -> Starlette:
    async def export(request: Request) -> Response:
        return await export_signal(request, "traces")

    async def export_logs(request: Request) -> Response:
        return await export_signal(request, "logs")

    async def export_signal(request: Request, signal: Signal) -> Response:
        encoding: Encoding = "protobuf"
        try:
            encoding = media_encoding(request.headers.get("content-type"))
            # Authenticate before reading the body: an unauthenticated client costs us nothing.
            tenant = auth.tenant_for(request.headers.get("authorization")) if auth else None
            # Room to read and decode the body is taken first: many large bodies at once wait,
            # or are refused retryably, rather than all being held in memory.
            async with handler.hold(_expected_size(request, max_body)):
                body = await read_body(request, max_body)
                prepared = await handler.prepare(body, encoding, tenant, signal)
            result = await handler.commit(prepared)
        except RequestError as exc:
            handler.note_refusal(exc)
            # 415 answers in protobuf/JSON as the request asked where that is known.
            content, media = _status_body(exc, encoding)
            headers = _error_headers(exc)
            return Response(content, status_code=exc.http_status, media_type=media, headers=headers)
        response = result.response()
        if encoding == "json":
            return Response(response_to_json(response), media_type=JSON)
        return Response(response.SerializeToString(), media_type=PROTOBUF)

    return Starlette(
        routes=[Route(path, export, methods=["POST"]), Route(logs_path, export_logs, methods=["POST"])]
    )
