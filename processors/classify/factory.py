"""The classify processor's factory (``TYPE``, ``Config``, ``create``), as the registry sees it.

Importing it loads only the config: the processor (polars) is imported when one is created, in
the process that converts (a converter worker).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.component import Consumer
from processors.classify.config import Config

if TYPE_CHECKING:
    from processors.classify.processor import ClassifyProcessor

TYPE = "classify"

__all__ = ["TYPE", "Config", "create"]


def create(config: Config, next_consumer: Consumer) -> ClassifyProcessor:
    from processors.classify.processor import ClassifyProcessor

    return ClassifyProcessor(config, next_consumer)
