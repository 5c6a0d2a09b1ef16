"""Resolved messages say what each rule measures now against its threshold, not the value it
last fired with (``RuleEvaluator.now_text``), for every kind of rule that resolves with a
message; and, when the rule measured nothing for the agent now, that there was nothing.

One small data set, stored through the pipelines in process, with a scenario per rule kind (each
rule scoped to its own agent), 2025-11-22 UTC unless said:

    flaky-bot       fails 10:00, 10:01, 10:02; at 10:03 one run succeeds, one fails
    dead-bot        fails 10:00, 10:01, 10:02, then runs no more
    owned-bot       (owner olga) fails for u1 10:00, u2 10:10, u3 10:20, olga 10:25
    spiky-bot       times out 09:10, 09:20, 09:40; and at 09:30 on each of the 7 days before
    spender         $4 10:30, $1 10:45, $1.20 11:30; $1 at 10:30 and $1 at 11:10 on each of the 7 days before
    asker-bot       u1 asks at 10:00 and again, similarly, at 10:05; u2..u6 ask other things at
                    10:10, 10:20, 10:30, 10:50, 10:55
    rated-bot       runs at 10:00, 10:10, 10:20, 10:30, 10:40, 10:50, rated down, down, down,
                    up, up, up
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from alerting.alerting import Alerting
from alerting.config import AlertsConfig, RuleConfig
from alerting.messages import headline
from alerting.rules import Finding, RuleEvaluator, lookback
from core.agents import AgentConfig
from feedback.items import item_row
from storage.catalog import connect
from storage.runs import USAGE, Scope, runs_in
from storage.tables import write_rows
from tests.helpers.health_fixture import FixtureIds, trace_hex
from tests.helpers.store import store_spans

TIMEOUT = "deadline exceeded after 30000ms"
BEFORE = [f"2025-11-{d}" for d in range(15, 22)]
TODAY = "2025-11-22"
QUESTIONS = {
    "u1": "what is my travel budget", "u2": "reset my password please", "u3": "book a meeting room tomorrow",
    "u4": "where is the cafeteria", "u5": "how do I order a laptop", "u6": "when is the next payday",
}  # fmt: skip

# (agent, day, HH:MM, user, error message or None, cost or None, question)
RUNS: list[tuple[str, str, str, str, str | None, float | None, str]] = [
    *[("flaky-bot", TODAY, f"10:0{m}", "u1", "upstream failed", None, "q") for m in range(3)],
    ("flaky-bot", TODAY, "10:03", "u1", None, None, "q"),
    ("flaky-bot", TODAY, "10:03", "u2", "upstream failed", None, "q"),
    *[("dead-bot", TODAY, f"10:0{m}", "u1", "upstream failed", None, "q") for m in range(3)],
    ("owned-bot", TODAY, "10:00", "u1", "upstream failed", None, "q"),
    ("owned-bot", TODAY, "10:10", "u2", "upstream failed", None, "q"),
    ("owned-bot", TODAY, "10:20", "u3", "upstream failed", None, "q"),
    ("owned-bot", TODAY, "10:25", "olga", "upstream failed", None, "q"),
    *[("spiky-bot", day, "09:30", "u1", TIMEOUT, None, "q") for day in BEFORE],
    *[("spiky-bot", TODAY, hhmm, "u1", TIMEOUT, None, "q") for hhmm in ("09:10", "09:20", "09:40")],
    *[("spender", day, hhmm, "u1", None, 1.0, "q") for day in BEFORE for hhmm in ("10:30", "11:10")],
    ("spender", TODAY, "10:30", "u1", None, 4.0, "q"),
    ("spender", TODAY, "10:45", "u1", None, 1.0, "q"),
    ("spender", TODAY, "11:30", "u1", None, 1.2, "q"),
    ("asker-bot", TODAY, "10:00", "u1", None, None, QUESTIONS["u1"]),
    ("asker-bot", TODAY, "10:05", "u1", None, None, "what's my travel budget for Q3"),
    *[("asker-bot", TODAY, hhmm, user, None, None, QUESTIONS[user])
      for hhmm, user in (("10:10", "u2"), ("10:20", "u3"), ("10:30", "u4"), ("10:50", "u5"), ("10:55", "u6"))],
    *[("rated-bot", TODAY, f"10:{m}0", "u1", None, None, "q") for m in range(6)],
]  # fmt: skip
RATED_DOWN = 3
"""rated-bot's first three runs are rated down, the other three up."""


