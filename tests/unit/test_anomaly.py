"""Anomaly detection behaviour: kinds and days, what is not an anomaly, odd series, thresholds, root cause."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pytest

from config.model import AnomalyThreshold
from tools.anomaly import DailySeries, detect, naive_gateway_rule, root_cause
from tools.findings import fingerprint

START = date(2024, 6, 3)  # a Monday
DEFAULT = AnomalyThreshold()


def _series(values: np.ndarray | list[float], start: date = START, key: str = "svc") -> DailySeries:
    return DailySeries("service", key, start, tuple(float(v) for v in values))


def _base(days: int = 90, level: float = 1000.0, noise: float = 0.05, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return level * np.exp(rng.normal(0, noise, size=days))


def _weekly(days: int, weekend: float, start: date = START) -> np.ndarray:
    return np.array([weekend if (start + timedelta(days=i)).weekday() >= 5 else 1.0 for i in range(days)])


def test_anomaly_spike_is_caught_on_its_day() -> None:
    values = _base()
    values[70] *= 4
    found = detect(_series(values), DEFAULT)
    assert [(a.kind, a.start, a.end) for a in found] == [
        ("spike", START + timedelta(70), START + timedelta(70))
    ]
    spike = found[0]
    assert spike.impact == spike.actual - spike.expected
    assert spike.impact > Decimal(2500)
    assert spike.lower < spike.expected < spike.upper < spike.actual
    assert spike.severity == "high"
    assert spike.id == fingerprint("service", "svc", "spike", spike.start)


def test_anomaly_two_day_spike_is_one_anomaly() -> None:
    values = _base()
    values[60:62] *= 3
    found = detect(_series(values), DEFAULT)
    assert [(a.kind, a.start, a.days) for a in found] == [("spike", START + timedelta(60), 2)]


def test_anomaly_level_shift_is_reported_once_at_the_change_day() -> None:
    values = _base()
    values[55:] *= 2
    found = detect(_series(values), DEFAULT)
    assert [(a.kind, a.start) for a in found] == [("level_shift", START + timedelta(55))]
    shift = found[0]
    assert shift.end == START + timedelta(89)
    assert Decimal("0.8") < shift.relative < Decimal("1.2")  # type: ignore[operator]


def test_anomaly_level_shift_down_is_negative() -> None:
    values = _base()
    values[50:] *= 0.5
    (shift,) = detect(_series(values), DEFAULT)
    assert shift.kind == "level_shift" and shift.impact < 0 and shift.start == START + timedelta(50)


def test_anomaly_slow_drift_is_caught_near_its_start() -> None:
    values = _base(100)
    ramp = np.clip((np.arange(100) - 50 + 1) / 25, 0, 1)
    values *= np.exp(np.log(2.0) * ramp)
    found = detect(_series(values), DEFAULT)
    assert [a.kind for a in found] == ["drift"]
    assert abs((found[0].start - (START + timedelta(50))).days) <= 7


def test_anomaly_quiet_weekends_are_not_alerted() -> None:
    values = _base() * _weekly(90, 0.2)
    assert detect(_series(values), DEFAULT) == []


def test_anomaly_spike_on_a_quiet_weekend_is_caught() -> None:
    values = _base() * _weekly(90, 0.2)
    saturday = next(i for i in range(70, 80) if (START + timedelta(i)).weekday() == 5)
    values[saturday] *= 4
    found = detect(_series(values), DEFAULT)
    assert [(a.kind, a.start) for a in found] == [("spike", START + timedelta(saturday))]


@pytest.mark.parametrize("at_end", [False, True])
def test_anomaly_recurring_month_boundary_charge_is_not_alerted(at_end: bool) -> None:
    values = _base(120)
    for i in range(120):
        day = START + timedelta(i)
        if (at_end and (day + timedelta(1)).day == 1) or (not at_end and day.day == 1):
            values[i] += 2500
    found = detect(_series(values), DEFAULT)
    # the first one has no earlier month to recur from; every later one is expected
    assert all(a.start < date(2024, 7, 2) for a in found)


def test_anomaly_new_month_boundary_charge_is_alerted() -> None:
    values = _base(120)
    values[(date(2024, 9, 1) - START).days] += 2500
    found = detect(_series(values), DEFAULT)
    assert [(a.kind, a.start) for a in found] == [("spike", date(2024, 9, 1))]


@pytest.mark.parametrize(
    "values",
    [
        [],
        [100.0] * 5,
        [100.0] * 13,
        [0.0] * 60,
        [100.0] * 60,
        [0.0] * 50 + [500.0] * 10,  # a service started 10 days ago: still warming up
    ],
    ids=["empty", "5-days", "13-days", "all-zero", "constant", "new-service"],
)
def test_anomaly_odd_series_give_nothing(values: list[float]) -> None:
    assert detect(_series(values), DEFAULT) == []


def test_anomaly_new_service_start_is_not_an_anomaly() -> None:
    values = np.concatenate([np.zeros(40), _base(50)])
    assert detect(_series(values), DEFAULT) == []


def test_anomaly_missing_days_are_not_drops() -> None:
    values = _base()
    values[[30, 61, 62, 75]] = 0.0
    assert detect(_series(values), DEFAULT) == []


def test_anomaly_credits_negative_values() -> None:
    values = -_base()
    assert detect(_series(values), DEFAULT) == []
    values[66] *= 4  # a credit four times the usual
    (found,) = detect(_series(values), DEFAULT)
    assert found.kind == "spike" and found.impact < 0 and found.start == START + timedelta(66)


def test_anomaly_as_of_ignores_later_days() -> None:
    values = _base()
    values[80] *= 4
    assert detect(_series(values), DEFAULT, as_of=START + timedelta(79)) == []
    assert len(detect(_series(values), DEFAULT, as_of=START + timedelta(80))) == 1


def test_anomaly_thresholds_per_environment_are_respected() -> None:
    values = _base(level=200)
    values[70] *= 1.8  # +$160, +80%
    prod = AnomalyThreshold(min_impact=Decimal(50), min_relative=Decimal("0.2"))
    dev = AnomalyThreshold(min_impact=Decimal(200), min_relative=Decimal("0.5"))
    strict_relative = AnomalyThreshold(min_impact=Decimal(10), min_relative=Decimal("1.0"))
    assert len(detect(_series(values), prod)) == 1
    assert detect(_series(values), dev) == []  # $160 < $200
    assert detect(_series(values), strict_relative) == []  # 80% < 100%


def test_anomaly_root_cause_shares_sum_to_one_and_name_the_mover() -> None:
    before = {"i-a": Decimal(100), "i-b": Decimal(50), "i-c": Decimal(10)}
    after = {"i-a": Decimal(100), "i-b": Decimal(350), "i-c": Decimal(20), "i-d": Decimal(40)}
    causes = root_cause(before, after, "resource")
    assert [c.key for c in causes] == ["i-b", "i-d", "i-c"]
    assert causes[0].delta == Decimal(300) and causes[0].dimension == "resource"
    assert sum(c.share for c in causes) == Decimal(1)
    assert causes[0].share == Decimal("0.8571")


def test_anomaly_root_cause_with_offsetting_moves_and_no_change() -> None:
    causes = root_cause(
        {"a": Decimal(10), "b": Decimal(10)}, {"a": Decimal(30), "b": Decimal(0)}, "sku", top=5
    )
    assert [(c.key, c.share) for c in causes] == [("a", Decimal(2)), ("b", Decimal(-1))]
    assert root_cause({"a": Decimal(5)}, {"a": Decimal(5)}, "sku") == ()


def test_anomaly_naive_gateway_rule() -> None:
    values = [20.0] * 20
    values[10] = 70  # > 3 x 20 and >= $10
    values[15] = 55  # < 3 x the trailing mean
    small = [1.0] * 20
    small[10] = 9  # 9x but under $10
    assert naive_gateway_rule(_series(values)) == [START + timedelta(10)]
    assert naive_gateway_rule(_series(small)) == []
