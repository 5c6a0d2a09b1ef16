"""``storage.wallock``: one writer per write-ahead log, and what it says about itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage.wallock import WalLock


def test_one_holder_at_a_time_and_what_it_says(tmp_path: Path) -> None:
    first, second = WalLock(tmp_path / "wal"), WalLock(tmp_path / "wal")
    assert first.try_acquire(command="serve")
    assert not second.try_acquire(command="eval run")
    first.describe(otlp_http=[{"receiver": "otlp", "url": "http://127.0.0.1:4318/v1/traces", "auth": False}])
    assert second.holder() == {
        "pid": os.getpid(),
        "command": "serve",
        "otlp_http": [{"receiver": "otlp", "url": "http://127.0.0.1:4318/v1/traces", "auth": False}],
    }
    first.release()
    assert not (tmp_path / "wal" / ".lock").exists()  # a stopped server leaves wal/ empty
    assert second.try_acquire(command="eval run")
    assert first.holder() == {"pid": os.getpid(), "command": "eval run"}
    second.release()


@pytest.mark.process
def test_the_lock_of_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    take_and_die = (
        "import os, sys; from storage.wallock import WalLock; "
        f"assert WalLock(__import__('pathlib').Path({str(tmp_path / 'wal')!r})).try_acquire(command='serve'); "
        "os._exit(0)"  # no release: as kill -9 would leave it
    )
    subprocess.run([sys.executable, "-c", take_and_die], check=True)
    lock = WalLock(tmp_path / "wal")
    assert lock.holder() is not None and lock.holder() != {"pid": os.getpid(), "command": "eval run"}
    assert lock.try_acquire(command="eval run")
    assert lock.holder() == {"pid": os.getpid(), "command": "eval run"}
    lock.release()
