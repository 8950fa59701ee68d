"""A seeded generator of labelled daily cost series, to measure anomaly detection.

Each series is 120 days of daily cost: a base level ($40-$5,000/day), multiplicative log-normal noise
(3-8% a day), a weekly pattern (none, mild weekday swing, or quiet weekends at 15-60% of a weekday),
sometimes an organic trend (±12% a month), a recurring month-start or month-end charge, missing days
(zeros), a credit line (negative values), a bursty on/off batch workload or a service that starts
mid-series. Anomalies are injected in
the evaluation window (the last ``EVAL_DAYS`` days, at least ``TAIL_DAYS`` before the end so a sustained
change can be told from a spike, as a practitioner looking at the chart would need too):

- ``spike``: 1-3 days at 1.6-5x the day's normal cost;
- ``level_shift``: a new steady cost, 1.4-3x (or 0.35-0.7x) the old one, from the labelled day on;
- ``drift``: a ramp to 1.6-2.5x over 14-30 days, then a plateau.

What is *not* labelled, because a FinOps practitioner would not call it an anomaly: weekly patterns, quiet
weekends, the recurring month-boundary charge, organic growth, a missing day, a new service starting, the
on/off days of a batch workload, the noise. The label of an anomaly is (day index, kind); detections are matched within ±1 day (drift ±7).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from tools.anomaly import DailySeries

DAYS = 120
EVAL_DAYS = 60  # anomalies are labelled, and detections counted, in the last EVAL_DAYS days
TAIL_DAYS = 15  # no anomaly starts in the last TAIL_DAYS days
SEED = 20240921


@dataclass(frozen=True)
class Labelled:
    scenario: str
    series: DailySeries
    labels: frozenset[tuple[int, str]]  # (day index, kind)

    @property
    def eval_start(self) -> int:
        return DAYS - EVAL_DAYS


SCENARIOS: dict[str, float] = {
    "clean": 0.30,
    "spike": 0.20,
    "level_shift": 0.15,
    "drift": 0.12,
    "spike_and_shift": 0.08,
    "new_service": 0.08,
    "credits": 0.07,
    "bursty": 0.06,
}


def _weekly(rng: np.random.Generator, start: date) -> np.ndarray:
    style = rng.choice(["none", "mild", "quiet_weekends"], p=[0.3, 0.35, 0.35])
    weekday = np.array([(start + timedelta(days=i)).weekday() for i in range(DAYS)])
    if style == "none":
        return np.ones(DAYS)
    if style == "mild":
        profile = 1 + rng.uniform(-0.1, 0.1, size=7)
        return profile[weekday]
    weekend = rng.uniform(0.15, 0.6)
    return np.where(weekday >= 5, weekend, 1.0)


def _month_boundary(rng: np.random.Generator, start: date, level: float) -> np.ndarray:
    """A recurring charge on the first (or last) day of each month."""
    out = np.zeros(DAYS)
    amount = level * rng.uniform(0.5, 3.0)
    at_end = rng.random() < 0.3
    for i in range(DAYS):
        day = start + timedelta(days=i)
        if (day + timedelta(days=1)).day == 1 if at_end else day.day == 1:
            out[i] = amount
    return out


def generate(n: int = 300, seed: int = SEED) -> list[Labelled]:
    """``n`` labelled series; the same seed always gives the same series."""
    rng = np.random.default_rng(seed)
    names = list(SCENARIOS)
    probs = np.array(list(SCENARIOS.values()))
    probs = probs / probs.sum()
    out: list[Labelled] = []
    for idx in range(n):
        scenario = str(rng.choice(names, p=probs))
        start = date(2024, 1, 1) + timedelta(days=int(rng.integers(0, 300)))
        level = float(np.exp(rng.uniform(np.log(40), np.log(5000))))
        sigma = rng.uniform(0.03, 0.08)
        base = np.full(DAYS, level)
        if rng.random() < 0.3:  # organic growth or decline, up to ±12% a month
            base *= np.exp(np.arange(DAYS) * rng.uniform(-0.12, 0.12) / 30)
        labels: set[tuple[int, str]] = set()
        lo, hi = DAYS - EVAL_DAYS, DAYS - TAIL_DAYS
        multiplier = np.ones(DAYS)
        spike_days: list[tuple[int, int, float]] = []

        if scenario in ("level_shift", "spike_and_shift"):
            at = int(rng.integers(lo, hi))
            factor = rng.uniform(1.4, 3.0) if rng.random() < 0.7 else rng.uniform(0.35, 0.7)
            multiplier[at:] *= factor
            labels.add((at, "level_shift"))
        if scenario == "drift":
            length = int(rng.integers(14, 31))
            at = int(rng.integers(lo, DAYS - length - 7))
            final = rng.uniform(1.6, 2.5)
            ramp = np.exp(np.log(final) * np.clip((np.arange(DAYS) - at + 1) / length, 0, 1))
            multiplier *= ramp
            labels.add((at, "drift"))
        if scenario in ("spike", "spike_and_shift"):
            taken = {d for d, _ in labels}
            while True:
                at = int(rng.integers(lo, hi))
                if all(abs(at - d) > 10 for d in taken):
                    break
            spike_days.append((at, int(rng.integers(1, 4)), rng.uniform(1.6, 5.0)))
            labels.add((at, "spike"))

        values = base * multiplier * _weekly(rng, start)
        for at, length, factor in spike_days:
            values[at : at + length] *= factor
        if scenario == "credits":
            values = -values
        if scenario == "bursty":  # on/off batch jobs: a third of the days run at 10-30% of the others
            values = values * np.where(rng.random(DAYS) < 1 / 3, rng.uniform(0.1, 0.3), 1.0)
        if rng.random() < 0.3 and scenario != "credits":
            values += _month_boundary(rng, start, level)
        values = values * np.exp(rng.normal(0, sigma, size=DAYS))
        if scenario == "new_service":
            begin = int(rng.integers(20, DAYS - 20))
            values[:begin] = 0.0
        if rng.random() < 0.15:  # missing days
            for _ in range(int(rng.integers(1, 4))):
                gap = int(rng.integers(0, DAYS))
                if all(abs(gap - d) > 3 for d, _ in labels):
                    values[gap] = 0.0
        series = DailySeries(
            dimension="service",
            key=f"{scenario}-{idx}",
            start=start,
            values=tuple(float(round(v, 4)) for v in values),
        )
        out.append(Labelled(scenario, series, frozenset(labels)))
    return out
