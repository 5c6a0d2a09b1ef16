"""Candidate eval cases from production, before they join a dataset: which are new, which a
reviewer rejected before, and appending the accepted ones to the dataset in its own format.

Where candidates come from (failure signals, runs users rated down, runs a judge marked) is
``report.cases.candidates``; this module knows datasets, not runs.

**When two queries are the same case.** A query is *normalised*: Unicode NFKC, case folded,
every character that is neither a letter, a digit nor ``_`` made a space, runs of whitespace one
space, trimmed (``"How do I file an Expense-Report?"`` → ``"how do i file an expense report"``).
Two queries with the same normalised text are duplicates. Otherwise their *similarity* is the
Sørensen-Dice coefficient of their sets of character trigrams, each normalised text padded with
one space at either end: ``2·|A∩B| / (|A| + |B|)``, from 0 (nothing shared) to 1. At or above
the threshold (``SIMILARITY``, 0.85 by default) they are duplicates. In a sentence-long query
a typo, a dropped article, a trailing "please" or another ticket number stay above it; another
entity ("Reset my password" / "Reset my VPN password": 0.842) or an added clause ("… expense
report for travel?": 0.849) fall under it, so both stay cases. The shorter the queries, the
more one character weighs: "book a hotel" / "book a hotle" is 0.75, two cases.

**What is dropped**, in this order, each with the reason it was dropped: a candidate rejected
before (its id or its run in the review state) or whose query is a duplicate of a rejected
one; one already in the dataset (the same id, the same run in its ``metadata.trace_id``, or a
duplicate query); one whose query is a duplicate of a candidate kept before it.

**The review state** is a small JSON file beside the dataset (``<dataset>.review.json``):
``{"rejected": [{"id", "trace_id", "query", "at"}]}``, so a rejected candidate is not proposed
again.
"""

from __future__ import annotations

import csv
import io
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from core.errors import DatasetError
from evals.datasets import FIELDS, Case, load_dataset

SIMILARITY = 0.85
"""The default threshold: queries at least this similar are duplicates."""
SOURCES = ("clusters", "feedback", "judged")
"""Where candidates come from: failure signals, runs users rated down, runs a judge marked."""
NEW_CSV_COLUMNS = ("id", "query", "eval_guidance", "tags", "metadata")
"""The header of a CSV dataset the review creates."""

_NOT_WORD = re.compile(r"[^\w\s]|_")


def normalised(query: str) -> str:
    """``query`` as the duplicate test compares it (see the module's docstring)."""
    text = unicodedata.normalize("NFKC", query).casefold()
    return " ".join(_NOT_WORD.sub(" ", text).split())


def trigrams(text: str) -> frozenset[str]:
    """The character trigrams of an already normalised ``text``, padded with a space at either end."""
    padded = f" {text} "
    return frozenset(padded[i : i + 3] for i in range(len(padded) - 2))


