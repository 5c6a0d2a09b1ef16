"""Implicit feedback (feedback/implicit.py) on SDK spans stored through the default pipeline, with
hand-computed answers and the near-misses that must not count.

bot (minutes after T; 10-minute requery window, similarity 0.5, streaks of 3):

    u1  0  "what is my travel budget"        success  s1   requeried by the next (4 of 7 words)
    u1  2  "what's my travel budget for Q3"  success  s1   next ask 18 min later: out of the window
    u1 20  "how do I file a receipt"         failure  s2   requeried (3 of 4 words)
    u1 21  "file receipt how"                failure  s2   next ask shares no word: no requery
    u1 22  "completely unrelated question"   failure  s2   u1: 3 failures in a row
    u2  0  "what is my travel budget"        success  s3   another user's ask never counts
    u2 15  "what is my travel budget"        success  s3   the same question 15 min later: too late
    u3  5  "zeta"                            failure       "request cancelled by client"
    u3  6  "alpha beta"                      failure
    u3  7  "gamma delta"                     failure       u3: 3 failures in a row

s2 ended in a failure (abandoned); s1 and s3 in a success. ``other``'s run by u1 at minute 1
asks bot's question of another agent: not a requery of bot's run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from feedback.implicit import ImplicitBucket, ImplicitConfig, ImplicitSummary, implicit_signals
from report.formats import implicit_line
from report.health import IMPLICIT_COLUMNS, NAME_COLUMNS, build_report
from storage.catalog import connect
from storage.runs import Scope, runs_in
from tests.helpers.store import store_spans

T = datetime(2026, 6, 1, 9, tzinfo=UTC)
RUNS = [  # agent, user, minute, input, failed, session, error
    ("bot", "u1", 0, "what is my travel budget", False, "s1", None),
    ("bot", "u1", 2, "what's my travel budget for Q3", False, "s1", None),
    ("bot", "u1", 20, "how do I file a receipt", True, "s2", "no receipt tool"),
    ("bot", "u1", 21, "file receipt how", True, "s2", "no receipt tool"),
    ("bot", "u1", 22, "completely unrelated question", True, "s2", "no receipt tool"),
    ("bot", "u2", 0, "what is my travel budget", False, "s3", None),
    ("bot", "u2", 15, "what is my travel budget", False, "s3", None),
    ("bot", "u3", 5, "zeta", True, None, "request cancelled by client"),
    ("bot", "u3", 6, "alpha beta", True, None, "upstream 500"),
    ("bot", "u3", 7, "gamma delta", True, None, "upstream 500"),
    ("other", "u1", 1, "what is my travel budget", False, None, None),
]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("implicit")
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"agentwatch.tenant": "acme"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for agent, user, minute, text, failed, session, error in RUNS:
        start = int((T + timedelta(minutes=minute)).timestamp() * 10**9)
        attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent, "user.id": user,
                      "gen_ai.input.messages": text, **({"session.id": session} if session else {})}  # fmt: skip
        span = provider.get_tracer("t").start_span(f"invoke_agent {agent}", start_time=start, attributes=attributes)
        if failed:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=start + 10**9)
    provider.shutdown()
    (root / "agentwatch.yaml").write_text(f"storage:\n  data_dir: {root / 'data'}\n")
    store_spans(root / "agentwatch.yaml", memory.get_finished_spans())
    return root / "data"


def test_requeries_abandonment_cancellations_and_streaks(data: Path) -> None:
    runs = runs_in(connect(data), Scope(T, T + timedelta(hours=1)), IMPLICIT_COLUMNS)
    assert implicit_signals(runs) == {
        ("acme", "bot"): ImplicitSummary(
            runs=10, requeried_runs=2, requery_rate=0.2, sessions=3, abandoned_sessions=1,
            abandonment_rate=1 / 3, cancelled_runs=1, users_on_failure_streaks=2, longest_failure_streak=3,
        ),
        ("acme", "other"): ImplicitSummary(
            runs=1, requeried_runs=0, requery_rate=0.0, sessions=0, abandoned_sessions=0,
            abandonment_rate=None, cancelled_runs=0, users_on_failure_streaks=0, longest_failure_streak=0,
        ),
    }  # fmt: skip


def test_the_settings_move_the_lines(data: Path) -> None:
    runs = runs_in(connect(data), Scope(T, T + timedelta(hours=1)), IMPLICIT_COLUMNS)
    # A 20-minute window lets u1's 2nd ask reach the 3rd (no shared word: still none) and u2's
    # second identical ask count; a stricter similarity drops the 4-of-7 pair; streaks of 4: none.
    wide = implicit_signals(runs, ImplicitConfig(requery_window=1200))[("acme", "bot")]
    assert wide.requeried_runs == 3
    strict = implicit_signals(runs, ImplicitConfig(requery_similarity=0.6))[("acme", "bot")]
    assert strict.requeried_runs == 1
    long = implicit_signals(runs, ImplicitConfig(failure_streak=4))[("acme", "bot")]
    assert (long.users_on_failure_streaks, long.longest_failure_streak) == (0, 3)


def test_in_the_report(data: Path) -> None:
    runs = runs_in(connect(data), Scope(T, T + timedelta(hours=1), "bot"), (*NAME_COLUMNS, *IMPLICIT_COLUMNS))
    (bot,) = build_report(runs, ()).agents
    assert bot.implicit is not None
    assert implicit_line(bot.implicit) == (
        "2 of 10 runs requeried (20.0%); 1 of 3 sessions abandoned (33.3%); 1 cancelled; "
        "2 users on failure streaks (longest 3)"
    )
    plain = runs_in(connect(data), Scope(T, T + timedelta(hours=1), "bot"), NAME_COLUMNS)
    assert build_report(plain, ()).agents[0].implicit is None  # not asked for: not computed


def test_the_requery_rate_rule(data: Path) -> None:
    from alerting.config import RuleConfig
    from alerting.rules import RuleEvaluator
    from storage.runs import USAGE

    now = T + timedelta(minutes=30)
    runs = runs_in(connect(data), Scope(now - timedelta(hours=1), now), (*USAGE, "session_id"))
    evaluator = RuleEvaluator(runs, now, ())
    rule = RuleConfig("asked-again", "requery_rate", threshold=0.15, window=3600)
    (finding,) = evaluator.findings(rule)  # bot: 2 of 10 (20%); other: 1 run, under min_runs
    assert (finding.agent, finding.value, finding.runs) == ("bot", 0.2, 10)
    assert finding.summary == "requery rate 20% > 15% (2 of 10 runs asked again in the last 1h)"
    assert evaluator.findings(RuleConfig("asked-again", "requery_rate", threshold=0.2, window=3600)) == []


def test_requeries_and_abandoned_sessions_over_time(data: Path) -> None:
    runs = runs_in(connect(data), Scope(T, T + timedelta(hours=1)), IMPLICIT_COLUMNS)
    bot = implicit_signals(runs, bucket_seconds=900)[("acme", "bot")]
    # Runs at minutes 0, 2, 0, 5, 6, 7 | 20, 21, 22, 15. Requeried: u1's minute 0 and minute 20.
    # Sessions by their last run: s1 (minute 2, success) | s2 (22, abandoned), s3 (15, success).
    assert bot.buckets == [
        ImplicitBucket(T, 6, 1, 1 / 6, 1, 0, 0.0),
        ImplicitBucket(T + timedelta(minutes=15), 4, 1, 0.25, 2, 1, 0.5),
        ImplicitBucket(T + timedelta(minutes=30), 0, 0, None, 0, 0, None),
        ImplicitBucket(T + timedelta(minutes=45), 0, 0, None, 0, 0, None),
    ]
    assert implicit_signals(runs)[("acme", "bot")].buckets == []  # only when asked for
