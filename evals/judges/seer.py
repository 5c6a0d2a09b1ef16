"""Seer-compatible scoring (a judge's ``scale: seer``): Seer's categorical labels, scored under the
dimension names and weights of ``evals.seer.dimensions``.

The labels and their points are Seer's (issue 18): a graded dimension is ``full`` 10,
``substantial`` 7.5, ``partial`` 5, ``minimal`` 2.5 or ``failure`` 0; hallucination risk is
``low`` 10, ``medium`` 5 or ``high`` 0. Seer's dimension names and weights are not known here:
they are the user's, in ``evals.seer.dimensions`` (Seer's name → the built-in dimension or custom
criterion whose question is asked, and its weight), which ``agentwatch eval import-seer`` prints
from a Seer database's ``eval_criteria``. With none configured, the built-in dimensions keep
their names and agentwatch's weights. ``overall_score`` is the weighted mean, as on any scale.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from evals.config import EvalsConfig
from evals.judges.criteria import Criterion, Rubrics, rubrics_of
from evals.judges.scores import METRICS, OVERALL, SCALES, WEIGHTS
from evals.seer import SeerCriterion, SeerDatabase

GRADED: Mapping[str, float] = {
    "full": 10.0, "substantial": 7.5, "partial": 5.0, "minimal": 2.5, "failure": 0.0,
}  # fmt: skip
RISK: Mapping[str, float] = {"low": 10.0, "medium": 5.0, "high": 0.0}
RISK_DIMENSIONS = frozenset({"hallucination_risk"})
"""Built-in dimensions Seer scores on its risk scale; every other is graded."""


def seer_scale(dimension: str) -> Mapping[str, float]:
    """The Seer labels a built-in dimension is asked for."""
    return RISK if dimension in RISK_DIMENSIONS else GRADED


def label_value(label: str) -> float | None:
    """A Seer label's points (either scale, any case), None for a label of neither."""
    key = label.strip().lower()
    return GRADED.get(key, RISK.get(key))


def seer_rubrics(evals: EvalsConfig) -> Rubrics:
    """What a ``scale: seer`` judge scores: with ``evals.seer.dimensions``, exactly those, each
    under Seer's name and weight (a built-in dimension on Seer's labels, a custom criterion on its
    own scale); without, every built-in dimension on Seer's labels and every custom criterion."""
    base = rubrics_of(evals)
    mapping = evals.seer.dimensions
    if not mapping:
        builtin = {n: Criterion(n, c.ask, seer_scale(n), c.weight, c.guidance)
                   for n, c in base.builtin.items()}  # fmt: skip
        return Rubrics(base.custom, builtin)
    by_builtin = {d.dimension: (name, d.weight) for name, d in mapping.items()}
    builtin = {
        n: Criterion(by_builtin[n][0], c.ask, seer_scale(n), by_builtin[n][1], c.guidance, n)
        for n, c in base.builtin.items()
        if n in by_builtin and n in SCALES
    }
    custom = tuple(
        Criterion(by_builtin[c.name][0], c.ask, c.scale, by_builtin[c.name][1], c.guidance, c.name)
        for c in base.custom
        if c.name in by_builtin
    )
    return Rubrics(custom, builtin)


@dataclass(frozen=True)
class SeerDimensionFound:
    """One of Seer's dimensions as a Seer database has it, and what it maps to here."""

    name: str
    dimension: str | None
    """The built-in dimension or criterion judged for it; None: nothing known to map it to."""
    weight: float
    weight_source: str
    """``database``, else where the weight came from (said in the snippet)."""
    rubric: str | None
    scale: Mapping[str, float]
    criterion: str | None = None
    """A custom criterion to add under ``evals.criteria`` (from the database's rubric)."""


