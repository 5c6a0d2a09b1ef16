"""A Seer database read (its SQLite file, opened read-only): eval sets, cases, criteria, runs,
results and scores, for ``agentwatch eval import-seer`` (``evals.seerimport``).

Seer's column names are not known here, so each table's columns are read (``PRAGMA table_info``)
and each value we need is found under the first of its plausible spellings (``SCHEMA``: snake_case
and camelCase, exact, else in any case); ``--column TABLE.OURS=THEIRS`` names one explicitly. A
table or required column that is missing is a ``DatasetError`` naming the file, the table, the
columns looked for and the ones found. Times are ISO text or epoch seconds or milliseconds (in
years 1-9999, UTC); a score or an overall score is a number from 0 to 10: a row whose time is
not one is left out, a value that is not one (NaN, infinite, out of range) is left out, noted.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import DatasetError

_SET, _RUN = "eval_set_id evalSetId set_id setId", "eval_run_id evalRunId run_id runId"
_CASE, _RESULT = "eval_case_id evalCaseId case_id caseId", "eval_result_id evalResultId result_id resultId"
_OVERALL, _AGENT = "overall_score overallScore score", "agent_id agentId agent agent_name agentName"

_SPELLINGS: dict[str, dict[str, tuple[str, bool]]] = {
    "eval_sets": {"id": (f"id {_SET}", True), "name": ("name title set_name setName", False),
                  "agent": (_AGENT, False)},
    "eval_cases": {
        "id": (f"id {_CASE}", True), "set": (_SET, True), "query": ("query input prompt question", True),
        "expected": ("expected expected_answer expectedAnswer golden_answer goldenAnswer", False),
        "guidance": ("eval_guidance evalGuidance guidance", False),
    },
    "eval_criteria": {
        "id": ("id criteria_id criteriaId criterion_id criterionId", False),
        "name": ("name dimension criterion title", True), "weight": ("weight", False),
        "rubric": ("rubric description prompt question instructions", False),
        "scale": ("scale_type scaleType scale type kind", False), "set": (_SET, False),
    },
    "eval_runs": {
        "id": (f"id {_RUN}", True), "set": (_SET, True),
        "started": ("created_at createdAt started_at startedAt timestamp time", True),
        "finished": ("finished_at finishedAt completed_at completedAt ended_at endedAt", False),
        "overall": (_OVERALL, False), "agent": (_AGENT, False),
        "judge": ("judge_model judgeModel judge model", False),
    },
    "eval_results": {
        "id": (f"id {_RESULT}", True), "run": (_RUN, True), "case": (_CASE, True),
        "output": ("output response answer actual_output actualOutput", False),
        "overall": (_OVERALL, False), "error": ("error error_message errorMessage", False),
        "latency": ("latency_ms latencyMs duration_ms durationMs", False),
    },
    "eval_scores": {
        "result": (_RESULT, False), "run": (_RUN, False), "case": (_CASE, False),
        "dimension": ("dimension criterion criteria criteria_id criteriaId criterion_id criterionId "
                      "criterion_name criterionName name", True),
        "value": ("score value", False), "label": ("label rating grade", False),
        "explanation": ("explanation reasoning rationale reason comment", False),
    },
}  # fmt: skip
SCHEMA: dict[str, dict[str, tuple[tuple[str, ...], bool]]] = {
    table: {ours: (tuple(spellings.split()), required) for ours, (spellings, required) in wanted.items()}
    for table, wanted in _SPELLINGS.items()
}
"""Table → our name → (Seer's plausible spellings, in order of preference; whether required)."""
_TIMES = "ISO text or epoch seconds or ms in years 1-9999"
OPTIONAL_TABLES = frozenset({"eval_criteria"})
"""Without ``eval_criteria`` the dimensions are named by ``eval_scores`` alone, with no weights."""


@dataclass(frozen=True)
class SeerSet:
    id: str
    name: str
    agent: str | None


@dataclass(frozen=True)
class SeerCase:
    id: str
    set_id: str
    query: str
    expected: str | None
    guidance: str | None


@dataclass(frozen=True)
class SeerCriterion:
    id: str | None
    name: str
    weight: float | None
    rubric: str | None
    scale: str | None
    set_id: str | None


@dataclass(frozen=True)
class SeerRun:
    id: str
    set_id: str
    started: datetime
    finished: datetime | None
    overall: float | None
    agent: str | None
    judge: str | None


@dataclass(frozen=True)
class SeerResult:
    id: str
    run_id: str
    case_id: str
    output: str | None
    overall: float | None
    error: str | None
    latency_ms: float | None


@dataclass(frozen=True)
class SeerScore:
    result_id: str | None
    run_id: str | None
    case_id: str | None
    dimension: str
    value: float | None
    label: str | None
    explanation: str | None


@dataclass
class SeerDatabase:
    path: Path
    sets: list[SeerSet] = field(default_factory=list)
    cases: list[SeerCase] = field(default_factory=list)
    criteria: list[SeerCriterion] = field(default_factory=list)
    runs: list[SeerRun] = field(default_factory=list)
    results: list[SeerResult] = field(default_factory=list)
    scores: list[SeerScore] = field(default_factory=list)
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    """table → our name → the column it was read from (what was found, for the summary)."""
    notes: list[str] = field(default_factory=list)


def parse_overrides(specs: list[str] | tuple[str, ...]) -> dict[tuple[str, str], str]:
    """``TABLE.OURS=THEIRS`` options; DatasetError naming what is wrong with each bad one."""
    found: dict[tuple[str, str], str] = {}
    problems = []
    for spec in specs:
        key, sep, theirs = spec.partition("=")
        table, dot, ours = key.partition(".")
        if not sep or not dot or not theirs.strip():
            problems.append(
                f"--column {spec!r}: write it TABLE.OURS=THEIRS, e.g. eval_cases.query=prompt_text"
            )
        elif table not in SCHEMA:
            problems.append(f"--column {spec!r}: no table {table!r} (one of {', '.join(SCHEMA)})")
        elif ours not in SCHEMA[table]:
            problems.append(f"--column {spec!r}: {table} has no {ours!r} (one of {', '.join(SCHEMA[table])})")
        else:
            found[(table, ours)] = theirs.strip()
    if problems:
        raise DatasetError(problems)
    return found


LOCK_WAIT_SECONDS = 5.0
"""How long a database another program is writing is waited for."""


def read_seer(path: str | Path, overrides: Mapping[tuple[str, str], str] | None = None) -> SeerDatabase:
    """Every table of the Seer database at ``path``, read-only; DatasetError listing every
    missing table and column at once."""
    file = Path(path)
    if not file.is_file():
        raise DatasetError([f"{file}: no such file (a Seer database is one SQLite file)"])
    uri = file.resolve().as_uri()
    try:
        con = sqlite3.connect(uri + "?mode=ro", LOCK_WAIT_SECONDS, uri=True)
        return _read_from(con, file, overrides or {})
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            raise DatasetError([f"{file}: the database is locked by another program (Seer writing to it?):"
                                " import it when that is done, or import a copy"]) from None  # fmt: skip
        if "unable to open" not in str(exc):
            raise DatasetError([f"{file}: cannot read it as a SQLite database: {exc}"]) from None
    # A database in write-ahead-log mode in a directory this user cannot write: read-only SQLite
    # cannot make its shared-memory file there. Read the file as it is (immutable).
    try:
        db = _read_from(sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True), file, overrides or {})
    except sqlite3.Error as exc:
        raise DatasetError([f"{file}: cannot read it as a SQLite database: {exc}"]) from None
    db.notes.insert(0, f"{file.name}: read as it is on disk (its directory cannot be written, so"
                       " SQLite cannot open it the usual way): changes still in its -wal file are not read")
    return db


