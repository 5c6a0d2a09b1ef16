"""Run an ASGI app with uvicorn on a socket we bind ourselves (so port 0 and bind errors are ours).

Every server is protected against clients that hold connections open without using them
(the Collector's confighttp names, defaults in ``HttpServerLimits``):

- ``max_connections``: at most this many open connections. Past it, a new connection displaces
  the connection that has waited longest without a request in progress (idle, or still sending
  its request line and headers); only if every connection has a request in progress is the new
  one closed at once. So idle sockets can never starve clients that send requests.
- ``read_header_timeout``: the request line and headers must arrive within this time of the
  connection opening (or of the first byte of a later request on a kept-alive connection).
- ``read_timeout``: the whole request, body included, must arrive within this time of its start;
  past it the client is answered ``408`` and the connection closed.
- ``idle_timeout``: a kept-alive connection with no request is closed after this time.

uvicorn's h11 protocol has no header or body deadline of its own, hence ``GuardedH11Protocol``.
TLS connections count from the end of their handshake (bounded by asyncio's 60 s handshake timeout).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import h11
import uvicorn
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from core.configmodel import STRICT
from core.errors import ConfigError
from core.units import Duration

log = logging.getLogger("core.httpserver")

_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_ACCEPT_PAUSE = 0.5
"""After accept() fails for lack of descriptors, report nothing more for this long (asyncio retries in 1s)."""

_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 16\r\nconnection: close\r\n\r\nRequest Timeout\n"
)


@dataclass(frozen=True)
class HttpServerLimits:
    """Connection limit and timeouts of one HTTP server (see the module docstring)."""

    __pydantic_config__ = STRICT
    max_connections: int = 1000
    """Open connections at most; past it the longest-idle connection is closed to make room."""
    read_header_timeout: Duration = 10.0
    """The request line and headers must arrive within this time."""
    read_timeout: Duration = 30.0
    """The whole request (headers and body) must arrive within this time, else ``408``."""
    idle_timeout: Duration = 60.0
    """A kept-alive connection waiting for its next request is closed after this time."""

    def validate(self) -> list[str]:
        problems = [] if self.max_connections >= 1 else ["max_connections: must be at least 1"]
        for key in ("read_header_timeout", "read_timeout", "idle_timeout"):
            if getattr(self, key) <= 0:
                problems.append(f"{key}: must be positive")
        if self.read_timeout < self.read_header_timeout:
            problems.append("read_timeout: must be at least read_header_timeout (it includes the headers)")
        return problems


@dataclass
class ConnectionStats:
    """What the limits did, for tests and metrics."""

    displaced: int = 0
    refused: int = 0
    header_timeouts: int = 0
    body_timeouts: int = 0
    idle_timeouts: int = 0


class ConnectionSlots:
    """The open connections of one server, and which of them may be displaced (oldest first)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.stats = ConnectionStats()
        self._open: set[GuardedH11Protocol] = set()
        self._displaceable: dict[GuardedH11Protocol, None] = {}  # insertion order: longest waiting first

    def __len__(self) -> int:
        return len(self._open)

    @property
    def busy(self) -> int:
        """Connections with a request in progress."""
        return len(self._open) - len(self._displaceable)

    def admit(self, conn: GuardedH11Protocol) -> bool:
        """Make room for ``conn``; False when every connection has a request in progress."""
        if len(self._open) >= self.limit:
            victim = next(iter(self._displaceable), None)
            if victim is None:
                self.stats.refused += 1
                return False
            self.stats.displaced += 1
            victim.close_now()
        self._open.add(conn)
        self._displaceable[conn] = None
        return True

    def mark(self, conn: GuardedH11Protocol, busy: bool) -> None:
        if conn not in self._open:
            return
        if busy:
            self._displaceable.pop(conn, None)
        elif conn not in self._displaceable:
            self._displaceable[conn] = None

    def release(self, conn: GuardedH11Protocol) -> None:
        self._open.discard(conn)
        self._displaceable.pop(conn, None)


