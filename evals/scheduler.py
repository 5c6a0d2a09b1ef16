"""Cron schedules with an injectable clock: ``Schedule.due(now)`` says whether a fire time has
passed since the last one, so tests step time instead of sleeping."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from croniter import croniter

from core.errors import Cancelled
from core.periodic import Periodic

log = logging.getLogger("agentwatch.scheduler")


def valid_cron(expression: str) -> bool:
    return bool(croniter.is_valid(expression))


@dataclass
class Schedule:
    """One cron expression (UTC). The first fire is the first cron time after ``start``."""

    expression: str
    start: datetime
    next_fire: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.next_fire = self._after(self.start)

    def _after(self, moment: datetime) -> datetime:
        fire: datetime = croniter(self.expression, moment).get_next(datetime)
        return fire

    def due(self, now: datetime) -> bool:
        """True once per passed fire time (missed fires while busy collapse into one)."""
        if now < self.next_fire:
            return False
        self.next_fire = self._after(now)
        return True


@dataclass
class Job:
    name: str
    schedule: Schedule
    run: Callable[[], object]


class Scheduler:
    """Runs due jobs one at a time on its own thread (a ``core.periodic`` loop waking every
    ``interval`` seconds to ``tick``); ``tick(now)`` is the whole logic."""

    def __init__(self, jobs: list[Job], clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 interval: float = 1.0) -> None:  # fmt: skip
        self.jobs = jobs
        self.clock = clock
        self.interval = interval
        self.runs = 0
        self.failures = 0
        # A failing job is caught in ``run``; anything else raised is a bug: the supervised thread
        # ends and reports it.
        self._loop = Periodic("agentwatch-scheduler", interval, lambda: self.tick(self.clock()))

    def tick(self, now: datetime) -> list[str]:
        """Run every job due at ``now``; the names of those run."""
        ran = []
        for job in self.jobs:
            if job.schedule.due(now):
                ran.append(job.name)
                self.run(job)
        return ran

    def run(self, job: Job) -> None:
        self.runs += 1
        try:
            job.run()
        except Cancelled:
            log.info("scheduled job %s stopped: the service is shutting down", job.name)
        except Exception:  # one failing job must not stop the schedule (logged, counted)
            self.failures += 1
            log.exception("scheduled job %s failed", job.name)

    def start(self) -> None:
        self._loop.start()

    @property
    def stopping(self) -> threading.Event:
        """Set by ``stop``: a running job checks it between cases and gives up."""
        return self._loop.stopping

    def stop(self, timeout: float = 5.0) -> None:
        """Stop scheduling; wait at most ``timeout`` for a running job to notice and give up
        (an eval case already calling its target finishes on a daemon thread, unwaited)."""
        self._loop.stop_timeout = timeout
        self._loop.stop()
