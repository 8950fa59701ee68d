"""The monthly AI cost review and the quarterly optimisation review: pure computation over the two stores.

``monthly_report(db, costs, config, "2024-08", as_of=...)`` and ``quarterly_report(db, costs, config,
"2024-Q3", as_of=...)`` read the cost lake (``costs``: a connection from ``tools.costs.open_costs``, with the
``spend``, ``usage_allocated`` and ``usage_facts`` relations) and the app database (findings, remediation
requests, price changes) and return typed reports. No Slack, no printing: ``tools.report_render`` turns a
report into Markdown or JSON.

Conventions of every section:

- **Period.** Each section carries the period its figures cover. A month (quarter) that is not over on
  ``as_of`` is reported *to date*: data up to ``as_of`` exclusive (the lake holds data through yesterday),
  and compared with the same number of days at the start of the previous month.
- **Metric.** Money is the allocated **effective cost** (amortised, after discounts) in the config's
  currency, summed by DuckDB as DECIMAL; spend in a currency without a configured rate is left out of the
  figures and named in ``notes``. Tokens and requests come from ``usage_allocated`` (each call counted once
  even when several sources describe it). Ratios (shares, used) are Decimal, quantized to 1e-4; nothing
  is summed as a float.
- **Events** (findings opened / resolved, remediations executed) are counted by their UTC timestamp in the
  calendar month.

What the monthly review holds, section by section:

- ``teams``: spend per team this month vs the previous one, the team's monthly budget (budgets whose scope
  is exactly that team) and, for a month not over, the month-end forecast (``tools.forecast_query``).
- ``budgets``: every configured budget over its own period (the month, or the quarter that contains it) up
  to the end of the month: actual, share used, thresholds crossed, and the period-end forecast as of
  ``as_of`` while the budget's period is not over.
- ``movers``: the keys of team, service, feature and model whose spend moved most against the previous
  month, each explained by the sub-dimension (resource, model, feature, service, sku) whose changes are
  most concentrated (``tools.anomaly.root_cause``: deltas and their share of the key's change).
- ``unit_economics``: per feature, cost per 1M tokens, per request and per completed task
  (``tools.costs.unit_costs``) for the month and the two months before it.
- ``model_mix``: LLM spend and tokens per model, with their shares.
- ``workloads``: AI spend by workload (training, inference, unassigned), this month and the previous one.
- ``token_budgets``: tokens per project vs its token budget, with the forecast while the period runs.
- ``tagging``: untagged (no team) spend and its share, the top offenders with a suggested owner, and the
  share of spend carrying each allocation dimension (coverage).
- ``findings``: findings first seen in the month, and findings resolved in the month (still resolved).
- ``remediations``: requests executed in the month (not dry runs): the estimate given when proposed and
  the realised saving: the resource's daily cost after the change (from the day after it, up to
  ``MAX_DAYS_AFTER`` days) against its daily baseline over the ``BASELINE_DAYS`` days before it, times 30.
  With fewer than ``MIN_DAYS_AFTER`` days of data after the change it says "not enough data yet". A
  model-routing change (an ``llm-feature``) is measured on the feature's spend in its environment.
- ``price_changes``: model price changes effective from the month's start up to ``as_of`` and what each
  does to the month's usage (``tools.prices.change_usage``: the month's tokens at the new price minus at
  the old one).

The quarterly review holds ``model_selection`` (usage where a cheaper approved model of the same family
would do, priced on the usage's own token mix as ``premium-model-downgrade`` does; $ over the quarter and
per 30 days), ``token_efficiency`` (tokens per request and per completed task, per feature and month) and
``tagging_trend`` (the tagging section per month), with the spend per month.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import duckdb
from sqlalchemy import select

from config.model import FinOpsConfig
from tools.anomalies_query import AI_ONLY
from tools.anomaly import Contribution, root_cause
from tools.budgets import _status, budget_period
from tools.costs import DIMENSIONS, NONE_VALUE, Metric, UnitCostQuery, _filter_sql, _num, unit_costs
from tools.errors import QueryError
from tools.forecast_query import forecast_budgets, forecast_by
from tools.periods import Period, add_months, month_start, quarter_start
from tools.prices import PriceChangeInfo, change_usage, list_price_changes
from tools.rules.premium_model import period_sql
from tools.store.db import Database
from tools.store.lake import sql_string
from tools.store.models import FindingRow, RemediationRequest
from tools.untagged import untagged_spend

METRIC: Metric = "effective"
MOVER_DIMENSIONS: tuple[str, ...] = ("team", "service", "feature", "model")
TOP_MOVERS = 5
TOP_CAUSES = 3
TOP_OFFENDERS = 5
COVERAGE_DIMENSIONS: tuple[str, ...] = ("team", "project", "environment", "cost_center", "owner")
BASELINE_DAYS = 14
MIN_DAYS_AFTER = 7
MAX_DAYS_AFTER = 30
MONTH_DAYS = Decimal(30)
SHARE = Decimal("0.0001")
CENT = Decimal("0.01")
NOT_ENOUGH_DATA = "not enough data yet"
#: sub-dimensions a mover is explained by; on a tie of concentration the first wins (opaque SKU ids last)
CAUSES: dict[str, str] = {
    "resource": "resource",
    "model": "model",
    "feature": "feature",
    "service": "service",
    "sku": "sku",
}


# ----- periods -----------------------------------------------------------------------------------------


def month_period(text: str) -> Period:
    """``YYYY-MM`` as the calendar month."""
    t = text.strip()
    try:
        start = datetime.strptime(t, "%Y-%m").date()
    except ValueError:
        raise QueryError(f"month {text!r} is not YYYY-MM (e.g. 2024-08)") from None
    return Period(start, add_months(start, 1), f"{start:%Y-%m}")


def quarter_period(text: str) -> Period:
    """``YYYY-QN`` (also ``YYYYqN``) as the calendar quarter."""
    t = text.strip().upper().replace("-", "")
    if len(t) != 6 or not t[:4].isdigit() or t[4] != "Q" or t[5] not in "1234":
        raise QueryError(f"quarter {text!r} is not YYYY-QN (e.g. 2024-Q3)")
    start = date(int(t[:4]), 3 * (int(t[5]) - 1) + 1, 1)
    return Period(start, add_months(start, 3), f"{t[:4]}-Q{t[5]}")


def last_full_month(today: date) -> str:
    """The month before ``today``'s month (``2024-08`` on any day of September 2024)."""
    return f"{add_months(month_start(today), -1):%Y-%m}"


