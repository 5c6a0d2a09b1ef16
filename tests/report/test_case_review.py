"""Candidate eval cases from production (``report.cases.candidates``) and ``agentwatch cases
review``: which runs come out of failure signals, feedback and judges' marks, and why; which are
dropped as known to the dataset or to each other; accepting appends the exact lines, rejecting
is remembered; the interactive review through click's runner with scripted keys.

The fixture, hand-made: eleven runs of ``bot`` (one of ``other``) stored by the Parquet exporter,
feedback rows and run marks, in the window ending ``UNTIL``:

| run | start | outcome | failure (message) | query | also |
| a | 0 | failure | tool_timeout (deadline exceeded after 30s) | Where is my reimbursement for trip 4711? | |
| b | 1 | failure | tool_timeout (… 45s) | Where is my reimbursement for trip 815? | like a: 0.883 |
| c | 2 | failure | tool_timeout (… 5s) | How do I file an expense report? | dataset d1 |
| d | 3 | failure | tool_error (ticket 12 not found) | Reset my password | |
| e | 4 | success | | Reset my VPN password | rated down; like d: 0.842 |
| f | 5 | success | | How do I file an expense report for travel? | rated down; d1: 0.849 |
| g | 6 | success | | What is the per diem in Berlin? | marked groundedness_drop |
| h | 7 | failure | tool_error (ticket 13 not found) | Close ticket [13] please | rated down, marked |
| i | 8 | failure | tool_timeout (… 9s) | (no input) | |
| j | 9 | success | | what is the refund polcy for hotels | rated down; d2: 0.930 |
| k | 10 | success | | Nothing wrong here | |
| o | 11 | failure | tool_error | Other agent's question | agent other |

Signals: tool_timeout ``deadline exceeded after <n>`` (a, b, c, i: 4 runs) before tool_error
``ticket <n> not found`` (d, h: 2 runs).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from agentwatch.cli import main
from evals.candidates import deduplicated, load_rejections, state_path
from evals.datasets import load_dataset
from report.cases import candidates
from storage.catalog import connect
from storage.runs import TEXTS, Scope, runs_in
from storage.tables import FeedbackRow, RunMarkRow, write_rows
from tests.helpers.span_rows import T0, export, row

START = datetime.fromtimestamp(T0 / 1e9, UTC)
UNTIL = "2025-11-22T12:00:00Z"
MINUTE = 60_000
TIMEOUT = hashlib.md5(b"tool_timeout|deadline exceeded after <n>").hexdigest()[:8]
TICKET = hashlib.md5(b"tool_error|ticket <n> not found").hexdigest()[:8]


def trace(t: str) -> str:
    return t * 32


def run(
    t: str, minute: int, query: str | None, answer: str, failure: str | None = None, message: str | None = None,
    agent: str = "bot",
) -> list[dict[str, Any]]:  # fmt: skip
    spans = [row(t, "1", None, "agent_run", minute * MINUTE, 1000, input_text=query, output_text=answer,
                 status="error" if failure else "ok", user_id=f"{t}@acme.com", agent_id=agent)]  # fmt: skip
    if failure:
        spans.append(row(t, "2", "1", "tool", minute * MINUTE + 10, 100, status="error", failure_type=failure,
                         error_message=message))  # fmt: skip
    return spans


def feedback(t: str, n: int, comment: str | None) -> FeedbackRow:
    at = START + timedelta(minutes=30 + n)
    return FeedbackRow(
        feedback_id=f"{t}-{n}", trace_id=trace(t), span_id=None, user_id=f"{t}@acme.com", name="user",
        kind="thumbs", value=0, score=0, negative=True, label=None, comment=comment, time=at, received_at=at,
        source="api", metadata=None,
    )  # fmt: skip


def mark(t: str, failure_type: str, reason: str) -> RunMarkRow:
    return RunMarkRow(trace(t), t * 16, failure_type, reason, "heuristic", START + timedelta(hours=1))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    timeout = "deadline exceeded after"
    export(
        directory,
        [
            *run("a", 0, "Where is my reimbursement for trip 4711?", "I could not reach travel.", "tool_timeout",
                 f"{timeout} 30s"),
            *run("b", 1, "Where is my reimbursement for trip 815?", "Timed out.", "tool_timeout", f"{timeout} 45s"),
            *run("c", 2, "How do I file an expense report?", "Sorry.", "tool_timeout", f"{timeout} 5s"),
            *run("d", 3, "Reset my password", "Done.", "tool_error", "ticket 12 not found"),
            *run("e", 4, "Reset my VPN password", "Use the portal."),
            *run("f", 5, "How do I file an expense report for travel?", "Ask HR."),
            *run("g", 6, "What is the per diem in Berlin?", "The per diem is 500 EUR."),
            *run("h", 7, "Close ticket [13] please", "[red]closed[/red]\x1b[2J", "tool_error", "ticket 13 not found"),
            *run("i", 8, None, "?", "tool_timeout", f"{timeout} 9s"),
            *run("j", 9, "what is the refund polcy for hotels", "No idea."),
            *run("k", 10, "Nothing wrong here", "Fine."),
            *run("o", 11, "Other agent's question", "No.", "tool_error", "boom", agent="other"),
        ],
    )  # fmt: skip
    write_rows(directory, "acme", START, [feedback("e", 1, "it ignored the VPN"), feedback("f", 2, None),
                                          feedback("h", 3, "wrong [ticket]"), feedback("h", 4, "still open"),
                                          feedback("j", 5, None), feedback("k", 6, None)])  # fmt: skip
    write_rows(directory, "acme", START, [mark("g", "groundedness_drop", "groundedness 2 < 5 (heuristic)"),
                                          mark("h", "quality_regression", "overall_score 3 < 4 (heuristic)")])  # fmt: skip
    return directory


DATASET_JSONL = (
    '{"id": "d1", "query": "how do I file an expense report", "eval_guidance": "Mentions Concur"}\n'
    '{"id": "d2", "query": "What is the refund policy for hotels?"}\n'
)

CSV = "query,eval_guidance\nhow do I file an expense report,Mentions Concur\nWhat is the refund policy for hotels?,\n"

# Every candidate of the fixture, before the dataset: (id, sources, failure type, reasons).
EVERY = [
    ("prod-" + trace("a"), ("clusters",), "tool_timeout",
     (f"failure signal {TIMEOUT} (tool_timeout: deadline exceeded after <n>), 4 runs in the window",)),
    ("prod-" + trace("b"), ("clusters",), "tool_timeout",
     (f"failure signal {TIMEOUT} (tool_timeout: deadline exceeded after <n>), 4 runs in the window",)),
    ("prod-" + trace("c"), ("clusters",), "tool_timeout",
     (f"failure signal {TIMEOUT} (tool_timeout: deadline exceeded after <n>), 4 runs in the window",)),
    ("prod-" + trace("d"), ("clusters",), "tool_error",
     (f"failure signal {TICKET} (tool_error: ticket <n> not found), 2 runs in the window",)),
    ("prod-" + trace("h"), ("clusters", "feedback", "judged"), "tool_error",
     (f"failure signal {TICKET} (tool_error: ticket <n> not found), 2 runs in the window",
      "rated down by users (2 negative pieces of feedback)",
      "marked quality_regression by the judge (heuristic): overall_score 3 < 4 (heuristic)")),
    ("feedback-" + trace("e"), ("feedback",), None, ("rated down by users (1 negative piece of feedback)",)),
    ("feedback-" + trace("f"), ("feedback",), None, ("rated down by users (1 negative piece of feedback)",)),
    ("feedback-" + trace("j"), ("feedback",), None, ("rated down by users (1 negative piece of feedback)",)),
    ("feedback-" + trace("k"), ("feedback",), None, ("rated down by users (1 negative piece of feedback)",)),
    ("judged-" + trace("g"), ("judged",), "groundedness_drop",
     ("marked groundedness_drop by the judge (heuristic): groundedness 2 < 5 (heuristic)",)),
]  # fmt: skip


def test_candidates_come_from_signals_feedback_and_marks_one_per_run(data: Path) -> None:
    scope = Scope(START - timedelta(hours=1), START + timedelta(hours=3), agent="bot")
    found = candidates(runs_in(connect(data), scope, TEXTS))
    assert found.skipped_without_input == 1  # i
    assert [(c.id, c.sources, c.failure_type, c.reasons) for c in found.candidates] == EVERY
    by_id = {c.trace_id: c for c in found.candidates}
    h = by_id[trace("h")]
    assert (h.answer, h.comments) == ("[red]closed[/red]\x1b[2J", ("wrong [ticket]", "still open"))
    assert (
        h.case["eval_guidance"]
        == "Answers the request without the production failure (tool_error: ticket 13 not found)"
    )
    assert by_id[trace("g")].case == {
        "id": "judged-" + trace("g"),
        "query": "What is the per diem in Berlin?",
        "eval_guidance": "Answers the request so the judge would not mark it "
        "(groundedness_drop: groundedness 2 < 5 (heuristic))",
        "tags": ["judge-mark", "groundedness_drop"],
        "metadata": {"trace_id": trace("g"), "failure_type": "groundedness_drop",
                     "mark_reason": "groundedness 2 < 5 (heuristic)", "mark_source": "heuristic",
                     "judged_output": "The per diem is 500 EUR.", "agent": "bot", "tenant": "acme",
                     "user_id": "g@acme.com", "observed_at": "2025-11-22T08:32:40Z"},
    }  # fmt: skip
    assert by_id[trace("e")].comments == ("it ignored the VPN",)
    # One source at a time, in the order asked for: h is then the judge's.
    only = candidates(runs_in(connect(data), scope, TEXTS), ("judged", "feedback"))
    assert [c.id for c in only.candidates] == ["judged-" + trace("g"), "judged-" + trace("h"),
                                               *(f"feedback-{trace(t)}" for t in "efjk")]  # fmt: skip
    assert only.skipped_without_input == 0
    with pytest.raises(ValueError, match="unknown source"):
        candidates(runs_in(connect(data), scope, TEXTS), ("nope",))


def test_known_queries_are_dropped_near_misses_stay(data: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "eval.jsonl"
    dataset.write_text(DATASET_JSONL)
    scope = Scope(START - timedelta(hours=1), START + timedelta(hours=3), agent="bot")
    found = candidates(runs_in(connect(data), scope, TEXTS))
    kept, dropped = deduplicated(found.candidates, load_dataset(dataset))
    assert [c.id for c in kept] == [f"prod-{trace('a')}", f"prod-{trace('d')}", f"prod-{trace('h')}",
                                    f"feedback-{trace('e')}", f"feedback-{trace('f')}", f"feedback-{trace('k')}",
                                    f"judged-{trace('g')}"]  # fmt: skip
    assert [(d.id, d.why) for d in dropped] == [
        (f"prod-{trace('b')}", f"a query like candidate prod-{trace('a')} (similarity 0.883)"),
        (f"prod-{trace('c')}", "the same query as dataset case d1 in the dataset"),
        (f"feedback-{trace('j')}", "a query like dataset case d2 (similarity 0.930) in the dataset"),
    ]


def review(data: Path, dataset: Path, *args: str, keys: str | None = None) -> Result:
    return CliRunner().invoke(
        main,
        ["cases", "review", "--data-dir", str(data), "--agent", "bot", "--since", "1d", "--until", UNTIL,
         "--dataset", str(dataset), *args],
        input=keys,
        catch_exceptions=False,
    )  # fmt: skip


def test_json_lists_the_candidates_and_what_was_dropped(data: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "eval.jsonl"
    dataset.write_text(DATASET_JSONL)
    result = review(data, dataset, "--json", "--source", "judged,clusters")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["agent"], doc["sources"], doc["skipped_without_input"]) == ("bot", ["judged", "clusters"], 1)
    assert [(c["id"], c["sources"]) for c in doc["candidates"]] == [
        (f"judged-{trace('g')}", ["judged"]),
        (f"judged-{trace('h')}", ["judged", "clusters"]),
        (f"prod-{trace('a')}", ["clusters"]),
        (f"prod-{trace('d')}", ["clusters"]),
    ]
    first = doc["candidates"][0]
    assert (first["query"], first["answer"], first["failure_type"], first["comments"]) == (
        "What is the per diem in Berlin?", "The per diem is 500 EUR.", "groundedness_drop", [])  # fmt: skip
    assert doc["dropped"] == [
        {"id": f"prod-{trace('b')}", "trace_id": trace("b"),
         "why": f"a query like candidate prod-{trace('a')} (similarity 0.883)"},
        {"id": f"prod-{trace('c')}", "trace_id": trace("c"), "why": "the same query as dataset case d1 in the dataset"},
    ]  # fmt: skip
    assert dataset.read_text() == DATASET_JSONL and not state_path(dataset).exists()  # nothing changed


def test_accept_all_but_rejected_appends_exact_jsonl_lines(data: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "eval.jsonl"
    dataset.write_text(DATASET_JSONL)
    result = review(data, dataset, "--source", "judged", "--accept-all", "--reject", trace("h"))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "2 candidates (agent bot, 2025-11-21 12:00 → 2025-11-22 12:00 UTC) (0 dropped as known)",
        "accepted 1, rejected 1 of 2 candidates",
    ]
    g = (
        '{"id":"judged-'
        + trace("g")
        + '","query":"What is the per diem in Berlin?","eval_guidance":"Answers the '
        'request so the judge would not mark it (groundedness_drop: groundedness 2 < 5 (heuristic))","tags":'
        '["judge-mark","groundedness_drop"],"metadata":{"trace_id":"' + trace("g") + '","failure_type":'
        '"groundedness_drop","mark_reason":"groundedness 2 < 5 (heuristic)","mark_source":"heuristic",'
        '"judged_output":"The per diem is 500 EUR.","agent":"bot","tenant":"acme","user_id":"g@acme.com",'
        '"observed_at":"2025-11-22T08:32:40Z"}}\n'
    )
    assert dataset.read_text() == DATASET_JSONL + g
    assert [(r.id, r.trace_id, r.query) for r in load_rejections(state_path(dataset))] == [
        (f"judged-{trace('h')}", trace("h"), "Close ticket [13] please")
    ]
    # Again: g is in the dataset (its id), h was rejected: nothing is proposed.
    again = review(data, dataset, "--source", "judged", "--json")
    assert json.loads(again.stdout)["candidates"] == []
    assert [d["why"] for d in json.loads(again.stdout)["dropped"]] == [
        f"already in the dataset as judged-{trace('g')}",
        "rejected before",
    ]
    # Rejected as a judged case, h is not proposed from another source either (its run).
    clusters = json.loads(review(data, dataset, "--source", "clusters", "--json").stdout)
    assert [c["id"] for c in clusters["candidates"]] == [f"prod-{trace('a')}", f"prod-{trace('d')}"]


def test_the_interactive_review(data: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "eval.csv"
    dataset.write_text(CSV)
    # a: accept; d: an unknown key, then reject; h: skip; e: edit the guidance, then accept; quit at f.
    keys = "a\nx\nr\ns\ne\nSays where the VPN portal is\na\nq\n"
    result = review(data, dataset, keys=keys)
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "7 candidates (agent bot, 2025-11-21 12:00 → 2025-11-22 12:00 UTC) "
        "(3 dropped as known, 1 run without input skipped)\n"
    )
    out = result.stdout
    assert out.count("[1/7] prod-") == 1 and "[5/7] feedback-" + trace("f") in out and "[6/7]" not in out
    assert "Please select one of the available options" in out  # the unknown key x
    # h's texts as they are, never markup: the brackets shown, the escape sequence made visible.
    assert "Close ticket [13] please" in out and "[red]closed[/red]\\x1b[2J" in out
    assert "wrong [ticket]" in out and "\x1b" not in out
    assert out.rstrip().endswith("accepted 2, rejected 1, skipped 1 of 7 candidates; 3 not seen")
    assert dataset.read_text() == (
        CSV + "Where is my reimbursement for trip 4711?,Answers the request without the production failure "
        "(tool_timeout: deadline exceeded after 30s)\n"
        "Reset my VPN password,Says where the VPN portal is\n"
    )
    assert [r.id for r in load_rejections(state_path(dataset))] == [f"prod-{trace('d')}"]
    # The next review proposes what was skipped or not seen, nothing accepted or rejected.
    doc = json.loads(review(data, dataset, "--json").stdout)
    assert [c["id"] for c in doc["candidates"]] == [f"prod-{trace('h')}", f"feedback-{trace('f')}",
                                                    f"feedback-{trace('k')}", f"judged-{trace('g')}"]  # fmt: skip
    # Input running out is a quit: what was decided stays.
    result = review(data, dataset, keys="r\n")
    assert result.stdout.rstrip().endswith("accepted 0, rejected 1, skipped 0 of 4 candidates; 3 not seen")
    assert [r.id for r in load_rejections(state_path(dataset))] == [
        f"prod-{trace('d')}",
        f"prod-{trace('h')}",
    ]


def test_usage_errors(data: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "eval.jsonl"
    runner = CliRunner()
    base = ["cases", "review", "--data-dir", str(data), "--dataset", str(dataset)]
    result = runner.invoke(main, base)
    assert result.exit_code == 2 and "Invalid value for --agent: the agent whose runs to review is required" in (
        result.output)  # fmt: skip
    result = runner.invoke(main, [*base, "--agent", "bot", "--source", "clusters,votes"])
    assert result.exit_code == 2 and "Invalid value for --source: votes: choose among clusters, feedback, judged" in (
        result.output)  # fmt: skip
    result = runner.invoke(main, [*base, "--agent", "bot", "--json", "--accept-all"])
    assert result.exit_code == 2 and "--json lists only" in result.output
    result = runner.invoke(
        main, [*base, "--agent", "bot", "--since", "1d", "--until", UNTIL, "--reject", "nope"]
    )
    assert result.exit_code == 2
    assert (
        result.stderr.splitlines()[-1]
        == "agentwatch cases review: --reject nope: not a candidate (see --json)"
    )
    assert not dataset.exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    result = runner.invoke(main, [*base[:-1], str(bad), "--agent", "bot"])
    assert result.exit_code == 2 and result.stderr.startswith(
        f"agentwatch cases review: {bad}:1: not valid JSON"
    )
    # A data directory it cannot use is one line naming it, as for every reading command.
    a_file = tmp_path / "spans.parquet"
    a_file.write_bytes(b"PAR1")
    result = runner.invoke(main, ["cases", "review", "--data-dir", str(a_file), "--agent", "bot", "--dataset",
                                  str(dataset)])  # fmt: skip
    assert (result.exit_code, result.stderr) == (
        2,
        f"agentwatch cases review: {a_file} is not a directory (--data-dir names the directory "
        "`agentwatch serve` writes)\n",
    )
