"""Feedback ingest: how many pieces of users' feedback a second ``POST /api/v1/feedback`` stores.

Starts ``agentwatch serve`` on free loopback ports and posts ``--requests`` requests of
``--batch`` items each (thumbs, ratings and scores with comments, on distinct traces) from
``--concurrency`` keep-alive clients. Every answer is 200 only once its items are on disk
(written and fsynced), so this is the durable rate. Then checks the ``feedback`` view holds
every item once.

    .venv/bin/python bench/feedback.py --batch 1 --requests 2000
    .venv/bin/python bench/feedback.py --batch 100 --requests 200

Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers.server import ServerProcess


def items(request: int, batch: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(batch):
        n = request * batch + i
        value: object = ("up", "down", 4, 2, 0.8, 0.1)[n % 6]
        out.append({
            "trace_id": f"{n:032x}", "user_id": f"user{n % 500}@acme.com", "value": value,
            "comment": "the receipt total was wrong" if n % 3 == 0 else None, "id": f"fb-{n}",
        })  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1, help="items per request")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    bodies = [items(r, args.batch) for r in range(args.requests)]
    with tempfile.TemporaryDirectory() as workdir:
        server = ServerProcess(Path(workdir)).start()
        url = f"http://127.0.0.1:{server.api_port}/api/v1/feedback"
        latencies: list[float] = []
        try:
            with httpx.Client(limits=httpx.Limits(max_connections=args.concurrency), timeout=30) as client:

                def post(body: list[dict[str, Any]]) -> None:
                    begin = time.perf_counter()
                    response = client.post(url, json=body)
                    assert response.status_code == 200, response.text
                    latencies.append((time.perf_counter() - begin) * 1000)

                started = time.perf_counter()
                with ThreadPoolExecutor(args.concurrency) as pool:
                    list(pool.map(post, bodies))
                elapsed = time.perf_counter() - started
            stored = server.query("SELECT count(*) FROM feedback")[0][0]
        finally:
            server.stop()
    total = args.requests * args.batch
    ordered = sorted(latencies)
    print(f"feedback: {total:,} items in {args.requests:,} requests of {args.batch} "
          f"({args.concurrency} clients): {total / elapsed:,.0f} items/s, {args.requests / elapsed:,.0f} "
          f"requests/s; latency p50 {statistics.median(ordered):.1f} ms, "
          f"p99 {ordered[int(0.99 * (len(ordered) - 1))]:.1f} ms; stored {stored:,}")  # fmt: skip
    assert stored == total, f"{stored} stored of {total}"


if __name__ == "__main__":
    main()
