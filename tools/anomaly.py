"""Anomaly detection on daily cost (or usage) series, with contribution analysis. Pure numerics, no I/O.

Method, per series (missing days are zeros; callers fill the gaps):

1. **Warm-up.** Nothing before the series' first non-zero day counts; its first ``WARM_UP`` days are never
   alerted (a new service's start is not an anomaly) and fewer than ``MIN_HISTORY`` days of history give
   no detection at all.
2. **Robust weekly seasonality.** Values go through ``asinh(x / c)`` (log-like for costs, linear near zero,
   defined for credits), so a quiet weekend is a multiplicative pattern that survives a level shift;
   statsmodels' robust STL (period 7) gives the weekly component, spikes get low weights.
3. **Robust scale.** Noise is the MAD of the day-to-day differences of the deseasonalised series (spikes
   and steps do not inflate it).
4. **Walk forward** with a trailing baseline: the median of the last ``BASELINE_DAYS`` deseasonalised
   days of the current regime, leaving out days already flagged. A day far from it starts a candidate:
   - **sustained** (level shift or drift) when the following week stays away from the baseline: a
     step and a ramp model are fitted (L1) around the change; the better one gives the kind and the
     change day. It is reported once, from the change day to the next change (or the series end), and
     the baseline restarts in the new regime;
   - **spike** (1-3 days, then back to normal) otherwise, unless the same day of the month (±1 day;
     last-of-month counts as such) stood out the same way in an earlier month: a recurring month-start
     or month-end charge is not an anomaly. A drop to exactly zero is read as missing data.
5. **Materiality.** An anomaly is reported only if over its days both ``|actual - expected| >=
   min_impact`` and ``|actual - expected| / |expected| >= min_relative`` (expected 0: relative infinite).

``naive_gateway_rule`` is the rule LLM gateways ship (day > 3x trailing-7-day mean and >= $10), kept as
the reference the detector's measured quality is compared with (tests/unit/test_anomaly_quality.py).
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Literal, cast

import numpy as np
from numpy.typing import NDArray
from scipy.stats import median_abs_deviation  # type: ignore[import-untyped]
from statsmodels.tsa.seasonal import STL  # type: ignore[import-untyped]

from config.model import AnomalyThreshold
from tools.findings import fingerprint

AnomalyKind = Literal["spike", "level_shift", "drift"]
Severity = Literal["low", "medium", "high"]
FloatArray = NDArray[np.float64]

MIN_HISTORY = 14  # days of history (from the first non-zero day) before anything is detected
WARM_UP = 7  # first days of a series never alerted; also the fewest baseline days
BASELINE_DAYS = 14  # trailing window of the baseline level
CONFIRM_DAYS = 7  # days after a candidate that tell a step from a spike
Z_SPIKE = 4.0  # robust z of a spike's first day
Z_RUN = 3.0  # robust z of a spike's following days (a spike lasts at most 3 days)
Z_SHIFT = 3.0  # robust z of a sustained change's first day
Z_HOLD = 2.0  # robust z every confirmation day but one must keep
MAX_SPIKE_DAYS = 3
RAMP_LOOKBACK = 28  # a drift may have started this many days before it became visible
RAMP_ADVANTAGE = 0.85  # a ramp must fit this much better (L1) than a step to call it a drift
MIN_RAMP_DAYS = 5  # a change spread over fewer days is a step
FIT_AHEAD = 28  # days after the first far day used to fit the change
DRIFT_SPAN = 21  # a drift is a rise between the last week and the two weeks ending this long before
SEEN_DAYS = 56  # a spike's value seen on SEEN_OFTEN of the last SEEN_DAYS days is no anomaly
SEEN_OFTEN = 3
SCALE_FLOOR = 0.01  # noise floor in asinh units (~1%)
_CENT = Decimal("0.01")
_SHARE = Decimal("0.0001")


@dataclass(frozen=True)
class DailySeries:
    """Consecutive daily values from ``start`` (missing days are 0) for one key of one dimension."""

    dimension: str
    key: str
    start: date
    values: tuple[float, ...]
    environment: str | None = None

    @property
    def end(self) -> date:
        """The last day of the series (inclusive)."""
        return self.start + timedelta(days=len(self.values) - 1)


@dataclass(frozen=True)
class Contribution:
    """One sub-key's part of a change: ``delta`` in the series' unit and its ``share`` of the total change."""

    dimension: str
    key: str
    delta: Decimal
    share: Decimal


@dataclass(frozen=True)
class Anomaly:
    """An unusual stretch of a series. ``actual``/``expected``/``lower``/``upper`` are totals over the
    anomaly's days (``start`` to ``end`` inclusive); ``impact`` = actual - expected (signed)."""

    start: date
    end: date
    dimension: str
    key: str
    kind: AnomalyKind
    actual: Decimal
    expected: Decimal
    lower: Decimal
    upper: Decimal
    impact: Decimal
    severity: Severity
    id: str
    root_cause: tuple[Contribution, ...] = ()

    @property
    def relative(self) -> Decimal | None:
        """(actual - expected) / |expected|; None when nothing was expected."""
        if self.expected == 0:
            return None
        return (self.impact / abs(self.expected)).quantize(_SHARE)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


