"""What every ``agentwatch`` subcommand shares."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from core.errors import ConfigError

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

    from agentwatch.config import AgentwatchConfig


def load_or_exit(config_path: str | None, data_dir: str | None) -> AgentwatchConfig:
    """The config (``--data-dir`` applied), or every problem on stderr and exit status 2."""
    from agentwatch.config import load_config  # pydantic and every component module: only here

    try:
        return load_config(config_path).with_data_dir(data_dir)
    except ConfigError as exc:
        click.echo("agentwatch: invalid configuration:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(2)


def terminal_width() -> int:
    """The terminal's width (``COLUMNS`` when set), 120 when output is not a terminal."""
    import shutil

    return shutil.get_terminal_size((120, 24)).columns


def data_dir_problem(data_dir: str | Path, *, writes: bool = False, creates: bool = False) -> str | None:
    """Why ``data_dir`` cannot be used as a data directory, in one line; ``None`` when it can.

    A reading command needs it to exist and be readable; ``writes``: writable too; ``creates``
    (``serve``, ``eval run``): it may be missing, when it can be made where it would be."""
    path = Path(data_dir)
    try:
        if not path.exists():
            if not creates:
                hint = "nothing stored there yet (the server writes elsewhere? --data-dir)"
                return f"{path} does not exist: {hint}"
            parent = next(p for p in path.absolute().parents if p.exists())  # the root always does
            if not parent.is_dir():
                return f"{path} cannot be created: {parent} is not a directory"
            if not os.access(parent, os.W_OK | os.X_OK):
                return f"{path} cannot be created in {parent}: permission denied"
            return None
        if not path.is_dir():
            return f"{path} is not a directory (--data-dir names the directory `agentwatch serve` writes)"
        if not os.access(path, os.R_OK | os.X_OK):
            return f"{path} cannot be read: permission denied"
        if (writes or creates) and not os.access(path, os.W_OK):
            return f"{path} cannot be written: permission denied"
        next(path.iterdir(), None)
    except OSError as exc:
        return f"{path} cannot be read: {_reason(exc)}"
    return None


def usable_data_dir(data_dir: str, command: str, *, writes: bool = False, creates: bool = False) -> str:
    """``data_dir`` when ``agentwatch <command>`` can use it (``data_dir_problem``); else one line
    on stderr naming it and the problem, and exit status 2 (a usage error: nothing was done).
    Every command that takes ``--data-dir`` comes through here."""
    from core.safetext import printable_lines

    problem = data_dir_problem(data_dir, writes=writes, creates=creates)
    if problem is not None:
        click.echo(f"agentwatch {command}: {printable_lines(problem)}", err=True)
        sys.exit(2)
    return data_dir


def connect_or_exit(data_dir: str, command: str, *, analyst_views: bool = False) -> DuckDBPyConnection:
    """A catalog connection on ``data_dir`` (``usable_data_dir`` first); a directory under it that
    cannot be listed (``storage.catalog.live_files``) is the same one line and exit status 2."""
    from storage.catalog import connect

    usable_data_dir(data_dir, command)
    with listing_or_exit(data_dir, command):
        return connect(data_dir, analyst_views=analyst_views)


@contextmanager
def listing_or_exit(data_dir: str, command: str) -> Iterator[None]:
    """Around listing the files of ``data_dir``: an ``OSError`` (a directory under it that cannot
    be read) is one line on stderr naming the path, and exit status 2."""
    from core.safetext import printable_lines

    try:
        yield
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(data_dir) else ""
        problem = f"{data_dir} cannot be read{where}: {_reason(exc)}"
        click.echo(f"agentwatch {command}: {printable_lines(problem)}", err=True)
        sys.exit(2)


def _reason(exc: OSError) -> str:
    """``permission denied``: the error's text, as the rest of a sentence."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def has_spans(data_dir: str | Path) -> bool:
    """Whether any span file is stored under ``data_dir``."""
    from storage.catalog import live_files
    from storage.layout import SPANS

    return bool(live_files(Path(data_dir), SPANS))


def has_data(data_dir: str | Path) -> bool:
    """Whether any span, log or small table's file (eval runs and scores, feedback, alert
    events...) is stored under ``data_dir``."""
    from storage.catalog import live_files
    from storage.layout import LOGS, table_dir
    from storage.tables import SCHEMAS

    if has_spans(data_dir) or live_files(Path(data_dir), LOGS):
        return True
    return any(
        next(table_dir(Path(data_dir), table).glob("tenant=*/date=*/*.parquet"), None) is not None
        for table in SCHEMAS
    )