def _read_from(con: sqlite3.Connection, file: Path, overrides: Mapping[tuple[str, str], str]) -> SeerDatabase:
    try:
        return _read(con, file, overrides)
    except sqlite3.OperationalError:
        raise
    except sqlite3.Error as exc:
        raise DatasetError([f"{file}: cannot read it as a SQLite database: {exc}"]) from None
    finally:
        con.close()


def _read(con: sqlite3.Connection, file: Path, overrides: Mapping[tuple[str, str], str]) -> SeerDatabase:
    present = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    problems: list[str] = []
    columns: dict[str, dict[str, str]] = {}
    for table, wanted in SCHEMA.items():
        if table not in present:
            if table not in OPTIONAL_TABLES:
                problems.append(
                    f"{file}: no table {table} (its tables: {', '.join(sorted(present)) or 'none'})"
                )
            continue
        have = [r[1] for r in con.execute(f"PRAGMA table_info({_quote(table)})")]
        columns[table] = _resolve(file, table, wanted, have, overrides, problems)
    scores = columns.get("eval_scores")
    if scores is not None:
        have = [r[1] for r in con.execute("PRAGMA table_info(eval_scores)")]
        if "value" not in scores and "label" not in scores:
            looked = ", ".join((*SCHEMA["eval_scores"]["value"][0], *SCHEMA["eval_scores"]["label"][0]))
            problems.append(_missing(file, "eval_scores", "value or label", looked, have, "value"))
        if "result" not in scores and not ("run" in scores and "case" in scores):
            looked = ", ".join((*_RESULT.split(), "or both of", *_RUN.split(), "and", *_CASE.split()))
            problems.append(_missing(file, "eval_scores", "the result scored", looked, have, "result"))
    if problems:
        raise DatasetError(problems)
    db = SeerDatabase(file, columns=columns)
    if "eval_criteria" not in columns:
        db.notes.append("no eval_criteria table: dimensions are named by eval_scores, with no weights")

    def rows(table: str) -> list[dict[str, Any]]:
        if table not in columns:
            return []
        picked = columns[table]
        select = ", ".join(f"{_quote(theirs)} AS {_quote(ours)}" for ours, theirs in picked.items())
        cursor = con.execute(f"SELECT {select} FROM {_quote(table)}")
        return [dict(zip(picked, row, strict=True)) for row in cursor]

    def problem(table: str, row: dict[str, Any], text: str) -> None:
        db.notes.append(f"{table} {_name(table, row)}: {text}: left out")

    def points(table: str, row: dict[str, Any], key: str, what: str) -> float | None:
        """A score of 0-10, else None (a value that is not one noted)."""
        number = _number(row.get(key))
        if number is not None and not (math.isfinite(number) and 0 <= number <= 10):
            problem(table, row, f"its {what} {row.get(key)!r} is not a number from 0 to 10")
            return None
        return number

    seen: set[tuple[str, ...]] = set()

    def usable(table: str, r: dict[str, Any], keys: tuple[str, ...], unique: tuple[str, ...]) -> bool:
        """Whether the row has every id of ``keys`` and is the first of its ``unique`` ids (noted if not)."""
        if empty := [k for k in keys if _opt_id(r.get(k)) is None]:
            problem(table, r, "no " + " or ".join(k if k == "id" else f"{k} id" for k in empty))
            return False
        key = (table, *(_id(r[k]) for k in unique))
        if key in seen:
            db.notes.append(f"{table} {_name(table, r)}: its id is another row's too: the first is kept")
            return False
        seen.add(key)
        return True

    for r in rows("eval_sets"):
        if usable("eval_sets", r, ("id",), ("id",)):
            db.sets.append(SeerSet(_id(r["id"]), _text(r.get("name")) or _id(r["id"]), _text(r.get("agent"))))
    for r in rows("eval_cases"):
        if not usable("eval_cases", r, ("id", "set"), ("set", "id")):
            continue
        if not (query := _text(r["query"])):
            problem("eval_cases", r, "no query")
            continue
        db.cases.append(SeerCase(_id(r["id"]), _id(r["set"]), query, _text(r.get("expected")),
                                 _text(r.get("guidance"))))  # fmt: skip
    for r in rows("eval_criteria"):
        if _opt_id(r.get("id")) is not None and not usable("eval_criteria", r, (), ("id",)):
            continue
        if name := _text(r["name"]):
            weight = _number(r.get("weight"))
            if (weight is None and _text(r.get("weight")) is not None) or (
                    weight is not None and not (math.isfinite(weight) and weight >= 0)):  # fmt: skip
                db.notes.append(f"eval_criteria {_name('eval_criteria', r)}: its weight {r.get('weight')!r}"
                                " is not a finite number, not negative: left out")  # fmt: skip
                weight = None
            db.criteria.append(SeerCriterion(
                _opt_id(r.get("id")), name, weight, _text(r.get("rubric")),
                _text(r.get("scale")), _opt_id(r.get("set")),
            ))  # fmt: skip
    for r in rows("eval_runs"):
        if not usable("eval_runs", r, ("id", "set"), ("id",)):
            continue
        if (started := _time(r["started"])) is None:
            problem("eval_runs", r, f"its time {r['started']!r} is not {_TIMES}")
            continue
        finished = _time(r.get("finished"))
        if finished is None and _text(r.get("finished")) is not None:
            problem("eval_runs", r, f"its finish time {r['finished']!r} is not a time")
        db.runs.append(SeerRun(
            _id(r["id"]), _id(r["set"]), started, finished,
            points("eval_runs", r, "overall", "overall score"),
            _text(r.get("agent")), _text(r.get("judge")),
        ))  # fmt: skip
    for r in rows("eval_results"):
        if not usable("eval_results", r, ("id", "run", "case"), ("id",)):
            continue
        latency = _number(r.get("latency"))
        db.results.append(SeerResult(
            _id(r["id"]), _id(r["run"]), _id(r["case"]), _text(r.get("output")),
            points("eval_results", r, "overall", "overall score"), _text(r.get("error")),
            latency if latency is not None and math.isfinite(latency) and latency >= 0 else None,
        ))  # fmt: skip
    for r in rows("eval_scores"):
        if (dimension := _text(r["dimension"])) is None:
            problem("eval_scores", r, "no dimension")
            continue
        if _opt_id(r.get("result")) is None and None in (_opt_id(r.get("run")), _opt_id(r.get("case"))):
            problem("eval_scores", r, "no result id (nor run and case ids)")
            continue
        value = points("eval_scores", r, "value", "score")
        if value is None and _number(r.get("value")) is not None:
            continue
        db.scores.append(SeerScore(
            _opt_id(r.get("result")), _opt_id(r.get("run")), _opt_id(r.get("case")), dimension,
            value, _text(r.get("label")), _text(r.get("explanation")),
        ))  # fmt: skip
    return db


