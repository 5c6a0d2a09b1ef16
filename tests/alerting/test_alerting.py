"""Alerting over the health fixture (stored through the pipelines, in process), with an injected
clock and a local webhook server recording what Slack and a generic webhook would receive."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentwatch.config import parse_config
from alerting.alerting import Alerting
from alerting.config import AlertsConfig, NotifierConfig, RuleConfig
from alerting.messages import Message, headline, lines, webhook_payload
from core.agents import AgentConfig
from core.errors import ConfigError
from storage.catalog import connect
from storage.tables import AlertEventRow, EvalEventRow, write_rows
from tests.helpers.fake_http import FakeServer, Reply
from tests.helpers.health_fixture import AGENTS_CONFIG, store_fixture, trace_hex
from tests.helpers.server import ServerProcess
from tests.helpers.store import store_spans

OWNERS = (AgentConfig("expense-bot", owner="alice@acme.com"),)


def at(hhmm: str, day: str = "2025-11-22") -> datetime:
    return datetime.strptime(f"{day} {hhmm}", "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = at("12:00")

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def fixture_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    server = ServerProcess(tmp_path_factory.mktemp("alerts"), extra_config=AGENTS_CONFIG)
    server.write_config()  # the config a server would run with; stored in process, never started
    spans = store_fixture(server.config_path)
    assert server.wait_for_count("SELECT count(*) FROM spans", spans) == spans
    yield server.data_dir


@pytest.fixture
def data(fixture_data: Path, tmp_path: Path) -> Path:
    """A copy per test: alert events one test stores never restore state in another."""
    return Path(shutil.copytree(fixture_data, tmp_path / "data"))


def notifiers(url: str, retries: int = 2) -> dict[str, NotifierConfig]:
    return {
        "slack": NotifierConfig("slack", f"{url}/slack", backoff=0.01, retries=retries),
        "hook": NotifierConfig("webhook", f"{url}/hook", headers={"X-Token": "t0k"}, backoff=0.01, retries=retries),
    }  # fmt: skip


FAILING = RuleConfig("failing-agents", "failure_rate", threshold=0.2, window=3 * 3600, min_runs=5,
                     notify=("slack", "hook"))  # fmt: skip


def test_fire_hold_repeat_resolve(data: Path) -> None:
    clock = Clock()
    with FakeServer() as fake:
        fake.script("/slack", Reply(200, raw=b"ok"))
        fake.script("/hook", Reply(204, raw=b""))
        config = AlertsConfig(cooldown=1800, public_url="https://aw.acme.com", rules=(FAILING,),
                              notifiers=notifiers(fake.url))  # fmt: skip
        alerting = Alerting(config, OWNERS, data, clock)
        states = []
        for hhmm in ("12:00", "12:20", "12:35", "14:45", "15:00"):
            clock.now = at(hhmm)
            states.append([(t.state, t.finding.agent) for t in alerting.run_once()])
        alerting.stop()
    # faq-bot (3 runs, 2 failed) has too few runs: it never fires.
    assert states == [[("firing", "expense-bot")], [], [("repeat", "expense-bot")],
                      [("resolved", "expense-bot")], []]  # fmt: skip
    slack = [s.body for s in fake.seen if s.path == "/slack"]
    hooks = [s.body for s in fake.seen if s.path == "/hook"]
    assert [h["state"] for h in hooks] == ["firing", "repeat", "resolved"]
    assert len(slack) == 3
    head = "[failing-agents] expense-bot in default: failure rate 50% &gt; 20% (4 of 8 runs in the last 3h)"
    assert slack[0] == {
        "text": f":rotating_light: FIRING {head}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*:rotating_light: FIRING {head}*"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join([
                "*Value:* 0.5 (threshold 0.2)",
                "*Runs:* 8",
                "*Affected users:* 3",
                "*Top failure types:* timeout x3, rate_limit x1",
                "*Example traces:* "  # each links to its trace page under alerts.public_url
                + ", ".join(f"<https://aw.acme.com/traces/{trace_hex(n)}|{trace_hex(n)}>" for n in (6, 5, 4)),
                "<https://aw.acme.com/agents/expense-bot?tenant=default|Open expense-bot in agentwatch>",
            ])}},
        ],
    }  # fmt: skip
    assert slack[1]["text"] == (
        ":rotating_light: STILL FIRING [failing-agents] expense-bot in default: failure rate 44% &gt; 20% "
        "(4 of 9 runs in the last 3h)"
    )
    # Resolved with what holds now, not the value it last fired with.
    assert slack[2]["text"] == (
        ":white_check_mark: RESOLVED [failing-agents] expense-bot in default: 2 runs in the last 3h, "
        "fewer than min_runs 5"
    )
    assert slack[2]["blocks"][1]["text"]["text"].splitlines()[:2] == [
        "*Now:* 2 runs in the last 3h, fewer than min_runs 5",
        "*Was:* failure rate 44% &gt; 20% (4 of 9 runs in the last 3h)",
    ]
    assert hooks[2]["now"] == "2 runs in the last 3h, fewer than min_runs 5"
    assert "now" not in hooks[0]
    assert hooks[0] == {
        "schema": "agentwatch.alert/v1", "state": "firing", "rule": "failing-agents", "kind": "failure_rate",
        "tenant": "default", "agent": "expense-bot", "agent_name": None, "value": 0.5, "threshold": 0.2,
        "summary": "failure rate 50% > 20% (4 of 8 runs in the last 3h)", "runs": 8, "affected_users": 3,
        "top_failure_types": [{"failure_type": "timeout", "count": 3}, {"failure_type": "rate_limit", "count": 1}],
        "example_trace_ids": [trace_hex(6), trace_hex(5), trace_hex(4)],
        "url": "https://aw.acme.com/agents/expense-bot?tenant=default",
        "trace_urls": [f"https://aw.acme.com/traces/{trace_hex(n)}" for n in (6, 5, 4)],
        "time": "2025-11-22T12:00:00+00:00", "fired_at": "2025-11-22T12:00:00+00:00",
    }  # fmt: skip
    assert (
        hooks[2]["fired_at"] == "2025-11-22T12:00:00+00:00"
        and hooks[2]["time"] == "2025-11-22T14:45:00+00:00"
    )
    assert {s.headers["X-Token"] for s in fake.seen if s.path == "/hook"} == {"t0k"}
    events = (
        connect(data)
        .execute("SELECT state, strftime(time, '%H:%M'), delivered, failed FROM alert_events ORDER BY time")
        .fetchall()
    )
    assert events == [("firing", "12:00", '["slack","hook"]', "{}"), ("repeat", "12:35", '["slack","hook"]', "{}"),
                      ("resolved", "14:45", '["slack","hook"]', "{}")]  # fmt: skip


def test_state_survives_a_restart(data: Path) -> None:
    clock = Clock()
    with FakeServer() as fake:
        fake.script("/slack", Reply(200, raw=b"ok"))
        config = AlertsConfig(cooldown=1800, rules=(replace(FAILING, notify=("slack",)),),
                              notifiers=notifiers(fake.url))  # fmt: skip
        first = Alerting(config, OWNERS, data, clock)
        assert [t.state for t in first.run_once()] == ["firing"]
        first.stop()
        clock.now = at("12:10")  # a new process: the alert is still firing, within its cooldown
        second = Alerting(config, OWNERS, data, clock)
        assert second.run_once() == []
        second.stop()
    assert len(fake.seen) == 1


def test_a_failing_notifier_is_retried_logged_and_does_not_stop_the_other(
    data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeServer() as fake:
        fake.script("/slack", Reply(200, raw=b"ok"))
        fake.script("/hook", Reply(500, {"error": "down"}))
        config = AlertsConfig(rules=(FAILING,), notifiers=notifiers(fake.url, retries=2))
        alerting = Alerting(config, OWNERS, data, Clock())
        with caplog.at_level(logging.ERROR, logger="agentwatch.alerts"):
            assert [t.state for t in alerting.run_once()] == ["firing"]
        alerting.stop()
    assert [s.path for s in fake.seen] == ["/slack", "/hook", "/hook", "/hook"]
    assert alerting.stats.deliveries_failed == 1 and alerting.stats.messages == 1
    assert caplog.messages == [
        'alert firing [failing-agents] to hook failed after 3 attempts: HTTP 500: {"error": "down"}'
    ]
    assert connect(data).execute("SELECT delivered, failed FROM alert_events").fetchall() == [
        ('["slack"]', '{"hook":"HTTP 500: {\\"error\\": \\"down\\"}"}')
    ]


def test_rule_kinds_on_the_fixture(data: Path) -> None:
    write_rows(data, "default", at("11:30"), [EvalEventRow(
        event="canary_drop", agent="expense-bot", run_id="r2", baseline_run="r1",
        dimensions=json.dumps({"overall": -3.5, "topical_coverage": -5.0}), time=at("11:30"),
    )])  # fmt: skip
    rules = (
        RuleConfig("cross", "cross_user", window=3 * 3600),
        RuleConfig("slow", "p99_latency", threshold=7000, window=3 * 3600),
        RuleConfig("spike", "failure_type_spike", failure_type="timeout", window=3600, min_count=2),
        RuleConfig("evals", "eval_regression", window=3600),
        RuleConfig("down", "success_rate", threshold=0.5, minutes=1),
    )
    clock = Clock()
    alerting = Alerting(AlertsConfig(rules=rules), OWNERS, data, clock, notifiers={})
    found = sorted((t.finding.rule, t.finding.agent, t.finding.value, t.finding.summary, t.finding.affected_users)
                   for t in alerting.run_once())  # fmt: skip
    assert found == [
        ("cross", "expense-bot", 3.0, "3 users other than the owner alice@acme.com saw failures in the last 3h", 3),
        ("cross", "faq-bot", 1.0, "1 user other than the owner frank@acme.com saw failures in the last 3h", 1),
        ("evals", "expense-bot", -5.0,
         "canary drop: run r2 vs baseline r1: overall -3.50, topical_coverage -5.00", 0),
        ("slow", "expense-bot", 7930.0, "p99 latency 7,930 ms > 7,000 ms over 8 runs in the last 3h", 3),
        ("spike", "expense-bot", 14.0,
         "timeout x14.0: 2 in the last 1h vs 0.14 a day at this hour over 7 days (threshold x3)", 3),
    ]  # fmt: skip
    clock.now = at("11:41")  # the minute 11:40 had one run, degraded: success rate 0 < 50%
    transitions = alerting.run_once()
    states = sorted((t.state, t.finding.rule, t.silent) for t in transitions)
    # p99 over R1..R7 (08:41-11:41) is 6,940 ms: resolved.
    assert states == [("firing", "down", False), ("resolved", "slow", False)]
    slow = next(t for t in transitions if t.finding.rule == "slow")
    assert slow.now_text == "p99 latency 6,940 ms ≤ 7,000 ms in the last 3h (7 runs)"
    assert headline(alerting.message(slow, at("11:41"))) == (
        ":white_check_mark: RESOLVED [slow] expense-bot in default: p99 latency 6,940 ms ≤ 7,000 ms in the last 3h (7 runs)"
    )
    assert next(t for t in alerting.state.active.values() if t.finding.rule == "down").finding.value == 0.0
    clock.now = at("12:45")  # the canary event left its window: resolved without a message
    states = sorted((t.state, t.finding.rule, t.silent) for t in alerting.run_once())
    assert ("resolved", "evals", True) in states


def test_alert_config_errors_name_the_key() -> None:
    text = """alerts:
  interval: 10s
  rules:
    - name: failing-agents
      kind: failure_rate
      window: 15m
      notify: [slack, pager]
    - name: failing-agents
      kind: latency
  notifiers:
    slack:
      type: slack
      webhook_url: ${env:SLACK_WEBHOOK_URL}
