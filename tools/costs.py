"""Cost and unit-cost queries over the allocated spend. Pure functions of (connection, query) -> typed results.

Used by the CLI now and by the agent and Slack later. Every figure is a DECIMAL sum computed by DuckDB;
nothing here adds binary floats into a reported number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import duckdb

from config.model import FinOpsConfig
from tools.errors import QueryError
from tools.periods import Period
from tools.store.lake import Lake, sql_string

Metric = Literal["billed", "effective", "list"]
Granularity = Literal["day", "week", "month"]
METRICS: tuple[str, ...] = ("billed", "effective", "list")

#: query dimension -> column of the spend relation
DIMENSIONS: dict[str, str] = {
    "team": "team",
    "project": "project",
    "environment": "environment",
    "feature": "feature",
    "cost_center": "cost_center",
    "owner": "owner",
    "workload": "workload",
    "provider": "provider",
    "service": "service",
    "service_category": "service_category",
    "service_subcategory": "service_subcategory",
    "account": "billing_account",
    "sub_account": "sub_account",
    "region": "region",
    "resource": "resource",
    "model": "model",
    "charge_category": "charge_category",
    "source": "source",
    "currency": "currency",
}
#: dimensions that LLM usage facts carry too (unit costs can be grouped by these)
USAGE_DIMENSIONS: dict[str, str] = {
    "team": "team",
    "project": "project",
    "environment": "environment",
    "feature": "feature",
    "cost_center": "cost_center",
    "owner": "owner",
    "workload": "workload",
    "model": "model",
    "llm_provider": "provider",
}
NONE_VALUE = "(none)"
OTHER_VALUE = "(other)"
ONE_OFF_SQL = "(charge_category IN ('Purchase', 'Tax') OR charge_frequency = 'One-Time')"


def open_costs(lake: Lake, config: FinOpsConfig | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB connection over the lake with the ``spend`` relation installed.

    With ``config``, amounts in other currencies are converted to ``config.currency`` with
    ``currency_rates``; a currency without a rate stays as it is and is reported per currency.
    """
    from tools.spend import install_spend_views

    con = lake.connect()
    con.execute("SET TimeZone='UTC'")
    if config is None:
        install_spend_views(con)
    else:
        install_spend_views(con, target_currency=config.currency, rates=config.currency_rates)
    return con


def check_dimensions(names: Sequence[str], allowed: Mapping[str, str] = DIMENSIONS) -> list[str]:
    out = []
    for raw in names:
        name = raw.strip().lower().replace("-", "_")
        if not name:
            continue
        if name not in allowed:
            raise QueryError(f"unknown dimension {raw!r}; choose from: {', '.join(allowed)}")
        if name not in out:
            out.append(name)
    return out


def _filter_sql(filters: Mapping[str, Sequence[str]], allowed: Mapping[str, str]) -> str:
    clauses = []
    for dim, values in filters.items():
        (name,) = check_dimensions([dim], allowed)
        column = allowed[name]
        parts = []
        real = [v for v in values if v != NONE_VALUE]
        if real:
            parts.append(f"lower({column}) IN ({', '.join(sql_string(v.lower()) for v in real)})")
        if NONE_VALUE in values:
            parts.append(f"{column} IS NULL")
        if parts:
            clauses.append("(" + " OR ".join(parts) + ")")
    return " AND ".join(clauses)


def _where(
    period: Period,
    filters: Mapping[str, Sequence[str]],
    allowed: Mapping[str, str],
    extra: Sequence[str] = (),
) -> str:
    clauses = [
        f"day >= DATE {sql_string(period.start.isoformat())}",
        f"day < DATE {sql_string(period.end.isoformat())}",
        *extra,
    ]
    f = _filter_sql(filters, allowed)
    if f:
        clauses.append(f)
    return " AND ".join(clauses)


def _bucket_sql(granularity: Granularity | None) -> str | None:
    if granularity is None:
        return None
    if granularity not in ("day", "week", "month"):
        raise QueryError(f"unknown granularity {granularity!r}; choose day, week or month")
    return f"CAST(date_trunc('{granularity}', day) AS DATE)"


@dataclass(frozen=True)
class CostQuery:
    period: Period
    group_by: tuple[str, ...] = ()
    metric: Metric = "effective"
    filters: Mapping[str, Sequence[str]] = field(default_factory=dict)
    granularity: Granularity | None = None
    top: int | None = None
    compare: bool = False  # period-over-period
    exclude_one_offs: bool = False  # drop Purchase / Tax / One-Time charges


