"""Report benchmark: ``agentwatch report`` over 7 days of a 10-million-span history.

Generates the history once (bench/report_data.py: 8 days, 2 tenants, 50 agents, 2,000 users)
into --data-dir, then times the report for one agent and for all agents, in process (query and
render, best of --repeat) and as the command a user runs (a fresh process, wall clock).

    .venv/bin/python bench/report.py --spans 10000000 --data-dir /tmp/agentwatch-report-bench
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentwatch.config import load_config
from bench.report_data import generate
from report import formats as report_formats
from report.health import build_report
from report.signals import clusters
from storage.catalog import connect
from storage.compaction.compactor import CompactionConfig, Compactor
from storage.runs import Scope, runs_in


def one_report(data_dir: Path, scope: Scope, fmt: str) -> tuple[float, dict[str, float], int]:
    times: dict[str, float] = {}
    start = time.perf_counter()
    con = connect(data_dir)
    runs = runs_in(con, scope)
    count = runs.count()
    times["load runs"] = time.perf_counter() - start
    t = time.perf_counter()
    health = build_report(runs, load_config(None).agents)
    times["health"] = time.perf_counter() - t
    t = time.perf_counter()
    signals = clusters(runs)
    times["signals"] = time.perf_counter() - t
    t = time.perf_counter()
    if fmt == "json":
        report_formats.to_json_dict(health, signals)
    else:
        report_formats.render_text(health, signals)
    times["render"] = time.perf_counter() - t
    return time.perf_counter() - start, times, count


def history(data_dir: Path, spans: int) -> datetime:
    """The benchmark's history of ``spans`` spans in ``data_dir`` (8 days ending when first
    generated, kept for later runs); returns its end."""
    marker = data_dir / f".generated-{spans}"
    if not marker.exists():
        now = datetime.now(UTC).replace(microsecond=0)
        print(f"generating {spans:,} spans into {data_dir} ...", flush=True)
        t = time.perf_counter()
        written = generate(data_dir, spans, days=8, end_us=int(now.timestamp() * 1e6))
        Compactor(CompactionConfig(), data_dir).sync_parts()  # as the exporter would have
        marker.write_text(now.isoformat())
        print(f"  {written:,} spans in {time.perf_counter() - t:.0f} s")
    return datetime.fromisoformat(marker.read_text().strip())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/agentwatch-report-bench"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--format", default="text", choices=["text", "json"])
    args = parser.parse_args()
    until = history(args.data_dir, args.spans)
    for label, agent in (("one agent", "agent-07"), ("all agents", None)):
        scope = Scope(until - timedelta(days=7), until, agent)
        best: tuple[float, dict[str, float], int] | None = None
        for _ in range(args.repeat):
            result = one_report(args.data_dir, scope, args.format)
            if best is None or result[0] < best[0]:
                best = result
        assert best is not None
        parts = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in best[1].items())
        print(f"{label}: {best[0]:.3f} s in process ({best[2]:,} runs; {parts})")
        command = [sys.executable, "-m", "agentwatch", "report", "--data-dir", str(args.data_dir),
                   "--since", "7d", "--until", until.isoformat(), "--format", args.format]  # fmt: skip
        if agent:
            command += ["--agent", agent]
        t = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        print(f"{label}: {time.perf_counter() - t:.3f} s as a command (new process, imports included)")


if __name__ == "__main__":
    main()
