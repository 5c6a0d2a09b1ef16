"""``agentwatch report`` on the health fixture, every format, numbers computed by hand.

The fixture is stored in process and the CLI runs in process (click's runner), so the numbers are
checked in ``make test-fast``; only the Chromium test starts a process.

Percentiles are linear interpolation between closest ranks: for durations 1000..8000 ms the
p90 sits at rank 0.9 * 7 = 6.3, so 7000 + 0.3 * 1000 = 7300.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agentwatch.cli import main
from tests.helpers.health_fixture import AGENTS_CONFIG, ANSWER, QUESTION, UNTIL, store_fixture, trace_hex
from tests.helpers.server import ServerProcess

TIMEOUT_TEMPLATE = "deadline exceeded after <n> for request <n>"
RATE_TEMPLATE = "<n> Too Many Requests: retry after <n>"
TOOL_TEMPLATE = "ticket <n> not found"


def cluster_id(failure_type: str, template: str) -> str:
    return hashlib.md5(f"{failure_type}|{template}".encode()).hexdigest()[:8]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    """The fixture stored in process under a server's config (never started), which the CLI reads."""
    server = ServerProcess(tmp_path_factory.mktemp("health"), extra_config=AGENTS_CONFIG)
    server.write_config()
    spans = store_fixture(server.config_path)
    assert spans == 14
    assert server.wait_for_count("SELECT count(*) FROM spans", spans) == spans
    return server


