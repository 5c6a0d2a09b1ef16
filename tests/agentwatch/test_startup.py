"""Start-up: the ports open and exports are logged while the converter workers warm up;
``/readyz`` says when they are warm (issue 13: ``/healthz`` at once, ``/readyz`` when ready)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from agentwatch.config import parse_config
from agentwatch.converter import ProcessConverter
from agentwatch.service import Service
from storage.catalog import connect
from tests.helpers.otlp import make_trace
from tests.helpers.server import free_port

PROTO = {"Content-Type": "application/x-protobuf"}


class GatedConverter:
    """Wraps the real converter; ``ready`` only once the test opens the gate."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.gate = threading.Event()

    def ready(self) -> bool:
        return self.gate.is_set()

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def _config(tmp_path: Path, converter: str) -> tuple[object, int, int]:
    http_port, api_port = free_port(), free_port()
    config = parse_config(
        f"""
receivers:
  otlp:
    protocols:
      http: {{endpoint: "127.0.0.1:{http_port}"}}
storage: {{data_dir: "{tmp_path}", converter: {converter}, converter_workers: 1, flush_interval: 50ms}}
api: {{endpoint: "127.0.0.1:{api_port}"}}
""",
        "test",
    )
    return config, http_port, api_port


def test_exports_are_acknowledged_while_the_converter_warms_up(tmp_path: Path) -> None:
    config, http_port, api_port = _config(tmp_path, "inline")
    service = Service(config)  # type: ignore[arg-type]
    gated = GatedConverter(service.converter)
    service.converter = gated  # type: ignore[assignment]
    service.start()
    try:
        api = f"http://127.0.0.1:{api_port}"
        assert httpx.get(f"{api}/healthz").status_code == 200
        answer = httpx.get(f"{api}/readyz")
        assert (answer.status_code, answer.json()) == (
            503,
            {"status": "starting: converter workers warming up"},
        )
        body = encode_spans(make_trace()).SerializeToString()
        assert (
            httpx.post(f"http://127.0.0.1:{http_port}/v1/traces", content=body, headers=PROTO).status_code
            == 200
        )
        gated.gate.set()
        answer = httpx.get(f"{api}/readyz")
        assert (answer.status_code, answer.json()) == (200, {"status": "ready"})
    finally:
        service.stop()
    assert connect(tmp_path).execute("SELECT count(*) FROM spans").fetchone() == (3,)


@pytest.mark.process  # spawns a converter worker
def test_the_process_converter_starts_without_waiting_for_its_workers(tmp_path: Path) -> None:
    config, _, _ = _config(tmp_path, "process")
    converter = ProcessConverter(config)  # type: ignore[arg-type]
    started = time.monotonic()
    converter.start()
    try:
        # A spawned interpreter cannot have imported numba and warmed the kernels by now.
        assert converter.ready() is False
        while not converter.ready():
            assert time.monotonic() - started < 120, "the worker never became ready"
            time.sleep(0.02)
    finally:
        converter.shutdown()
