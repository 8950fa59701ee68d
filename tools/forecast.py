"""Period-end spend forecasts with prediction intervals, and threshold-crossing dates. Pure numerics, no I/O.

``forecast_period`` forecasts the days left in a period (a month, a quarter) from the daily history before
``as_of`` (missing days are zeros; callers fill the gaps). Method, on the history since its first non-zero
day (at most the last ``WINDOW`` days):

1. **Weekly seasonality.** Weekday factors are the median ratio of each day to its centred 7-day mean
   (a ratio to the *local* mean, so level shifts do not bias them), shrunk towards 1 when fewer than three
   weeks back them. A series with credits (negative days) gets additive weekday offsets instead.
2. **Spikes clipped.** The deseasonalised series is clipped to a rolling median +- ``CLIP_Z`` robust noise
   units (noise = MAD of day-to-day differences), so a one-off charge neither moves the level nor is
   extrapolated.
3. **Latest level shift.** Repeated binary segmentation into straight-line pieces (largest SSE gain,
   BIC-like penalty, pieces of at least ``MIN_SEGMENT`` days) finds the start of the current regime: a
   step splits the series, a steady trend does not. Only the regime's days inform the level, and a regime
   of ``REGIME_PATTERN_DAYS`` or more gets its own weekly pattern (a new service changes the mix).
4. **Level and trend.** The level is the mean of the regime's last ``LEVEL_DAYS`` days. A linear trend is
   used only when the regime is long (``TREND_MIN_DAYS``) and the slope clearly significant (``TREND_T``);
   it is damped by ``DAMPING`` per day ahead.
5. **Forecast.** level x weekday factor for every remaining day, never negative for a non-negative history.
6. **Interval.** Normal approximation of the remaining total: daily noise, the level's estimation error and
   a random-walk allowance for the level drifting over the horizon (``DRIFT``, calibrated on the backtest
   in tests/unit/test_forecast.py).

Fewer than ``MIN_HISTORY`` days since the first non-zero day fall back to a seasonal-naive forecast (the
last week repeated; 7-13 days) or the mean of the days there are (1-6 days); an all-zero history forecasts
zero. ``run_rate_forecast`` is the straight-line baseline (actual to date / days elapsed x period days)
that budgets used so far, kept for comparison. On the backtest, statsmodels' damped additive Holt-Winters
(period 7) did worse than this method (MAPE 5.4% vs 4.1% then; run rate 8.2%) and takes ~0.2 s a fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

WINDOW = 91  # days of history the model looks at
MIN_HISTORY = 14  # days since the first non-zero day below which the seasonal model is not used
MIN_SEGMENT = 5  # shortest regime a level shift can open
SHIFT_PENALTY = 4.0  # BIC-like penalty factor (x noise variance x log n) a split must beat
CLIP_Z = 4.0  # spike clipping, in robust noise units around a rolling median
LEVEL_DAYS = 28  # the level is the mean of the regime's last days
TREND_MIN_DAYS = 28  # shortest regime a trend is estimated on
TREND_T = 4.0  # |t| a slope must exceed to be used
DAMPING = 0.98  # per-day damping of a trend ahead
DRIFT = 0.45  # random-walk level drift per day, as a share of the daily noise (interval calibration)
REGIME_PATTERN_DAYS = 21  # a regime this long gets its own weekly pattern
MIN_FACTOR = 0.15  # weekdays below this share of the mean (e.g. dev shut down on weekends) carry no level
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class PeriodForecast:
    """Spend of ``[period_start, period_end)`` as seen on ``as_of``: actual before it, forecast after.

    ``forecast_total``, ``lower`` and ``upper`` are whole-period totals (actual to date included);
    ``daily_forecast`` covers the remaining days of the period (from ``max(as_of, period_start)``),
    ``daily_actual`` its elapsed days. ``level_since`` is the day the current level started when a level
    shift was found.
    """

    period_start: date
    period_end: date  # exclusive
    as_of: date
    actual_to_date: Decimal
    forecast_total: Decimal
    lower: Decimal
    upper: Decimal
    method: str
    daily_forecast: tuple[Decimal, ...]
    daily_actual: tuple[Decimal, ...] = ()
    interval: float = 0.8
    level_since: date | None = None

    @property
    def forecast_start(self) -> date:
        """The first forecast day."""
        return min(max(self.as_of, self.period_start), self.period_end)

    @property
    def remaining(self) -> Decimal:
        return self.forecast_total - self.actual_to_date

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": {"from": self.period_start.isoformat(), "to": self.period_end.isoformat()},
            "as_of": self.as_of.isoformat(),
            "actual_to_date": self.actual_to_date,
            "forecast": self.forecast_total,
            "lower": self.lower,
            "upper": self.upper,
            "interval": self.interval,
            "method": self.method,
            "level_since": self.level_since.isoformat() if self.level_since else None,
        }


@dataclass(frozen=True)
class _Projection:
    """Mean forecast for the next ``mean.size`` days and the variance of the sum of any tail of them."""

    mean: FloatArray
    method: str
    noise: FloatArray  # daily noise sd, per day ahead
    weight: FloatArray  # how much a unit change of the level moves each day
    level_var: float  # variance of the level estimate
    drift_var: float  # random-walk level variance per day
    trend_var: float = 0.0  # variance of the slope (trend models only)
    trend_gain: FloatArray | None = None  # d(day value)/d(slope), per day ahead
    level_since: int | None = None  # index into the history

    def tail_variance(self, start: int) -> float:
        """Variance of the sum of days ``start ..`` ahead."""
        w = self.weight.copy()
        w[:start] = 0.0
        var = float(np.sum(self.noise[start:] ** 2)) + float(w.sum()) ** 2 * self.level_var
        # a level drifting as a random walk: innovation j moves every later day
        reach = np.cumsum(w[::-1])[::-1]
        var += self.drift_var * float(np.sum(reach**2))
        if self.trend_gain is not None:
            var += float(np.sum(self.trend_gain[start:])) ** 2 * self.trend_var
        return var


# ----- public API ----------------------------------------------------------------------------------------
def forecast_period(
    history_start: date,
    history: Sequence[float],
    period_start: date,
    period_end: date,
    as_of: date,
    *,
    interval: float = 0.8,
    one_offs: Sequence[float] | None = None,
) -> PeriodForecast:
    """Forecast of the period's total from the daily ``history`` (``history_start`` up to ``as_of``
    exclusive, gaps as 0) with a weekly-seasonal, level-shift-aware model and an ``interval`` (0.8 = 80%)
    prediction interval. ``one_offs`` (same days as ``history``) are charges counted in the actuals but
    not modelled (purchases, taxes: they do not recur).
    """
    x, extra = _validate(history_start, history, period_start, period_end, as_of, interval, one_offs)
    horizon = max(0, (period_end - as_of).days)
    projection = _project(x, history_start, horizon) if horizon else None
    return _assemble(x, extra, history_start, period_start, period_end, as_of, interval, projection)


def run_rate_forecast(
    history_start: date,
    history: Sequence[float],
    period_start: date,
    period_end: date,
    as_of: date,
    *,
    interval: float = 0.8,
    one_offs: Sequence[float] | None = None,
) -> PeriodForecast:
    """The straight-line baseline: actual to date / days elapsed x days of the period (before the period
    starts: the mean of the last 7 days). Interval from the spread of the days it averages."""
    x, extra = _validate(history_start, history, period_start, period_end, as_of, interval, one_offs)
    horizon = max(0, (period_end - as_of).days)
    projection = None
    if horizon:
        total = x + extra
        first = max(0, (period_start - history_start).days)
        days = total[first:] if first < total.size else total[:0]
        if days.size == 0:
            days = total[-7:]
        projection = _flat(days, horizon, "run-rate", nonneg=bool(total.min(initial=0.0) >= 0))
    return _assemble(x, extra, history_start, period_start, period_end, as_of, interval, projection)


def threshold_crossings(
    forecast: PeriodForecast, amount: Decimal, thresholds: Sequence[Decimal]
) -> dict[Decimal, date | None]:
    """The day on which cumulative spend (actual, then forecast) first reaches ``threshold x amount``, for
    every threshold: a day of the history when it was already crossed (``as_of`` when the daily actuals
    are unknown), None when the period ends first."""
    days: list[tuple[date, Decimal]] = []
    cum = Decimal(0)
    elapsed = (forecast.forecast_start - forecast.period_start).days
    known = len(forecast.daily_actual) == elapsed
    if known:
        for i, v in enumerate(forecast.daily_actual):
            cum += v
            days.append((forecast.period_start + timedelta(days=i), cum))
    else:
        cum = forecast.actual_to_date
    for i, v in enumerate(forecast.daily_forecast):
        cum += v
        days.append((forecast.forecast_start + timedelta(days=i), cum))
    out: dict[Decimal, date | None] = {}
    for t in thresholds:
        target = t * amount
        if target <= 0:
            out[t] = forecast.period_start
        elif not known and forecast.actual_to_date >= target:
            out[t] = forecast.forecast_start
        else:
            out[t] = next((d for d, c in days if c >= target), None)
    return out


# ----- assembly ------------------------------------------------------------------------------------------
def _validate(
    history_start: date,
    history: Sequence[float],
    period_start: date,
    period_end: date,
    as_of: date,
    interval: float,
    one_offs: Sequence[float] | None,
) -> tuple[FloatArray, FloatArray]:
    if period_end <= period_start:
        raise ValueError(f"empty period {period_start}..{period_end}")
    if not 0.0 < interval < 1.0:
        raise ValueError(f"interval must be in (0, 1), got {interval}")
    expected = (as_of - history_start).days
    if len(history) != max(expected, 0):
        raise ValueError(f"history has {len(history)} days; {history_start} to {as_of} is {expected}")
    x = np.asarray(history, dtype=np.float64)
    extra = np.zeros_like(x) if one_offs is None else np.asarray(one_offs, dtype=np.float64)
    if extra.shape != x.shape:
        raise ValueError("one_offs must cover the same days as history")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(extra))):
        raise ValueError("history must be finite")
    return x, extra


def _money(value: float) -> Decimal:
    return Decimal(repr(round(float(value), 2))).quantize(_CENT)


def _exact(value: float) -> Decimal:
    """A float that came from a decimal figure, back to that figure (shortest repr round-trips)."""
    return Decimal(repr(float(value)))


def _assemble(
    x: FloatArray,
    extra: FloatArray,
    history_start: date,
    period_start: date,
    period_end: date,
    as_of: date,
    interval: float,
    projection: _Projection | None,
) -> PeriodForecast:
    elapsed_end = min(max(as_of, period_start), period_end)
    daily_actual: list[Decimal] = []
    actual = Decimal(0)
    for i in range((elapsed_end - period_start).days):
        j = (period_start - history_start).days + i
        if 0 <= j < x.size:
            value = _exact(x[j]) + _exact(extra[j])
            actual += value
            daily_actual.append(value.quantize(_CENT))
        else:
            daily_actual.append(Decimal("0.00"))
    actual = actual.quantize(_CENT)
    if projection is None:
        return PeriodForecast(
            period_start,
            period_end,
            as_of,
            actual,
            actual,
            actual,
            actual,
            "actual",
            (),
            tuple(daily_actual),
            interval,
        )
    skip = projection.mean.size - (period_end - elapsed_end).days  # forecast days before the period starts
    daily = tuple(_money(v) for v in projection.mean[skip:])
    remaining = sum(daily, Decimal(0))
    spread = NormalDist().inv_cdf(0.5 + interval / 2) * math.sqrt(max(projection.tail_variance(skip), 0.0))
    nonneg = bool(x.min(initial=0.0) >= 0 and extra.min(initial=0.0) >= 0)
    lo = float(remaining) - spread
    lower = min(_money(max(lo, 0.0) if nonneg else lo), remaining)
    upper = max(_money(float(remaining) + spread), remaining)
    since = None
    if projection.level_since is not None:
        since = history_start + timedelta(days=projection.level_since)
    return PeriodForecast(
        period_start,
        period_end,
        as_of,
        actual,
        actual + remaining,
        actual + lower,
        actual + upper,
        projection.method,
        daily,
        tuple(daily_actual),
        interval,
        since,
    )


# ----- models --------------------------------------------------------------------------------------------
def _flat(days: FloatArray, horizon: int, method: str, *, nonneg: bool) -> _Projection:
    """The mean of ``days`` for every day ahead; noise from their spread."""
    n = days.size
    level = float(days.mean()) if n else 0.0
    if nonneg:
        level = max(level, 0.0)
    sd = float(days.std(ddof=1)) if n >= 2 else abs(level) * 0.5
    return _Projection(
        mean=np.full(horizon, level),
        method=method,
        noise=np.full(horizon, sd),
        weight=np.ones(horizon),
        level_var=sd**2 / max(n, 1),
        drift_var=0.0,
    )


def _project(x: FloatArray, history_start: date, horizon: int) -> _Projection:
    """Forecast of the ``horizon`` days after the history."""
    nonzero = np.flatnonzero(x)
    if nonzero.size == 0:
        return _Projection(np.zeros(horizon), "zero", np.zeros(horizon), np.zeros(horizon), 0.0, 0.0)
    first = max(int(nonzero[0]), x.size - WINDOW)
    y = x[first:]
    nonneg = bool(x.min() >= 0)
    if y.size < 7:
        return _flat(y, horizon, "recent-mean", nonneg=nonneg)
    if y.size < MIN_HISTORY:
        return _seasonal_naive(y, horizon, nonneg=nonneg)
    return _seasonal_level(y, history_start + timedelta(days=first), horizon, first, nonneg=nonneg)


def _seasonal_naive(y: FloatArray, horizon: int, *, nonneg: bool) -> _Projection:
    """The last week repeated; noise from week-on-week differences (or the spread of the days)."""
    week = y[-7:]
    mean = np.resize(week, horizon).astype(np.float64)
    if nonneg:
        mean = np.maximum(mean, 0.0)
    diffs = y[7:] - y[:-7]
    sd = float(np.sqrt(np.mean(diffs**2) / 2)) if diffs.size else float(np.std(y, ddof=1))
    return _Projection(
        mean=mean,
        method="seasonal-naive",
        noise=np.full(horizon, sd),
        weight=np.ones(horizon),
        level_var=sd**2 / 7,
        drift_var=(DRIFT * sd) ** 2,
    )


def _weekday_pattern(y: FloatArray, weekdays: NDArray[np.int64], multiplicative: bool) -> FloatArray:
    """Per-weekday factors (multiplicative, mean 1) or offsets (additive, mean 0), robust to level shifts."""
    local = np.convolve(y, np.ones(7) / 7, mode="valid")  # centred 7-day mean of days 3 .. n-4
    core = y[3 : 3 + local.size]
    wd = weekdays[3 : 3 + local.size]
    ratio = core / local if multiplicative else core - local
    neutral = 1.0 if multiplicative else 0.0
    pattern = np.full(7, neutral)
    for k in range(7):
        r = ratio[wd == k]
        if r.size:
            shrink = min(1.0, r.size / 3.0)  # one or two weeks seen: a third or two thirds of the way
            pattern[k] = neutral + (float(np.median(r)) - neutral) * shrink
    if multiplicative:
        total = float(pattern.sum())
        return pattern * 7 / total if total > 0 else np.ones(7)
    return pattern - float(pattern.mean())


def _robust_sd(v: FloatArray) -> float:
    """Noise sd from the MAD of day-to-day differences (steps and spikes barely move it)."""
    d = np.diff(v)
    if d.size < 2:
        return 0.0
    mad = float(np.median(np.abs(d - np.median(d))))
    return 1.4826 * mad / math.sqrt(2.0)


def _rolling_median(v: FloatArray, half: int = 3) -> FloatArray:
    return np.array([np.median(v[max(0, i - half) : i + half + 1]) for i in range(v.size)])


def _segment_sse(
    n: FloatArray, st: FloatArray, stt: FloatArray, sy: FloatArray, sty: FloatArray, syy: FloatArray
) -> FloatArray:
    """Residual sum of squares of a least-squares line through each segment, from its sums."""
    with np.errstate(divide="ignore", invalid="ignore"):
        sxx = stt - st**2 / n
        sxy = sty - st * sy / n
        sse = syy - sy**2 / n - np.where(sxx > 0, sxy**2 / np.where(sxx > 0, sxx, 1.0), 0.0)
    return np.maximum(sse, 0.0)


def _last_regime(t: FloatArray, v: FloatArray, sd: float) -> int:
    """Index where the current regime starts (0 when no break stands out). Each regime is a line, so a
    steady trend stays one regime and a step splits it."""
    lo = 0
    while v.size - lo >= 2 * MIN_SEGMENT:
        tt, seg = t[lo:] - t[lo], v[lo:]
        m = seg.size
        sums = [np.cumsum(a) for a in (np.ones(m), tt, tt**2, seg, tt * seg, seg**2)]
        left = [a[:-1] for a in sums]
        right = [a[-1] - a[:-1] for a in sums]
        gain = _segment_sse(*[a[-1:] for a in sums]) - _segment_sse(*left) - _segment_sse(*right)
        gain[: MIN_SEGMENT - 1] = 0.0
        gain[m - MIN_SEGMENT :] = 0.0
        best = int(np.argmax(gain))
        if gain[best] <= SHIFT_PENALTY * max(sd, 1e-12) ** 2 * math.log(m):
            break
        lo += best + 1
    return lo


def _deseasonalise(
    y: FloatArray, seasonal: FloatArray, multiplicative: bool
) -> tuple[FloatArray, NDArray[np.int64], FloatArray, float]:
    """The seasonal component (history and ahead), the days that carry a level, their deseasonalised
    values with spikes clipped, and the robust noise sd."""
    n = y.size
    if multiplicative:
        usable = seasonal[:n] >= MIN_FACTOR
        d = np.where(usable, y / np.where(usable, seasonal[:n], 1.0), 0.0)[usable]
    else:
        usable = np.ones(n, dtype=bool)
        d = y - seasonal[:n]
    sd = _robust_sd(d)
    med = _rolling_median(d)
    return seasonal, np.flatnonzero(usable), np.clip(d, med - CLIP_Z * sd, med + CLIP_Z * sd), sd


def _seasonal_level(y: FloatArray, start: date, horizon: int, offset: int, *, nonneg: bool) -> _Projection:
    n = y.size
    weekdays = (np.arange(n + horizon, dtype=np.int64) + start.weekday()) % 7
    scale = float(np.mean(np.abs(y)))
    multiplicative = nonneg and float(np.convolve(y, np.ones(7) / 7, mode="valid").min()) > 1e-9 * scale
    pattern = _weekday_pattern(y, weekdays[:n], multiplicative)
    seasonal, idx, d, sd = _deseasonalise(y, pattern[weekdays], multiplicative)
    regime = _last_regime(idx.astype(np.float64), d, sd)
    since = int(idx[regime])
    if regime > 0 and n - since >= REGIME_PATTERN_DAYS:
        # the weekly pattern of the current regime (a mix of services changes it), its level on that basis
        pattern = _weekday_pattern(y[since:], weekdays[since:n], multiplicative)
        seasonal, idx, d, sd = _deseasonalise(y, pattern[weekdays], multiplicative)
        regime = int(np.searchsorted(idx, since))
    r = d[regime:]
    t = idx[regime:].astype(np.float64)
    level = float(r[-LEVEL_DAYS:].mean())
    level_var = sd**2 / min(r.size, LEVEL_DAYS)
    path = np.full(horizon, level)
    method = "seasonal-level"
    trend_var, trend_gain = 0.0, None
    if r.size >= TREND_MIN_DAYS:
        tc = t - t.mean()
        sxx = float(np.sum(tc**2))
        slope = float(np.sum(tc * (r - r.mean())) / sxx)
        resid = r - r.mean() - slope * tc
        se = math.sqrt(float(np.sum(resid**2)) / max(r.size - 2, 1) / sxx)
        if se > 0 and abs(slope) > TREND_T * se:
            damp = np.cumsum(DAMPING ** np.arange(1, horizon + 1, dtype=np.float64))
            end = float(r.mean() + slope * (t[-1] - t.mean()))
            path = end + slope * damp
            level, level_var = end, float(np.sum(resid**2)) / max(r.size - 2, 1) / r.size
            trend_var, trend_gain = se**2, (damp + (t[-1] - t.mean())) * 1.0
            method = "seasonal-trend"
    future = seasonal[n:]
    if multiplicative:
        mean, weight, noise = path * future, future.copy(), sd * future
        if trend_gain is not None:
            trend_gain = trend_gain * future
    else:
        mean, weight, noise = path + future, np.ones(horizon), np.full(horizon, sd)
    if nonneg:
        mean = np.maximum(mean, 0.0)
    level_since = offset + int(idx[regime]) if regime > 0 else None
    return _Projection(
        mean=mean,
        method=method,
        noise=noise,
        weight=weight,
        level_var=level_var,
        drift_var=(DRIFT * sd) ** 2,
        trend_var=trend_var,
        trend_gain=trend_gain,
        level_since=level_since,
    )