def dice(a: frozenset[str], b: frozenset[str]) -> float:
    """Sørensen-Dice coefficient of two trigram sets (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    return 2 * len(a & b) / (len(a) + len(b))


def similarity(a: str, b: str) -> float:
    """How alike two queries are: 1.0 when their normalised texts are equal, else the Dice
    coefficient of their trigram sets."""
    left, right = normalised(a), normalised(b)
    return 1.0 if left == right else dice(trigrams(left), trigrams(right))


@dataclass(frozen=True)
class Candidate:
    """A run of production proposed as an eval case."""

    case: dict[str, Any]
    """The dataset row as ``agentwatch cases export`` writes it (id, query, eval_guidance, tags, metadata)."""
    trace_id: str
    sources: tuple[str, ...]
    """Which of ``SOURCES`` proposed it, in that order."""
    failure_type: str | None
    reasons: tuple[str, ...]
    """Why it is a candidate, one line per source."""
    answer: str | None
    """What the agent answered in production."""
    comments: tuple[str, ...] = ()
    """What users said when they rated the run down."""

    @property
    def id(self) -> str:
        return str(self.case["id"])

    @property
    def query(self) -> str:
        return str(self.case["query"])

    def with_guidance(self, guidance: str) -> Candidate:
        return replace(self, case={**self.case, "eval_guidance": guidance})

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "trace_id": self.trace_id,
            "sources": list(self.sources),
            "failure_type": self.failure_type,
            "reasons": list(self.reasons),
            "comments": list(self.comments),
            "query": self.query,
            "answer": self.answer,
            "case": self.case,
        }


def merged(candidates: Iterable[Candidate]) -> list[Candidate]:
    """One candidate per run, where it first came: a run proposed by several sources keeps the
    first one's case and gathers every source, reason and comment (and the first failure type)."""
    by_trace: dict[str, Candidate] = {}
    for candidate in candidates:
        first = by_trace.get(candidate.trace_id)
        if first is None:
            by_trace[candidate.trace_id] = candidate
            continue
        by_trace[candidate.trace_id] = replace(
            first,
            sources=(*first.sources, *(s for s in candidate.sources if s not in first.sources)),
            failure_type=first.failure_type or candidate.failure_type,
            reasons=(*first.reasons, *candidate.reasons),
            answer=first.answer if first.answer is not None else candidate.answer,
            comments=(*first.comments, *(c for c in candidate.comments if c not in first.comments)),
        )
    return list(by_trace.values())


@dataclass(frozen=True)
class Rejection:
    id: str
    trace_id: str
    query: str
    at: str
    """When it was rejected, ISO 8601 UTC."""


@dataclass(frozen=True)
class Dropped:
    id: str
    trace_id: str
    why: str


@dataclass(frozen=True)
class _Known:
    """A query the candidates are compared with: its label in reasons, its normalised text, trigrams."""

    label: str
    text: str
    grams: frozenset[str] = field(repr=False)

    @classmethod
    def of(cls, label: str, query: str) -> _Known:
        text = normalised(query)
        return cls(label, text, trigrams(text))


def _closest(text: str, grams: frozenset[str], known: Sequence[_Known], threshold: float) -> str | None:
    """Why ``text`` duplicates one of ``known`` (the most similar, the first of equals), or None."""
    best: tuple[float, _Known] | None = None
    for other in known:
        score = 1.0 if other.text == text else dice(grams, other.grams)
        if score >= threshold and (best is None or score > best[0]):
            best = (score, other)
    if best is None:
        return None
    score, other = best
    if other.text == text:
        return f"the same query as {other.label}"
    return f"a query like {other.label} (similarity {score:.3f})"


def deduplicated(
    candidates: Sequence[Candidate],
    dataset: Sequence[Case],
    rejected: Sequence[Rejection] = (),
    threshold: float = SIMILARITY,
) -> tuple[list[Candidate], list[Dropped]]:
    """(the candidates to review, in order; those dropped, each with why): see the module's docstring."""
    if not 0 < threshold <= 1:
        raise ValueError(f"the similarity threshold must be in (0, 1], not {threshold}")
    rejected_ids = {r.id for r in rejected} | {r.trace_id for r in rejected}
    rejected_queries = [_Known.of(f"rejected {r.id}", r.query) for r in rejected]
    case_ids = {case.id: case.id for case in dataset}
    case_runs = {str(c.metadata["trace_id"]): c.id for c in dataset if c.metadata.get("trace_id")}
    cases = [_Known.of(f"dataset case {case.id}", case.query) for case in dataset]
    kept: list[Candidate] = []
    kept_queries: list[_Known] = []
    dropped: list[Dropped] = []
    for candidate in candidates:
        text = normalised(candidate.query)
        grams = trigrams(text)
        if candidate.id in rejected_ids or candidate.trace_id in rejected_ids:
            why: str | None = "rejected before"
        elif like := _closest(text, grams, rejected_queries, threshold):
            why = f"{like}, rejected before"
        elif candidate.id in case_ids:
            why = f"already in the dataset as {candidate.id}"
        elif candidate.trace_id in case_runs:
            why = f"its run is already in the dataset as {case_runs[candidate.trace_id]}"
        elif like := _closest(text, grams, cases, threshold):
            why = f"{like} in the dataset"
        else:
            why = _closest(text, grams, kept_queries, threshold)
        if why is None:
            kept.append(candidate)
            kept_queries.append(_Known(f"candidate {candidate.id}", text, grams))
        else:
            dropped.append(Dropped(candidate.id, candidate.trace_id, why))
    return kept, dropped


