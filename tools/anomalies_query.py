"""Anomalies in the lake: daily series per dimension and key from ``spend`` (and token / request series from
``usage_allocated``), detected with tools.anomaly, explained by the sub-keys that moved.

One query per dimension builds every key's daily series (pivoted in numpy); root causes take one more query
per reported anomaly. Money anomalies come first, then usage ones (tokens, requests), each by |impact|.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import numpy as np

from config.model import AnomalyThreshold, FinOpsConfig
from tools.anomaly import Anomaly, Contribution, DailySeries, detect, root_cause
from tools.costs import DIMENSIONS, NONE_VALUE, ONE_OFF_SQL, USAGE_DIMENSIONS, check_dimensions
from tools.errors import QueryError
from tools.store.lake import sql_string

USAGE_METRICS: dict[str, Decimal] = {"tokens": Decimal(10_000), "requests": Decimal(100)}
#: sub-dimensions a money anomaly is explained by, most specific first
COST_CAUSES: dict[str, str] = {
    "resource": "resource",
    "sku": "sku",
    "model": "model",
    "feature": "feature",
    "service": "service",
}
USAGE_CAUSES: dict[str, str] = {"model": "model", "feature": "feature", "llm_provider": "provider"}
#: spend dimensions only AI spend carries: their "(none)" series is skipped
AI_ONLY = ("model", "feature")
REFERENCE_DAYS = 14  # the days before an anomaly its root cause compares with
MAX_CAUSE_DIMENSIONS = 3


@dataclass(frozen=True)
class _Target:
    dimension: str  # as reported: "team", "feature.tokens"
    column: str
    relation: str  # spend | usage_allocated
    metric: str  # SQL column summed
    causes: Mapping[str, str]
    minimum: Decimal | None = None  # usage: least count, replaces min_impact


def _targets(names: Sequence[str]) -> list[_Target]:
    out: list[_Target] = []
    for raw in names:
        name = raw.strip().lower()
        if "." in name:
            dim, _, metric = name.partition(".")
            dim = dim.replace("-", "_")
            if metric not in USAGE_METRICS:
                raise QueryError(f"unknown usage metric {metric!r} in {raw!r}; choose tokens or requests")
            if dim not in USAGE_DIMENSIONS:
                raise QueryError(
                    f"unknown usage dimension {dim!r} in {raw!r}; choose from: {', '.join(USAGE_DIMENSIONS)}"
                )
            target = _Target(
                f"{dim}.{metric}",
                USAGE_DIMENSIONS[dim],
                "usage_allocated",
                metric,
                {k: v for k, v in USAGE_CAUSES.items() if v != USAGE_DIMENSIONS[dim]},
                USAGE_METRICS[metric],
            )
        else:
            (dim,) = check_dimensions([name])
            column = DIMENSIONS[dim]
            target = _Target(
                dim, column, "spend", "effective_cost", {k: v for k, v in COST_CAUSES.items() if v != column}
            )
        if all(t.dimension != target.dimension for t in out):
            out.append(target)
    return out


def _threshold(config: FinOpsConfig, environment: str | None, target: _Target) -> AnomalyThreshold:
    thresholds = config.anomalies.thresholds
    base = thresholds.get(environment or "") or thresholds.get("default") or AnomalyThreshold()
    if target.minimum is None:
        return base
    return AnomalyThreshold(min_impact=target.minimum, min_relative=base.min_relative)


def _key_sql(column: str, key: str) -> str:
    return f"{column} IS NULL" if key == NONE_VALUE else f"{column} = {sql_string(key)}"


def _series(
    con: duckdb.DuckDBPyConnection, target: _Target, lookback: date, end: date, where: str
) -> list[DailySeries]:
    rows = con.execute(
        f"""SELECT {target.column} AS key, day, environment, sum({target.metric}) AS amount
            FROM {target.relation} WHERE {where} GROUP BY ALL"""
    ).fetchall()
    days = (end - lookback).days
    keys: dict[str, int] = {}
    envs: dict[str, defaultdict[str | None, float]] = {}
    index, offset, amount = [], [], []
    for key, day, environment, value in rows:
        name = NONE_VALUE if key is None else str(key)
        i = keys.setdefault(name, len(keys))
        v = float(value or 0)
        index.append(i)
        offset.append((day - lookback).days)
        amount.append(v)
        envs.setdefault(name, defaultdict(float))[environment] += abs(v)
    grid = np.zeros((len(keys), days), dtype=np.float64)
    np.add.at(grid, (np.asarray(index, dtype=np.intp), np.asarray(offset, dtype=np.intp)), amount)
    return [
        DailySeries(
            target.dimension,
            name,
            lookback,
            tuple(grid[i].tolist()),
            max(envs[name].items(), key=lambda kv: kv[1])[0],
        )
        for name, i in keys.items()
    ]


def _explain(
    con: duckdb.DuckDBPyConnection, target: _Target, anomaly: Anomaly, lookback: date, where: str
) -> tuple[Contribution, ...]:
    """Contribution of each sub-key: the anomaly's days vs the days before, scaled to as many days."""
    ref_start = max(anomaly.start - timedelta(days=REFERENCE_DAYS), lookback)
    ref_days = (anomaly.start - ref_start).days
    if ref_days <= 0 or not target.causes:
        return ()
    first, last, ref = (sql_string(d.isoformat()) for d in (anomaly.start, anomaly.end, ref_start))
    names, columns = list(target.causes), list(target.causes.values())
    # one pass over the relation: a grouping set per sub-dimension (grouping() tells which set a row is of)
    rows = con.execute(
        f"""SELECT {", ".join(columns)}, {", ".join(f"grouping({c})" for c in columns)},
                   sum({target.metric}) FILTER (WHERE day < DATE {first}) AS before,
                   sum({target.metric}) FILTER (WHERE day >= DATE {first}) AS after
            FROM {target.relation} WHERE {where} AND {_key_sql(target.column, anomaly.key)}
                 AND day >= DATE {ref} AND day <= DATE {last}
            GROUP BY GROUPING SETS ({", ".join(f"({c})" for c in columns)})"""
    ).fetchall()
    scale = Decimal(anomaly.days) / Decimal(ref_days)
    before: dict[str, dict[str, Decimal]] = defaultdict(dict)
    after: dict[str, dict[str, Decimal]] = defaultdict(dict)
    n = len(columns)
    for row in rows:
        which = row[n : 2 * n].index(0)
        dim, sub, b, a = names[which], row[which], row[2 * n], row[2 * n + 1]
        name = NONE_VALUE if sub is None else str(sub)
        before[dim][name] = (_decimal(b) * scale).quantize(Decimal("0.01"))
        after[dim][name] = _decimal(a).quantize(Decimal("0.01"))
    ranked: list[tuple[Decimal, int, tuple[Contribution, ...]]] = []
    for order, name in enumerate(target.causes):
        parts_of = root_cause(before[name], after[name], name)
        if not parts_of or parts_of[0].key == NONE_VALUE:
            continue  # nothing moved, or only "not tagged with it" did: no explanation
        # the most concentrated explanation first (to 0.1: then the most specific sub-dimension)
        ranked.append((-min(abs(parts_of[0].share), Decimal(1)).quantize(Decimal("0.1")), order, parts_of))
    ranked.sort(key=lambda r: (r[0], r[1]))
    return tuple(c for _, _, parts_of in ranked[:MAX_CAUSE_DIMENSIONS] for c in parts_of)


