"""The floor plan holds: packages depend downward only (see ARCHITECTURE.md, "Layers").

Every import between the project's packages, at module level or inside a function, goes to a
package on a lower floor; packages on the same floor never import each other; ``core`` imports
nothing else of the project.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOORS: dict[str, int] = {
    "core": 0,
    "storage": 1,
    "events": 1,
    "processors": 2,
    "feedback": 2,
    "exporters": 2,
    "evals": 3,
    "spend": 3,
    "report": 4,
    "alerting": 4,
    "health": 4,
    "receiver": 5,
    "dashboard": 5,
    "agentwatch": 6,
}


def imports(package: str) -> list[tuple[str, str]]:
    """(file, imported module) for every import of another project package in ``package``."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in FLOORS and top != package:
                    found.append((str(path.relative_to(ROOT)), module))
    return found


def test_every_package_has_a_floor() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert packages == set(FLOORS)


def test_packages_depend_downward_only() -> None:
    upward = [
        f"{path} imports {module} ({package}: floor {FLOORS[package]}, {module.split('.')[0]}: "
        f"floor {FLOORS[module.split('.')[0]]})"
        for package in FLOORS
        for path, module in imports(package)
        if FLOORS[module.split(".")[0]] >= FLOORS[package]
    ]
    assert upward == []


def test_core_imports_nothing_of_the_project() -> None:
    assert imports("core") == []
