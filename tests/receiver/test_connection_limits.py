"""Idle connections cannot exhaust the process: connection limits, handshake and idle timeouts.

The end-to-end test runs the real server with 128 file descriptors and opens 200 idle
connections to its HTTP port; the gRPC tests run the transport in process and speak raw
HTTP/2 to it, so what is observed is what the server does on the wire.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import subprocess
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from core.errors import RequestError
from receiver.otlp.grpc_transport import (
    GrpcServerLimits,
    GrpcTransport,
    KeepaliveConfig,
    KeepaliveEnforcementPolicy,
    KeepaliveServerParameters,
    server_options,
)
from tests.helpers.otlp import make_trace
from tests.helpers.server import ServerProcess

GENEROUS = 20.0
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = bytes(3) + b"\x04\x00" + bytes(4)
SETTINGS_ACK = bytes(3) + b"\x04\x01" + bytes(4)
GOAWAY = 7
SETTINGS = 4


def _limit_descriptors(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


@pytest.fixture
def fd_starved_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    """The real server with soft and hard RLIMIT_NOFILE 128 and at most 50 HTTP connections."""
    popen: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", partial(popen, preexec_fn=partial(_limit_descriptors, 128)))
    http = "        max_connections: 50\n        read_header_timeout: 60s\n        read_timeout: 60s\n"
    server = ServerProcess(tmp_path, http_extra=http)
    try:
        server.start()
    finally:
        monkeypatch.undo()
    yield server
    server.kill()


@pytest.mark.process
def test_idle_connections_cannot_starve_http_grpc_or_the_api(fd_starved_server: ServerProcess) -> None:
    server = fd_starved_server
    # More idle connections than the process has descriptors; the header timeout (60 s) never
    # fires during the test, so what keeps the service up is the connection limit alone.
    idle = [socket.create_connection(("127.0.0.1", server.http_port)) for _ in range(200)]
    try:
        http_exporter = HttpExporter(endpoint=server.http_url, timeout=GENEROUS)
        assert http_exporter.export(make_trace("over-http")) == SpanExportResult.SUCCESS
        grpc_exporter = GrpcExporter(endpoint=server.grpc_endpoint, insecure=True, timeout=GENEROUS)
        assert grpc_exporter.export(make_trace("over-grpc")) == SpanExportResult.SUCCESS
        health = httpx.get(f"http://127.0.0.1:{server.api_port}/healthz", timeout=GENEROUS)
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        assert server.wait_for_count("SELECT count(*) FROM spans", 6, timeout=GENEROUS) == 6
        assert server.query("SELECT service_name, count(*) FROM spans GROUP BY ALL ORDER BY ALL") == [
            ("over-grpc", 3),
            ("over-http", 3),
        ]
    finally:
        for sock in idle:
            sock.close()
    # Accept errors, if a burst met the limit at all, are reported once per second, not per try.
    assert server.log().count("socket.accept() out of system resource") <= 10


class _NoExports:
    """The export handler of transports that only see connections, never calls."""

    def note_refusal(self, exc: RequestError) -> None:
        raise AssertionError(f"unexpected refusal: {exc}")


def _limits(
    idle: float | None = None, handshake: float = 60.0, max_connections: int = 1000
) -> GrpcServerLimits:
    params = KeepaliveServerParameters(max_connection_idle=idle)
    return GrpcServerLimits(max_connections, handshake_timeout=handshake, keepalive=KeepaliveConfig(params))


async def _grpc_server(limits: GrpcServerLimits) -> GrpcTransport:
    transport = GrpcTransport(_NoExports(), "127.0.0.1", 0, 1024 * 1024, limits=limits)  # type: ignore[arg-type]
    await transport.start()
    return transport


async def _read_to_eof(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), GENEROUS)


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    """(type, payload) of each HTTP/2 frame in ``data``."""
    frames, offset = [], 0
    while offset + 9 <= len(data):
        length = int.from_bytes(data[offset : offset + 3], "big")
        frames.append((data[offset + 3], data[offset + 9 : offset + 9 + length]))
        offset += 9 + length
    return frames


def _settings(payload: bytes) -> dict[int, int]:
    return {
        int.from_bytes(payload[i : i + 2], "big"): int.from_bytes(payload[i + 2 : i + 6], "big")
        for i in range(0, len(payload), 6)
    }


def test_an_idle_grpc_connection_is_closed_after_max_connection_idle() -> None:
    async def scenario() -> list[tuple[int, bytes]]:
        transport = await _grpc_server(_limits(idle=1.0))
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", transport.port)
            writer.write(PREFACE + EMPTY_SETTINGS + SETTINGS_ACK)  # a complete handshake, then nothing
            frames = _frames(await _read_to_eof(reader))
            writer.close()
            return frames
        finally:
            await transport.stop(0)

    frames = asyncio.run(scenario())
    assert _settings(frames[0][1])[3] == 100  # SETTINGS_MAX_CONCURRENT_STREAMS: max_concurrent_streams
    kind, payload = frames[-1]
    assert (kind, payload[8:]) == (GOAWAY, b"connection idle")


def test_a_grpc_connection_that_never_handshakes_is_closed_after_handshake_timeout() -> None:
    async def scenario() -> bytes:
        transport = await _grpc_server(_limits(idle=None, handshake=1.0))  # idle connections never closed
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", transport.port)
            data = await _read_to_eof(reader)  # not even the HTTP/2 preface is sent
            writer.close()
            return data
        finally:
            await transport.stop(0)

    kind, payload = _frames(asyncio.run(scenario()))[-1]
    assert (kind, payload[8:]) == (GOAWAY, b"Did not receive HTTP/2 settings before handshake timeout")


async def _first_frame_once_admitted(port: int) -> int:
    """The type of the server's first frame on a connection, retrying while connections are refused."""
    async with asyncio.timeout(GENEROUS):
        while True:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(PREFACE + EMPTY_SETTINGS)
            try:
                return (await reader.readexactly(9))[3]
            except (asyncio.IncompleteReadError, ConnectionResetError):  # refused: others not yet seen gone
                await asyncio.sleep(0.1)
            finally:
                writer.close()


