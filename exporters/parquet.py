"""The ``parquet`` exporter: canonical span rows → zstd Parquet, partitioned by tenant and day.

    exporters:
      parquet:
        compression: zstd        # zstd | snappy | gzip | none
        compression_level: 3

        max_dates_per_flush: 16  # per tenant; see below
        max_partitions_per_flush: 256  # in all, except that every tenant gets one; see below

Files land in ``<data_dir>/spans/tenant=<t>/date=<YYYY-MM-DD>/part-*.parquet``; ``tenant``
and ``date`` are hive partition columns, so they are not repeated inside the files. Each call
writes one file per partition from the whole Arrow batch, never row by row, and then the file's
run roll-up partials (``storage.runparts``).

``date`` is the span's UTC start date. Each partition costs a file (and its partials) per flush,
so a client sending spans dated on thousands of different days would make thousands of files
and hold up everyone's flush. A flush therefore opens at most ``max_dates_per_flush`` date
partitions per tenant: the dates with the most spans (ties: the most recent) keep their
partitions, and the spans of the rarer dates are written to the partition of the day they
arrived. Their ``start_time`` is untouched; only the file they live in differs. Normal traffic
(a day or two per flush) never reaches the bound.

Many tenants each within their date bound still multiply files, so a flush also opens at most
``max_partitions_per_flush`` partitions in all: past it, the largest (tenant, date) partitions
keep theirs and the others' spans go to their tenant's arrival-day partition. Every tenant keeps
a partition of its own, though: tenants never share a file (readers, read tokens and retention
select by the tenant directory), and every span handed to the exporter is acknowledged and must
be written now. So a flush holding more tenants than the bound writes one file per tenant, and
nothing here can bound that: without ingest tokens a client names any tenant it likes, and only
the batch size (``storage.max_batch_spans``) bounds the tenants of one flush.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from core.component import BaseComponent, ExporterSettings
from core.configmodel import STRICT
from storage.layout import LOGS, SPANS, table_dir, write_atomically
from storage.runparts import PartsWriter

TYPE = "parquet"


@dataclass(frozen=True)
class Config:
    __pydantic_config__ = STRICT
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    compression_level: int | None = 3
    """zstd level; higher is smaller and slower."""
    max_dates_per_flush: int = 16
    """Date partitions one flush opens per tenant; spans of rarer dates go to the arrival day's."""
    max_partitions_per_flush: int = 256
    """Partitions one flush opens in all, but never fewer than one per tenant: past it, spans of
    the smaller partitions go to their tenant's arrival-day partition."""

    def validate(self) -> list[str]:
        problems = []
        if (
            self.compression_level is not None
            and self.compression == "zstd"
            and not 1 <= self.compression_level <= 22
        ):
            problems.append("compression_level: zstd levels run from 1 to 22")
        if self.max_dates_per_flush < 1:
            problems.append("max_dates_per_flush: must be at least 1")
        if self.max_partitions_per_flush < 1:
            problems.append("max_partitions_per_flush: must be at least 1")
        return problems


def partition_dates(
    table: pa.Table,
    max_dates: int,
    today: str,
    max_partitions: int = 1 << 30,
    time_column: str = "start_time",
) -> pa.Array:
    """Each row's date partition: its start date, unless its tenant has too many dates in
    ``table`` or the table too many (tenant, date) pairs, in which case rows of the rarer dates
    get ``today``. At most ``max(max_partitions, tenants)`` partitions result."""
    dates = pc.strftime(table[time_column], format="%Y-%m-%d")
    counts = (
        pa.table({"tenant": table["tenant"], "date": dates})
        .group_by(["tenant", "date"])
        .aggregate([([], "count_all")])
    )
    by_tenant: dict[str, list[tuple[int, str]]] = {}
    for tenant, date, count in zip(
        counts["tenant"].to_pylist(), counts["date"].to_pylist(), counts["count_all"].to_pylist(), strict=True
    ):
        by_tenant.setdefault(tenant, []).append((count, date))
    # Per tenant, the dates that keep their partition: the most spans first, ties the most recent.
    kept = {
        tenant: {d for _, d in sorted(found, reverse=True)[:max_dates]} for tenant, found in by_tenant.items()
    }
    opened = sum(
        len(kept[t] | ({today} if len(found) > len(kept[t]) else set())) for t, found in by_tenant.items()
    )
    if opened > max_partitions:
        kept = _fewer_partitions(by_tenant, kept, today, max_partitions)
    moved = [(t, d) for t, found in by_tenant.items() for _, d in found if d not in kept[t] and d != today]
    if not moved:
        return dates
    tenant_date = pc.binary_join_element_wise(table["tenant"], dates, "\0")
    rare = pc.is_in(tenant_date, pa.array([f"{t}\0{d}" for t, d in moved]))
    return pc.if_else(rare, today, dates)


