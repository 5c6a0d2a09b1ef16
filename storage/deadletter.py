"""Quarantine for acknowledged spans that no pipeline can convert.

The receivers validate at the door everything conversion is known to need, so this should stay
empty. If a record still makes a pipeline fail every time (a bug, or a value nobody foresaw),
the drain isolates it by bisection and hands it here with the reason, so it never holds up the
spans it was batched with. Each quarantined piece is one JSON line in
``<data_dir>/deadletter/deadletter-<YYYY-MM-DD>.jsonl``::

    {"time": "2026-11-30T17:00:00Z", "pipeline": "traces", "receiver": "otlp", "tenant": null,
     "spans": 1, "reason": "ValueError: ...", "payload": "<base64 ExportTraceServiceRequest>"}

``payload`` is an OTLP protobuf request: fix what it needs and send it again to any receiver.
The line is fsynced before the drain releases the write-ahead log past it.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from pathlib import Path

import orjson

from core.model import OtlpRecord

log = logging.getLogger("agentwatch.deadletter")
DEADLETTER = "deadletter"


class DeadLetters:
    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / DEADLETTER
        self._lock = threading.Lock()
        self.records = 0
        self.spans = 0

    def quarantine(self, pipeline: str, record: OtlpRecord, reason: str) -> Path:
        now = time.time()
        line = orjson.dumps(
            {
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                "pipeline": pipeline,
                "receiver": record.receiver,
                "tenant": record.tenant,
                "spans": record.spans,
                "reason": reason,
                "payload": base64.b64encode(record.payload).decode(),
            }
        )
        path = self.directory / f"deadletter-{time.strftime('%Y-%m-%d', time.gmtime(now))}.jsonl"
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(path, "ab") as handle:
                handle.write(line + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            self.records += 1
            self.spans += record.spans
        log.error(
            "quarantined %d span(s) of receiver %s that pipeline %s cannot convert (%s) in %s",
            record.spans,
            record.receiver,
            pipeline,
            reason,
            path,
        )
        return path


def read_quarantined(path: Path) -> list[dict[str, object]]:
    """The entries of one dead-letter file, payloads decoded back to bytes."""
    entries = []
    for line in path.read_bytes().splitlines():
        entry = orjson.loads(line)
        entry["payload"] = base64.b64decode(entry["payload"])
        entries.append(entry)
    return entries
