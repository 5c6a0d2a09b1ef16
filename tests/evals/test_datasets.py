"""Eval datasets: JSONL and CSV, the query,eval_guidance CSV as is, exported cases unchanged,
and every bad row named by file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import DatasetError
from evals.datasets import Case, load_dataset


def test_eval_set_csv_loads_as_is(tmp_path: Path) -> None:
    path = tmp_path / "set.csv"
    path.write_text(
        'query,eval_guidance\n"How do I file expenses?","Mentions Concur, the receipt rule"\n'
        "Who approves travel?,Names the manager\n"
    )
    assert load_dataset(path) == [
        Case("line-2", "How do I file expenses?", "Mentions Concur, the receipt rule"),
        Case("line-3", "Who approves travel?", "Names the manager"),
    ]


def test_csv_optional_columns(tmp_path: Path) -> None:
    path = tmp_path / "set.csv"
    path.write_text(
        "id,query,expected,fields,context,tags\n"
        'c1,Refund?,Yes within 30 days,"{""order"": 7}",policy text,billing;refunds\n'
        'c2,Hours?,,,,"[""x""]"\n'
    )
    assert load_dataset(path) == [
        Case(
            "c1", "Refund?", None, "Yes within 30 days", {"order": 7}, "policy text", ("billing", "refunds")
        ),
        Case("c2", "Hours?", tags=("x",)),
    ]


def test_jsonl_with_exported_cases_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text(
        '{"id": "prod-1", "query": "Q1", "eval_guidance": "G", "tags": ["production-failure", "timeout"],'
        ' "metadata": {"trace_id": "ab", "failure_type": "timeout"}}\n\n'
        '{"query": "Q2", "fields": {"a": 1}}\n'
    )
    assert load_dataset(path) == [
        Case("prod-1", "Q1", "G", tags=("production-failure", "timeout"),
             metadata={"trace_id": "ab", "failure_type": "timeout"}),
        Case("line-3", "Q2", fields={"a": 1}),
    ]  # fmt: skip


def test_every_bad_row_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"id": "a", "query": "ok"}\n'
        "{not json\n"
        "[1, 2]\n"
        '{"id": "a", "query": "dup"}\n'
        '{"query": "  "}\n'
        '{"query": "x", "fields": [1], "tags": "t", "colour": "red"}\n'
        '{"query": 5}\n'
    )
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    p = str(path)
    problems = info.value.problems
    assert problems[0].startswith(f"{p}:2: not valid JSON: ")  # then orjson's own words
    assert problems[1:] == [
        f"{p}:3: a case must be a JSON object, not list",
        f"{p}:4: id: 'a' is already used on line 1",
        f"{p}:5: query: required and must not be empty",
        f"{p}:6: unknown field(s) colour (known: id, query, eval_guidance, expected, fields, context, tags, metadata, turns, persona)",
        f"{p}:6: fields: must be a JSON object",
        f"{p}:6: tags: must be a list of strings",
        f"{p}:7: query: must be a string, not int",
        f"{p}:7: query: required and must not be empty",
    ]


def test_bad_csv_header_and_cells(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("question,eval_guidance\nx,y\n")
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    assert info.value.problems == [
        f"{path}:1: unknown column(s) question (known: id, query, eval_guidance, expected, fields, context, tags, metadata, turns, persona)",
        f"{path}:1: the header needs a query column",
    ]
    path.write_text('query,fields\nok,"{broken"\nalso,x,extra\n')
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    assert [p.split(": ", 2)[:2] for p in info.value.problems] == [
        [f"{path}:2", "fields"],
        [f"{path}:3", "more cells than header columns"],
    ]


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path / "nope.jsonl")
    assert info.value.problems[0].startswith(f"{tmp_path / 'nope.jsonl'}: cannot read dataset:")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path / "empty.jsonl")
    assert info.value.problems == [f"{tmp_path / 'empty.jsonl'}: the dataset has no cases"]


def test_a_quoted_csv_cell_keeps_its_line_breaks(tmp_path: Path) -> None:
    path = tmp_path / "cases.csv"
    path.write_bytes(b'query,eval_guidance\r\n"Line one\r\nline two",Answers both\r\nNext?,"a ""quoted"" word"\r\n')
    cases = load_dataset(path)
    assert [(c.query, c.eval_guidance) for c in cases] == [
        ("Line one\nline two", "Answers both"),
        ("Next?", 'a "quoted" word'),
    ]
    # A bad row after a multi-line one is named by the line it starts on.
    path.write_text('query,fields\n"two\nlines",{}\nthird,{not json\n')
    with pytest.raises(DatasetError) as error:
        load_dataset(path)
    assert error.value.problems[0].startswith(f"{path}:4: fields: not valid JSON")
