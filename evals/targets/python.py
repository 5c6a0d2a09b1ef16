"""``python``: an importable callable ``f(query: str, fields: dict) -> str | dict`` for agents
tested in-process. A dict may carry ``output``, ``tool_calls`` (dicts with ``name``,
``arguments``, ``output``), ``citations``, ``trace_id``, ``steps`` (reasoning: each a text, or a
dict with ``name``, ``text``, ``tool``, ``arguments``, ``output`` and ``status``; each a child span
of the case), ``documents`` (dicts with ``id``, ``url``, ``title``, ``content``: what it cited or retrieved),
``usage`` (``input_tokens``, ``output_tokens``) and ``model``. An exception is the run's error."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

from core.errors import TargetError
from evals.datasets import Case
from evals.targets import Document, Step, TargetResult, ToolCall


def load_callable(reference: str) -> Callable[..., Any]:
    """``pkg.module:function`` (importable, or a module in the current directory, as ``python -m``
    finds it) or ``path/to/file.py:function``."""
    module_name, _, attr = reference.rpartition(":")
    if not module_name or not attr:
        raise TargetError(f"python target {reference!r}: expected pkg.module:function or file.py:function")
    try:
        module = _import(module_name)
    except (ImportError, OSError) as exc:
        raise TargetError(f"python target {reference!r}: cannot import {module_name}: {exc}") from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise TargetError(f"python target {reference!r}: {module_name} has no callable {attr}")
    found: Callable[..., Any] = function
    return found


def _import(module_name: str) -> ModuleType:
    if module_name.endswith(".py"):
        path = Path(module_name).resolve()
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"not a Python file: {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(path.stem, module)
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        here = os.getcwd()
        top = module_name.partition(".")[0]
        # The console script's sys.path starts with its own bin directory, not the current one.
        in_here = (Path(here) / top).is_dir() or (Path(here) / f"{top}.py").is_file()
        if exc.name != top or here in sys.path or not in_here:
            raise
        sys.path.insert(0, here)
        return importlib.import_module(module_name)


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
        usage: dict[str, Any] = value["usage"] if isinstance(value.get("usage"), dict) else {}
        documents = tuple(
            Document(_opt_text(d.get("id")), _opt_text(d.get("url")), _opt_text(d.get("title")),
                     _opt_text(d.get("content")))
            for d in value.get("documents") or [] if isinstance(d, dict)
        )  # fmt: skip
        model = value.get("model")
        reasoning = tuple(_step(step) for step in value.get("steps") or [])
        stepped = [s.call for s in reasoning if s.call is not None and s.call not in calls]
        calls += tuple(stepped)  # a step's tool call is a tool call of the run too
        return TargetResult(
            output if isinstance(output, str) else None, _ms(start), calls,
            tuple(str(c) for c in value.get("citations") or []),
            tuple(step.text or step.name for step in reasoning), value.get("trace_id"),
            documents=documents, input_tokens=_count(usage.get("input_tokens")),
            output_tokens=_count(usage.get("output_tokens")), model=model if isinstance(model, str) else None,
            reasoning=reasoning,
        )  # fmt: skip

    def close(self) -> None:
        return None


def _step(step: Any) -> Step:
    """A reported step: a text, or a dict naming its tool (``tool``, ``arguments``, ``output``) and
    ``status`` (``error`` when it failed)."""
    if not isinstance(step, dict):
        return Step(str(step), str(step))
    text = _opt_text(step.get("text")) or ""
    tool = step.get("tool")
    arguments, output = _text(step.get("arguments", "")), _opt_text(step.get("output"))
    call = ToolCall(str(tool), arguments, output) if tool else None
    name = _opt_text(step.get("name")) or text or (call.name if call else "step")
    status = "error" if step.get("status") == "error" else None
    return Step(name, text, call, status)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _opt_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000
