"""The cost processor's factory (``TYPE``, ``Config``, ``create``), as the registry sees it; the
processor (and the price library) are imported when one is created."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.component import Consumer
from processors.cost.config import Config

if TYPE_CHECKING:
    from processors.cost.processor import CostProcessor

TYPE = "cost"

__all__ = ["TYPE", "Config", "create"]


def create(config: Config, next_consumer: Consumer) -> CostProcessor:
    from processors.cost.processor import CostProcessor

    return CostProcessor(config, next_consumer)