@dataclass(frozen=True)
class _Event:
    kind: AnomalyKind
    start: int  # index into the active part of the series
    end: int
    level: float  # baseline level (deseasonalised, transformed) it departs from
    z: float  # band half-width in noise units
    plateau: int = 0  # sustained changes: where the new regime begins


def _money(value: float) -> Decimal:
    return Decimal(repr(round(value, 2))).quantize(_CENT)


def _weekly_component(u: FloatArray) -> FloatArray:
    """Robust weekly seasonal component (statsmodels STL, period 7)."""
    if float(np.ptp(u)) == 0.0:
        return np.zeros_like(u)
    fit = STL(u, period=7, seasonal=21, robust=True).fit()
    return cast(FloatArray, np.asarray(fit.seasonal, dtype=np.float64))


def _noise_scale(d: FloatArray) -> float:
    """Robust scale (MAD) of the residuals against the trailing baseline, the very z the walk uses."""
    if d.size <= BASELINE_DAYS:
        diffs = np.diff(d)
        mad = float(median_abs_deviation(diffs, scale="normal")) / math.sqrt(2.0) if diffs.size > 1 else 0.0
        return max(mad, SCALE_FLOOR)
    windows = np.lib.stride_tricks.sliding_window_view(d[:-1], BASELINE_DAYS)
    residuals = d[BASELINE_DAYS:] - np.median(windows, axis=1)
    return max(float(median_abs_deviation(residuals, scale="normal")), SCALE_FLOOR)


def _median(window: FloatArray) -> float:
    """``np.median`` of a short, finite 1-D array, without its per-call overhead (the walk takes tens of
    thousands of medians of 3-28 values per series): the same value, bit for bit."""
    s = np.sort(window)
    h = s.size // 2
    return float(s[h]) if s.size % 2 else float((s[h - 1] + s[h]) / 2)


def _trailing_scales(d: FloatArray, sigma: float) -> FloatArray:
    """For every day ``i``: the series' noise ``sigma``, or the spread of the ``BASELINE_DAYS`` days before
    ``i`` when wider (bursty, on/off workloads). Flagged days count too: else on/off days feed themselves.

    The spread is the 80th percentile of the deviations from the window's median, /1.2816 (a normal's):
    robust to two outliers in a fortnight, yet wide when a third of the days are "off". It depends on ``i``
    only, so it is computed once per series (full windows vectorised) rather than at every look.
    """
    m = d.size
    out = np.full(m, sigma, dtype=np.float64)
    for i in range(WARM_UP, min(BASELINE_DAYS, m)):  # the first, shorter windows
        window = d[:i]
        out[i] = max(sigma, float(np.quantile(np.abs(window - np.median(window)), 0.8)) / 1.2816)
    if m > BASELINE_DAYS:
        windows = np.lib.stride_tricks.sliding_window_view(d[:-1], BASELINE_DAYS)  # row j: days j .. j+13
        deviations = np.abs(windows - np.median(windows, axis=1, keepdims=True))
        out[BASELINE_DAYS:] = np.maximum(sigma, np.quantile(deviations, 0.8, axis=1) / 1.2816)
    return out


