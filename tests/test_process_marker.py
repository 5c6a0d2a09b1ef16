"""The guard of tests/conftest.py, in a nested pytest session: a test that starts a process
without the ``process`` marker fails (in its body or in a fixture), a marked one does not."""

from __future__ import annotations

import pytest

SPAWNING = """
import multiprocessing
import subprocess
import sys

import pytest

@pytest.fixture(scope="module")
def started():
    return subprocess.run([sys.executable, "-c", "pass"], check=True)

def test_body():
    subprocess.run([sys.executable, "-c", "pass"], check=True)

def test_fixture(started):
    pass

def test_worker():
    multiprocessing.get_context("spawn").Process(target=print).start()

@pytest.mark.process
def test_marked():
    subprocess.run([sys.executable, "-c", "pass"], check=True)

def test_none():
    pass
"""


@pytest.mark.process  # test_marked really starts a process
def test_an_unmarked_test_that_starts_a_process_fails(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("from tests.conftest import pytest_runtest_protocol  # noqa: F401\n")
    pytester.makeini("[pytest]\nmarkers =\n    process: starts a process\n")
    pytester.makepyfile(test_spawn=SPAWNING)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2, errors=1)  # test_marked and test_none pass
    result.stdout.fnmatch_lines([
        "test_spawn.py::test_fixture starts a process (* -c pass) but is not marked 'process'*",
        "test_spawn.py::test_body starts a process (* -c pass) but is not marked 'process'*",
        "test_spawn.py::test_worker starts a process (multiprocessing worker *) but is not marked 'process'*",
    ])  # fmt: skip