@dataclass
class CostResult:
    metric: str
    currency: str
    period: Period
    group_by: list[str]
    rows: list[dict[str, Any]]
    total: Decimal
    granularity: str | None = None
    previous_period: Period | None = None
    previous_total: Decimal | None = None
    estimated: Decimal = Decimal(0)  # part of the total computed from usage (no bill for that provider yet)
    unpriced: list[dict[str, Any]] = field(default_factory=list)
    currencies: list[str] = field(default_factory=list)
    #: when amounts in several currencies remain (no rate configured), the totals per currency;
    #: ``total`` is then the total in the report currency only
    totals_by_currency: dict[str, Decimal] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "metric": self.metric,
            "currency": self.currency,
            "period": self.period.as_dict(),
            "group_by": self.group_by,
        }
        if self.granularity:
            out["granularity"] = self.granularity
        out["rows"] = self.rows
        out["total"] = self.total
        if self.previous_period is not None:
            out["previous_period"] = self.previous_period.as_dict()
            out["previous_total"] = self.previous_total
            out["change"] = _change(self.total, self.previous_total)
        out["estimated"] = self.estimated
        out["unpriced_usage"] = self.unpriced
        if len(self.currencies) > 1:
            out["currencies"] = self.currencies
            out["totals_by_currency"] = self.totals_by_currency
        return out


def _change(current: Decimal, previous: Decimal | None) -> dict[str, Any]:
    previous = previous or Decimal(0)
    delta = current - previous
    pct = (delta / previous * 100).quantize(Decimal("0.01")) if previous else None
    return {"delta": delta, "percent": pct}