def _fewer_partitions(
    by_tenant: dict[str, list[tuple[int, str]]], kept: dict[str, set[str]], today: str, max_partitions: int
) -> dict[str, set[str]]:
    """The dates kept per tenant so that at most ``max(max_partitions, tenants)`` partitions open.

    A tenant with spans of one date keeps that date; one with several dates has its arrival-day
    partition (``today``) and, while the bound leaves room, its other kept dates, the largest
    first across tenants. Every tenant opens one partition, and the extra ones fit the bound."""
    out = {tenant: {found[0][1] if len(found) == 1 else today} for tenant, found in by_tenant.items()}
    extra = sorted(
        (count, date, tenant)
        for tenant, found in by_tenant.items()
        if len(found) > 1
        for count, date in found
        if date in kept[tenant] and date != today
    )[::-1]
    for _, date, tenant in extra[: max(max_partitions - len(by_tenant), 0)]:
        out[tenant].add(date)
    return out


def partitions(
    table: pa.Table,
    max_dates: int = 1 << 30,
    today: str | None = None,
    max_partitions: int = 1 << 30,
    time_column: str = "start_time",
) -> list[tuple[str, str, pa.Table]]:
    """Split a span (or log) table into (tenant, date, rows without the partition columns)."""
    today = today or time.strftime("%Y-%m-%d", time.gmtime())
    dates = partition_dates(table, max_dates, today, max_partitions, time_column)
    keyed = table.append_column("date", dates)
    keys = keyed.group_by(["tenant", "date"]).aggregate([])
    out = []
    for tenant, date in zip(keys["tenant"].to_pylist(), keys["date"].to_pylist(), strict=True):
        mask = pc.and_(pc.equal(keyed["tenant"], tenant), pc.equal(keyed["date"], date))
        rows = keyed.filter(mask).drop_columns(["tenant", "date"]).sort_by(time_column)
        out.append((tenant, date, rows))
    return out


class ParquetExporter(BaseComponent):
    def __init__(self, config: Config, data_dir: Path) -> None:
        self.config = config
        self.root = table_dir(data_dir, SPANS)
        self.logs_root = table_dir(data_dir, LOGS)
        self.parts = PartsWriter(data_dir)
        self.files_written = 0
        self.keep_parts = False
        """Keep the partials of each batch for ``take_parts`` (the health tap reads them, so the
        run partials of a batch are computed once)."""
        self._kept: list[pa.Table] = []

    def consume(self, batch: pa.Table) -> None:
        if batch.num_rows == 0:
            return
        compression, level = self._compression()
        dates, most = self.config.max_dates_per_flush, self.config.max_partitions_per_flush
        for tenant, date, rows in partitions(batch, dates, max_partitions=most):
            written = write_atomically(
                rows, self.root / f"tenant={tenant}" / f"date={date}", compression, level
            )
            parts = self.parts.parts_of(rows)
            self.parts.write(rows, written, parts)  # after the file: partials never describe missing spans
            self.files_written += 1
            if self.keep_parts:
                self._kept.append(
                    parts.append_column("tenant", pa.array([tenant] * parts.num_rows, pa.string()))
                )

    def consume_logs(self, rows: pa.Table) -> None:
        """Log rows (``core.model.LOG_SCHEMA``) → ``logs/tenant=<t>/date=<d>/*.parquet``, under the
        same partition bounds as spans (``date``: the UTC date of ``time``)."""
        if rows.num_rows == 0:
            return
        compression, level = self._compression()
        dates, most = self.config.max_dates_per_flush, self.config.max_partitions_per_flush
        for tenant, date, part in partitions(rows, dates, max_partitions=most, time_column="time"):
            write_atomically(part, self.logs_root / f"tenant={tenant}" / f"date={date}", compression, level)
            self.files_written += 1

    def _compression(self) -> tuple[str, int | None]:
        compression = "none" if self.config.compression == "none" else self.config.compression
        return compression, self.config.compression_level if compression == "zstd" else None

    def take_parts(self) -> pa.Table | None:
        """The partials (with ``tenant``) of what was written since the last call: one row per
        trace and file, so a trace split over two dates' files has two."""
        taken, self._kept = self._kept, []
        return pa.concat_tables(taken) if taken else None

    def shutdown(self) -> None:
        self.parts.close()


def create(config: Config, settings: ExporterSettings) -> ParquetExporter:
    return ParquetExporter(config, settings.data_dir)
