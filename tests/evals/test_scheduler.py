"""Cron schedules and the scheduler with an injected clock: no sleeping."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from core import supervision
from evals.scheduler import Job, Schedule, Scheduler, valid_cron

T0 = datetime(2026, 11, 22, 10, 7, 30, tzinfo=UTC)


def test_schedule_fires_once_per_passed_time() -> None:
    schedule = Schedule("*/15 * * * *", T0)
    assert schedule.next_fire == datetime(2026, 11, 22, 10, 15, tzinfo=UTC)
    assert not schedule.due(T0 + timedelta(minutes=7))  # 10:14:30
    assert schedule.due(datetime(2026, 11, 22, 10, 15, tzinfo=UTC))
    assert not schedule.due(datetime(2026, 11, 22, 10, 16, tzinfo=UTC))
    # Busy for an hour: the missed fires collapse into one, the next is after "now".
    assert schedule.due(datetime(2026, 11, 22, 11, 20, tzinfo=UTC))
    assert schedule.next_fire == datetime(2026, 11, 22, 11, 30, tzinfo=UTC)


def test_scheduler_runs_due_jobs_and_survives_a_failing_one() -> None:
    ran: list[str] = []

    def boom() -> None:
        ran.append("canary")
        raise RuntimeError("target down")

    scheduler = Scheduler([
        Job("hourly", Schedule("0 * * * *", T0), lambda: ran.append("hourly")),
        Job("canary", Schedule("*/15 * * * *", T0), boom),
    ])  # fmt: skip
    steps = [T0 + timedelta(minutes=m) for m in (5, 8, 23, 53, 60)]
    assert [scheduler.tick(now) for now in steps] == [[], ["canary"], ["canary"], ["hourly", "canary"], []]
    assert ran == ["canary", "canary", "hourly", "canary"]
    assert (scheduler.runs, scheduler.failures) == (4, 3)


def test_valid_cron() -> None:
    assert valid_cron("0 */6 * * *")
    assert not valid_cron("every hour")


def test_the_scheduler_runs_on_a_supervised_loop() -> None:
    deaths: list[str] = []
    unwatch = supervision.watch(lambda where, exc: deaths.append(f"{where}: {exc}"))
    try:
        ran = threading.Event()
        scheduler = Scheduler([Job("minutely", Schedule("* * * * *", T0), ran.set)],
                              clock=lambda: T0 + timedelta(minutes=1), interval=0.01)  # fmt: skip
        scheduler.start()
        assert ran.wait(20)
        scheduler.stop()
        assert scheduler.stopping.is_set() and scheduler.runs == 1

        def broken_clock() -> datetime:
            raise RuntimeError("clock broke")

        broken = Scheduler([], clock=broken_clock, interval=0.01)
        broken.start()
        deadline = time.monotonic() + 20
        while not deaths and time.monotonic() < deadline:
            time.sleep(0.01)
        broken.stop()
        assert deaths == ["agentwatch-scheduler: clock broke"]  # a bug in the loop is reported, not lost
    finally:
        unwatch()