"""
    env = {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x"}
    with pytest.raises(ConfigError) as caught:  # types first: a wrong kind
        parse_config(text, "cfg.yaml", env)
    assert caught.value.problems == [
        "cfg.yaml:9: alerts.rules.1.kind: Input should be 'failure_rate', 'success_rate', 'failure_type_spike', "
        "'p99_latency', 'cross_user', 'spend_spike', 'budget', 'eval_regression', 'forecast_overrun', 'negative_feedback_rate' or 'requery_rate'",
    ]
    with pytest.raises(ConfigError) as caught:  # then every rule's meaning
        parse_config(text.replace("kind: latency", "kind: p99_latency"), "cfg.yaml", env)
    assert caught.value.problems == [
        "cfg.yaml:4: alerts.rules.0.threshold: a failure_rate rule needs one (share of runs that failed (0-1))",
        "cfg.yaml:7: alerts.rules.0.notify.1: 'pager' is not under alerts.notifiers (slack)",
        "cfg.yaml:8: alerts.rules.1.threshold: a p99_latency rule needs one (p99 run latency in milliseconds)",
        "cfg.yaml:8: alerts.rules.1.name: 'failing-agents' is already the name of rules.0",
    ]
    good = text.replace("      window: 15m\n", "      threshold: 0.2\n      window: 15m\n      min_runs: 5\n")
    good = good.replace("notify: [slack, pager]", "notify: [slack]").split(
        "    - name: failing-agents\n      kind: latency\n"
    )
    config = parse_config("".join(good), "cfg.yaml", env={"SLACK_WEBHOOK_URL": "https://hooks.slack.com/x"})
    assert config.alerts.interval == 10.0
    assert config.alerts.rules == (
        RuleConfig("failing-agents", "failure_rate", 0.2, 900.0, 5, notify=("slack",)),
    )
    assert config.alerts.notifiers["slack"].webhook_url == "https://hooks.slack.com/x"


@pytest.mark.process
def test_alerts_test_and_list_commands(data: Path, tmp_path: Path) -> None:
    with FakeServer() as fake:
        fake.script("/slack", Reply(200, raw=b"ok"))
        fake.script("/hook", Reply(503, {"busy": True}))
        config = tmp_path / "agentwatch.yaml"
        config.write_text(f"""storage:
  data_dir: {data}