def _same_days_earlier_month(day: date, months: int) -> set[date]:
    """The same relative day ``months`` months earlier, counted from the month's start and from its end."""
    year, month = day.year, day.month - months
    while month < 1:
        month += 12
        year -= 1
    last = calendar.monthrange(year, month)[1]
    from_end = calendar.monthrange(day.year, day.month)[1] - day.day
    out = {date(year, month, max(last - from_end, 1))}
    if day.day <= last:
        out.add(date(year, month, day.day))
    return out


class _Walk:
    """The forward walk over one series' active part (see the module docstring)."""

    def __init__(self, values: FloatArray, first_day: date, min_relative: float) -> None:
        self.x = values
        self.min_rise = math.log1p(min_relative)
        self.first_day = first_day
        positive = np.abs(values[np.abs(values) > 1e-12])
        self.c = max(float(np.median(positive)) * 0.05, 1e-9)
        u = np.arcsinh(values / self.c)
        self.seasonal = _weekly_component(u)
        self.d = u - self.seasonal
        self.sigma = _noise_scale(self.d)
        self.scales = _trailing_scales(self.d, self.sigma)
        self.mask = np.zeros(len(values), dtype=bool)

    # -- baseline ---------------------------------------------------------------------------------------
    def _baseline(self, lo: int, hi: int) -> float | None:
        lo = max(lo, 0)
        window = self.d[lo:hi][~self.mask[lo:hi]]
        if window.size < WARM_UP:
            return None
        return _median(window)

    def _z(self, i: int, level: float) -> float:
        return (float(self.d[i]) - level) / self._scale(i)

    def _scale(self, i: int) -> float:
        """The series' noise, or the spread of the last days when wider (see ``_trailing_scales``)."""
        return float(self.scales[i])

    # -- month-boundary recurrence -----------------------------------------------------------------------
    def _excess(self, i: int) -> tuple[float, float] | None:
        """Day ``i``'s excess over its trailing baseline: in the series' unit and in noise units."""
        ref = self.d[max(i - BASELINE_DAYS, 0) : i]
        if ref.size < 3:  # the series' first days: the days after stand in
            ref = self.d[i + 1 : i + 1 + BASELINE_DAYS]
        if ref.size < 3:
            return None
        level = _median(ref)
        expected = self.c * math.sinh(level + float(self.seasonal[i]))
        return float(self.x[i]) - expected, (float(self.d[i]) - level) / self._scale(i)

    def _recurs_monthly(self, i: int, sign: int) -> bool:
        """Did the same day of an earlier month stand out about as much (0.5-2x), the same way?"""
        now = self._excess(i)
        if now is None:
            return False
        here = now[0] * sign
        day = self.first_day + timedelta(days=i)
        for back in (1, 2, 3):
            for earlier in _same_days_earlier_month(day, back):
                j = (earlier - self.first_day).days
                if not 0 <= j < len(self.d):
                    continue
                then = self._excess(j)
                if then is not None and then[1] * sign >= Z_RUN and 0.5 * here <= then[0] * sign <= 2 * here:
                    return True
        return False

    def _seen_often(self, i: int, sign: int) -> bool:
        """Was the series at least this far out on ``SEEN_OFTEN`` days of the last ``SEEN_DAYS``? (on/off
        workloads: their "off" days are their normal)."""
        lo = max(i - SEEN_DAYS, 0)
        near = (self.d[lo:i] - float(self.d[i])) * sign >= -0.5 * self._scale(i)
        return int(np.count_nonzero(near)) >= SEEN_OFTEN

    # -- sustained changes ---------------------------------------------------------------------------------
    def _median(self, lo: int, hi: int, least: int = 3) -> float | None:
        lo = max(lo, 0)
        window = self.d[lo:hi][~self.mask[lo:hi]]
        return _median(window) if window.size >= least else None

    def _classify(self, t: int, regime: int) -> _Event | None:
        """Step or ramp-then-plateau, fitted (L1) around the first far day ``t``.

        A ramp (of at least ``MIN_RAMP_DAYS``) must fit clearly better than a step to make a drift. The event's
        level is the one before the change; ``plateau`` is where the new regime begins.
        """
        m = len(self.d)
        lo_s = max(regime + 3, t - RAMP_LOOKBACK)
        a = max(regime, lo_s - BASELINE_DAYS)
        e = min(m, t + FIT_AHEAD)
        keep = ~self.mask
        best_step: tuple[float, int, int, float] | None = None
        best_ramp: tuple[float, int, int, float] | None = None
        posts = {p: self._median(p, e) for p in range(lo_s, e - 2)}
        for s in range(lo_s, t + 1):
            pre_level = self._median(max(a, s - BASELINE_DAYS), s)
            if pre_level is None:
                continue
            pre = self.d[a:s][keep[a:s]]
            pre_err = float(np.abs(pre - pre_level).sum())
            span = np.arange(s, e)
            seg = self.d[s:e]
            seg_keep = keep[s:e]
            for p in range(s, e - 2):
                post_level = posts.get(p)
                if post_level is None:
                    continue
                frac = np.minimum((span - s + 1) / (p - s + 1), 1.0)
                fitted = pre_level + (post_level - pre_level) * frac
                err = pre_err + float(np.abs(seg - fitted)[seg_keep].sum())
                if p == s:
                    if best_step is None or err < best_step[0]:
                        best_step = (err, s, p, pre_level)
                elif p - s >= MIN_RAMP_DAYS and (best_ramp is None or err < best_ramp[0]):
                    best_ramp = (err, s, p, pre_level)
        if best_step is None:
            return None
        if best_ramp is not None and best_ramp[0] < RAMP_ADVANTAGE * best_step[0]:
            _, start, plateau, level = best_ramp
            return _Event("drift", start, m - 1, level, Z_SHIFT, plateau)
        _, start, _, level = best_step
        return _Event("level_shift", start, m - 1, level, Z_SHIFT, start)

    def _sustained_sign(self, t: int, level: float, regime: int) -> int:
        """+1/-1 if a sustained change is visible at ``t`` (a step, or a rise over weeks), else 0."""
        z = self._z(t, level)
        if abs(z) >= Z_SHIFT:
            sign = 1 if z > 0 else -1
            ahead = (self.d[t : t + CONFIRM_DAYS] - level) / self._scale(t) * sign
            if ahead.size >= 5 and int(np.count_nonzero(ahead >= Z_HOLD)) >= ahead.size - 1:
                return sign
        old = self._median(max(regime, t - DRIFT_SPAN - BASELINE_DAYS), t - DRIFT_SPAN, WARM_UP)
        recent = self._median(t - CONFIRM_DAYS + 1, t + 1, 5)
        if old is None or recent is None or t - CONFIRM_DAYS + 1 < regime:
            return 0
        rise = recent - old
        if abs(rise) >= max(self.min_rise, Z_SHIFT * self._scale(t)):
            return 1 if rise > 0 else -1
        return 0

    # -- the walk -------------------------------------------------------------------------------------------
    def run(self) -> list[_Event]:
        m = len(self.d)
        events: list[_Event] = []
        regime = 0
        t = WARM_UP
        while t < m:
            level = self._baseline(max(regime, t - BASELINE_DAYS), t)
            if level is None:
                t += 1
                continue
            if self._sustained_sign(t, level, regime):
                ev = self._classify(t, regime)
                if ev is not None:
                    events.append(ev)
                    regime = max(ev.plateau, regime + 1)
                    t = max(t + 1, regime)
                    continue
            z = self._z(t, level)
            if abs(z) >= Z_SPIKE:
                sign = 1 if z > 0 else -1
                end = t
                while (
                    end + 1 < m and end - t + 1 < MAX_SPIKE_DAYS and self._z(end + 1, level) * sign >= Z_RUN
                ):
                    end += 1
                self.mask[t : end + 1] = True
                days = [
                    i
                    for i in range(t, end + 1)
                    if self.x[i] != 0  # a drop to exactly zero: missing data
                    and not self._recurs_monthly(i, sign)
                    and not self._seen_often(i, sign)
                ]
                if days and events and events[-1].kind == "spike" and events[-1].end == days[0] - 1:
                    events[-1] = replace(events[-1], end=days[-1])  # one spike, split by a month boundary
                elif days:
                    events.append(_Event("spike", days[0], days[-1], level, Z_SPIKE))
                t = end + 1
                continue
            t += 1
        # a sustained change lasts until the next one
        sustained = [i for i, ev in enumerate(events) if ev.kind != "spike"]
        for here, nxt in pairwise(sustained):
            ev = events[here]
            events[here] = replace(ev, end=events[nxt].start - 1)
        return events

    def expected(self, level: float, lo: int, hi: int, z: float = 0.0) -> float:
        return float(np.sum(self.c * np.sinh(level + self.seasonal[lo:hi] + z * self.sigma)))