def _resolve(
    file: Path,
    table: str,
    wanted: Mapping[str, tuple[tuple[str, ...], bool]],
    have: list[str],
    overrides: Mapping[tuple[str, str], str],
    problems: list[str],
) -> dict[str, str]:
    """Our name → the table's column holding it, for the ones it has."""
    lower = {c.lower(): c for c in reversed(have)}
    picked: dict[str, str] = {}
    for ours, (spellings, required) in wanted.items():
        override = overrides.get((table, ours))
        if override is not None:
            if override in have or override.lower() in lower:
                picked[ours] = override if override in have else lower[override.lower()]
            else:
                problems.append(_missing(file, table, ours, f"{override} (--column)", have))
            continue
        column = next((c for c in spellings if c in have), None)
        column = column or next((lower[c.lower()] for c in spellings if c.lower() in lower), None)
        if column is not None:
            picked[ours] = column
        elif required:
            problems.append(_missing(file, table, ours, ", ".join(spellings), have))
    return picked


def _missing(file: Path, table: str, ours: str, looked: str, have: list[str], option: str = "") -> str:
    return (
        f"{file}: table {table} has no column for {ours} (looked for {looked}; found {', '.join(have)});"
        f" name it with --column {table}.{option or ours}=COLUMN"
    )


def _name(table: str, row: dict[str, Any]) -> str:
    """How a note names a row: its id, else (a score) its result or run and case, and dimension."""
    if "id" in row:
        return str(row["id"])
    if row.get("result") is not None:
        return f"of {row['result']} for {row.get('dimension')}"
    if row.get("run") is not None and row.get("case") is not None:
        return f"of {row['run']}/{row['case']} for {row.get('dimension')}"
    return f"for {row.get('dimension')}"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _id(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _opt_id(value: Any) -> str | None:
    return None if value is None or str(value).strip() == "" else _id(value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text if text.strip() else None


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _time(value: Any) -> datetime | None:
    """ISO text (naive: UTC), or epoch seconds, or epoch milliseconds (past 10^11: year 5138 in s)."""
    number = _number(value)
    try:
        if number is not None:
            return datetime.fromtimestamp(number / 1000 if abs(number) >= 1e11 else number, UTC)
        text = _text(value)
        if text is None:
            return None
        found = datetime.fromisoformat(text.strip())
        return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)
    except (ValueError, OverflowError, OSError):  # not a time, or one out of datetime's years 1-9999
        return None
