"""What each dashboard page shows, read only through the product's own query functions.

Costs: ``tools.costs`` (``query_costs``, ``unit_costs``); budgets: ``tools.budgets`` and
``tools.forecast_query``; findings: ``tools.findings_store``; approvals: ``ApprovalService``; the audit
trail: ``approvals.audit``. Nothing here computes a figure of its own except sums of Decimals the query
functions returned (chart totals) and cumulative sums for burn charts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from agent.web import charts
from agent.web.params import ParamError, Params
from agent.web.tables import Column, Table, pivot
from config.model import FinOpsConfig
from config.settings import Settings
from tools.costs import (
    DIMENSIONS,
    USAGE_DIMENSIONS,
    CostQuery,
    Granularity,
    UnitCostQuery,
    open_costs,
    query_costs,
    unit_costs,
)
from tools.periods import Period, add_months, month_start
from tools.store.db import Database
from tools.store.lake import Lake

#: the "stacked by" switch of the overview (any cost dimension is accepted in the URL)
STACK_BY = ("team", "project", "environment", "model", "provider")
FILTER_DIMS = ("team", "project", "environment", "model", "provider")
UNIT_FILTER_DIMS = ("team", "project", "environment", "feature", "model")
UNIT_METRICS = {
    "cost_per_1m_tokens": "cost per 1M tokens",
    "cost_per_request": "cost per request",
    "cost_per_completed_task": "cost per completed task",
}
TOP = 8
DECIDED = ("approved", "rejected", "expired", "cancelled", "superseded")
EXECUTED = ("executing", "succeeded", "failed", "dry_run", "rolling_back", "rolled_back", "rollback_failed")
AUDIT_LIMIT = 500


@dataclass
class Stores:
    db: Database
    lake: Lake
    config: FinOpsConfig
    settings: Settings

    @property
    def currency(self) -> str:
        return self.config.currency

    def today(self) -> date:
        return self.settings.as_of or datetime.now(UTC).date()

    @contextmanager
    def costs(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = open_costs(self.lake, self.config)
        try:
            yield con
        finally:
            con.close()


def auto_granularity(period: Period) -> Granularity:
    return "day" if period.days <= 62 else "week" if period.days <= 200 else "month"


def _granularity(params: Params, period: Period) -> Granularity:
    g = params.choice("granularity", ("auto", "day", "week", "month"), "auto")
    return auto_granularity(period) if g == "auto" else g  # type: ignore[return-value]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _filter_note(filters: dict[str, list[str]]) -> str:
    return "; ".join(f"{k} = {', '.join(v)}" for k, v in filters.items()) or "none"


# ----- overview ----------------------------------------------------------------------------------------------
def overview(s: Stores, params: Params) -> dict[str, Any]:
    today = s.today()
    period = params.period(today)
    by = params.get("by", "team") or "team"
    if by not in DIMENSIONS:
        raise ParamError(f"by={by!r} is not a dimension; choose from: {', '.join(DIMENSIONS)}")
    filters = params.filters(DIMENSIONS)
    gran = _granularity(params, period)
    with s.costs() as con:
        series = query_costs(
            con, CostQuery(period, (by,), filters=filters, granularity=gran, top=TOP), s.currency
        )
        totals = query_costs(con, CostQuery(period, (by,), filters=filters), s.currency)
        options = {
            d: [str(r[d]) for r in query_costs(con, CostQuery(period, (d,)), s.currency).rows]
            for d in FILTER_DIMS
        }
        budgets = _budget_rows(con, s, today)
        burn = _burn(con, s, s.config.budgets[0], today) if s.config.budgets else None
    buckets, groups, cells = pivot(series.rows, "period_start", by)
    colours = {g: charts.colour_for(i, g) for i, g in enumerate(groups)}
    chart = charts.stacked_bars(
        f"{gran.capitalize()}ly spend by {by}, {period.start} to {period.end}",
        buckets,
        [charts.Series(g, [cells.get((b, g)) for b in buckets], colours[g]) for g in groups],
        s.currency,
    )
    pivot_rows = [
        {
            "period_start": b,
            **{g: cells.get((b, g), Decimal(0)) for g in groups},
            "total": sum((cells.get((b, g), Decimal(0)) for g in groups), Decimal(0)),
        }
        for b in buckets
    ]
    series_table = Table(
        "series",
        f"{gran.capitalize()}ly {series.metric} cost by {by} (top {TOP}, the rest as (other))",
        [
            Column("period_start", gran),
            *(Column(g, g, "money") for g in groups),
            Column("total", "total", "money"),
        ],
        pivot_rows,
        csv_rows=series.rows,
        csv_columns=["period_start", by, "cost"],
        colours=colours,
    )
    total_rows = [
        {by: r[by], "cost": r["cost"], "share": (r["cost"] / totals.total) if totals.total else None}
        for r in totals.rows
    ]
    totals_table = Table(
        "totals",
        f"{series.metric.capitalize()} cost by {by}, {period.start} to {period.end} (end exclusive)",
        [Column(by, by), Column("cost", "cost", "money"), Column("share", "share", "share")],
        total_rows,
        footer={by: "total", "cost": totals.total},
        csv_rows=totals.rows,
        csv_columns=[by, "cost"],
    )
    return {
        "title": "Overview",
        "period": period,
        "by": by,
        "stack_choices": list(dict.fromkeys([*STACK_BY, by])),
        "granularity": params.get("granularity", "auto"),
        "filters": filters,
        "filter_note": _filter_note(filters),
        "filter_dims": FILTER_DIMS,
        "options": options,
        "total": totals.total,
        "estimated": totals.estimated,
        "chart": chart,
        "colours": colours,
        "tables": {"series": series_table, "totals": totals_table, "budgets": budgets},
        "burn": burn,
        "today": today,
    }


def _budget_rows(con: duckdb.DuckDBPyConnection, s: Stores, today: date) -> Table:
    from tools.budgets import budget_status
    from tools.forecast_query import forecast_budgets

    forecasts = {f["name"]: f for f in forecast_budgets(con, s.config, today)}
    rows = []
    for b in budget_status(con, s.config, today):
        f = forecasts.get(b.name, {})
        d = b.as_dict()
        rows.append(
            {
                "budget": b.name,
                "scope": ", ".join(f"{k}={v}" for k, v in b.scope.items()) or "all spend",
                "period": b.period.label,
                "amount": b.amount,
                "actual": b.actual,
                "used": d["used"],
                "forecast": f.get("forecast", b.forecast),
                "lower": f.get("lower"),
                "upper": f.get("upper"),
                "thresholds": ", ".join(f"{t:.0%}" for t in b.thresholds),
                "crossed": ", ".join(b.crossed) or "none",
                "status": b.status,
                "forecast_status": f.get("forecast_status", b.forecast_status),
                "runs_out_on": f.get("runs_out_on") or d["runs_out_on"] or "",
            }
        )
    return Table(
        "budgets",
        f"Budgets as of {today} (actuals through {today - timedelta(days=1)}; forecast with its 80 % interval)",
        [
            Column("budget", "budget"),
            Column("scope", "scope"),
            Column("period", "period"),
            Column("amount", "budget", "money"),
            Column("actual", "actual to date", "money"),
            Column("used", "used", "share"),
            Column("forecast", "forecast", "money"),
            Column("lower", "low (80 %)", "money"),
            Column("upper", "high (80 %)", "money"),
            Column("thresholds", "thresholds"),
            Column("crossed", "crossed"),
            Column("status", "status"),
            Column("forecast_status", "forecast"),
            Column("runs_out_on", "runs out on"),
        ],
        rows,
    )


def _burn(con: duckdb.DuckDBPyConnection, s: Stores, budget: Any, today: date) -> dict[str, Any]:
    """Cumulative actual per day of the budget's current period, the straight line from the last actual to the
    forecast at period end, the amount and the thresholds."""
    from tools.budgets import budget_period
    from tools.forecast_query import forecast_budgets

    period = budget_period(budget.period, today)
    scope = {k: [v] for k, v in budget.scope.items()}
    end = min(today, period.end)
    daily: dict[str, Decimal] = {}
    if end > period.start:
        result = query_costs(
            con, CostQuery(Period(period.start, end, "to date"), filters=scope, granularity="day"), s.currency
        )
        daily = {r["period_start"]: r["cost"] for r in result.rows}
    fc = next((f for f in forecast_budgets(con, s.config, today) if f["name"] == budget.name), None)
    days = [period.start + timedelta(days=i) for i in range(period.days)]
    elapsed = max(0, (end - period.start).days)
    cumulative: list[Decimal | None] = []
    running = Decimal(0)
    for i, d in enumerate(days):
        if i < elapsed:
            running += daily.get(d.isoformat(), Decimal(0))
            cumulative.append(running)
        else:
            cumulative.append(None)
    forecast_line: list[Decimal | None] = [None] * len(days)
    if fc is not None and elapsed < len(days):
        start_value, remaining = running, len(days) - elapsed
        step = (Decimal(fc["forecast"]) - start_value) / remaining
        if elapsed:
            forecast_line[elapsed - 1] = start_value
        for j in range(remaining):
            forecast_line[elapsed + j] = (start_value + step * (j + 1)).quantize(Decimal("0.01"))
    rules = [(f"budget {charts._short(float(budget.amount), s.currency)}", budget.amount, "#B00020")]
    rules += [
        (f"{t:.0%}", (t * budget.amount).quantize(Decimal("0.01")), "#8A6D00")
        for t in sorted(set(budget.thresholds))
        if t < 1
    ]
    labels = [d.strftime("%m-%d") for d in days]
    chart = charts.lines(
        f"Burn of budget {budget.name}: cumulative spend vs budget, {period.label}",
        labels,
        [
            charts.Series("actual", cumulative, "#0072B2"),
            charts.Series("forecast", forecast_line, "#E69F00", dashed=True),
        ],
        s.currency,
        rules=rules,
    )
    table = Table(
        f"burn-{budget.name}",
        f"Cumulative spend of {budget.name} per day, {period.label} (budget {budget.amount})",
        [
            Column("day", "day", "date"),
            Column("actual", "actual (cumulative)", "money"),
            Column("forecast", "forecast (cumulative)", "money"),
        ],
        [
            {"day": d.isoformat(), "actual": a, "forecast": f}
            for d, a, f in zip(days, cumulative, forecast_line, strict=True)
        ],
    )
    return {
        "name": budget.name,
        "period": period,
        "chart": chart,
        "table": table,
        "amount": budget.amount,
        "forecast": fc["forecast"] if fc else None,
        "actual": running,
    }


# ----- AI unit economics -----------------------------------------------------------------------------------------
def _buckets(period: Period, gran: str) -> list[Period]:
    out = []
    start = period.start
    while start < period.end:
        if gran == "month":
            end = add_months(month_start(start), 1)
        elif gran == "week":
            end = start + timedelta(days=7 - start.weekday())
        else:
            end = start + timedelta(days=1)
        end = min(end, period.end)
        out.append(Period(start, end, start.isoformat()))
        start = end
    return out


def unit_economics(s: Stores, params: Params) -> dict[str, Any]:
    today = s.today()
    period = params.period(today, default="last-90-days")
    filters = params.filters({d: USAGE_DIMENSIONS[d] for d in UNIT_FILTER_DIMS})
    metric = params.choice("metric", UNIT_METRICS, "cost_per_1m_tokens")
    gran = params.choice("granularity", ("auto", "week", "month"), "auto")
    gran = ("week" if period.days <= 62 else "month") if gran == "auto" else gran
    with s.costs() as con:
        total = unit_costs(con, UnitCostQuery(period, ("feature",), filters=filters), s.currency)
        mix = unit_costs(con, UnitCostQuery(period, ("model",), filters=filters), s.currency)
        over_time = [
            (b, unit_costs(con, UnitCostQuery(b, ("feature",), filters=filters), s.currency))
            for b in _buckets(period, gran)
        ]
        options = {
            d: [str(r[d]) for r in unit_costs(con, UnitCostQuery(period, (d,)), s.currency).rows]
            for d in UNIT_FILTER_DIMS
        }
    features = [str(r["feature"]) for r in total.rows][:TOP]
    colours = {f: charts.colour_for(i, f) for i, f in enumerate(features)}
    labels = [b.start.isoformat() for b, _ in over_time]
    values = {(b.start.isoformat(), str(r["feature"])): r for b, res in over_time for r in res.rows}
    chart = charts.lines(
        f"{_cap(UNIT_METRICS[metric])} per feature by {gran}, {period.start} to {period.end}",
        labels,
        [
            charts.Series(f, [values.get((lb, f), {}).get(metric) for lb in labels], colours[f])
            for f in features
        ],
        s.currency,
    )
    trend = Table(
        "trend",
        f"{_cap(UNIT_METRICS[metric])} per feature by {gran} (bucket start; the first and last may be "
        "partial)",
        [Column("bucket", gran), *(Column(f, f, "unit") for f in features)],
        [{"bucket": lb, **{f: values.get((lb, f), {}).get(metric) for f in features}} for lb in labels],
        csv_rows=[
            {"bucket": b.start.isoformat(), "bucket_end": b.end.isoformat(), **r}
            for b, res in over_time
            for r in res.rows
        ],
        csv_columns=[
            "bucket",
            "bucket_end",
            "feature",
            "cost",
            "tokens",
            "requests",
            "tasks_completed",
            *UNIT_METRICS,
        ],
        colours=colours,
    )
    unit_cols = [
        Column("cost", "AI spend", "money"),
        Column("tokens", "tokens", "int"),
        Column("requests", "requests", "int"),
        Column("tasks_completed", "completed tasks", "int"),
        Column("cost_per_1m_tokens", "per 1M tokens", "unit"),
        Column("cost_per_request", "per request", "unit"),
        Column("cost_per_completed_task", "per completed task", "unit"),
    ]
    features_table = Table(
        "features",
        f"AI unit costs per feature, {period.start} to {period.end} (end exclusive)",
        [Column("feature", "feature"), *unit_cols],
        total.rows,
        footer={"feature": "total", **total.as_dict()["totals"]},
    )
    mix_cost = sum((r["cost"] for r in mix.rows), Decimal(0))
    mix_tokens = sum(int(r["tokens"]) for r in mix.rows)
    mix_rows = [
        {
            **r,
            "cost_share": r["cost"] / mix_cost if mix_cost else None,
            "token_share": Decimal(int(r["tokens"])) / mix_tokens if mix_tokens else None,
        }
        for r in mix.rows
    ]
    mix_table = Table(
        "model-mix",
        f"Model mix, {period.start} to {period.end}: share of AI spend and of tokens",
        [
            Column("model", "model"),
            Column("cost", "AI spend", "money"),
            Column("cost_share", "spend share", "share"),
            Column("tokens", "tokens", "int"),
            Column("token_share", "token share", "share"),
            Column("cost_per_1m_tokens", "per 1M tokens", "unit"),
        ],
        mix_rows,
    )
    mix_chart = charts.hbars(
        f"AI spend by model, {period.start} to {period.end}",
        [(str(r["model"]), r["cost"]) for r in mix.rows[:12]],
        s.currency,
    )
    return {
        "title": "AI unit economics",
        "period": period,
        "filters": filters,
        "filter_note": _filter_note(filters),
        "filter_dims": UNIT_FILTER_DIMS,
        "options": options,
        "metric": metric,
        "metrics": UNIT_METRICS,
        "granularity": params.get("granularity", "auto"),
        "chart": chart,
        "colours": colours,
        "mix_chart": mix_chart,
        "workload_split": total.workload_split,
        "tables": {"trend": trend, "features": features_table, "model-mix": mix_table},
    }


# ----- budgets -------------------------------------------------------------------------------------------------
def budgets(s: Stores, params: Params) -> dict[str, Any]:
    from tools.budgets import token_budget_status

    today = s.today()
    with s.costs() as con:
        table = _budget_rows(con, s, today)
        burns = [_burn(con, s, b, today) for b in s.config.budgets]
        tokens = token_budget_status(con, s.config, today)
    token_table = Table(
        "token-budgets",
        f"Token budgets as of {today}",
        [
            Column("project", "project"),
            Column("period", "period"),
            Column("tokens", "budget (tokens)", "int"),
            Column("actual", "actual", "int"),
            Column("used", "used", "share"),
            Column("forecast", "forecast", "int"),
            Column("status", "status"),
            Column("forecast_status", "forecast"),
        ],
        [{**t.as_dict(), "period": t.period.label} for t in tokens],
    )
    tables = {"budgets": table, "token-budgets": token_table}
    tables.update({b["table"].name: b["table"] for b in burns})
    return {
        "title": "Budgets",
        "today": today,
        "burns": burns,
        "tables": tables,
        "filters": {},
        "filter_note": "none",
    }


# ----- findings ------------------------------------------------------------------------------------------------
def findings(s: Stores, params: Params) -> dict[str, Any]:
    from tools.findings_store import STATUSES, finding_dict, list_findings

    status = params.values("status")
    for st in status:
        if st not in STATUSES:
            raise ParamError(f"status={st!r} is not one of: {', '.join(STATUSES)}")
    team, rule = params.get("team"), params.get("rule")
    every = [finding_dict(r) for r in list_findings(s.db, limit=100_000)]
    rows = [finding_dict(r) for r in list_findings(s.db, status=status, team=team, rule=rule, limit=100_000)]
    impact = sum((r["monthly_impact"] for r in rows), Decimal(0))
    by_rule: dict[str, Decimal] = {}
    for r in rows:
        by_rule[r["rule"]] = by_rule.get(r["rule"], Decimal(0)) + r["monthly_impact"]
    ranked = sorted(by_rule.items(), key=lambda kv: (-kv[1], kv[0]))
    table = Table(
        "findings",
        "Findings, largest $ impact per month first",
        [
            Column("title", "finding"),
            Column("rule", "rule"),
            Column("team", "team"),
            Column("status", "status"),
            Column("severity", "severity"),
            Column("resource", "resource"),
            Column("monthly_impact", "$ / month", "money"),
            Column("proposed_action", "proposed action"),
            Column("last_seen", "last seen"),
            Column("id", "id"),
        ],
        rows,
        footer={"title": f"{len(rows)} findings", "monthly_impact": impact},
    )
    rule_table = Table(
        "by-rule",
        "Monthly impact by rule",
        [Column("rule", "rule"), Column("monthly_impact", "$ / month", "money")],
        [{"rule": k, "monthly_impact": v} for k, v in ranked],
    )
    filters = {
        k: v
        for k, v in {"team": [team] if team else [], "status": status, "rule": [rule] if rule else []}.items()
        if v
    }
    return {
        "title": "Findings",
        "filters": filters,
        "filter_note": _filter_note(filters),
        "options": {
            "team": sorted({str(r["team"]) for r in every if r["team"]}),
            "status": list(STATUSES),
            "rule": sorted({str(r["rule"]) for r in every}),
        },
        "selected": {"team": team, "status": status, "rule": rule},
        "impact": impact,
        "count": len(rows),
        "chart": charts.hbars("Monthly $ impact of the findings by rule", ranked, s.currency),
        "tables": {"findings": table, "by-rule": rule_table},
    }


# ----- approvals -------------------------------------------------------------------------------------------------
def approvals(s: Stores, params: Params) -> dict[str, Any]:
    from approvals.service import ApprovalService

    team = params.get("team")
    svc = ApprovalService(s.db, s.config)
    rows = svc.list_requests(team=team)
    cols = [
        Column("id", "request"),
        Column("summary", "plan"),
        Column("status", "status"),
        Column("team", "team"),
        Column("resource", "resource"),
        Column("monthly_savings", "savings / month", "money"),
        Column("approvals", "approvals"),
        Column("requested_by", "requested by"),
        Column("created_at", "created"),
        Column("expires_at", "expires"),
    ]
    groups = {
        "pending": [r for r in rows if r["status"] == "pending"],
        "decided": [r for r in rows if r["status"] in DECIDED],
        "executed": [r for r in rows if r["status"] in EXECUTED],
    }
    tables = {
        name: Table(name, f"{name.capitalize()} requests", cols, group) for name, group in groups.items()
    }
    filters = {"team": [team]} if team else {}
    return {
        "title": "Approvals",
        "tables": tables,
        "filters": filters,
        "filter_note": _filter_note(filters),
        "options": {"team": sorted({t.name for t in s.config.teams})},
        "selected": {"team": team},
    }


def approval_detail(s: Stores, request_id: str) -> dict[str, Any]:
    from approvals.service import ApprovalService

    detail = ApprovalService(s.db, s.config).show(request_id)
    return {
        "title": f"Request {detail['id']}",
        "request": detail,
        "plan_json": json.dumps(detail["plan"], indent=2, sort_keys=True, default=str),
        "history": [_audit_view(e) for e in detail["history"]],
        "filters": {},
        "filter_note": "none",
    }


# ----- audit trail -------------------------------------------------------------------------------------------------
def _audit_filters(params: Params) -> dict[str, Any]:
    start, end = params.day("from"), params.day("to")
    return {
        "resource": params.get("resource"),
        "actor": params.get("actor"),
        "request_id": params.get("request"),
        "event": params.get("event"),
        "since": datetime.combine(start, time(), UTC) if start else None,
        "until": datetime.combine(end, time(), UTC) if end else None,
    }


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def _audit_view(e: dict[str, Any]) -> dict[str, Any]:
    details = e["details"] if isinstance(e["details"], dict) else {"value": e["details"]}
    before = next((details[k] for k in ("before", "captured", "observed", "old") if k in details), None)
    after = next((details[k] for k in ("after", "applied", "planned", "new") if k in details), None)
    return {
        **e,
        "details_json": _dump(details),
        "before_json": _dump(before) if before is not None else None,
        "after_json": _dump(after) if after is not None else None,
    }


def audit(s: Stores, params: Params) -> dict[str, Any]:
    from approvals import audit as trail

    f = _audit_filters(params)
    with s.db.session() as session:
        verification = trail.verify(session)
        entries = [
            trail.entry_dict(e)
            for e in trail.list_entries(session, **f, limit=AUDIT_LIMIT, newest_first=True)
        ]
    views = [_audit_view(e) for e in entries]
    table = Table(
        "entries",
        f"Audit entries, newest first (at most {AUDIT_LIMIT})",
        [
            Column("seq", "#"),
            Column("at", "time (UTC)"),
            Column("event", "event"),
            Column("actor", "actor"),
            Column("channel", "channel"),
            Column("request_id", "request"),
            Column("resource", "resource"),
        ],
        views,
        csv_rows=[{**e, "details": json.dumps(e["details"], sort_keys=True)} for e in entries],
        csv_columns=[
            "seq",
            "at",
            "event",
            "actor",
            "channel",
            "request_id",
            "resource",
            "details",
            "prev_hash",
            "hash",
        ],
    )
    filters = {
        k: [str(v)]
        for k, v in {
            "resource": f["resource"],
            "actor": f["actor"],
            "request": f["request_id"],
            "event": f["event"],
            "from": params.get("from"),
            "to": params.get("to"),
        }.items()
        if v
    }
    return {
        "title": "Audit trail",
        "verification": verification,
        "entries": views,
        "tables": {"entries": table},
        "filters": filters,
        "filter_note": _filter_note(filters),
        "values": {k: params.get(k) or "" for k in ("resource", "actor", "request", "event", "from", "to")},
    }


def audit_export(s: Stores, params: Params, fmt: str) -> Iterator[str]:
    from approvals import audit as trail

    f = _audit_filters(params)
    with s.db.session() as session:
        entries = trail.list_entries(session, **f)
        lines = list(trail.export_lines(entries, fmt))
    return iter(lines)