def _severity(impact: Decimal, relative: float, threshold: AnomalyThreshold) -> Severity:
    """How far past both thresholds (4x: high, 2x: medium), or how large in absolute terms (20x, 5x the
    minimum impact)."""
    by_impact = math.inf if threshold.min_impact == 0 else float(abs(impact) / threshold.min_impact)
    by_relative = math.inf if threshold.min_relative == 0 else relative / float(threshold.min_relative)
    both = min(by_impact, by_relative)
    if both >= 4 or by_impact >= 20:
        return "high"
    if both >= 2 or by_impact >= 5:
        return "medium"
    return "low"


def detect(series: DailySeries, threshold: AnomalyThreshold, *, as_of: date | None = None) -> list[Anomaly]:
    """Anomalies of one daily series, oldest first; ``as_of`` ignores the days after it."""
    values = np.nan_to_num(np.asarray(series.values, dtype=np.float64))
    if as_of is not None:
        values = values[: max((as_of - series.start).days + 1, 0)]
    if values.size < MIN_HISTORY:
        return []
    nonzero = np.flatnonzero(np.abs(values) > 1e-12)
    if nonzero.size == 0:
        return []
    first = int(nonzero[0])
    if values.size - first < MIN_HISTORY:
        return []
    first_day = series.start + timedelta(days=first)
    walk = _Walk(values[first:], first_day, float(threshold.min_relative))
    out: list[Anomaly] = []
    for ev in walk.run():
        hi = ev.end + 1
        actual = float(np.sum(walk.x[ev.start : hi]))
        expected = walk.expected(ev.level, ev.start, hi)
        impact = actual - expected
        relative = math.inf if expected == 0 else abs(impact) / abs(expected)
        if abs(impact) < float(threshold.min_impact) or relative < float(threshold.min_relative):
            continue
        bounds = (walk.expected(ev.level, ev.start, hi, -ev.z), walk.expected(ev.level, ev.start, hi, ev.z))
        start = first_day + timedelta(days=ev.start)
        impact_d = _money(actual) - _money(expected)
        out.append(
            Anomaly(
                start=start,
                end=first_day + timedelta(days=ev.end),
                dimension=series.dimension,
                key=series.key,
                kind=ev.kind,
                actual=_money(actual),
                expected=_money(expected),
                lower=_money(min(bounds)),
                upper=_money(max(bounds)),
                impact=impact_d,
                severity=_severity(impact_d, relative, threshold),
                id=fingerprint(series.dimension, series.key, ev.kind, start),
            )
        )
    return out


def root_cause(
    before: Mapping[str, Decimal], after: Mapping[str, Decimal], dimension: str, top: int = 3
) -> tuple[Contribution, ...]:
    """The sub-keys that moved most between two equally long periods, with their share of the total change.

    Shares of all sub-keys sum to 1 (a share above 1 means other sub-keys moved the other way).
    """
    zero = Decimal(0)
    deltas = {k: after.get(k, zero) - before.get(k, zero) for k in set(before) | set(after)}
    total = sum(deltas.values(), zero)
    ranked = sorted(deltas.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
    return tuple(
        Contribution(dimension, key, delta, (delta / total).quantize(_SHARE) if total else zero)
        for key, delta in ranked[: max(top, 0)]
        if delta != 0
    )


def naive_gateway_rule(series: DailySeries) -> list[date]:
    """Days flagged by the usual LLM-gateway rule: spend > 3 x the trailing 7-day mean and >= $10."""
    x = np.nan_to_num(np.asarray(series.values, dtype=np.float64))
    flagged: list[date] = []
    for t in range(7, x.size):
        if x[t] >= 10 and x[t] > 3 * float(np.mean(x[t - 7 : t])):
            flagged.append(series.start + timedelta(days=t))
    return flagged
