"""Convert a batch so that no record can hold up the others.

A batch of acknowledged records normally converts in one call. When the call fails:

- for a reason of the disk, the filesystem or the machine (an ``OSError`` whose errno is in
  ``ENVIRONMENT_ERRNOS``: a full disk, a quota, an I/O error, a read-only or vanished data
  directory, no permission, out of memory or file descriptors), the same batch is retried with
  backoff until it goes through: it is not the records' fault, and every record would fail the
  same way, so nothing is set aside;
- for any other ``OSError`` (``EINVAL``, ``ENAMETOOLONG``, ``EFBIG``, none at all...), which
  may be a passing hiccup or may be the data's, the piece is retried with backoff up to
  ``MAX_OSERROR_ATTEMPTS`` (3) attempts in all; if it still fails, it is treated as the data's,
  as below, so a record that deterministically causes one cannot stall its batch for good;
- otherwise the batch is bisected: each half is converted on its own, down to single records
  and then to single spans, so everything that converts is stored. A single span that fails
  twice (once more, in case a converter worker died for a reason of its own) is quarantined
  with the reason.

Each piece is converted at most a few times, so a batch of n spans with one bad span costs about
2·log2(n) extra conversions of ever smaller pieces (with an ``OSError`` of the data's,
``MAX_OSERROR_ATTEMPTS`` conversions and 0.3 s of backoff for each failing piece).
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from core.model import OtlpRecord, Signal

log = logging.getLogger("agentwatch.isolation")

Convert = Callable[[list[OtlpRecord]], None]
Quarantine = Callable[[OtlpRecord, str], None]
MAX_BACKOFF = 10.0
MAX_OSERROR_ATTEMPTS = 3
"""Attempts at a piece failing with an ``OSError`` that is not the environment's before it is
bisected (and, alone, quarantined) like any failure of the data's."""

ENVIRONMENT_ERRNOS = frozenset(
    code
    for name in (
        "ENOSPC",  # no space left on the device
        "EDQUOT",  # disk quota exceeded
        "EIO",  # the disk's I/O error
        "EREMOTEIO",  # a remote filesystem's
        "EUCLEAN",  # the filesystem needs repair
        "EROFS",  # mounted read-only
        "ESTALE",  # a stale NFS handle
        "ENOENT",  # the data directory (or part of it) is gone
        "ENODEV",
        "ENXIO",
        "EACCES",  # no permission on the data directory
        "EPERM",
        "ENOMEM",  # the machine's resources
        "EMFILE",
        "ENFILE",
        "EAGAIN",
        "EINTR",
        "EBUSY",
        "ETIMEDOUT",
        "ENOLCK",
        "EDEADLK",
        "ENOTCONN",
        "EPIPE",
        "ECONNRESET",
    )
    if (code := getattr(errno, name, None)) is not None
)
"""``OSError`` errnos that say the disk, the filesystem or the machine failed, never the data:
retried whole for as long as they last."""


@dataclass
class IsolationStats:
    failures: int = 0
    """Conversion calls that failed (each is retried, bisected or quarantined)."""
    quarantined_records: int = 0
    quarantined_spans: int = 0


def is_environmental(exc: BaseException) -> bool:
    """Failures that are not the data's fault: retry the same batch, never set anything aside."""
    return isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS


_LAYOUT: dict[Signal, tuple[str, str, str]] = {
    "traces": ("resource_spans", "scope_spans", "spans"),
    "logs": ("resource_logs", "scope_logs", "log_records"),
}
"""Where a request of each signal keeps its resources, their scopes and the scopes' items."""


def split_record(record: OtlpRecord) -> tuple[OtlpRecord, OtlpRecord]:
    """Two records holding the first and the second half of ``record``'s spans (or log records)."""
    request: Message = record.parse() if record.signal == "traces" else record.parse_logs()
    resources, scopes, items = _LAYOUT[record.signal]
    found = [
        (r, s, item)
        for r, resource in enumerate(getattr(request, resources))
        for s, scope in enumerate(getattr(resource, scopes))
        for item in getattr(scope, items)
    ]
    half = len(found) // 2
    return _subset(request, found[:half], record), _subset(request, found[half:], record)