alerts:
  rules:
    - name: failing-agents
      kind: failure_rate
      threshold: 0.2
      agent: expense-bot
      notify: [slack, hook]
  notifiers:
    slack:
      type: slack
      webhook_url: {fake.url}/slack
    hook:
      type: webhook
      webhook_url: {fake.url}/hook
      retries: 1
      backoff: 10ms
""")
        result = run("alerts", "test", "--rule", "failing-agents", "--config", str(config))
        unknown = run("alerts", "test", "--rule", "nope", "--config", str(config))
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["slack: delivered (1 attempt)",
                                          'hook: FAILED: HTTP 503: {"busy": true} (2 attempts)']  # fmt: skip
    assert fake.seen[0].body["text"] == (
        ":test_tube: TEST [failing-agents] expense-bot in default: this is a test of rule failing-agents "
        "(failure_rate); nothing crossed a threshold"
    )
    assert (
        unknown.returncode == 2
        and "'nope' is not a rule under alerts.rules (failing-agents)" in unknown.stderr
    )
    write_rows(data, "default", datetime.now(UTC), [AlertEventRow(
        time=datetime.now(UTC), state="firing", rule="failing-agents", kind="failure_rate",
        agent="expense-bot", alert_key="k", fired_at=datetime.now(UTC), value=0.5, threshold=0.2,
        summary="failure rate 50% > 20%", runs=8, affected_users=3, top_failure_types="[]",
        example_trace_ids="[]", repeats=True, resolves=True, delivered='["slack"]', failed="{}",
    )])  # fmt: skip
    listed = run("alerts", "list", "--config", str(config), "--format", "json")
    assert listed.returncode == 0, listed.stderr
    (event,) = json.loads(listed.stdout)
    assert {k: event[k] for k in ("state", "rule", "tenant", "agent", "value", "delivered", "failed")} == {
        "state": "firing", "rule": "failing-agents", "tenant": "default", "agent": "expense-bot", "value": 0.5,
        "delivered": ["slack"], "failed": {},
    }  # fmt: skip
    text = run("alerts", "list", "--config", str(config))
    assert "failure rate 50% > 20%" in text.stdout and "failing-agents" in text.stdout


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentwatch", *args], capture_output=True, text=True, check=False
    )


def test_spend_spike_and_budget_levels(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import set_span_in_context

    server = ServerProcess(tmp_path)
    server.write_config()  # stored in process with a server's config; never started
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("spend")
    # $1 a day at 10:30 for the 7 days before, then $4 + $1 in the hour before 11:00 today.
    spend = [(f"2025-11-{d}", "10:30", 1.0) for d in range(15, 22)]
    spend += [("2025-11-22", "10:30", 4.0), ("2025-11-22", "10:45", 1.0)]
    for day, hhmm, cost in spend:
        begin = int(at(hhmm, day).timestamp() * 1e9)
        run = tracer.start_span("agent_run", start_time=begin, attributes={"gen_ai.agent.id": "spender"})
        llm = tracer.start_span("chat", set_span_in_context(run), start_time=begin, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "gen_ai.usage.cost": cost})  # fmt: skip
        llm.end(end_time=begin + 10**8)
        run.end(end_time=begin + 10**9)
    provider.shutdown()
    store_spans(server.config_path, memory.get_finished_spans())
    assert server.wait_for_count("SELECT count(*) FROM spans", 2 * len(spend)) == 2 * len(spend)
    rules = (
        RuleConfig("spend", "spend_spike", threshold=50, window=3600),
        RuleConfig("budget", "budget", threshold=10),
    )
    clock = Clock()
    clock.now = at("11:00")
    alerting = Alerting(AlertsConfig(rules=rules), (), server.data_dir, clock, notifiers={})
    found = sorted((t.state, t.finding.rule, t.finding.value, t.finding.threshold, t.finding.summary)
                   for t in alerting.run_once())  # fmt: skip
    assert found == [
        ("firing", "budget", 1.2, 0.5, "spend $12.00 this month (2025-11) has reached 50% of the $10.00 budget"),
        ("firing", "budget", 1.2, 0.8, "spend $12.00 this month (2025-11) has reached 80% of the $10.00 budget"),
        ("firing", "budget", 1.2, 1.0, "spend $12.00 this month (2025-11) has reached 100% of the $10.00 budget"),
        ("firing", "spend", 400.0, 50.0,
         "spend $5.00 in the last 1h is 400% over the 7-day average $1.00 (threshold 50%)"),
    ]  # fmt: skip
    clock.now = at("14:00")  # budget levels never repeat; the spend spike left its window
    assert [(t.state, t.finding.rule) for t in alerting.run_once()] == [("resolved", "spend")]


@pytest.mark.process
def test_serve_runs_the_alert_loop(tmp_path: Path) -> None:
    import httpx
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    with FakeServer() as fake:
        fake.script("/slack", Reply(200, raw=b"ok"))
        server = ServerProcess(tmp_path)
        server.extra_config = f"""
