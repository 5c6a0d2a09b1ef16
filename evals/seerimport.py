"""A Seer database (``evals.seer``) into agentwatch: each eval set a dataset file (the JSONL
``evals.datasets`` reads: the cases' ids, queries, expected answers and guidance), each eval run
the rows ``evals.runner.store`` writes for a run (``eval_runs``, ``eval_results``, ``scores``),
so ``eval show``, ``eval diff`` and the dashboard read it like a run of their own.

- A run's id is ``seer-<database>-<Seer's run id>``: ``<database>`` is a short digest of the
  database's identity (its first run: the Seer id and start time of the run that started
  earliest, which later runs do not change) and of the tenant, so a second database or another
  tenant never takes a run of this one; with ``--prefix P`` it is ``P-<Seer's run id>`` (the ids
  are then yours to keep apart). A run already stored in the tenant is not written again, so
  importing a database twice duplicates nothing. A run's rows are written results and scores
  first, its ``eval_runs`` row last, in files named ``import-seer-*``: an import that was
  interrupted before a run's ``eval_runs`` row leaves files of runs none of which is stored,
  which the next import removes before writing those runs again (``_drop_leftovers``), so a
  retry after a crash at any point stores each run once.
- Scores keep Seer's dimension names (``eval_scores``' dimension, or the name of the
  ``eval_criteria`` row it refers to by id). A score's stored value wins; without one, its label
  is read on Seer's scale (``evals.judges.seer``); with neither, it is left out (noted).
- A result's and a run's overall score are Seer's stored ones; a result without one gets the
  weighted mean of its scores (weights: ``eval_criteria``, else ``evals.seer.dimensions``), a
  run without one the mean of its results', as for a run of our own. A run with a result whose
  scores have a dimension of no known weight (and no overall score stored) is not imported
  (noted): once the config gives the weights, importing again computes and stores it.
- An imported case has no spans: its trace and span ids are derived from the run and case ids.
- The agent of a run is ``--agent`` (per set, or for all), else Seer's agent column, else the
  eval set's name. ``pin`` pins each agent's latest run of this database that has results as
  its baseline, in the tenant: where the agent has no baseline, or one an earlier import pinned
  (``EvalBaselineRow.pinned_by``); a baseline a user pinned is kept (noted).
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from evals.judges.scores import Score, overall
from evals.judges.seer import label_value
from evals.seer import SeerCase, SeerDatabase, SeerResult, SeerRun
from storage.catalog import connect, rows_of
from storage.layout import table_dir
from storage.tables import EvalBaselineRow, EvalResultRow, EvalRunRow, Row, ScoreRow, write_rows

EVALUATOR = "seer"
KIND = "seer"


@dataclass
class SeerImport:
    """What an import did."""

    datasets: dict[str, tuple[Path, int]] = field(default_factory=dict)
    """Eval set id → (its dataset file, its cases)."""
    imported: list[str] = field(default_factory=list)
    """Run ids written now."""
    already: list[str] = field(default_factory=list)
    """Run ids that were stored already (not written again)."""
    scores: int = 0
    pinned: list[tuple[str, str]] = field(default_factory=list)
    """(agent, run id) pinned now as the agent's baseline."""
    notes: list[str] = field(default_factory=list)


PINNED_BY = "import-seer"


def run_id_of(seer_id: str, prefix: str = EVALUATOR) -> str:
    """A stable run id: ``<prefix>-<Seer's id>``, or a digest of it when it has other characters."""
    if re.fullmatch(r"[A-Za-z0-9._-]{1,64}", seer_id):
        return f"{prefix}-{seer_id}"
    return f"{prefix}-{hashlib.blake2b(seer_id.encode(), digest_size=8).hexdigest()}"


def database_prefix(db: SeerDatabase, tenant: str) -> str:
    """``seer-<digest>``: the default prefix of ``db``'s run ids in ``tenant``. The digest is of the
    database's first run (the earliest start, then the lowest id: importing again after Seer
    added runs finds the same one) and of the tenant."""
    first = min(db.runs, key=lambda r: (r.started, r.id), default=None)
    key = "" if first is None else f"{first.id}\0{first.started.isoformat()}"
    digest = hashlib.blake2b(f"{key}\0{tenant}".encode(), digest_size=4).hexdigest()
    return f"{EVALUATOR}-{digest}"


def _ids(run_id: str, case_id: str, result_id: str) -> tuple[str, str]:
    """A derived (trace id, span id) for an imported result (one case may have two in a run), which
    has no spans."""
    key = f"{run_id}/{case_id}/{result_id}".encode()
    return hashlib.blake2b(key, digest_size=16).hexdigest(), hashlib.blake2b(key, digest_size=8).hexdigest()


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "set"


