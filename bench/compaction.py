"""Compaction benchmark: one pass over a day of N small span files, its peak memory and time.

Writes N spans (the golden pipeline output replicated: real column shapes, ~1.1 KB a span in
memory) as files of --per-file spans into one partition of today, as a day of flushes leaves
them, then runs one compaction pass in a fresh process and reports the peak resident memory of
that process (the server's side) and of the merge worker processes it started, with the time.

    .venv/bin/python bench/compaction.py --spans 1000000 3000000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage.compaction.compactor import CompactionConfig, Compactor
from tests.helpers.span_files import day_start, write_small_files

DATE = "2025-11-22"
NOW = datetime(2025, 11, 22, 23, 0, tzinfo=UTC).timestamp()


def generate(source: Path, spans: int, per_file: int) -> None:
    marker = source / f".generated-{spans}-{per_file}"
    if marker.exists():
        return
    shutil.rmtree(source, ignore_errors=True)
    started = time.perf_counter()
    partition = source / "spans" / "tenant=acme" / f"date={DATE}"
    files = write_small_files(partition, spans, per_file, day_start(DATE))
    marker.write_text("")
    size = sum(f.stat().st_size for f in files) / 2**20
    took = time.perf_counter() - started
    print(f"  generated {spans:,} spans in {len(files):,} files ({size:.0f} MiB) in {took:.0f} s")


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def one_pass(data_dir: Path, memory_limit_mib: float) -> dict[str, float]:
    """In this (fresh) process: one pass, as the service's compaction thread runs it. Peaks are
    VmHWM (``ru_maxrss`` would count what the benchmark itself held when it started us)."""
    known = {f.name for f in dataclasses.fields(CompactionConfig)}
    settings = {"grace": 0.0, "memory_limit_mib": memory_limit_mib, "worker": "process"}
    config = CompactionConfig(**{k: v for k, v in settings.items() if k in known})  # type: ignore[arg-type]
    started = time.perf_counter()
    stats = Compactor(config, data_dir).run_once(NOW)
    elapsed = time.perf_counter() - started
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "cpu_seconds": own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime,
        "seconds": elapsed,
        "merges": stats.merges,
        "files_merged": stats.files_merged,
        "server_peak_mib": peak_rss_mib(),
        "workers_peak_mib": getattr(stats, "peak_worker_rss_mib", 0.0),  # before: no worker
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, nargs="+", default=[1_000_000, 3_000_000])
    parser.add_argument("--per-file", type=int, default=1000)
    parser.add_argument("--memory-limit-mib", type=float, default=256.0)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/agentwatch-compaction-bench"))
    parser.add_argument("--one-pass", type=Path, help=argparse.SUPPRESS)  # the measured child
    args = parser.parse_args()
    if args.one_pass:
        print(json.dumps(one_pass(args.one_pass, args.memory_limit_mib)))
        return
    for spans in args.spans:
        print(f"{spans:,} spans in files of {args.per_file:,}:", flush=True)
        source = args.data_dir / f"source-{spans}"
        generate(source, spans, args.per_file)
        work = args.data_dir / "work"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(source, work)
        command = [sys.executable, __file__, "--one-pass", str(work)]
        command += ["--memory-limit-mib", str(args.memory_limit_mib)]
        result = json.loads(subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout)
        print(
            f"  {result['merges']:.0f} merges of {result['files_merged']:,.0f} files"
            f" in {result['seconds']:.1f} s ({result['cpu_seconds']:.1f} s of CPU);"
            f" peak RSS: server process {result['server_peak_mib']:.0f} MiB,"
            f" merge worker {result['workers_peak_mib']:.0f} MiB"
            f" (memory_limit_mib {args.memory_limit_mib:g})",
            flush=True,
        )
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
