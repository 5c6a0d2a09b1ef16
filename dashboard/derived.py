"""The tables the dashboard's run cache keeps beside the runs (``storage.runcache.Derived``):
what a page reads of every span of its runs, made once for the closed days: the agent page's
steps, each run's leaks (``spend.leaks``), fallbacks (``report.fallbacks``) and question
(``feedback.implicit``, for requeries)."""

from __future__ import annotations

from feedback.implicit import RUN_WORDS
from report.fallbacks import FALLBACK_RUNS
from spend.leaks import LEAK_RUNS
from storage.runcache import Derived
from storage.runs import span_failed_sql

STEPS = Derived(
    "steps",
    f"""SELECT s.tenant, s.trace_id, s.operation, coalesce(s.tool_name, s.name) AS step, s.model,
               {span_failed_sql("s.")} AS failed, s.failure_type, s.duration_ms
        FROM __SPANS__ s SEMI JOIN __RUNS__ r USING (tenant, trace_id)""",
    ("run_agent", "run_start"),
)
"""The agent page's step rows: each span of a run, as its step (the span's tool, else its name)."""

DERIVED = (STEPS, LEAK_RUNS, FALLBACK_RUNS, RUN_WORDS)
