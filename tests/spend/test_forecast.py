"""The month-end forecast on generated daily spend with a known answer: its error stays within
the bound the README states, and the truth falls in the interval."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import date, timedelta

import numpy as np
import pytest

from spend.forecast import month_end_forecast

TODAY = date(2026, 3, 15)  # mid-month: 14 days spent, 17 ahead (today included)
MONTH_END = date(2026, 3, 31)


def history(daily: Callable[[int, date], float], noise: float, seed: int) -> tuple[dict[date, float], float]:
    """56 days before today and the rest of the month; the true month total (noise included)."""
    rng = np.random.default_rng(seed)
    start = TODAY - timedelta(days=56)
    out, truth = {}, 0.0
    for i in range((MONTH_END - start).days + 1):
        day = start + timedelta(days=i)
        value = max(0.0, daily(i, day) + rng.normal(0, noise))
        if day < TODAY:
            out[day] = value
        if day.month == TODAY.month:
            truth += value
    return out, truth


def weekly(day: date) -> float:
    return 40.0 if day.weekday() >= 5 else 100.0  # weekends are quiet


@pytest.mark.parametrize("seed", range(5))
def test_trend_and_weekly_season(seed: int) -> None:
    spend, truth = history(lambda i, d: weekly(d) + 0.8 * i, noise=5.0, seed=seed)
    f = month_end_forecast(spend, TODAY)
    assert f.method == "Holt-Winters, additive trend and weekly season"
    assert f.month_to_date == pytest.approx(sum(v for d, v in spend.items() if d >= TODAY.replace(day=1)))
    assert abs(f.month_end - truth) / truth < 0.03  # the stated bound: 3% on these histories
    assert f.low <= truth <= f.high


@pytest.mark.parametrize("seed", range(3))
def test_a_step_change_mid_month_is_followed(seed: int) -> None:
    # Spend doubles from March 8: a week of the new level before today.
    spend, truth = history(
        lambda i, d: weekly(d) * (2.0 if d >= date(2026, 3, 8) else 1.0), noise=5.0, seed=seed
    )
    f = month_end_forecast(spend, TODAY)
    assert abs(f.month_end - truth) / truth < 0.15  # a fresh level: the stated bound is 15%
    flat = sum(v for d, v in spend.items() if d >= TODAY.replace(day=1)) / 14 * 31
    assert abs(f.month_end - truth) < abs(flat - truth)  # better than extrapolating the month's mean


def test_a_new_tenant_with_a_few_days() -> None:
    spend = {TODAY - timedelta(days=n): 10.0 for n in (1, 2, 3)}
    f = month_end_forecast(spend, TODAY)
    assert (f.month_to_date, f.month_end, f.method) == (30.0, 30.0 + 10.0 * 17, "mean of the days so far")
    assert f.low == f.high == f.month_end  # three identical days: no spread


def test_the_month_never_ends_below_what_is_spent() -> None:
    # The first day of a month, nothing before it: today's spend so far stands for a day.
    first = TODAY.replace(day=1)
    f = month_end_forecast({first: 1.5}, first)
    days = calendar.monthrange(first.year, first.month)[1]
    assert (f.month_to_date, f.month_end, f.low) == (0.0, 1.5 * days, 1.5)
    assert f.method == "today's spend so far per day (no earlier day with spend)"
    # A spike today above everything the history predicts: the month ends at least there.
    spend = {TODAY - timedelta(days=n): 1.0 for n in range(1, 4)} | {TODAY: 500.0}
    g = month_end_forecast(spend, TODAY)
    assert g.month_end >= g.low >= 3.0 + 500.0
