"""``python``: an importable callable ``f(query: str, fields: dict) -> str | dict`` for agents
tested in-process. A dict may carry ``output``, ``tool_calls`` (dicts with ``name``,
``arguments``, ``output``), ``citations`` and ``trace_id``. An exception is the run's error."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from typing import Any

import orjson

from core.errors import TargetError
from evals.datasets import Case
from evals.targets import TargetResult, ToolCall


def load_callable(reference: str) -> Callable[..., Any]:
    module_name, _, attr = reference.partition(":")
    if not module_name or not attr:
        raise TargetError(f"python target {reference!r}: expected pkg.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TargetError(f"python target {reference!r}: cannot import {module_name}: {exc}") from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise TargetError(f"python target {reference!r}: {module_name} has no callable {attr}")
    found: Callable[..., Any] = function
    return found


class PythonTarget:
    def __init__(self, reference: str, concurrency: int = 1) -> None:
        self.name = f"python:{reference}"
        self.concurrency = concurrency
        self.function = load_callable(reference)

    def invoke(self, case: Case) -> TargetResult:
        start = time.perf_counter()
        try:
            value = self.function(case.query, dict(case.fields))
        except Exception as exc:  # the agent under test failed: that is its result, not a crash
            return TargetResult(None, _ms(start), error=f"{type(exc).__name__}: {exc}")
        if isinstance(value, str):
            return TargetResult(value, _ms(start))
        if not isinstance(value, dict):
            return TargetResult(None, _ms(start), error=f"returned {type(value).__name__}, not str or dict")
        calls = tuple(
            ToolCall(str(c.get("name", "tool")), _text(c.get("arguments", "")), _opt_text(c.get("output")))
            for c in value.get("tool_calls") or []
        )
        output = value.get("output")
        return TargetResult(
            output if isinstance(output, str) else None, _ms(start), calls,
            tuple(str(c) for c in value.get("citations") or []), (), value.get("trace_id"),
        )  # fmt: skip

    def close(self) -> None:
        return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _opt_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000
