"""``health.board``: runs and calls counted from the digests of stored spans, hand-computed.

Spans come from the OpenTelemetry SDK with fixed times, are stored through the assembled
pipelines (normalize, classify, Parquet) and digested as a server's converter does; the board
absorbs the digests at a fixed ``now``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

import health.board as board_module
from health.board import HealthBoard
from health.config import HealthConfig
from health.digest import Digest, unpack
from tests.helpers.agent_runs import NOW, Spans
from tests.helpers.store import digest_spans


@pytest.fixture
def config_path(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "agentwatch.yaml"
    path.write_text(f"storage:\n  data_dir: {tmp_path / 'data'}\n")
    yield path


def absorb(board: HealthBoard, config_path: Path, spans: list[ReadableSpan], now: float = NOW) -> None:
    digest = digest_spans(config_path, spans)
    assert digest is not None
    board.absorb(unpack(digest), now)


def test_runs_failures_latency_streaks_and_calls(config_path: Path) -> None:
    spans = Spans()
    spans.run(-50, 1000, tool=("search", False))
    spans.run(-40, 2000, tool=("search", False))
    spans.run(-30, 4000, fail=True, tool=("search", True))
    spans.run(-20, 8000, fail=True, tool=("search", True))
    board = HealthBoard(HealthConfig())
    absorb(board, config_path, spans.take())
    facts = board.facts("acme", "expense-bot", 900, NOW)
    assert (facts.runs, facts.failures, facts.degraded, facts.failure_rate) == (4, 2, 0, 0.5)
    assert facts.consecutive_failures == 2
    # The failed runs' type is their root cause: the tool's.
    assert facts.failure_types == {"tool_error": 2}
    # Nearest rank on a histogram of 10% buckets: within 5% of the exact 2,000 and 8,000 ms.
    assert facts.p50_ms is not None and abs(facts.p50_ms - 2000) / 2000 < 0.05
    assert facts.p95_ms is not None and abs(facts.p95_ms - 8000) / 8000 < 0.05
    (search,) = facts.tools
    assert (search.name, search.calls, search.errors, search.error_rate, search.consecutive_failures) == (
        "search", 4, 2, 0.5, 2,
    )  # fmt: skip
    assert search.last_failure_type == "tool_error"
    # Another tenant's agent of the same name is another agent.
    assert board.facts("globex", "expense-bot", 900, NOW).runs == 0


def test_a_success_ends_the_streaks(config_path: Path) -> None:
    spans = Spans()
    spans.run(-50, 100, fail=True, tool=("search", True))
    spans.run(-40, 100, fail=True, tool=("search", True))
    board = HealthBoard(HealthConfig())
    absorb(board, config_path, spans.take())
    assert board.facts("acme", "expense-bot", 900, NOW).consecutive_failures == 2
    # Streaks go on across digests, and end at the first success.
    spans.run(-30, 100, fail=True, tool=("search", True))
    absorb(board, config_path, spans.take())
    facts = board.facts("acme", "expense-bot", 900, NOW)
    assert (facts.consecutive_failures, facts.tools[0].consecutive_failures) == (3, 3)
    spans.run(-20, 100, tool=("search", False))
    absorb(board, config_path, spans.take())
    facts = board.facts("acme", "expense-bot", 900, NOW)
    assert (facts.consecutive_failures, facts.tools[0].consecutive_failures, facts.tools[0].errors) == (
        0,
        0,
        3,
    )


def test_a_run_is_counted_once_its_root_span_comes_and_never_twice(config_path: Path) -> None:
    spans = Spans()
    spans.run(-10, 500, tool=("search", True))
    tool, root = spans.take()  # the SDK ends the tool span first
    board = HealthBoard(HealthConfig())
    absorb(board, config_path, [tool])
    assert board.facts("acme", "expense-bot", 900, NOW).runs == 0  # waiting for its root
    absorb(board, config_path, [root])
    facts = board.facts("acme", "expense-bot", 900, NOW)
    # The read model's run: the tool failed under a run that answered: degraded.
    assert (facts.runs, facts.failures, facts.degraded) == (1, 0, 1)
    assert (facts.tools[0].calls, facts.tools[0].errors) == (1, 1)
    # A span of the trace arriving after its run was counted adds its call, not a run.
    late = Spans()
    late.run(-10, 500, model=("gpt-4o", None))
    extra = [s for s in late.take() if s.name.startswith("chat")]
    absorb(board, config_path, _reparented(extra, root))
    facts = board.facts("acme", "expense-bot", 900, NOW)
    assert facts.runs == 1
    assert [(m.name, m.calls) for m in facts.models] == [("gpt-4o", 1)]


def _reparented(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    """``spans`` moved under ``parent`` (same trace)."""
    out = []
    for span in spans:
        context = SpanContext(parent.context.trace_id, span.context.span_id, False, TraceFlags(1))
        out.append(ReadableSpan(
            name=span.name, context=context, parent=parent.context, resource=span.resource,
            attributes=span.attributes, events=span.events, links=span.links, kind=span.kind,
            status=span.status, start_time=span.start_time, end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        ))  # fmt: skip
    return out


def test_a_trace_whose_root_never_comes_counts_after_settle(config_path: Path) -> None:
    spans = Spans()
    remote = SpanContext(0xABC, 0xDEF, True, TraceFlags(1))
    with trace.use_span(NonRecordingSpan(remote)):
        spans.run(-5, 300, agent="sub-agent")
    board = HealthBoard(HealthConfig(settle=60))
    absorb(board, config_path, spans.take())
    assert board.facts("acme", "sub-agent", 900, NOW).runs == 0
    board.absorb(unpack(_empty_digest(config_path)), NOW + 59)
    assert board.facts("acme", "sub-agent", 900, NOW + 59).runs == 0
    board.absorb(unpack(_empty_digest(config_path)), NOW + 61)
    assert board.facts("acme", "sub-agent", 900, NOW + 61).runs == 1


def _empty_digest(config_path: Path) -> bytes:
    """A digest of an unrelated trace (a span of another agent's run that is still going)."""
    spans = Spans("other")
    remote = SpanContext(0x123, 0x456, True, TraceFlags(1))
    with trace.use_span(NonRecordingSpan(remote)):
        spans.run(0, 10, agent="x")
    digest = digest_spans(config_path, spans.take())
    assert digest is not None
    return digest


def test_waiting_traces_are_bounded(config_path: Path) -> None:
    spans = Spans()
    for i in range(5):
        remote = SpanContext(0x1000 + i, 0x2000 + i, True, TraceFlags(1))
        with trace.use_span(NonRecordingSpan(remote)):
            spans.run(-30 + i, 100, agent="sub-agent")
    board = HealthBoard(HealthConfig(max_pending_traces=2))
    absorb(board, config_path, spans.take())
    # Past the bound, the oldest are counted at once; two wait for their root.
    assert board.facts("acme", "sub-agent", 900, NOW).runs == 3
    assert board._pending_traces is not None and board._pending_traces.num_rows == 2


def test_the_window_tenant_name_and_eval_traffic(config_path: Path) -> None:
    spans = Spans()
    spans.run(-20 * 60, 100, agent="expense-bot", agent_id="agt_1", fail=True)
    spans.run(-60, 100, agent="expense-bot", agent_id="agt_1")
    spans.run(-30, 100, agent="expense-bot", agent_id="agt_1", synthetic=True, fail=True)
    board = HealthBoard(HealthConfig())
    absorb(board, config_path, spans.take())
    # By id or by name; eval traffic never counts.
    fifteen = board.facts("acme", "expense-bot", 900, NOW)
    assert (fifteen.agent, fifteen.name, fifteen.runs, fifteen.failures) == ("agt_1", "expense-bot", 1, 0)
    thirty = board.facts("acme", "agt_1", 1800, NOW)
    assert (thirty.runs, thirty.failures) == (2, 1)
    # A streak is of the window: a failure 20 minutes ago is no streak of the last 15.
    spans.run(-20 * 60, 100, agent="faq-bot", fail=True)
    absorb(board, config_path, spans.take())
    assert board.facts("acme", "faq-bot", 900, NOW).consecutive_failures == 0
    assert board.facts("acme", "faq-bot", 1800, NOW).consecutive_failures == 1


def test_rate_limited_model_calls(config_path: Path) -> None:
    spans = Spans()
    for i in range(3):
        spans.run(-30 + i, 100, model=("gpt-4o", "Error code: 429 - Rate limit reached for requests"))
    spans.run(-20, 100, model=("gpt-4o-mini", None))
    board = HealthBoard(HealthConfig())
    absorb(board, config_path, spans.take())
    facts = board.facts("acme", "expense-bot", 900, NOW)
    limited, ok = facts.models
    assert (limited.name, limited.calls, limited.errors, limited.rate_limited) == ("gpt-4o", 3, 3, 3)
    assert (limited.consecutive_failures, limited.consecutive_rate_limits) == (3, 3)
    assert limited.last_failure_type == "rate_limit"
    assert (ok.name, ok.calls, ok.rate_limited) == ("gpt-4o-mini", 1, 0)


def test_old_buckets_are_pruned(config_path: Path) -> None:
    spans = Spans()
    spans.run(-30, 100, tool=("search", False))
    board = HealthBoard(HealthConfig(max_window=3600))
    absorb(board, config_path, spans.take())
    spans.run(2 * 3600, 100, agent="other")
    absorb(board, config_path, spans.take(), now=NOW + 2 * 3600 + 60)
    assert ("acme", "expense-bot") not in board._agents
    assert board.facts("acme", "other", 900, NOW + 2 * 3600 + 60).runs == 1


def test_names_from_span_data_cannot_grow_the_board_without_bound(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(board_module, "MAX_TENANT_AGENTS", 2)
    monkeypatch.setattr(board_module, "MAX_STEPS", 2)
    board = HealthBoard(HealthConfig())
    spans = Spans()
    # agent-0 first, one run (and one new tool) at a time: tool-0 and other-tool-0 are counted apart.
    spans.run(-30, 100, agent="agent-0", tool=("tool-0", False))
    absorb(board, config_path, spans.take())
    for i in range(4):
        spans.run(-20 + i, 100, agent="agent-0", tool=(f"other-tool-{i}", True))
        absorb(board, config_path, spans.take())
    zero = board.facts("acme", "agent-0", 900, NOW)
    assert [(t.name, t.calls, t.errors) for t in zero.tools] == [
        ("(other)", 3, 3), ("other-tool-0", 1, 1), ("tool-0", 1, 0),
    ]  # fmt: skip
    # Then three more agents: one more is counted apart, the other two together.
    for i in range(1, 4):
        spans.run(-10 + i, 100, agent=f"agent-{i}")
    absorb(board, config_path, spans.take())
    agents = sorted(a for _, a in board._agents)
    assert len(agents) == 3 and agents[:2] == ["(other)", "agent-0"]
    assert (board.facts("acme", "(other)", 900, NOW).runs, board.facts("acme", agents[2], 900, NOW).runs) == (
        2,
        1,
    )


def test_a_run_longer_than_settle_is_counted_once(config_path: Path) -> None:
    """Its tool span came first; after settle the trace was counted from it; when its root
    comes, its calls are added, not a second run."""
    spans = Spans()
    spans.run(-200, 150_000, tool=("search", True))
    tool, root = spans.take()
    board = HealthBoard(HealthConfig(settle=60))
    absorb(board, config_path, [tool], now=NOW - 190)
    board.absorb(unpack(_empty_digest(config_path)), NOW - 100)  # settle passes
    absorb(board, config_path, [root], now=NOW)
    runs = sum(board.facts("acme", a, 900, NOW).runs for _, a in board._agents)
    assert runs == 1


def test_a_trace_with_rooted_and_other_rows_in_one_pass_is_one_run(config_path: Path) -> None:
    """Two batches packed in one digest (the tap packs the batches of a conversion): the root in
    one, a failed tool in the other: one run, built from both (degraded), counted once."""
    spans = Spans()
    spans.run(-30, 500, tool=("search", True))
    tool, root = spans.take()
    first, second = digest_spans(config_path, [tool]), digest_spans(config_path, [root])
    assert first is not None and second is not None
    both = Digest(*(pa.concat_tables(t) for t in zip(unpack(first), unpack(second), strict=True)))
    board = HealthBoard(HealthConfig(settle=60))
    board.absorb(both, NOW)
    board.absorb(unpack(_empty_digest(config_path)), NOW + 120)  # past settle: nothing left waiting
    facts = board.facts("acme", "expense-bot", 900, NOW + 120)
    assert (facts.runs, facts.degraded, facts.tools[0].calls) == (1, 1, 1)


def test_a_clock_far_ahead_does_not_freeze_streaks(config_path: Path) -> None:
    spans = Spans()
    spans.run(-50, 100, fail=True, tool=("search", True))
    future = spans.take()
    future_end = [
        ReadableSpan(
            name=s.name, context=s.context, parent=s.parent, resource=s.resource, attributes=s.attributes,
            events=s.events, links=s.links, kind=s.kind, status=s.status, start_time=s.start_time,
            end_time=(s.end_time or 0) + 86_400 * 10**9, instrumentation_scope=s.instrumentation_scope,
        )
        for s in future
    ]  # fmt: skip
    board = HealthBoard(HealthConfig())
    absorb(board, config_path, future_end)
    for i in range(3):
        spans.run(-40 + i, 100, tool=("search", False))
    absorb(board, config_path, spans.take(), now=NOW + 5)
    facts = board.facts("acme", "expense-bot", 900, NOW + 5)
    assert (facts.runs, facts.consecutive_failures, facts.tools[0].consecutive_failures) == (4, 0, 0)
    # A day later nothing of it is left in the window.
    assert board.facts("acme", "expense-bot", 900, NOW + 86_400).runs == 0

    # Another tenant's agents are not crowded out by this one's.
    globex = Spans("globex")
    globex.run(-5, 100, agent="expense-bot")
    absorb(board, config_path, globex.take())
    assert board.facts("globex", "expense-bot", 900, NOW).runs == 1


def test_an_agent_has_one_name_in_the_index(config_path: Path) -> None:
    spans = Spans()
    board = HealthBoard(HealthConfig())
    for i, name in enumerate(["bot-v1", "bot-v2", "bot-v3"]):
        spans.run(-30 + i, 100, agent=name, agent_id="agt_1")
        absorb(board, config_path, spans.take())
    assert board._names == {("acme", "bot-v3"): "agt_1"}
    assert board.facts("acme", "bot-v3", 900, NOW).runs == 3
    assert board.facts("acme", "bot-v1", 900, NOW).runs == 0  # an old name: not this agent's any more
