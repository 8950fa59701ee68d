"""Budget and token-budget status: actual to date vs amount, run-rate forecast, thresholds crossed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from config.model import FinOpsConfig
from tools.costs import DIMENSIONS, USAGE_DIMENSIONS, _filter_sql, _num, check_dimensions
from tools.periods import Period, add_months, month_start, quarter_start
from tools.store.lake import sql_string


def budget_period(kind: str, today: date) -> Period:
    """The budget period that contains ``today`` (monthly or quarterly)."""
    if kind == "quarterly":
        start = quarter_start(today)
        return Period(start, add_months(start, 3), f"{start.year}-Q{(start.month - 1) // 3 + 1}")
    start = month_start(today)
    return Period(start, add_months(start, 1), f"{start:%Y-%m}")


def _status(used: Decimal, thresholds: list[Decimal]) -> tuple[list[str], str]:
    crossed = [f"{t:.0%}" if t < 10 else str(t) for t in sorted(thresholds) if used >= t]
    if used >= Decimal(1):
        return crossed, "over"
    return crossed, "warning" if crossed else "ok"


def _forecast(actual: Decimal, period: Period, data_end: date) -> tuple[Decimal, int]:
    """Run-rate forecast for the whole period from the days elapsed (data up to ``data_end`` exclusive)."""
    elapsed = max(0, min((data_end - period.start).days, period.days))
    if elapsed == 0:
        return actual, 0
    return (actual / elapsed * period.days).quantize(Decimal("0.01")), elapsed


@dataclass
class BudgetStatus:
    name: str
    scope: dict[str, str]
    period: Period
    amount: Decimal
    actual: Decimal
    forecast: Decimal
    days_elapsed: int
    thresholds: list[Decimal]
    crossed: list[str]
    status: str  # ok | warning | over
    forecast_status: str
    responder: str | None
    runs_out_on: date | None
    #: spend in scope in currencies without a configured rate: never added to ``actual`` (no silent
    #: mixing); a budget with any of it is incomplete until ``currency_rates`` names the currency
    unconverted: dict[str, Decimal] = field(default_factory=dict)
    currency: str = "USD"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope,
            "period": self.period.as_dict(),
            "amount": self.amount,
            "actual": self.actual,
            "used": (self.actual / self.amount).quantize(Decimal("0.0001")),
            "forecast": self.forecast,
            "days_elapsed": self.days_elapsed,
            "thresholds": self.thresholds,
            "crossed": self.crossed,
            "status": self.status,
            "forecast_status": self.forecast_status,
            "responder": self.responder,
            "runs_out_on": self.runs_out_on.isoformat() if self.runs_out_on else None,
            "currency": self.currency,
            "unconverted": self.unconverted,
        }


def _runs_out(actual: Decimal, amount: Decimal, elapsed: int, period: Period) -> date | None:
    if elapsed == 0 or actual <= 0:
        return None
    daily = actual / elapsed
    if actual >= amount:
        return period.start + timedelta(days=int(amount / daily))
    day = period.start + timedelta(days=int(amount / daily))
    return day if day < period.end else None


def budget_status(
    con: duckdb.DuckDBPyConnection, config: FinOpsConfig, today: date, metric: str = "effective"
) -> list[BudgetStatus]:
    """Every configured budget, for the period that contains ``today``; actuals through yesterday."""
    out = []
    for b in config.budgets:
        period = budget_period(b.period, today)
        check_dimensions(list(b.scope))
        where = [
            f"day >= DATE {sql_string(period.start.isoformat())}",
            f"day < DATE {sql_string(min(today, period.end).isoformat())}",
        ]
        scope = _filter_sql({k: [v] for k, v in b.scope.items()}, DIMENSIONS)
        if scope:
            where.append(scope)
        by_currency = {
            str(c): _num(v)
            for c, v in con.execute(
                f"SELECT currency, sum({metric}_cost) FROM spend WHERE {' AND '.join(where)} GROUP BY 1"
            ).fetchall()
        }
        actual = by_currency.pop(config.currency, Decimal(0))
        unconverted = {c: v for c, v in sorted(by_currency.items()) if v}
        forecast, elapsed = _forecast(actual, period, today)
        crossed, status = _status(actual / b.amount, b.thresholds)
        _, fstatus = _status(forecast / b.amount, [Decimal(1)])
        out.append(
            BudgetStatus(
                b.name,
                dict(b.scope),
                period,
                b.amount,
                actual,
                forecast,
                elapsed,
                list(b.thresholds),
                crossed,
                status,
                "over" if fstatus == "over" else "on-track",
                b.responder,
                _runs_out(actual, b.amount, elapsed, period),
                unconverted,
                config.currency,
            )
        )
    return out


@dataclass
class TokenBudgetStatus:
    project: str
    period: Period
    tokens: int
    actual: int
    forecast: int
    crossed: list[str]
    status: str
    forecast_status: str
    responder: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "period": self.period.as_dict(),
            "tokens": self.tokens,
            "actual": self.actual,
            "used": round(self.actual / self.tokens, 4),
            "forecast": self.forecast,
            "crossed": self.crossed,
            "status": self.status,
            "forecast_status": self.forecast_status,
            "responder": self.responder,
        }


def token_budget_status(
    con: duckdb.DuckDBPyConnection, config: FinOpsConfig, today: date
) -> list[TokenBudgetStatus]:
    out = []
    for b in config.token_budgets:
        period = budget_period(b.period, today)
        where = [
            f"day >= DATE {sql_string(period.start.isoformat())}",
            f"day < DATE {sql_string(min(today, period.end).isoformat())}",
            _filter_sql({"project": [b.project]}, USAGE_DIMENSIONS),
        ]
        # usage_allocated counts each call once even when several sources describe it
        (raw,) = con.execute(
            f"SELECT sum(tokens) FROM usage_allocated WHERE {' AND '.join(where)}"
        ).fetchall()[0]
        actual = int(raw or 0)
        forecast_dec, _ = _forecast(Decimal(actual), period, today)
        crossed, status = _status(Decimal(actual) / b.tokens, b.thresholds)
        fstatus = "over" if forecast_dec >= b.tokens else "on-track"
        out.append(
            TokenBudgetStatus(
                b.project, period, b.tokens, actual, int(forecast_dec), crossed, status, fstatus, b.responder
            )
        )
    return out


def budget_row(b: BudgetStatus) -> dict[str, Any]:
    """One budget as a row of an answer or a tool result (the same keys as a token budget's row)."""
    d = b.as_dict()
    return {
        "budget": b.name,
        "scope": ", ".join(f"{k}={v}" for k, v in b.scope.items()) or "all spend",
        "period": b.period.label,
        "amount": b.amount,
        "cost": b.actual,
        "used": d["used"],
        "forecast": b.forecast,
        "status": b.status,
        "forecast_status": b.forecast_status,
        "crossed": b.crossed,
        "runs_out_on": d["runs_out_on"],
        "unconverted": b.unconverted,
    }


def token_budget_row(t: TokenBudgetStatus) -> dict[str, Any]:
    """One token budget as a row (``tokens`` where a money budget has ``cost``)."""
    d = t.as_dict()
    return {
        "budget": f"tokens: {t.project}",
        "scope": f"project={t.project}",
        "period": t.period.label,
        "amount": t.tokens,
        "tokens": t.actual,
        "used": Decimal(str(d["used"])),
        "forecast": t.forecast,
        "status": t.status,
        "forecast_status": t.forecast_status,
        "crossed": t.crossed,
    }
