"""Connections accepted by the API and OTLP/HTTP ports have Nagle's algorithm off.

Without TCP_NODELAY a response written as headers then body waits for the client's delayed ACK:
every keep-alive request to the API took 44 ms (the health API's bench found it). asyncio sets
TCP_NODELAY only on sockets whose protocol is IPPROTO_TCP, which the listener must say.
"""

from __future__ import annotations

import asyncio
import socket

from core.httpserver import bind_socket


def test_accepted_connections_have_nodelay() -> None:
    async def accept_one() -> int:
        listener = bind_socket("127.0.0.1", 0, "api.endpoint")
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Protocol(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

        server = await asyncio.get_running_loop().create_server(Protocol, sock=listener)
        port = listener.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await asyncio.wait_for(seen, 5)
        finally:
            writer.close()
            server.close()
            await server.wait_closed()

    assert asyncio.run(accept_one()) != 0
