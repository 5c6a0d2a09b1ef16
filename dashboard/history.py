"""Eval runs and regression events of a window, as the agent page, the evals page and the
overview list them: one query each, ``dimension_scores`` and ``dimensions`` decoded."""

from __future__ import annotations

from typing import Any

import duckdb
import orjson

from dashboard.window import Window
from storage.catalog import rows_of


def _where(window: Window, time_column: str, names: list[str] | None) -> tuple[str, dict[str, Any]]:
    tenant, params = window.tenant_clause()
    where = f"{time_column} >= $since AND {time_column} < $until{tenant}"
    params |= {"since": window.since, "until": window.until}
    if names is not None:  # eval runs name the agent as ``eval run`` got it: its id or its name
        where += " AND list_contains($names, agent)"
        params["names"] = names
    return where, params


def eval_runs(
    con: duckdb.DuckDBPyConnection, window: Window, names: list[str] | None, limit: int
) -> list[Any]:
    """The eval runs started in ``window`` (of the agent called any of ``names``), newest first."""
    where, params = _where(window, "started_at", names)
    runs = rows_of(
        con,
        f"""SELECT run_id, tenant, agent, kind, dataset, target, judge, started_at, cases, errors,
                   overall_score, dimension_scores FROM eval_runs
            WHERE {where} ORDER BY started_at DESC LIMIT {int(limit)}""",
        params,
    )
    for run in runs:
        run["dimension_scores"] = orjson.loads(run["dimension_scores"] or "{}")
    return runs


def eval_events(
    con: duckdb.DuckDBPyConnection, window: Window, names: list[str] | None, limit: int | None = None
) -> list[Any]:
    """The regressions and canary drops recorded in ``window``, newest first."""
    where, params = _where(window, "time", names)
    events = rows_of(
        con,
        f"""SELECT time, event, tenant, agent, run_id, baseline_run, dimensions FROM eval_events
            WHERE {where} ORDER BY time DESC{"" if limit is None else f" LIMIT {int(limit)}"}""",
        params,
    )
    for event in events:
        event["dimensions"] = orjson.loads(event["dimensions"] or "{}")
    return events
