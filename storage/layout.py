"""Where tables live under the data directory (hive-partitioned Parquet)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SPANS = "spans"
RUN_PARTS = "run_parts"
LOGS = "logs"


def table_dir(data_dir: Path, table: str) -> Path:
    return data_dir / table


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temporaries(data_dir: Path) -> int:
    """Delete files a writer killed between write and rename left behind; call before writing."""
    stale = list(data_dir.rglob(".*.tmp")) if data_dir.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def write_atomically(
    table: pa.Table,
    directory: Path,
    compression: str,
    level: int | None,
    name: str | None = None,
    row_group_size: int | None = None,
) -> Path:
    """Write then rename, both fsynced, so a reader sees the whole file or none of it."""
    directory.mkdir(parents=True, exist_ok=True)
    name = name or f"part-{uuid.uuid4().hex}.parquet"
    tmp = directory / f".{name}.tmp"
    pq.write_table(
        table, tmp, compression=compression, compression_level=level, row_group_size=row_group_size
    )
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    final = directory / name
    os.replace(tmp, final)
    fsync_dir(directory)
    return final
