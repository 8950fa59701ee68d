"""The tools the question graph's model may call: thin LangChain wrappers over the product's functions.

Every tool but one is read-only. ``propose_remediation`` is the exception: it turns a finding into a
*pending* remediation request (``ApprovalService.propose`` with the agent as requester), which a human
must approve. No tool approves, rejects, cancels, executes or rolls back anything: the model has no way to.

Each tool returns (``response_format="content_and_artifact"``):

- as content, compact JSON for the model: the period, filters and metric used, the top N rows and one
  ``(other)`` row summing the rest (never a silent cut), the total, notes (estimates, unpriced usage,
  several currencies) and ``rerun``, the ``finops`` command line giving the same figures;
- as artifact, a ``DataResult`` with the full-precision rows, which the graph turns into the ``Answer``.

Text inside the data (tag values, resource names, finding titles, audit comments) is passed through as
JSON string values: it is data, and nothing here interprets it.

Tools are built per question over an ``AskContext`` (``build_tools(ctx)``): each closes over the context.
Errors the user can act on (``FinOpsError``: an unknown dimension, a bad period) are raised to the
caller, which hands them back to the model as a tool message.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from tools.costs import NONE_VALUE, OTHER_VALUE, CostQuery, UnitCostQuery, query_costs, unit_costs
from tools.periods import Period, parse_period, resolve_period

if TYPE_CHECKING:
    import duckdb

    from config.model import FinOpsConfig
    from tools.store.db import Database

#: the one tool that changes state: it only ever creates a pending request for a human to decide
ACTION_TOOLS: tuple[str, ...] = ("propose_remediation",)
#: verbs no tool name or description may offer the model (a meta-test walks the tool list)
FORBIDDEN_VERBS: tuple[str, ...] = ("approve", "reject", "execute", "rollback", "roll_back", "cancel")
#: rows given to the model at most per result; more are counted in ``rows_not_shown``, never dropped silently
MAX_MODEL_ROWS = 60
DEFAULT_TOP = 10
MAX_TOP = 50
#: the channel recorded for proposals the assistant makes
CHANNEL = "assistant"


class ToolContext(Protocol):
    """What the tools read (``agent.answer.AskContext`` is one)."""

    @property
    def config(self) -> FinOpsConfig: ...
    @property
    def costs(self) -> duckdb.DuckDBPyConnection: ...
    @property
    def db(self) -> Database: ...
    @property
    def today(self) -> date: ...


@dataclass
class DataResult:
    """One tool result: what was asked (period, filters, group_by, metric) and what came back.

    ``kind`` and ``metric`` use the vocabulary of ``agent.answer.Answer``; ``rows`` follow its row
    conventions (group keys under the dimension names, the figure under the metric's name, one
    ``(other)`` row summing everything beyond the top N, ``truncated`` = how many rows it stands for).
    ``is_data`` is False for ``propose_remediation`` (an action, not a figure to report).
    """

    tool: str
    kind: str
    rows: list[dict[str, Any]]
    metric: str = "cost"
    period: Period | None = None
    filters: dict[str, list[str]] = field(default_factory=dict)
    group_by: tuple[str, ...] = ()
    currency: str = "USD"
    total: Decimal | int | None = None
    truncated: int = 0
    comparison: dict[str, Any] | None = None
    rerun: str | None = None
    basis: str = ""  # what the figure is, in words: "effective cost", "open findings"
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    is_data: bool = True

    def for_model(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tool": self.tool}
        if self.period is not None:
            out["period"] = {**self.period.as_dict(), "end": "exclusive", "label": self.period.label}
        out["filters"] = self.filters
        if self.group_by:
            out["group_by"] = list(self.group_by)
        out["metric"] = self.metric
        if self.basis:
            out["basis"] = self.basis
        if self.metric not in ("count", "tokens", "requests"):
            out["currency"] = self.currency
        out["rows"] = self.rows[:MAX_MODEL_ROWS]
        if len(self.rows) > MAX_MODEL_ROWS:
            out["rows_not_shown"] = len(self.rows) - MAX_MODEL_ROWS
        if self.truncated:
            out["other_row_stands_for"] = self.truncated
        out["total"] = self.total
        if self.comparison is not None:
            out["comparison"] = self.comparison
        out.update(self.extra)
        notes = list(self.notes)
        if len(self.rows) > MAX_MODEL_ROWS:
            notes.append(
                f"{len(self.rows) - MAX_MODEL_ROWS} more rows are in the full result (shown with the answer "
                "and by the rerun command); narrow the period or use a coarser granularity to see them here"
            )
        if notes:
            out["notes"] = notes
        if self.rerun:
            out["rerun"] = self.rerun
        return out

    def to_json(self) -> str:
        return to_model_json(self.for_model())


# ----- JSON for the model ------------------------------------------------------------------------------
_MARK = "\u0000DEC:"
_MARK_RE = re.compile(r'"\\u0000DEC:(-?[0-9.]+)"')


def compact_decimal(value: Decimal) -> Decimal:
    """A figure as the model sees it: cents from 1 up, four significant digits below (never 0 for a
    non-zero amount such as a cost per request)."""
    if not value.is_finite() or value == 0:
        return Decimal(0)
    if abs(value) >= 1:
        return value.quantize(Decimal("0.01"))
    return value.quantize(Decimal(1).scaleb(value.adjusted() - 3))


def plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text == "-0" else text


def _walk(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return _MARK + plain(compact_decimal(obj))
    if isinstance(obj, float):
        return _MARK + plain(compact_decimal(Decimal(repr(obj))))
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, Period):
        return obj.as_dict()
    if isinstance(obj, Mapping):
        return {str(k): _walk(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [_walk(v) for v in obj]
    return obj


def to_model_json(obj: Any) -> str:
    """Compact JSON with every Decimal as an exact JSON number (rounded by ``compact_decimal``)."""
    text = json.dumps(_walk(obj), ensure_ascii=False, separators=(",", ":"), default=str)
    return _MARK_RE.sub(lambda m: m.group(1), text)


# ----- shared pieces -------------------------------------------------------------------------------------
def _top() -> Any:
    return Field(
        DEFAULT_TOP,
        ge=1,
        le=MAX_TOP,
        description="Keep the N largest rows; the rest are summed in one (other) row",
    )


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _PeriodArgs(_Args):
    period: str | None = Field(
        None,
        description="A named period: last-month, this-month, last-7-days, last-30-days, last-quarter, "
        "2024-09, 2024-Q3, 2024 ... (relative to today). Or give from_date/to_date instead.",
    )
    from_date: date | None = Field(None, description="Start date, inclusive (YYYY-MM-DD)")
    to_date: date | None = Field(None, description="End date, exclusive (YYYY-MM-DD)")


def _period(ctx: ToolContext, args: _PeriodArgs, default: str = "last-30-days") -> Period:
    return resolve_period(args.period, args.from_date, args.to_date, ctx.today, default)


def _command(*parts: str | None) -> str:
    return shlex.join([p for p in parts if p is not None])


def _period_opts(p: Period) -> list[str]:
    return ["--from", p.start.isoformat(), "--to", p.end.isoformat()]


def _filter_opts(filters: Mapping[str, Sequence[str]]) -> list[str]:
    out: list[str] = []
    for dim, values in filters.items():
        if values:
            out += ["--filter", f"{dim}={','.join(values)}"]
    return out


def _clean_filters(filters: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    return {k.strip().lower(): [v.strip() for v in vs if v.strip()] for k, vs in filters.items() if vs}


def _describe_filters(filters: Mapping[str, Sequence[str]]) -> str:
    return "; ".join(f"{k}={', '.join(v)}" for k, v in filters.items()) or "none"


def _num(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _fold(
    rows: list[dict[str, Any]],
    top: int,
    keys: Sequence[str],
    sums: Sequence[str],
    count_name: str = "groups",
) -> tuple[list[dict[str, Any]], int]:
    """The first ``top`` rows and, if more exist, one row with ``(other)`` under ``keys``, the sums of
    ``sums`` and ``count_name`` = how many rows it stands for."""
    if len(rows) <= top:
        return rows, 0
    kept, rest = rows[:top], rows[top:]
    other: dict[str, Any] = {k: OTHER_VALUE for k in keys}
    for name in sums:
        values = [r.get(name) for r in rest if r.get(name) is not None]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            other[name] = sum(values)
        else:
            other[name] = sum((_num(v) for v in values), Decimal(0))
    other[count_name] = len(rest)
    return [*kept, other], len(rest)


# ----- costs ---------------------------------------------------------------------------------------------
class CostArgs(_PeriodArgs):
    group_by: list[str] = Field(
        default_factory=list,
        description="Dimensions to group by: team, project, environment, feature, cost_center, owner, "
        "workload, provider, service, service_category, account, sub_account, region, resource, model, "
        "charge_category. Empty: one total.",
    )
    filters: dict[str, list[str]] = Field(
        default_factory=dict,
        description='Dimension -> allowed values, e.g. {"team": ["search"]}; "(none)" matches untagged',
    )
    metric: Literal["billed", "effective", "list"] = Field(
        "effective", description="effective (after discounts; the default), billed or list cost"
    )
    granularity: Literal["day", "week", "month"] | None = Field(
        None, description="A time series by day/week/month"
    )
    top: int = _top()
    compare: bool = Field(False, description="Also the previous period of the same length, with the change")
    exclude_one_offs: bool = Field(False, description="Leave out Purchase, Tax and One-Time charges")


def cost_tool(ctx: ToolContext, args: CostArgs) -> DataResult:
    p = _period(ctx, args)
    filters = _clean_filters(args.filters)
    q = CostQuery(
        p,
        tuple(args.group_by),
        args.metric,
        filters,
        args.granularity,
        args.top if args.group_by else None,
        args.compare,
        args.exclude_one_offs,
    )
    result = query_costs(ctx.costs, q, ctx.config.currency)
    rows = [dict(r) for r in result.rows]
    truncated = 0
    for r in rows:
        if "previous_cost" in r:
            r["previous"] = r.pop("previous_cost")
        if result.group_by and r[result.group_by[0]] == OTHER_VALUE:
            truncated = max(truncated, int(r.get("groups", 0)))
    notes = []
    if result.estimated:
        notes.append(
            f"{plain(compact_decimal(result.estimated))} {result.currency} of the total is estimated from "
            "LLM usage (no bill for that provider yet)"
        )
    if result.unpriced:
        tokens = sum(int(u["tokens"]) for u in result.unpriced)
        notes.append(f"{tokens} tokens of usage have no known price and are not in the cost")
    extra: dict[str, Any] = {}
    if len(result.currencies) > 1:
        notes.append(
            "several billing currencies without a rate: rows are per currency; total is "
            f"{result.currency} only"
        )
        extra["totals_by_currency"] = result.totals_by_currency
    comparison = None
    if result.previous_period is not None:
        comparison = {
            "period": result.previous_period.as_dict(),
            "total": result.previous_total,
            "change": {
                "delta": result.total - (result.previous_total or 0),
                "percent": _percent(result.total, result.previous_total),
            },
            "rows": [
                {**{d: r[d] for d in result.group_by}, "cost": r["previous"]} for r in rows if "previous" in r
            ],
        }
    rerun = _command(
        "finops",
        "costs",
        *(["--by", ",".join(result.group_by)] if args.group_by else []),
        *_period_opts(p),
        "--metric",
        args.metric,
        *_filter_opts(filters),
        *(["--granularity", args.granularity] if args.granularity else []),
        *(["--top", str(args.top)] if args.group_by else []),
        "--compare" if args.compare else None,
        "--exclude-one-offs" if args.exclude_one_offs else None,
    )
    return DataResult(
        tool="query_costs",
        kind="costs",
        rows=rows,
        metric="cost",
        period=p,
        filters=filters,
        group_by=tuple(result.group_by),
        currency=result.currency,
        total=result.total,
        truncated=truncated,
        comparison=comparison,
        rerun=rerun,
        basis=f"{args.metric} cost" + (" without one-off charges" if args.exclude_one_offs else ""),
        notes=notes,
        extra=extra,
    )


def _percent(current: Decimal, previous: Decimal | None) -> Decimal | None:
    if not previous:
        return None
    return ((current - previous) / previous * 100).quantize(Decimal("0.01"))


# ----- unit costs -----------------------------------------------------------------------------------------
UnitFigure = Literal[
    "cost", "tokens", "requests", "cost_per_1m_tokens", "cost_per_request", "cost_per_completed_task"
]


UNIT_LABELS: dict[str, str] = {
    "cost": "AI spend",
    "tokens": "AI tokens",
    "requests": "AI requests",
    "cost_per_1m_tokens": "AI cost per 1M tokens",
    "cost_per_request": "AI cost per request",
    "cost_per_completed_task": "AI cost per completed task",
}


class UnitCostArgs(_PeriodArgs):
    group_by: list[str] = Field(
        default_factory=lambda: ["feature"],
        description="team, project, environment, feature, cost_center, owner, workload, model, llm_provider",
    )
    filters: dict[str, list[str]] = Field(default_factory=dict, description="Dimension -> allowed values")
    metric: Literal["billed", "effective", "list"] = Field("effective", description="Which cost")
    figure: UnitFigure = Field(
        "cost",
        description="The figure the question is about (rows are ordered by it): cost, tokens, requests, "
        "cost_per_1m_tokens, cost_per_request, cost_per_completed_task",
    )
    top: int = _top()


def _ratio(cost: Decimal, n: int, scale: int = 1) -> Decimal | None:
    return (cost * scale / n).quantize(Decimal("0.000001")) if n else None


def unit_cost_tool(ctx: ToolContext, args: UnitCostArgs) -> DataResult:
    p = _period(ctx, args)
    filters = _clean_filters(args.filters)
    result = unit_costs(
        ctx.costs, UnitCostQuery(p, tuple(args.group_by), args.metric, filters), ctx.config.currency
    )
    figure = args.figure
    rows = sorted(
        (dict(r) for r in result.rows),
        key=lambda r: (r.get(figure) is None, -(_num(r.get(figure)))),
    )
    sums = ("cost", "tokens", "requests", "tasks_completed", "tasks_failed")
    rows, truncated = _fold(rows, args.top, result.group_by, sums)
    if truncated:
        other = rows[-1]
        other["cost_per_1m_tokens"] = _ratio(other["cost"], other["tokens"], 1_000_000)
        other["cost_per_request"] = _ratio(other["cost"], other["requests"])
        other["cost_per_completed_task"] = _ratio(other["cost"], other["tasks_completed"])
    totals = result.as_dict()["totals"]
    notes = []
    if result.unpriced:
        tokens = sum(int(u["tokens"]) for u in result.unpriced)
        notes.append(f"{tokens} tokens of usage have no known price and are not in the cost")
    rerun = _command(
        "finops",
        "unit-costs",
        "--by",
        ",".join(result.group_by),
        *_period_opts(p),
        "--metric",
        args.metric,
        *_filter_opts(filters),
    )
    return DataResult(
        tool="unit_costs",
        kind="unit-costs",
        rows=rows,
        metric=figure,
        period=p,
        filters=filters,
        group_by=tuple(result.group_by),
        currency=result.currency,
        total=totals.get(figure),
        truncated=truncated,
        rerun=rerun,
        basis=f"{UNIT_LABELS[figure]}" + (f" ({args.metric} cost)" if figure.startswith("cost") else ""),
        notes=notes,
        extra={"totals": totals, "workload_split": result.workload_split},
    )


# ----- anomalies ------------------------------------------------------------------------------------------
class AnomalyArgs(_PeriodArgs):
    dimensions: list[str] | None = Field(
        None,
        description="Spend dimensions (team, service, ...) or usage series (feature.tokens, model.requests); "
        "default: the configured ones",
    )
    include_one_offs: bool = Field(False, description="Also Purchase/Tax/One-Time charges")
    top: int = _top()


def anomaly_tool(ctx: ToolContext, args: AnomalyArgs) -> DataResult:
    from tools.anomalies_query import find_anomalies
    from tools.findings_store import suppressed_fingerprints

    p = _period(ctx, args)
    found = find_anomalies(
        ctx.costs,
        ctx.config,
        p.start,
        p.end,
        dimensions=args.dimensions,
        include_one_offs=args.include_one_offs,
        feedback=suppressed_fingerprints(ctx.db),
    )
    rows: list[dict[str, Any]] = []
    for a in found:
        unit = a.dimension.partition(".")[2] or ctx.config.currency
        rows.append(
            {
                "id": a.id,
                "dimension": a.dimension,
                "key": a.key,
                "start": a.start.isoformat(),
                "end": a.end.isoformat(),
                "kind": a.kind,
                "unit": unit,
                "actual": a.actual,
                "expected": a.expected,
                "lower": a.lower,
                "upper": a.upper,
                "impact": a.impact,
                "severity": a.severity,
                "root_cause": [
                    {"dimension": c.dimension, "key": c.key, "delta": c.delta, "share": c.share}
                    for c in a.root_cause[:3]
                ],
            }
        )
    kept, rest = rows[: args.top], rows[args.top :]
    by_unit: dict[str, dict[str, Any]] = {}
    for r in rest:
        o = by_unit.setdefault(
            r["unit"],
            {
                "id": OTHER_VALUE,
                "dimension": OTHER_VALUE,
                "key": OTHER_VALUE,
                "unit": r["unit"],
                "impact": Decimal(0),
                "anomalies": 0,
            },
        )
        o["impact"] += _num(r["impact"])
        o["anomalies"] += 1
    filters = {"dimension": list(args.dimensions)} if args.dimensions else {}
    rerun = _command(
        "finops",
        "anomalies",
        *_period_opts(p),
        *[x for d in args.dimensions or [] for x in ("--dimension", d)],
        "--include-one-offs" if args.include_one_offs else None,
    )
    return DataResult(
        tool="find_anomalies",
        kind="anomalies",
        rows=kept + list(by_unit.values()),
        metric="count",
        group_by=("dimension", "key"),
        period=p,
        filters=filters,
        currency=ctx.config.currency,
        total=len(rows),
        truncated=len(rest),
        rerun=rerun,
        basis="number of anomalies starting in the period",
        notes=["impact = actual minus expected over the anomaly's days, in the row's unit"],
    )


# ----- findings -------------------------------------------------------------------------------------------
class FindingsArgs(_Args):
    status: list[str] = Field(
        default_factory=lambda: ["open", "notified"],
        description="open, notified, snoozed, resolved, suppressed (default: the active ones)",
    )
    team: str | None = Field(None, description="Owner team")
    kind: str | None = Field(None, description="waste, anomaly, budget, token-budget, governance")
    rule: str | None = Field(None, description="Rule id")
    top: int = _top()


def findings_tool(ctx: ToolContext, args: FindingsArgs) -> DataResult:
    from tools.findings_store import finding_dict, list_findings

    found = []
    for r in list_findings(
        ctx.db, status=args.status, team=args.team, kind=args.kind, rule=args.rule, limit=1_000_000
    ):
        d = finding_dict(r)
        d["cost"] = d.pop("monthly_impact")  # the figure under the metric's name (Answer row convention)
        found.append(d)
    at_stake = sum((_num(r["cost"]) for r in found), Decimal(0))
    rows, truncated = _fold(found, args.top, ("id", "title"), ("cost",), "findings")
    filters: dict[str, list[str]] = {"status": list(args.status)}
    for name in ("team", "kind", "rule"):
        value = getattr(args, name)
        if value:
            filters[name] = [value]
    rerun = _command(
        "finops",
        "findings",
        *[x for s in args.status for x in ("--status", s)],
        *(["--team", args.team] if args.team else []),
        *(["--kind", args.kind] if args.kind else []),
        *(["--rule", args.rule] if args.rule else []),
    )
    return DataResult(
        tool="list_findings",
        kind="findings",
        rows=rows,
        metric="cost",
        filters=filters,
        group_by=("id",),
        currency=ctx.config.currency,
        total=at_stake,
        truncated=truncated,
        rerun=rerun,
        basis="monthly impact of findings (cost per month at stake), largest first",
        extra={"findings": len(found)},
    )


class FindingArgs(_Args):
    finding_id: str = Field(description="Finding id (or a unique prefix of at least 6 characters)")


def finding_tool(ctx: ToolContext, args: FindingArgs) -> DataResult:
    from tools.findings_store import finding_dict, get_finding

    d = finding_dict(get_finding(ctx.db, args.finding_id), full=True)
    d["cost"] = d.pop("monthly_impact")
    return DataResult(
        tool="show_finding",
        kind="findings",
        rows=[d],
        metric="cost",
        filters={"id": [d["id"]]},
        group_by=("id",),
        currency=str(d.get("currency") or ctx.config.currency),
        total=d["cost"],
        rerun=_command("finops", "findings", "show", d["id"]),
        basis="monthly impact of one finding (cost per month at stake)",
    )


# ----- forecast ---------------------------------------------------------------------------------------------
class ForecastArgs(_Args):
    period: str = Field(
        "this-month", description="The period whose end to forecast: this-month, this-quarter, 2024-10 ..."
    )
    group_by: str | None = Field(None, description="One dimension, e.g. team; none: the total")
    metric: Literal["billed", "effective", "list"] = Field("effective", description="Which cost")
    top: int = _top()


def forecast_tool(ctx: ToolContext, args: ForecastArgs) -> DataResult:
    from tools.forecast_query import forecast_budgets, forecast_by

    p = parse_period(args.period, ctx.today)
    rows = forecast_by(
        ctx.costs, args.group_by, p, ctx.today, metric=args.metric, config=ctx.config, top=args.top
    )
    for r in rows:
        r.pop("period", None)
    truncated = sum(int(r.get("groups", 0)) for r in rows)
    budgets = forecast_budgets(ctx.costs, ctx.config, ctx.today, metric=args.metric)
    group = (args.group_by.strip().lower().replace("-", "_"),) if args.group_by else ()
    rerun = _command(
        "finops",
        "--as-of",
        ctx.today.isoformat(),
        "forecast",
        *(["--by", group[0]] if group else []),
        "--period",
        args.period,
        "--metric",
        args.metric,
    )
    return DataResult(
        tool="forecast_spend",
        kind="forecast",
        rows=rows,
        metric="cost",
        period=p,
        group_by=group,
        currency=ctx.config.currency,
        total=sum((_num(r["forecast"]) for r in rows), Decimal(0)),
        truncated=truncated,
        rerun=rerun,
        basis=f"forecast {args.metric} cost of the whole period",
        notes=[
            f"as of {ctx.today.isoformat()}, actuals through yesterday; lower..upper is the 80% interval",
        ],
        extra={"budgets": [{k: v for k, v in b.items() if k != "crossings"} for b in budgets]},
    )


# ----- budgets ----------------------------------------------------------------------------------------------
class BudgetArgs(_Args):
    metric: Literal["billed", "effective", "list"] = Field("effective", description="Which cost")


def budget_tool(ctx: ToolContext, args: BudgetArgs) -> DataResult:
    from tools.budgets import budget_row, budget_status, token_budget_row, token_budget_status

    money = budget_status(ctx.costs, ctx.config, ctx.today, args.metric)
    tokens = token_budget_status(ctx.costs, ctx.config, ctx.today)
    rows = [*map(budget_row, money), *map(token_budget_row, tokens)]
    periods = {b.period for b in money} | {t.period for t in tokens}
    return DataResult(
        tool="budget_status",
        kind="budgets",
        rows=rows,
        metric="cost",
        group_by=("budget",),
        period=next(iter(periods)) if len(periods) == 1 else None,
        currency=ctx.config.currency,
        total=None,
        rerun=_command("finops", "--as-of", ctx.today.isoformat(), "budgets", "--metric", args.metric),
        basis=f"budget actual vs amount ({args.metric} cost)",
        notes=[f"actuals through yesterday ({ctx.today.isoformat()} is today); forecast = run rate"]
        + ([] if rows else ["no budgets are configured (budgets: in finops.yaml)"]),
    )


# ----- untagged ---------------------------------------------------------------------------------------------
class UntaggedArgs(_PeriodArgs):
    top: int = _top()
    metric: Literal["billed", "effective", "list"] = Field("effective", description="Which cost")


def untagged_tool(ctx: ToolContext, args: UntaggedArgs) -> DataResult:
    from tools.costs import _where
    from tools.untagged import REQUIRED_DIMENSION, untagged_spend

    p = _period(ctx, args)
    result = untagged_spend(ctx.costs, ctx.config, p, top=args.top, metric=args.metric)
    rows = [o.as_dict() for o in result.offenders]
    (groups,) = ctx.costs.execute(
        "SELECT count(*) FROM (SELECT provider, sub_account, service, resource FROM spend "
        f"WHERE {_where(p, {}, {})} AND {REQUIRED_DIMENSION} IS NULL GROUP BY ALL)"
    ).fetchall()[0]
    truncated = max(int(groups) - len(rows), 0)
    if truncated:
        shown = sum((_num(r["cost"]) for r in rows), Decimal(0))
        rows.append(
            {
                "provider": OTHER_VALUE,
                "sub_account": OTHER_VALUE,
                "service": OTHER_VALUE,
                "resource": OTHER_VALUE,
                "cost": result.unallocated - shown,
                "groups": truncated,
            }
        )
    d = result.as_dict()
    return DataResult(
        tool="untagged_spend",
        kind="untagged",
        rows=rows,
        metric="cost",
        period=p,
        filters={REQUIRED_DIMENSION: [NONE_VALUE]},
        group_by=("provider", "sub_account", "service", "resource"),
        currency=result.currency,
        total=result.unallocated,
        truncated=truncated,
        rerun=_command(
            "finops", "untagged", *_period_opts(p), "--top", str(args.top), "--metric", args.metric
        ),
        basis=f"unallocated {args.metric} cost (no {REQUIRED_DIMENSION})",
        extra={"all_spend": result.total, "unallocated_percent": d["unallocated_percent"]},
    )


# ----- audit --------------------------------------------------------------------------------------------------
class AuditArgs(_Args):
    resource: str | None = Field(None, description="Resource id")
    actor: str | None = Field(None, description="Slack user id, or the assistant's own id")
    request_id: str | None = Field(None, description="Remediation request id")
    since: date | None = Field(None, description="Entries from this day on (YYYY-MM-DD, UTC)")
    limit: int = Field(20, ge=1, le=MAX_TOP, description="Newest N entries")


def audit_tool(ctx: ToolContext, args: AuditArgs) -> DataResult:
    from approvals import audit
    from tools.store.models import AuditEntry

    since = datetime(args.since.year, args.since.month, args.since.day, tzinfo=UTC) if args.since else None
    with ctx.db.session() as s:
        entries = audit.list_entries(
            s,
            resource=args.resource,
            actor=args.actor,
            request_id=args.request_id,
            since=since,
            limit=args.limit,
            newest_first=True,
        )
        rows = [
            {k: v for k, v in audit.entry_dict(e).items() if k not in ("prev_hash", "hash")} for e in entries
        ]
        count = select(func.count()).select_from(AuditEntry)
        if args.resource:
            count = count.where(AuditEntry.resource == args.resource)
        if args.actor:
            count = count.where(AuditEntry.actor == args.actor)
        if args.request_id:
            count = count.where(AuditEntry.request_id == args.request_id)
        if since is not None:
            count = count.where(AuditEntry.at >= since)
        total = int(s.execute(count).scalar_one())
    filters = {
        name: [str(value)]
        for name, value in (
            ("resource", args.resource),
            ("actor", args.actor),
            ("request_id", args.request_id),
        )
        if value
    }
    notes = (
        [f"{total - len(rows)} older entries match too; raise limit or narrow the filters"]
        if total > len(rows)
        else []
    )
    return DataResult(
        tool="audit_lookup",
        kind="audit",
        rows=rows,
        metric="count",
        group_by=("seq",),
        filters=filters,
        total=total,
        truncated=0,
        rerun=_command(
            "finops",
            "audit",
            "list",
            *(["--resource", args.resource] if args.resource else []),
            *(["--actor", args.actor] if args.actor else []),
            *(["--request", args.request_id] if args.request_id else []),
            *(["--since", args.since.isoformat()] if args.since else []),
            "--limit",
            str(args.limit),
        ),
        basis="number of audit entries (newest first)",
        notes=notes,
        extra={"entries_not_shown": total - len(rows)} if total > len(rows) else {},
    )


# ----- approvals ----------------------------------------------------------------------------------------------
class ApprovalsArgs(_Args):
    request_id: str | None = Field(
        None, description="One request: its plan, approvers, decisions and history"
    )
    status: list[str] = Field(
        default_factory=list,
        description="pending, approved, succeeded, failed, rolled_back, ... (default: all)",
    )
    team: str | None = Field(None, description="Owner team")
    top: int = _top()


def approvals_tool(ctx: ToolContext, args: ApprovalsArgs) -> DataResult:
    from approvals.service import ApprovalService

    svc = ApprovalService(ctx.db, ctx.config)
    if args.request_id:
        d = svc.show(args.request_id)
        d["history"] = [
            {k: v for k, v in h.items() if k not in ("prev_hash", "hash")} for h in d.get("history", [])
        ]
        return DataResult(
            tool="approvals_status",
            kind="approvals",
            rows=[d],
            metric="count",
            filters={"id": [d["id"]]},
            currency=str(d.get("currency") or ctx.config.currency),
            total=1,
            rerun=_command("finops", "approvals", "show", d["id"]),
            basis="one remediation request",
        )
    found = svc.list_requests(status=args.status or None, team=args.team)
    rows, truncated = _fold(found, args.top, ("id", "action"), ("monthly_savings",), "requests")
    filters: dict[str, list[str]] = {}
    if args.status:
        filters["status"] = list(args.status)
    if args.team:
        filters["team"] = [args.team]
    return DataResult(
        tool="approvals_status",
        kind="approvals",
        rows=rows,
        metric="count",
        group_by=("id",),
        filters=filters,
        currency=ctx.config.currency,
        total=len(found),
        truncated=truncated,
        rerun=_command(
            "finops",
            "approvals",
            *[x for s in args.status for x in ("--status", s)],
            *(["--team", args.team] if args.team else []),
        ),
        basis="number of remediation requests (newest first)",
    )


# ----- the one action: propose -----------------------------------------------------------------------------
class ProposeArgs(_Args):
    finding_id: str = Field(description="The finding to fix (id or unique prefix), from list_findings")


def propose_tool(ctx: ToolContext, args: ProposeArgs) -> DataResult:
    from approvals.service import ApprovalService

    svc = ApprovalService(ctx.db, ctx.config)
    outcome = svc.propose(args.finding_id, requested_by=svc.agent, channel=CHANNEL)
    d = outcome.as_dict()
    return DataResult(
        tool="propose_remediation",
        kind="approvals",
        rows=[d],
        metric="count",
        filters={"finding": [args.finding_id]},
        total=1,
        rerun=_command("finops", "approvals", "show", outcome.request_id),
        basis="a remediation request proposed by the assistant, waiting for people to decide",
        notes=[
            "only people named in the guardrails can approve it, in Slack or with `finops approvals approve`"
        ],
        is_data=False,
    )


# ----- the tool list --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    args: type[_Args]
    run: Callable[[ToolContext, Any], DataResult]


SPECS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "query_costs",
        "Cloud and AI spend over a period, grouped by dimensions, filtered, as a total or a time series, "
        "optionally compared with the previous period. The figures to quote for any spend question.",
        CostArgs,
        cost_tool,
    ),
    ToolSpec(
        "unit_costs",
        "AI unit economics per group: cost, tokens, requests, cost per 1M tokens, per request, per "
        "completed task; and AI spend split into training and inference.",
        UnitCostArgs,
        unit_cost_tool,
    ),
    ToolSpec(
        "find_anomalies",
        "Cost and usage anomalies (spikes, level shifts, drifts) starting in a period, with expected range, "
        "impact and root cause.",
        AnomalyArgs,
        anomaly_tool,
    ),
    ToolSpec(
        "list_findings",
        "Stored findings (waste, anomalies, budget breaches, governance) with owner team, monthly impact "
        "and proposed fix.",
        FindingsArgs,
        findings_tool,
    ),
    ToolSpec("show_finding", "One finding with its evidence and recommendation.", FindingArgs, finding_tool),
    ToolSpec(
        "forecast_spend",
        "Forecast of a period's spend (total or per group) with an 80% interval, and each budget's forecast.",
        ForecastArgs,
        forecast_tool,
    ),
    ToolSpec(
        "budget_status",
        "Every configured budget and token budget: actual to date vs amount, used share, run-rate forecast, "
        "thresholds crossed.",
        BudgetArgs,
        budget_tool,
    ),
    ToolSpec(
        "untagged_spend",
        "Spend with no team (unallocated) in a period: total, share, top resources and a likely owner.",
        UntaggedArgs,
        untagged_tool,
    ),
    ToolSpec(
        "audit_lookup",
        "Entries of the audit trail (who proposed or decided what, when), newest first.",
        AuditArgs,
        audit_tool,
    ),
    ToolSpec(
        "approvals_status",
        "Remediation requests and their status, or one request with its plan and history.",
        ApprovalsArgs,
        approvals_tool,
    ),
    ToolSpec(
        "propose_remediation",
        "Propose the fix of one finding as a remediation request. It only creates a pending request that "
        "people must review; nothing changes until they decide. Use only when the user asks for it.",
        ProposeArgs,
        propose_tool,
    ),
)


def _make(ctx: ToolContext, spec: ToolSpec) -> BaseTool:
    def run(**kwargs: Any) -> tuple[str, DataResult]:
        result = spec.run(ctx, spec.args(**kwargs))
        return result.to_json(), result

    return StructuredTool.from_function(
        func=run,
        name=spec.name,
        description=spec.description,
        args_schema=spec.args,
        response_format="content_and_artifact",
    )


def build_tools(ctx: ToolContext) -> list[BaseTool]:
    """The tools for one question, each closing over ``ctx``."""
    return [_make(ctx, spec) for spec in SPECS]


__all__ = [
    "ACTION_TOOLS",
    "FORBIDDEN_VERBS",
    "SPECS",
    "DataResult",
    "ToolContext",
    "build_tools",
    "to_model_json",
]
