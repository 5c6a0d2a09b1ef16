"""Candidate eval cases against a dataset (``evals.candidates``): the duplicate test on queries
(hand-computed trigram counts), what is dropped and why, the review state, and appending
accepted cases to CSV and JSONL datasets in their own format (exact bytes)."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.errors import DatasetError
from evals.candidates import (
    Candidate,
    Dropped,
    Rejection,
    append_cases,
    deduplicated,
    existing_cases,
    load_rejections,
    merged,
    normalised,
    rejection,
    save_rejections,
    similarity,
    state_path,
    trigrams,
)
from evals.datasets import Case, load_dataset


def test_normalised_folds_case_punctuation_and_spaces() -> None:
    assert normalised("  How do I file an Expense-Report?\n") == "how do i file an expense report"
    full_width = "\uff32\uff45\uff53\uff45\uff54"  # NFKC makes it "Reset"; "_" is a space
    assert normalised(f"{full_width} my_password!!") == "reset my password"
    assert normalised("Où est ma note de frais ?") == "où est ma note de frais"  # letters stay letters


def test_similarity_is_dice_over_padded_trigrams() -> None:
    # " reset my password " has 17 trigrams, " reset my vpn password " 21, sharing 16 (" re", "res",
    # "ese", "set", "et ", "t m", " my", "my ", " pa", "pas", "ass", "ssw", "swo", "wor", "ord", "rd "):
    # 2·16 / (17 + 21) = 32/38, under the default threshold 0.85.
    assert len(trigrams("reset my password")) == 17 and len(trigrams("reset my vpn password")) == 21
    assert similarity("Reset my password", "Reset my VPN password") == 32 / 38
    # " book a hotel " / " book a hotle ": 12 trigrams each, 9 shared (not "ote", "tel", "el ").
    assert similarity("book a hotel", "book a hotle") == 18 / 24
    assert similarity("How do I file an expense report?", "how do I file an expense report") == 1.0
    # The examples the module's docstring gives, either side of 0.85.
    assert round(similarity("How do I file an expense report?", "How do I file expense report"), 3) == 0.915
    assert (
        round(similarity("Summarise the Q3 sales report", "Summarise the Q3 sales report please"), 3) == 0.906
    )
    clause = similarity("how do I file an expense report", "How do I file an expense report for travel?")
    assert round(clause, 3) == 0.849
    assert similarity("", "?") == 1.0  # both normalise to nothing
    assert similarity("abc", "xyz") == 0.0


def case(id: str, query: str, **metadata: Any) -> Case:
    return Case(id=id, query=query, metadata=metadata)


def cand(trace: str, query: str, source: str = "clusters", **kw: Any) -> Candidate:
    prefix = {"clusters": "prod", "feedback": "feedback", "judged": "judged"}[source]
    body = {"id": f"{prefix}-{trace}", "query": query, "eval_guidance": f"g {trace}"}
    return Candidate(body, trace, (source,), kw.get("failure_type"), (f"{source} {trace}",), kw.get("answer"),
                     tuple(kw.get("comments", ())))  # fmt: skip


def test_merged_keeps_one_candidate_per_run_where_it_first_came() -> None:
    a, b = cand("a", "q a", failure_type="timeout", answer="ans"), cand("b", "q b")
    a_rated = cand("a", "q a", "feedback", comments=("bad", "worse"), answer="other")
    a_judged = cand("a", "q a", "judged", failure_type="groundedness_drop", comments=("bad",))
    assert merged([a, b, a_rated, a_judged]) == [
        Candidate(a.case, "a", ("clusters", "feedback", "judged"), "timeout",
                  ("clusters a", "feedback a", "judged a"), "ans", ("bad", "worse")),
        b,
    ]  # fmt: skip


DATASET = [
    case("d1", "how do I file an expense report"),
    case("d2", "What is the refund policy for hotels?"),
    case("d3", "Anything", trace_id="r"),
]


def test_deduplicated_drops_known_queries_and_keeps_near_misses() -> None:
    found = [
        cand("a", "Where is my reimbursement for trip 4711?"),
        cand("b", "Where is my reimbursement for trip 815?"),  # like a: 0.883
        cand("c", "How do I file an expense report?"),  # d1 normalised
        cand("e", "How do I file an expense report for travel?"),  # d1 at 0.849: stays
        cand("f", "what is the refund polcy for hotels"),  # d2 at 0.930
        cand("g", "Reset my password"),
        cand("h", "Reset my VPN password"),  # g at 0.842: stays
        cand("r", "A new question of an old run"),  # its run is d3's
        Candidate({"id": "d2", "query": "Unrelated"}, "x", ("clusters",), None, (), None),
        cand("y", "Cancel my booking"),  # like the rejected query
        cand("z", "Fresh"),  # its run was rejected
    ]
    rejected = [Rejection("prod-old", "old", "cancel my booking!", "2025-11-20T00:00:00Z"),
                Rejection("prod-z", "z", "Something else", "2025-11-20T00:00:00Z")]  # fmt: skip
    kept, dropped = deduplicated(found, DATASET, rejected)
    assert [c.id for c in kept] == ["prod-a", "prod-e", "prod-g", "prod-h"]
    assert dropped == [
        Dropped("prod-b", "b", "a query like candidate prod-a (similarity 0.883)"),
        Dropped("prod-c", "c", "the same query as dataset case d1 in the dataset"),
        Dropped("prod-f", "f", "a query like dataset case d2 (similarity 0.930) in the dataset"),
        Dropped("prod-r", "r", "its run is already in the dataset as d3"),
        Dropped("d2", "x", "already in the dataset as d2"),
        Dropped("prod-y", "y", "the same query as rejected prod-old, rejected before"),
        Dropped("prod-z", "z", "rejected before"),
    ]
    # At a threshold of 0.8 the near-misses go too; at 0.95 the neighbours stay.
    kept, _ = deduplicated(found, DATASET, rejected, threshold=0.8)
    assert [c.id for c in kept] == ["prod-a", "prod-g"]
    kept, _ = deduplicated(found, DATASET, rejected, threshold=0.95)
    assert [c.id for c in kept] == ["prod-a", "prod-b", "prod-e", "prod-f", "prod-g", "prod-h"]
    with pytest.raises(ValueError, match="threshold must be in"):
        deduplicated(found, DATASET, threshold=0)


def test_the_most_similar_known_query_is_named() -> None:
    dataset = [case("near", "Reset my VPN passwords"), case("nearer", "Reset my VPN password.")]
    _, dropped = deduplicated([cand("a", "reset my vpn password")], dataset, threshold=0.8)
    assert dropped == [Dropped("prod-a", "a", "the same query as dataset case nearer in the dataset")]


def test_review_state_round_trip(tmp_path: Path) -> None:
    dataset = tmp_path / "cases.csv"
    assert state_path(dataset) == tmp_path / "cases.csv.review.json"
    path = state_path(dataset)
    assert load_rejections(path) == []
    when = datetime(2025, 11, 22, 12, 0, tzinfo=UTC)
    rejections = [rejection(cand("a", "q [a]"), when)]
    save_rejections(path, rejections)
    assert path.read_text() == (
        '{\n  "rejected": [\n    {\n      "id": "prod-a",\n      "trace_id": "a",\n      "query": "q [a]",\n'
        '      "at": "2025-11-22T12:00:00Z"\n    }\n  ]\n}\n'
    )
    assert load_rejections(path) == [Rejection("prod-a", "a", "q [a]", "2025-11-22T12:00:00Z")]
    assert [p.name for p in tmp_path.iterdir()] == ["cases.csv.review.json"]  # no temporary left
    path.write_text('{"rejected": [{"id": 1}]}')
    with pytest.raises(DatasetError, match="not a review state file"):
        load_rejections(path)


ACCEPTED: list[dict[str, Any]] = [
    {"id": "prod-a", "query": 'Where is "my" refund, trip 4711?', "eval_guidance": "Answers, no timeout",
     "tags": ["production-failure", "tool_timeout"], "metadata": {"trace_id": "a", "n": 1}},
    {"id": "feedback-b", "query": "Line one\nline two", "eval_guidance": None, "tags": ["a;b"],
     "metadata": {}},
]  # fmt: skip


def test_appending_to_a_two_column_csv_keeps_its_columns(tmp_path: Path) -> None:
    path = tmp_path / "eval.csv"
    path.write_bytes(b"query,eval_guidance\r\nHow do I file an expense report?,Mentions Concur\r\n")
    added = append_cases(path, ACCEPTED)
    assert added == (
        '"Where is ""my"" refund, trip 4711?","Answers, no timeout"\r\n"Line one\nline two",\r\n'
    )
    assert path.read_bytes() == (
        b"query,eval_guidance\r\nHow do I file an expense report?,Mentions Concur\r\n"
        b'"Where is ""my"" refund, trip 4711?","Answers, no timeout"\r\n"Line one\nline two",\r\n'
    )
    with path.open(newline="", encoding="utf-8") as handle:  # as CSV reads it: the line break kept
        assert list(csv.reader(handle)) == [
            ["query", "eval_guidance"],
            ["How do I file an expense report?", "Mentions Concur"],
            ['Where is "my" refund, trip 4711?', "Answers, no timeout"],
            ["Line one\nline two", ""],
        ]
    assert [(c.query, c.eval_guidance) for c in load_dataset(path)][:2] == [
        ("How do I file an expense report?", "Mentions Concur"),
        ('Where is "my" refund, trip 4711?', "Answers, no timeout"),
    ]


def test_appending_to_a_full_csv_writes_tags_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "eval.csv"
    path.write_text("id,query,tags,metadata\nd1,Old question,x;y,\n")  # no trailing newline issue
    append_cases(path, ACCEPTED)
    assert path.read_text() == (
        "id,query,tags,metadata\nd1,Old question,x;y,\n"
        'prod-a,"Where is ""my"" refund, trip 4711?",production-failure;tool_timeout,"{""trace_id"":""a"",""n"":1}"\n'
        'feedback-b,"Line one\nline two","[""a;b""]",\n'
    )
    loaded = load_dataset(path)
    assert [(c.id, c.tags, c.metadata) for c in loaded] == [
        ("d1", ("x", "y"), {}),
        ("prod-a", ("production-failure", "tool_timeout"), {"trace_id": "a", "n": 1}),
        ("feedback-b", ("a;b",), {}),
    ]


def test_appending_to_jsonl_and_to_new_files(tmp_path: Path) -> None:
    path = tmp_path / "eval.jsonl"
    path.write_text('{"id": "d1", "query": "Old"}')  # no newline at the end
    append_cases(path, ACCEPTED[:1])
    assert path.read_text() == (
        '{"id": "d1", "query": "Old"}\n'
        '{"id":"prod-a","query":"Where is \\"my\\" refund, trip 4711?","eval_guidance":"Answers, no timeout",'
        '"tags":["production-failure","tool_timeout"],"metadata":{"trace_id":"a","n":1}}\n'
    )
    assert [c.id for c in load_dataset(path)] == ["d1", "prod-a"]
    new_csv, new_jsonl = tmp_path / "new.csv", tmp_path / "new.jsonl"
    assert existing_cases(new_csv) == [] and existing_cases(new_jsonl) == []
    append_cases(new_csv, ACCEPTED[1:])
    assert (
        new_csv.read_text()
        == 'id,query,eval_guidance,tags,metadata\nfeedback-b,"Line one\nline two",,"[""a;b""]",\n'
    )
    append_cases(new_jsonl, ACCEPTED[1:])
    assert new_jsonl.read_text() == (
        '{"id":"feedback-b","query":"Line one\\nline two","eval_guidance":null,"tags":["a;b"],"metadata":{}}\n'
    )
    assert [c.query for c in load_dataset(new_jsonl)] == ["Line one\nline two"]


def test_a_csv_with_an_unknown_column_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    path = tmp_path / "eval.csv"
    path.write_text("query,score\nq,1\n")
    with pytest.raises(DatasetError, match="unknown column"):
        append_cases(path, ACCEPTED)
    assert path.read_text() == "query,score\nq,1\n"
