"""Where compaction's heavy work runs: a child process, so its memory can't take the server down.

    Compactor ── job (JSON, stdin) ──► python -m storage.compaction.worker
              ◄── a JSON line per task done, or failed (stdout)

A job is a list of tasks: merges of span files (``storage.compaction.spanmerge``) and partials to build for
span files that lack them. The child writes nothing but temporary files (hidden ``.*.tmp``
outputs and sort runs under the job's ``tmp_dir``); the parent commits each task it hears about
(renames) and deletes the temporaries of the others. So a child that dies (killed by ``stop``, by
the kernel's OOM killer, a crash) has committed nothing, and the next pass does the work again.

The child holds its data to ``memory_limit_mib`` (the interpreter and libraries add 150-200 MiB),
puts itself first in line for the OOM killer (``oom_score_adj`` 1000: if memory runs out anyway,
the kernel kills the merge, not the receivers), ignores Ctrl-C (the parent stops it) and exits
if the parent goes away. No ``RLIMIT_AS``: Arrow and DuckDB reserve about ten times the address
space they touch (a 64 MiB merge: 2.7 GB of it for 280 MiB resident), so a cap tight enough to
matter would fail healthy merges. ``inline`` runs the same tasks on the calling thread (tests).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import duckdb
import pyarrow as pa

from storage.compaction.spanmerge import Budget, MergeError, PartsRoller, build_parts, merge_span_files

log = logging.getLogger("agentwatch.compaction")
MIB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class MergeTask:
    inputs: tuple[str, ...]
    output: str
    parts_output: str

    def __str__(self) -> str:
        return f"merging {len(self.inputs)} files of {Path(self.output).parent}"


@dataclass(frozen=True)
class PartsTask:
    span_file: str
    parts_output: str

    def __str__(self) -> str:
        return f"rolling {self.span_file} up into run partials"


Task = MergeTask | PartsTask


@dataclass(frozen=True)
class Job:
    data_dir: str
    tmp_dir: str
    memory_limit_mib: float
    tasks: tuple[Task, ...]
    parent: int = 0
    """The parent's pid: the child exits when it is gone."""

    def to_json(self) -> str:
        tasks = [{"merge" if isinstance(t, MergeTask) else "parts": asdict(t)} for t in self.tasks]
        return json.dumps({**asdict(self), "tasks": tasks})

    @classmethod
    def from_json(cls, text: str) -> Job:
        data = json.loads(text)
        tasks: list[Task] = []
        for entry in data.pop("tasks"):
            if "merge" in entry:
                fields = entry["merge"]
                tasks.append(MergeTask(tuple(fields["inputs"]), fields["output"], fields["parts_output"]))
            else:
                tasks.append(PartsTask(**entry["parts"]))
        return cls(tasks=tuple(tasks), **data)


@dataclass(frozen=True)
class TaskResult:
    task: int
    """Its index in the job."""
    rows_in: int
    rows_out: int
    peak_rss_mib: float
    """The worker's peak resident memory so far."""
    error: str | None = None
    """Why the task failed (its outputs are incomplete: nothing of it is committed)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> TaskResult:
        return cls(**json.loads(text))


class WorkerDied(RuntimeError):
    """The worker process ended before finishing its job (killed, out of memory, a crash)."""


TASK_ERRORS = (OSError, ValueError, TypeError, pa.ArrowException, duckdb.Error, MergeError)
"""What a task's data can make it raise (an unreadable input, a schema conflict...): reported,
and the job goes on with its other tasks. Anything else ends the worker."""


def run_job(job: Job) -> Iterator[TaskResult]:
    """Do the job's tasks in this process, in order, yielding each as it is done or has failed."""
    budget = Budget(int(job.memory_limit_mib * MIB))
    roller = PartsRoller(budget.roll_up)
    try:
        for index, task in enumerate(job.tasks):
            try:
                rows_in, rows_out = run_task(task, budget, Path(job.tmp_dir), roller)
            except TASK_ERRORS as exc:
                yield TaskResult(index, 0, 0, peak_rss_mib(), f"{type(exc).__name__}: {exc}")
            else:
                yield TaskResult(index, rows_in, rows_out, peak_rss_mib())
    finally:
        roller.close()