def write_datasets(db: SeerDatabase, directory: Path) -> dict[str, tuple[Path, int]]:
    """One JSONL file per eval set (``<set name>.jsonl``; ``-<id>`` added when two names agree),
    rewritten only when its content changed."""
    directory.mkdir(parents=True, exist_ok=True)
    names = defaultdict(list)
    for s in db.sets:
        names[slug(s.name)].append(s.id)
    written: dict[str, tuple[Path, int]] = {}
    for s in db.sets:
        stem = slug(s.name) if len(names[slug(s.name)]) == 1 else f"{slug(s.name)}-{slug(s.id)}"
        cases = [c for c in db.cases if c.set_id == s.id]
        lines = []
        for c in cases:
            row = {"id": c.id, "query": c.query, "expected": c.expected, "eval_guidance": c.guidance}
            lines.append(orjson.dumps({k: v for k, v in row.items() if v is not None}).decode())
        file = directory / f"{stem}.jsonl"
        text = "".join(line + "\n" for line in lines)
        if not file.exists() or file.read_text(encoding="utf-8") != text:
            partial = file.with_name(f".{file.name}.partial")
            partial.write_text(text, encoding="utf-8")
            os.replace(partial, file)
        written[s.id] = (file, len(cases))
    return written


def weights_by_set(db: SeerDatabase, fallback: Mapping[str, float]) -> dict[str | None, dict[str, float]]:
    """Eval set id → dimension → weight: ``eval_criteria``'s (a criterion with no set is every
    set's), else ``fallback`` (``evals.seer.dimensions``). Key None: every set's."""
    found: dict[str | None, dict[str, float]] = {None: dict(fallback)}
    for s in db.sets:
        found[s.id] = dict(fallback)
    for c in db.criteria:
        if c.weight is None:
            continue
        for set_id in [c.set_id] if c.set_id is not None else list(found):
            found.setdefault(set_id, dict(fallback))[c.name] = c.weight
    return found


