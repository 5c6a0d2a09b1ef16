"""SIGTERM at every stage of ``agentwatch serve``, --iterations times each, in a loop.

Stages (the set-ups of ``tests/agentwatch/test_shutdown.py``, each run once there):

- ``starting``: SIGTERM 0.05-3 s after the process is spawned (before, during or just after
  start-up; a signal that lands before the interpreter has reached the entry point's handlers,
  about the first 50-80 ms on a busy machine, ends the process with -15 and counts as a failure);
- ``idle``: a ready server with nothing to do;
- ``load``: four clients (gRPC and HTTP) sending and retrying until acknowledged, as in
  ``tests/agentwatch/test_crash.py``; afterwards every acknowledged request is stored, every span
  once;
- ``compaction``: a past day of many small span files and ``storage.compaction.interval: 200ms``,
  SIGTERM while the merge worker is running; afterwards every span is still there, once;
- ``alert``: an alert pass waiting on a webhook that never answers;
- ``eval``: a scheduled eval run waiting on an agent that never answers (no partial run recorded).

Each iteration checks: exit 0, within ``storage.shutdown_timeout`` (--timeout), "stopped
cleanly" in the log, no worker process left behind, and the stage's own check. A failure's log
tail is saved under --results. Exits 1 on any failure.

    .venv/bin/python bench/sigterm.py                       # 50 iterations of every stage
    .venv/bin/python bench/sigterm.py --iterations 2 --stages idle load
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from storage.catalog import connect
from tests.agentwatch.test_shutdown import failing_run
from tests.helpers.clients import Client
from tests.helpers.server import ServerProcess
from tests.helpers.span_files import day_start, write_small_files

PROTO = {"content-type": "application/x-protobuf"}
STAGES = ("starting", "idle", "load", "compaction", "alert", "eval")
COMPACTION_DATE = "2025-11-22"
COMPACTION_SPANS, COMPACTION_PER_FILE = 30_000, 100


class SetupError(RuntimeError):
    """The stage could not be reached (the server did not start, no merge was seen, ...)."""


# -- a webhook / agent that never answers ----------------------------------------------------------
class HangingHandler(BaseHTTPRequestHandler):
    server: Hook

    def do_POST(self) -> None:
        hook = self.server
        release = hook.release
        with hook.lock:
            hook.calls += 1
        with contextlib.suppress(OSError, ValueError):
            self.rfile.read(int(self.headers.get("content-length") or 0))
        release.wait(300)
        with contextlib.suppress(OSError):
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        return None


class Hook(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), HangingHandler)
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.calls = 0
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def reset(self) -> None:
        """Let the calls of the last iteration go, start counting afresh."""
        old, self.release = self.release, threading.Event()
        old.set()
        with self.lock:
            self.calls = 0

    def wait_for_call(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.calls:
                return True
            time.sleep(0.02)
        return False


# -- the process tree ------------------------------------------------------------------------------
class Descendants(threading.Thread):
    """Every process the server started while it ran; none may outlive it."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.seen: dict[int, psutil.Process] = {}
        self.running = True

    def run(self) -> None:
        while self.running:
            try:
                for child in self.root.children(recursive=True):
                    self.seen.setdefault(child.pid, child)
            except psutil.Error:
                return
            time.sleep(0.05)

    def has(self, needle: str) -> bool:
        for proc in list(self.seen.values()):
            with contextlib.suppress(psutil.Error):
                if proc.is_running() and needle in " ".join(proc.cmdline()):
                    return True
        return False

    def leftovers(self, grace: float = 5.0) -> list[str]:
        """Descendants still alive ``grace`` seconds after the server exited (then killed)."""
        self.running = False
        self.join(1)
        _, alive = psutil.wait_procs(list(self.seen.values()), timeout=grace)
        names = []
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                names.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
                proc.kill()
        return names


# -- stages ----------------------------------------------------------------------------------------
@dataclass
class Result:
    stage: str
    iteration: int
    code: int | None
    seconds: float
    failure: str = ""
    note: str = ""


