"""Value types shared by component configs: durations ("500ms", "2s", "15m", "7d") and sizes."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator

from core.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from a number (seconds) or a string such as ``250ms``, ``2s``, ``15m``, ``7d``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '2s', '15m' or '7d'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _SECONDS[match.group(2)]
    raise ValueError(
        f"{value!r} is not a duration: use a number of seconds or e.g. '500ms', '2s', '15m', '7d'"
    )


def parse_window(text: str, key: str = "--since") -> timedelta:
    """A time window from a command-line flag, with the config's syntax (``90s``, ``15m``, ``7d``);
    ConfigError naming the flag otherwise."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    if seconds <= 0:
        raise ConfigError(f"{key}: a window must be longer than 0")
    return timedelta(seconds=seconds)


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A duration in seconds, written in YAML as ``2s``, ``15m``, ``7d`` or a number of seconds."""


def format_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds * 1000:g}ms"