def at(hhmm: str, day: str = TODAY) -> datetime:
    return datetime.strptime(f"{day} {hhmm}", "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("resolved")
    config = root / "agentwatch.yaml"
    config.write_text(f"storage:\n  data_dir: {root / 'data'}\n")
    memory = InMemorySpanExporter()
    ids = FixtureIds()
    provider = TracerProvider(resource=Resource.create({"service.name": "agents"}), id_generator=ids)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("resolved")
    rated: list[tuple[str, datetime]] = []
    for number, (agent, day, hhmm, user, error, cost, question) in enumerate(RUNS, 1):
        ids.next_trace = number
        begin = int(at(hhmm, day).timestamp() * 1e9) + 5 * 10**9
        attributes = {"gen_ai.agent.id": agent, "user.id": f"{user}@acme.com", "input.value": question,
                      "session.id": f"s-{agent}-{user}"}  # fmt: skip
        run = tracer.start_span("agent_run", start_time=begin, attributes=attributes)
        if cost is not None:
            llm = tracer.start_span("chat", trace.set_span_in_context(run), start_time=begin, attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "gen_ai.usage.cost": cost})  # fmt: skip
            llm.end(end_time=begin + 10**8)
        if error is not None:
            run.set_status(Status(StatusCode.ERROR, error))
        run.end(end_time=begin + 10**9)
        if agent == "rated-bot":
            rated.append((trace_hex(number), at(hhmm) + timedelta(minutes=1)))
    provider.shutdown()
    assert store_spans(config, memory.get_finished_spans()) == len(RUNS) + 2 * 7 + 3
    rows = []
    for i, (trace_id, when) in enumerate(rated):
        item = {"trace_id": trace_id, "user_id": "u1", "value": "down" if i < RATED_DOWN else "up"}
        row, problems = item_row(item, "default", when)
        assert problems == [] and row is not None
        rows.append(row)
    write_rows(root / "data", "default", at("10:00"), rows)
    return root / "data"


@pytest.fixture
def data(stored: Path, tmp_path: Path) -> Path:
    """A copy per test: the alert events one test stores never restore state in another."""
    return Path(shutil.copytree(stored, tmp_path / "data"))


def fire_then_resolve(
    data: Path, rule: RuleConfig, fire: str, resolve: str, agents: tuple[AgentConfig, ...] = ()
) -> tuple[str, str]:
    """(the summary ``rule`` fires with at ``fire``, the headline it resolves with at ``resolve``)."""
    now = at(fire)
    alerting = Alerting(AlertsConfig(rules=(rule,)), agents, data, lambda: now, notifiers={})
    (fired,) = alerting.run_once()
    assert (fired.state, fired.finding.agent) == ("firing", rule.agent)
    now = at(resolve)
    (resolved,) = alerting.run_once()
    assert (resolved.state, resolved.finding.agent, resolved.silent) == ("resolved", rule.agent, False)
    assert resolved.finding.summary == fired.finding.summary  # what it was, kept beside what is
    return fired.finding.summary, headline(alerting.message(resolved, now))


def now_text(data: Path, rule: RuleConfig, hhmm: str, key_extra: str = "",
             agents: tuple[AgentConfig, ...] = ()) -> str | None:  # fmt: skip
    """What ``rule`` says about its agent at ``hhmm``, after evaluating it then."""
    now = at(hhmm)
    con = connect(data)
    try:
        runs = runs_in(con, Scope(now - timedelta(seconds=lookback(rule, now)), now), (*USAGE, "session_id"))
        evaluator = RuleEvaluator(runs, now, agents)
        assert evaluator.findings(rule) == []
    finally:
        con.close()
    assert rule.agent is not None
    finding = Finding(rule.name, rule.kind, "default", rule.agent, 1.0, 1.0, "fired", key_extra=key_extra)
    return evaluator.now_text(finding, rule)


def resolved(rule: str, agent: str, now: str) -> str:
    return f":white_check_mark: RESOLVED [{rule}] {agent} in default: {now}"


def test_success_rate_says_the_best_minute_or_the_minute_no_run_told(data: Path) -> None:
    flaky = RuleConfig("down", "success_rate", threshold=0.5, minutes=3, agent="flaky-bot")
    assert fire_then_resolve(data, flaky, "10:03", "10:04") == (
        "success rate under 50% for 3 minutes in a row (best minute 0%)",
        resolved("down", "flaky-bot", "success rate 50% ≥ 50% in the minute from 10:03 UTC (1 of 2 runs)"),
    )
    # dead-bot's last failure (10:02) still tells 10:17's rate; 10:18 has no run in the 15m before it.
    dead = RuleConfig("dead", "success_rate", threshold=0.5, minutes=3, agent="dead-bot")
    assert fire_then_resolve(data, dead, "10:03", "10:19")[1] == resolved(
        "dead", "dead-bot", "success rate unknown from 10:18 UTC (no runs in the 15m before it)"
    )
    # Nothing in the 3 minutes nor in the 15 minutes before them that carry a rate.
    assert now_text(data, flaky, "10:40") == "no runs in the last 18m"


