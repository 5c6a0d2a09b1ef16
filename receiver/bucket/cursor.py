"""Where reading a bucket stands, durably, and the file bad records are quarantined in.

The cursor is a journal under ``<data_dir>/bucket/<receiver>/``: one JSON line per commit, the
last line of an object winning, appended and fsynced. A line is committed only once every
record before its position is durable in the write-ahead log, so after a crash reading resumes
at or before the first record not yet durable, never after it. (Records between the last
commit and the crash are read again; the door's deduplication by record digest drops them,
since the same line always makes the same record.) A torn last line, from a crash while it was
written, is ignored. The journal is compacted, written whole to a temporary file then renamed,
when it holds many more lines than objects.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import orjson

from storage.layout import fsync_dir


@dataclass(frozen=True)
class Position:
    generation: str
    size: int
    offset: int = 0
    """Bytes read (of the decompressed stream, for a gzip object); rows, for Parquet."""
    line: int = 0
    """Lines (rows) read."""
    done: bool = False
    head: str = ""
    """A digest of the object's first bytes, for objects without a generation of their own."""


CURSOR = "cursor.jsonl"
QUARANTINE = "quarantine.jsonl"


def state_dir(data_dir: Path, receiver_id: str) -> Path:
    """Where a bucket receiver keeps its cursor and quarantine (its id made a file name)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in receiver_id)
    return data_dir / "bucket" / safe


class Cursor:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / CURSOR
        self.positions: dict[str, Position] = {}
        self._lines = 0
        directory.mkdir(parents=True, exist_ok=True)
        self._load()
        if self._lines > 2 * len(self.positions) + 1000 or self._torn:
            self._compact()
        self._file: IO[bytes] = open(self.path, "ab")  # noqa: SIM115 - held open for appends

    def _load(self) -> None:
        self._torn = False
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            for raw in f:
                try:
                    doc = orjson.loads(raw)
                    name = doc.pop("object")
                    self.positions[name] = Position(**doc)
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    self._torn = True  # a line cut by a crash: the commit did not happen
                    continue
                self._lines += 1

    def _compact(self) -> None:
        tmp = self.directory / f".{CURSOR}.tmp"
        with open(tmp, "wb") as f:
            for name, position in self.positions.items():
                f.write(_line(name, position))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.directory)
        self._lines = len(self.positions)
        self._torn = False

    def get(self, name: str) -> Position | None:
        return self.positions.get(name)

    def commit(self, name: str, position: Position) -> None:
        """Durable when this returns (appended and fsynced)."""
        if self.positions.get(name) == position:
            return
        self._file.write(_line(name, position))
        self._file.flush()
        os.fsync(self._file.fileno())
        self.positions[name] = position
        self._lines += 1
        if self._lines > 2 * len(self.positions) + 10_000:
            self._file.close()
            self._compact()
            self._file = open(self.path, "ab")  # noqa: SIM115

    def close(self) -> None:
        self._file.close()


def _line(name: str, position: Position) -> bytes:
    return orjson.dumps({"object": name, **asdict(position)}) + b"\n"


class Quarantine:
    """Bad records, each with where it was and why: one JSON line each, in ``quarantine.jsonl``.
    At most ``max_bytes`` of a record are kept; past ``max_file_bytes`` only the count grows."""

    def __init__(self, directory: Path, max_bytes: int = 4096, max_file_bytes: int = 64 << 20) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / QUARANTINE
        self.max_bytes = max_bytes
        self.max_file_bytes = max_file_bytes
        self.count = 0

    def add(self, obj: str, generation: str, line: int, offset: int, reason: str, data: bytes) -> None:
        self.count += 1
        with contextlib.suppress(FileNotFoundError):
            if self.path.stat().st_size > self.max_file_bytes:
                return
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "object": obj,
            "generation": generation,
            "line": line,
            "offset": offset,
            "reason": reason,
            "data": data[: self.max_bytes].decode("utf-8", "replace"),
        }
        with open(self.path, "ab") as f:
            f.write(orjson.dumps(entry) + b"\n")
