"""The ``agentwatch`` command's entry point: as light as can be, so ``serve`` catches signals
from its first moments (``core.shutdown``), before the heavy imports of the CLI."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        from core.shutdown import install_early

        install_early()
    from agentwatch.cli import main as cli

    cli()
