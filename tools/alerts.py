"""Budget and token-budget alerts: each threshold fires once per budget period, whatever the re-scans.

A threshold of actual spend (default 75 % and 100 %) and a separate "forecast to exceed" alert per budget
period; token budgets likewise. The fired alerts are kept in ``alert_state`` (one row per alert key, a
unique constraint), so a repeated scan, a restart or two schedulers racing never alert twice. Every alert
names its responder from finops.yaml.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import duckdb
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from config.model import FinOpsConfig
from tools.budgets import budget_status, token_budget_status
from tools.findings import Finding, fingerprint
from tools.store.db import Database
from tools.store.models import AlertState

BUDGET_RULE = "budget-threshold"
BUDGET_FORECAST_RULE = "budget-forecast"
TOKEN_BUDGET_RULE = "token-budget-threshold"


@dataclass(frozen=True)
class Alert:
    key: str
    finding: Finding


def _pct(t: Decimal) -> str:
    return f"{t:.0%}"


def budget_alerts(
    con: duckdb.DuckDBPyConnection,
    config: FinOpsConfig,
    now: datetime,
    forecaster: Callable[[duckdb.DuckDBPyConnection, FinOpsConfig, date], list[dict[str, Any]]] | None = None,
) -> list[Alert]:
    """Every alert condition true now (fired or not); ``fire_new`` keeps the ones not fired before."""
    today = now.date()
    forecasts = {row["name"]: row for row in forecaster(con, config, today)} if forecaster else {}
    out: list[Alert] = []
    for b in budget_status(con, config, today):
        scope = dict(b.scope)
        base = {
            "budget": b.name,
            "scope": scope,
            "period": b.period.as_dict(),
            "amount": b.amount,
            "actual": b.actual,
            "responder": b.responder,
        }
        for t in sorted(b.thresholds):
            if b.actual >= b.amount * t:
                key = f"budget:{b.name}:{b.period.start}:{t}"
                out.append(
                    Alert(
                        key,
                        Finding(
                            kind="budget",
                            rule_id=BUDGET_RULE,
                            fingerprint=fingerprint(BUDGET_RULE, b.name, b.period.start, t),
                            title=f"Budget {b.name} reached {_pct(t)}: {b.actual:,.2f} of {b.amount:,.2f} {config.currency} "
                            f"({b.period.label})",
                            monthly_impact=max(b.actual - b.amount, Decimal(0)),
                            detected_at=now,
                            scope=scope,
                            currency=config.currency,
                            severity="high" if t >= 1 else "medium",
                            evidence={**base, "threshold": t},
                            recommendation=f"{b.responder or 'the budget owner'}: review the drivers with "
                            f"`finops costs --by service,resource --period {b.period.label}`",
                        ),
                    )
                )
        fc = forecasts.get(b.name)
        forecast_total = Decimal(str(fc["forecast"])) if fc else b.forecast
        if forecast_total > b.amount > b.actual:
            key = f"budget-forecast:{b.name}:{b.period.start}"
            runs_out = fc.get("runs_out_on") if fc else (b.runs_out_on.isoformat() if b.runs_out_on else None)
            out.append(
                Alert(
                    key,
                    Finding(
                        kind="budget",
                        rule_id=BUDGET_FORECAST_RULE,
                        fingerprint=fingerprint(BUDGET_FORECAST_RULE, b.name, b.period.start),
                        title=f"Budget {b.name} is forecast to exceed: {forecast_total:,.2f} of {b.amount:,.2f} "
                        f"{config.currency} by {b.period.end}",
                        monthly_impact=forecast_total - b.amount,
                        detected_at=now,
                        scope=scope,
                        currency=config.currency,
                        severity="medium",
                        evidence={
                            **base,
                            "forecast": forecast_total,
                            "runs_out_on": runs_out,
                            "method": fc.get("method") if fc else "run-rate",
                        },
                        recommendation=f"{b.responder or 'the budget owner'}: act before {runs_out or b.period.end}",
                    ),
                )
            )
    for tb in token_budget_status(con, config, today):
        for t in sorted(config_thresholds(config, tb.project)):
            if Decimal(tb.actual) >= Decimal(tb.tokens) * t:
                key = f"token-budget:{tb.project}:{tb.period.start}:{t}"
                out.append(
                    Alert(
                        key,
                        Finding(
                            kind="token-budget",
                            rule_id=TOKEN_BUDGET_RULE,
                            fingerprint=fingerprint(TOKEN_BUDGET_RULE, tb.project, tb.period.start, t),
                            title=f"Token budget of {tb.project} reached {_pct(t)}: {tb.actual:,} of {tb.tokens:,} tokens "
                            f"({tb.period.label})",
                            monthly_impact=Decimal(0),
                            detected_at=now,
                            scope={"project": tb.project},
                            currency=config.currency,
                            severity="high" if t >= 1 else "medium",
                            evidence={
                                "project": tb.project,
                                "period": tb.period.as_dict(),
                                "tokens": tb.tokens,
                                "actual": tb.actual,
                                "forecast": tb.forecast,
                                "threshold": t,
                                "responder": tb.responder,
                            },
                            proposed_action="set-rate-limit" if t >= 1 else None,
                            action_params={"project": tb.project, "tokens_per_month": tb.tokens}
                            if t >= 1
                            else {},
                        ),
                    )
                )
    return out


def config_thresholds(config: FinOpsConfig, project: str) -> list[Decimal]:
    for tb in config.token_budgets:
        if tb.project == project:
            return list(tb.thresholds)
    return [Decimal("0.75"), Decimal("1.0")]


def fire_new(db: Database, alerts: list[Alert], now: datetime) -> list[Alert]:
    """Record the alerts not fired before and return them. A unique key makes this safe under races."""
    fired: list[Alert] = []
    for alert in alerts:
        with db.session() as session:
            if session.scalar(select(AlertState.id).where(AlertState.alert_key == alert.key)) is not None:
                continue
        try:
            with db.session() as session:
                session.add(
                    AlertState(alert_key=alert.key, fingerprint=alert.finding.fingerprint, fired_at=now)
                )
        except IntegrityError:
            continue  # another scan fired it in between
        fired.append(alert)
    return fired