def _decimal(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(str(value))


def find_anomalies(
    con: duckdb.DuckDBPyConnection,
    config: FinOpsConfig,
    start: date,
    end: date,
    *,
    dimensions: Sequence[str] | None = None,
    include_one_offs: bool | None = None,
    feedback: Collection[str] = (),
) -> list[Anomaly]:
    """Anomalies starting in [start, end), detected over the config's lookback before ``start``.

    ``dimensions``: spend dimensions ("team", "service", ...) and usage series ("feature.tokens",
    "model.requests"); default: the config's ``anomalies.dimensions`` and ``anomalies.usage_dimensions``
    (tokens and requests each). ``feedback``: anomaly ids the user marked expected / not an anomaly.
    """
    if end <= start:
        raise QueryError(f"the period is empty: {start} .. {end}")
    settings = config.anomalies
    names = (
        list(dimensions)
        if dimensions is not None
        else [
            *settings.dimensions,
            *(f"{d}.{m}" for d in settings.usage_dimensions for m in USAGE_METRICS),
        ]
    )
    one_offs = settings.include_one_offs if include_one_offs is None else include_one_offs
    lookback = start - timedelta(days=settings.lookback_days)
    period = f"day >= DATE {sql_string(lookback.isoformat())} AND day < DATE {sql_string(end.isoformat())}"
    money: list[Anomaly] = []
    usage: list[Anomaly] = []
    for target in _targets(names):
        where = period
        if target.relation == "spend" and not one_offs:
            where += f" AND NOT coalesce({ONE_OFF_SQL}, false)"
        for series in _series(con, target, lookback, end, where):
            if series.key == NONE_VALUE and target.column in AI_ONLY:
                continue  # "no model / no feature" is the rest of the cloud bill, watched by the others
            threshold = _threshold(config, series.environment, target)
            for anomaly in detect(series, threshold):
                if not start <= anomaly.start < end or anomaly.id in feedback:
                    continue
                found = replace(anomaly, root_cause=_explain(con, target, anomaly, lookback, where))
                (usage if target.minimum is not None else money).append(found)
    money.sort(key=lambda a: (-abs(a.impact), a.start, a.dimension, a.key))
    usage.sort(key=lambda a: (-abs(a.impact), a.start, a.dimension, a.key))
    return money + usage
