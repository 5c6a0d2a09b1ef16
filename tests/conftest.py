"""Shared fixtures, and the guard that keeps the fast loop fast.

A test that starts another process (a server, the CLI, Chromium: anything through
``subprocess``; a ``multiprocessing`` worker, such as the process converter's) must be marked ``process`` (``@pytest.mark.process``, or ``pytestmark`` for a
whole module): ``make test-fast`` (``pytest -m "not process"``) leaves those out. An unmarked
test that starts one fails, during its fixtures as during its body, saying so.

Property tests take their number of examples from the Hypothesis profile: ``full`` (150) unless
``--hypothesis-profile fast`` (30, what ``make test-fast`` passes) is given.
"""

from __future__ import annotations

import multiprocessing.process
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from tests.helpers.server import ServerProcess

PROCESS = "process"
pytest_plugins = ("pytester",)  # tests/test_process_marker.py runs the guard below in a nested session

settings.register_profile("full", max_examples=150)
settings.register_profile("fast", max_examples=30)
settings.load_profile("full")  # before the hypothesis plugin reads --hypothesis-profile


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path).start()
    yield proc
    if proc.proc is not None:
        proc.kill()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if item.get_closest_marker(PROCESS) is not None:
        return (yield)

    def refused(command: str) -> None:
        pytest.fail(
            f"{item.nodeid} starts a process ({command[:200]}) but is not marked {PROCESS!r}: "
            f"mark it @pytest.mark.{PROCESS} (or the module with pytestmark) so that "
            '`make test-fast` (pytest -m "not process") leaves it out',
            pytrace=False,
        )

    def refuse(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        refused(args if isinstance(args, str) else " ".join(str(a) for a in args))

    def refuse_worker(self: multiprocessing.process.BaseProcess) -> None:
        # Every start method (fork, spawn, forkserver) and ProcessPoolExecutor's workers start here.
        refused(f"multiprocessing worker {self.name}")

    previous = subprocess.Popen._execute_child  # type: ignore[attr-defined]
    previous_start = multiprocessing.process.BaseProcess.start
    subprocess.Popen._execute_child = refuse  # type: ignore[attr-defined]
    multiprocessing.process.BaseProcess.start = refuse_worker  # type: ignore[method-assign]
    try:
        return (yield)
    finally:
        subprocess.Popen._execute_child = previous  # type: ignore[attr-defined]
        multiprocessing.process.BaseProcess.start = previous_start  # type: ignore[method-assign]
