"""What ``examples/`` ships works as the README says: the config validates, the Seer-style
dataset loads, and the sample ``python:`` target answers its cases."""

from __future__ import annotations

from pathlib import Path

import pytest

import receiver.synthetic.receiver  # noqa: F401 - imported at collection: its imports run `file` once
from agentwatch.config import load_config
from evals.datasets import load_dataset
from evals.targets.specs import from_spec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_the_example_config_is_valid_and_complete() -> None:
    config = load_config(EXAMPLES / "agentwatch.yaml")
    assert sorted(config.receivers) == ["otlp", "synthetic/expense"]
    assert [a.id for a in config.agents] == ["agt_7f3a9c21", "faq-bot"]
    assert [r.name for r in config.alerts.rules] == ["failing-agents", "works-for-the-owner-only", "slow"]
    assert config.alerts.notifiers["local-hook"].webhook_url == "http://127.0.0.1:9999/agentwatch"
    assert config.evals.production.sample_rate == 0.05
    assert list(config.pipelines["traces"].processors) == ["normalize", "classify", "cost"]
    assert config.processors["cost"].config.tenant_multipliers == {"globex": 1.1}


def test_the_example_dataset_is_seers_csv_and_the_sample_agent_answers_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cases = load_dataset(EXAMPLES / "expense_eval.csv")
    assert len(cases) == 5
    assert cases[0].query == "How do I file an expense report for a client dinner?"
    assert cases[0].eval_guidance == (
        "Says to file in Concur within 30 days, attach the itemised receipt and name the attendees"
    )
    monkeypatch.chdir(EXAMPLES.parent)  # the config names the target relative to the repository
    target = from_spec("python:examples/expense_agent.py:answer")
    result = target.invoke(cases[0])
    assert result.error is None
    assert result.output is not None and result.output.startswith("File expense reports in Concur within 30 days")
    assert [c.name for c in result.tool_calls] == ["search_policy"]
    assert result.citations == ("policy://expenses",)
