"""Repeated log lines are rate-limited and summarised; the open-files limit is raised at start."""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Iterator

import pytest

from core import supervision
from core.logthrottle import LogThrottle, Throttling, install_log_throttle
from core.proclimits import FdLimit, raise_fd_limit


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[str, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.name, record.levelname, record.getMessage()))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def capture() -> Iterator[Capture]:
    handler = Capture()
    for name in ("storm", "other"):
        logger = logging.getLogger(f"test.throttle.{name}")
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
    yield handler
    for name in ("storm", "other"):
        logging.getLogger(f"test.throttle.{name}").removeHandler(handler)


def throttled(capture: Capture, **kwargs: int) -> tuple[LogThrottle, Clock]:
    clock = Clock()
    throttle = LogThrottle(capture, burst=kwargs.get("burst", 10), interval=60.0, clock=clock)
    capture.addFilter(throttle)
    return throttle, clock


def test_ten_thousand_identical_lines_become_ten_and_one_summary(capture: Capture) -> None:
    throttle, clock = throttled(capture)
    log = logging.getLogger("test.throttle.storm")
    for i in range(10_000):
        log.error("accept failed on fd %d", i)
        clock.now += 0.001  # ten seconds in all, within one interval
    assert capture.lines == [("test.throttle.storm", "ERROR", f"accept failed on fd {i}") for i in range(10)]
    clock.now = 1000.0 + 60.0
    throttle.tick()
    assert capture.lines[10:] == [
        (
            "test.throttle.storm",
            "ERROR",
            "accept failed on fd %d ... repeated 9990 more times in the last 60s",
        )
    ]
    assert throttle.suppressed_total == 9990
    # The next interval lets the first ten through again.
    log.error("accept failed on fd %d", 10_000)
    assert capture.lines[-1] == ("test.throttle.storm", "ERROR", "accept failed on fd 10000")


def test_lines_are_told_apart_by_logger_level_and_template(capture: Capture) -> None:
    _, clock = throttled(capture, burst=1)
    storm, other = logging.getLogger("test.throttle.storm"), logging.getLogger("test.throttle.other")
    for _ in range(3):
        storm.error("a %s", "x")
        storm.warning("a %s", "x")
        storm.error("b %s", "x")
        other.error("a %s", "x")
    assert capture.lines == [
        ("test.throttle.storm", "ERROR", "a x"),
        ("test.throttle.storm", "WARNING", "a x"),
        ("test.throttle.storm", "ERROR", "b x"),
        ("test.throttle.other", "ERROR", "a x"),
    ]
    # A summary is written by the first record after the interval, whichever it is.
    clock.now += 61
    other.info("unrelated")
    assert capture.lines[4:] == [
        ("test.throttle.storm", "ERROR", "a %s ... repeated 2 more times in the last 61s"),
        ("test.throttle.storm", "WARNING", "a %s ... repeated 2 more times in the last 61s"),
        ("test.throttle.storm", "ERROR", "b %s ... repeated 2 more times in the last 61s"),
        ("test.throttle.other", "ERROR", "a %s ... repeated 2 more times in the last 61s"),
        ("test.throttle.other", "INFO", "unrelated"),
    ]


def test_asyncio_accept_errors_differing_only_after_the_first_line_collapse(capture: Capture) -> None:
    throttle, _ = throttled(capture, burst=2)
    log = logging.getLogger("test.throttle.storm")
    for fd in range(500):  # asyncio logs its messages pre-formatted, the socket on the second line
        log.error(f"socket.accept() out of system resource\nsocket: <TransportSocket fd={fd % 3}>")
    throttle.flush()
    assert [line[2] for line in capture.lines] == [
        "socket.accept() out of system resource\nsocket: <TransportSocket fd=0>",
        "socket.accept() out of system resource\nsocket: <TransportSocket fd=1>",
        "socket.accept() out of system resource ... repeated 498 more times in the last 1s",
    ]


def test_install_puts_one_filter_per_handler_and_a_ticker_writes_summaries(capture: Capture) -> None:
    throttling = install_log_throttle(burst=1, interval=0.2, handlers=[capture])
    assert install_log_throttle(handlers=[capture]).filters == []  # already throttled
    log = logging.getLogger("test.throttle.storm")
    for _ in range(50):
        log.warning("disk full")
    deadline = time.monotonic() + 20
    while len(capture.lines) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    throttling.stop()
    assert capture.lines[0] == ("test.throttle.storm", "WARNING", "disk full")
    assert capture.lines[1][2].startswith("disk full ... repeated 49 more times in the last ")
    assert capture.filters == []


def test_the_summary_thread_is_supervised() -> None:
    class Broken(LogThrottle):
        def tick(self) -> None:
            raise RuntimeError("handler broke")

    deaths: list[str] = []
    unwatch = supervision.watch(lambda where, exc: deaths.append(f"{where}: {exc}"))
    try:
        throttling = Throttling([Broken(Capture())], period=0.01)
        throttling.start()
        deadline = time.monotonic() + 20
        while not deaths and time.monotonic() < deadline:
            time.sleep(0.01)
        throttling.stop()
    finally:
        unwatch()
    assert deaths == ["log-throttle: handler broke"]


def test_bad_throttle_settings_are_refused() -> None:
    with pytest.raises(ValueError) as info:
        LogThrottle(Capture(), burst=0)
    assert str(info.value) == "LogThrottle: burst and max_keys must be at least 1, interval positive"


def test_the_soft_open_files_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip(f"needs a finite hard limit above 256, not {hard}")
    lowered = min(soft, 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        result = raise_fd_limit()
        assert result == FdLimit(before=lowered, soft=hard, hard=hard, problem=None)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
        assert result.describe() == f"open files limit raised from {lowered} to {hard} (hard {hard})"
        # At the hard limit already: nothing to do.
        assert raise_fd_limit() == FdLimit(before=hard, soft=hard, hard=hard, problem=None)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