def test_grpc_connections_past_max_connections_are_closed_when_accepted() -> None:
    async def scenario() -> tuple[list[bool], int]:
        transport = await _grpc_server(_limits(max_connections=3))
        try:
            streams = [await asyncio.open_connection("127.0.0.1", transport.port) for _ in range(6)]
            for reader, _ in streams[3:]:
                assert await _read_to_eof(reader) == b""
            await asyncio.sleep(0.5)
            still_open = [not reader.at_eof() for reader, _ in streams]
            # A slot frees when a connection closes.
            for _, writer in streams[:3]:
                writer.close()
            return still_open, await _first_frame_once_admitted(transport.port)
        finally:
            await transport.stop(0)

    still_open, first_frame = asyncio.run(scenario())
    assert still_open == [True, True, True, False, False, False]
    assert first_frame == SETTINGS


def test_grpc_server_options_follow_the_config() -> None:
    assert server_options(GrpcServerLimits(), 16 * 1024 * 1024) == [
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
        ("grpc.so_reuseport", 0),
        ("grpc.max_allowed_incoming_connections", 1000),
        ("grpc.max_concurrent_streams", 100),
        ("grpc.server_handshake_timeout_ms", 10_000),
        ("grpc.keepalive_time_ms", 7_200_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 300_000),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.max_connection_idle_ms", 60_000),
    ]
    limits = GrpcServerLimits(
        keepalive=KeepaliveConfig(
            KeepaliveServerParameters(
                max_connection_idle=None, max_connection_age=3600, max_connection_age_grace=5
            ),
            KeepaliveEnforcementPolicy(min_time=10, permit_without_stream=True),
        )
    )
    assert server_options(limits, 1)[-4:] == [
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.max_connection_age_ms", 3_600_000),
        ("grpc.max_connection_age_grace_ms", 5_000),
    ]


def test_limit_keys_parse_durations_and_are_validated_with_their_keys() -> None:
    from agentwatch.config import parse_config
    from core.errors import ConfigError

    good = """receivers:
  otlp:
    protocols:
      grpc:
        max_connections: 10
        keepalive:
          server_parameters:
            max_connection_idle: 90s
            max_connection_age: 1h
          enforcement_policy:
            min_time: 30s
      http:
        read_header_timeout: 500ms
        idle_timeout: 2m
"""
    config = parse_config(good, "cfg.yaml", {})
    otlp = config.receivers["otlp"].config
    grpc, http = otlp.protocols.grpc, otlp.protocols.http
    params = grpc.keepalive.server_parameters
    assert (grpc.max_connections, params.max_connection_idle, params.max_connection_age) == (10, 90.0, 3600.0)
    assert (params.max_connection_age_grace, grpc.keepalive.enforcement_policy.min_time) == (None, 30.0)
    assert (http.max_connections, http.read_header_timeout, http.read_timeout, http.idle_timeout) == (
        1000,
        0.5,
        30.0,
        120.0,
    )
    unparsable = good.replace("idle_timeout: 2m", "idle_timeout: forever")
    with pytest.raises(ConfigError) as info:
        parse_config(unparsable, "cfg.yaml", {})
    assert info.value.problems == [
        "cfg.yaml:14: receivers.otlp.protocols.http.idle_timeout: 'forever' is not a duration: "
        "use a number of seconds or e.g. '500ms', '2s', '15m', '7d'"
    ]
    bad = """receivers:
  otlp:
    protocols:
      grpc:
        max_connections: 0
        keepalive:
          server_parameters:
            timeout: 0s
      http:
        read_header_timeout: 1m
"""
    with pytest.raises(ConfigError) as info:
        parse_config(bad, "cfg.yaml", {})
    assert info.value.problems == [
        "cfg.yaml:5: receivers.otlp.protocols.grpc.max_connections: must be at least 1",
        "cfg.yaml:8: receivers.otlp.protocols.grpc.keepalive.server_parameters.timeout: must be positive",
        "cfg.yaml:9: receivers.otlp.protocols.http.read_timeout: must be at least read_header_timeout (it includes the headers)",
    ]
