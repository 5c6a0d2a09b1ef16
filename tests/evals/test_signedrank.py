"""The signed-rank test agrees with scipy's (a dev dependency only, for this check) on random
paired changes: exact and approximate, with ties and zeros."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import wilcoxon

from evals.signedrank import signed_rank_p_less


def scipy_p(deltas: list[float]) -> float:
    return float(wilcoxon(deltas, alternative="less", zero_method="wilcox").pvalue)


def test_known_values() -> None:
    assert signed_rank_p_less([-10.0] * 8) == 1 / 256  # tied, but only 8 cases: exact
    assert signed_rank_p_less([-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0]) == 1 / 256
    assert signed_rank_p_less([1.0, 2.0, -3.0]) == 0.625  # T+ = 3: {}, {1}, {2}, {1,2}, {3} of 8
    assert signed_rank_p_less([0.0, 0.0]) == 1.0
    assert signed_rank_p_less([]) == 1.0


# Scores are on a 0-10 scale in steps of 2.5 (labels) or fractions (means): both kinds of data.
_labels = st.sampled_from([-10.0, -7.5, -5.0, -2.5, 0.0, 2.5, 5.0, 7.5, 10.0])
_reals = st.floats(min_value=-10, max_value=10, allow_nan=False).map(lambda x: round(x, 3))


@settings(deadline=None)
@given(st.lists(st.one_of(_labels, _reals), min_size=1, max_size=70))
def test_agrees_with_scipy(deltas: list[float]) -> None:
    if not any(deltas):
        assert signed_rank_p_less(deltas) == 1.0
        return
    assert signed_rank_p_less(deltas) == pytest.approx(scipy_p(deltas), rel=1e-9, abs=1e-12)