def _subset(request: Message, chosen: list[tuple[int, int, Message]], like: OtlpRecord) -> OtlpRecord:
    """A request of ``like``'s signal holding the ``chosen`` items of ``request``, under their own
    resources and scopes."""
    resources_field, scopes_field, items_field = _LAYOUT[like.signal]
    out = type(request)()
    resources: dict[int, Any] = {}
    scopes: dict[tuple[int, int], Any] = {}
    for r, s, item in chosen:
        source = getattr(request, resources_field)[r]
        if r not in resources:
            resources[r] = getattr(out, resources_field).add(
                resource=source.resource, schema_url=source.schema_url
            )
        if (r, s) not in scopes:
            scope = getattr(source, scopes_field)[s]
            scopes[(r, s)] = getattr(resources[r], scopes_field).add(
                scope=scope.scope, schema_url=scope.schema_url
            )
        getattr(scopes[(r, s)], items_field).append(item)
    return OtlpRecord(out.SerializeToString(), like.tenant, like.receiver, len(chosen), like.signal)


def pieces(records: list[OtlpRecord], max_spans: int) -> Iterator[list[OtlpRecord]]:
    """``records`` in groups of at most ``max_spans`` spans; a record holding more is split.

    What one conversion holds in memory grows with its spans, so a converter takes a batch in
    such pieces: one client's 200,000-span request costs no more memory than a full batch.
    """
    group: list[OtlpRecord] = []
    spans = 0
    for record in records:
        for piece in _at_most(record, max_spans):
            if group and spans + piece.spans > max_spans:
                yield group
                group, spans = [], 0
            group.append(piece)
            spans += piece.spans
    if group:
        yield group


def _at_most(record: OtlpRecord, max_spans: int) -> Iterator[OtlpRecord]:
    if record.spans <= max_spans:
        yield record
        return
    for half in split_record(record):
        yield from _at_most(half, max_spans)


class Isolator:
    def __init__(
        self,
        convert: Convert,
        quarantine: Quarantine,
        stats: IsolationStats | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._convert = convert
        self._quarantine = quarantine
        self.stats = stats or IsolationStats()
        self._sleep = sleep

    def run(self, records: list[OtlpRecord]) -> None:
        """Return once every span of ``records`` is converted or quarantined."""
        # (group, failures of its data's, OSError attempts that failed, not the environment's)
        stack: list[tuple[list[OtlpRecord], int, int]] = [(records, 0, 0)]
        delay = 0.1
        while stack:
            group, failures, attempts = stack.pop()
            try:
                self._convert(group)
                delay = 0.1
                continue
            except Exception as exc:  # the pieces are sorted out below; nothing is dropped
                self.stats.failures += 1
                reason = f"{type(exc).__name__}: {exc}"
                if is_environmental(exc):
                    log.error("conversion failed (%s); retrying the batch in %.1fs", reason, delay)
                    self._sleep(delay)
                    delay = min(delay * 2, MAX_BACKOFF)
                    stack.append((group, failures, attempts))
                    continue
                if isinstance(exc, OSError):
                    attempts += 1
                    if attempts < MAX_OSERROR_ATTEMPTS:
                        wait = 0.1 * 2 ** (attempts - 1)
                        log.error("conversion failed (%s); retrying in %.1fs", reason, wait)
                        self._sleep(wait)
                        stack.append((group, failures, attempts))
                        continue
                    log.error(
                        "conversion failed %d times (%s), not for a reason of the disk's: "
                        "treating it as the data's",
                        attempts,
                        reason,
                    )
            stack.extend(reversed(self._pieces(group, failures, attempts, reason)))

    def _pieces(
        self, group: list[OtlpRecord], failures: int, attempts: int, reason: str
    ) -> list[tuple[list[OtlpRecord], int, int]]:
        """What to try next after ``group`` failed for a reason in its data."""
        if len(group) > 1:
            middle = len(group) // 2
            log.warning("a batch of %d requests failed (%s); converting its halves apart", len(group), reason)
            return [(group[:middle], 0, 0), (group[middle:], 0, 0)]
        record = group[0]
        if record.spans > 1:
            first, second = split_record(record)
            return [([first], 0, 0), ([second], 0, 0)]
        if failures == 0:
            # Once more (a worker may have died for a reason of its own); an OSError already
            # tried MAX_OSERROR_ATTEMPTS times is not tried that often again.
            return [(group, 1, attempts)]
        self._quarantine(record, reason)
        self.stats.quarantined_records += 1
        self.stats.quarantined_spans += record.spans
        return []
