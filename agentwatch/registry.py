"""Which module implements each component type, per section. Modules are imported on demand."""

from __future__ import annotations

import importlib
from types import ModuleType

RECEIVERS = {"otlp": "receiver.otlp", "synthetic": "receiver.synthetic"}
PROCESSORS = {"normalize": "processors.normalize", "classify": "processors.classify"}
EXPORTERS = {"parquet": "storage.parquet", "memory": "exporters.memory"}

SECTIONS: dict[str, dict[str, str]] = {
    "receivers": RECEIVERS,
    "processors": PROCESSORS,
    "exporters": EXPORTERS,
}


def component_module(section: str, type_name: str) -> ModuleType:
    return importlib.import_module(SECTIONS[section][type_name])
