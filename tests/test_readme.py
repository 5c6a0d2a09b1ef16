"""The README is executable documentation: every command of its ``sh`` blocks and its SQL block
runs, as written, against a server fed with the demo's traffic, and says something sensible.

The server is the README's own ``serve --config examples/agentwatch.yaml`` (the example config
reads its ports and the alert webhook from the environment, so the test gives it free ones), fed
by the README's ``demo --config examples/agentwatch.yaml`` (two tenants, each with its ingest
token). Every other command then runs in the README's order, from a directory holding a copy of
``examples/``, where ``./agentwatch-data`` is the server's data directory. Lines that run make or
pytest (the set-up and the test suite itself) are the only ones not run, and they are listed
here, so a new command cannot be skipped by accident.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import httpx
import pytest

from tests.helpers.fake_http import FakeServer, Reply
from tests.helpers.server import free_port

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
AGENTWATCH = ".venv/bin/agentwatch"
NOT_RUN = {  # the set-up and the test suite: what runs this test
    "make run",
    "make test",
    "make test-fast",
    "make bench",
    "make record-fixtures",
    ".venv/bin/pytest tests/receiver -q",
}


@dataclass(frozen=True)
class Command:
    line: str
    argv: list[str]  # after AGENTWATCH

    @property
    def verb(self) -> str:
        return self.argv[0]


def readme_commands() -> tuple[list[Command], list[str]]:
    """(agentwatch commands in README order, the other command lines)."""
    text = README.read_text()
    commands, others = [], []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for raw in block.splitlines():
            words = shlex.split(_without_comment(raw))
            if not words:
                continue
            if words[0] == AGENTWATCH:
                commands.append(Command(raw.strip(), words[1:]))
            else:
                others.append(" ".join(words))
    return commands, others


def _without_comment(line: str) -> str:
    """``line`` up to a ``#`` that starts a word outside quotes (a shell comment)."""
    quote = None
    for i, char in enumerate(line):
        if quote is not None:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def readme_sql() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", README.read_text(), re.S)


def test_every_readme_command_is_run_or_listed_as_the_setup() -> None:
    commands, others = readme_commands()
    assert set(others) == NOT_RUN
    assert len(commands) >= 15
    assert sum(1 for c in commands if c.verb == "serve") == 1


@dataclass
class Setup:
    cwd: Path
    env: dict[str, str]
    hook: FakeServer
    api: str
    demo: subprocess.CompletedProcess[str] | None = None

    def run(self, argv: list[str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agentwatch", *argv],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    cwd = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "examples", cwd / "examples")
    with FakeServer() as hook:
        hook.script("/agentwatch", Reply(200, {"ok": True}))
        ports = {name: free_port() for name in ("GRPC", "HTTP", "API")}
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "COLUMNS": "120",
            **{f"AGENTWATCH_{name}_ENDPOINT": f"127.0.0.1:{port}" for name, port in ports.items()},
            "ALERT_WEBHOOK_URL": f"{hook.url}/agentwatch",
        }
        (serve,) = [c for c in readme_commands()[0] if c.verb == "serve"]
        log = open(cwd / "server.log", "wb")  # noqa: SIM115 - kept open for the child
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentwatch", *serve.argv], cwd=cwd, env=env, stdout=log, stderr=log
        )
        api = f"http://127.0.0.1:{ports['API']}"
        try:
            _wait(lambda: _ready(api, proc, cwd), 120, "the README's serve command to be ready")
            setup = Setup(cwd, env, hook, api)
            (demo,) = [c for c in readme_commands()[0] if c.verb == "demo"]
            setup.demo = setup.run(demo.argv)
            assert setup.demo.returncode == 0, setup.demo.stderr
            _wait(lambda: _stored_runs(cwd) >= 200, 60, "the demo's runs in Parquet")
            yield setup
        finally:
            proc.terminate()
            assert proc.wait(60) == 0, (cwd / "server.log").read_text()
            log.close()