def last_full_quarter(today: date) -> str:
    start = add_months(quarter_start(today), -3)
    return f"{start.year}-Q{(start.month - 1) // 3 + 1}"


def _to_date(period: Period, as_of: date) -> tuple[Period, bool]:
    """The part of ``period`` with data on ``as_of`` (data runs up to ``as_of`` exclusive); complete?"""
    if as_of <= period.start:
        raise QueryError(f"{period.label} has no data yet on {as_of.isoformat()} (it starts {period.start})")
    if as_of >= period.end:
        return period, True
    return Period(period.start, as_of, f"{period.label} to date"), False


def _previous(period: Period, window: Period) -> Period:
    """The period before ``period`` (whole), or its first ``window.days`` days when ``window`` is partial."""
    prev = period.previous()
    if window.end == period.end:
        return prev
    end = min(prev.end, prev.start + timedelta(days=window.days))
    return Period(prev.start, end, f"{prev.label}, first {(end - prev.start).days} days")


def _days(period: Period) -> str:
    return f"day >= DATE {sql_string(period.start.isoformat())} AND day < DATE {sql_string(period.end.isoformat())}"


def _at(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _ratio(part: Decimal, whole: Decimal) -> Decimal | None:
    return (part / whole).quantize(SHARE) if whole else None


def _percent(current: Decimal, previous: Decimal) -> Decimal | None:
    return ((current - previous) / abs(previous) * 100).quantize(CENT) if previous else None


# ----- sections ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TeamLine:
    team: str
    actual: Decimal
    previous: Decimal
    change: Decimal
    change_percent: Decimal | None
    budget: Decimal | None  # the team's monthly budget(s): scope exactly {team: <team>}
    budget_used: Decimal | None  # actual / budget
    forecast: Decimal | None  # month-end forecast while the month is not over


@dataclass(frozen=True)
class TeamSection:
    period: Period
    previous_period: Period
    metric: str
    currency: str
    rows: list[TeamLine]
    total: Decimal
    previous_total: Decimal
    forecast_total: Decimal | None


@dataclass(frozen=True)
class BudgetLine:
    name: str
    scope: dict[str, str]
    cadence: str  # monthly | quarterly
    period: Period  # the budget's own period; actual covers [period.start, through)
    through: date
    amount: Decimal
    actual: Decimal
    used: Decimal
    crossed: list[str]
    status: str  # ok | warning | over
    forecast: Decimal | None  # period-end forecast as of the report's as_of, while the period runs
    forecast_status: str | None  # on-track | at-risk | over
    unconverted: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class BudgetSection:
    metric: str
    currency: str
    as_of: date
    rows: list[BudgetLine]


@dataclass(frozen=True)
class Mover:
    dimension: str
    key: str
    current: Decimal
    previous: Decimal
    change: Decimal
    change_percent: Decimal | None
    causes: tuple[Contribution, ...]  # the sub-keys that explain the change best


@dataclass(frozen=True)
class MoverSection:
    period: Period
    previous_period: Period
    metric: str
    currency: str
    by: dict[str, list[Mover]]  # dimension -> largest |change| first


@dataclass(frozen=True)
class UnitPoint:
    period: Period
    cost: Decimal
    tokens: int
    requests: int
    tasks_completed: int
    cost_per_1m_tokens: Decimal | None
    cost_per_request: Decimal | None
    cost_per_completed_task: Decimal | None


@dataclass(frozen=True)
class FeatureUnits:
    feature: str
    points: tuple[UnitPoint, ...]  # oldest first; the last is the report's period
    change_percent: dict[str, Decimal | None]  # unit metric -> change of the last point vs the one before


@dataclass(frozen=True)
class UnitSection:
    periods: tuple[Period, ...]
    metric: str
    currency: str
    rows: list[FeatureUnits]


@dataclass(frozen=True)
class ModelShare:
    model: str
    cost: Decimal
    cost_share: Decimal | None
    previous_cost: Decimal
    tokens: int
    token_share: Decimal | None
    requests: int


@dataclass(frozen=True)
class ModelMixSection:
    period: Period
    previous_period: Period
    metric: str
    currency: str
    rows: list[ModelShare]
    total_cost: Decimal
    total_tokens: int


@dataclass(frozen=True)
class WorkloadSection:
    period: Period
    previous_period: Period
    metric: str
    currency: str
    current: dict[str, Decimal]  # training | inference | unassigned -> AI spend
    previous: dict[str, Decimal]


@dataclass(frozen=True)
class TokenBudgetLine:
    project: str
    cadence: str
    period: Period
    through: date
    tokens: int  # the budget
    actual: int
    used: Decimal
    crossed: list[str]
    status: str
    forecast: int | None
    forecast_status: str | None


@dataclass(frozen=True)
class TokenBudgetSection:
    metric: str
    as_of: date
    rows: list[TokenBudgetLine]


@dataclass(frozen=True)
class TaggingSection:
    period: Period
    metric: str
    currency: str
    total: Decimal
    untagged: Decimal  # spend with no team
    untagged_share: Decimal | None
    coverage: dict[str, Decimal | None]  # dimension -> share of spend that carries it
    offenders: list[dict[str, Any]]


@dataclass(frozen=True)
class FindingLine:
    id: str
    rule: str
    kind: str
    title: str
    team: str | None
    severity: str
    status: str
    monthly_impact: Decimal
    at: datetime  # first seen (opened) or resolved at


@dataclass(frozen=True)
class FindingsSection:
    period: Period
    metric: str
    currency: str
    opened: list[FindingLine]
    resolved: list[FindingLine]
    opened_impact: Decimal
    resolved_impact: Decimal
    by_rule: dict[str, dict[str, int]]  # rule -> {"opened": n, "resolved": n}


@dataclass(frozen=True)
class RemediationLine:
    request_id: str
    action: str
    resource: str
    resource_kind: str
    team: str | None
    status: str
    executed_at: datetime
    estimated_monthly: Decimal
    realised_monthly: Decimal | None
    baseline_daily: Decimal | None
    after_daily: Decimal | None
    baseline_days: int
    days_after: int
    measured_on: str  # what the realised figure is measured on
    note: str | None


@dataclass(frozen=True)
class RemediationSection:
    period: Period
    metric: str
    currency: str
    rows: list[RemediationLine]
    estimated_total: Decimal
    realised_total: Decimal  # of the rows with a realised figure
    measured: int


@dataclass(frozen=True)
class PriceImpactLine:
    change: PriceChangeInfo
    tokens: int
    old_cost: Decimal
    new_cost: Decimal
    impact: Decimal  # new - old, on the period's usage


@dataclass(frozen=True)
class PriceSection:
    period: Period  # the usage the changes are priced on
    changes_from: date
    changes_to: date
    metric: str
    currency: str
    rows: list[PriceImpactLine]
    total_impact: Decimal
    without_usage: int  # changes of models not used in the period


@dataclass(frozen=True)
class MonthlyReport:
    month: Period
    period: Period  # the part of the month with data (the month itself once it is over)
    previous_period: Period
    as_of: date
    complete: bool
    currency: str
    metric: str
    total: Decimal
    previous_total: Decimal
    teams: TeamSection
    budgets: BudgetSection
    movers: MoverSection
    unit_economics: UnitSection
    model_mix: ModelMixSection
    workloads: WorkloadSection
    token_budgets: TokenBudgetSection
    tagging: TaggingSection
    findings: FindingsSection
    remediations: RemediationSection
    price_changes: PriceSection
    notes: list[str]


@dataclass(frozen=True)
class ModelSwitch:
    provider: str
    model: str
    environment: str
    feature: str
    team: str | None
    target: str
    requests: int
    avg_input_tokens: Decimal
    allocated_spend: Decimal  # the usage's allocated spend in the period
    cost_current: Decimal  # the usage's token mix at the current model's price
    cost_target: Decimal  # the same tokens at the target's price
    savings: Decimal  # over the period
    monthly_savings: Decimal  # per 30 days


@dataclass(frozen=True)
class ModelSelectionSection:
    period: Period
    metric: str
    currency: str
    rows: list[ModelSwitch]
    total_savings: Decimal
    monthly_savings: Decimal


@dataclass(frozen=True)
class EfficiencyPoint:
    period: Period
    tokens: int
    requests: int
    tasks_completed: int
    tokens_per_request: Decimal | None
    tokens_per_task: Decimal | None


@dataclass(frozen=True)
class FeatureEfficiency:
    feature: str
    points: tuple[EfficiencyPoint, ...]
    tokens_per_request_change: Decimal | None  # percent, last month vs first month with requests
    tokens_per_task_change: Decimal | None


@dataclass(frozen=True)
class TokenEfficiencySection:
    periods: tuple[Period, ...]
    metric: str
    rows: list[FeatureEfficiency]


@dataclass(frozen=True)
class QuarterlyReport:
    quarter: Period
    period: Period
    as_of: date
    complete: bool
    currency: str
    metric: str
    months: tuple[Period, ...]
    spend_by_month: list[tuple[Period, Decimal]]
    total: Decimal
    model_selection: ModelSelectionSection
    token_efficiency: TokenEfficiencySection
    tagging_trend: list[TaggingSection]
    notes: list[str]


# ----- money helpers -----------------------------------------------------------------------------------


def _metric_label(config: FinOpsConfig) -> str:
    return f"{METRIC} cost ({config.currency})"


def _in_currency(config: FinOpsConfig) -> str:
    return f"currency = {sql_string(config.currency)}"


def _scoped_spend(
    con: duckdb.DuckDBPyConnection, config: FinOpsConfig, scope: Mapping[str, str], period: Period
) -> tuple[Decimal, dict[str, Decimal]]:
    """Spend in ``scope`` over ``period`` in the report currency, and the amounts left in other currencies."""
    where = [_days(period)]
    f = _filter_sql({k: [v] for k, v in scope.items()}, DIMENSIONS)
    if f:
        where.append(f)
    by_currency = {
        str(c): _num(v)
        for c, v in con.execute(
            f"SELECT currency, sum({METRIC}_cost) FROM spend WHERE {' AND '.join(where)} GROUP BY 1"
        ).fetchall()
    }
    actual = by_currency.pop(config.currency, Decimal(0))
    return actual, {c: v for c, v in sorted(by_currency.items()) if v}


def _unconverted_note(con: duckdb.DuckDBPyConnection, config: FinOpsConfig, period: Period) -> str | None:
    rows = con.execute(
        f"SELECT currency, sum({METRIC}_cost) FROM spend WHERE {_days(period)} "
        f"AND currency IS DISTINCT FROM {sql_string(config.currency)} GROUP BY 1 ORDER BY 1"
    ).fetchall()
    amounts = [f"{_num(v)} {c}" for c, v in rows if v]
    if not amounts:
        return None
    return (
        f"spend in {', '.join(amounts)} has no rate to {config.currency} (currency_rates in finops.yaml) "
        "and is left out of the figures"
    )


# ----- monthly sections --------------------------------------------------------------------------------


def _teams(
    con: duckdb.DuckDBPyConnection,
    config: FinOpsConfig,
    month: Period,
    window: Period,
    prev: Period,
    complete: bool,
    as_of: date,
) -> TeamSection:
    cur, before = _days(window), _days(prev)
    rows = con.execute(
        f"SELECT team, sum({METRIC}_cost) FILTER (WHERE {cur}), sum({METRIC}_cost) FILTER (WHERE {before}) "
        f"FROM spend WHERE ({cur} OR {before}) AND {_in_currency(config)} GROUP BY 1"
    ).fetchall()
    spend: dict[str, tuple[Decimal, Decimal]] = {
        NONE_VALUE if t is None else str(t): (_num(a), _num(b)) for t, a, b in rows
    }
    for t in config.teams:
        spend.setdefault(t.name, (Decimal(0), Decimal(0)))
    budgets: dict[str, Decimal] = defaultdict(Decimal)
    for b in config.budgets:
        if b.period == "monthly" and set(b.scope) == {"team"}:
            budgets[b.scope["team"]] += b.amount
    forecasts: dict[str, Decimal] = {}
    forecast_total: Decimal | None = None
    if not complete:
        for r in forecast_by(con, "team", month, as_of, config=config, top=max(len(spend), 1)):
            forecasts[str(r["team"])] = _num(r["forecast"])
        forecast_total = _num(forecast_by(con, None, month, as_of, config=config)[0]["forecast"])
    lines = []
    for team, (actual, previous) in spend.items():
        budget = budgets.get(team)
        lines.append(
            TeamLine(
                team=team,
                actual=actual,
                previous=previous,
                change=actual - previous,
                change_percent=_percent(actual, previous),
                budget=budget,
                budget_used=_ratio(actual, budget) if budget else None,
                forecast=forecasts.get(team),
            )
        )
    lines.sort(key=lambda r: (r.team == NONE_VALUE, -r.actual, r.team))
    return TeamSection(
        window,
        prev,
        _metric_label(config),
        config.currency,
        lines,
        sum((r.actual for r in lines), Decimal(0)),
        sum((r.previous for r in lines), Decimal(0)),
        forecast_total,
    )


def _budgets(
    con: duckdb.DuckDBPyConnection, config: FinOpsConfig, month: Period, as_of: date
) -> BudgetSection:
    running = [b for b in config.budgets if as_of < budget_period(b.period, month.start).end]
    forecasts = {f["name"]: f for f in forecast_budgets(con, config, as_of)} if running else {}
    lines = []
    for b in config.budgets:
        period = budget_period(b.period, month.start)
        through = min(period.end, month.end, as_of)
        actual, unconverted = Decimal(0), dict[str, Decimal]()
        if through > period.start:
            actual, unconverted = _scoped_spend(con, config, b.scope, Period(period.start, through, ""))
        used = (actual / b.amount).quantize(SHARE)
        crossed, status = _status(actual / b.amount, list(b.thresholds))
        forecast: Decimal | None = None
        forecast_status: str | None = None
        found = forecasts.get(b.name)
        if found is not None and as_of < period.end and found["period"] == period.as_dict():
            forecast, forecast_status = _num(found["forecast"]), str(found["forecast_status"])
        lines.append(
            BudgetLine(
                name=b.name,
                scope=dict(b.scope),
                cadence=b.period,
                period=period,
                through=through,
                amount=b.amount,
                actual=actual,
                used=used,
                crossed=crossed,
                status=status,
                forecast=forecast,
                forecast_status=forecast_status,
                unconverted=unconverted,
            )
        )
    return BudgetSection(_metric_label(config), config.currency, as_of, lines)


def _explain(
    before: Mapping[str, Mapping[str, Decimal]], after: Mapping[str, Mapping[str, Decimal]]
) -> tuple[Contribution, ...]:
    """The sub-dimension whose changes are most concentrated (ties: the more specific one), top keys."""
    ranked: list[tuple[Decimal, int, tuple[Contribution, ...]]] = []
    for order, name in enumerate(CAUSES):
        if name not in before and name not in after:
            continue
        parts = root_cause(before.get(name, {}), after.get(name, {}), name, top=TOP_CAUSES)
        if not parts or parts[0].key == NONE_VALUE:
            continue  # nothing moved, or only "not tagged with it" did
        ranked.append((-min(abs(parts[0].share), Decimal(1)).quantize(Decimal("0.1")), order, parts))
    ranked.sort(key=lambda r: (r[0], r[1]))
    return ranked[0][2] if ranked else ()


def _movers(
    con: duckdb.DuckDBPyConnection, config: FinOpsConfig, window: Period, prev: Period
) -> MoverSection:
    cur, before = _days(window), _days(prev)
    by: dict[str, list[Mover]] = {}
    for dim in MOVER_DIMENSIONS:
        column = DIMENSIONS[dim]
        causes = {name: col for name, col in CAUSES.items() if col != column}
        names, cols = list(causes), list(causes.values())
        sets = ", ".join([f"({column})", *(f"({column}, {c})" for c in cols)])
        rows = con.execute(
            f"""SELECT {column}, {", ".join(cols)}, {", ".join(f"grouping({c})" for c in cols)},
                       sum({METRIC}_cost) FILTER (WHERE {cur}), sum({METRIC}_cost) FILTER (WHERE {before})
                FROM spend WHERE ({cur} OR {before}) AND {_in_currency(config)}
                GROUP BY GROUPING SETS ({sets})"""
        ).fetchall()
        n = len(cols)
        totals: dict[str, tuple[Decimal, Decimal]] = {}
        after_parts: dict[str, dict[str, dict[str, Decimal]]] = defaultdict(lambda: defaultdict(dict))
        before_parts: dict[str, dict[str, dict[str, Decimal]]] = defaultdict(lambda: defaultdict(dict))
        for row in rows:
            key = NONE_VALUE if row[0] is None else str(row[0])
            flags = row[1 + n : 1 + 2 * n]
            a, b = _num(row[1 + 2 * n]), _num(row[2 + 2 * n])
            if all(flags):
                totals[key] = (a, b)
                continue
            which = list(flags).index(0)
            sub = row[1 + which]
            sub_key = NONE_VALUE if sub is None else str(sub)
            after_parts[key][names[which]][sub_key] = a
            before_parts[key][names[which]][sub_key] = b
        movers = []
        for key, (a, b) in totals.items():
            if a == b or (key == NONE_VALUE and column in AI_ONLY):
                continue
            movers.append(
                Mover(dim, key, a, b, a - b, _percent(a, b), _explain(before_parts[key], after_parts[key]))
            )
        movers.sort(key=lambda m: (-abs(m.change), m.key))
        by[dim] = movers[:TOP_MOVERS]
    return MoverSection(window, prev, _metric_label(config), config.currency, by)


_UNIT_METRICS = ("cost_per_1m_tokens", "cost_per_request", "cost_per_completed_task")


def _unit_economics(
    con: duckdb.DuckDBPyConnection, config: FinOpsConfig, periods: Sequence[Period]
) -> tuple[UnitSection, list[Any]]:
    results = [unit_costs(con, UnitCostQuery(p, ("feature",), METRIC), config.currency) for p in periods]
    per_feature: dict[str, list[UnitPoint | None]] = {}
    for i, result in enumerate(results):
        for r in result.rows:
            slots = per_feature.setdefault(str(r["feature"]), [None] * len(periods))
            slots[i] = UnitPoint(
                periods[i],
                _num(r["cost"]),
                int(r["tokens"]),
                int(r["requests"]),
                int(r["tasks_completed"]),
                r["cost_per_1m_tokens"],
                r["cost_per_request"],
                r["cost_per_completed_task"],
            )
    rows = []
    for feature, maybe in per_feature.items():
        points = tuple(
            p if p is not None else UnitPoint(periods[i], Decimal(0), 0, 0, 0, None, None, None)
            for i, p in enumerate(maybe)
        )
        change: dict[str, Decimal | None] = {}
        for metric in _UNIT_METRICS:
            last, before = (
                getattr(points[-1], metric),
                getattr(points[-2], metric) if len(points) > 1 else None,
            )
            change[metric] = _percent(last, before) if last is not None and before is not None else None
        rows.append(FeatureUnits(feature, points, change))
    rows.sort(key=lambda f: (f.feature == NONE_VALUE, -f.points[-1].cost, f.feature))
    section = UnitSection(tuple(periods), _metric_label(config), config.currency, rows)
    return section, results


def _model_mix(
    con: duckdb.DuckDBPyConnection, config: FinOpsConfig, window: Period, prev: Period
) -> ModelMixSection:
    cur, before = _days(window), _days(prev)
    money = {
        NONE_VALUE if m is None else str(m): (_num(a), _num(b))
        for m, a, b in con.execute(
            f"SELECT model, sum({METRIC}_cost) FILTER (WHERE {cur}), sum({METRIC}_cost) FILTER (WHERE {before}) "
            f"FROM spend WHERE llm_provider IS NOT NULL AND ({cur} OR {before}) AND {_in_currency(config)} "
            "GROUP BY 1"
        ).fetchall()
    }
    usage = {
        NONE_VALUE if m is None else str(m): (int(t or 0), int(r or 0))
        for m, t, r in con.execute(
            f"SELECT model, sum(tokens), sum(requests) FROM usage_allocated WHERE {cur} GROUP BY 1"
        ).fetchall()
    }
    total_cost = sum((a for a, _ in money.values()), Decimal(0))
    total_tokens = sum(t for t, _ in usage.values())
    rows = []
    for model in set(money) | set(usage):
        cost, previous = money.get(model, (Decimal(0), Decimal(0)))
        tokens, requests = usage.get(model, (0, 0))
        if not cost and not previous and not tokens:
            continue
        rows.append(
            ModelShare(
                model,
                cost,
                _ratio(cost, total_cost),
                previous,
                tokens,
                _ratio(Decimal(tokens), Decimal(total_tokens)),
                requests,
            )
        )
    rows.sort(key=lambda r: (-r.cost, -r.tokens, r.model))
    return ModelMixSection(
        window, prev, _metric_label(config), config.currency, rows, total_cost, total_tokens
    )


def _token_budgets(
    con: duckdb.DuckDBPyConnection, config: FinOpsConfig, month: Period, as_of: date
) -> TokenBudgetSection:
    from tools.budgets import token_budget_status

    running = {s.project: s for s in token_budget_status(con, config, as_of)} if config.token_budgets else {}
    lines = []
    for b in config.token_budgets:
        period = budget_period(b.period, month.start)
        through = min(period.end, month.end, as_of)
        actual = 0
        if through > period.start:
            where = f"{_days(Period(period.start, through, ''))} AND " + _filter_sql(
                {"project": [b.project]}, {"project": "project"}
            )
            (raw,) = con.execute(f"SELECT sum(tokens) FROM usage_allocated WHERE {where}").fetchall()[0]
            actual = int(raw or 0)
        crossed, status = _status(Decimal(actual) / b.tokens, list(b.thresholds))
        forecast: int | None = None
        forecast_status: str | None = None
        found = running.get(b.project)
        if found is not None and as_of < period.end and found.period == period:
            forecast, forecast_status = found.forecast, found.forecast_status
        lines.append(
            TokenBudgetLine(
                b.project,
                b.period,
                period,
                through,
                b.tokens,
                actual,
                (Decimal(actual) / b.tokens).quantize(SHARE),
                crossed,
                status,
                forecast,
                forecast_status,
            )
        )
    return TokenBudgetSection("tokens (all kinds, each call counted once)", as_of, lines)


def tagging(con: duckdb.DuckDBPyConnection, config: FinOpsConfig, period: Period) -> TaggingSection:
    """Untagged (no team) spend, its share and top offenders; the share of spend carrying each dimension."""
    result = untagged_spend(con, config, period, top=TOP_OFFENDERS, metric=METRIC)
    covered = ", ".join(
        f"sum({METRIC}_cost) FILTER (WHERE {DIMENSIONS[d]} IS NOT NULL)" for d in COVERAGE_DIMENSIONS
    )
    row = con.execute(f"SELECT sum({METRIC}_cost), {covered} FROM spend WHERE {_days(period)}").fetchall()[0]
    total = _num(row[0])
    coverage = {d: _ratio(_num(v), total) for d, v in zip(COVERAGE_DIMENSIONS, row[1:], strict=True)}
    return TaggingSection(
        period,
        f"{METRIC} cost, all currencies as reported",
        config.currency,
        result.total,
        result.unallocated,
        _ratio(result.unallocated, result.total),
        coverage,
        [o.as_dict() for o in result.offenders],
    )


def _finding_line(row: FindingRow, at: datetime) -> FindingLine:
    return FindingLine(
        row.fingerprint,
        row.rule_id,
        row.kind,
        row.title,
        row.team,
        row.severity,
        row.status,
        Decimal(row.monthly_impact),
        at,
    )


def _findings(db: Database, config: FinOpsConfig, month: Period) -> FindingsSection:
    start, end = _at(month.start), _at(month.end)
    with db.session() as s:
        opened = [
            _finding_line(r, r.first_seen)
            for r in s.scalars(
                select(FindingRow)
                .where(FindingRow.first_seen >= start, FindingRow.first_seen < end)
                .order_by(FindingRow.monthly_impact.desc(), FindingRow.fingerprint)
            )
        ]
        resolved = [
            _finding_line(r, r.resolved_at)
            for r in s.scalars(
                select(FindingRow)
                .where(FindingRow.resolved_at >= start, FindingRow.resolved_at < end)
                .order_by(FindingRow.monthly_impact.desc(), FindingRow.fingerprint)
            )
            if r.resolved_at is not None
        ]
    by_rule: dict[str, dict[str, int]] = {}
    for kind, lines in (("opened", opened), ("resolved", resolved)):
        for line in lines:
            counts = by_rule.setdefault(line.rule, {"opened": 0, "resolved": 0})
            counts[kind] += 1
    return FindingsSection(
        month,
        f"findings by first seen / resolved time (UTC); impact = estimated {config.currency} per month",
        config.currency,
        opened,
        resolved,
        sum((f.monthly_impact for f in opened), Decimal(0)),
        sum((f.monthly_impact for f in resolved), Decimal(0)),
        dict(sorted(by_rule.items())),
    )


def _resource_filter(resource: str) -> str:
    r = sql_string(resource)
    return f"(resource = {r} OR ends_with(resource, '/' || {r}) OR ends_with(resource, ':' || {r}))"


def _measure_scope(row: RemediationRequest) -> tuple[str, str]:
    """(SQL filter of the spend the change should move, what it is) for a request."""
    if row.resource_kind == "llm-feature":
        params = json.loads(row.params or "{}")
        feature = params.get("feature")
        if isinstance(feature, str) and feature:
            env = params.get("environment")
            where = f"feature = {sql_string(feature)}"
            label = f"feature {feature}"
            if isinstance(env, str) and env:
                where += f" AND environment = {sql_string(env)}"
                label += f" in {env}"
            return where, f"{label} spend (moves with its traffic too)"
    return _resource_filter(row.resource), f"resource {row.resource}"


def realised_savings(
    con: duckdb.DuckDBPyConnection, row: RemediationRequest, as_of: date
) -> tuple[Decimal | None, Decimal | None, Decimal | None, int, int, str, str | None]:
    """(realised per month, baseline per day, after per day, baseline days, days after, measured on, note).

    Baseline: the daily cost over the ``BASELINE_DAYS`` days before the day of the change (from the first
    day the cost appears, if later); after: the daily cost from the day after the change, over up to
    ``MAX_DAYS_AFTER`` days of data (data of the cost's sources, up to ``as_of`` exclusive; a day with no
    cost row costs 0). Realised = (baseline - after) x 30."""
    assert row.executed_at is not None
    where, measured = _measure_scope(row)
    day0 = row.executed_at.astimezone(UTC).date()
    daily = {
        d: _num(c)
        for d, c in con.execute(
            f"SELECT day, sum({METRIC}_cost) FROM spend WHERE {where} GROUP BY 1 ORDER BY 1"
        ).fetchall()
    }
    if not daily:
        return None, None, None, 0, 0, measured, f"no cost data for {measured} in the lake"
    (data_end,) = con.execute(
        f"SELECT max(day) FROM cost_facts WHERE source IN (SELECT DISTINCT source FROM spend WHERE {where})"
    ).fetchall()[0]
    last = min(data_end or max(daily), as_of - timedelta(days=1))
    base_start = max(day0 - timedelta(days=BASELINE_DAYS), min(daily))
    base_days = (day0 - base_start).days
    if base_days <= 0:
        return None, None, None, 0, 0, measured, "no cost before the change to compare with"
    baseline = sum((v for d, v in daily.items() if base_start <= d < day0), Decimal(0)) / base_days
    after_start = day0 + timedelta(days=1)
    after_end = min(last + timedelta(days=1), after_start + timedelta(days=MAX_DAYS_AFTER))
    days_after = max((after_end - after_start).days, 0)
    if days_after < MIN_DAYS_AFTER:
        note = f"{NOT_ENOUGH_DATA}: {days_after} day(s) of data after the change, {MIN_DAYS_AFTER} needed"
        return None, baseline, None, base_days, days_after, measured, note
    after = sum((v for d, v in daily.items() if after_start <= d < after_end), Decimal(0)) / days_after
    realised = ((baseline - after) * MONTH_DAYS).quantize(CENT)
    return realised, baseline, after, base_days, days_after, measured, None


def _remediations(
    db: Database, con: duckdb.DuckDBPyConnection, config: FinOpsConfig, month: Period, as_of: date
) -> RemediationSection:
    start, end = _at(month.start), _at(month.end)
    with db.session() as s:
        requests = list(
            s.scalars(
                select(RemediationRequest)
                .where(
                    RemediationRequest.kind == "remediation",
                    RemediationRequest.dry_run == 0,
                    RemediationRequest.executed_at >= start,
                    RemediationRequest.executed_at < end,
                )
                .order_by(RemediationRequest.executed_at, RemediationRequest.id)
            )
        )
    lines = []
    for r in requests:
        assert r.executed_at is not None
        realised, baseline, after, base_days, days_after, measured, note = realised_savings(con, r, as_of)
        if r.status in ("rolled_back", "rolling_back"):
            note = f"rolled back; {note}" if note else "rolled back"
        lines.append(
            RemediationLine(
                r.id,
                r.action,
                r.resource,
                r.resource_kind,
                r.team,
                r.status,
                r.executed_at,
                Decimal(r.monthly_savings),
                realised,
                baseline,
                after,
                base_days,
                days_after,
                measured,
                note,
            )
        )
    measured_lines = [line for line in lines if line.realised_monthly is not None]
    return RemediationSection(
        month,
        f"{config.currency} per 30 days: estimated when proposed; realised = ({METRIC} cost per day over "
        f"the {BASELINE_DAYS} days before - per day after the change) x 30",
        config.currency,
        lines,
        sum((line.estimated_monthly for line in lines), Decimal(0)),
        sum((line.realised_monthly or Decimal(0) for line in measured_lines), Decimal(0)),
        len(measured_lines),
    )


def _price_changes(
    db: Database,
    con: duckdb.DuckDBPyConnection,
    config: FinOpsConfig,
    month: Period,
    window: Period,
    as_of: date,
) -> PriceSection:
    until = max(as_of, month.end - timedelta(days=1))
    rows = []
    without = 0
    for change in list_price_changes(db, since=month.start, until=until):
        usage = change_usage(con, change, window, batch_discount=config.pricing.batch_discount)
        if usage.tokens == 0:
            without += 1
            continue
        rows.append(PriceImpactLine(change, usage.tokens, usage.old_cost, usage.new_cost, usage.impact))
    rows.sort(key=lambda r: (-abs(r.impact), r.change.provider, r.change.model, r.change.kind))
    return PriceSection(
        window,
        month.start,
        until,
        f"{config.currency}: the period's tokens of the model and kind at the new price minus at the old",
        config.currency,
        rows,
        sum((r.impact for r in rows), Decimal(0)),
        without,
    )


def _workloads(split: Mapping[str, Decimal]) -> dict[str, Decimal]:
    return {str(k): _num(v) for k, v in split.items()}


# ----- the reports -------------------------------------------------------------------------------------


def monthly_report(
    db: Database,
    costs: duckdb.DuckDBPyConnection,
    config: FinOpsConfig,
    month: str,
    *,
    as_of: date | None = None,
) -> MonthlyReport:
    """The monthly AI cost review of ``month`` (``YYYY-MM``) as seen on ``as_of`` (default: today, UTC)."""
    today = as_of or datetime.now(UTC).date()
    whole = month_period(month)
    window, complete = _to_date(whole, today)
    prev = _previous(whole, window)
    notes: list[str] = []
    note = _unconverted_note(costs, config, window)
    if note:
        notes.append(note)
    teams = _teams(costs, config, whole, window, prev, complete, today)
    if not costs.execute(f"SELECT 1 FROM spend WHERE {period_sql(window)} LIMIT 1").fetchall():
        notes.append(
            f"the cost lake holds no spend for {whole.label}: every figure is zero. Check that the lake is the "
            "one you ingested into (FINOPS_LAKE_DIR / FINOPS_HOME) and `finops ingest log`"
        )
    earlier = [add_months(whole.start, -2), add_months(whole.start, -1)]
    unit_periods = [Period(s, add_months(s, 1), f"{s:%Y-%m}") for s in earlier] + [window]
    units, results = _unit_economics(costs, config, unit_periods)
    previous_split = unit_costs(costs, UnitCostQuery(prev, ("feature",), METRIC), config.currency)
    unpriced = results[-1].unpriced
    if unpriced:
        tokens = sum(int(u["tokens"]) for u in unpriced)
        models = ", ".join(sorted({str(u["model"]) for u in unpriced}))
        notes.append(f"{tokens:,} tokens in the period have no known price ({models}): not in the unit costs")
    if not complete:
        notes.append(
            f"{whole.label} is not over on {today.isoformat()}: figures are month to date, compared with the "
            f"same days of {prev.start:%Y-%m}"
        )
    return MonthlyReport(
        month=whole,
        period=window,
        previous_period=prev,
        as_of=today,
        complete=complete,
        currency=config.currency,
        metric=_metric_label(config),
        total=teams.total,
        previous_total=teams.previous_total,
        teams=teams,
        budgets=_budgets(costs, config, whole, today),
        movers=_movers(costs, config, window, prev),
        unit_economics=units,
        model_mix=_model_mix(costs, config, window, prev),
        workloads=WorkloadSection(
            window,
            prev,
            f"{_metric_label(config)} of AI spend (LLM APIs, AI services, spend with a workload tag)",
            config.currency,
            _workloads(results[-1].workload_split),
            _workloads(previous_split.workload_split),
        ),
        token_budgets=_token_budgets(costs, config, whole, today),
        tagging=tagging(costs, config, window),
        findings=_findings(db, config, whole),
        remediations=_remediations(db, costs, config, whole, today),
        price_changes=_price_changes(db, costs, config, whole, window, today),
        notes=notes,
    )


def model_selection(
    costs: duckdb.DuckDBPyConnection, config: FinOpsConfig, period: Period
) -> ModelSelectionSection:
    """Usage where a cheaper approved model of the same family would do, as ``premium-model-downgrade``
    decides it (its parameters from finops.yaml ``rules``), over ``period``."""
    from tools.rules.premium_model import (
        MODEL_TIERS,
        PremiumModelDowngrade,
        PremiumModelParams,
        allocated_llm_spend,
        model_family,
        price_group,
        usage_groups,
    )

    params = PremiumModelParams.model_validate(dict(config.rules.get(PremiumModelDowngrade.id, {})))
    price_day = period.end - timedelta(days=1)
    spend = allocated_llm_spend(costs, period)
    days = Decimal(period.days)
    rows = []
    for g in usage_groups(costs, period):
        if g.feature is None or g.environment is None or g.all_requests == 0:
            continue
        family = model_family(g.model)
        if family is None or family not in MODEL_TIERS:
            continue
        avg_input = Decimal(g.input_tokens) / g.all_requests
        if avg_input >= params.max_avg_input_tokens:
            continue
        current = price_group(config, g, g.model, price_day)
        if current is None or current <= 0:
            continue
        approved = config.approved_models.get(g.environment, [])
        for tier in MODEL_TIERS[family]:
            target = next((a for a in approved if model_family(a) == tier), None)
            if target is None:
                continue
            cost = price_group(config, g, target, price_day)
            if cost is None or cost >= current:
                continue
            monthly = (current - cost) * MONTH_DAYS / days
            if monthly < params.min_monthly_savings:
                break
            rows.append(
                ModelSwitch(
                    g.provider,
                    g.model,
                    g.environment,
                    g.feature,
                    g.team,
                    target,
                    g.all_requests,
                    avg_input.quantize(Decimal(1)),
                    spend.get((g.provider, g.model, g.environment, g.feature), Decimal(0)),
                    current,
                    cost,
                    current - cost,
                    monthly.quantize(CENT),
                )
            )
            break
    rows.sort(key=lambda r: (-r.savings, r.feature, r.model))
    return ModelSelectionSection(
        period,
        f"{config.currency}: the usage's own token mix priced at the current and the target model "
        "(overrides, else genai-prices); savings over the period and per 30 days",
        config.currency,
        rows,
        sum((r.savings for r in rows), Decimal(0)),
        sum((r.monthly_savings for r in rows), Decimal(0)),
    )


def _per(numerator: int, denominator: int) -> Decimal | None:
    return (Decimal(numerator) / denominator).quantize(CENT) if denominator else None


def token_efficiency(
    costs: duckdb.DuckDBPyConnection, config: FinOpsConfig, periods: Sequence[Period]
) -> TokenEfficiencySection:
    """Tokens per request and per completed agent task, per feature and period."""
    per_feature: dict[str, list[EfficiencyPoint]] = {}
    for i, period in enumerate(periods):
        result = unit_costs(costs, UnitCostQuery(period, ("feature",), METRIC), config.currency)
        for r in result.rows:
            points = per_feature.setdefault(
                str(r["feature"]),
                [EfficiencyPoint(p, 0, 0, 0, None, None) for p in periods],
            )
            tokens, requests, done = int(r["tokens"]), int(r["requests"]), int(r["tasks_completed"])
            points[i] = EfficiencyPoint(
                period, tokens, requests, done, _per(tokens, requests), _per(tokens, done)
            )
    rows = []
    for feature, points in per_feature.items():
        rows.append(
            FeatureEfficiency(
                feature,
                tuple(points),
                _trend([p.tokens_per_request for p in points]),
                _trend([p.tokens_per_task for p in points]),
            )
        )
    rows.sort(key=lambda f: (f.feature == NONE_VALUE, -sum(p.tokens for p in f.points), f.feature))
    return TokenEfficiencySection(tuple(periods), "tokens (all kinds, each call counted once)", rows)


def _trend(values: Sequence[Decimal | None]) -> Decimal | None:
    known = [v for v in values if v is not None]
    if len(known) < 2 or values[-1] is None:
        return None
    return _percent(known[-1], known[0])


def quarterly_report(
    db: Database,
    costs: duckdb.DuckDBPyConnection,
    config: FinOpsConfig,
    quarter: str,
    *,
    as_of: date | None = None,
) -> QuarterlyReport:
    """The quarterly optimisation review of ``quarter`` (``YYYY-QN``) as seen on ``as_of`` (default today).

    ``db`` is not read today; it is taken so both reviews have the same signature."""
    del db
    today = as_of or datetime.now(UTC).date()
    whole = quarter_period(quarter)
    window, complete = _to_date(whole, today)
    months: list[Period] = []
    for i in range(3):
        start = add_months(whole.start, i)
        if start >= window.end:
            break
        full = Period(start, add_months(start, 1), f"{start:%Y-%m}")
        months.append(_to_date(full, today)[0])
    spend_by_month = []
    for m in months:
        actual, _ = _scoped_spend(costs, config, {}, m)
        spend_by_month.append((m, actual))
    notes: list[str] = []
    note = _unconverted_note(costs, config, window)
    if note:
        notes.append(note)
    if not complete:
        notes.append(f"{whole.label} is not over on {today.isoformat()}: figures are quarter to date")
    notes.append(
        "model selection does not measure answer quality: evaluate the target model on a sample of the "
        "feature's traffic before switching"
    )
    return QuarterlyReport(
        quarter=whole,
        period=window,
        as_of=today,
        complete=complete,
        currency=config.currency,
        metric=_metric_label(config),
        months=tuple(months),
        spend_by_month=spend_by_month,
        total=sum((v for _, v in spend_by_month), Decimal(0)),
        model_selection=model_selection(costs, config, window),
        token_efficiency=token_efficiency(costs, config, months),
        tagging_trend=[tagging(costs, config, m) for m in months],
        notes=notes,
    )