def _num(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(str(value))


def query_costs(con: duckdb.DuckDBPyConnection, q: CostQuery, currency: str = "USD") -> CostResult:
    """Spend by any combination of dimensions over a period, with top-N + "other" and comparison."""
    group = check_dimensions(q.group_by)
    if q.metric not in METRICS:
        raise QueryError(f"unknown metric {q.metric!r}; choose billed, effective or list")
    if q.top is not None and q.top < 1:
        raise QueryError("--top must be at least 1")
    metric = f"{q.metric}_cost"
    extra = [f"NOT {ONE_OFF_SQL}"] if q.exclude_one_offs else []
    where = _where(q.period, q.filters, DIMENSIONS, extra)
    currencies = [
        str(c[0])
        for c in con.execute(f"SELECT DISTINCT currency FROM spend WHERE {where} ORDER BY 1").fetchall()
        if c[0]
    ]
    if len(currencies) > 1 and "currency" not in group:
        group = [*group, "currency"]  # never add up different currencies: report per currency
    bucket = _bucket_sql(q.granularity)
    keys = [f"{DIMENSIONS[d]} AS {d}" for d in group]
    if bucket:
        keys.insert(0, f"{bucket} AS period_start")
    key_names = (["period_start"] if bucket else []) + group
    select_keys = ", ".join(keys)
    sql = (
        f"SELECT {select_keys + ', ' if keys else ''}sum({metric}) AS cost, "
        f"sum({metric}) FILTER (WHERE is_estimate) AS estimated "
        f"FROM spend WHERE {where}"
        + (f" GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}" if keys else "")
    )
    raw = con.execute(sql).fetchall()
    rows = [dict(zip([*key_names, "cost", "estimated"], r, strict=True)) for r in raw]
    if not keys and rows and rows[0]["cost"] is None:
        rows = []
    total = sum((_num(r["cost"]) for r in rows), Decimal(0))
    estimated = sum((_num(r["estimated"]) for r in rows), Decimal(0))
    for r in rows:
        r["cost"] = _num(r["cost"])
        r.pop("estimated")
        for d in group:
            if r[d] is None:
                r[d] = NONE_VALUE
        if bucket:
            r["period_start"] = r["period_start"].isoformat()
    rows = _top_n(rows, group, q.top, bucket is not None)
    result = CostResult(q.metric, currency, q.period, group, rows, total, q.granularity, estimated=estimated)
    if q.compare:
        prev = q.period.previous()
        prev_result = query_costs(
            con,
            CostQuery(prev, q.group_by, q.metric, q.filters, None, None, False, q.exclude_one_offs),
            currency,
        )
        result.previous_period, result.previous_total = prev, prev_result.total
        if group and not bucket:
            previous = {tuple(r[d] for d in group): r["cost"] for r in prev_result.rows}
            for r in result.rows:
                before = previous.get(tuple(r[d] for d in group))
                r["previous_cost"] = before if before is not None else Decimal(0)
                r["change"] = _change(r["cost"], before)
    result.unpriced = unpriced_usage(con, q.period, q.filters)
    result.currencies = currencies
    if len(currencies) > 1:
        by_currency: dict[str, Decimal] = {}
        for r in result.rows:
            by_currency[r["currency"]] = by_currency.get(r["currency"], Decimal(0)) + r["cost"]
        result.totals_by_currency = by_currency
        result.total = by_currency.get(currency, Decimal(0))
    return result


def _top_n(
    rows: list[dict[str, Any]], group: list[str], top: int | None, bucketed: bool
) -> list[dict[str, Any]]:
    """Sort by cost; keep the top N groups (by their total) and fold the rest into one "(other)" row."""
    if not group:
        return sorted(rows, key=lambda r: r.get("period_start", ""))
    totals: dict[tuple[Any, ...], Decimal] = {}
    for r in rows:
        k = tuple(r[d] for d in group)
        totals[k] = totals.get(k, Decimal(0)) + r["cost"]
    order = sorted(totals, key=lambda k: (-totals[k], [str(x) for x in k]))
    keep = set(order[:top]) if top is not None else set(order)
    rank = {k: i for i, k in enumerate(order)}
    kept = [r for r in rows if tuple(r[d] for d in group) in keep]
    kept.sort(key=lambda r: (r.get("period_start", ""), rank[tuple(r[d] for d in group)]))
    folded = [r for r in rows if tuple(r[d] for d in group) not in keep]
    if not folded:
        return kept
    other: dict[str, dict[str, Any]] = {}
    for r in folded:
        b = r.get("period_start", "")
        o = other.setdefault(
            b,
            {
                **({"period_start": b} if bucketed else {}),
                **{d: OTHER_VALUE for d in group},
                "cost": Decimal(0),
                "groups": 0,
            },
        )
        o["cost"] += r["cost"]
        o["groups"] += 1
    merged = kept + list(other.values())
    if bucketed:
        merged.sort(key=lambda r: (r["period_start"], r[group[0]] == OTHER_VALUE))
    return merged


def unpriced_usage(
    con: duckdb.DuckDBPyConnection, period: Period, filters: Mapping[str, Sequence[str]] | None = None
) -> list[dict[str, Any]]:
    """LLM usage with no known price in the period: tokens kept, no invented cost."""
    usable = {k: v for k, v in (filters or {}).items() if k in USAGE_DIMENSIONS}
    where = _where(period, usable, USAGE_DIMENSIONS, ["cost IS NULL"])
    rows = con.execute(
        f"SELECT provider, model, sum(requests), sum(total_tokens) FROM usage_facts WHERE {where} "
        "GROUP BY ALL ORDER BY 4 DESC"
    ).fetchall()
    return [
        {"provider": p, "model": m, "requests": int(r or 0), "tokens": int(t or 0)} for p, m, r, t in rows
    ]


# ----- unit costs --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnitCostQuery:
    period: Period
    group_by: tuple[str, ...] = ("feature",)
    metric: Metric = "effective"
    filters: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass
class UnitCostResult:
    metric: str
    currency: str
    period: Period
    group_by: list[str]
    rows: list[dict[str, Any]]
    workload_split: dict[str, Decimal]
    unpriced: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "currency": self.currency,
            "period": self.period.as_dict(),
            "group_by": self.group_by,
            "rows": self.rows,
            "totals": _unit_row(
                {
                    "cost": sum((r["cost"] for r in self.rows), Decimal(0)),
                    "tokens": sum(r["tokens"] for r in self.rows),
                    "requests": sum(r["requests"] for r in self.rows),
                    "tasks_completed": sum(r["tasks_completed"] for r in self.rows),
                    "tasks_failed": sum(r["tasks_failed"] for r in self.rows),
                }
            ),
            "workload_split": self.workload_split,
            "unpriced_usage": self.unpriced,
        }


def _unit_row(r: dict[str, Any]) -> dict[str, Any]:
    cost: Decimal = r["cost"]
    tokens, requests, done = int(r["tokens"]), int(r["requests"]), int(r["tasks_completed"])
    r["cost_per_1m_tokens"] = (cost * 1_000_000 / tokens).quantize(Decimal("0.000001")) if tokens else None
    r["cost_per_request"] = (cost / requests).quantize(Decimal("0.000001")) if requests else None
    r["cost_per_completed_task"] = (cost / done).quantize(Decimal("0.000001")) if done else None
    return r