def _ready(api: str, proc: subprocess.Popen[bytes], cwd: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"serve exited {proc.returncode}:\n{(cwd / 'server.log').read_text()}")
    try:
        return httpx.get(f"{api}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _stored_runs(cwd: Path) -> int:
    try:
        con = duckdb.connect()
        rows = con.execute(
            "SELECT count(DISTINCT trace_id) FROM read_parquet('agentwatch-data/spans/**/*.parquet', "
            "hive_partitioning = true)".replace("agentwatch-data", str(cwd / "agentwatch-data"))
        ).fetchall()
        return int(rows[0][0])
    except duckdb.Error:
        return 0


def check(command: Command, result: subprocess.CompletedProcess[str], cwd: Path) -> None:
    """What each command must say, beyond exit status 0 and some output."""
    out = result.stdout
    argv = command.argv
    if command.verb == "query":
        if "json" in argv:
            rows = json.loads(out)
            assert rows and all(r["outcome"] != "success" for r in rows)
            assert {r["tenant"] for r in rows} == {"acme", "globex"}
        elif "csv" in argv:
            assert (
                out.startswith("trace_id,name,operation,model,duration_ms\n") and len(out.splitlines()) == 21
            )
        elif "spend_hourly" in command.line:  # the demo's teams are resource attributes
            assert all(team in out for team in ("finance", "it", "people", "sales")), out
        elif "run_costs" in command.line:
            assert "per_success" in out and "agt_7f3a9c21" in out
        else:
            assert "agt_7f3a9c21" in out and "auth_failed" in out
    elif command.verb == "report":
        if "--agent" in argv:
            assert "expense-bot (agt_7f3a9c21)" in out
        if "--tenant" in argv:
            doc = json.loads(out)
            assert {a["tenant"] for a in doc["agents"]} == {"acme"}
            assert {a["agent_name"] for a in doc["agents"]} == {"expense-bot", "it-helpdesk", "hr-policy"}
        if "-o" in argv:
            html = (cwd / argv[argv.index("-o") + 1]).read_text()
            assert "expense-bot (agt_7f3a9c21)" in html and ("<svg" in html or "<img" in html)
        elif "--format" not in argv:
            assert "sales-research" in out and "globex" in out
    elif command.verb == "cases":
        written = (cwd / argv[argv.index("-o") + 1]).read_text().splitlines()
        assert written and all(json.loads(line)["metadata"]["agent"] == "agt_7f3a9c21" for line in written)
        if "--feedback" in argv:  # the runs the demo's users rated down, their comments the guidance
            cases = [json.loads(line) for line in written]
            assert [(c["tags"], c["metadata"]["comments"]) for c in cases] == rated_down("expense-bot")
    elif command.verb == "eval":
        if argv[1] == "run":
            assert "spans: " in out and "through the running server's receiver" in out
        if argv[1] == "diff":
            doc = json.loads(out)
            assert doc["agent"] == "expense-bot" and doc["regression"] is False and doc["dimensions"]
    elif command.verb == "alerts" and argv[1] == "test":
        assert out == "local-hook: delivered (1 attempt)\n"
    elif command.verb == "alerts":
        assert "expense-bot (agt_7f3a9c21)" in out and "firing" in out
    elif command.verb == "cost":
        if "--forecast" in argv:
            assert "this month: spend to date and where it will end" in out and "acme" in out
        elif "--leaks" in argv:
            assert "where money leaks" in out and "expense-bot (agt_7f3a9c21)" in out
        elif "json" in argv:
            doc = json.loads(out)
            assert doc["total_usd"] > 0 and doc["rows"] and doc["cost_unknown_model"] == []
        else:
            assert "expense-bot (agt_7f3a9c21)" in out and "$" in out
    elif command.verb == "validate":
        assert out.startswith("examples/agentwatch.yaml: valid")


def test_every_readme_command_works_on_the_demo_data(setup: Setup) -> None:
    commands, _ = readme_commands()
    assert setup.demo is not None
    assert "sent 200 runs" in setup.demo.stdout and "tenants acme, globex" in setup.demo.stdout
    assert setup.demo.stdout.splitlines()[1] == (
        f"posted 29 pieces of the users' feedback on them to {setup.api} (21 negative)"
    )
    # serve and demo ran first (the fixture); the others run in the README's order.
    for command in [c for c in commands if c.verb not in ("demo", "serve")]:
        if command.verb == "alerts" and command.argv[1] == "list":
            # The alert loop evaluates every 30 s (the example's alerts.interval).
            _wait(lambda: _alerted(setup), 90, "the first alert event")
        result = setup.run(command.argv)
        assert result.returncode == 0, f"{command.line}\n{result.stdout}\n{result.stderr}"
        assert (result.stdout + result.stderr).strip(), command.line
        try:
            check(command, result, setup.cwd)
        except (AssertionError, KeyError, ValueError) as exc:
            raise AssertionError(f"{command.line}\n{result.stdout[:3000]}\n{result.stderr}") from exc
    sample = [seen.body for seen in setup.hook.seen if seen.body and seen.body.get("state") == "test"]
    assert sample and sample[0]["rule"] == "failing-agents", "alerts test sent no sample message"


def rated_down(agent: str) -> list[tuple[list[str], list[str]]]:
    """(tags, comments) of the cases of ``agent``'s runs the README's demo (200 runs, seed 7) has
    its users rate down, oldest first: what its plan says they do (11 runs of expense-bot: 10
    auth failures and one run that succeeded, by its spans)."""
    from agentwatch.demo_scenarios import DEGRADING, plan_runs
    from agentwatch.demo_scenarios.feedback import plan_feedback

    plans = plan_runs(200, 7, 0)  # who runs what, and how it ends, does not depend on when
    cases = []
    for piece in plan_feedback(plans, 7):
        plan = plans[piece.index]
        if plan.agent.name == agent and piece.negative:
            outcome = (
                "success" if plan.failure is None else "degraded" if plan.failure in DEGRADING else "failure"
            )
            cases.append((["negative-feedback", outcome], [piece.comment] if piece.comment else []))
    assert len(cases) == 11
    return cases


def _alerted(setup: Setup) -> bool:
    listed = setup.run(["alerts", "list", "--since", "7d", "--format", "json"])
    return listed.returncode == 0 and bool(json.loads(listed.stdout or "[]"))


def test_the_readme_sql_reads_the_files_directly(setup: Setup) -> None:
    (sql,) = readme_sql()
    con = duckdb.connect()
    os.chdir(setup.cwd)
    try:
        rows = con.execute(sql).fetchall()
    finally:
        os.chdir(ROOT)
    assert {r[0] for r in rows} == {"acme", "globex"}
    assert sum(int(r[3]) for r in rows) >= 800
