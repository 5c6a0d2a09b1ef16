"""Start-up: from ``agentwatch serve`` to ports open, ``/healthz`` 200 and ``/readyz`` 200.

Spawns the installed console script (what a user or a supervisor runs) on free loopback ports
with a fresh data directory, polls ``/healthz`` and ``/readyz`` every 10 ms and the OTLP/HTTP
port for its first accepted export, stops it with SIGTERM, --runs times. A warm install: run
it once before measuring (``make setup`` compiles the normaliser's kernels once; the first
start of a fresh install without make compiles them, which this does not measure).

    .venv/bin/python bench/startup.py --runs 10

Prints each run and the median/min/max of each milestone. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from tests.helpers.otlp import make_trace
from tests.helpers.server import ServerProcess

MILESTONES = ("healthz", "first export acknowledged", "readyz")


def one_start(workdir: Path) -> dict[str, float]:
    server = ServerProcess(workdir)
    server.write_config()
    script = Path(sys.executable).with_name("agentwatch")
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(script), "serve", "--config", str(server.config_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen: dict[str, float] = {}
    body = encode_spans(make_trace()).SerializeToString()
    api = f"http://127.0.0.1:{server.api_port}"
    try:
        with httpx.Client(timeout=0.5) as client:
            while len(seen) < len(MILESTONES) and time.monotonic() - started < 120:
                for name, probe in (
                    ("healthz", lambda: client.get(f"{api}/healthz")),
                    ("readyz", lambda: client.get(f"{api}/readyz")),
                    (
                        "first export acknowledged",
                        lambda: client.post(
                            server.http_url, content=body, headers={"Content-Type": "application/x-protobuf"}
                        ),
                    ),
                ):
                    if name in seen:
                        continue
                    try:
                        if probe().status_code == 200:
                            seen[name] = time.monotonic() - started
                    except httpx.TransportError:
                        pass
                time.sleep(0.01)
    finally:
        proc.terminate()
        proc.wait(60)
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    results: list[dict[str, float]] = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="agentwatch-startup-") as tmp:
            seen = one_start(Path(tmp))
        results.append(seen)
        print(f"run {run + 1}: " + ", ".join(f"{m} {seen.get(m, float('nan')):.2f} s" for m in MILESTONES))
    for milestone in MILESTONES:
        values = [r[milestone] for r in results if milestone in r]
        if values:
            print(
                f"{milestone:>26}: median {statistics.median(values):.2f} s, "
                f"min {min(values):.2f} s, max {max(values):.2f} s ({len(values)}/{len(results)} runs)"
            )


if __name__ == "__main__":
    main()
