"""The ``parquet`` exporter: canonical span rows → zstd Parquet, partitioned by tenant and day.

    exporters:
      parquet:
        compression: zstd        # zstd | snappy | gzip | none
        compression_level: 3

Files land in ``<data_dir>/spans/tenant=<t>/date=<YYYY-MM-DD>/part-*.parquet``; ``tenant``
and ``date`` are hive partition columns, so they are not repeated inside the files. Each call
writes one file per partition from the whole Arrow batch, never row by row, and then the file's
run roll-up partials (``storage.runparts``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from agentwatch.component import BaseComponent
from agentwatch.configmodel import STRICT
from agentwatch.pipeline import ExporterSettings
from storage.layout import SPANS, table_dir, write_atomically
from storage.runparts import PartsWriter

TYPE = "parquet"


@dataclass(frozen=True)
class Config:
    __pydantic_config__ = STRICT
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    compression_level: int | None = 3
    """zstd level; higher is smaller and slower."""

    def validate(self) -> list[str]:
        if (
            self.compression_level is not None
            and self.compression == "zstd"
            and not 1 <= self.compression_level <= 22
        ):
            return ["compression_level: zstd levels run from 1 to 22"]
        return []


def partitions(table: pa.Table) -> list[tuple[str, str, pa.Table]]:
    """Split a span table into (tenant, date, rows without the partition columns)."""
    dates = pc.strftime(table["start_time"], format="%Y-%m-%d")
    keyed = table.append_column("date", dates)
    keys = keyed.group_by(["tenant", "date"]).aggregate([])
    out = []
    for tenant, date in zip(keys["tenant"].to_pylist(), keys["date"].to_pylist(), strict=True):
        mask = pc.and_(pc.equal(keyed["tenant"], tenant), pc.equal(keyed["date"], date))
        rows = keyed.filter(mask).drop_columns(["tenant", "date"]).sort_by("start_time")
        out.append((tenant, date, rows))
    return out


class ParquetExporter(BaseComponent):
    def __init__(self, config: Config, data_dir: Path) -> None:
        self.config = config
        self.root = table_dir(data_dir, SPANS)
        self.parts = PartsWriter(data_dir)
        self.files_written = 0

    def consume(self, batch: pa.Table) -> None:
        if batch.num_rows == 0:
            return
        compression = "none" if self.config.compression == "none" else self.config.compression
        level = self.config.compression_level if compression == "zstd" else None
        for tenant, date, rows in partitions(batch):
            written = write_atomically(
                rows, self.root / f"tenant={tenant}" / f"date={date}", compression, level
            )
            self.parts.write(rows, written)  # after the file: partials never describe missing spans
            self.files_written += 1

    def shutdown(self) -> None:
        self.parts.close()


def create(config: Config, settings: ExporterSettings) -> ParquetExporter:
    return ParquetExporter(config, settings.data_dir)
