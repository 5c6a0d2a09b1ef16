"""The eval tests' dataset (eight cases, each about three topics the good agent names) and
``agentwatch eval run`` as a subprocess against the agents of ``tests.helpers.agents``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TOPICS = [["concur", "receipt", "manager"], ["travel", "budget", "approval"], ["laptop", "ticket", "warranty"],
          ["payroll", "calendar", "deadline"], ["badge", "security", "office"], ["vacation", "balance", "policy"],
          ["vpn", "password", "reset"], ["invoice", "vendor", "portal"]]  # fmt: skip


def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "cases.jsonl"
    lines = [
        json.dumps({"id": f"c{i}", "query": f"Question {i}?", "eval_guidance": f"Mentions {t[0]}, {t[1]} and {t[2]}",
                    "fields": {"topics": t}})
        for i, t in enumerate(TOPICS, start=1)
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def agentwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentwatch", *args], capture_output=True, text=True, check=False
    )


def eval_run(data: Path, cases: Path, function: str) -> dict[str, object]:
    result = agentwatch("eval", "run", "--agent", "expense-bot", "--dataset", str(cases), "--data-dir", str(data),
                        "--target", f"python:tests.helpers.agents:{function}", "--format", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc: dict[str, object] = json.loads(result.stdout)
    return doc
