"""Judging a sample of production runs, in the background of ``agentwatch serve``.

It never touches the acknowledgement path: every ``interval`` it reads runs that are already in
Parquet, picks the sample, judges each run on what it asked, answered and retrieved (its tool
spans' outputs), and appends ``scores`` rows (evaluator = the judge's name) and ``run_marks``
(``groundedness_drop``, ``quality_regression``). A run is picked when the low 32 bits of its
trace id fall under ``sample_rate`` (trace ids are random, so every replica picks the same
runs); runs already scored by this judge are skipped, so a pass can be repeated without double
scores.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from core.periodic import Periodic
from evals.config import EvalsConfig
from evals.datasets import Case
from evals.judges.factory import build_judge
from evals.judges.marks import marks
from evals.judges.scores import Judge, score_rows
from evals.targets import TargetResult, ToolCall
from storage.runs import since_date
from storage.tables import RunMarkRow, ScoreRow, write_rows

log = logging.getLogger("agentwatch.judge")

_PICK = """
SELECT tenant, trace_id, span_id, duration_ms, start_time
FROM runs
WHERE NOT synthetic
  AND ('0x' || right(trace_id, 8))::UBIGINT < $bound
  AND start_time + to_microseconds((coalesce(duration_ms, 0) * 1000)::BIGINT) <= $settled
  AND trace_id NOT IN (SELECT trace_id FROM scores WHERE evaluator = $judge AND trace_id IS NOT NULL)
ORDER BY start_time, trace_id
LIMIT $max_runs
"""
_TEXTS = """
SELECT tenant, trace_id, span_id, name, operation, input_text, output_text
FROM spans
WHERE date >= $since_date AND trace_id IN (SELECT trace_id FROM _picked)
ORDER BY start_time, span_id
"""


@dataclass
class JudgingStats:
    passes: int = 0
    judged: int = 0
    marked: int = 0
    judge_problems: int = 0
    failed_passes: int = 0


class ProductionJudge:
    def __init__(
        self, evals: EvalsConfig, data_dir: Path,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:  # fmt: skip
        self.config = evals.production
        self.threshold = evals.groundedness_threshold
        self.quality_thresholds = evals.quality_thresholds
        self.evals = evals
        self.data_dir = data_dir
        self.clock = clock
        self.stats = JudgingStats()
        self._loop = Periodic("agentwatch-judge", self.config.interval, self.run_once,
                              (OSError, duckdb.Error), self._failed)  # fmt: skip

    def run_once(self) -> int:
        """One pass; the number of runs judged."""
        from storage.catalog import connect
        from storage.runs import USAGE, Scope, runs_in

        now = self.clock()
        c = self.config
        con = connect(self.data_dir)
        try:
            since = now - timedelta(seconds=c.lookback)
            runs = runs_in(con, Scope(since, now), USAGE)
            picked: pa.Table = runs.arrow(_PICK, {
                "bound": int(c.sample_rate * 2**32), "settled": now - timedelta(seconds=c.settle),
                "judge": c.judge, "max_runs": c.max_runs,
            })  # fmt: skip
            if picked.num_rows == 0:
                return 0
            con.register("_picked", picked)
            texts = con.execute(_TEXTS, {"since_date": since_date(since)}).fetchall()
        finally:
            con.close()
        judge = build_judge(c.judge, self.evals)
        try:
            judged = self._judge_all(judge, picked.to_pylist(), texts, now)
        finally:
            judge.close()
        self.stats.passes += 1
        self.stats.judged += judged
        return judged

    def _judge_all(
        self, judge: Judge, runs: list[dict[str, Any]], texts: list[tuple[Any, ...]], now: datetime
    ) -> int:
        by_trace: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
        for row in texts:
            by_trace.setdefault((row[0], row[1]), []).append(row)
        scores: dict[str, list[ScoreRow]] = {}
        run_marks: dict[str, list[RunMarkRow]] = {}
        for run in runs:
            spans = by_trace.get((run["tenant"], run["trace_id"]), [])
            case, result = _as_case(run, spans)
            judgement = judge.judge(case, result)
            if judgement.problems:
                self.stats.judge_problems += 1
                log.warning("judging %s: %s", run["trace_id"], "; ".join(judgement.problems))
            scores.setdefault(run["tenant"], []).extend(
                score_rows(judgement, run["trace_id"], run["span_id"], self.config.judge, now)
            )
            found = marks(run["trace_id"], run["span_id"], judgement, self.threshold, self.config.judge, now,
                          self.quality_thresholds)  # fmt: skip
            run_marks.setdefault(run["tenant"], []).extend(found)
            self.stats.marked += len(found)
        for tenant, rows in scores.items():
            # Marks first: a crash between the two leaves the run unscored, so it is judged again.
            write_rows(self.data_dir, tenant, now, run_marks.get(tenant, []))
            write_rows(self.data_dir, tenant, now, rows)
        return len(runs)

    # -- in the background -------------------------------------------------------------------
    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def _failed(self, exc: Exception) -> None:
        # Nothing was half-written (files are renamed into place): the next pass retries.
        self.stats.failed_passes += 1
        log.error("judging production runs failed; retrying next pass: %s", exc)


def _as_case(run: dict[str, Any], spans: list[tuple[Any, ...]]) -> tuple[Case, TargetResult]:
    """The run as the judge sees an eval case: its question, its answer, what its tools returned."""
    own = next((s for s in spans if s[2] == run["span_id"]), None)
    query = (own[5] if own else None) or ""
    output = own[6] if own else None
    tools = [s for s in spans if s[4] in ("tool", "mcp", "retrieval") and s[2] != run["span_id"]]
    calls = tuple(ToolCall(str(s[3]), s[5] or "", s[6]) for s in tools)
    return Case(run["trace_id"], query), TargetResult(output, float(run["duration_ms"] or 0.0), calls)
