"""HTTP connection limit and deadlines (AsgiServer), against a real uvicorn server in process.

Each test runs its own event loop: the clients are asyncio streams on the same loop as the server.
Waits are generous (the machine may be loaded); assertions are on outcomes, and on timings only
as lower bounds, which a deadline cannot beat however loaded the machine is.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from core.httpserver import AsgiServer, ConnectionStats, HttpServerLimits

GENEROUS = 20.0
"""Upper bound for anything that should take a second or two."""


async def _ping(request: Request) -> PlainTextResponse:
    return PlainTextResponse("pong")


async def _echo(request: Request) -> PlainTextResponse:
    body = await request.body()
    return PlainTextResponse(f"got {len(body)} bytes")


def _app(hold: asyncio.Event | None = None) -> Starlette:
    async def slow(request: Request) -> PlainTextResponse:
        assert hold is not None
        await hold.wait()
        return PlainTextResponse("done")

    routes = [
        Route("/ping", _ping, methods=["GET"]),
        Route("/echo", _echo, methods=["POST"]),
        Route("/slow", slow, methods=["GET"]),
    ]
    return Starlette(routes=routes)


@asynccontextmanager
async def serving(limits: HttpServerLimits, hold: asyncio.Event | None = None) -> AsyncIterator[AsgiServer]:
    server = AsgiServer(_app(hold), "127.0.0.1", 0, "test.endpoint", limits=limits)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def connect(server: AsgiServer) -> Stream:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def read_to_eof(reader: asyncio.StreamReader, timeout: float = GENEROUS) -> bytes:
    """Everything the server sends until it closes the connection (TimeoutError if it does not)."""
    data = bytearray()
    async with asyncio.timeout(timeout):
        while chunk := await reader.read(65536):
            data += chunk
    return bytes(data)


async def get(server: AsgiServer, path: str = "/ping", stream: Stream | None = None) -> bytes:
    """One keep-alive GET (on a new connection unless ``stream``); returns the response head and body."""
    reader, writer = stream or await connect(server)
    writer.write(f"GET {path} HTTP/1.1\r\nhost: test\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GENEROUS)
    length = int(
        next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))[15:]
    )
    body = await asyncio.wait_for(reader.readexactly(length), GENEROUS)
    if stream is None:
        writer.close()
    return head + body


def stats(server: AsgiServer) -> ConnectionStats:
    return server.slots.stats


TIMEOUT_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 16\r\nconnection: close\r\n\r\nRequest Timeout\n"
)


def test_slowloris_headers_are_cut_after_read_header_timeout() -> None:
    async def scenario() -> None:
        limits = HttpServerLimits(read_header_timeout=1.5, read_timeout=30.0, idle_timeout=30.0)
        async with serving(limits) as server:
            reader, writer = await connect(server)
            request = b"GET /ping HTTP/1.1\r\nhost: test\r\nx-padding: " + b"a" * 100 + b"\r\n\r\n"
            started = time.monotonic()
            received = b""
            for byte in request:  # one byte every 0.5 s, never writing once the server has answered
                writer.write(bytes([byte]))
                try:
                    received = await asyncio.wait_for(reader.read(65536), 0.5)
                    break
                except TimeoutError:
                    continue
            received += await read_to_eof(reader)
            elapsed = time.monotonic() - started
            writer.close()
            assert received == TIMEOUT_408
            assert elapsed >= 1.5
            assert (stats(server).header_timeouts, stats(server).body_timeouts) == (1, 0)
            assert await get(server) == await get(server)  # the server still answers others

    asyncio.run(scenario())


def test_a_connection_that_sends_nothing_is_closed_silently_after_read_header_timeout() -> None:
    async def scenario() -> None:
        limits = HttpServerLimits(read_header_timeout=1.0, read_timeout=30.0, idle_timeout=30.0)
        async with serving(limits) as server:
            reader, writer = await connect(server)
            assert await read_to_eof(reader) == b""
            writer.close()
            assert stats(server).header_timeouts == 1
            assert len(server.slots) == 0

    asyncio.run(scenario())


def test_a_stalled_body_is_answered_408_after_read_timeout(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        limits = HttpServerLimits(read_header_timeout=1.0, read_timeout=2.0, idle_timeout=30.0)
        async with serving(limits) as server:
            reader, writer = await connect(server)
            started = time.monotonic()
            writer.write(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 100\r\n\r\n" + b"x" * 10)
            received = await read_to_eof(reader)
            elapsed = time.monotonic() - started
            writer.close()
            assert received == TIMEOUT_408
            assert elapsed >= 2.0
            assert (stats(server).header_timeouts, stats(server).body_timeouts) == (0, 1)
            # A complete request on a new connection still works.
            reader, writer = await connect(server)
            writer.write(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 3\r\n\r\nabc")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GENEROUS)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert await asyncio.wait_for(reader.readexactly(11), GENEROUS) == b"got 3 bytes"
            writer.close()

    with caplog.at_level(logging.DEBUG):
        asyncio.run(scenario())
    # The app saw the cut as a client disconnect, not as an error of its own.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_kept_alive_connection_is_closed_after_idle_timeout() -> None:
    async def scenario() -> None:
        limits = HttpServerLimits(read_header_timeout=30.0, read_timeout=30.0, idle_timeout=1.0)
        async with serving(limits) as server:
            stream = await connect(server)
            assert (await get(server, stream=stream)).endswith(b"\r\n\r\npong")
            started = time.monotonic()  # the idle deadline starts once this answer is sent
            assert (await get(server, stream=stream)).endswith(b"\r\n\r\npong")  # kept alive
            assert await read_to_eof(stream[0]) == b""
            assert time.monotonic() - started >= 1.0
            stream[1].close()
            assert (stats(server).idle_timeouts, stats(server).header_timeouts) == (1, 0)

    asyncio.run(scenario())


def test_idle_connections_past_max_connections_make_room_for_new_ones() -> None:
    async def scenario() -> None:
        limits = HttpServerLimits(max_connections=5, read_header_timeout=60.0, idle_timeout=60.0)
        async with serving(limits) as server:
            idle = [await connect(server) for _ in range(20)]
            # Each new connection displaced the longest-waiting one: the first 15 are closed.
            for reader, _ in idle[:15]:
                assert await read_to_eof(reader) == b""
            # A client with a request gets in (displacing one more) and is answered.
            real = await connect(server)
            assert (await get(server, stream=real)).endswith(b"\r\n\r\npong")
            assert await read_to_eof(idle[15][0]) == b""
            assert (stats(server).displaced, stats(server).refused) == (16, 0)
            assert len(server.slots) == 5
            for _, writer in [*idle, real]:
                writer.close()

    asyncio.run(scenario())


def test_when_every_connection_is_busy_a_new_one_is_refused() -> None:
    async def scenario() -> None:
        hold = asyncio.Event()
        limits = HttpServerLimits(max_connections=2)
        async with serving(limits, hold) as server:
            busy = [asyncio.create_task(get(server, "/slow")) for _ in range(2)]
            while server.slots.busy < 2:
                await asyncio.sleep(0.01)
            reader, writer = await connect(server)
            assert await read_to_eof(reader) == b""  # closed at once, nothing displaced
            writer.close()
            assert (stats(server).refused, stats(server).displaced) == (1, 0)
            hold.set()
            for task in busy:
                assert (await task).endswith(b"\r\n\r\ndone")

    asyncio.run(scenario())


def test_limits_are_validated_with_their_keys() -> None:
    bad = HttpServerLimits(max_connections=0, read_header_timeout=0, read_timeout=5, idle_timeout=0)
    assert bad.validate() == [
        "max_connections: must be at least 1",
        "read_header_timeout: must be positive",
        "idle_timeout: must be positive",
    ]
    assert HttpServerLimits(read_header_timeout=20, read_timeout=10).validate() == [
        "read_timeout: must be at least read_header_timeout (it includes the headers)"
    ]
    assert HttpServerLimits().validate() == []


_FD_STARVED_SERVER = """
import asyncio, logging, os, resource, sys
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from core.httpserver import AsgiServer, HttpServerLimits

logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

async def ping(request):
    return PlainTextResponse("pong")

async def main():
    limits = HttpServerLimits(read_header_timeout=2.0, read_timeout=2.0)
    server = AsgiServer(Starlette(routes=[Route("/ping", ping)]), "127.0.0.1", 0, "test", limits=limits)
    await server.start()
    # Room for about 20 connections: the rest wait in the backlog while accept() fails with EMFILE.
    spare = len(os.listdir("/proc/self/fd")) + 20
    resource.setrlimit(resource.RLIMIT_NOFILE, (spare, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    print(server.port, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.mark.process
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_running_out_of_descriptors_logs_once_per_second_not_per_accept(tmp_path: Path) -> None:
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _FD_STARVED_SERVER],
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=Path(__file__).resolve().parents[2],
        )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
        time.sleep(3)
        storm = log_path.read_text().count("socket.accept() out of system resource")
        for client in clients:
            client.close()
        # At most one report per second (asyncio's own retry), where asyncio alone logs one per
        # connection waiting in the backlog, each time it retries.
        assert 1 <= storm <= 5
        # Once the clients are gone the server accepts and answers again.
        assert httpx.get(f"http://127.0.0.1:{port}/ping", timeout=GENEROUS).text == "pong"
    finally:
        proc.kill()
        proc.wait()
