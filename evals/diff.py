"""Eval diff: two runs of an agent compared per dimension and per case.

A dimension **regressed** when its mean over the cases both runs share dropped by more than
``threshold`` points (of 10) **and** a one-sided Wilcoxon signed-rank test over the paired
per-case values says a drop this consistent is unlikely to be noise (p < ``alpha``). Cases are
paired by case id; ``overall`` is compared like a dimension.

With few cases the test cannot say so: its smallest p is 1/2^n, 0.0625 at n = 4 and 0.03 at n = 5
only when every case dropped. A canary of two cases falling from 9.3 to 2.9 would never be
flagged. So a dimension with at most ``SmallSampleRule.max_cases`` (5) shared cases is judged by
the **small-sample rule** instead; it regressed when any of these holds:

- its mean dropped by more than ``mean_drop`` (2.0 points);
- one case dropped by more than ``case_drop`` (3.0 points);
- one case went from pass to fail: from at least ``pass_mark`` (7.0) to under it, dropping by more
  than ``threshold`` (so jitter around the mark is not a failure).

Jitter (every case within a point or so) triggers none of them. ``rule`` says which judged a
dimension (``signed-rank`` or ``small-sample``) and ``reason`` why it regressed.

Where an ensemble judged a run, each dimension also says how unstable the judges were on it:
``unstable_cases`` (the cases of the candidate run whose judges disagreed, spread above 0) and
``max_spread`` (the widest disagreement, in points), and the same for the baseline run.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from core.errors import AgentwatchError
from evals.signedrank import signed_rank_p_less
from storage.catalog import rows_of


class EvalDiffError(AgentwatchError):
    """Runs that cannot be compared: unknown ids, no baseline, different agents."""


@dataclass(frozen=True)
class SmallSampleRule:
    """How dimensions with few shared cases are judged (see the module's doc)."""

    max_cases: int = 5
    mean_drop: float = 2.0
    case_drop: float = 3.0
    pass_mark: float = 7.0

    def reason(self, pairs: list[tuple[str, float, float]], threshold: float) -> str | None:
        """Why ``pairs`` (case, baseline, candidate) regressed, or None."""
        mean_drop = sum(a - b for _, a, b in pairs) / len(pairs)
        if mean_drop > self.mean_drop:
            return f"the mean fell {mean_drop:.2f} points (more than {self.mean_drop:g})"
        for case, a, b in sorted(pairs, key=lambda p: (p[2] - p[1], p[0])):
            if a - b > self.case_drop:
                return f"case {case} fell {a - b:.2f} points (more than {self.case_drop:g})"
            if a >= self.pass_mark > b and a - b > threshold:
                return f"case {case} went from pass to fail ({a:g} to {b:g}; the mark is {self.pass_mark:g})"
        return None


@dataclass(frozen=True)
class DimensionDelta:
    dimension: str
    cases: int
    baseline: float
    candidate: float
    delta: float
    p_value: float
    regressed: bool
    rule: str = "signed-rank"
    """``signed-rank`` (the Wilcoxon test) or ``small-sample`` (at most ``max_cases`` cases)."""
    reason: str | None = None
    """Why it regressed, in words; None when it did not."""
    unstable_cases: int = 0
    """Cases of the candidate run on which an ensemble's judges disagreed on this dimension."""
    max_spread: float | None = None
    """The candidate's widest disagreement on it (points); None when no ensemble judged it."""
    baseline_unstable_cases: int = 0
    baseline_max_spread: float | None = None


@dataclass(frozen=True)
class CaseDelta:
    case_id: str
    baseline: float
    candidate: float
    delta: float


@dataclass(frozen=True)
class EvalDiff:
    agent: str
    baseline_run: str
    candidate_run: str
    threshold: float
    alpha: float
    dimensions: list[DimensionDelta]
    worse_cases: list[CaseDelta]

    @property
    def regressed_dimensions(self) -> list[str]:
        return [d.dimension for d in self.dimensions if d.regressed]

    @property
    def regression(self) -> bool:
        return bool(self.regressed_dimensions)


def run_agent(con: duckdb.DuckDBPyConnection, run_id: str) -> str:
    rows = rows_of(con, "SELECT agent FROM eval_runs WHERE run_id = $r", {"r": run_id})
    if not rows:
        raise EvalDiffError(f"no eval run {run_id!r} in this data directory")
    return str(rows[0]["agent"])


def latest_run(con: duckdb.DuckDBPyConnection, agent: str, kind: str | None = None) -> str:
    rows = rows_of(
        con,
        "SELECT run_id FROM eval_runs WHERE agent = $a AND ($k IS NULL OR kind = $k)"
        " ORDER BY started_at DESC, run_id DESC LIMIT 1",
        {"a": agent, "k": kind},
    )
    if not rows:
        raise EvalDiffError(f"agent {agent!r} has no eval runs")
    return str(rows[0]["run_id"])


def pinned(con: duckdb.DuckDBPyConnection, agent: str, kind: str = "baseline") -> str:
    rows = rows_of(
        con,
        "SELECT run_id FROM eval_baselines WHERE agent = $a AND kind = $k ORDER BY pinned_at DESC LIMIT 1",
        {"a": agent, "k": kind},
    )
    if not rows:
        raise EvalDiffError(
            f"agent {agent!r} has no pinned {kind}: pin one with agentwatch eval baseline pin RUN_ID"
            f" (or --agent {agent} for its latest run)"
        )
    return str(rows[0]["run_id"])


def _values(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, dict[str, float]]:
    """dimension → case id → value, plus ``overall``."""
    out: dict[str, dict[str, float]] = {}
    for r in rows_of(
        con,
        "SELECT eval_case_id, dimension, value FROM scores WHERE eval_run_id = $r AND evaluator <> 'metric'",
        {"r": run_id},
    ):
        out.setdefault(r["dimension"], {})[r["eval_case_id"]] = float(r["value"])
    overall_sql = (
        "SELECT case_id, overall_score FROM eval_results WHERE run_id = $r AND overall_score IS NOT NULL"
    )
    for r in rows_of(con, overall_sql, {"r": run_id}):
        out.setdefault("overall", {})[r["case_id"]] = float(r["overall_score"])
    return out


def unstable(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, tuple[int, float | None]]:
    """dimension → (cases whose ensemble disagreed, the widest spread) of one run."""
    rows = rows_of(
        con,
        "SELECT dimension, count(*) FILTER (WHERE spread > 0) AS cases, max(spread) AS widest FROM scores"
        " WHERE eval_run_id = $r AND evaluator <> 'metric' AND spread IS NOT NULL GROUP BY dimension",
        {"r": run_id},
    )
    return {str(r["dimension"]): (int(r["cases"]), float(r["widest"])) for r in rows}


def one_sided_p(deltas: list[float]) -> float:
    """p of "the candidate is lower" from the signed-rank test; 1.0 when nothing changed."""
    return signed_rank_p_less(deltas)


def diff(
    con: duckdb.DuckDBPyConnection,
    baseline: str,
    candidate: str,
    threshold: float = 1.0,
    alpha: float = 0.05,
    small: SmallSampleRule = SmallSampleRule(),
) -> EvalDiff:
    agent = run_agent(con, baseline)
    if run_agent(con, candidate) != agent:
        raise EvalDiffError(f"runs {baseline} and {candidate} are of different agents")
    a, b = _values(con, baseline), _values(con, candidate)
    shaky_a, shaky_b = unstable(con, baseline), unstable(con, candidate)
    dimensions = []
    for dimension in sorted(set(a) & set(b), key=lambda d: (d != "overall", d)):
        shared = sorted(set(a[dimension]) & set(b[dimension]))
        if not shared:
            continue
        deltas = [b[dimension][c] - a[dimension][c] for c in shared]
        mean_a = sum(a[dimension][c] for c in shared) / len(shared)
        mean_b = sum(b[dimension][c] for c in shared) / len(shared)
        p = one_sided_p(deltas)
        delta = round(mean_b - mean_a, 4)
        if len(shared) <= small.max_cases:
            rule = "small-sample"
            reason = small.reason([(c, a[dimension][c], b[dimension][c]) for c in shared], threshold)
        else:
            rule = "signed-rank"
            reason = (f"the mean fell {-delta:.2f} points (more than {threshold:g}), p = {p:.4f} < {alpha:g}"
                      if delta < -threshold and p < alpha else None)  # fmt: skip
        cases_b, spread_b = shaky_b.get(dimension, (0, None))
        cases_a, spread_a = shaky_a.get(dimension, (0, None))
        dimensions.append(DimensionDelta(dimension, len(shared), round(mean_a, 4), round(mean_b, 4), delta,
                                         round(p, 6), reason is not None, rule, reason, cases_b, spread_b,
                                         cases_a, spread_a))  # fmt: skip
    overall_a, overall_b = a.get("overall", {}), b.get("overall", {})
    worse = sorted(
        (CaseDelta(c, overall_a[c], overall_b[c], round(overall_b[c] - overall_a[c], 4))
         for c in set(overall_a) & set(overall_b) if overall_b[c] < overall_a[c]),
        key=lambda d: (d.delta, d.case_id),
    )  # fmt: skip
    return EvalDiff(agent, baseline, candidate, threshold, alpha, dimensions, worse)
