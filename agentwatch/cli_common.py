"""What every ``agentwatch`` subcommand shares."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from core.errors import ConfigError

if TYPE_CHECKING:
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


def data_dir_problem(data_dir: str | Path) -> str | None:
    """Why ``data_dir`` cannot be read as a data directory, in one line; ``None`` when it can."""
    path = Path(data_dir)
    try:
        if not path.exists():
            return (
                f"{path} does not exist: nothing stored there yet (the server writes elsewhere? --data-dir)"
            )
        if not path.is_dir():
            return f"{path} is not a directory (--data-dir names the directory `agentwatch serve` writes)"
        if not os.access(path, os.R_OK | os.X_OK):
            return f"{path} cannot be read: permission denied"
        next(path.iterdir(), None)
    except OSError as exc:
        return f"{path} cannot be read: {exc.strerror or exc}"
    return None


def has_spans(data_dir: str | Path) -> bool:
    """Whether any span file is stored under ``data_dir``."""
    from storage.catalog import live_files
    from storage.layout import SPANS

    return bool(live_files(Path(data_dir), SPANS))