def unit_costs(con: duckdb.DuckDBPyConnection, q: UnitCostQuery, currency: str = "USD") -> UnitCostResult:
    """AI spend per group with tokens, requests and agent tasks: cost per 1M tokens, per request, per task.

    Cost is the LLM spend allocated to the group (billing truth, or estimates where no bill exists); tokens
    and requests are counted once even when several sources describe the same calls (``usage_allocated``);
    tasks sampled by OpenTelemetry count with their adjusted count;
    a task counts as completed unless one of its records failed. Failed tasks' cost stays in the numerator:
    it is what the completed tasks really cost.
    """
    group = check_dimensions(q.group_by, USAGE_DIMENSIONS)
    metric = f"{q.metric}_cost"
    spend_cols = {**USAGE_DIMENSIONS, "llm_provider": "llm_provider"}
    keys_spend = ", ".join(f"{spend_cols[d]} AS {d}" for d in group)
    keys_usage = ", ".join(f"{USAGE_DIMENSIONS[d]} AS {d}" for d in group)
    gb = ", ".join(str(i + 1) for i in range(len(group)))
    spend_where = _where(q.period, q.filters, spend_cols, ["llm_provider IS NOT NULL"])
    usage_where = _where(q.period, q.filters, USAGE_DIMENSIONS)
    join = " AND ".join(f"s.{d} IS NOT DISTINCT FROM u.{d}" for d in group) or "true"
    sel = ", ".join(f"coalesce(s.{d}, u.{d}) AS {d}" for d in group)
    sql = f"""
        WITH s AS (SELECT {keys_spend + ", " if group else ""}sum({metric}) AS cost FROM spend
                   WHERE {spend_where} {"GROUP BY " + gb if group else ""}),
        tasks AS (SELECT {keys_usage + ", " if group else ""}task_id, bool_or(task_status = 'failed') AS failed,
                         max(coalesce(adjusted_count, 1)) AS weight
                  FROM usage_facts WHERE {usage_where} AND task_id IS NOT NULL
                  GROUP BY {gb + ", " if group else ""}task_id),
        t AS (SELECT {", ".join(group) + ", " if group else ""}
                     coalesce(sum(weight) FILTER (WHERE NOT coalesce(failed, false)), 0) AS done,
                     coalesce(sum(weight) FILTER (WHERE failed), 0) AS failed
              FROM tasks {"GROUP BY " + gb if group else ""}),
        u0 AS (SELECT {keys_usage + ", " if group else ""}sum(tokens) AS tokens, sum(requests) AS requests
               FROM usage_allocated WHERE {usage_where} {"GROUP BY " + gb if group else ""}),
        u AS (SELECT {", ".join(f"coalesce(u0.{d}, t.{d}) AS {d}" for d in group) + ", " if group else ""}
                     u0.tokens, u0.requests, coalesce(t.done, 0) AS done, coalesce(t.failed, 0) AS failed
              FROM u0 FULL OUTER JOIN t ON
              {" AND ".join(f"u0.{d} IS NOT DISTINCT FROM t.{d}" for d in group) or "true"})
        SELECT {sel + ", " if group else ""}coalesce(s.cost, 0), coalesce(u.tokens, 0), coalesce(u.requests, 0),
               coalesce(u.done, 0), coalesce(u.failed, 0)
        FROM s FULL OUTER JOIN u ON {join}
        ORDER BY {len(group) + 1} DESC
    """
    rows = []
    for rec in con.execute(sql).fetchall():
        r = dict(zip(group, rec[: len(group)], strict=True))
        for d in group:
            if r[d] is None:
                r[d] = NONE_VALUE
        cost, tokens, requests, done, failed = rec[len(group) :]
        if not cost and not tokens and not requests:
            continue
        r.update(
            cost=_num(cost),
            tokens=int(tokens),
            requests=int(requests),
            tasks_completed=int(done),
            tasks_failed=int(failed),
        )
        rows.append(_unit_row(r))
    split_where = _where(
        q.period,
        {k: v for k, v in q.filters.items() if k in DIMENSIONS},
        DIMENSIONS,
        [
            "(llm_provider IS NOT NULL OR service_category = 'AI and Machine Learning' "
            "OR workload IS NOT NULL)"
        ],
    )
    split = {
        str(w or "unassigned"): _num(c)
        for w, c in con.execute(
            f"SELECT workload, sum({metric}) FROM spend WHERE {split_where} GROUP BY 1 ORDER BY 1 NULLS LAST"
        ).fetchall()
    }
    return UnitCostResult(
        q.metric, currency, q.period, group, rows, split, unpriced_usage(con, q.period, q.filters)
    )
