"""The normalize processor's factory (``TYPE``, ``Config``, ``create``), as the registry sees it.

Importing it loads only the config: the processor and its compiled kernels are imported when a
processor is created, in the process that converts (a converter worker), not in every process
that reads a config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.component import Consumer
from processors.normalize.config import Config

if TYPE_CHECKING:
    from processors.normalize.processor import NormalizeProcessor

TYPE = "normalize"

__all__ = ["TYPE", "Config", "create"]


def create(config: Config, next_consumer: Consumer) -> NormalizeProcessor:
    from processors.normalize.processor import NormalizeProcessor

    return NormalizeProcessor(config, next_consumer)
