"""One stored eval run, read back for ``agentwatch eval show``: its summary, the agent's tokens
and cost beside the judge's (the judge ledger, per judge and model), each case's scores with
an ensemble's disagreement, and the dimensions the judges were unstable on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import orjson

from evals.diff import EvalDiffError, unstable
from storage.catalog import rows_of


@dataclass(frozen=True)
class LedgerLine:
    member: str
    model: str
    calls: int
    retries: int
    """Calls that were a second or later try (a bad answer asked again)."""
    failed: int
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None


@dataclass(frozen=True)
class CaseScore:
    dimension: str
    label: str | None
    value: float
    spread: float | None
    dissent: float | None
    votes: list[Any] | None


@dataclass(frozen=True)
class CaseLine:
    case_id: str
    overall_score: float | None
    error: str | None
    judge_problems: str | None
    agent_input_tokens: int | None
    agent_output_tokens: int | None
    judge_calls: int | None
    judge_cost_usd: float | None
    scores: list[CaseScore] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RunDetail:
    run: dict[str, Any]
    dimensions: dict[str, float]
    cases: list[CaseLine]
    ledger: list[LedgerLine]
    unstable: dict[str, tuple[int, float | None]]

    def as_dict(self) -> dict[str, Any]:
        run = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in self.run.items()}
        run.pop("dimension_scores", None)
        return {
            **run, "dimensions": self.dimensions,
            "unstable": {d: {"cases": n, "max_spread": s} for d, (n, s) in self.unstable.items()},
            "ledger": [vars(line) for line in self.ledger],
            "cases": [{**{k: v for k, v in vars(c).items() if k != "scores"},
                       "scores": [vars(s) for s in c.scores]} for c in self.cases],
        }  # fmt: skip


def run_detail(con: duckdb.DuckDBPyConnection, run_id: str) -> RunDetail:
    runs = rows_of(con, "SELECT * EXCLUDE (date) FROM eval_runs WHERE run_id = $r", {"r": run_id})
    if not runs:
        raise EvalDiffError(f"no eval run {run_id!r} in this data directory")
    run = runs[0]
    dimensions = orjson.loads(run["dimension_scores"] or "{}")
    scores: dict[str, list[CaseScore]] = {}
    metrics: dict[str, dict[str, float]] = {}
    for r in rows_of(
        con,
        "SELECT eval_case_id, evaluator, dimension, label, value, spread, dissent, votes FROM scores"
        " WHERE eval_run_id = $r ORDER BY eval_case_id",
        {"r": run_id},
    ):
        case = str(r["eval_case_id"])
        if r["evaluator"] == "metric":
            metrics.setdefault(case, {})[str(r["dimension"])] = float(r["value"])
            continue
        votes = orjson.loads(r["votes"]) if r["votes"] else None
        scores.setdefault(case, []).append(
            CaseScore(str(r["dimension"]), r["label"], float(r["value"]), r["spread"], r["dissent"], votes)
        )
    cases = [
        CaseLine(
            str(r["case_id"]),
            r["overall_score"],
            r["error"],
            r["judge_problems"],
            _int(r["agent_input_tokens"]),
            _int(r["agent_output_tokens"]),
            _int(r["judge_calls"]),
            r["judge_cost_usd"],
            scores.get(str(r["case_id"]), []),
            metrics.get(str(r["case_id"]), {}),
        )
        for r in rows_of(
            con,
            "SELECT case_id, overall_score, error, judge_problems, agent_input_tokens, agent_output_tokens,"
            " judge_calls, judge_cost_usd FROM eval_results WHERE run_id = $r ORDER BY case_id",
            {"r": run_id},
        )
    ]
    ledger = [
        LedgerLine(
            str(r["member"]),
            str(r["model"]),
            int(r["calls"]),
            int(r["retries"]),
            int(r["failed"]),
            _int(r["input_tokens"]),
            _int(r["output_tokens"]),
            r["cost_usd"],
        )
        for r in rows_of(
            con,
            "SELECT member, model, count(*) AS calls, count(*) FILTER (WHERE attempt > 1) AS retries,"
            " count(*) FILTER (WHERE NOT ok) AS failed, sum(input_tokens) AS input_tokens,"
            " sum(output_tokens) AS output_tokens, round(sum(cost_usd), 10) AS cost_usd"
            " FROM judge_calls WHERE run_id = $r GROUP BY ALL ORDER BY member, model",
            {"r": run_id},
        )
    ]
    return RunDetail(run, dimensions, cases, ledger, unstable(con, run_id))


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
