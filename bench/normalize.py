"""Normalize benchmark: microseconds per span of ``NormalizeProcessor.to_table``, best of N.

Two traffic shapes: bench-shaped requests (``bench/ingest.build_request``: agent_run, chat, chat,
mcp spans with 7-12 string/int attributes) and demo-shaped requests (``agentwatch demo`` runs as
the OpenTelemetry SDK sends them: GenAI/OpenInference/Glean conventions, message JSON, events).

    .venv/bin/python bench/normalize.py --repeat 7
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.model import OtlpBatch, OtlpRecord  # noqa: E402
from processors.normalize import processor as normalize  # noqa: E402
from tests.fixtures.golden.make_golden import START_NS, demo_bodies  # noqa: E402


def bench_batch(requests: int, spans: int) -> OtlpBatch:
    spec = importlib.util.spec_from_file_location("bench_ingest", ROOT / "bench" / "ingest.py")
    assert spec is not None and spec.loader is not None
    ingest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ingest)
    rng = random.Random(1)
    payloads = [ingest.build_request(rng, spans, START_NS) for _ in range(requests)]
    return OtlpBatch([OtlpRecord(payload, None, "otlp", spans) for payload in payloads])


def demo_batch(runs: int) -> OtlpBatch:
    records = [OtlpRecord(body) for body in demo_bodies(runs, 7, None)]
    return OtlpBatch(records)


def best_us_per_span(
    processor: normalize.NormalizeProcessor, batch: OtlpBatch, repeat: int
) -> tuple[float, int]:
    best = float("inf")
    rows = 0
    for _ in range(repeat):
        started = time.perf_counter()
        rows = processor.to_table(batch).num_rows
        best = min(best, time.perf_counter() - started)
    return best / rows * 1e6, rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per shape; the best is printed")
    parser.add_argument("--requests", type=int, default=40, help="bench-shaped requests per batch")
    parser.add_argument("--spans", type=int, default=512, help="spans per bench-shaped request")
    parser.add_argument("--runs", type=int, default=1500, help="demo runs (all in one batch)")
    args = parser.parse_args()
    processor = normalize.create(normalize.Config(), None)  # type: ignore[arg-type]  # to_table only
    processor.start()
    for shape, batch in (
        ("bench", bench_batch(args.requests, args.spans)),
        ("demo", demo_batch(args.runs)),
    ):
        us, rows = best_us_per_span(processor, batch, args.repeat)
        print(f"{shape:>5}: {us:6.2f} µs/span  ({rows} spans per batch, best of {args.repeat})")


if __name__ == "__main__":
    main()