alerts:
  interval: 200ms
  rules:
    - name: failing-agents
      kind: failure_rate
      threshold: 0.2
      window: 15m
      min_runs: 5
      notify: [slack]
  notifiers:
    slack:
      type: slack
      webhook_url: {fake.url}/slack
"""
        server.start()
        try:
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=server.http_url)))
            tracer = provider.get_tracer("serve")
            for i in range(5):
                span = tracer.start_span(
                    "agent_run", attributes={"gen_ai.agent.id": "live-bot", "user.id": f"u{i}"}
                )
                span.set_status(Status(StatusCode.ERROR, "deadline exceeded"))
                span.end()
            provider.shutdown()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not fake.seen:
                time.sleep(0.1)
            time.sleep(1.0)  # later passes: within the cooldown, nothing more is sent
            metrics = httpx.get(f"http://127.0.0.1:{server.api_port}/metrics").text
        finally:
            assert server.stop() == 0
    assert [s.body["text"] for s in fake.seen] == [
        ":rotating_light: FIRING [failing-agents] live-bot in default: failure rate 100% &gt; 20% "
        "(5 of 5 runs in the last 15m)"
    ]
    assert "agentwatch_alert_messages_total 1.0" in metrics
    assert "agentwatch_alert_delivery_failures_total 0.0" in metrics


def test_an_agents_own_thresholds_override_the_rule(data: Path) -> None:
    from core.agents import Thresholds

    lenient = replace(FAILING, threshold=0.6, notify=())
    strict = (AgentConfig("expense-bot", owner="alice@acme.com", thresholds=Thresholds(failure_rate=0.3)),
              AgentConfig("faq-bot", thresholds=Thresholds(min_runs=3)))  # fmt: skip
    assert Alerting(AlertsConfig(rules=(lenient,)), OWNERS, data, Clock(), notifiers={}).run_once() == []
    fired = Alerting(AlertsConfig(rules=(lenient,)), strict, data, Clock(), notifiers={}).run_once()
    assert [(t.finding.agent, t.finding.value, t.finding.threshold) for t in fired] == [
        ("expense-bot", 0.5, 0.3),  # its own 0.3 instead of the rule's 0.6
        ("faq-bot", 0.6667, 0.6),  # 2 of 3 runs: enough with its own min_runs of 3
    ]


def test_report_and_cross_user_alert_name_the_same_owner(data: Path) -> None:
    """A tenant entry with thresholds but no owner, a global entry with one, spans with another."""
    from core.agents import AgentRegistry, Thresholds
    from report.health import build_report
    from storage.runs import Scope, runs_in

    agents = (
        AgentConfig("faq-bot", tenant="default", thresholds=Thresholds(failure_rate=0.5)),
        AgentConfig("faq-bot", owner="boss@acme.com"),
    )
    info = AgentRegistry(agents).lookup("default", "faq-bot", "frank@acme.com")
    assert (info.owner, info.owner_source, info.thresholds) == (
        "boss@acme.com", "config", Thresholds(failure_rate=0.5)
    )  # fmt: skip
    runs = runs_in(connect(data), Scope(at("08:00"), at("12:00"), agent="faq-bot"))
    (agent,) = build_report(runs, agents).agents
    assert (agent.owner, agent.owner_source) == ("boss@acme.com", "config")
    rules = (RuleConfig("cross", "cross_user", window=3 * 3600, agent="faq-bot"),)
    alerting = Alerting(AlertsConfig(rules=rules), agents, data, Clock(), notifiers={})
    (fired,) = alerting.run_once()
    assert fired.finding.extra["owner"] == "boss@acme.com"
    # frank (the spans' owner) is one of the users other than the configured owner now.
    assert fired.finding.summary == "2 users other than the owner boss@acme.com saw failures in the last 3h"


def test_registry_thresholds_fall_back_key_by_key() -> None:
    from core.agents import AgentRegistry, Thresholds

    registry = AgentRegistry((
        AgentConfig("bot", tenant="acme", thresholds=Thresholds(min_runs=3)),
        AgentConfig("bot", owner="o@x", thresholds=Thresholds(failure_rate=0.1, min_runs=9)),
    ))  # fmt: skip
    assert registry.lookup("acme", "bot").thresholds == Thresholds(failure_rate=0.1, min_runs=3)
    assert registry.lookup("globex", "bot").thresholds == Thresholds(failure_rate=0.1, min_runs=9)
    assert registry.threshold("acme", "bot", "p99_latency_ms", 5000) == 5000.0
    assert registry.lookup("acme", "other", None).owner_source is None
    assert registry.lookup("acme", "other", "s@x").owner_source == "spans"


# Agents that do not run every minute: (agent, "HH:MM", succeeded) on 2025-11-22.
SPARSE_RUNS = [
    ("sparse-bot", "10:00", True), ("sparse-bot", "10:03", False), ("sparse-bot", "10:06", False),
    ("sparse-bot", "10:09", False),
    ("mixed-bot", "10:03", False), ("mixed-bot", "10:05", True), ("mixed-bot", "10:07", False),
    ("quiet-bot", "10:03", False),
]  # fmt: skip


@pytest.fixture(scope="module")
def sparse_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    root = tmp_path_factory.mktemp("sparse")
    config = root / "agentwatch.yaml"
    config.write_text(f"storage:\n  data_dir: {root / 'data'}\n")
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "agents"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("sparse")
    for agent, hhmm, succeeded in SPARSE_RUNS:
        begin = int(at(hhmm).timestamp() * 1e9) + 5 * 10**9
        span = tracer.start_span("agent_run", start_time=begin, attributes={"gen_ai.agent.id": agent})
        if not succeeded:
            span.set_status(Status(StatusCode.ERROR, "upstream failed"))
        span.end(end_time=begin + 10**9)
    provider.shutdown()
    assert store_spans(config, memory.get_finished_spans()) == len(SPARSE_RUNS)
    return root / "data"


def _success_rate_findings(data: Path, hhmm: str, minutes: int = 5) -> list[tuple[str, float, int, str]]:
    from alerting.rules import RuleEvaluator, lookback
    from storage.runs import USAGE, Scope, runs_in

    rule = RuleConfig("down", "success_rate", threshold=0.5, minutes=minutes)
    now = at(hhmm)
    con = connect(data)
    try:
        runs = runs_in(con, Scope(now - timedelta(seconds=lookback(rule, now)), now), USAGE)
        found = RuleEvaluator(runs, now, ()).findings(rule)
    finally:
        con.close()
    return [(f.agent, f.value, f.runs, f.summary) for f in sorted(found, key=lambda f: f.agent)]


def test_success_rate_with_runs_spread_sparsely(sparse_data: Path) -> None:
    """Minutes without runs keep the rate of the last minute that had runs (for up to the rule's
    window, 15 minutes): they neither break a streak nor start one."""
    # 10:02-10:06: 10:02 still has 10:00's success; the failures began at 10:03, 4 minutes ago.
    assert (
        _success_rate_findings(sparse_data, "10:07")
        == [
            # quiet-bot failed at 10:03: 10:02 is unknown (no run before it), so no streak yet
        ]
    )
    # 10:03-10:07: runs at 10:03 and 10:06, all failed, and nothing succeeded in between.
    assert _success_rate_findings(sparse_data, "10:08") == [
        ("quiet-bot", 0.0, 1,
         "success rate under 50% for 5 minutes in a row (best minute 0%; 1 of them had runs, the others keep "
         "the rate of the minute with runs before)"),
        ("sparse-bot", 0.0, 2,
         "success rate under 50% for 5 minutes in a row (best minute 0%; 2 of them had runs, the others keep "
         "the rate of the minute with runs before)"),
    ]  # fmt: skip
    # 10:05-10:09: mixed-bot succeeded at 10:05; sparse-bot's 10:05 keeps 10:03's failure.
    assert [f[:3] for f in _success_rate_findings(sparse_data, "10:10")] == [
        ("quiet-bot", 0.0, 1), ("sparse-bot", 0.0, 3),
    ]  # fmt: skip
    # 10:07-10:11: mixed-bot failed at 10:07 and has not succeeded since.
    assert [f[:3] for f in _success_rate_findings(sparse_data, "10:12")] == [
        ("mixed-bot", 0.0, 1), ("quiet-bot", 0.0, 1), ("sparse-bot", 0.0, 2),
    ]  # fmt: skip
    # A failure carries 15 minutes (quiet-bot's 10:03 to 10:18), then the rate is unknown.
    assert [f[0] for f in _success_rate_findings(sparse_data, "10:19")] == [
        "mixed-bot",
        "quiet-bot",
        "sparse-bot",
    ]
    assert [f[0] for f in _success_rate_findings(sparse_data, "10:20")] == ["mixed-bot", "sparse-bot"]
    assert _success_rate_findings(sparse_data, "10:26") == []
    # A one-minute rule: the minute 10:05 had mixed-bot's success, and the others' 10:03 failures.
    assert [f[:3] for f in _success_rate_findings(sparse_data, "10:06", minutes=1)] == [
        ("quiet-bot", 0.0, 1), ("sparse-bot", 0.0, 1),
    ]  # fmt: skip


def test_a_failure_type_spike_rule_names_a_type_spans_can_get() -> None:
    text = """processors:
  classify:
    rules:
      - name: jira_down
        failure_type: jira_outage
        when: {column: tool_name, matches: '^jira_'}
