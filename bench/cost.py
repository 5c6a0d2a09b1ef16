"""Cost report benchmark: ``agentwatch cost`` over 7 days of the report benchmark's 10-million-span
history (bench/report_data.py; generated once, as bench/report.py does).

Times the cost report by agent, by tenant and by model, in process (load runs and sum; best of
--repeat) and as the command a user runs (a fresh process, wall clock), and where money leaks
(``--leaks``, which reads the spans of the window) in process.

    .venv/bin/python bench/cost.py --spans 10000000 --data-dir /tmp/agentwatch-report-bench
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import history
from report.cost import COST_BASE, cost_columns, cost_report
from spend.leaks import leaks
from storage.catalog import connect
from storage.runs import Scope, runs_in


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/agentwatch-report-bench"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    until = history(args.data_dir, args.spans)
    scope = Scope(until - timedelta(days=7), until)
    for by in ("agent", "tenant", "model"):
        best = float("inf")
        for _ in range(args.repeat):
            t = time.perf_counter()
            found = cost_report(runs_in(connect(args.data_dir), scope, cost_columns(by), COST_BASE), by)
            best = min(best, time.perf_counter() - t)
        wall = float("inf")
        for _ in range(args.repeat):
            t = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "agentwatch", "cost", "--data-dir", str(args.data_dir), "--by", by,
                 "--since", "7d", "--until", until.isoformat()],
                check=True, capture_output=True,
            )  # fmt: skip
            wall = min(wall, time.perf_counter() - t)
        print(f"cost --by {by} (7d, {len(found.rows)} rows, ${found.total_usd:,.2f}): "
              f"{best:.2f} s in process, {wall:.2f} s as a command", flush=True)  # fmt: skip
    best = float("inf")
    for _ in range(args.repeat):
        t = time.perf_counter()
        found_leaks = leaks(runs_in(connect(args.data_dir), scope, ("agent_name",)))
        best = min(best, time.perf_counter() - t)
    print(f"cost --leaks (7d, {len(found_leaks)} agents): {best:.2f} s in process", flush=True)


if __name__ == "__main__":
    main()
