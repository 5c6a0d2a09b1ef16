"""What every ``agentwatch`` subcommand shares."""

from __future__ import annotations

import sys
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
