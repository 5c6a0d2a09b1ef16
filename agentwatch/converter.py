"""Where committed log records become rows: in this process, or in a worker process.

Decoding attributes and normalising is the expensive part of ingest (tens of microseconds a
span in Python). In ``process`` mode (the default) it runs in one spawned worker process that
owns the processors and exporters, so it gets a core of its own instead of sharing the
receivers' GIL; the worker is sent the logged bytes, which it decodes itself. ``inline`` mode
runs the same pipelines on the drain's thread, which tests use to inspect in-memory exporters.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.util
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Protocol

from agentwatch.config import AgentwatchConfig
from agentwatch.isolation import pieces
from agentwatch.pipeline import Assembly, assemble
from core import supervision
from core.model import OtlpRecord, Signal

log = logging.getLogger("agentwatch.converter")


@dataclass(frozen=True)
class Converted:
    """What a conversion hands back: the components' counters since the last call
    (``Counted``) and the health digest of what was stored (``health.digest``; None: nothing)."""

    counts: dict[str, int]
    digest: bytes | None = None


class Converter(Protocol):
    def start(self) -> None:
        """Start converting; may return before the converter is warm (``ready``): records handed
        to ``convert`` meanwhile wait for it."""

    def ready(self) -> bool:
        """Whether the converter is warm: conversions start at once."""

    def convert(self, pipeline: int, records: list[OtlpRecord]) -> Converted:
        """Run ``records`` through pipeline number ``pipeline``; return once exporters committed,
        with the components' counters since the last call and the digest of what was stored."""

    def shutdown(self) -> None: ...


def consume_in_pieces(assembly: Assembly, pipeline: int, records: list[OtlpRecord], max_spans: int) -> None:
    """Run ``records`` through a pipeline at most ``max_spans`` spans (or log records) at a time
    (bounded memory)."""
    for group in pieces(records, max_spans):
        assembly.pipelines[pipeline].consume_records(group)


class InlineConverter:
    def __init__(self, assembly: Assembly, max_spans: int = 1 << 62) -> None:
        self.assembly = assembly
        self.max_spans = max_spans

    def start(self) -> None:
        self.assembly.start()

    def ready(self) -> bool:
        return True

    def convert(self, pipeline: int, records: list[OtlpRecord]) -> Converted:
        consume_in_pieces(self.assembly, pipeline, records, self.max_spans)
        return Converted(self.assembly.take_counts(), self.assembly.take_digest())

    def shutdown(self) -> None:
        self.assembly.shutdown()


# -- the worker process's side -----------------------------------------------------------------
_worker_assembly: Assembly | None = None
_worker_max_spans = 1 << 62

Wire = list[tuple[str | None, str, bytes, int, Signal]]


def _exit_with_parent(parent: int) -> None:
    """A worker must not outlive a server that was killed (``kill -9`` runs no cleanup).

    Whatever it was converting is still in the write-ahead log and is replayed on restart, and
    files only ever appear by atomic rename, so stopping mid-batch loses and corrupts nothing.
    """
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(1)


def _init_worker(config: AgentwatchConfig, log_level: int, parent: int) -> None:
    global _worker_assembly, _worker_max_spans
    threading.Thread(target=_exit_with_parent, args=(parent,), name="parent-watch", daemon=True).start()
    # The parent decides when this worker flushes: signals sent to the server's process group
    # (Ctrl-C, a supervisor's SIGTERM to the group) must not kill it mid-batch.
    os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s[worker]: %(message)s")
    _worker_assembly = assemble(config)
    _worker_assembly.start()
    _worker_max_spans = config.storage.max_batch_spans
    # Runs when the pool tells this worker to exit: flush and shut down its own components.
    multiprocessing.util.Finalize(None, _shutdown_worker, exitpriority=10)


def _ready() -> bool:
    return _worker_assembly is not None


def _convert(pipeline: int, wire: Wire) -> Converted:
    assert _worker_assembly is not None
    records = [
        OtlpRecord(payload, tenant, receiver, n, signal) for tenant, receiver, payload, n, signal in wire
    ]
    consume_in_pieces(_worker_assembly, pipeline, records, _worker_max_spans)
    return Converted(_worker_assembly.take_counts(), _worker_assembly.take_digest())


def _shutdown_worker() -> None:
    if _worker_assembly is not None:
        _worker_assembly.shutdown()


class ProcessConverter:
    """Converts in ``storage.converter_workers`` spawned worker processes.

    ``start`` returns at once: the workers import and warm up (numba kernels, the pipelines)
    while the receivers already accept and log exports; ``ready`` says when one is warm. A
    worker that fails to start is reported like any dying internal thread
    (``core.supervision``): the service says not ready and exits for a restart.
    """

    def __init__(self, config: AgentwatchConfig) -> None:
        self._config = config
        self._workers = config.storage.converter_workers
        self._pool: ProcessPoolExecutor | None = None
        self._warming: list[Future[bool]] = []
        self._stopping = False
        self._lock = threading.Lock()

    def _new_pool(self, wait: bool = True) -> ProcessPoolExecutor:
        # spawn, not fork: the parent runs gRPC threads, which must not be forked.
        pool = ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self._config, logging.getLogger().getEffectiveLevel(), os.getpid()),
        )
        self._warming = [pool.submit(_ready) for _ in range(self._workers)]
        if wait:
            for warm in self._warming:
                warm.result()
        else:
            for warm in self._warming:
                warm.add_done_callback(self._report_failed_start)
        return pool

    def start(self) -> None:
        """Start the workers (once: a second call does nothing)."""
        if self._pool is None:
            self._pool = self._new_pool(wait=False)

    def ready(self) -> bool:
        """One warm worker converts: the service is ready (the others join as they warm up; one
        that fails to start stops the service, ``_report_failed_start``)."""
        return any(w.done() and not w.cancelled() and w.exception() is None for w in self._warming)

    def _report_failed_start(self, warm: Future[bool]) -> None:
        if self._stopping or warm.cancelled() or (exc := warm.exception()) is None:
            return  # warm, or stopped while warming up (a SIGTERM during start-up)
        supervision.crashed("converter worker start-up", exc)

    def convert(self, pipeline: int, records: list[OtlpRecord]) -> Converted:
        assert self._pool is not None
        wire: Wire = [(r.tenant, r.receiver, r.payload, r.spans, r.signal) for r in records]
        try:
            return self._pool.submit(_convert, pipeline, wire).result()
        except BrokenProcessPool:
            # A worker died (killed, out of memory). The batch is still in the log: start new
            # workers (once, whichever caller gets here first) and let the caller retry.
            with self._lock:
                if self._pool is not None and self._pool._broken:
                    log.error("a converter worker process died; starting new ones")
                    self._pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = self._new_pool()
            raise

    def shutdown(self) -> None:
        self._stopping = True
        if self._pool is None:
            return
        self._pool.shutdown(wait=True)  # each worker's finalizer flushes its components
        self._pool = None
