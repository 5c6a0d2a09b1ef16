"""Many small span files, fast: the golden pipeline output (real column shapes, ~1.1 KB a span)
replicated with fresh trace ids, written straight to a partition as the exporter would.

Used by the compaction tests and ``bench/compaction.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "spans.default.parquet"
DAY_US = 86_400_000_000


def template() -> pa.Table:
    """The golden spans without the partition column, sorted by start, with every column of
    today's ``SPAN_SCHEMA`` (those added after the golden was captured: null)."""
    from core.model import SPAN_SCHEMA

    golden = pq.read_table(GOLDEN)
    for name in SPAN_SCHEMA.names:
        if name not in golden.column_names:
            golden = golden.append_column(name, pa.nulls(golden.num_rows, SPAN_SCHEMA.field(name).type))
    return golden.select(SPAN_SCHEMA.names).cast(SPAN_SCHEMA).drop_columns(["tenant"]).sort_by("start_time")


def replica(base: pa.Table, number: int, day_start_us: int) -> pa.Table:
    """``base`` with trace ids unique to ``number`` and start times moved into the day."""
    prefix = f"{number:08x}"
    traces = pc.binary_join_element_wise(prefix, pc.utf8_slice_codeunits(base["trace_id"], 8), "")
    start = pc.cast(base["start_time"], pa.int64()).to_numpy()
    end = pc.cast(base["end_time"], pa.int64()).to_numpy()
    offset = (start - start.min() + number * 1_000_003) % (DAY_US - 3_600_000_000)
    new_start = day_start_us + offset
    new_end = new_start + (end - start)
    utc = pa.timestamp("us", tz="UTC")
    columns = {
        "trace_id": traces,
        "start_time": pa.array(new_start, utc),
        "end_time": pa.array(new_end, utc),
        "start_time_unix_nano": pa.array(new_start * 1000, pa.int64()),
        "end_time_unix_nano": pa.array(new_end * 1000, pa.int64()),
    }
    table = base
    for name, values in columns.items():
        index = table.schema.get_field_index(name)
        table = table.set_column(index, table.schema.field(index), values)
    return table


def write_small_files(
    partition: Path, spans: int, per_file: int, day_start_us: int, first_replica: int = 0
) -> list[Path]:
    """Write ``spans`` spans as files of at most ``per_file`` spans (sorted by start, like the
    exporter's), one golden replica after another: ~0.7 KB a span on disk in files of 1,000."""
    partition.mkdir(parents=True, exist_ok=True)
    base = template()
    written: list[Path] = []
    number = first_replica
    while spans > 0:
        chunk = replica(base, number, day_start_us).slice(0, spans)
        for start in range(0, chunk.num_rows, per_file):
            path = partition / f"part-{number:04d}-{start // per_file:06d}.parquet"
            rows = chunk.slice(start, per_file).sort_by("start_time")
            pq.write_table(rows, path, compression="zstd", compression_level=3)
            written.append(path)
        spans -= chunk.num_rows
        number += 1
    return written


def day_start(date: str) -> int:
    """Microseconds since the epoch at 00:00 UTC of ``date`` (YYYY-MM-DD)."""
    return int(np.datetime64(date, "us").astype(np.int64))