alerts:
  rules:
    - {name: jira, kind: failure_type_spike, failure_type: jira_outage}
    - {name: judged, kind: failure_type_spike, failure_type: quality_regression}
    - {name: typo, kind: failure_type_spike, failure_type: tool_eror}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cfg.yaml", {})
    assert caught.value.problems == [
        "cfg.yaml:11: alerts.rules.2.failure_type: 'tool_eror' is not a failure type spans can get (built in: "
        "timeout, rate_limit, quota_exceeded, auth_failed, tool_error, tool_timeout, tool_contract_mismatch, "
        "tool_selection_error, dependency_unavailable, bad_routing, approval_timeout, policy_blocked, "
        "blocked_response, unsafe_output, missing_context, empty_response, invalid_json, context_overflow, "
        "loop_detected, groundedness_drop, quality_regression, other_error; your rules add: jira_outage); "
        "a classify rule may add it (processors.classify.rules)"
    ]
    config = parse_config(text.rsplit("    - {name: typo", 1)[0], "cfg.yaml", {})
    assert [r.failure_type for r in config.alerts.rules] == ["jira_outage", "quality_regression"]


def test_a_rule_scoped_to_an_agent_name_finds_its_runs(tmp_path: Path) -> None:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    from alerting.rules import RuleEvaluator
    from storage.runs import USAGE, Scope, runs_in

    config = tmp_path / "agentwatch.yaml"
    config.write_text(f"storage:\n  data_dir: {tmp_path / 'data'}\n")
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "agents"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("named")
    for i, (agent_id, name) in enumerate([("agt_1", "Expense Bot")] * 3 + [("agt_2", "FAQ Bot")] * 3):
        begin = int(at("11:00").timestamp() * 1e9) + i * 10**9
        attributes = {"gen_ai.agent.id": agent_id, "gen_ai.agent.name": name}
        span = tracer.start_span("invoke_agent", start_time=begin, attributes=attributes)
        span.set_status(Status(StatusCode.ERROR, "upstream failed"))
        span.end(end_time=begin + 10**8)
    provider.shutdown()
    store_spans(config, memory.get_finished_spans())
    rule = RuleConfig("named", "failure_rate", threshold=0.2, window=3600, min_runs=1, agent="Expense Bot")
    now = at("11:30")
    con = connect(tmp_path / "data")
    try:
        runs = runs_in(con, Scope(now - timedelta(hours=1), now), USAGE)
        found = RuleEvaluator(runs, now, ()).findings(rule)
        # The message shows the name beside the id: the spans' name, else the agents: entry's.
        evaluator = RuleEvaluator(runs, now, (AgentConfig(id="agt_2", name="FAQ helper"),))
        evaluator.load_names()
    finally:
        con.close()
    assert [(f.agent, f.runs, f.summary) for f in found] == [
        ("agt_1", 3, "failure rate 100% > 20% (3 of 3 runs in the last 1h)")
    ]
    names = [evaluator.agent_name("default", a) for a in ("agt_1", "agt_2", "agt_3")]
    assert names == ["Expense Bot", "FAQ helper", None]
    named = replace(found[0], agent_name=names[0])
    message = Message("firing", named, now, now, "https://aw/agents/agt_1?tenant=default")
    assert headline(message) == (
        ":rotating_light: FIRING [named] Expense Bot (agt_1) in default: "
        "failure rate 100% > 20% (3 of 3 runs in the last 1h)"
    )
    assert webhook_payload(message)["agent_name"] == "Expense Bot"
    assert lines(message)[-1] == "<https://aw/agents/agt_1?tenant=default|Open Expense Bot in agentwatch>"
