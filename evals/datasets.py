"""Eval datasets: JSONL or CSV files of cases the synthetic runner sends to an agent.

A case has a ``query`` (required) and optionally ``id``, ``eval_guidance`` (what a good answer
covers), ``expected`` (a golden answer), ``fields`` (structured inputs, a JSON object),
``context``, ``tags`` and ``metadata`` (carried along untouched), and, for a multi-turn case
(``evals.conversation``), ``turns`` (the agent's turns at most, a whole number from 1 to
``MAX_TURNS``; absent or 1: a single call, as always) and ``persona`` (who the simulated user is;
default: the config's ``evals.multi_turn.persona``). A CSV with just the columns
``query,eval_guidance`` (the format existing eval-set tools use) loads as is; in CSV, ``fields``
and ``metadata`` cells hold JSON and ``tags`` is a JSON list or ``;``-separated. The files
``agentwatch cases export`` writes load unchanged.

Every problem is reported at once as ``file:line: field: message``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from core.errors import DatasetError

FIELDS = (
    "id",
    "query",
    "eval_guidance",
    "expected",
    "fields",
    "context",
    "tags",
    "metadata",
    "turns",
    "persona",
)
_TEXT = ("id", "query", "eval_guidance", "expected", "context", "persona")
MAX_TURNS = 50


@dataclass(frozen=True)
class Case:
    id: str
    query: str
    eval_guidance: str | None = None
    expected: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    context: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    turns: int | None = None
    """A multi-turn case: the agent's turns at most (the simulated user may stop sooner)."""
    persona: str | None = None
    """A multi-turn case's simulated user; None: the config's ``evals.multi_turn.persona``."""

    @property
    def multi_turn(self) -> bool:
        return self.turns is not None and self.turns > 1


def load_dataset(path: str | Path) -> list[Case]:
    """The cases of a ``.jsonl``/``.json``-lines or ``.csv`` file; DatasetError lists every problem."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError([f"{file}: cannot read dataset: {exc}"]) from None
    problems: list[str] = []
    if file.suffix.lower() == ".csv":
        raw = _csv_rows(text, str(file), problems)
    else:
        raw = _jsonl_rows(text, str(file), problems)
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for line, row in raw:
        case = _case(row, f"{file}:{line}", line, problems)
        if case is None:
            continue
        if case.id in seen:
            problems.append(f"{file}:{line}: id: {case.id!r} is already used on line {seen[case.id]}")
        seen[case.id] = line
        cases.append(case)
    if not raw and not problems:
        problems.append(f"{file}: the dataset has no cases")
    if problems:
        raise DatasetError(problems)
    return cases


def _jsonl_rows(text: str, name: str, problems: list[str]) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            problems.append(f"{name}:{number}: not valid JSON: {exc}")
            continue
        if not isinstance(value, dict):
            problems.append(f"{name}:{number}: a case must be a JSON object, not {type(value).__name__}")
            continue
        rows.append((number, value))
    return rows


def _csv_rows(text: str, name: str, problems: list[str]) -> list[tuple[int, dict[str, Any]]]:
    # A quoted cell may hold line breaks: the csv module reads the text whole, never line by line.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    unknown = [column for column in header if column not in FIELDS]
    if unknown:
        problems.append(f"{name}:1: unknown column(s) {', '.join(unknown)} (known: {', '.join(FIELDS)})")
    if "query" not in header:
        problems.append(f"{name}:1: the header needs a query column")
    if problems:
        return []
    rows = []
    ended = reader.line_num  # the header's last line
    for row in reader:
        line, ended = ended + 1, reader.line_num  # where the row starts (a cell may span lines)
        if None in row:
            problems.append(f"{name}:{line}: more cells than header columns")
            continue
        parsed: dict[str, Any] = {k: v for k, v in row.items() if v not in (None, "")}
        for key in ("fields", "metadata"):
            if key in parsed:
                try:
                    parsed[key] = orjson.loads(parsed[key])
                except orjson.JSONDecodeError as exc:
                    problems.append(f"{name}:{line}: {key}: not valid JSON: {exc}")
                    parsed.pop(key)
        if "turns" in parsed:
            try:
                parsed["turns"] = int(parsed["turns"].strip())
            except ValueError:
                problems.append(f"{name}:{line}: turns: must be a whole number, not {parsed['turns']!r}")
                parsed.pop("turns")
        if "tags" in parsed:
            tags = parsed["tags"].strip()
            if tags.startswith("["):
                try:
                    parsed["tags"] = orjson.loads(tags)
                except orjson.JSONDecodeError as exc:
                    problems.append(f"{name}:{line}: tags: not valid JSON: {exc}")
                    parsed.pop("tags")
            else:
                parsed["tags"] = [t.strip() for t in tags.split(";") if t.strip()]
        rows.append((line, parsed))
    return rows


def _case(row: dict[str, Any], where: str, line: int, problems: list[str]) -> Case | None:
    found = len(problems)
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        problems.append(f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(FIELDS)})")
    for key in _TEXT:
        value = row.get(key)
        if value is not None and not isinstance(value, str):
            problems.append(f"{where}: {key}: must be a string, not {type(value).__name__}")
    query = row.get("query")
    if not isinstance(query, str) or not query.strip():
        problems.append(f"{where}: query: required and must not be empty")
    for key in ("fields", "metadata"):
        if key in row and not isinstance(row[key], dict):
            problems.append(f"{where}: {key}: must be a JSON object")
    tags = row.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        problems.append(f"{where}: tags: must be a list of strings")
    turns = row.get("turns")
    if turns is not None and (not isinstance(turns, int) or isinstance(turns, bool)):
        problems.append(f"{where}: turns: must be a whole number, not {type(turns).__name__}")
    elif turns is not None and not 1 <= turns <= MAX_TURNS:
        problems.append(f"{where}: turns: must be between 1 and {MAX_TURNS}, not {turns}")
    persona = row.get("persona")
    if isinstance(persona, str) and not persona.strip():
        problems.append(f"{where}: persona: must not be empty")
    elif persona is not None and (not isinstance(turns, int) or turns < 2):
        problems.append(f"{where}: persona: only a multi-turn case (turns of 2 or more) has one")
    if len(problems) > found:
        return None
    return Case(
        id=row.get("id") or f"line-{line}",
        query=str(query),
        eval_guidance=row.get("eval_guidance"),
        expected=row.get("expected"),
        fields=dict(row.get("fields", {})),
        context=row.get("context"),
        tags=tuple(tags),
        metadata=dict(row.get("metadata", {})),
        turns=turns,
        persona=persona,
    )
