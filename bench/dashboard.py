"""Dashboard benchmark: each JSON endpoint's answer over 7 days of the report benchmark's
10-million-span history (bench/report_data.py; generated once, as bench/report.py does).

Times the view behind each endpoint in process (what the API does per request before JSON),
not cached, best of --repeat: with a new Reader (its catalog bound first, as the first view
after a flush does) and with a warm one (another view of the same data); then repeated from the
answer cache. "Now" is
the history's end: its last day is open (merged live by every view), the days before are read
from the run cache (storage/runcache.py), merged first if it is not on disk (the time printed).

    .venv/bin/python bench/dashboard.py --spans 10000000 --data-dir /tmp/agentwatch-report-bench
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import history
from dashboard.agent import agent_view, implicit_view
from dashboard.app import dumps
from dashboard.costview import cost_view, leaks_view
from dashboard.operations import alerts_view, evals_view, operations_view
from dashboard.overview import agents_view, overview_view
from dashboard.reader import Reader
from dashboard.trace import trace_view
from dashboard.window import Window, window_of
from feedback.implicit import ImplicitConfig


def best_of(
    repeat: int, make: Callable[[Reader], Any], data_dir: Path, now: datetime
) -> tuple[float, float, float]:
    """(best seconds with a new Reader, best seconds with a warm one, seconds cached): a new
    Reader binds its catalog first (as the first view after a flush does), a warm one has it
    bound (another view of the same data); neither has the answer cached; the run cache of
    closed days is on disk, as a running server has it."""
    cold = warm = float("inf")
    reader = Reader(data_dir, clock=lambda: now)
    reader.cached(("warm-up",), lambda: dumps(make(reader)))
    for i in range(repeat):
        fresh = Reader(data_dir, clock=lambda: now)
        t = time.perf_counter()
        fresh.cached(("bench",), lambda r=fresh: dumps(make(r)))  # type: ignore[misc]
        cold = min(cold, time.perf_counter() - t)
        t = time.perf_counter()
        reader.cached(("bench", i), lambda: dumps(make(reader)))
        warm = min(warm, time.perf_counter() - t)
    t = time.perf_counter()
    reader.cached(("bench", 0), lambda: dumps(make(reader)))
    return cold, warm, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/agentwatch-report-bench"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    until = history(args.data_dir, args.spans)
    # "Now" is the history's end: its last day is the open one, merged live on every view; the
    # days before are closed, their runs merged once into the run cache (timed here).
    t = time.perf_counter()
    built = Reader(args.data_dir, clock=lambda: until).run_cache
    built.closed()
    built.snapshot()  # the open day's files as they are (a server keeps one at most minutes old)
    print(f"run cache of the closed days and the open day's snapshot: {time.perf_counter() - t:.1f} s"
          f" ({'merged now' if built.builds else 'already on disk'})", flush=True)  # fmt: skip
    week = window_of({"from": (until.replace(microsecond=0) - _days(7)).isoformat(), "to": until.isoformat()})
    tenant = Window(week.since, week.until, "acme", week.label)
    probe = Reader(args.data_dir, clock=lambda: until)
    trace_id = agent_view(probe, tenant, "agent-07")["recent_failures"][0]["trace_id"]
    views: list[tuple[str, Callable[[Reader], Any]]] = [
        ("/api/v1/overview (7d, all tenants)", lambda r: overview_view(r, week)),
        ("/api/v1/agents (7d, all tenants)", lambda r: agents_view(r, week)),
        ("/api/v1/agents/agent-07 (7d)", lambda r: agent_view(r, tenant, "agent-07")),
        ("/api/v1/traces/{id}", lambda r: trace_view(r, trace_id, None)),
        ("/api/v1/operations (7d)", lambda r: operations_view(r, week)),
        ("/api/v1/evals (7d)", lambda r: evals_view(r, week)),
        ("/api/v1/alerts (7d)", lambda r: alerts_view(r, week)),
        ("/api/v1/cost (7d, by agent)", lambda r: cost_view(r, week, "agent")),
        ("/api/v1/cost/leaks (7d)", lambda r: leaks_view(r, week)),
        (
            "/api/v1/agents/agent-07/implicit (7d)",
            lambda r: implicit_view(r, tenant, "agent-07", ImplicitConfig()),
        ),
    ]
    for label, make in views:
        cold, warm, cached = best_of(args.repeat, make, args.data_dir, until)
        print(
            f"{label}: {cold * 1000:.0f} ms new reader, {warm * 1000:.0f} ms warm reader,"
            f" {cached * 1000:.1f} ms cached",
            flush=True,
        )


def _days(n: int) -> timedelta:
    return timedelta(days=n)


if __name__ == "__main__":
    main()
