"""A multi-judge ensemble: every member judges every case (one after another, in the order
configured), and each dimension is combined from the members that scored it:

- ``mean``: the value is the mean of the votes' values (4 decimals); the label is the scale's
  label nearest that value (the lower one on a tie);
- ``majority``: the label is the one most votes gave (on a tie, the lowest-valued of the tied:
  the cautious reading); the value is that label's.

How much the members disagreed is kept per dimension, so unstable cases are visible:
``spread`` is the highest vote's value less the lowest (0 when all agree) and ``dissent`` the
share of votes whose label is not the combined label; the votes themselves are kept too. A
member's problems are the ensemble's, prefixed with its name; its calls are the ensemble's
ledger. ``overall_score`` is the weighted mean of the combined dimensions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from evals.datasets import Case
from evals.judges.criteria import Rubrics
from evals.judges.scores import Judge, Judgement, Score, Vote, metrics
from evals.targets import TargetResult

COMBINE = ("mean", "majority")


class EnsembleJudge(Judge):
    def __init__(self, name: str, members: Sequence[Judge], combine: str = "mean",
                 rubrics: Rubrics | None = None) -> None:  # fmt: skip
        if combine not in COMBINE:
            raise ValueError(f"combine: {combine!r} is not one of {', '.join(COMBINE)}")
        self.name = name
        self.members = list(members)
        self.combine = combine
        self.rubrics = rubrics or Rubrics()
        self.wants_documents = any(m.wants_documents for m in self.members)
        models = ",".join(_model(m) for m in self.members)
        self.model = f"ensemble:{combine}({models})"

    def judge(self, case: Case, result: TargetResult) -> Judgement:
        judged = [(member.name, member.judge(case, result)) for member in self.members]
        votes: dict[str, list[tuple[str, Score]]] = {}
        for member, judgement in judged:
            for s in judgement.scores:
                votes.setdefault(s.dimension, []).append((member, s))
        scales = self.rubrics.scales
        combined = [self._combine(d, v, scales.get(d, {})) for d, v in votes.items()]
        ordered = self.rubrics.ordered(combined)
        problems = tuple(f"{member}: {p}" for member, j in judged for p in j.problems)
        calls = tuple(c for _, j in judged for c in j.calls)
        return Judgement(ordered, self.rubrics.overall(ordered), metrics(result, case), self.model, problems,
                         calls)  # fmt: skip

    def _combine(self, dimension: str, cast: list[tuple[str, Score]], scale: Mapping[str, float]) -> Score:
        values = [s.value for _, s in cast]
        labels = dict(scale)
        for _, s in cast:  # a label a member gave is a label of the dimension's scale
            labels.setdefault(s.label, s.value)
        if self.combine == "mean":
            value = round(sum(values) / len(values), 4)
            label = min(labels, key=lambda name: (abs(labels[name] - value), labels[name]))
        else:
            counts = Counter(s.label for _, s in cast)
            top = max(counts.values())
            label = min((name for name, n in counts.items() if n == top), key=lambda name: labels[name])
            value = labels[label]
        spread = round(max(values) - min(values), 4)
        dissent = round(sum(s.label != label for _, s in cast) / len(cast), 4)
        tally = ", ".join(f"{member}: {s.label}" for member, s in cast)
        why = f"{self.combine} of {len(cast)} judges ({tally})"
        return Score(dimension, label, value, why, tuple(Vote(m, s.label, s.value) for m, s in cast), spread,
                     dissent)  # fmt: skip

    def close(self) -> None:
        for member in self.members:
            member.close()


def _model(judge: Judge) -> str:
    model = getattr(judge, "model", None)
    return model if isinstance(model, str) else judge.name