def existing_cases(path: Path) -> list[Case]:
    """The cases of the dataset at ``path``; none when it does not exist yet or is empty."""
    if not path.exists() or (path.is_file() and not path.read_bytes().strip()):
        return []
    return load_dataset(path)


def state_path(dataset: Path) -> Path:
    """Where the review of ``dataset`` remembers what was rejected."""
    return dataset.with_name(f"{dataset.name}.review.json")


def load_rejections(path: Path) -> list[Rejection]:
    if not path.exists():
        return []
    try:
        doc = orjson.loads(path.read_bytes())
        return [
            Rejection(str(r["id"]), str(r["trace_id"]), str(r["query"]), str(r["at"]))
            for r in doc["rejected"]
        ]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise DatasetError([f"{path}: not a review state file: {exc}"]) from None


def save_rejections(path: Path, rejections: Sequence[Rejection]) -> None:
    """Write the review state at once (a temporary file renamed over it)."""
    doc = {
        "rejected": [{"id": r.id, "trace_id": r.trace_id, "query": r.query, "at": r.at} for r in rejections]
    }
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    os.replace(temporary, path)


def rejection(candidate: Candidate, when: datetime) -> Rejection:
    return Rejection(
        candidate.id, candidate.trace_id, candidate.query, when.isoformat().replace("+00:00", "Z")
    )


def _is_csv(path: Path) -> bool:
    return path.suffix.lower() == ".csv"


def _csv_cell(key: str, value: Any) -> str:
    if value is None:
        return ""
    if key == "tags":
        tags = [str(t) for t in value]
        return ";".join(tags) if not any(";" in t for t in tags) else orjson.dumps(tags).decode()
    if key in ("fields", "metadata"):
        return orjson.dumps(value).decode() if value else ""
    return str(value)


def case_lines(path: Path, cases: Sequence[dict[str, Any]]) -> str:
    """The text appending ``cases`` to the dataset at ``path`` adds, in its format: a JSON object
    per line for JSONL; for CSV a row per case of the file's own columns (a field it has no
    column for is left out; tags ``;``-separated, a JSON list when a tag holds ``;``; fields and
    metadata JSON), with the file's line ending. A new CSV file starts with ``NEW_CSV_COLUMNS``."""
    existing = path.read_bytes().decode("utf-8") if path.exists() else ""
    prefix = "" if not existing or existing.endswith(("\n", "\r")) else "\n"
    if not _is_csv(path):
        return prefix + "".join(orjson.dumps(case).decode() + "\n" for case in cases)
    ending = "\r\n" if "\r\n" in existing.split("\n", 1)[0] + "\n" else "\n"
    header = next(csv.reader(existing.splitlines()), None) if existing.strip() else None
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=ending)
    if header is None:
        header = list(NEW_CSV_COLUMNS)
        writer.writerow(header)
    unknown = [column for column in header if column not in FIELDS]
    if unknown:
        raise DatasetError([f"{path}:1: unknown column(s) {', '.join(unknown)}"])
    for case in cases:
        writer.writerow([_csv_cell(column, case.get(column)) for column in header])
    return prefix + out.getvalue()


def append_cases(path: Path, cases: Sequence[dict[str, Any]]) -> str:
    """Append ``cases`` to the dataset at ``path`` (created when missing); returns the text added."""
    text = case_lines(path, cases)
    with path.open("a", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return text