def run_task(task: Task, budget: Budget, tmp_dir: Path, roller: PartsRoller) -> tuple[int, int]:
    """Write the task's outputs; return how many rows it read and wrote."""
    Path(task.parts_output).parent.mkdir(parents=True, exist_ok=True)
    if isinstance(task, MergeTask):
        inputs = [Path(p) for p in task.inputs]
        counts = merge_span_files(inputs, Path(task.output), Path(task.parts_output), budget, tmp_dir, roller)
        return counts.rows_in, counts.rows_out
    rows = build_parts(Path(task.span_file), Path(task.parts_output), budget, tmp_dir, roller)
    return rows, rows


def peak_rss_mib() -> float:
    """This process's peak resident memory: Linux's VmHWM (``ru_maxrss`` also counts what the
    parent had resident when it forked this process), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError as exc:
        log.debug("no /proc/self/status: %s", exc)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


class Worker(Protocol):
    def run(self, job: Job) -> Iterator[TaskResult]:
        """Each task's result as it is done; raises ``WorkerDied`` if the job ends early."""

    def close(self) -> None:
        """End the running job at once (what it did not report is not committed); run no more."""


class InlineWorker:
    """Tasks on the calling thread (tests): bounded by the same budget, but not isolated."""

    def __init__(self) -> None:
        self._closed = False

    def run(self, job: Job) -> Iterator[TaskResult]:
        if not self._closed:
            yield from run_job(job)

    def close(self) -> None:
        self._closed = True


class WorkerProcess:
    """Each job in a fresh child process (its memory goes back to the system when it exits)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The running child's pid, if one is running."""
        proc = self._proc
        return proc.pid if proc is not None else None

    def run(self, job: Job) -> Iterator[TaskResult]:
        with self._lock:
            if self._closed:
                return
            proc = self._proc = _spawn()
        try:
            yield from _results(proc, job)
            code = proc.wait()
        finally:
            with self._lock:
                self._proc = None
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()
        if code != 0 and not self._closed:
            raise WorkerDied(f"the compaction worker exited with {_exit_reason(code)}")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._proc is not None:
                self._proc.kill()  # SIGKILL: a merge that was cut short commits nothing


def _spawn() -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "storage.compaction.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _results(proc: subprocess.Popen[str], job: Job) -> Iterator[TaskResult]:
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(job.to_json())
        proc.stdin.close()
    except BrokenPipeError:
        return  # it died at once: the exit code says why
    for line in proc.stdout:
        try:
            result = TaskResult.from_json(line)
        except (ValueError, TypeError) as exc:
            raise WorkerDied(f"the compaction worker reported {line[:200]!r}") from exc
        yield result


def _exit_reason(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        return f"{name} (killed: out of memory?)" if -code == signal.SIGKILL else name
    return f"code {code}"


# -- the child's side -----------------------------------------------------------------------------
def _exit_with_parent(parent: int) -> None:
    """Outliving a killed server would only burn memory: nothing uncommitted is ever used."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _first_for_the_oom_killer() -> None:
    try:
        Path("/proc/self/oom_score_adj").write_text("1000")
    except OSError as exc:  # not Linux, or no /proc: the budget still bounds the merge
        log.debug("could not raise oom_score_adj: %s", exc)


def _use_jemalloc() -> None:
    """Arrow's jemalloc pool: it hands freed memory back sooner than the default (mimalloc), so
    the process's resident memory follows the rows it holds (measured: ~25% less at its peak)."""
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError as exc:  # an Arrow build without jemalloc: the default pool
        log.debug("jemalloc unavailable: %s", exc)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group: the parent decides
    reports = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # anything else printed goes to stderr
    _use_jemalloc()
    job = Job.from_json(sys.stdin.read())
    if job.parent:
        threading.Thread(target=_exit_with_parent, args=(job.parent,), daemon=True).start()
    _first_for_the_oom_killer()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s[worker]: %(message)s")
    for result in run_job(job):
        reports.write(result.to_json() + "\n")
        reports.flush()


if __name__ == "__main__":
    main()