Phase = Literal["header", "body", "idle"]


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a connection limit and header, body and idle deadlines.

    One deadline per connection, following the request: ``header`` from the connection's start
    (or the first byte of a later request), ``body`` from the same start once the headers are in,
    none while the app answers, ``idle`` once the answer is sent. A deadline is never pushed back
    by more bytes, so a client sending one byte at a time gains nothing.
    """

    limits: ClassVar[HttpServerLimits]
    slots: ClassVar[ConnectionSlots]

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._phase: Phase | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._request_start = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.slots.admit(self):
            transport.abort()
            return
        self._enter("header")

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self.slots.release(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase == "idle":  # the first byte of the next request on a kept-alive connection
            self._enter("header")
        super().data_received(data)
        self._follow_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._unset_keepalive_if_required()  # our idle deadline replaces uvicorn's keep-alive timer
        self._follow_request()

    def close_now(self) -> None:
        """Close at once (displaced to make room for a new connection)."""
        self._cancel()
        self.slots.release(self)
        self.transport.close()

    def _follow_request(self) -> None:
        """Move the deadline and the displaceable mark along with the h11 state."""
        if self.transport.is_closing():
            self._cancel()
            return
        in_progress = self.cycle is not None and not self.cycle.response_complete
        self.slots.mark(self, busy=in_progress)
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._enter("body")
        elif state is h11.IDLE:
            if self._phase not in ("header", "idle"):
                self._enter("header" if self.conn.trailing_data[0] else "idle")
        else:  # the request is complete: no deadline while the app answers
            self._cancel()

    def _enter(self, phase: Phase) -> None:
        if phase == self._phase:
            return
        now = self.loop.time()
        if phase != "idle" and self._phase not in ("header", "body"):
            self._request_start = now
        limits = self.limits
        timeout = {
            "header": limits.read_header_timeout,
            "body": limits.read_timeout,
            "idle": limits.idle_timeout,
        }[phase]
        start = now if phase == "idle" else self._request_start
        self._cancel()
        self._phase = phase
        self._deadline = self.loop.call_at(start + timeout, self._expired)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = None

    def _expired(self) -> None:
        phase, self._deadline, self._phase = self._phase, None, None
        if self.transport.is_closing():
            return
        stats = self.slots.stats
        if phase == "header":
            stats.header_timeouts += 1
            if self.conn.trailing_data[0]:  # a partial request: tell the client why
                self.transport.write(_REQUEST_TIMEOUT)
        elif phase == "body":
            stats.body_timeouts += 1
            if self.cycle is not None and not self.cycle.response_started:
                self.transport.write(_REQUEST_TIMEOUT)
                self.cycle.disconnected = True  # the app's receive() now ends, its answer is dropped
        else:
            stats.idle_timeouts += 1
        self.slots.release(self)
        self.transport.close()


def guarded_protocol(limits: HttpServerLimits, slots: ConnectionSlots) -> type[GuardedH11Protocol]:
    """A protocol class for one server: uvicorn instantiates it per connection with no extra arguments."""
    attrs: dict[str, object] = {"limits": limits, "slots": slots}
    return type("GuardedH11Protocol", (GuardedH11Protocol,), attrs)


class QuietDisconnects:
    """ASGI middleware: a client gone mid-request (or cut by a deadline) is not an app error."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            log.debug("client disconnected during %s %s", scope.get("method"), scope.get("path"))


class ListeningSocket(socket.socket):
    """A listening socket whose accept() reports running out of descriptors once per pause.

    asyncio's accept loop (up to ``backlog`` accepts per wake-up) logs every EMFILE it meets and
    schedules a retry for each: thousands of tracebacks a second. After the first failure this
    socket answers "nothing to accept" for a moment, which ends the loop; asyncio's retry then
    resumes accepting a second later.
    """

    _paused_until = 0.0

    def accept(self) -> tuple[socket.socket, Any]:
        if time.monotonic() < self._paused_until:
            raise BlockingIOError(errno.EAGAIN, "accept paused: out of file descriptors")
        try:
            return super().accept()
        except OSError as exc:
            if exc.errno in _OUT_OF_RESOURCES:
                self._paused_until = time.monotonic() + _ACCEPT_PAUSE
            raise


def bind_socket(host: str, port: int, what: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets whose
    # protocol says TCP, and accepted sockets take the listener's. With Nagle on, a response
    # written as headers then body waits for the client's delayed ACK: 40 ms per keep-alive request.
    sock = ListeningSocket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"{what}: cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class AsgiServer:
    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        what: str,
        tls: Any = None,
        limits: HttpServerLimits | None = None,
    ) -> None:
        """``tls``: anything with ``cert_file`` and ``key_file`` (PEM paths), or None for plain HTTP.

        ``limits``: connection limit and timeouts, ``HttpServerLimits()`` defaults if None.
        """
        self._sock = bind_socket(host, port, what)
        self.port: int = self._sock.getsockname()[1]
        self.limits = limits or HttpServerLimits()
        self.slots = ConnectionSlots(self.limits.max_connections)
        config = uvicorn.Config(
            QuietDisconnects(app),
            http=guarded_protocol(self.limits, self.slots),
            ws="none",
            # uvicorn's records go to the root logger's handlers (and its rate limit), not its own.
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
            ssl_certfile=tls.cert_file if tls else None,
            ssl_keyfile=tls.key_file if tls else None,
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
            self._task = None
        self._sock.close()