def test_cross_user_says_how_many_other_users_saw_failures(data: Path) -> None:
    olga = (AgentConfig("owned-bot", owner="olga@acme.com"),)
    rule = RuleConfig("cross", "cross_user", threshold=2, window=3600, agent="owned-bot")
    # 10:15-11:15: u3's failure and the owner's own, which does not count.
    assert fire_then_resolve(data, rule, "10:30", "11:15", olga) == (
        "3 users other than the owner olga@acme.com saw failures in the last 1h",
        resolved("cross", "owned-bot", "users other than the owner olga@acme.com who saw failures 1 < 2 in the last 1h"),
    )  # fmt: skip
    assert now_text(data, rule, "11:30", agents=olga) == "no failed runs in the last 1h"


def test_failure_type_spike_says_the_ratio_or_the_count(data: Path) -> None:
    rule = RuleConfig("spike", "failure_type_spike", threshold=2, window=3600, min_count=2,
                      failure_type="timeout", agent="spiky-bot")  # fmt: skip
    # 09:15-10:15: the timeouts of 09:20 and 09:40 against one a day at 09:30 before.
    assert fire_then_resolve(data, rule, "10:00", "10:15") == (
        "timeout x3.0: 3 in the last 1h vs 1.00 a day at this hour over 7 days (threshold x2)",
        resolved("spike", "spiky-bot", "timeout x2.0 ≤ x2 in the last 1h (2 vs 1.00 a day at this hour over 7 days)"),
    )  # fmt: skip
    assert (
        now_text(data, rule, "10:35", "timeout")
        == "timeout failures 1 in the last 1h, fewer than min_count 2"
    )
    assert now_text(data, rule, "11:45", "timeout") == "no timeout failures in the last 1h"


def test_spend_spike_says_the_spend_against_the_average(data: Path) -> None:
    rule = RuleConfig("spend", "spend_spike", threshold=50, window=3600, agent="spender")
    # 10:50-11:50: $1.20 against the $1 a day at 11:10 before.
    assert fire_then_resolve(data, rule, "11:00", "11:50") == (
        "spend $5.00 in the last 1h is 400% over the 7-day average $1.00 (threshold 50%)",
        resolved(
            "spend", "spender", "spend +20% vs the 7-day average ≤ +50% in the last 1h ($1.20 vs $1.00)"
        ),
    )
    assert now_text(data, rule, "12:25") == (
        "spend $1.20 in the last 1h, none at this hour over the 7 days before to compare with"
    )
    assert now_text(data, rule, "13:00") == "no spend in the last 1h"


def test_requery_rate_says_the_rate_or_too_few_runs(data: Path) -> None:
    rule = RuleConfig("again", "requery_rate", threshold=0.15, window=3600, agent="asker-bot")
    # 10:02-11:02: u1's 10:00 ask, the one asked again, is out of the window.
    assert fire_then_resolve(data, rule, "10:40", "11:02") == (
        "requery rate 20% > 15% (1 of 5 runs asked again in the last 1h)",
        resolved("again", "asker-bot", "requery rate 0% ≤ 15% in the last 1h (0 of 6 runs asked again)"),
    )
    assert now_text(data, rule, "11:25") == "3 runs in the last 1h, fewer than min_runs 5"
    assert now_text(data, rule, "12:30") == "no runs in the last 1h"


def test_negative_feedback_rate_says_the_rate_or_too_few_pieces(data: Path) -> None:
    rule = RuleConfig("unhappy", "negative_feedback_rate", threshold=0.5, window=3600, agent="rated-bot")
    # 10:15-11:15: the runs of 10:20 (rated down), 10:30, 10:40 and 10:50 (up).
    assert fire_then_resolve(data, rule, "10:35", "11:15") == (
        "negative feedback 75% > 50% (3 of 4 pieces on runs of the last 1h)",
        resolved(
            "unhappy", "rated-bot", "negative feedback 25% ≤ 50% on runs of the last 1h (1 of 4 pieces)"
        ),
    )
    assert (
        now_text(data, rule, "11:35") == "2 pieces of feedback on runs of the last 1h, fewer than min_count 3"
    )
    assert now_text(data, rule, "12:30") == "no feedback on runs of the last 1h"


def test_kinds_that_never_resolve_with_a_message_say_nothing(data: Path) -> None:
    for kind in ("budget", "forecast_overrun", "eval_regression"):
        rule = RuleConfig(kind, kind, threshold=10, agent="spender")
        finding = Finding(kind, kind, "default", "spender", 1.0, 1.0, "fired")
        con = connect(data)
        try:
            evaluator = RuleEvaluator(runs_in(con, Scope(at("10:00"), at("11:00")), USAGE), at("11:00"), ())
        finally:
            con.close()
        assert evaluator.now_text(finding, rule) is None
