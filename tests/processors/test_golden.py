"""The normalize processor reproduces the golden tables exactly (every column, value and row).

The golden (tests/fixtures/golden/, see make_golden.py there) was captured from the original
per-span protobuf implementation: ~9,500 spans of demo traffic as the OpenTelemetry SDK sends
it plus bench-shaped requests, some with ingest-token tenants, under three configs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.model import SPAN_SCHEMA
from tests.fixtures.golden.make_golden import CONFIGS, batches, convert, read_records, table_path


def first_difference(actual: pa.Table, expected: pa.Table) -> str:
    """Where two tables differ, as a readable message (column, row, both values)."""
    if actual.schema != expected.schema:
        return f"schema differs:\n{actual.schema}\n!=\n{expected.schema}"
    if actual.num_rows != expected.num_rows:
        return f"{actual.num_rows} rows, expected {expected.num_rows}"
    problems = []
    for name in expected.column_names:
        got, want = actual[name].combine_chunks(), expected[name].combine_chunks()
        if got.equals(want):
            continue
        for row, (a, b) in enumerate(zip(got.to_pylist(), want.to_pylist(), strict=True)):
            if a != b or type(a) is not type(b):
                span = expected["span_id"][row].as_py()
                problems.append(f"{name}[{row}] (span {span}): {a!r} != expected {b!r}")
                break
    return "\n".join(problems) or "tables differ (chunking or metadata only?)"


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_to_table_equals_the_golden_table(config: str) -> None:
    records = read_records()
    assert len(batches(records)) > 1
    actual = convert(CONFIGS[config], records)
    golden = pq.read_table(table_path(config))
    # Columns added after the golden was captured; none of its spans carries them.
    for name in ("team", "org", "workspace", "project", "workflow", "cache_write_tokens"):
        if name not in golden.column_names:
            golden = golden.append_column(name, pa.nulls(golden.num_rows, SPAN_SCHEMA.field(name).type))
    expected = golden.select(SPAN_SCHEMA.names).cast(SPAN_SCHEMA)
    assert actual.schema.equals(SPAN_SCHEMA)
    assert actual.equals(expected), first_difference(actual, expected)


_NO_COMPILE_AFTER_START = """
from numba.core.registry import CPUDispatcher
from processors.normalize import attribute_json
from processors.normalize import kernels
from processors.normalize import processor as normalize
from processors.normalize import wire
from tests.fixtures.golden.make_golden import CONFIGS, convert, read_records

def versions():
    return {
        (module.__name__, name, str(signature))
        for module in (wire, kernels, attribute_json)
        for name, kernel in vars(module).items() if isinstance(kernel, CPUDispatcher)
        for signature in kernel.signatures
    }

normalize.create(normalize.Config(), None).start()
warm = versions()
for config in CONFIGS.values():
    convert(config, read_records())
late = versions() - warm
assert not late, f"compiled after start(): {sorted(late)}"
"""


@pytest.mark.process
def test_start_prepares_every_kernel_version_a_batch_uses() -> None:
    """A kernel called with other argument types (a strided column, a writable buffer) is
    compiled again, mid-batch, in seconds: start() must already have the one version used."""
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", _NO_COMPILE_AFTER_START], check=True, cwd=root, timeout=600)
