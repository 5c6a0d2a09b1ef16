"""After a scheduled or canary run: compare it with the agent's pinned baseline (or canary) and
record a regression event (``eval_events``) when a dimension dropped beyond noise."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import orjson

from evals.diff import EvalDiff, EvalDiffError, diff, pinned
from evals.runner import EvalRun
from storage.catalog import connect
from storage.tables import EvalEventRow, write_rows

log = logging.getLogger("agentwatch.synthetic")


def check_regression(
    run: EvalRun, data_dir: Path, tenant: str, threshold: float, alpha: float
) -> EvalDiff | None:
    kind = "canary" if run.kind == "canary" else "baseline"
    con = connect(data_dir)
    try:
        baseline = pinned(con, run.agent, kind)
    except EvalDiffError:
        log.info("%s has no pinned %s yet: run %s is not compared", run.agent, kind, run.run_id)
        return None
    result = diff(con, baseline, run.run_id, threshold, alpha)
    if result.regression:
        event = "canary_drop" if kind == "canary" else "eval_regression"
        log.warning(
            "%s: %s against %s in %s", run.agent, event, baseline, ", ".join(result.regressed_dimensions)
        )
        deltas = {d.dimension: d.delta for d in result.dimensions if d.regressed}
        now = datetime.now(UTC)
        dimensions = orjson.dumps(deltas).decode()
        row = EvalEventRow(event, run.agent, run.run_id, baseline, dimensions, now)
        write_rows(data_dir, tenant, now, [row])
    return result
