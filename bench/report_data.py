"""Synthetic span history for the report benchmark: N spans of agent runs, as compacted Parquet.

Runs of 5 spans (agent_run → chat, tool, retrieval, chat) spread over ``days`` days, 2 tenants,
50 agents with owners, 2,000 users. About 9% of runs fail (timeouts, rate limits, tool errors,
empty answers, each with a message carrying ids and numbers) and 4% are degraded (a failed tool
under a run that answered). Written straight from numpy to the storage layout the server writes
(``spans/tenant=<t>/date=<d>/``, zstd, files of ~500k rows as compaction leaves them), so the
benchmark times the queries, not ingest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.model import SPAN_SCHEMA

SPANS_PER_RUN = 5
AGENTS = 50
USERS = 2_000
FILE_ROWS = 500_000
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_NAMES = ("agent_run", "chat", "tool", "retrieval", "chat")
_OPERATIONS = ("agent_run", "chat", "tool", "retrieval", "chat")
FAILURES = (  # (failure_type, message template with a {n} hole), on the run span
    ("timeout", "agent run exceeded deadline of {n}ms"),
    ("rate_limit", "429 Too Many Requests: retry after {n}s for org org-{n}"),
    ("tool_error", "tool create_ticket failed: ticket {n} not found"),
    ("empty_response", None),
)


def hex_ids(rng: np.random.Generator, n: int, width: int) -> pa.Array:
    """n random lowercase hex ids of ``width`` bytes, as an Arrow string array."""
    raw = rng.integers(0, 256, (n, width), np.uint8)
    text = np.empty((n, 2 * width), np.uint8)
    text[:, 0::2] = _HEX[raw >> 4]
    text[:, 1::2] = _HEX[raw & 15]
    offsets = np.arange(0, (n + 1) * 2 * width, 2 * width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))


def _dictionary(values: list[str | None], codes: np.ndarray) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(values, pa.string())).cast(
        pa.string()
    )


def run_table(rng: np.random.Generator, runs: int, start_us: int, span_us: int) -> pa.Table:
    """``runs`` runs as a span table (SPAN_SCHEMA less tenant), run start times uniform."""
    n = runs * SPANS_PER_RUN
    step = np.tile(np.arange(SPANS_PER_RUN), runs)
    run = np.repeat(np.arange(runs), SPANS_PER_RUN)
    traces = hex_ids(rng, runs, 16).take(pa.array(run))
    span_ids = hex_ids(rng, n, 8)
    roots = span_ids.take(pa.array(run * SPANS_PER_RUN))
    parent = pa.array(np.where(step == 0, None, roots.to_numpy(zero_copy_only=False)), pa.string())
    run_start = start_us + rng.integers(0, span_us, runs)
    duration_ms = np.round(rng.lognormal(7.0, 0.6, n), 3)  # ~1.1 s median
    run_duration = duration_ms.reshape(runs, SPANS_PER_RUN).sum(axis=1)
    duration_ms[step == 0] = run_duration
    start = np.repeat(run_start, SPANS_PER_RUN) + step * 1_000
    end = start + (duration_ms * 1000).astype(np.int64)

    agent = rng.integers(0, AGENTS, runs)
    user = np.where(rng.random(runs) < 0.1, agent, rng.integers(0, USERS, runs))  # owners run them too
    outcome = rng.random(runs)
    failure = np.where(outcome < 0.09, rng.integers(0, len(FAILURES), runs), -1)
    degraded = (outcome >= 0.09) & (outcome < 0.13)
    run_failure = np.repeat(failure, SPANS_PER_RUN)
    is_run = step == 0
    is_tool = step == 2
    failure_code = np.where(is_run & (run_failure >= 0), run_failure, -1)
    failure_code = np.where(is_tool & np.repeat(degraded, SPANS_PER_RUN), 2, failure_code)
    failure_type = _dictionary([f for f, _ in FAILURES], np.maximum(failure_code, 0))
    failure_type = pa.array(
        np.where(failure_code >= 0, failure_type.to_numpy(zero_copy_only=False), None), pa.string()
    )
    number = rng.integers(1000, 99999, n)
    messages = []
    for code, n_value in zip(failure_code.tolist(), number.tolist(), strict=True):
        template = FAILURES[code][1] if code >= 0 else None
        messages.append(template.format(n=n_value) if template else None)
    status = np.where((failure_code >= 0) & (failure_code != 3), "error", "ok")

    agent_of_span = np.repeat(agent, SPANS_PER_RUN)
    agent_ids = [f"agent-{a:02d}" for a in range(AGENTS)]
    owners = [f"user{a}@acme.com" for a in range(AGENTS)]
    users = [f"user{u}@acme.com" for u in range(USERS)]
    on_run = np.where(is_run, agent_of_span, -1)

    def on_run_only(values: list[str], codes: np.ndarray) -> pa.Array:
        full = _dictionary(values, np.maximum(codes, 0)).to_numpy(zero_copy_only=False)
        return pa.array(np.where(codes >= 0, full, None), pa.string())

    models = np.where((step == 1) | (step == 4), rng.integers(0, 3, n), -1)
    tokens_in = np.where(models >= 0, rng.integers(200, 4000, n), 0)
    tokens_out = np.where(models >= 0, rng.integers(20, 800, n), 0)
    has_tokens = models >= 0
    columns = {
        "trace_id": traces,
        "span_id": span_ids,
        "parent_span_id": parent,
        "service_name": pa.array(np.full(n, "bench-agents"), pa.string()),
        "scope_name": pa.array(np.full(n, "bench"), pa.string()),
        "name": _dictionary(list(_NAMES), step),
        "kind": pa.array(np.full(n, "internal"), pa.string()),
        "operation": _dictionary(list(_OPERATIONS), step),
        "start_time": pa.array(start, pa.timestamp("us", tz="UTC")),
        "end_time": pa.array(end, pa.timestamp("us", tz="UTC")),
        "start_time_unix_nano": pa.array(start * 1000, pa.int64()),
        "end_time_unix_nano": pa.array(end * 1000, pa.int64()),
        "duration_ms": pa.array(duration_ms, pa.float64()),
        "status": pa.array(status, pa.string()),
        "status_message": pa.array(messages, pa.string()),
        "agent_id": on_run_only(agent_ids, on_run),
        "agent_name": on_run_only(agent_ids, on_run),
        "agent_name_derived": pa.array(np.zeros(n, bool), pa.bool_(), mask=~is_run),
        "agent_version": pa.nulls(n, pa.string()),
        "agent_owner": on_run_only(owners, on_run),
        "user_id": on_run_only(users, np.where(is_run, np.repeat(user, SPANS_PER_RUN), -1)),
        "session_id": pa.nulls(n, pa.string()),
        "model": on_run_only(["gpt-4o", "claude-sonnet-4", "gemini-2.5-pro"], models),
        "provider": pa.nulls(n, pa.string()),
        "input_tokens": pa.array(np.where(has_tokens, tokens_in, 0), pa.int64(), mask=~has_tokens),
        "output_tokens": pa.array(np.where(has_tokens, tokens_out, 0), pa.int64(), mask=~has_tokens),
        "cached_tokens": pa.nulls(n, pa.int64()),
        "total_tokens": pa.array(tokens_in + tokens_out, pa.int64(), mask=~has_tokens),
        "cost_usd": pa.array((tokens_in * 2.5 + tokens_out * 10) / 1e6, pa.float64(), mask=~has_tokens),
        "tool_name": on_run_only(["create_ticket"], np.where(is_tool, 0, -1)),
        "error_type": pa.nulls(n, pa.string()),
        "error_message": pa.array(messages, pa.string()),
        "failure_type": failure_type,
        "input_text": on_run_only(["How do I file an expense report?"], np.where(is_run, 0, -1)),
        "output_text": pa.nulls(n, pa.string()),
        "synthetic": pa.array(np.zeros(n, bool)),
        "eval_run_id": pa.nulls(n, pa.string()),
        "eval_case_id": pa.nulls(n, pa.string()),
        "attributes": pa.array(np.full(n, "{}"), pa.string()),
        "resource_attributes": pa.array(np.full(n, '{"service.name":"bench-agents"}'), pa.string()),
        "events": pa.nulls(n, pa.string()),
    }
    schema = pa.schema([f for f in SPAN_SCHEMA if f.name != "tenant"])
    return pa.Table.from_pydict(columns, schema=schema)


def generate(data_dir: Path, spans: int, days: int, end_us: int, seed: int = 7) -> int:
    """Write ``spans`` spans ending at ``end_us`` (µs since the epoch), spread over ``days``;
    returns the number written. Runs go to 2 tenants (80/20), one partition per tenant and day."""
    rng = np.random.default_rng(seed)
    day_us = 86_400_000_000
    first_day = end_us // day_us - days + 1
    runs_per_day = spans // SPANS_PER_RUN // days
    written = 0
    for d in range(days):
        day_start = (first_day + d) * day_us
        length = min(day_us, end_us - day_start)
        table = run_table(rng, runs_per_day, day_start, length)
        date = np.datetime64(day_start, "us").astype("datetime64[D]")
        share = {"acme": 0.8, "globex": 0.2}
        offset = 0
        for tenant, fraction in share.items():
            rows = round(runs_per_day * fraction) * SPANS_PER_RUN
            part = table.slice(offset, rows)
            offset += rows
            directory = data_dir / "spans" / f"tenant={tenant}" / f"date={date}"
            directory.mkdir(parents=True, exist_ok=True)
            for i, start in enumerate(range(0, part.num_rows, FILE_ROWS)):
                pq.write_table(
                    part.slice(start, FILE_ROWS), directory / f"bench-{i:04d}.parquet", compression="zstd"
                )
            written += part.num_rows
    return written