@dataclass
class Prepared:
    server: ServerProcess
    after: Callable[[], str] | None = None
    """Run once the process has exited: a failure message, or ''."""
    note: str = ""


@dataclass
class Ctx:
    work: Path
    rng: random.Random
    timeout: float
    hook: Hook
    server: ServerProcess | None = None
    """Set by the set-up as soon as it makes one, so a failed set-up's server is killed."""
    halt: Callable[[], None] | None = None

    def new_server(self, **kwargs: object) -> ServerProcess:
        more = str(kwargs.pop("storage_more", ""))
        self.server = ServerProcess(self.work, storage_extra=storage_extra(self.timeout, more), **kwargs)  # type: ignore[arg-type]
        return self.server


def storage_extra(timeout: float, more: str = "") -> str:
    return f"  shutdown_timeout: {timeout:g}s\n{more}"


def spawn(server: ServerProcess) -> None:
    """Start the process without waiting for it to be ready (``ServerProcess.start`` waits)."""
    server.write_config()
    log = open(server.workdir / "server.log", "ab")  # noqa: SIM115 - the child's
    server.proc = subprocess.Popen(
        [sys.executable, "-m", "agentwatch", "serve", "--config", str(server.config_path)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()


def start(server: ServerProcess) -> None:
    try:
        server.start(timeout=120)
    except RuntimeError as exc:
        raise SetupError(f"the server did not start: {str(exc)[-2000:]}") from None


def stage_starting(ctx: Ctx) -> Prepared:
    server = ctx.new_server()
    spawn(server)
    delay = ctx.rng.uniform(0.05, 3.0)
    time.sleep(delay)
    return Prepared(server, note=f"SIGTERM {delay:.2f} s after spawn")


def stage_idle(ctx: Ctx) -> Prepared:
    server = ctx.new_server()
    start(server)
    time.sleep(ctx.rng.uniform(0.1, 2.0))
    return Prepared(server)


def stage_load(ctx: Ctx) -> Prepared:
    server = ctx.new_server(flush_interval="100ms")
    start(server)
    clients = [Client(i, server, 100_000, "http" if i % 2 else "grpc") for i in range(4)]

    def halt() -> None:
        for client in clients:
            client.halt.set()
        for client in clients:
            client.join(30)

    ctx.halt = halt
    for client in clients:
        client.start()
    deadline = time.monotonic() + 30
    while sum(len(c.acknowledged) for c in clients) < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(ctx.rng.uniform(0.0, 2.0))

    def after() -> str:
        # The process is gone: the clients' retries all fail now. Stop them, then check.
        halt()
        if any(c.is_alive() for c in clients):
            return "a load client did not stop"
        acknowledged = {(c.number, n) for c in clients for n in c.acknowledged}
        if not acknowledged:
            return "no request was acknowledged before SIGTERM (the stage was not under load)"
        con = connect(server.data_dir)
        rows, keys = con.execute(
            "SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans"
        ).fetchall()[0]
        complete = con.execute("SELECT trace_id FROM spans GROUP BY trace_id HAVING count(*) = 50").fetchall()
        con.close()
        stored = {(int(trace[:2], 16) - 1, int(trace[2:10], 16)) for (trace,) in complete}
        lost = acknowledged - stored
        problems = []
        if lost:
            problems.append(f"{len(lost)} acknowledged requests not stored whole: {sorted(lost)[:10]}")
        if rows != keys:
            problems.append(f"{rows - keys} spans stored twice")
        if rows % 50:
            problems.append(f"{rows} rows: a request stored in part")
        return "; ".join(problems)

    acked = sum(len(c.acknowledged) for c in clients)
    return Prepared(server, after, note=f"{acked} requests acknowledged at SIGTERM")


def make_compaction_template(root: Path) -> Path:
    source = root / "compaction-template"
    if not (source / ".done").exists():
        partition = source / "spans" / "tenant=acme" / f"date={COMPACTION_DATE}"
        write_small_files(partition, COMPACTION_SPANS, COMPACTION_PER_FILE, day_start(COMPACTION_DATE))
        (source / ".done").write_text("")
    return source


def stage_compaction(ctx: Ctx) -> Prepared:
    template = make_compaction_template(ctx.work.parent)
    shutil.copytree(template / "spans", ctx.work / "data" / "spans")
    compaction = "  compaction:\n    interval: 200ms\n    grace: 0s\n    memory_limit_mib: 32\n"
    server = ctx.new_server(storage_more=compaction)
    start(server)
    assert server.proc is not None
    watcher = Descendants(server.proc.pid)
    watcher.start()
    deadline = time.monotonic() + 30
    while not watcher.has("storage.compaction.worker"):
        if time.monotonic() > deadline:
            watcher.running = False
            raise SetupError("no compaction worker was seen running within 30 s of readiness")
        time.sleep(0.01)
    watcher.running = False
    delay = ctx.rng.uniform(0.0, 5.0)  # into the merge (~3 s), at its commit, or the partials after it
    time.sleep(delay)
    merged = sum(1 for _ in (server.data_dir / "spans").rglob("compact-*.parquet"))

    def after() -> str:
        con = connect(server.data_dir)
        rows, keys = con.execute(
            "SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans"
        ).fetchall()[0]
        con.close()
        if (rows, keys) != (COMPACTION_SPANS, COMPACTION_SPANS):
            return f"{rows} rows, {keys} distinct spans after the stop; {COMPACTION_SPANS} were there"
        return ""

    return Prepared(server, after, note=f"SIGTERM {delay:.2f} s into a merge ({merged} committed before)")


def stage_alert(ctx: Ctx) -> Prepared:
    alerts = f"""
alerts:
  interval: 100ms
  rules:
    - {{name: failing, kind: failure_rate, threshold: 0.1, window: 1h, min_runs: 1, notify: [hook]}}
  notifiers:
    hook: {{type: webhook, webhook_url: "{ctx.hook.url}", timeout: 60s, retries: 0}}
"""
    server = ctx.new_server(extra_config=alerts)
    start(server)
    r = httpx.post(server.http_url, content=failing_run(), headers=PROTO, timeout=10)
    if r.status_code != 200:
        raise SetupError(f"the failing run was refused: {r.status_code}")
    if not ctx.hook.wait_for_call(30):
        raise SetupError("the alert pass never called the webhook")
    time.sleep(ctx.rng.uniform(0.0, 1.0))
    return Prepared(server, note="alert pass waiting on the webhook")


def stage_eval(ctx: Ctx) -> Prepared:
    dataset = ctx.work / "cases.csv"
    dataset.write_text("query,eval_guidance\n" + "".join(f"question {i},say {i}\n" for i in range(20)))
    synthetic = f"""
  synthetic/slow:
    agent: slow-bot
    dataset: {dataset}
    target: http:{ctx.hook.url}
    timeout: 60s
    retries: 0
    run_on_start: true
"""
    pipeline = """
service:
  pipelines:
    traces:
      receivers: [otlp, synthetic/slow]
      processors: [normalize, classify]
      exporters: [parquet]
"""
    server = ctx.new_server(otlp_extra=synthetic, extra_config=pipeline)
    start(server)
    if not ctx.hook.wait_for_call(30):
        raise SetupError("the eval run never called its target")
    time.sleep(ctx.rng.uniform(0.0, 1.0))

    def after() -> str:
        con = connect(server.data_dir)
        (runs,) = con.execute("SELECT count(*) FROM eval_runs").fetchall()[0]
        con.close()
        return f"{runs} eval runs recorded: a run cut short must not be" if runs else ""

    return Prepared(server, after, note="eval run waiting on its target")


SETUPS = {
    "starting": stage_starting,
    "idle": stage_idle,
    "load": stage_load,
    "compaction": stage_compaction,
    "alert": stage_alert,
    "eval": stage_eval,
}


# -- one iteration ---------------------------------------------------------------------------------
def tail(path: Path, lines: int = 300) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def iterate(stage: str, iteration: int, root: Path, rng: random.Random, timeout: float, hook: Hook) -> Result:
    ctx = Ctx(root / f"{stage}-{iteration:03d}", rng, timeout, hook)
    ctx.work.mkdir(parents=True)
    hook.reset()
    try:
        prepared = SETUPS[stage](ctx)
    except Exception as exc:
        if ctx.halt is not None:
            ctx.halt()
        if ctx.server is not None:
            ctx.server.kill()
        reason = str(exc) if isinstance(exc, SetupError) else f"crashed: {exc!r}"
        return Result(stage, iteration, None, 0.0, f"setup: {reason}")
    server = prepared.server
    proc = server.proc
    assert proc is not None
    descendants = Descendants(proc.pid)
    descendants.start()
    time.sleep(0.06)  # one look at the tree before the signal
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    failures = []
    try:
        code: int | None = proc.wait(timeout + 15)
    except subprocess.TimeoutExpired:
        code = None
        failures.append(f"still running {timeout + 15:g} s after SIGTERM (killed)")
        proc.kill()
        proc.wait()
    seconds = time.monotonic() - started
    server.proc = None
    leftovers = descendants.leftovers()
    if code is not None and code != 0:
        failures.append(f"exit {code}")
    if seconds > timeout:
        failures.append(f"took {seconds:.1f} s, past shutdown_timeout {timeout:g} s")
    if code == 0 and "agentwatch: stopped cleanly" not in server.log():
        failures.append("exit 0 but no 'stopped cleanly' in the log")
    if leftovers:
        failures.append(f"processes outlived the server: {leftovers}")
    try:
        if prepared.after is not None and (problem := prepared.after()):
            failures.append(problem)
    except Exception as exc:
        failures.append(f"the check after the stop crashed: {exc!r}")
    finally:
        if ctx.halt is not None:
            ctx.halt()
    return Result(stage, iteration, code, seconds, "; ".join(failures), prepared.note)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--timeout", type=float, default=20.0, help="storage.shutdown_timeout, seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--results", type=Path, default=Path(tempfile.gettempdir()) / "agentwatch-sigterm-results"
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    args.results.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="aw-sigterm-"))
    hook = Hook()
    results: list[Result] = []
    try:
        # Round by round through every stage, so a run cut short has covered each stage alike.
        for iteration in range(args.iterations):
            for stage in args.stages:
                result = iterate(stage, iteration, root, rng, args.timeout, hook)
                results.append(result)
                work = root / f"{stage}-{iteration:03d}"
                status = "ok" if not result.failure else f"FAIL: {result.failure}"
                print(
                    f"{stage:10} #{iteration:<3} exit {result.code} in {result.seconds:5.2f} s  "
                    f"{result.note}  {status}",
                    flush=True,
                )
                if result.failure:
                    saved = args.results / f"{stage}-{iteration:03d}.log"
                    saved.write_text(
                        f"{result.failure}\n{result.note}\n--- server log tail\n{tail(work / 'server.log')}\n"
                    )
                shutil.rmtree(work, ignore_errors=True)
    finally:
        hook.reset()
        hook.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    print()
    print(f"{'stage':10} {'iterations':>10} {'exit 0':>7} {'max s':>6} {'mean s':>7} {'failures':>8}")
    for stage in args.stages:
        mine = [r for r in results if r.stage == stage]
        timed = [r.seconds for r in mine if r.code is not None]
        print(
            f"{stage:10} {len(mine):>10} {sum(r.code == 0 for r in mine):>7} "
            f"{max(timed, default=0):>6.2f} {sum(timed) / max(len(timed), 1):>7.2f} "
            f"{sum(bool(r.failure) for r in mine):>8}"
        )
    failed = [r for r in results if r.failure]
    for r in failed:
        print(f"  {r.stage} #{r.iteration}: {r.failure}")
    (args.results / "summary.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    print(f"results: {args.results}")
    print("PASS" if not failed else "FAIL")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
