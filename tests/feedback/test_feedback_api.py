"""``POST /api/v1/feedback`` on a real ``agentwatch serve``: items stored durably under the
token's tenant, once however often posted, bad items refused by index and key, feedback that
arrives before its trace joining the run later, and the GenAI evaluation events of spans in the
same ``feedback`` view."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.helpers.auth import ACME, AUTH, GLOBEX
from tests.helpers.server import ServerProcess

pytestmark = pytest.mark.process

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("feedback")
    tokens = workdir / "tokens.yaml"
    tokens.write_text(f"- token: {GLOBEX}\n  tenant: globex\n")
    started = ServerProcess(workdir, otlp_extra=AUTH.replace("TOKENS_FILE", str(tokens))).start()
    yield started
    started.stop()


def post(server: ServerProcess, body: Any, token: str | None = ACME) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"http://127.0.0.1:{server.api_port}/api/v1/feedback", json=body, headers=headers)


def test_items_are_stored_once_under_the_tokens_tenant(server: ServerProcess) -> None:
    items = [
        {"trace_id": TRACE, "user_id": "u1", "value": "down", "comment": "wrong total", "time": "2026-11-30T10:00:00Z",
         "id": "fb-1"},
        {"trace_id": TRACE, "span_id": "00f067aa0ba902b7", "user_id": "u2", "value": 4,
         "time": "2026-11-30T10:01:00Z", "metadata": {"app": "slack"}},
        {"trace_id": TRACE.upper(), "user_id": "u3", "value": 0.25, "time": 1764496920},
        {"trace_id": TRACE, "user_id": "u4", "value": 1, "kind": "score", "time": "2026-11-30T10:03:00Z"},
    ]  # fmt: skip
    first = post(server, items)
    assert (first.status_code, first.json()) == (200, {"accepted": 4, "tenant": "acme"})
    # The same items again (a client retrying), one of them by its id with another comment.
    again = [dict(items[0], comment="retried"), items[1]]
    assert post(server, again).json() == {"accepted": 2, "tenant": "acme"}
    rows = server.query(
        "SELECT tenant, user_id, kind, value, score, negative, comment, span_id, metadata, source FROM feedback "
        "ORDER BY user_id"
    )
    assert rows == [
        ("acme", "u1", "thumbs", 0.0, 0.0, True, "wrong total", None, None, "api"),
        ("acme", "u2", "rating", 4.0, 0.75, False, None, "00f067aa0ba902b7", '{"app":"slack"}', "api"),
        ("acme", "u3", "score", 0.25, 0.25, True, None, None, None, "api"),
        ("acme", "u4", "score", 1.0, 1.0, False, None, None, None, "api"),
    ]  # fmt: skip
    # A token writes its own tenant only: globex's feedback on the same trace id stays globex's.
    assert post(server, {"trace_id": TRACE, "value": "up"}, GLOBEX).json()["tenant"] == "globex"
    assert server.query("SELECT tenant, count(*) FROM feedback GROUP BY ALL ORDER BY 1") == [
        ("acme", 4),
        ("globex", 1),
    ]


def test_refusals_name_the_item_and_key_and_store_nothing(server: ServerProcess) -> None:
    before = server.query("SELECT count(*) FROM feedback")
    assert post(server, {"trace_id": TRACE, "value": "up"}, token=None).status_code == 401
    assert post(server, {"trace_id": TRACE, "value": "up"}, token="not-a-token-0000000000").status_code == 401
    bad = post(server, [
        {"trace_id": TRACE, "value": "up"},
        {"trace_id": "xyz", "value": 7, "colour": "red"},
        {"trace_id": TRACE, "value": 0.5, "kind": "rating", "time": "yesterday"},
    ])  # fmt: skip
    assert bad.status_code == 400
    assert bad.json()["problems"] == [
        "[1].colour: unknown key (known: id, trace_id, span_id, user_id, name, value, kind, label, comment, time, "
        "metadata, tenant)",
        "[1].trace_id: must be 32 hex digits",
        "[1].value: a rating is an integer 1-5 (send kind: score for a score)",
        "[2].value: a rating is an integer 1-5 (send kind: score for a score)",
        "[2].time: not an ISO 8601 time: 'yesterday'",
    ]  # fmt: skip
    raw = httpx.post(f"http://127.0.0.1:{server.api_port}/api/v1/feedback", content=b"{not json",
                     headers={"authorization": f"Bearer {ACME}"})  # fmt: skip
    assert raw.status_code == 400 and raw.json()["error"].startswith("body: not JSON")
    big = httpx.post(f"http://127.0.0.1:{server.api_port}/api/v1/feedback", content=b" " * (2 << 20),
                     headers={"authorization": f"Bearer {ACME}"})  # fmt: skip
    assert big.status_code == 413
    assert server.query("SELECT count(*) FROM feedback") == before


def test_feedback_before_its_trace_joins_the_run_and_evaluation_events_count(
    server: ServerProcess, tmp_path: Path
) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    assert post(server, {"trace_id": trace_id, "user_id": "u9", "value": 2}).status_code == 200
    exporter = OTLPSpanExporter(endpoint=server.http_url, headers={"authorization": f"Bearer {ACME}"})
    provider = TracerProvider(resource=Resource.create({"service.name": "bot"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("feedback-test")
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    parent = set_span_in_context(NonRecordingSpan(SpanContext(int(trace_id, 16), 1, False, TraceFlags(1))))
    with tracer.start_as_current_span("invoke_agent bot", context=parent, attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "bot", "user.id": "u9",
        "gen_ai.input.messages": "book a trip"}) as span:  # fmt: skip
        span.add_event("gen_ai.evaluation.result", {
            "gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.2,
            "gen_ai.evaluation.score.label": "irrelevant", "gen_ai.evaluation.explanation": "off topic"})  # fmt: skip
    provider.shutdown()
    server.wait_for_count(f"SELECT count(*) FROM runs WHERE trace_id = '{trace_id}'", 1)
    joined = server.query(
        f"""SELECT r.agent_name, f.source, f.name, f.kind, f.value, f.negative, f.label, f.comment, f.user_id
            FROM runs r JOIN feedback f USING (tenant, trace_id) WHERE trace_id = '{trace_id}' ORDER BY f.source"""
    )
    assert joined == [
        ("bot", "api", "user", "rating", 2.0, True, None, None, "u9"),
        ("bot", "otel_event", "relevance", "score", 0.2, True, "irrelevant", "off topic", "u9"),
    ]
    # The report counts both pieces for the agent (a rating of 2 and the 0.2 score: negative).
    from datetime import UTC, datetime, timedelta

    from report.formats import agent_dict, feedback_line
    from report.health import NAME_COLUMNS, build_report
    from storage.catalog import connect
    from storage.runs import Scope, runs_in

    now = datetime.now(UTC)
    runs = runs_in(connect(server.data_dir), Scope(now - timedelta(hours=1), now + timedelta(minutes=1), "bot"),
                   NAME_COLUMNS)  # fmt: skip
    (bot,) = build_report(runs, ()).agents
    feedback = agent_dict(bot)["feedback"]
    buckets = feedback.pop("buckets")
    assert feedback == {
        "pieces": 2, "negative": 2, "negative_rate": 1.0, "mean_rating": 2.0, "runs_with_feedback": 1,
        "runs_with_negative": 1, "negative_rate_failed": None, "negative_rate_succeeded": 1.0,
        "by_failure_type": [{"failure_type": "none", "pieces": 2, "negative": 2, "negative_rate": 1.0}],
        "judge_scores": [],
    }  # fmt: skip
    assert [(b["pieces"], b["negative"]) for b in buckets if b["pieces"]] == [(2, 2)]
    assert feedback_line(bot.feedback) == (  # type: ignore[arg-type]
        "2 pieces on 1 runs, 2 negative (100.0%), mean rating 2.0; negative on failed runs -, "
        "on successful runs 100.0%; negative by failure type: none 100.0% (2 of 2)"
    )
    # The negative_feedback_rate rule fires for it, once it has enough pieces.
    from alerting.config import RuleConfig
    from alerting.rules import RuleEvaluator
    from storage.runs import USAGE

    usage = runs_in(
        connect(server.data_dir), Scope(now - timedelta(hours=1), now + timedelta(minutes=1)), USAGE
    )
    evaluator = RuleEvaluator(usage, now + timedelta(minutes=1), ())
    rule = RuleConfig("unhappy", "negative_feedback_rate", threshold=0.5, window=3600, min_count=2)
    (finding,) = evaluator.findings(rule)
    assert (finding.tenant, finding.agent, finding.value, finding.runs, finding.affected_users) == (
        "acme", "bot", 1.0, 2, 1)  # fmt: skip
    assert finding.summary == "negative feedback 100% > 50% (2 of 2 pieces on runs of the last 1h)"
    assert finding.example_trace_ids == (trace_id,)
    assert (
        evaluator.findings(RuleConfig("unhappy", "negative_feedback_rate", threshold=0.5, window=3600)) == []
    )
    # Runs users rated down become eval cases, their comments the guidance.
    import json

    from click.testing import CliRunner

    from agentwatch.cli import main

    out = tmp_path / "rated-down.jsonl"
    assert post(server, {"trace_id": trace_id, "user_id": "u9", "value": "down", "comment": "missed the receipt"},
                ).status_code == 200  # fmt: skip
    result = CliRunner().invoke(main, ["cases", "export", "--data-dir", str(server.data_dir), "--since", "1h",
                                       "--feedback", "negative", "-o", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    (case,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (case["id"], case["query"], case["tags"]) == (f"feedback-{trace_id}", "book a trip", ["negative-feedback",
                                                                                                  "success"])  # fmt: skip
    assert case["eval_guidance"] == (
        "Answers the request so the user would not rate it down; the user said: off topic; missed the receipt"
    )
    assert (case["metadata"]["feedback_pieces"], case["metadata"]["comments"]) == (
        3,
        ["off topic", "missed the receipt"],
    )


def test_langfuse_scores_and_phoenix_annotations(server: ServerProcess) -> None:
    import base64

    api = f"http://127.0.0.1:{server.api_port}"
    trace_id = "5b8efff798038103d269b633813fc60c"
    exporter = OTLPSpanExporter(endpoint=server.http_url, headers={"authorization": f"Bearer {GLOBEX}"})
    provider = TracerProvider(resource=Resource.create({"service.name": "bot"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    parent = set_span_in_context(NonRecordingSpan(SpanContext(int(trace_id, 16), 1, False, TraceFlags(1))))
    with provider.get_tracer("t").start_as_current_span("invoke_agent helper", context=parent) as span:
        span_id = f"{span.get_span_context().span_id:016x}"
    provider.shutdown()
    server.wait_for_count(f"SELECT count(*) FROM spans WHERE trace_id = '{trace_id}'", 1)
    # Langfuse's REST API, with its key pair as HTTP Basic (the ingest token as the public key).
    basic = {"authorization": "Basic " + base64.b64encode(f"{GLOBEX}:sk-lf-anything".encode()).decode()}
    scores = [
        {"traceId": trace_id, "name": "accuracy", "value": 0.2, "dataType": "NUMERIC", "comment": "made up"},
        {"traceId": trace_id, "observationId": span_id, "name": "verdict", "value": "incorrect",
         "dataType": "CATEGORICAL", "id": "lf-2"},
        {"traceId": trace_id, "name": "helpful", "value": 1, "dataType": "BOOLEAN"},
    ]  # fmt: skip
    for score in scores:
        answer = httpx.post(f"{api}/api/public/scores", json=score, headers=basic)
        assert answer.status_code == 200 and len(answer.json()["id"]) == 32
    assert httpx.post(f"{api}/api/public/scores", json=scores[0]).status_code == 401
    bad = httpx.post(f"{api}/api/public/scores", json={"traceId": "nope", "value": 3}, headers=basic)
    assert bad.status_code == 400 and bad.json()["problems"] == ["trace_id: must be 32 hex digits"]
    # Langfuse's batch ingestion (its SDKs): score-create events taken, anything else refused.
    batch = {"batch": [
        {"id": "e1", "type": "score-create", "timestamp": "2026-12-01T00:00:00Z",
         "body": {"traceId": trace_id, "name": "stars", "value": 2}},
        {"id": "e2", "type": "trace-create", "body": {"id": trace_id}},
        {"id": "e3", "type": "score-create", "body": {"traceId": trace_id, "value": 9}},
    ]}  # fmt: skip
    answer = httpx.post(f"{api}/api/public/ingestion", json=batch, headers=basic)
    assert answer.status_code == 207
    assert answer.json() == {
        "successes": [{"id": "e1", "status": 201}],
        "errors": [
            {"id": "e2", "status": 400, "message": "only score-create events are taken here; send traces over OTLP"},
            {"id": "e3", "status": 400, "message": "value: a rating is an integer 1-5 (send kind: score for a score)"},
        ],
    }  # fmt: skip
    # Phoenix: a trace annotation, and a span annotation whose trace is looked up.
    bearer = {"authorization": f"Bearer {GLOBEX}"}
    trace_note = {"data": [{"trace_id": trace_id, "name": "qa", "annotator_kind": "HUMAN",
                            "result": {"label": "correct", "score": 0.9, "explanation": "fine"}}]}  # fmt: skip
    assert httpx.post(f"{api}/v1/trace_annotations", json=trace_note, headers=bearer).status_code == 200
    span_note = {"data": [{"span_id": span_id, "name": "hallucination", "annotator_kind": "LLM",
                           "result": {"label": "hallucinated"}, "identifier": "px-1"}]}  # fmt: skip
    assert httpx.post(f"{api}/v1/span_annotations", json=span_note, headers=bearer).status_code == 200
    unknown = {"data": [{"span_id": "00000000000000aa", "name": "x", "result": {"score": 1}}]}
    missing = httpx.post(f"{api}/v1/span_annotations", json=unknown, headers=bearer)
    assert missing.status_code == 400
    assert missing.json()["problems"] == [
        "[0].span_id: no stored span 00000000000000aa (send the trace first, or annotate the trace)"
    ]
    rows = server.query(
        f"""SELECT source, name, kind, value, score, negative, label, comment, span_id IS NOT NULL, metadata
            FROM feedback WHERE tenant = 'globex' AND trace_id = '{trace_id}' ORDER BY source, name"""
    )
    assert rows == [
        ("langfuse", "accuracy", "score", 0.2, 0.2, True, None, "made up", False, None),
        ("langfuse", "helpful", "thumbs", 1.0, 1.0, False, None, None, False, None),
        ("langfuse", "stars", "rating", 2.0, 0.25, True, None, None, False, None),
        ("langfuse", "verdict", "label", 0.0, 0.0, True, "incorrect", None, True, None),
        ("phoenix", "hallucination", "label", 0.0, 0.0, True, "hallucinated", None, True, '{"annotator_kind":"LLM"}'),
        ("phoenix", "qa", "score", 0.9, 0.9, False, "correct", "fine", False, '{"annotator_kind":"HUMAN"}'),
    ]  # fmt: skip


def test_hostile_bodies_are_refused_not_crashed_on(server: ServerProcess) -> None:
    api = f"http://127.0.0.1:{server.api_port}"
    deep: dict[str, Any] = {}
    for _ in range(300):
        deep = {"a": deep}
    answer = post(server, {"trace_id": TRACE, "value": "up", "metadata": deep})
    assert (answer.status_code, answer.json()["problems"]) == (400, ["[0].metadata: nested too deeply"])
    basic = {"authorization": f"Bearer {ACME}"}
    events = [
        {"id": f"e{i}", "type": "score-create", "body": {"traceId": TRACE, "value": 1}} for i in range(1001)
    ]
    too_many = httpx.post(f"{api}/api/public/ingestion", json={"batch": events}, headers=basic)
    assert (too_many.status_code, too_many.json()) == (
        413,
        {"message": "batch: 1001 events, at most 1000 a request"},
    )
    # A Phoenix re-post of one (name, trace, identifier) updates it: the latest label is read.
    for label in ("correct", "incorrect"):
        note = {
            "data": [{"trace_id": TRACE, "name": "review", "identifier": "r-1", "result": {"label": label}}]
        }
        assert httpx.post(f"{api}/v1/trace_annotations", json=note, headers=basic).status_code == 200
    assert server.query("SELECT label, negative FROM feedback WHERE name = 'review'") == [("incorrect", True)]