def found_dimensions(db: SeerDatabase, evals: EvalsConfig) -> tuple[list[SeerDimensionFound], list[str]]:
    """Seer's dimensions in ``db`` (``eval_criteria``, then names only ``eval_scores`` has), each
    mapped: a mapping already in ``evals.seer.dimensions`` wins, else the built-in dimension of the
    same name (snake_case), else a custom criterion made of its rubric; and notes on conflicts."""
    notes: list[str] = []
    rows: dict[str, list[SeerCriterion]] = {}
    for c in db.criteria:
        rows.setdefault(c.name, []).append(c)
    ids = {c.id for c in db.criteria if c.id is not None}
    for s in db.scores:
        if s.dimension not in ids:
            rows.setdefault(s.dimension, [])
    taken: set[str] = set()
    found = []
    for name, criteria in rows.items():
        weights = list(dict.fromkeys(c.weight for c in criteria if c.weight is not None))  # in table order
        if len(weights) > 1:
            notes.append(f"{name}: eval_criteria gives it weights {', '.join(f'{w:g}' for w in weights)}: "
                         f"the first, {weights[0]:g}, is used")  # fmt: skip
        rubric = next((c.rubric for c in criteria if c.rubric), None)
        kind = " ".join(c.scale or "" for c in criteria).lower()
        configured = evals.seer.dimensions.get(name)
        snake = _snake(name)
        criterion = None
        if configured is not None:
            dimension: str | None = configured.dimension
        elif snake in SCALES:
            dimension = snake
        elif rubric:
            usable = re.match(r"^[a-z]", snake) and snake not in (*METRICS, OVERALL)
            criterion = snake if usable else f"seer_{snake}"
            dimension = criterion
        else:
            dimension = None
        if dimension in taken:
            notes.append(f"{name}: {dimension} is judged for another Seer dimension already: not mapped")
            dimension = criterion = None
        taken |= {dimension} if dimension else set()
        if weights:
            weight, source = weights[0], "database"
        elif configured is not None:
            weight, source = configured.weight, "not in the database: your config's"
        elif dimension in WEIGHTS:
            weight, source = WEIGHTS[dimension], "not in the database: agentwatch's for " + dimension
        else:
            weight, source = 1.0, "not in the database: 1, set it"
        risky = "risk" in kind or "low" in re.split(r"[^a-z]+", kind) or dimension in RISK_DIMENSIONS
        scale = RISK if risky else GRADED
        found.append(SeerDimensionFound(name, dimension, weight, source, rubric, scale, criterion))
    return found, notes


_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}
"""Plain scalars YAML reads as something other than a string (booleans, null)."""


def _yaml_key(name: str) -> str:
    """``name`` as a YAML mapping key that reads back as that string."""
    plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name.lower() not in _YAML_WORDS
    return name if plain else json.dumps(name, ensure_ascii=False)


def _nameable(name: str) -> bool:
    """Whether ``evals.seer.dimensions`` takes ``name`` (``evals.config.SeerConfig.validate``)."""
    return bool(name.strip()) and name == name.strip() and name not in (OVERALL, "overall", *METRICS)


def _snake(name: str) -> str:
    """A Seer name as an agentwatch criterion's name: accents dropped, words joined by ``_``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", ascii_name).lower()
    return re.sub(r"[^a-z0-9]+", "_", spaced).strip("_")


def config_snippet(db: SeerDatabase, evals: EvalsConfig) -> str:
    """The ``evals:`` YAML that scores new runs under ``db``'s dimension names and weights."""
    found, notes = found_dimensions(db, evals)
    read = ", ".join(db.columns.get("eval_criteria", {}).values()) or "no eval_criteria table"
    lines = [f"# Seer's dimensions, read from {db.path.name} (eval_criteria: {read}).",
             "# A judge with scale: seer (under evals.judges) scores new runs under these names and weights.",
             *(f"# note: {n}" for n in notes), "evals:", "  seer:", "    dimensions:"]  # fmt: skip
    for d in found:
        key = _yaml_key(d.name)
        if not _nameable(d.name):
            lines.append(f"      # {key}: not a name a dimension can have here (empty, spaced, the overall"
                         " score or a metric): its scores are imported, new runs cannot score it")
            continue
        if d.dimension is None:
            lines.append(f"      # {key}: no dimension here has its name and the database has no rubric:"
                         f" map it with {{dimension: NAME, weight: {d.weight:g}}}")  # fmt: skip
            continue
        comment = "" if d.weight_source == "database" else f"  # weight {d.weight_source}"
        lines.append(f"      {key}: {{dimension: {_yaml_key(d.dimension)}, weight: {d.weight:g}}}{comment}")
    criteria = [d for d in found if d.criterion is not None and _nameable(d.name)]
    if criteria:
        lines.append("  criteria:")
    for d in criteria:
        scale = ", ".join(f"{label}: {points:g}" for label, points in d.scale.items())
        rubric = json.dumps(d.rubric, ensure_ascii=False)
        lines += [f"    {_yaml_key(str(d.criterion))}:", f"      rubric: {rubric}",
                  f"      scale: {{{scale}}}", f"      weight: {d.weight:g}"]  # fmt: skip
    return "\n".join(lines) + "\n"