def import_seer(
    db: SeerDatabase, data_dir: Path, datasets_dir: Path, *, tenant: str = "default",
    agents: Mapping[str, str] | None = None, fallback_weights: Mapping[str, float] | None = None,
    prefix: str | None = None, pin: bool = False, progress: Callable[[int], None] | None = None,
) -> SeerImport:  # fmt: skip
    """Write ``db``'s datasets to ``datasets_dir`` and its runs not stored yet in ``tenant`` to
    ``data_dir``; ``agents``: an eval set's id or name (or ``*``) → the agent its runs are of;
    ``prefix``: of the run ids (default: ``database_prefix``)."""
    prefix = prefix if prefix is not None else database_prefix(db, tenant)
    done = SeerImport(datasets=write_datasets(db, datasets_dir), notes=list(db.notes))
    agents = agents or {}
    sets = {s.id: s for s in db.sets}
    cases = {(c.set_id, c.id): c for c in db.cases}  # a case id may repeat in another set
    names = {c.id: c.name for c in db.criteria if c.id is not None}
    weights = weights_by_set(db, fallback_weights or {})
    results: dict[str, list[SeerResult]] = defaultdict(list)
    for r in db.results:
        results[r.run_id].append(r)
    scored: dict[tuple[str | None, str | None, str | None], list[Score]] = defaultdict(list)
    unvalued, twice = 0, 0
    known_results = {r.id for r in db.results}
    known_cases = {(r.run_id, r.case_id) for r in db.results}
    orphans = sum(s.result_id not in known_results if s.result_id is not None
                  else (s.run_id, s.case_id) not in known_cases for s in db.scores)  # fmt: skip
    if orphans:
        done.notes.append(f"{orphans} eval_scores rows score a result eval_results does not have: left out")
    unknown = sorted({s.dimension for s in db.scores if s.dimension not in names} & _id_like(db))
    if unknown:
        done.notes.append(f"eval_scores name criteria eval_criteria does not have: {', '.join(unknown)}"
                          " (each kept as a dimension of that name)")  # fmt: skip
    firsts: set[tuple[str | None, str | None, str | None, str]] = set()
    for s in db.scores:
        value = s.value if s.value is not None else (label_value(s.label) if s.label else None)
        if value is None:
            unvalued += 1
            continue
        label = s.label.strip() if s.label else None
        score = Score(names.get(s.dimension, s.dimension), label or "", value, s.explanation or "")
        key = (s.result_id, None, None) if s.result_id is not None else (None, s.run_id, s.case_id)
        if (*key, score.dimension) in firsts:
            twice += 1
            continue
        firsts.add((*key, score.dimension))
        scored[key].append(score)
    if twice:
        done.notes.append(f"{twice} eval_scores rows score a result on a dimension it has a score for"
                          " already: the first is kept")  # fmt: skip
    if unvalued:
        done.notes.append(f"{unvalued} eval_scores rows have neither a value nor a Seer label: left out")

    def agent_of(run: SeerRun) -> str:
        seer_set = sets.get(run.set_id)
        if seer_set is None:
            return agents.get(run.set_id) or agents.get("*") or run.agent or run.set_id
        chosen = agents.get(run.set_id) or agents.get(seer_set.name) or agents.get("*")
        return chosen or run.agent or seer_set.agent or seer_set.name

    con = connect(data_dir)
    stored = {
        str(r["run_id"]): (str(r["agent"]), int(r["cases"]))
        for r in rows_of(con, "SELECT run_id, agent, cases FROM eval_runs WHERE tenant = $t", {"t": tenant})
    }
    by_day: dict[object, list[tuple[EvalRunRow, list[EvalResultRow], list[ScoreRow]]]] = defaultdict(list)
    latest: dict[str, tuple[str, set[str]]] = {}
    for run in sorted(db.runs, key=lambda r: (r.started, r.id)):
        run_id = run_id_of(run.id, prefix)
        if run_id in stored:
            agent, cases_stored = stored[run_id]
            if cases_stored:
                latest[agent] = (run_id, latest.get(agent, ("", set()))[1] | {run.set_id})
            done.already.append(run_id)
            continue
        dataset = done.datasets.get(run.set_id)
        set_weights = weights.get(run.set_id, weights[None])
        agent = agent_of(run)
        built = _run_rows(run, run_id, agent, results[run.id], scored, cases, set_weights,
                          str(dataset[0]) if dataset else run.set_id, db.path.name, done.notes)  # fmt: skip
        if built is None:
            continue
        if built[1]:
            latest[agent] = (run_id, latest.get(agent, ("", set()))[1] | {run.set_id})
        by_day[run.started.date()].append(built)
    written = 0
    pending = {run_row.run_id for group in by_day.values() for run_row, _, _ in group}
    left = _drop_leftovers(data_dir, tenant, pending, set(stored))
    if left:
        done.notes.append(f"{left} files of an import that did not finish were removed (their runs are"
                          " written again)")  # fmt: skip
    for day in sorted(by_day, key=str):
        group = by_day[day]
        when = group[0][0].started_at
        _write(data_dir, tenant, when, [r for _, results_, _ in group for r in results_])
        score_rows = [s for _, _, scores in group for s in scores]
        _write(data_dir, tenant, when, score_rows)
        _write(data_dir, tenant, when, [run_row for run_row, _, _ in group])
        done.scores += len(score_rows)
        done.imported += [run_row.run_id for run_row, _, _ in group]
        written += len(group)
        if progress is not None:
            progress(written)
    if pin:
        _pin(data_dir, tenant, latest, done)
    return done


def _id_like(db: SeerDatabase) -> set[str]:
    """Score dimensions that are ids of ``eval_criteria`` rows: what its id column refers to, when
    it has one (a dimension named so but not among them is a criterion it does not have)."""
    ids = {c.id for c in db.criteria if c.id is not None}
    if "id" not in db.columns.get("eval_criteria", {}) or not ids:
        return set()
    scored = db.columns.get("eval_scores", {}).get("dimension", "").lower()
    return {s.dimension for s in db.scores} if "id" in scored else set()


