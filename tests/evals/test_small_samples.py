"""Small canaries fire (evals/diff.py, the small-sample rule): at n = 1, 2, 3 and 5 a real drop is
a regression and jitter is not, where the signed-rank test alone could never say so."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from evals.diff import diff
from storage.catalog import connect
from storage.tables import EvalRunRow, ScoreRow, write_rows

WHEN = datetime(2026, 6, 1, tzinfo=UTC)


def store(data: Path, run_id: str, values: list[float]) -> None:
    write_rows(data, "default", WHEN, [EvalRunRow(run_id, "bot", "canary", "canary.csv", "python:bot", "heuristic",
                                                  WHEN, WHEN, len(values), 0, None, "{}")])  # fmt: skip
    write_rows(data, "default", WHEN, [
        ScoreRow(f"{run_id}-{i}", "0000000000000001", "heuristic", "groundedness", v, None, None, "heuristic", WHEN,
                 run_id, f"c{i + 1}")
        for i, v in enumerate(values)
    ])  # fmt: skip


def judged(tmp_path: Path, baseline: list[float], candidate: list[float]) -> tuple[bool, str, str | None]:
    store(tmp_path, "base", baseline)
    store(tmp_path, "cand", candidate)
    (dimension,) = diff(connect(tmp_path), "base", "cand").dimensions
    return dimension.regressed, dimension.rule, dimension.reason


BASELINE = [9.3, 8.7, 9.0, 9.5, 8.8]
JITTER = [9.0, 9.1, 8.6, 9.4, 9.2]  # each case within half a point


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_a_real_drop_fires_and_jitter_does_not(tmp_path: Path, n: int) -> None:
    dropped = judged(tmp_path / "drop", BASELINE[:n], [2.9] * n)
    mean = sum(BASELINE[:n]) / n - 2.9
    assert dropped == (True, "small-sample", f"the mean fell {mean:.2f} points (more than 2)")
    assert judged(tmp_path / "jitter", BASELINE[:n], JITTER[:n]) == (False, "small-sample", None)


def test_one_case_falling_far_or_failing_is_a_regression(tmp_path: Path) -> None:
    # The mean is unchanged (one case fell 4, four rose 1), but one case fell more than 3 points.
    assert judged(tmp_path / "far", [8.0] * 5, [4.0, 9.0, 9.0, 9.0, 9.0]) == (
        True, "small-sample", "case c1 fell 4.00 points (more than 3)")  # fmt: skip
    # One case from pass to fail (7.5 to 6): a drop over the 1-point threshold across the mark.
    assert judged(tmp_path / "fail", [9.0, 9.0, 7.5], [9.0, 9.0, 6.0]) == (
        True, "small-sample", "case c3 went from pass to fail (7.5 to 6; the mark is 7)")  # fmt: skip
    # Across the mark by jitter (7.2 to 6.9) is no failure.
    assert judged(tmp_path / "edge", [9.0, 9.0, 7.2], [9.0, 9.0, 6.9]) == (False, "small-sample", None)


def test_six_cases_go_to_the_signed_rank_test(tmp_path: Path) -> None:
    regressed, rule, reason = judged(tmp_path, [9.0] * 6, [2.0] * 6)
    assert (regressed, rule) == (True, "signed-rank")
    assert reason == "the mean fell 7.00 points (more than 1), p = 0.0156 < 0.05"  # 1/2**6
