"""Reading and checking a config loads neither the normaliser's kernels (numba) nor polars: the
server process converts in worker processes, and its start must not pay for them."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.process

CHECK = """
import sys
from agentwatch.config import parse_config
from agentwatch.registry import component_module
config = parse_config("processors:\\n  classify:\\n    disable: [refusal]\\n", "x.yaml")
for section, type_name in (("processors", "normalize"), ("processors", "classify")):
    component_module(section, type_name)
print(sorted(m for m in ("numba", "polars", "llvmlite") if m in sys.modules))
"""


def test_reading_a_config_imports_no_kernels_and_no_polars() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
