"""A real ``agentwatch serve`` process on free loopback ports, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from storage.catalog import connect


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    workdir: Path
    extra_config: str = ""
    flush_interval: str = "100ms"
    http_max_body_mib: float = 1
    storage_extra: str = ""
    serve_args: tuple[str, ...] = ()
    otlp_extra: str = ""
    """More keys under ``receivers.otlp`` (indented four spaces), e.g. ``auth``."""
    grpc_extra: str = ""
    http_extra: str = ""
    """More keys under ``protocols.grpc`` / ``protocols.http`` (indented eight spaces), e.g. ``tls``."""
    """More ``storage:`` keys, each line indented by two spaces."""
    grpc_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def config_path(self) -> Path:
        return self.workdir / "agentwatch.yaml"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/v1/traces"

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    def write_config(self) -> None:
        self.config_path.write_text(
            f"""
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{self.grpc_port}
{self.grpc_extra}
      http:
        endpoint: 127.0.0.1:{self.http_port}
        max_request_body_size_mib: {self.http_max_body_mib}
{self.http_extra}
{self.otlp_extra}
storage:
  data_dir: {self.data_dir}
  flush_interval: {self.flush_interval}
{self.storage_extra}
api:
  endpoint: 127.0.0.1:{self.api_port}
{self.extra_config}
"""
        )

    def start(self, timeout: float = 90.0) -> ServerProcess:
        self.write_config()
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - kept open for the child
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentwatch",
                "serve",
                "--config",
                str(self.config_path),
                *self.serve_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.api_port}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.proc = None
        return code

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def query(self, sql: str) -> list[tuple[object, ...]]:
        return connect(self.data_dir).execute(sql).fetchall()

    def wait_for_count(self, sql: str, expected: int, timeout: float = 15.0) -> int:
        """Poll ``sql`` (a single count) until it equals ``expected``; return the last value."""
        deadline = time.monotonic() + timeout
        value = -1
        while time.monotonic() < deadline:
            value = int(self.query(sql)[0][0])  # type: ignore[call-overload]
            if value == expected:
                return value
            time.sleep(0.05)
        return value


def scrape(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The server's /metrics: each sample's value by (name, sorted labels)."""
    response = httpx.get(f"http://127.0.0.1:{server.api_port}/metrics")
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    out = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out
