"""Forecasts over the allocated spend: per key of a dimension, and per configured budget.

The adapter between the lake and the pure forecasting in tools/forecast.py: one DuckDB query builds the
daily series (missing days as zeros, over ``LOOKBACK_DAYS`` before ``as_of`` and the whole elapsed period),
each series gets one forecast. One-off charges (Purchase, Tax, One-Time) count in the actuals but are not
extrapolated. Actuals run up to ``as_of`` exclusive (the day being reported from; data ends yesterday).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from config.model import FinOpsConfig
from tools.budgets import budget_period
from tools.costs import (
    DIMENSIONS,
    METRICS,
    NONE_VALUE,
    ONE_OFF_SQL,
    OTHER_VALUE,
    _filter_sql,
    _where,
    check_dimensions,
)
from tools.errors import QueryError
from tools.forecast import PeriodForecast, forecast_period, run_rate_forecast, threshold_crossings
from tools.periods import Period
from tools.store.lake import sql_string

LOOKBACK_DAYS = 90
TOP = 10  # keys forecast one by one; the rest are folded into "(other)"
MIN_SHARE = Decimal("0.01")  # keys below this share of the spend are folded into "(other)" too

Series = dict[Any, tuple[list[float], list[float]]]  # key -> (recurring, one-off) daily values


def _history_start(period: Period, as_of: date, lookback: int) -> date:
    return min(period.start, as_of - timedelta(days=lookback))


def _metric(metric: str) -> str:
    if metric not in METRICS:
        raise QueryError(f"unknown metric {metric!r}; choose billed, effective or list")
    return f"{metric}_cost"


def _daily(
    con: duckdb.DuckDBPyConnection, key_sql: str, metric: str, where: str, start: date, as_of: date
) -> Series:
    """key -> daily (recurring, one-off) sums from ``start`` to ``as_of`` exclusive, gaps as zeros."""
    days = (as_of - start).days
    out: Series = {}
    rows = con.execute(
        f"SELECT {key_sql} AS k, day, sum({metric}) FILTER (WHERE NOT {ONE_OFF_SQL}), "
        f"sum({metric}) FILTER (WHERE {ONE_OFF_SQL}) FROM spend WHERE {where} GROUP BY 1, 2"
    ).fetchall()
    for key, day, recurring, one_off in rows:
        i = (day - start).days
        if not 0 <= i < days:
            continue
        series = out.setdefault(key, ([0.0] * days, [0.0] * days))
        series[0][i] += float(recurring or 0)
        series[1][i] += float(one_off or 0)
    return out


def _forecast(
    start: date, series: tuple[list[float], list[float]], period: Period, as_of: date
) -> PeriodForecast:
    recurring, one_offs = series
    return forecast_period(start, recurring, period.start, period.end, as_of, one_offs=one_offs)


def _baseline(start: date, series: tuple[list[float], list[float]], period: Period, as_of: date) -> Decimal:
    recurring, one_offs = series
    rr = run_rate_forecast(start, recurring, period.start, period.end, as_of, one_offs=one_offs)
    return rr.forecast_total


def _row(fc: PeriodForecast, period: Period, run_rate: Decimal) -> dict[str, Any]:
    return {
        "period": period.as_dict(),
        "actual_to_date": fc.actual_to_date,
        "forecast": fc.forecast_total,
        "lower": fc.lower,
        "upper": fc.upper,
        "method": fc.method,
        "level_since": fc.level_since.isoformat() if fc.level_since else None,
        "run_rate": run_rate,
    }


def forecast_by(
    con: duckdb.DuckDBPyConnection,
    dimension: str | None,
    period: Period,
    as_of: date,
    *,
    metric: str = "effective",
    filters: Mapping[str, Sequence[str]] | None = None,
    config: FinOpsConfig | None = None,
    top: int = TOP,
) -> list[dict[str, Any]]:
    """Forecast of ``period``'s spend per key of ``dimension`` (or in total), as seen on ``as_of``.

    Rows ``{<dimension>: key, period, actual_to_date, forecast, lower, upper (80% interval), method,
    level_since, run_rate}``, largest forecast first. The ``top`` keys by spend over the history window
    with at least ``MIN_SHARE`` of it are forecast one by one; the rest are summed into one "(other)"
    series. ``config`` gives the history window (``anomalies.lookback_days``).
    """
    metric_sql = _metric(metric)
    lookback = config.anomalies.lookback_days if config else LOOKBACK_DAYS
    start = _history_start(period, as_of, lookback)
    where = _where(Period(start, max(as_of, start + timedelta(days=1)), "history"), filters or {}, DIMENSIONS)
    if dimension is None:
        series = _daily(con, "NULL", metric_sql, where, start, as_of)
        days = max((as_of - start).days, 0)
        only = series.get(None, ([0.0] * days, [0.0] * days))
        fc = _forecast(start, only, period, as_of)
        return [_row(fc, period, _baseline(start, only, period, as_of))]
    name = check_dimensions([dimension])[0]
    series = _daily(con, DIMENSIONS[name], metric_sql, where, start, as_of)
    totals = {k: abs(sum(r) + sum(o)) for k, (r, o) in series.items()}
    grand = sum(totals.values())
    ranked = sorted(series, key=lambda k: (-totals[k], str(k)))
    keep = [k for k in ranked[:top] if grand == 0 or Decimal(repr(totals[k] / grand)) >= MIN_SHARE]
    rest = [k for k in ranked if k not in keep]
    groups: list[tuple[str, tuple[list[float], list[float]]]] = [
        (NONE_VALUE if k is None else str(k), series[k]) for k in keep
    ]
    if rest:
        recurring = [sum(v) for v in zip(*(series[k][0] for k in rest), strict=True)]
        one_offs = [sum(v) for v in zip(*(series[k][1] for k in rest), strict=True)]
        groups.append((OTHER_VALUE, (recurring, one_offs)))
    rows = []
    for key, s in groups:
        fc = _forecast(start, s, period, as_of)
        row = {name: key, **_row(fc, period, _baseline(start, s, period, as_of))}
        if key == OTHER_VALUE:
            row["groups"] = len(rest)
        rows.append(row)
    rows.sort(key=lambda r: (r[name] == OTHER_VALUE, -r["forecast"], r[name]))
    return rows


def forecast_budgets(
    con: duckdb.DuckDBPyConnection, config: FinOpsConfig, as_of: date, metric: str = "effective"
) -> list[dict[str, Any]]:
    """Every configured budget's period (the one containing ``as_of``): actual, forecast with its 80%
    interval, the projected day each threshold is reached (``crossings``; a day already past when it was)
    and ``runs_out_on``, the projected day actual + forecast reaches the amount. One query for all."""
    if not config.budgets:
        return []
    metric_sql = _metric(metric)
    lookback = config.anomalies.lookback_days
    periods = [budget_period(b.period, as_of) for b in config.budgets]
    start = min(_history_start(p, as_of, lookback) for p in periods)
    columns = []
    for b in config.budgets:
        check_dimensions(list(b.scope))
        scope = _filter_sql({k: [v] for k, v in b.scope.items()}, DIMENSIONS) or "true"
        columns.append(f"sum({metric_sql}) FILTER (WHERE {scope} AND NOT {ONE_OFF_SQL})")
        columns.append(f"sum({metric_sql}) FILTER (WHERE {scope} AND {ONE_OFF_SQL})")
    days = max((as_of - start).days, 0)
    rows = con.execute(
        f"SELECT day, {', '.join(columns)} FROM spend "
        f"WHERE day >= DATE {sql_string(start.isoformat())} AND day < DATE {sql_string(as_of.isoformat())} "
        "GROUP BY 1"
    ).fetchall()
    values = [[0.0] * days for _ in columns]
    for day, *sums in rows:
        i = (day - start).days
        for j, v in enumerate(sums):
            values[j][i] = float(v or 0)
    out = []
    for n, (b, period) in enumerate(zip(config.budgets, periods, strict=True)):
        s = (values[2 * n], values[2 * n + 1])
        fc = _forecast(start, s, period, as_of)
        thresholds = sorted(set(b.thresholds))
        crossing = threshold_crossings(fc, b.amount, [*thresholds, Decimal(1)])
        status = (
            "over" if fc.forecast_total >= b.amount else "at-risk" if fc.upper >= b.amount else "on-track"
        )
        out.append(
            {
                "name": b.name,
                "scope": dict(b.scope),
                "period": period.as_dict(),
                "amount": b.amount,
                "actual": fc.actual_to_date,
                "forecast": fc.forecast_total,
                "lower": fc.lower,
                "upper": fc.upper,
                "method": fc.method,
                "level_since": fc.level_since.isoformat() if fc.level_since else None,
                "run_rate": _baseline(start, s, period, as_of),
                "forecast_status": status,
                "crossings": [_crossing(t, b.amount, crossing[t], fc.forecast_start) for t in thresholds],
                "runs_out_on": _iso(crossing[Decimal(1)]),
                "responder": b.responder,
            }
        )
    return out


def _crossing(threshold: Decimal, amount: Decimal, on: date | None, forecast_start: date) -> dict[str, Any]:
    return {
        "threshold": threshold,
        "amount": (threshold * amount).quantize(Decimal("0.01")),
        "on": _iso(on),
        "crossed": on is not None and on < forecast_start,  # already, in the actuals
    }


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None
