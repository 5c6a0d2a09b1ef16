"""Process settings made at start: the soft open-files limit raised to the hard limit, and
glibc's allocator told to give large freed blocks back (``tune_malloc``).

Every connection costs a file descriptor; the common soft default (1024) is far below what the
receivers' ``max_connections`` allow, and running out stops every port at once. Go programs
(the Collector included) raise the soft limit the same way at start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import resource
from dataclasses import dataclass

log = logging.getLogger("core.proclimits")

_UNLIMITED_TARGETS = (1 << 20, 10240)
"""Tried in turn when the hard limit is "unlimited" (macOS refuses more than its OPEN_MAX)."""


@dataclass(frozen=True)
class FdLimit:
    """What ``raise_fd_limit`` found and did."""

    before: int
    soft: int
    hard: int
    problem: str | None = None

    def describe(self) -> str:
        hard = "unlimited" if self.hard == resource.RLIM_INFINITY else str(self.hard)
        if self.problem is not None:
            return f"open files limit stays at {self.before} (hard {hard}): {self.problem}"
        if self.soft == self.before:
            return f"open files limit {self.soft} (already the hard limit {hard})"
        return f"open files limit raised from {self.before} to {self.soft} (hard {hard})"


def _targets(hard: int) -> tuple[int, ...]:
    return _UNLIMITED_TARGETS if hard == resource.RLIM_INFINITY else (hard,)


def _report(result: FdLimit) -> FdLimit:
    if result.problem is not None:
        log.warning("%s", result.describe())
    else:
        log.log(logging.INFO if result.soft != result.before else logging.DEBUG, "%s", result.describe())
    return result


def raise_fd_limit() -> FdLimit:
    """Raise the soft RLIMIT_NOFILE to the hard limit; log and return what happened."""
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if before in (hard, resource.RLIM_INFINITY):
        return _report(FdLimit(before, before, hard))
    problem = ""
    for target in _targets(hard):
        if target <= before:  # an "unlimited" hard limit, and the soft one above our targets
            return _report(FdLimit(before, before, hard))
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            problem = str(exc)
            continue
        return _report(FdLimit(before, target, hard))
    return _report(FdLimit(before, before, hard, problem))


MMAP_THRESHOLD = 256 * 1024
"""Allocations from this size on are mapped and unmapped on their own (glibc ``M_MMAP_THRESHOLD``)."""
ARENA_MAX = 2
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_malloc() -> bool:
    """Make freed request bodies go back to the system (glibc only; elsewhere a no-op).

    glibc raises its mmap threshold each time a large mapped block is freed, up to 32 MiB, so
    after a few large requests every body is carved from the heap, whose freed pages are seldom
    returned: the process keeps its peak. A fixed threshold (which also turns the adjustment
    off) and two arenas keep RSS near what is in use. Set for this process with ``mallopt``
    and, through the environment glibc reads, for the worker processes it starts.
    """
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))
    os.environ.setdefault("MALLOC_ARENA_MAX", str(ARENA_MAX))
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_ARENA_MAX, ARENA_MAX))
    log.debug("malloc tuned: mmap threshold %d, %d arenas (%s)", MMAP_THRESHOLD, ARENA_MAX, ok)
    return ok
