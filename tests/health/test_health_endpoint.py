"""The health endpoint in process (Starlette's test client): agents named with a "/"."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.testclient import TestClient

from agentwatch.config import parse_config
from agentwatch.health_api import health_routes
from health.board import HealthBoard
from health.config import HealthConfig
from health.context import HealthContext
from health.digest import unpack
from tests.helpers.agent_runs import NOW, Spans
from tests.helpers.store import digest_spans


def test_an_agent_named_with_a_slash(tmp_path: Path) -> None:
    config_path = tmp_path / "agentwatch.yaml"
    config_path.write_text(f"storage:\n  data_dir: {tmp_path / 'data'}\n")
    config = parse_config(config_path.read_text(), str(config_path))
    spans = Spans("default")
    spans.run(-5, 100, agent="support/triage", fail=True)
    digest = digest_spans(config_path, spans.take())
    assert digest is not None
    board = HealthBoard(HealthConfig(), clock=lambda: NOW)
    board.absorb(unpack(digest), NOW)
    app = Starlette(routes=health_routes(config, board, HealthContext(HealthConfig(), tmp_path / "data")))
    with TestClient(app) as client:
        answer = client.get("/api/v1/agents/support%2Ftriage/health")
    assert answer.status_code == 200
    assert (answer.json()["agent"], answer.json()["runs"], answer.json()["failures"]) == (
        "support/triage",
        1,
        1,
    )
