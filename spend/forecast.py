"""Where the month's spend will end: Holt-Winters exponential smoothing (statsmodels) of the daily
spend, with an additive trend and a weekly season, and an interval from simulated futures.

Method: the daily spend of the history (up to 8 weeks before today, today excluded: it is not
over) is fitted with ``ExponentialSmoothing(trend="add", seasonal="add", seasonal_periods=7)``
(with fewer than two weeks of history, no season; with fewer than a week, the mean day); the
rest of the month (today included) is the fitted model's forecast, and the month-end total is
the month to date plus that, never below what is spent already (today's spend so far included).
With no earlier day at all, today's spend so far stands for a day (a lower bound). The interval
is the 5th to 95th percentile of 500 simulated futures (the model's own residual errors,
bootstrapped), floored at zero spend per day. ``tests/spend/test_forecast.py`` measures its
error on generated histories with a known answer (a trend, a weekly season, a step change mid-
month).

statsmodels (with pandas and scipy) is an optional dependency (``pip install
'agentwatch[forecast]'``, in the dev set): only the forecast needs it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

HISTORY_DAYS = 56
SIMULATIONS = 500


class ForecastUnavailable(RuntimeError):
    """statsmodels is not installed."""


def available() -> bool:
    """Whether statsmodels (the ``forecast`` extra) is installed."""
    import importlib.util

    return importlib.util.find_spec("statsmodels") is not None


@dataclass(frozen=True)
class Forecast:
    month_to_date: float
    month_end: float
    low: float
    high: float
    method: str


def month_end_forecast(daily: dict[date, float], today: date) -> Forecast:
    """The month-end spend of ``today``'s month from ``daily`` spend (missing days: 0)."""
    first = today.replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    start = min(first, today - timedelta(days=HISTORY_DAYS))
    history = np.array([daily.get(start + timedelta(days=i), 0.0) for i in range((today - start).days)])
    month_to_date = float(sum(v for d, v in daily.items() if first <= d < today))
    ahead = (last - today).days + 1
    known = np.flatnonzero(history)  # the first day with spend starts the history
    history = history[known[0] :] if known.size else history[:0]
    # Spent already, today's spend so far included: the month can end no lower.
    spent = month_to_date + daily.get(today, 0.0)
    if not len(history):
        # No earlier day: today's spend so far stands for a day (a lower bound: today is not over).
        per_day = daily.get(today, 0.0)
        point = month_to_date + per_day * ahead
        return Forecast(month_to_date, max(point, spent), spent, max(point * 2, spent),
                        "today's spend so far per day (no earlier day with spend)")  # fmt: skip
    if len(history) < 7:
        per_day = float(history.mean())
        spread = float(history.std()) * np.sqrt(ahead) if len(history) > 1 else per_day * ahead
        point = month_to_date + per_day * ahead
        return Forecast(month_to_date, max(point, spent), max(spent, point - 1.645 * spread),
                        max(point + 1.645 * spread, spent), "mean of the days so far")  # fmt: skip
    try:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing
    except ImportError as exc:
        raise ForecastUnavailable(
            "the month-end forecast needs statsmodels: pip install 'agentwatch[forecast]'"
        ) from exc
    seasonal = len(history) >= 14
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on short or flat series
        model = ExponentialSmoothing(
            history,
            trend="add",
            seasonal="add" if seasonal else None,
            seasonal_periods=7 if seasonal else None,
            initialization_method="estimated",
        ).fit()
        point_days = np.maximum(model.forecast(ahead), 0.0)
        paths = model.simulate(ahead, repetitions=SIMULATIONS, error="add", anchor="end",
                               random_state=np.random.default_rng(0))  # fmt: skip
    totals = np.maximum(np.asarray(paths), 0.0).sum(axis=0)
    low, high = np.percentile(totals, [5, 95])
    method = "Holt-Winters, additive trend" + (" and weekly season" if seasonal else "")
    return Forecast(
        month_to_date, max(spent, month_to_date + float(point_days.sum())),
        max(spent, month_to_date + float(low)), max(spent, month_to_date + float(high)), method,
    )  # fmt: skip
