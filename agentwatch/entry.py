"""The ``agentwatch`` command's entry point: as light as can be, so ``serve`` catches signals
from its first moments (``core.shutdown``), before the heavy imports of the CLI.

Both ways in run this module first: the installed command (pip's wrapper imports ``main`` from
here) and ``python -m agentwatch`` (``__main__`` does). For ``serve``, its first statements note
SIGTERM and SIGINT before anything else is imported (``signal`` only: even ``core.shutdown``'s
threading and faulthandler come after); ``main`` then hands what was noted to the real handlers.
What remains of the window in which a signal still kills the process (exit -15) is the
interpreter's own start-up, before any of agentwatch's code runs (README, "Shutdown always ends").
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

_noted: list[int] = []


def _note(signum: int, frame: FrameType | None) -> None:
    _noted.append(signum)


if sys.argv[1:2] == ["serve"]:
    signal.signal(signal.SIGTERM, _note)
    signal.signal(signal.SIGINT, _note)


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        from core.shutdown import install_early

        install_early(_noted)
    from agentwatch.cli import main as cli

    cli()