def cli(*args: str) -> Result:
    """The CLI, in process."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def report(server: ServerProcess, *args: str) -> str:
    result = cli("report", "--config", str(server.config_path), "--since", "1d", "--until", UNTIL, *args)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_json_report_numbers(stored: ServerProcess) -> None:
    doc = json.loads(report(stored, "--format", "json"))
    assert doc["schema"] == "agentwatch.report/v1"
    assert doc["window"] == {
        "since": "2025-11-21T12:00:00Z",
        "until": "2025-11-22T12:00:00Z",
        "bucket_seconds": 3600,
    }
    assert doc["filters"] == {"agent": None, "tenant": None, "synthetic": False}
    assert doc["synthetic_runs_left_out"] == 0
    assert doc["runs"] == 11
    expense, faq = doc["agents"]
    buckets = expense.pop("buckets")
    assert expense == {
        "tenant": "default",
        "agent": "expense-bot",
        "agent_name": None,  # the spans name no agent but by its id
        "owner": "alice@acme.com",
        "owner_source": "config",
        "runs": 8,
        "failures": 4,
        "degraded": 1,
        "failure_rate": 0.5,
        # quantile_cont: linear between closest ranks (p95 of 8 runs: 6.65 of the way, 7000 → 8000)
        "latency_ms": {"p50": 4500.0, "p90": 7300.0, "p95": pytest.approx(7650.0, abs=1e-9), "p99": 7930.0},
        "last_failure_at": "2025-11-22T11:30:00Z",
        "last_run_at": "2025-11-22T11:50:00Z",
        "failure_types": [
            {"failure_type": "timeout", "count": 3, "share": 0.75},
            {"failure_type": "rate_limit", "count": 1, "share": 0.25},
        ],
        "affected_users": {
            "count": 3,
            "top": [
                {"user_id": "bob@acme.com", "runs": 2, "failures": 2},
                {"user_id": "carol@acme.com", "runs": 1, "failures": 1},
                {"user_id": "dave@acme.com", "runs": 1, "failures": 1},
            ],
        },
        "cross_user": {
            "flag": True,
            "loud": True,
            "other_users_failing": 3,
            "other_user_failures": 4,
            "owner_runs": 2,
            "owner_failures": 0,
            "message": "FAILING FOR OTHERS ONLY: 3 user(s) besides the owner had 4 failed run(s) "
            "while all 2 of the owner's runs succeeded",
        },
        "feedback": None,  # no user said anything
        "implicit_feedback": None,  # read for one agent's report only
        "fallbacks": None,  # the same
    }
    assert len(buckets) == 24
    assert [b["runs"] for b in buckets[:22]] == [0] * 22
    assert buckets[0] == {
        "start": "2025-11-21T12:00:00Z", "runs": 0, "failures": 0, "failure_rate": None,
        "p50_ms": None, "p90_ms": None, "p99_ms": None,
    }  # fmt: skip
    assert buckets[22] == {
        "start": "2025-11-22T10:00:00Z", "runs": 3, "failures": 1, "failure_rate": 1 / 3,
        "p50_ms": 2000.0, "p90_ms": 2800.0, "p99_ms": 2980.0,
    }  # fmt: skip
    assert buckets[23] == {
        "start": "2025-11-22T11:00:00Z", "runs": 5, "failures": 3, "failure_rate": 0.6,
        "p50_ms": 6000.0, "p90_ms": 7600.0, "p99_ms": 7960.0,
    }  # fmt: skip
    faq.pop("buckets")
    assert faq["owner"] == "frank@acme.com"
    assert faq["owner_source"] == "spans"
    assert (faq["runs"], faq["failures"], faq["degraded"]) == (3, 2, 0)
    assert faq["failure_rate"] == 2 / 3
    assert faq["latency_ms"] == {"p50": 1500.0, "p90": 2300.0, "p95": pytest.approx(2400.0), "p99": 2480.0}
    assert faq["failure_types"] == [
        {"failure_type": "rate_limit", "count": 1, "share": 0.5},
        {"failure_type": "timeout", "count": 1, "share": 0.5},
    ]
    assert faq["affected_users"] == {
        "count": 2,
        "top": [
            {"user_id": "frank@acme.com", "runs": 2, "failures": 1},
            {"user_id": "gina@acme.com", "runs": 1, "failures": 1},
        ],
    }
    assert faq["cross_user"] == {
        "flag": True, "loud": False, "other_users_failing": 1, "other_user_failures": 1,
        "owner_runs": 2, "owner_failures": 1, "message": "1 user(s) besides the owner had 1 failed run(s)",
    }  # fmt: skip
    assert doc["signals"] == [
        {
            "id": cluster_id("timeout", TIMEOUT_TEMPLATE), "failure_type": "timeout", "template": TIMEOUT_TEMPLATE,
            "count": 4, "first_seen": "2025-11-22T09:10:00Z", "last_seen": "2025-11-22T11:30:00Z",
            "agents": ["expense-bot", "faq-bot"], "affected_users": 3,
            "users": ["bob@acme.com", "carol@acme.com", "frank@acme.com"],
            "example_trace_ids": [trace_hex(6), trace_hex(4), trace_hex(3)],
        },
        {
            "id": cluster_id("rate_limit", RATE_TEMPLATE), "failure_type": "rate_limit", "template": RATE_TEMPLATE,
            "count": 2, "first_seen": "2025-11-22T09:20:00Z", "last_seen": "2025-11-22T11:20:00Z",
            "agents": ["expense-bot", "faq-bot"], "affected_users": 2,
            "users": ["dave@acme.com", "gina@acme.com"], "example_trace_ids": [trace_hex(5), trace_hex(103)],
        },
        {
            "id": cluster_id("tool_error", TOOL_TEMPLATE), "failure_type": "tool_error", "template": TOOL_TEMPLATE,
            "count": 1, "first_seen": "2025-11-22T11:40:00Z", "last_seen": "2025-11-22T11:40:00Z",
            "agents": ["expense-bot"], "affected_users": 1, "users": ["erin@acme.com"],
            "example_trace_ids": [trace_hex(7)],
        },
    ]  # fmt: skip


def test_one_agent_and_tenant_filters(stored: ServerProcess) -> None:
    doc = json.loads(report(stored, "--format", "json", "--agent", "faq-bot"))
    assert doc["filters"] == {"agent": "faq-bot", "tenant": None, "synthetic": False}
    assert [(a["agent"], a["runs"]) for a in doc["agents"]] == [("faq-bot", 3)]
    # Equal counts: ordered by cluster id.
    tied = sorted(
        [
            (cluster_id("rate_limit", RATE_TEMPLATE), "rate_limit"),
            (cluster_id("timeout", TIMEOUT_TEMPLATE), "timeout"),
        ]
    )
    assert [(s["id"], s["failure_type"], s["count"]) for s in doc["signals"]] == [(i, t, 1) for i, t in tied]
    assert json.loads(report(stored, "--format", "json", "--tenant", "globex"))["agents"] == []


def test_implicit_feedback_for_every_agent_on_request_is_each_agents_own(stored: ServerProcess) -> None:
    every = json.loads(report(stored, "--format", "json", "--implicit"))["agents"]
    assert [a["agent"] for a in every] == ["expense-bot", "faq-bot"]
    for agent in every:
        alone = json.loads(report(stored, "--format", "json", "--agent", agent["agent"]))["agents"][0]
        assert agent["implicit_feedback"] == alone["implicit_feedback"] is not None
        assert agent["fallbacks"] == alone["fallbacks"] is not None
    assert agent["implicit_feedback"]["runs"] == 3  # faq-bot's
    without = json.loads(report(stored, "--format", "json", "--agent", "faq-bot", "--no-implicit"))
    assert without["agents"][0]["implicit_feedback"] is None


def test_text_report(stored: ServerProcess) -> None:
    text = report(stored)
    assert (
        "agentwatch health report  2025-11-21 12:00:00 UTC → 2025-11-22 12:00:00 UTC  (11 runs, 2 agents"
        in text
    )
    assert (
        "!! FAILING FOR OTHERS ONLY: 3 user(s) besides the owner had 4 failed run(s) while all 2 of the "
        "owner's runs succeeded" in text
    )
    assert "cross-user: 1 user(s) besides the owner had 1 failed run(s)" in text
    assert "failure types: timeout 3 (75.0%), rate_limit 1 (25.0%)" in text
    assert (
        "most affected users: bob@acme.com (2/2 failed), carol@acme.com (1/1 failed), dave@acme.com (1/1 failed)"
        in text
    )
    # 22 empty buckets, then 1/3 (▃) and 60% (▅) failed.
    assert "failure rate over time: [" + "·" * 22 + "▃▅]" in text
    assert "p99 latency per bucket: min 2.98 s, max 7.96 s" in text


def test_markdown_report(stored: ServerProcess) -> None:
    md = report(stored, "--format", "markdown")
    assert md.startswith("# agentwatch health report\n")
    assert (
        "| default | expense-bot | alice@acme.com | 8 | 4 | 50.0% | 1 | 4.50 s | 7.30 s | 7.93 s "
        "| 2025-11-22 11:30:00 UTC | 3 | **LOUD** |" in md
    )
    assert (
        "| default | faq-bot | frank@acme.com | 3 | 2 | 66.7% | 0 | 1.50 s | 2.30 s | 2.48 s "
        "| 2025-11-22 09:20:00 UTC | 2 | yes |" in md
    )
    assert "| timeout | 3 | 75.0% |" in md
    assert "| bob@acme.com | 2 | 2 |" in md
    timeout = cluster_id("timeout", TIMEOUT_TEMPLATE)
    # Data is escaped Markdown text (no code span): the template reads "... after <n> for request <n>".
    assert f"| {timeout} | timeout | deadline exceeded after &lt;n&gt; for request &lt;n&gt; | 4 |" in md


def test_html_report_is_self_contained(stored: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    report(stored, "--format", "html", "-o", str(out))
    page = out.read_text()
    assert page.startswith("<!doctype html>")
    # Nothing is fetched: no scripts, stylesheets, images or fonts by URL (xmlns names are not loads).
    for needle in ("<script", "<link", "<img", "@import", 'src="', 'href="http', "url(http"):
        assert needle not in page, needle
    assert page.count("<svg") == 4  # two charts per agent
    assert '<p class="loud" data-cross-user="true">FAILING FOR OTHERS ONLY: 3 user(s)' in page
    assert (
        "<td>expense-bot</td><td>alice@acme.com</td><td class=n>8</td><td class=n>4</td><td class=n>50.0%</td>"
        in page
    )


@pytest.mark.process  # Chromium
def test_html_report_in_headless_chromium(stored: ServerProcess, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed: make browser installs it (root with apt-get)")
    out = tmp_path / "report.html"
    report(stored, "--format", "html", "-o", str(out))
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = artifacts / "health-report.png"
    shot.unlink(missing_ok=True)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,2000"]
    result = subprocess.run(
        [chromium, *flags, f"--screenshot={shot}", out.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a rendered page with charts, not a blank one
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr
    assert dom.stdout.count("<svg") == 4
    assert "FAILING FOR OTHERS ONLY" in dom.stdout


def test_cases_export(stored: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "cases.jsonl"
    command = ["cases", "export", "--config", str(stored.config_path),
               "--agent", "expense-bot", "--since", "1d", "--until", UNTIL, "-o", str(out)]  # fmt: skip
    result = cli(*command)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.strip() == f"wrote 5 cases to {out}"
    cases = [json.loads(line) for line in out.read_text().splitlines()]
    assert [c["metadata"]["trace_id"] for c in cases] == [trace_hex(n) for n in (3, 4, 5, 6, 7)]
    assert cases[0] == {
        "id": f"prod-{trace_hex(3)}",
        "query": QUESTION,
        "eval_guidance": "Answers the request without the production failure "
        "(timeout: deadline exceeded after 30000ms for request 789)",
        "tags": ["production-failure", "timeout"],
        "metadata": {
            "trace_id": trace_hex(3), "failure_type": "timeout",
            "cluster_id": cluster_id("timeout", TIMEOUT_TEMPLATE),
            "error_message": "deadline exceeded after 30000ms for request 789", "failing_output": None,
            "agent": "expense-bot", "tenant": "default", "user_id": "bob@acme.com",
            "observed_at": "2025-11-22T10:30:00Z",
        },
    }  # fmt: skip
    assert cases[4]["metadata"]["failing_output"] == ANSWER  # the degraded run answered
    assert cases[4]["tags"] == ["production-failure", "tool_error"]
    one = tmp_path / "timeouts.jsonl"
    cluster = cluster_id("timeout", TIMEOUT_TEMPLATE)
    result = cli(*command[:-1], str(one), "--cluster", cluster)
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["metadata"]["trace_id"] for line in one.read_text().splitlines()] == [
        trace_hex(3),
        trace_hex(4),
        trace_hex(6),
    ]


def test_bad_since_names_the_option(stored: ServerProcess) -> None:
    result = cli("report", "--data-dir", str(stored.data_dir), "--since", "7 days")
    assert result.exit_code == 2
    assert (
        "--since: '7 days' is not a duration: use a number of seconds or e.g. '500ms', '2s', '15m', '7d'"
        in result.stderr
    )
