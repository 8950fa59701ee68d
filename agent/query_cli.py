"""CLI rendering of cost queries (table, JSON, CSV). The numbers come from tools/ only."""

from __future__ import annotations

from datetime import date
from typing import Any

from agent.output import dumps_json, money, print_table, to_csv
from config.model import FinOpsConfig
from tools.costs import CostQuery, UnitCostQuery, open_costs, query_costs, unit_costs
from tools.store.lake import Lake


def _emit(
    fmt: str, payload: dict[str, Any], rows: list[dict[str, Any]], columns: list[str], table: dict[str, Any]
) -> None:
    if fmt == "json":
        print(dumps_json(payload))
    elif fmt == "csv":
        print(to_csv(rows, columns), end="")
    else:
        print_table(rows, columns, **table)


def show_costs(lake: Lake, config: FinOpsConfig, q: CostQuery, fmt: str) -> None:
    con = open_costs(lake, config)
    result = query_costs(con, q, config.currency)
    cols = (["period_start"] if q.granularity else []) + result.group_by + ["cost"]
    if q.compare and result.group_by and not q.granularity:
        cols += ["previous_cost", "change"]
    notes = [f"period {q.period.start} to {q.period.end} (end exclusive), metric {q.metric}"]
    if result.previous_total is not None:
        notes.append(f"previous {money(result.previous_total, result.currency)}")
    if result.estimated:
        notes.append(
            f"includes {money(result.estimated, result.currency)} estimated from usage (not yet billed)"
        )
    if result.unpriced:
        tokens = sum(u["tokens"] for u in result.unpriced)
        notes.append(
            f"unpriced usage: {tokens:,} tokens of {', '.join(str(u['model']) for u in result.unpriced)}"
        )
    if len(result.currencies) > 1:
        notes.append(f"WARNING: several billing currencies summed: {', '.join(result.currencies)}")
    _emit(
        fmt,
        result.as_dict(),
        result.rows,
        cols,
        {
            "title": f"{q.metric.capitalize()} cost"
            + (f" by {', '.join(result.group_by)}" if result.group_by else ""),
            "currency": result.currency,
            "money_columns": ["cost", "previous_cost"],
            "footer": {cols[0]: "total", "cost": result.total}
            if cols[0] != "cost"
            else {"cost": result.total},
            "caption": "; ".join(notes),
        },
    )


def show_unit_costs(lake: Lake, config: FinOpsConfig, q: UnitCostQuery, fmt: str) -> None:
    con = open_costs(lake, config)
    result = unit_costs(con, q, config.currency)
    cols = [
        *result.group_by,
        "cost",
        "tokens",
        "requests",
        "tasks_completed",
        "cost_per_1m_tokens",
        "cost_per_request",
        "cost_per_completed_task",
    ]
    split = ", ".join(f"{k} {money(v, result.currency)}" for k, v in result.workload_split.items())
    caption = f"period {q.period.start} to {q.period.end}; AI spend by workload: {split or 'none'}"
    if result.unpriced:
        caption += f"; unpriced usage: {sum(u['tokens'] for u in result.unpriced):,} tokens"
    _emit(
        fmt,
        result.as_dict(),
        result.rows,
        cols,
        {
            "title": "AI unit costs",
            "currency": result.currency,
            "money_columns": ["cost", "cost_per_1m_tokens", "cost_per_request", "cost_per_completed_task"],
            "caption": caption,
        },
    )


def show_untagged(lake: Lake, config: FinOpsConfig, period: Any, top: int, metric: str, fmt: str) -> None:
    from tools.untagged import untagged_spend

    con = open_costs(lake, config)
    result = untagged_spend(con, config, period, top=top, metric=metric)
    rows = [o.as_dict() for o in result.offenders]
    cols = ["provider", "sub_account", "service", "resource", "cost", "suggested_team", "reason"]
    d = result.as_dict()
    _emit(
        fmt,
        d,
        rows,
        cols,
        {
            "title": f"Unallocated spend: {money(result.unallocated, result.currency)} of "
            f"{money(result.total, result.currency)} ({d['unallocated_percent'] or 0}%)",
            "currency": result.currency,
            "money_columns": ["cost"],
            "caption": f"period {period.start} to {period.end}, metric {metric}; top {top} offenders",
        },
    )


def show_budgets(lake: Lake, config: FinOpsConfig, today: date, metric: str, fmt: str) -> None:
    from tools.budgets import budget_status, token_budget_status

    con = open_costs(lake, config)
    money_budgets = budget_status(con, config, today, metric)
    token_budgets = token_budget_status(con, config, today)
    payload = {
        "as_of": today.isoformat(),
        "metric": metric,
        "currency": config.currency,
        "budgets": [b.as_dict() for b in money_budgets],
        "token_budgets": [t.as_dict() for t in token_budgets],
    }
    rows = []
    for b in money_budgets:
        d = b.as_dict()
        rows.append(
            {
                "budget": b.name,
                "scope": ", ".join(f"{k}={v}" for k, v in b.scope.items()) or "all",
                "period": b.period.label,
                "amount": b.amount,
                "actual": b.actual,
                "used": f"{d['used']:.1%}",
                "forecast": b.forecast,
                "status": b.status,
                "forecast_status": b.forecast_status,
                "crossed": ", ".join(b.crossed),
            }
        )
    cols = [
        "budget",
        "scope",
        "period",
        "amount",
        "actual",
        "used",
        "forecast",
        "status",
        "forecast_status",
        "crossed",
    ]
    if fmt == "json":
        print(dumps_json(payload))
        return
    if fmt == "csv":
        print(to_csv(rows, cols), end="")
        return
    print_table(
        rows,
        cols,
        title=f"Budgets as of {today}",
        currency=config.currency,
        money_columns=["amount", "actual", "forecast"],
        caption="actuals through yesterday; forecast = run rate",
    )
    for b in money_budgets:
        if b.unconverted:
            amounts = ", ".join(f"{v:,.2f} {c}" for c, v in b.unconverted.items())
            print(
                f"note: budget {b.name!r} also has {amounts} in scope, not counted in its {b.currency} actual; "
                "add the rate to currency_rates in finops.yaml to count it"
            )
    trows = [
        {
            "project": t.project,
            "period": t.period.label,
            "tokens": t.tokens,
            "actual": t.actual,
            "used": f"{t.actual / t.tokens:.1%}",
            "forecast": t.forecast,
            "status": t.status,
            "forecast_status": t.forecast_status,
        }
        for t in token_budgets
    ]
    if trows:
        print_table(trows, list(trows[0]), title="Token budgets")


def show_reconciliation(lake: Lake, config: FinOpsConfig, fmt: str) -> None:
    from tools.spend import RECONCILIATION_COLUMNS, RECONCILIATION_SQL

    con = open_costs(lake, config)
    cols = list(RECONCILIATION_COLUMNS)
    rows = [dict(zip(cols, r, strict=True)) for r in con.execute(RECONCILIATION_SQL).fetchall()]
    _emit(
        fmt,
        {"currency": config.currency, "rows": rows},
        rows,
        cols,
        {
            "title": "LLM spend: billed vs usage",
            "currency": config.currency,
            "money_columns": ["billed", "usage_estimate", "allocated", "unallocated"],
            "caption": "billed = the bill (truth); usage_estimate = the coverage usage source at list or "
            "override prices; with no bill the estimate is what is reported, labelled as such",
        },
    )
