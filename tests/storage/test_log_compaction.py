"""Log partitions are merged (deduplicated on the record digest, sorted by time) and expire with
retention, like span partitions; readers see the inputs or the merged file, never both."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from core.component import ExporterSettings
from core.model import OtlpRecord
from exporters import parquet
from processors.normalize.logs import log_rows
from storage.catalog import connect, live_files
from storage.compaction.compactor import CompactionConfig, Compactor
from storage.layout import LOGS

DAY = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)


def logs_record(tenant: str, start: int, count: int, day: dt.datetime = DAY) -> OtlpRecord:
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    base = int(day.timestamp() * 1e9)
    for i in range(start, start + count):
        item = scope.log_records.add(time_unix_nano=base + i * 1_000_000_000)
        item.body.string_value = f"line {i}"
    return OtlpRecord.from_logs_request(request, tenant)


def write(data: Path, *records: OtlpRecord) -> None:
    exporter = parquet.create(parquet.Config(), ExporterSettings("parquet", data))
    for record in records:
        exporter.consume_logs(log_rows([record]))


def test_small_log_files_merge_into_one_without_duplicates(tmp_path: Path) -> None:
    # Five flushes of one past day, the third repeating two records of the second (a replay).
    write(
        tmp_path,
        logs_record("acme", 0, 3),
        logs_record("acme", 3, 3),
        logs_record("acme", 4, 4),
        logs_record("acme", 8, 2),
        logs_record("acme", 10, 1),
        logs_record("globex", 0, 2),
        logs_record("globex", 2, 2),
    )
    assert len(live_files(tmp_path, LOGS)) == 7
    compactor = Compactor(CompactionConfig(worker="inline", grace=0), tmp_path)
    now = (DAY + dt.timedelta(days=2)).timestamp()
    stats = compactor.run_once(now)
    assert (stats.log_merges, stats.duplicates_removed) == (2, 2)
    live = live_files(tmp_path, LOGS)
    assert [Path(f).parent.parent.name for f in live] == ["tenant=acme", "tenant=globex"]
    con = connect(tmp_path)
    bodies = con.execute("SELECT body FROM logs WHERE tenant = 'acme' ORDER BY time").fetchall()
    assert [b for (b,) in bodies] == [f"line {i}" for i in range(11)]
    compactor.run_once(now + 1)  # past the grace: the inputs are gone
    files = sorted(p.name for p in (tmp_path / LOGS).rglob("*.parquet"))
    assert len(files) == 2 and all(name.startswith("compact-") for name in files)
    assert not list((tmp_path / LOGS).rglob("*.json"))


def test_today_waits_for_min_files_and_retention_expires_old_log_days(tmp_path: Path) -> None:
    today = DAY + dt.timedelta(days=40)
    write(
        tmp_path,
        logs_record("acme", 0, 1),
        logs_record("acme", 1, 1, today),
        logs_record("acme", 2, 1, today),
    )
    config = CompactionConfig(worker="inline", grace=0, min_files=3, retention=30 * 86400)
    stats = Compactor(config, tmp_path).run_once(today.timestamp() + 3600)
    assert stats.log_merges == 0  # two files today, fewer than min_files
    assert [d.name for d in sorted((tmp_path / LOGS / "tenant=acme").iterdir())] == ["date=2026-12-30"]
    con = connect(tmp_path)
    assert con.execute("SELECT count(*) FROM logs").fetchone() == (2,)
