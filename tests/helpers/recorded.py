"""Recordings of real instrumentation libraries (``tests/fixtures/instrumentations``), stored in
process through the real pipelines (normalize, classify, the Parquet exporter) as a server with
the default config would store them, and read back with the catalog: every span row and the
``runs`` view.

``python -m tests.helpers.recorded openai_agents/model_error ...`` prints what agentwatch makes
of recordings: the span columns and the run.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from storage.catalog import connect
from tests.helpers.store import store_request

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "instrumentations" / "recorded"
"""``<recorder>/<scenario>.pb``: the OTLP export request a library sent."""

Row = dict[str, Any]


@dataclass(frozen=True)
class Stored:
    """One recording as stored: its data directory, its span rows (by start time) and runs."""

    data_dir: Path
    spans: list[Row]
    runs: list[Row]

    @property
    def traces(self) -> int:
        """How many traces the recording's spans belong to."""
        return len({s["trace_id"] for s in self.spans})

    def span_name(self, span_id: str | None) -> str | None:
        """The name of the stored span ``span_id`` (a run's failing span), None if none."""
        names = [s["name"] for s in self.spans if s["span_id"] == span_id]
        return names[0] if names else None


def recordings(*recorders: str) -> list[str]:
    """Every ``<recorder>/<scenario>`` recorded for ``recorders``."""
    return sorted(f"{r}/{p.stem}" for r in recorders for p in (RECORDED / r).glob("*.pb"))


def store_recording(root: Path, recording: str, capture_text: bool = True) -> Stored:
    """Store ``recording`` (``<recorder>/<scenario>``) under ``root/data`` with the default
    config (``capture_text: false`` when told) and read it back."""
    body = (RECORDED / f"{recording}.pb").read_bytes()
    request = ExportTraceServiceRequest.FromString(body)
    count = sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
    config = root / "agentwatch.yaml"
    text = "" if capture_text else "processors:\n  normalize:\n    capture_text: false\n"
    config.write_text(f"storage:\n  data_dir: {root / 'data'}\n{text}")
    assert store_request(config, body, count) == count
    con = connect(root / "data")
    try:
        spans = _dicts(con.execute("SELECT * FROM spans ORDER BY start_time_unix_nano"))
        runs = _dicts(con.execute("SELECT * FROM runs"))
    finally:
        con.close()
    return Stored(root / "data", spans, runs)


def columns(rows: Iterable[Row], names: tuple[str, ...]) -> Counter[tuple[Any, ...]]:
    """The rows' values of ``names``, as a multiset (ids and times change with each recording)."""
    return Counter(tuple(row[c] for c in names) for row in rows)


def found_in_parquet(data_dir: Path, markers: Iterable[str]) -> list[tuple[str, str, str]]:
    """``(file, column, marker)`` for every string value of every Parquet file under
    ``data_dir`` (spans, run partials: every column, attributes and events included) holding
    one of ``markers``."""
    markers = tuple(markers)
    hits: list[tuple[str, str, str]] = []
    for path in sorted(data_dir.rglob("*.parquet")):
        table = pq.read_table(path)
        for name in table.column_names:
            values = list(_strings(table.column(name).to_pylist()))
            hits += [(path.name, name, m) for m in markers if any(m in v for v in values)]
    return hits


def _strings(value: Any) -> Iterable[str]:
    """Every string in ``value``, inside lists and structs too (run partials nest them)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _dicts(cursor: Any) -> list[Row]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


DUMPED_SPAN_COLUMNS = (
    "name", "kind", "operation", "agent_name", "agent_id", "tool_name", "model", "provider", "input_tokens",
    "output_tokens", "cached_tokens", "total_tokens", "status", "error_type", "error_message", "failure_type",
    "input_text", "output_text", "user_id", "session_id", "span_id", "parent_span_id",
)  # fmt: skip
DUMPED_RUN_COLUMNS = (
    "name", "outcome", "agent_name", "agent_id", "failure_type", "failing_span_id", "error_message", "tool_calls",
    "tool_errors", "input_tokens", "output_tokens", "cached_tokens", "total_tokens", "models", "agents",
)  # fmt: skip


def main(names: list[str]) -> None:
    """Print the span columns and the run of each recording named (``<recorder>/<scenario>``)."""
    for recording in names:
        with tempfile.TemporaryDirectory() as root:
            found = store_recording(Path(root), recording)
        print(f"== {recording}")
        for span in found.spans:
            print("  span", {c: span[c] for c in DUMPED_SPAN_COLUMNS if span[c] is not None})
        for run in found.runs:
            print("  run ", {c: run[c] for c in DUMPED_RUN_COLUMNS})


if __name__ == "__main__":
    main(sys.argv[1:])