def _run_rows(
    run: SeerRun, run_id: str, agent: str, results: list[SeerResult],
    scored: Mapping[tuple[str | None, str | None, str | None], list[Score]],
    cases: Mapping[tuple[str, str], SeerCase],
    weights: Mapping[str, float], dataset: str, source: str, notes: list[str],
) -> tuple[EvalRunRow, list[EvalResultRow], list[ScoreRow]] | None:  # fmt: skip
    """The rows of ``run``; None (noted) when a result's overall score cannot be computed."""
    judge_model = run.judge or EVALUATOR
    result_rows: list[EvalResultRow] = []
    score_rows: list[ScoreRow] = []
    by_dimension: dict[str, list[float]] = defaultdict(list)
    missing: set[str] = set()
    for r in results:
        scores = scored.get((r.id, None, None), []) + scored.get((None, run.id, r.case_id), [])
        best = r.overall
        if best is None and scores:
            unweighted = {s.dimension for s in scores} - set(weights)
            if unweighted:
                missing |= unweighted
                continue
            best = overall(tuple(scores), weights)
        case = cases.get((run.set_id, r.case_id))
        query = case.query if case is not None else None
        if query is None:
            notes.append(f"eval_results {r.id}: case {r.case_id} is not in eval_cases: its query is empty")
        trace_id, span_id = _ids(run_id, r.case_id, r.id)
        result_rows.append(EvalResultRow(
            run_id=run_id, agent=agent, case_id=r.case_id, trace_id=trace_id, span_id=span_id,
            target_trace_id=None, query=query or "", output=r.output, error=r.error, latency_ms=r.latency_ms,
            tool_call_count=None, overall_score=best, started_at=run.started, judge_problems=None,
        ))  # fmt: skip
        for s in scores:
            by_dimension[s.dimension].append(s.value)
            score_rows.append(ScoreRow(
                trace_id, span_id, EVALUATOR, s.dimension, s.value, s.label or None, s.explanation or None,
                judge_model, run.started, run_id, r.case_id,
            ))  # fmt: skip
    if missing:
        notes.append(f"eval_runs {run.id}: results without an overall score stored have scores of"
                     f" {', '.join(sorted(missing))}, whose weight is not known: not imported (give them"
                     " weights in evals.seer.dimensions and import again)")  # fmt: skip
        return None
    overalls = [r.overall_score for r in result_rows if r.overall_score is not None]
    run_overall = run.overall if run.overall is not None else (
        round(sum(overalls) / len(overalls), 4) if overalls else None)  # fmt: skip
    means = {d: round(sum(v) / len(v), 4) for d, v in by_dimension.items()}
    run_row = EvalRunRow(
        run_id=run_id, agent=agent, kind=KIND, dataset=dataset, target=f"seer:{source}", judge=EVALUATOR,
        started_at=run.started, finished_at=run.finished or run.started, cases=len(result_rows),
        errors=sum(r.error is not None for r in result_rows), overall_score=run_overall,
        dimension_scores=orjson.dumps(means).decode(),
    )  # fmt: skip
    return run_row, result_rows, score_rows


LEFTOVER = "import-seer-"
"""How the files an import writes are named: ``import-seer-<uuid>.parquet``."""


def _write(data_dir: Path, tenant: str, when: datetime, rows: Sequence[Row]) -> None:
    write_rows(data_dir, tenant, when, rows, f"{LEFTOVER}{uuid.uuid4().hex}.parquet")


def _drop_leftovers(data_dir: Path, tenant: str, pending: set[str], stored: set[str]) -> int:
    """Remove the result and score files an import wrote for runs whose ``eval_runs`` row it never
    wrote (it was interrupted): the files of ``tenant`` named ``LEFTOVER`` whose every run is one
    about to be written (``pending``) and none stored. The runs are then written once, whole."""
    removed = 0
    for table, column in (("eval_results", "run_id"), ("scores", "eval_run_id")):
        partitions = table_dir(data_dir, table) / f"tenant={tenant}"
        for file in sorted(partitions.glob(f"date=*/{LEFTOVER}*.parquet")):
            runs = set(pq.read_table(file, columns=[column]).column(column).to_pylist())
            if runs and runs <= pending and not runs & stored:
                file.unlink()
                removed += 1
    return removed


def _pin(data_dir: Path, tenant: str, latest: Mapping[str, tuple[str, set[str]]], done: SeerImport) -> None:
    """Pin each agent's latest run of this database (with results) as its baseline in ``tenant``,
    unless it is pinned already, or the agent's baseline is one a user pinned."""
    con = connect(data_dir)
    now = datetime.now(UTC)
    sql = (
        "SELECT run_id, pinned_by FROM eval_baselines WHERE tenant = $t AND agent = $a AND kind = 'baseline'"
        " ORDER BY pinned_at DESC LIMIT 1"
    )
    for agent, (run_id, set_ids) in sorted(latest.items()):
        if len(set_ids) > 1:
            names = ", ".join(sorted(set_ids))
            done.notes.append(
                f"agent {agent} has runs of {len(set_ids)} eval sets ({names}): its baseline"
                f" is its latest run, {run_id} (--agent SET=AGENT gives each set its own)"
            )
        current = rows_of(con, sql, {"t": tenant, "a": agent})
        if current and current[0]["run_id"] == run_id:
            continue
        if current and current[0]["pinned_by"] != PINNED_BY:
            done.notes.append(
                f"agent {agent}: its baseline {current[0]['run_id']} was pinned by a user: kept (pin the"
                f" import's latest run with agentwatch eval baseline pin {run_id})"
            )
            continue
        write_rows(data_dir, tenant, now, [EvalBaselineRow(agent, "baseline", run_id, now, PINNED_BY)])
        done.pinned.append((agent, run_id))
