"""Period forecasts: behaviour on crafted series, and a backtest against the run-rate baseline.

The backtest (``backtest_report``) replays seeded synthetic daily cost series — a weekly pattern
(quiet or shut-down weekends), multiplicative noise, occasional level shifts, one-off spikes and, for some,
a slow trend — cut off on several days inside each of three months, and scores the forecast of each
month's total: MAPE, and how often the 80% interval holds the real total. Run this file directly
(``python -m tests.unit.test_forecast``) to print the figures.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from tools.forecast import PeriodForecast, forecast_period, run_rate_forecast, threshold_crossings
from tools.periods import add_months

START = date(2024, 1, 1)
DAYS = 182  # 2024-01-01 .. 2024-06-30
MONTHS = (date(2024, 4, 1), date(2024, 5, 1), date(2024, 6, 1))
CUTOFF_DAYS = (3, 7, 10, 14, 18, 22, 26)  # days elapsed in the month at the cut-off
LOOKBACK = 90


def weekly(level: float, start: date, days: int, weekend: float = 0.4) -> list[float]:
    return [level * (weekend if (start + timedelta(days=i)).weekday() >= 5 else 1.0) for i in range(days)]


def _forecast(history: list[float], start: date, period_start: date, as_of: date) -> PeriodForecast:
    return forecast_period(start, history, period_start, add_months(period_start, 1), as_of)


# ----- behaviour -----------------------------------------------------------------------------------------
def test_weekly_seasonality_month_starting_on_a_weekend() -> None:
    # June 2024 starts on a Saturday: after 2 days (a weekend) the run rate badly underestimates the month
    start = date(2024, 3, 1)
    as_of = date(2024, 6, 3)
    series = weekly(1000.0, start, (as_of - start).days, weekend=0.2)
    fc = _forecast(series, start, date(2024, 6, 1), as_of)
    truth = sum(weekly(1000.0, date(2024, 6, 1), 30, weekend=0.2))
    assert fc.actual_to_date == Decimal("400.00")
    assert fc.forecast_total == pytest.approx(Decimal(truth), rel=Decimal("0.01"))
    rr = run_rate_forecast(start, series, date(2024, 6, 1), date(2024, 7, 1), as_of)
    assert rr.forecast_total == Decimal("6000.00")  # 200/day x 30
    assert fc.method == "seasonal-level"
    # the daily forecast keeps the weekly shape: Saturday 2024-06-08 is forecast at a fifth of a weekday
    sat = fc.daily_forecast[(date(2024, 6, 8) - fc.forecast_start).days]
    mon = fc.daily_forecast[(date(2024, 6, 10) - fc.forecast_start).days]
    assert sat == pytest.approx(mon * Decimal("0.2"), rel=Decimal("0.02"))


def test_level_shift_mid_history_forecast_follows_the_new_level() -> None:
    start = date(2024, 6, 1)
    as_of = date(2024, 9, 21)
    rng = np.random.default_rng(3)
    series = []
    for i in range((as_of - start).days):
        day = start + timedelta(days=i)
        level = 3000.0 if day < date(2024, 8, 19) else 5500.0
        series.append(level * (0.93 if day.weekday() >= 5 else 1.0) * float(rng.lognormal(0, 0.03)))
    fc = _forecast(series, start, date(2024, 9, 1), as_of)
    assert fc.level_since is not None
    assert abs((fc.level_since - date(2024, 8, 19)).days) <= 1
    per_day = fc.remaining / len(fc.daily_forecast)
    assert Decimal(5000) < per_day < Decimal(5700)


def test_short_history_falls_back() -> None:
    start = date(2024, 9, 10)
    as_of = date(2024, 9, 20)
    series = [100.0 + i for i in range(10)]
    fc = _forecast(series, start, date(2024, 9, 1), as_of)
    assert fc.method == "seasonal-naive"
    # the last week repeated: 2024-09-20 is forecast like 2024-09-13
    assert fc.daily_forecast[0] == Decimal("103.00")
    assert fc.lower <= fc.forecast_total <= fc.upper
    few = _forecast([50.0, 70.0, 60.0], date(2024, 9, 17), date(2024, 9, 1), as_of)
    assert few.method == "recent-mean"
    assert few.daily_forecast[0] == Decimal("60.00")
    assert few.actual_to_date == Decimal("180.00")
    assert few.forecast_total == Decimal("180.00") + 11 * Decimal("60.00")


def test_leading_zeros_are_not_history() -> None:
    # a service that started 5 days ago after 60 days of nothing: not a 65-day history of mostly zeros
    start = date(2024, 7, 17)
    series = [0.0] * 60 + [200.0] * 5
    as_of = start + timedelta(days=65)
    fc = _forecast(series, start, date(2024, 9, 1), as_of)
    assert fc.method == "recent-mean"
    assert fc.daily_forecast[0] == Decimal("200.00")


def test_all_zero_history() -> None:
    start = date(2024, 6, 1)
    as_of = date(2024, 9, 15)
    fc = _forecast([0.0] * (as_of - start).days, start, date(2024, 9, 1), as_of)
    assert fc.method == "zero"
    assert fc.forecast_total == fc.lower == fc.upper == Decimal("0.00")
    assert threshold_crossings(fc, Decimal(100), [Decimal("0.5"), Decimal(1)]) == {
        Decimal("0.5"): None,
        Decimal(1): None,
    }


def test_empty_history_and_complete_period() -> None:
    fc = forecast_period(date(2024, 9, 1), [], date(2024, 9, 1), date(2024, 10, 1), date(2024, 9, 1))
    assert fc.forecast_total == Decimal(0) and len(fc.daily_forecast) == 30
    start = date(2024, 8, 1)
    done = forecast_period(start, [10.0] * 40, date(2024, 8, 1), date(2024, 9, 1), date(2024, 9, 10))
    assert done.method == "actual" and done.daily_forecast == ()
    assert done.actual_to_date == done.forecast_total == done.lower == done.upper == Decimal("310.00")


def test_history_must_end_at_as_of() -> None:
    with pytest.raises(ValueError, match="history"):
        forecast_period(date(2024, 9, 1), [1.0] * 3, date(2024, 9, 1), date(2024, 10, 1), date(2024, 9, 5))


def test_interval_contains_forecast_and_never_goes_below_actual() -> None:
    rng = np.random.default_rng(7)
    start = date(2024, 5, 1)
    for as_of in (date(2024, 8, 2), date(2024, 8, 15), date(2024, 8, 30)):
        series = [float(v) for v in rng.gamma(2.0, 50.0, (as_of - start).days)]  # very noisy, >= 0
        for fc in (
            _forecast(series, start, date(2024, 8, 1), as_of),
            run_rate_forecast(start, series, date(2024, 8, 1), date(2024, 9, 1), as_of),
        ):
            assert fc.actual_to_date <= fc.lower <= fc.forecast_total <= fc.upper
            assert all(v >= 0 for v in fc.daily_forecast)
            assert fc.forecast_total == fc.actual_to_date + sum(fc.daily_forecast)


def test_negative_history_may_forecast_negative() -> None:
    start = date(2024, 6, 1)
    as_of = date(2024, 9, 10)
    series = [-100.0 + (i % 3) for i in range((as_of - start).days)]  # credits only
    fc = _forecast(series, start, date(2024, 9, 1), as_of)
    assert fc.forecast_total < 0
    assert fc.lower <= fc.forecast_total <= fc.upper


def test_one_offs_count_in_actuals_but_are_not_extrapolated() -> None:
    start = date(2024, 6, 1)
    as_of = date(2024, 9, 11)
    n = (as_of - start).days
    series = [100.0] * n
    one_offs = [0.0] * n
    one_offs[-5] = 5000.0  # a purchase on 2024-09-06
    fc = forecast_period(start, series, date(2024, 9, 1), date(2024, 10, 1), as_of, one_offs=one_offs)
    assert fc.actual_to_date == Decimal("6000.00")
    assert fc.forecast_total == Decimal("8000.00")
    rr = run_rate_forecast(start, series, date(2024, 9, 1), date(2024, 10, 1), as_of, one_offs=one_offs)
    assert rr.forecast_total == Decimal("18000.00")


def test_spike_is_not_a_level_shift() -> None:
    start = date(2024, 6, 1)
    as_of = date(2024, 9, 16)
    series = [1000.0 + 10 * (i % 2) for i in range((as_of - start).days)]
    series[-3] = 9000.0
    fc = _forecast(series, start, date(2024, 9, 1), as_of)
    assert fc.level_since is None
    assert all(Decimal(990) <= v <= Decimal(1020) for v in fc.daily_forecast)


def test_crossings_monotonic_in_threshold() -> None:
    start = date(2024, 6, 1)
    as_of = date(2024, 9, 11)
    series = weekly(1000.0, start, (as_of - start).days, weekend=0.5)
    fc = _forecast(series, start, date(2024, 9, 1), as_of)
    thresholds = [Decimal(t) for t in ("0.1", "0.25", "0.5", "0.75", "0.9", "1.0", "1.2", "2")]
    crossed = threshold_crossings(fc, Decimal(25000), thresholds)
    dates = [crossed[t] for t in thresholds]
    known = [d for d in dates if d is not None]
    assert known == sorted(known)
    assert dates.index(None) == len(known)  # only the highest thresholds are never reached
    # 2500: Sunday 1st 500 + Monday 1000 + Tuesday 1000 -> reached on Tuesday 2024-09-03 (history)
    assert crossed[Decimal("0.1")] == date(2024, 9, 3)
    assert crossed[Decimal("2")] is None
    # 25000 is reached in the forecast, on the day the cumulative actual + forecast gets there
    cum = Decimal(0)
    for i, v in enumerate((*fc.daily_actual, *fc.daily_forecast)):
        cum += v
        if cum >= 25000:
            assert crossed[Decimal("1.0")] == date(2024, 9, 1) + timedelta(days=i)
            break
    # without daily actuals an already-crossed threshold is dated as_of
    bare = dataclasses.replace(fc, daily_actual=())
    assert threshold_crossings(bare, Decimal(25000), [Decimal("0.1")]) == {Decimal("0.1"): as_of}


# ----- backtest ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Synthetic:
    values: tuple[float, ...]
    kind: str


def synthetic_series(seed: int = 20240921, count: int = 40) -> list[Synthetic]:
    """Seeded daily cost series from START over DAYS days."""
    rng = np.random.default_rng(seed)
    out = []
    weekdays = np.array([(START + timedelta(days=i)).weekday() for i in range(DAYS)])
    for s in range(count):
        kind = ("quiet-weekend", "shutdown-weekend", "flat-week", "trend")[s % 4]
        level = float(rng.lognormal(7.0, 1.2))
        pattern = 1.0 + rng.normal(0.0, 0.05, 7)
        if kind == "quiet-weekend":
            pattern[5:] = rng.uniform(0.3, 0.8, 2)
        elif kind == "shutdown-weekend":
            pattern[5:] = rng.uniform(0.02, 0.1, 2)
        elif kind == "trend":
            pattern[5:] = rng.uniform(0.5, 0.9, 2)
        path = np.full(DAYS, level)
        for _ in range(rng.poisson(1.5)):  # level shifts
            at = int(rng.integers(10, DAYS))
            path[at:] *= float(np.exp(rng.normal(0.0, 0.45)))
        if kind == "trend":
            path *= np.exp(rng.uniform(0.001, 0.006) * np.arange(DAYS))
        noise = rng.lognormal(0.0, rng.uniform(0.02, 0.12), DAYS)
        values = path * pattern[weekdays] * noise
        for _ in range(rng.poisson(1.0)):  # one-off spikes
            values[int(rng.integers(0, DAYS))] *= float(rng.uniform(2.0, 5.0))
        out.append(Synthetic(tuple(float(v) for v in values), kind))
    return out


def backtest_report(seed: int = 20240921, count: int = 40) -> dict[str, Any]:
    """MAPE of the month-end total and 80% interval coverage, forecast vs run rate, over the synthetic
    series x MONTHS x CUTOFF_DAYS."""
    t0 = time.perf_counter()
    errors: dict[str, list[float]] = {"forecast": [], "run_rate": []}
    covered: dict[str, list[bool]] = {"forecast": [], "run_rate": []}
    by_cutoff: dict[int, dict[str, list[float]]] = {k: {"forecast": [], "run_rate": []} for k in CUTOFF_DAYS}
    for series in synthetic_series(seed, count):
        for month in MONTHS:
            end = add_months(month, 1)
            lo, hi = (month - START).days, (end - START).days
            truth = sum(series.values[lo:hi])
            for k in CUTOFF_DAYS:
                as_of = month + timedelta(days=k)
                cut = (as_of - START).days
                first = max(0, cut - LOOKBACK)
                history = list(series.values[first:cut])
                hs = START + timedelta(days=first)
                for name, fn in (("forecast", forecast_period), ("run_rate", run_rate_forecast)):
                    fc = fn(hs, history, month, end, as_of)
                    err = abs(float(fc.forecast_total) - truth) / truth
                    errors[name].append(err)
                    by_cutoff[k][name].append(err)
                    covered[name].append(float(fc.lower) <= truth <= float(fc.upper))
    return {
        "series": count,
        "forecasts": len(errors["forecast"]),
        "mape": {name: round(100 * float(np.mean(v)), 2) for name, v in errors.items()},
        "median_ape": {name: round(100 * float(np.median(v)), 2) for name, v in errors.items()},
        "coverage_80": {name: round(100 * float(np.mean(v)), 1) for name, v in covered.items()},
        "mape_by_cutoff_day": {
            k: {name: round(100 * float(np.mean(v)), 2) for name, v in d.items()}
            for k, d in by_cutoff.items()
        },
        "seconds": round(time.perf_counter() - t0, 2),
    }


def test_backtest_beats_run_rate_on_seasonal_series() -> None:
    report = backtest_report()
    print(
        f"\nbacktest ({report['forecasts']} forecasts): MAPE forecast {report['mape']['forecast']}% vs "
        f"run-rate {report['mape']['run_rate']}%; 80% interval coverage {report['coverage_80']}; "
        f"by cut-off day {report['mape_by_cutoff_day']}; {report['seconds']} s"
    )
    assert report["mape"]["forecast"] < 0.75 * report["mape"]["run_rate"]
    assert report["mape"]["forecast"] < 6.0
    assert 70.0 <= report["coverage_80"]["forecast"] <= 92.0
    # early in the month is where the run rate is worst and a seasonal model helps most
    early = report["mape_by_cutoff_day"][CUTOFF_DAYS[0]]
    assert early["forecast"] < 0.5 * early["run_rate"]


if __name__ == "__main__":
    import json

    print(json.dumps(backtest_report(), indent=2))
