"""One duration syntax for config values and command-line windows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.errors import ConfigError
from core.units import format_duration, parse_duration, parse_window


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("90s", 90.0), ("15m", 900.0), ("1.5h", 5400.0), ("7d", 604800.0), ("2w", 1209600.0),
     (" 3 m ", 180.0), (12, 12.0), (0.5, 0.5), ("45", 45.0)],
)  # fmt: skip
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["7 days", "-1s", "1y", "", True, -3, None])
def test_bad_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_windows_take_the_config_syntax() -> None:
    assert parse_window("90s") == timedelta(seconds=90)  # refused by the old --since parser
    assert parse_window("12h") == timedelta(hours=12)
    with pytest.raises(ConfigError, match=r"^--until-window: a window must be longer than 0$"):
        parse_window("0s", "--until-window")
    with pytest.raises(ConfigError, match=r"^--since: '7 days' is not a duration"):
        parse_window("7 days")


def test_format_duration() -> None:
    assert [format_duration(s) for s in (86400, 7200, 900, 30, 0.25)] == ["1d", "2h", "15m", "30s", "250ms"]
