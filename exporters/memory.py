"""The ``memory`` exporter: keeps every batch in a list. The test double beside ``parquet``."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pyarrow as pa

from core.component import BaseComponent, ExporterSettings
from core.configmodel import STRICT
from core.model import LOG_SCHEMA, SPAN_SCHEMA

TYPE = "memory"


@dataclass(frozen=True)
class Config:
    __pydantic_config__ = STRICT

    def validate(self) -> list[str]:
        return []


class InMemoryExporter(BaseComponent):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.batches: list[pa.Table] = []
        self.log_batches: list[pa.Table] = []
        self.is_shutdown = False

    def consume(self, batch: pa.Table) -> None:
        with self._lock:
            self.batches.append(batch)

    def consume_logs(self, rows: pa.Table) -> None:
        with self._lock:
            self.log_batches.append(rows)

    def logs(self) -> pa.Table:
        with self._lock:
            return pa.concat_tables(self.log_batches) if self.log_batches else LOG_SCHEMA.empty_table()

    def table(self) -> pa.Table:
        with self._lock:
            return pa.concat_tables(self.batches) if self.batches else SPAN_SCHEMA.empty_table()

    def clear(self) -> None:
        with self._lock:
            self.batches.clear()
            self.log_batches.clear()

    def shutdown(self) -> None:
        self.is_shutdown = True


def create(config: Config, settings: ExporterSettings) -> InMemoryExporter:
    return InMemoryExporter()
