"""Which module implements each component type, per section. Modules are imported on demand."""

from __future__ import annotations

import importlib
from types import ModuleType

RECEIVERS = {
    "otlp": "receiver.otlp.receiver",
    "synthetic": "receiver.synthetic.receiver",
    "bucket": "receiver.bucket.receiver",
    "memory": "receiver.memory",
}
PROCESSORS = {
    "normalize": "processors.normalize.factory",
    "classify": "processors.classify.factory",
    "cost": "processors.cost.factory",
}
EXPORTERS = {"parquet": "exporters.parquet", "memory": "exporters.memory"}

SECTIONS: dict[str, dict[str, str]] = {
    "receivers": RECEIVERS,
    "processors": PROCESSORS,
    "exporters": EXPORTERS,
}


def component_module(section: str, type_name: str) -> ModuleType:
    return importlib.import_module(SECTIONS[section][type_name])
