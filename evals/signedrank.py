"""The one-sided Wilcoxon signed-rank test of paired score changes: is the candidate lower?

Written here (about forty lines of textbook statistics) instead of importing scipy, a 140 MB
dependency that served only this test. It answers as ``scipy.stats.wilcoxon(deltas,
alternative="less", zero_method="wilcox")`` does (``tests/evals/test_signedrank.py`` checks it
against scipy on random samples, ties and zeros included):

- zero changes are dropped (Wilcoxon's method); the others are ranked by their absolute value,
  tied values sharing their mean rank;
- the statistic is ``T+``, the sum of the ranks of the positive changes; a small ``T+`` means
  the candidate scored lower;
- ``p`` is exact, the share of the ``2^n`` equally likely sign assignments whose ``T+`` is at
  most the observed one, when there are at most 50 cases, none unchanged and no tied ranks, or
  at most 13 cases at all (then the ties take their mean ranks in every assignment);
- otherwise ``p`` is the normal approximation with the tie correction of the variance and no
  continuity correction.
"""

from __future__ import annotations

import math

EXACT_UP_TO = 50
"""Cases (unchanged ones included) up to which an untied sample gets the exact p."""
EXACT_WITH_TIES_UP_TO = 13
"""Cases up to which a sample with ties or unchanged cases gets the exact p (2^13 assignments)."""


def signed_rank_p_less(deltas: list[float]) -> float:
    """p of "the candidate is lower" (``deltas``: candidate minus baseline, per case); 1.0
    when every change is zero."""
    changes = [d for d in deltas if d != 0]
    n = len(changes)
    if n == 0:
        return 1.0
    ranks = _ranks([abs(d) for d in changes])
    t_plus = sum(r for r, d in zip(ranks, changes, strict=True) if d > 0)
    tied = len(set(ranks)) < n or n < len(deltas)
    if len(deltas) <= (EXACT_WITH_TIES_UP_TO if tied else EXACT_UP_TO):
        # Mean ranks are whole or halves: doubled, every sum is a whole number.
        return _exact_p([round(2 * r) for r in ranks], round(2 * t_plus))
    counts: dict[float, int] = {}
    for r in ranks:
        counts[r] = counts.get(r, 0) + 1
    ties = sum(c**3 - c for c in counts.values())
    variance = n * (n + 1) * (2 * n + 1) / 24 - ties / 48
    if variance <= 0:
        return 1.0
    z = (t_plus - n * (n + 1) / 4) / math.sqrt(variance)
    return 0.5 * math.erfc(-z / math.sqrt(2))  # Φ(z)


def _ranks(values: list[float]) -> list[float]:
    """1-based ranks of ``values``, tied values sharing the mean of their ranks."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _exact_p(ranks: list[int], t_plus: int) -> float:
    """P(T+ <= t_plus) under the null, over whole ``ranks``: ways[s] counts the sign assignments
    whose positive ranks sum to s."""
    ways = [1] + [0] * sum(ranks)
    for rank in ranks:
        for total in range(len(ways) - 1, rank - 1, -1):
            ways[total] += ways[total - rank]
    return sum(ways[: t_plus + 1]) / (1 << len(ranks))
