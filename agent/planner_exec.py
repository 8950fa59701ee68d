"""The offline planner's executor: a ``QueryPlan`` -> the tool calls -> an ``Answer``.

Every figure comes from a tool (``query_costs``, ``unit_costs``, ``find_anomalies``, ``forecast_by``,
``budget_status``, ``untagged_spend``, ``list_findings``, ``ApprovalService.list_requests``,
``audit.list_entries``); this module only picks, orders and folds their rows (DECIMAL sums of the tool's own
figures for an "(other)" row), says them in words and writes the ``finops`` command that gives the same
figures. Large results keep the N largest rows and one "(other)" row for the rest, and the text says so.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from agent.answer import AI_SERVICE_CATEGORY, OTHER, Answer, AskContext, ToolCall
from agent.output import money, unit_money
from agent.planner_parse import AUTO_TOP, QueryPlan
from agent.planner_periods import describe
from agent.planner_vocab import Vocabulary
from tools.costs import (
    DIMENSIONS,
    USAGE_DIMENSIONS,
    CostQuery,
    CostResult,
    UnitCostQuery,
    UnitCostResult,
    query_costs,
    unit_costs,
)
from tools.periods import Period, add_months

#: workloads that make spend "AI spend" whatever its service category (see ``agent.answer.AI_SPEND_SQL``)
AI_WORKLOADS = ("training", "inference")
NONE_VALUE = "(none)"
TEXT_ROWS = 10  # rows said in the text; all of them are in ``rows``
METRIC_WORDS = {
    "effective": "effective cost, amortised after discounts",
    "billed": "billed cost",
    "list": "list cost, before discounts",
}
UNIT_WORDS = {
    "tokens": "LLM tokens",
    "requests": "LLM requests",
    "cost_per_1m_tokens": "cost per 1M tokens",
    "cost_per_request": "cost per request",
    "cost_per_completed_task": "cost per completed task",
}


def _period_args(period: Period) -> dict[str, str]:
    return period.as_dict()


def _cli(*parts: str) -> str:
    return shlex.join(["finops", *parts])


def _filter_args(filters: Mapping[str, Sequence[str]]) -> list[str]:
    out: list[str] = []
    for dim, values in filters.items():
        out += ["--filter", f"{dim}={','.join(values)}"]
    return out


def scope_text(filters: Mapping[str, Sequence[str]]) -> str:
    """The filters as said back: "team=search, model=gpt-4o or gpt-4o-mini", or "no filter"."""
    if not filters:
        return "no filter"
    return ", ".join(f"{d}={' or '.join(vs)}" for d, vs in filters.items())


def _pct(part: Decimal, whole: Decimal) -> str:
    if not whole:
        return ""
    return f" ({(part / whole * 100).quantize(Decimal('0.1'))}%)"


def _signed_money(value: Decimal, currency: str) -> str:
    return ("+" if value >= 0 else "") + money(value, currency)


def _change_text(current: Decimal, previous: Decimal, currency: str) -> str:
    delta = current - previous
    if previous:
        pct = (delta / previous * 100).quantize(Decimal("0.1"))
        return f"{_signed_money(delta, currency)}, {'+' if pct >= 0 else ''}{pct}%"
    return _signed_money(delta, currency)


def _change(current: Decimal, previous: Decimal) -> tuple[Decimal, Decimal | None]:
    delta = current - previous
    return delta, ((delta / previous * 100).quantize(Decimal("0.01")) if previous else None)


def _limit(plan: QueryPlan, default: int) -> int:
    """The N of "top N" when the question said one, else ``default``."""
    return plan.top if plan.top_said and plan.top is not None else default


def describe_previous(period: Period) -> str:
    """A period from ``Period.previous()`` said back ("the 7 days before (2024-09-02 to 2024-09-08)")."""
    if period.label.startswith("previous "):
        n = period.days
        return describe(Period(period.start, period.end, f"the {n} day{'s' if n != 1 else ''} before"))
    return describe(period)


def _key_text(row: Mapping[str, Any], group: Sequence[str]) -> str:
    return " / ".join(str(row.get(d)) for d in group)


@dataclass
class _Said:
    """The parts every answer says: the period, the scope, the metric and the notes."""

    plan: QueryPlan
    today: date
    vocab: Vocabulary

    def period(self, period: Period | None = None) -> str:
        p = period or self.plan.period
        assert p is not None
        text = describe(p, self.today)
        if period is None and self.plan.period_said is None:
            text += ", the default when no period is said"
        return text

    def coverage(self, period: Period) -> str | None:
        v = self.vocab
        if v.data_start is None or v.data_end is None:
            return "The store holds no cost data yet (ingest a bill with `finops ingest focus ...`)."
        if period.end <= v.data_start or period.start > v.data_end:
            return (
                f"No data in this period: the store holds {v.data_start.isoformat()} to "
                f"{v.data_end.isoformat()}."
            )
        if period.start < v.data_start:
            return f"The data starts on {v.data_start.isoformat()}."
        return None


# ----- entry point -----------------------------------------------------------------------------------------
def execute(plan: QueryPlan, ctx: AskContext, vocab: Vocabulary) -> Answer:
    from tools.errors import FinOpsError

    try:
        if plan.kind == "help" or not plan.understood:
            return help_answer(plan, vocab)
        handler = {
            "costs": _costs,
            "unit-costs": _unit_costs,
            "anomalies": _anomalies,
            "forecast": _forecast,
            "budgets": _budgets,
            "findings": _findings,
            "approvals": _approvals,
            "audit": _audit,
            "untagged": _untagged,
        }[plan.kind]
        return handler(plan, ctx, vocab)
    except FinOpsError as exc:
        plan.understood = False
        plan.unknown.append(f"the tools could not answer it: {exc}")
        return help_answer(plan, vocab)


# ----- help ----------------------------------------------------------------------------------------------
CAN_ANSWER = (
    "spend by team, project, environment, feature, model, service, provider, region or account over any "
    "period (last week, in August, Q3, month to date, yesterday, since 2024-09-01, last 30 days), with top N "
    "and comparisons (vs last month); AI spend; LLM tokens, requests and cost per 1M tokens / request / "
    "completed task; why spend moved (anomalies and their root cause); forecasts; budgets; findings (waste); "
    "approvals and the audit trail; untagged spend"
)


def examples(vocab: Vocabulary) -> list[str]:
    """Three questions built from the user's own data."""
    from agent.planner_vocab import model_family

    team = vocab.top_team or next(iter(vocab.known("team")), None)
    out = []
    if team:
        out.append(f"How much did the {team} team spend last month, by service?")
    else:
        out.append("What did we spend last month, by service?")
    out.append("Top 5 teams by spend this month vs last month")
    model = vocab.top_model or next(iter(vocab.known("model")), None)
    if model:
        out.append(f"What is the cost per 1M tokens of {model_family(model)} by feature last month?")
    elif team:
        out.append(f"Why did the {team} team's spend go up last week?")
    else:
        out.append("Why did our spend go up last week?")
    return out


def help_answer(plan: QueryPlan, vocab: Vocabulary) -> Answer:
    lines = []
    if plan.unknown:
        lines.append("I could not answer that: " + "; ".join(plan.unknown) + ".")
    elif not plan.understood:
        lines.append("I did not understand that question, and I answer only what I can compute.")
    lines.append(f"I can answer questions about {CAN_ANSWER}.")
    ex = examples(vocab)
    lines.append("For example: " + " | ".join(f'"{e}"' for e in ex))
    return Answer(
        question=plan.question,
        text="\n".join(lines),
        kind="help",
        understood=plan.understood and not plan.unknown,
        examples=ex,
    )


# ----- costs ---------------------------------------------------------------------------------------------
def ai_parts(
    filters: Mapping[str, Sequence[str]], known_workloads: Sequence[str]
) -> list[dict[str, list[str]]]:
    """AI spend (``AI_SPEND_SQL``: service category "AI and Machine Learning" OR workload training /
    inference) as disjoint filter sets ``query_costs`` can run: (a) workload training / inference, (b) the AI
    category with any other workload. Their sum is the AI spend within ``filters``."""
    said_workloads = [w.lower() for w in filters.get("workload", [])]
    said_categories = list(filters.get("service_category", []))
    ai_w = [w for w in AI_WORKLOADS if not said_workloads or w in said_workloads]
    other_w = [w for w in known_workloads if w.lower() not in AI_WORKLOADS] + [NONE_VALUE]
    if said_workloads:
        other_w = [w for w in other_w if w.lower() in said_workloads]
    parts: list[dict[str, list[str]]] = []
    if ai_w:
        parts.append({**{k: list(v) for k, v in filters.items()}, "workload": ai_w})
    if other_w and (
        not said_categories or any(c.lower() == AI_SERVICE_CATEGORY.lower() for c in said_categories)
    ):
        parts.append(
            {
                **{k: list(v) for k, v in filters.items()},
                "service_category": [AI_SERVICE_CATEGORY],
                "workload": other_w,
            }
        )
    return parts


def _cost_rerun(
    plan: QueryPlan, period: Period, filters: Mapping[str, Sequence[str]], top: int | None
) -> str:
    args = ["costs"]
    if plan.group_by:
        args += ["--by", ",".join(plan.group_by)]
    args += ["--from", period.start.isoformat(), "--to", period.end.isoformat()]
    if plan.cost_metric != "effective":
        args += ["--metric", plan.cost_metric]
    args += _filter_args(filters)
    if plan.granularity:
        args += ["--granularity", plan.granularity]
    if top is not None:
        args += ["--top", str(top)]
    if plan.compare:
        args.append("--compare")
    if plan.exclude_one_offs:
        args.append("--exclude-one-offs")
    return _cli(*args)


def _row_key(row: Mapping[str, Any], keys: Sequence[str]) -> tuple[Any, ...]:
    return tuple(row.get(k) for k in keys)


def _merge(results: Sequence[CostResult], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of several results (disjoint filters) summed by group key: DECIMAL sums of tool figures."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for result in results:
        for r in result.rows:
            k = _row_key(r, keys)
            into = merged.setdefault(k, {**{key: r.get(key) for key in keys}, "cost": Decimal(0)})
            into["cost"] += r["cost"]
            if "previous_cost" in r:
                into["previous_cost"] = into.get("previous_cost", Decimal(0)) + r["previous_cost"]
    return list(merged.values())


def fold(
    rows: list[dict[str, Any]],
    group: Sequence[str],
    top: int | None,
    figure: str,
    *,
    ascending: bool = False,
    sums: Sequence[str] = (),
    bucket: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Keep the ``top`` groups by ``figure`` (largest first, or smallest with ``ascending``) and fold the rest
    into one row whose group keys are all ``OTHER`` (one per ``bucket`` value), summing ``figure`` and
    ``sums``. Returns the rows and how many groups the "(other)" row stands for."""
    if not group:
        return rows, 0
    totals: dict[tuple[Any, ...], Decimal] = {}
    for r in rows:
        k = _row_key(r, group)
        v = r.get(figure)
        totals[k] = totals.get(k, Decimal(0)) + (Decimal(v) if v is not None else Decimal(0))
    order = sorted(totals, key=lambda k: (totals[k] if ascending else -totals[k], [str(x) for x in k]))
    keep = set(order[:top]) if top is not None else set(order)
    rank = {k: i for i, k in enumerate(order)}
    kept = [r for r in rows if _row_key(r, group) in keep]
    kept.sort(key=lambda r: ((r.get(bucket) or "") if bucket else "", rank[_row_key(r, group)]))
    rest = [r for r in rows if _row_key(r, group) not in keep]
    if not rest:
        return kept, 0
    other: dict[Any, dict[str, Any]] = {}
    for r in rest:
        b = r.get(bucket) if bucket else None
        o = other.setdefault(b, {**({bucket: b} if bucket else {}), **{d: OTHER for d in group}})
        for col in (figure, *sums):
            if r.get(col) is not None:
                o[col] = o.get(col, Decimal(0) if isinstance(r[col], Decimal) else 0) + r[col]
    out = kept + list(other.values())
    if bucket:
        out.sort(key=lambda r: (r.get(bucket) or "", r[group[0]] == OTHER))
    return out, len(order) - len(keep)


def _with_change(row: dict[str, Any]) -> dict[str, Any]:
    previous = row.pop("previous_cost", None)
    row.pop("change", None)
    if previous is not None:
        row["previous"] = previous
        row["change"], row["change_percent"] = _change(row["cost"], previous)
    return row


def _costs(plan: QueryPlan, ctx: AskContext, vocab: Vocabulary) -> Answer:
    assert plan.period is not None
    said = _Said(plan, ctx.today, vocab)
    period, currency = plan.period, ctx.config.currency
    filters = _cost_filters(plan, vocab)
    if isinstance(filters, Answer):
        return filters
    group = plan.group_by
    parts = ai_parts(filters, vocab.known("workload")) if plan.ai_spend else [dict(filters)]
    top = plan.top if plan.top_said else (AUTO_TOP if group else None)
    fold_here = len(parts) > 1 or plan.ascending or (plan.compare and bool(group) and top is not None)
    bucket = "period_start" if plan.granularity else None
    keys = ([bucket] if bucket else []) + list(group)
    calls: list[ToolCall] = []
    results: list[CostResult] = []
    for f in parts:
        q = CostQuery(
            period,
            group,
            plan.cost_metric,
            f,
            plan.granularity,
            None if fold_here else top,
            plan.compare,
            plan.exclude_one_offs,
        )
        results.append(query_costs(ctx.costs, q, currency))
        calls.append(ToolCall("query_costs", _cost_args(q)))
    if len(results) == 1 and not fold_here:
        rows = [dict(r) for r in results[0].rows]
        truncated = 0
        for r in rows:
            if "groups" in r:
                truncated += int(r.pop("groups"))
    else:
        merged = _merge(results, keys)
        rows, truncated = fold(
            merged,
            group,
            top,
            "cost",
            ascending=plan.ascending,
            sums=("previous_cost",) if plan.compare else (),
            bucket=bucket,
        )
    rows = [_with_change(r) for r in rows]
    total = sum((r.total for r in results), Decimal(0))
    comparison = None
    previous_total: Decimal | None = None
    prev_period: Period | None = None
    if plan.compare:
        prev_period = period.previous()
        previous_total = sum((r.previous_total or Decimal(0) for r in results), Decimal(0))
    elif plan.compare_period is not None:
        prev_period = plan.compare_period
        other_results = [
            _run_costs(
                ctx,
                CostQuery(prev_period, group, plan.cost_metric, f, None, None, False, plan.exclude_one_offs),
                calls,
            )
            for f in parts
        ]
        previous_total = sum((r.total for r in other_results), Decimal(0))
        if group and not bucket:
            before = {_row_key(r, group): r["cost"] for r in _merge(other_results, group)}
            for r in rows:
                if r[group[0]] == OTHER:
                    continue
                r["previous"] = before.get(_row_key(r, group), Decimal(0))
                r["change"], r["change_percent"] = _change(r["cost"], r["previous"])
            kept_prev = sum((r.get("previous", Decimal(0)) for r in rows if r[group[0]] != OTHER), Decimal(0))
            for r in rows:
                if r[group[0]] == OTHER:
                    r["previous"] = previous_total - kept_prev
                    r["change"], r["change_percent"] = _change(r["cost"], r["previous"])
    if prev_period is not None and previous_total is not None:
        if not group and rows and not bucket:
            rows[0]["previous"] = previous_total
            rows[0]["change"], rows[0]["change_percent"] = _change(rows[0]["cost"], previous_total)
        delta, pct = _change(total, previous_total)
        comparison = {
            "period": prev_period.as_dict(),
            "total": previous_total,
            "rows": [
                {**{k: r.get(k) for k in keys}, "cost": r["previous"]}
                for r in rows
                if "previous" in r and group
            ],
            "change": delta,
            "change_percent": pct,
        }
    # the words
    what = METRIC_WORDS[plan.cost_metric]
    subject = "AI spend" if plan.ai_spend else "Spend"
    lines = [
        f"{subject} ({what}), {scope_text(filters)}, {said.period()}: {money(total, currency)}"
        + (
            f", vs {money(previous_total, currency)} in {describe_previous(prev_period)} "
            f"({_change_text(total, previous_total, currency)})"
            if prev_period is not None and previous_total is not None
            else ""
        )
        + "."
    ]
    if plan.compare and prev_period is not None and period.start < ctx.today < period.end:
        lines.append(_same_days(plan, ctx, period, prev_period, parts, total, calls))
    if plan.ai_spend:
        lines.append(
            f"AI spend means service category '{AI_SERVICE_CATEGORY}' or workload training / inference "
            f"(the sum of {len(parts)} queries, one per part, so nothing is counted twice)."
        )
    if group and rows and not bucket:
        lines.append(_group_text(rows, group, total, currency, truncated, top, plan.ascending))
    elif bucket and rows:
        lines.append(_bucket_text(rows, group, plan.granularity or "day", currency))
    lines += _cost_notes(results, currency)
    cover = said.coverage(period)
    if cover:
        lines.append(cover)
    lines += plan.notes
    rerun_top = top if (group and top is not None) else None
    if len(parts) == 1:
        rerun = _cost_rerun(
            plan, period, parts[0], rerun_top if not fold_here or not plan.ascending else None
        )
    else:
        rerun = " && ".join(_cost_rerun(plan, period, f, None) for f in parts)
        lines.append("Re-run: the AI spend is the sum of the two commands' totals.")
    if plan.compare_period is not None:
        other_plan = QueryPlan(plan.question, group_by=plan.group_by, cost_metric=plan.cost_metric)
        rerun += " && " + " && ".join(_cost_rerun(other_plan, plan.compare_period, f, None) for f in parts)
    if fold_here and plan.compare and truncated:
        lines.append(
            f"The '{OTHER}' row's previous figure is the sum of the previous figures of the groups it folds."
        )
    if plan.ascending:
        lines.append("Smallest first; the command lists the groups largest first.")
    return Answer(
        question=plan.question,
        text="\n".join(lines),
        kind="costs",
        period=period,
        filters={k: list(v) for k, v in filters.items()},
        group_by=tuple(group),
        metric="cost",
        currency=currency,
        rows=rows,
        total=total,
        truncated=truncated,
        comparison=comparison,
        rerun=rerun,
        tool_calls=calls,
    )


def _same_days(
    plan: QueryPlan,
    ctx: AskContext,
    period: Period,
    previous: Period,
    parts: Sequence[Mapping[str, Sequence[str]]],
    total: Decimal,
    calls: list[ToolCall],
) -> str:
    """A period still running is compared with the whole previous one (as ``--compare`` does); this says
    so, with the same number of days at the start of the previous period for a like-for-like figure."""
    elapsed = (ctx.today - period.start).days
    end = min(previous.start + timedelta(days=elapsed), previous.end)
    same = Period(
        previous.start, end, f"{previous.start.isoformat()} to {(end - timedelta(days=1)).isoformat()}"
    )
    figure = Decimal(0)
    for f in parts:
        q = CostQuery(same, (), plan.cost_metric, f, exclude_one_offs=plan.exclude_one_offs)
        figure += query_costs(ctx.costs, q, ctx.config.currency).total
        calls.append(ToolCall("query_costs", _cost_args(q)))
    command = " && ".join(
        _cost_rerun(
            QueryPlan(plan.question, cost_metric=plan.cost_metric, exclude_one_offs=plan.exclude_one_offs),
            same,
            f,
            None,
        )
        for f in parts
    )
    currency = ctx.config.currency
    return (
        f"The period is not over ({elapsed} of {period.days} days), and is compared with the whole previous one; "
        f"the same {elapsed} days then ({describe(same)}) came to {money(figure, currency)} "
        f"({_change_text(total, figure, currency)} like for like; `{command}`)."
    )


def _run_costs(ctx: AskContext, q: CostQuery, calls: list[ToolCall]) -> CostResult:
    calls.append(ToolCall("query_costs", _cost_args(q)))
    return query_costs(ctx.costs, q, ctx.config.currency)


def _run_units(ctx: AskContext, q: UnitCostQuery, calls: list[ToolCall]) -> UnitCostResult:
    args = {"period": _period_args(q.period), "group_by": list(q.group_by), "metric": q.metric}
    calls.append(ToolCall("unit_costs", {**args, "filters": {k: list(v) for k, v in q.filters.items()}}))
    return unit_costs(ctx.costs, q, ctx.config.currency)


def _run_forecast(
    ctx: AskContext,
    dim: str | None,
    period: Period,
    metric: str,
    filters: Mapping[str, Sequence[str]],
    top: int,
    calls: list[ToolCall],
) -> list[dict[str, Any]]:
    from tools.forecast_query import forecast_by

    args = {
        "dimension": dim,
        "period": _period_args(period),
        "as_of": ctx.today.isoformat(),
        "metric": metric,
    }
    calls.append(
        ToolCall("forecast_by", {**args, "filters": {k: list(v) for k, v in filters.items()}, "top": top})
    )
    return forecast_by(
        ctx.costs, dim, period, ctx.today, metric=metric, filters=filters, config=ctx.config, top=top
    )


def _cost_args(q: CostQuery) -> dict[str, Any]:
    return {
        "period": _period_args(q.period),
        "group_by": list(q.group_by),
        "metric": q.metric,
        "filters": {k: list(v) for k, v in q.filters.items()},
        "granularity": q.granularity,
        "top": q.top,
        "compare": q.compare,
        "exclude_one_offs": q.exclude_one_offs,
    }


def _cost_filters(plan: QueryPlan, vocab: Vocabulary) -> dict[str, list[str]] | Answer:
    """The plan's filters in ``query_costs``' dimensions (an LLM provider named for spend is its provider)."""
    out: dict[str, list[str]] = {}
    for dim, values in plan.filters.items():
        if dim in DIMENSIONS:
            out.setdefault(dim, []).extend(v for v in values if v not in out.get(dim, []))
            continue
        phrases = [m.phrase for m in plan.matches if m.dimension == dim]
        remapped = [vocab.lookup(p, {"provider", "service"}) for p in phrases]
        if not remapped or any(m is None or m.dimension not in DIMENSIONS for m in remapped):
            plan.understood = False
            plan.unknown.append(f"spend cannot be filtered by {dim} ({', '.join(values)})")
            return help_answer(plan, vocab)
        for m in remapped:
            assert m is not None
            out.setdefault(m.dimension, []).extend(m.values)
    return out


def _group_text(
    rows: list[dict[str, Any]],
    group: Sequence[str],
    total: Decimal,
    currency: str,
    truncated: int,
    top: int | None,
    ascending: bool,
) -> str:
    shown = [r for r in rows if r[group[0]] != OTHER]
    other = [r for r in rows if r[group[0]] == OTHER]
    parts = []
    for r in shown[:TEXT_ROWS]:
        item = f"{_key_text(r, group)} {money(r['cost'], currency)}{_pct(r['cost'], total)}"
        if "previous" in r:
            item += (
                f" (vs {money(r['previous'], currency)}, {_change_text(r['cost'], r['previous'], currency)})"
            )
        parts.append(item)
    if len(shown) > TEXT_ROWS:
        parts.append(f"... {len(shown) - TEXT_ROWS} more in the rows")
    for o in other:
        parts.append(f"{OTHER} {truncated} more {money(o['cost'], currency)}{_pct(o['cost'], total)}")
    label = ", ".join(group)
    if truncated and top is not None:
        head = f"{'Bottom' if ascending else 'Top'} {top} of {top + truncated} by {label}"
    else:
        head = f"By {label}" + (" (smallest first)" if ascending else "")
    if not shown and not other:
        return f"By {label}: nothing."
    return f"{head}: " + "; ".join(parts) + "."


def _bucket_text(rows: list[dict[str, Any]], group: Sequence[str], granularity: str, currency: str) -> str:
    per: dict[str, Decimal] = {}
    for r in rows:
        per[r["period_start"]] = per.get(r["period_start"], Decimal(0)) + r["cost"]
    if not per:
        return ""
    word = {"day": "Daily", "week": "Weekly", "month": "Monthly"}[granularity]
    hi = max(per, key=lambda k: per[k])
    lo = min(per, key=lambda k: per[k])
    avg = (sum(per.values(), Decimal(0)) / len(per)).quantize(Decimal("0.01"))
    by = f" (rows per {', '.join(group)} too)" if group else ""
    return (
        f"{word}, {len(per)} {granularity}s{by}: highest {hi} {money(per[hi], currency)}, lowest {lo} "
        f"{money(per[lo], currency)}, average {money(avg, currency)} per {granularity}."
    )


def _cost_notes(results: Sequence[CostResult], currency: str) -> list[str]:
    notes = []
    estimated = sum((r.estimated for r in results), Decimal(0))
    if estimated:
        notes.append(f"Includes {money(estimated, currency)} estimated from LLM usage (not yet billed).")
    unpriced = {(u["provider"], u["model"]): u for r in results for u in r.unpriced}
    if unpriced:
        tokens = sum(u["tokens"] for u in unpriced.values())
        notes.append(
            f"Unpriced LLM usage not counted: {tokens:,} tokens of "
            + ", ".join(str(m) for _p, m in unpriced)
            + " (no known price)."
        )
    currencies = sorted({c for r in results for c in r.currencies})
    if len(currencies) > 1:
        notes.append(
            f"Several billing currencies without a rate ({', '.join(currencies)}): the total is in {currency} "
            "only; the rows are per currency."
        )
    return notes


# ----- unit costs ------------------------------------------------------------------------------------------
_UNIT_SUMS = ("cost", "tokens", "requests", "tasks_completed", "tasks_failed")


def _usage_terms(plan: QueryPlan, vocab: Vocabulary) -> tuple[dict[str, list[str]], tuple[str, ...]] | str:
    """Filters and grouping in the dimensions LLM usage carries, or why the question cannot use them."""
    filters: dict[str, list[str]] = {}
    for dim, values in plan.filters.items():
        if dim in USAGE_DIMENSIONS:
            filters.setdefault(dim, []).extend(values)
            continue
        for m in [m for m in plan.matches if m.dimension == dim]:
            again = vocab.lookup(m.phrase, {"llm_provider", "model"})
            if again is None or again.dimension not in USAGE_DIMENSIONS:
                return (
                    f"LLM tokens and requests are recorded by {', '.join(USAGE_DIMENSIONS)}, not by {dim} "
                    f"({m.phrase})"
                )
            filters.setdefault(again.dimension, []).extend(
                v for v in again.values if v in vocab.usage_values.get(again.dimension, again.values)
            )
    group: list[str] = []
    for dim in plan.group_by:
        d = "llm_provider" if dim == "provider" else dim
        if d not in USAGE_DIMENSIONS:
            return f"LLM tokens and requests are recorded by {', '.join(USAGE_DIMENSIONS)}, not by {dim}"
        group.append(d)
    return filters, tuple(group)


def _unit_costs(plan: QueryPlan, ctx: AskContext, vocab: Vocabulary) -> Answer:
    assert plan.period is not None
    terms = _usage_terms(plan, vocab)
    if isinstance(terms, str):
        plan.understood = False
        plan.unknown.append(terms)
        return help_answer(plan, vocab)
    filters, group = terms
    said = _Said(plan, ctx.today, vocab)
    currency, metric = ctx.config.currency, plan.metric
    calls: list[ToolCall] = []
    result = _run_units(ctx, UnitCostQuery(plan.period, group, plan.cost_metric, filters), calls)
    totals = result.as_dict()["totals"]
    rows = [dict(r) for r in result.rows]
    top = plan.top if plan.top_said else (AUTO_TOP if group else None)
    rows.sort(
        key=lambda r: (
            r.get(metric) is None,
            -(r.get(metric) or 0) if not plan.ascending else (r.get(metric) or 0),
        )
    )
    truncated = 0
    if group and top is not None and len(rows) > top:
        from tools.costs import _unit_row

        kept, rest = rows[:top], rows[top:]
        other: dict[str, Any] = {d: OTHER for d in group}
        for col in _UNIT_SUMS:
            other[col] = sum((r[col] for r in rest), Decimal(0) if col == "cost" else 0)
        rows, truncated = [*kept, _unit_row(other)], len(rest)
    ratio = metric.startswith("cost_per")
    total = totals[metric] if ratio else int(totals[metric])
    comparison = None
    prev_total = None
    prev_period: Period | None = plan.compare_period or (plan.period.previous() if plan.compare else None)
    if prev_period is not None:
        prev = _run_units(ctx, UnitCostQuery(prev_period, group, plan.cost_metric, filters), calls)
        prev_totals = prev.as_dict()["totals"]
        prev_total = prev_totals[metric] if ratio else int(prev_totals[metric])
        before = {_row_key(r, group): r.get(metric) for r in prev.rows}
        for r in rows:
            if group and r[group[0]] == OTHER:
                continue
            b = before.get(_row_key(r, group)) if group else prev_total
            r["previous"] = b
            if b is not None and r.get(metric) is not None:
                r["change"] = r[metric] - b
        comparison = {
            "period": prev_period.as_dict(),
            "total": prev_total,
            "rows": [{**{d: r[d] for d in group}, metric: r.get(metric)} for r in prev.rows],
        }
    # words
    what = UNIT_WORDS[metric]
    lines = [
        f"{what[0].upper() + what[1:]}, {scope_text(filters)}, {said.period()}: {_unit_value(total, metric, currency)}"
        + (
            f", vs {_unit_value(prev_total, metric, currency)} in {describe_previous(prev_period)}"
            if prev_period is not None
            else ""
        )
        + "."
    ]
    if ratio:
        lines.append(
            f"That is {money(totals['cost'], currency)} of LLM spend over {totals['tokens']:,} tokens, "
            f"{totals['requests']:,} requests and {totals['tasks_completed']:,} completed tasks."
        )
    if group and rows:
        shown = [r for r in rows if r[group[0]] != OTHER][:TEXT_ROWS]
        items = [f"{_key_text(r, group)} {_unit_value(r.get(metric), metric, currency)}" for r in shown]
        if truncated:
            items.append(f"{OTHER} {truncated} more")
        head = (
            f"Top {top} of {top + truncated} by {', '.join(group)}"
            if truncated and top
            else f"By {', '.join(group)}"
        )
        lines.append(f"{head}: " + "; ".join(items) + ".")
    if not rows:
        lines.append("No LLM usage recorded for this scope and period.")
    if result.unpriced:
        lines.append(
            f"Unpriced usage (tokens counted, no cost): {sum(u['tokens'] for u in result.unpriced):,} tokens of "
            + ", ".join(str(u["model"]) for u in result.unpriced)
            + "."
        )
    lines.append("Tokens and requests are counted once even when several sources report the same calls.")
    cover = said.coverage(plan.period)
    if cover:
        lines.append(cover)
    lines += plan.notes
    rerun = _unit_rerun(plan, plan.period, group, filters)
    if prev_period is not None:
        rerun += " && " + _unit_rerun(plan, prev_period, group, filters)
    return Answer(
        question=plan.question,
        text="\n".join(lines),
        kind="unit-costs",
        period=plan.period,
        filters=filters,
        group_by=group,
        metric=metric,
        currency=currency,
        rows=rows,
        total=total,
        truncated=truncated,
        comparison=comparison,
        rerun=rerun,
        tool_calls=calls,
    )


def _unit_rerun(
    plan: QueryPlan, period: Period, group: Sequence[str], filters: Mapping[str, Sequence[str]]
) -> str:
    args = ["unit-costs", "--by", ",".join(group)]  # --by '' (no grouping): the default is feature
    args += ["--from", period.start.isoformat(), "--to", period.end.isoformat()]
    if plan.cost_metric != "effective":
        args += ["--metric", plan.cost_metric]
    return _cli(*args, *_filter_args(filters))


def _unit_value(value: Any, metric: str, currency: str) -> str:
    if value is None:
        return "n/a"
    if metric in ("tokens", "requests"):
        return f"{int(value):,} {metric}"
    return unit_money(Decimal(value), currency)


# ----- anomalies -------------------------------------------------------------------------------------------
ANOMALY_MARGIN = timedelta(days=7)  # anomalies that began this long before the period can explain it


def _anomalies(plan: QueryPlan, ctx: AskContext, vocab: Vocabulary) -> Answer:
    """Anomalies overlapping the period (with their root cause), and how the spend moved against the
    period before (query_costs --compare, the biggest movers by service)."""
    from tools.anomalies_query import find_anomalies
    from tools.findings_store import suppressed_fingerprints

    assert plan.period is not None
    said = _Said(plan, ctx.today, vocab)
    period, currency = plan.period, ctx.config.currency
    usage = plan.metric in ("tokens", "requests")
    dims = _anomaly_dimensions(plan, usage, ctx)
    start = period.start - ANOMALY_MARGIN
    end = max(min(period.end + ANOMALY_MARGIN, ctx.today), start + timedelta(days=1))
    found = find_anomalies(
        ctx.costs, ctx.config, start, end, dimensions=dims, feedback=suppressed_fingerprints(ctx.db)
    )
    calls = [
        ToolCall("find_anomalies", {"from": start.isoformat(), "to": end.isoformat(), "dimensions": dims})
    ]
    found = [a for a in found if a.start < period.end and a.end >= period.start]
    wanted = {(d, v.lower()) for d, vs in plan.filters.items() for v in vs}
    if wanted:
        found = [a for a in found if (a.dimension.split(".")[0], a.key.lower()) in wanted]
    rows = [_anomaly_row(a) for a in found]
    top = _limit(plan, AUTO_TOP)
    truncated = max(0, len(rows) - top)
    scope = scope_text(plan.filters)
    lines: list[str] = []
    comparison = None
    movers: list[dict[str, Any]] = []
    if not usage:
        moved, movers, q = _movers(
            plan,
            ctx,
            Period(
                period.start, min(period.end, max(ctx.today, period.start + timedelta(days=1))), period.label
            ),
        )
        calls.append(ToolCall("query_costs", _cost_args(q)))
        prev = moved.previous_period
        assert prev is not None
        prev_total = moved.previous_total or Decimal(0)
        lines.append(
            f"Spend ({METRIC_WORDS[plan.cost_metric]}), {scope}, {describe(q.period, ctx.today)}: "
            f"{money(moved.total, currency)} vs {money(prev_total, currency)} in {describe_previous(prev)} "
            f"({_change_text(moved.total, prev_total, currency)})."
        )
        comparison = {"period": prev.as_dict(), "total": prev_total, "rows": movers}
    if rows:
        lines.append(
            f"{len(rows)} anomal{'y' if len(rows) == 1 else 'ies'} ({scope}) overlapping {said.period()}:"
        )
        lines += [_anomaly_text(r, currency) for r in rows[: min(top, TEXT_ROWS)]]
        if len(rows) > min(top, TEXT_ROWS):
            lines.append(
                f"... and {len(rows) - min(top, TEXT_ROWS)} more in the rows and in `finops anomalies`."
            )
    else:
        lines.append(
            f"No anomaly detected ({scope}) overlapping {said.period()} (thresholds from finops.yaml)."
        )
    if movers:
        dim = next(iter(movers[0]))
        lines.append(
            f"Biggest changes by {dim}: "
            + "; ".join(f"{m[dim]} {_change_text(m['cost'], m['previous'], currency)}" for m in movers)
            + "."
        )
    if not usage and period.days <= BASELINE_MAX_DAYS:
        drivers, base_q = _resource_drivers(plan, ctx, period)
        calls.append(ToolCall("query_costs", _cost_args(base_q)))
        if drivers:
            lines.append(
                f"Resources that rose most against their daily average of the {BASELINE_DAYS} days before: "
                + "; ".join(
                    f"{d['resource']} {money(d['cost'], currency)} vs {money(d['expected'], currency)} expected "
                    f"(+{money(d['rise'], currency)})"
                    for d in drivers
                )
                + "."
            )
    lines.append(
        f"Anomalies were looked for from {start.isoformat()} to {(end - timedelta(days=1)).isoformat()}."
    )
    cover = said.coverage(period)
    if cover:
        lines.append(cover)
    lines += plan.notes
    args = ["anomalies", "--from", start.isoformat(), "--to", end.isoformat()]
    for d in dims:
        args += ["--dimension", d]
    shown = rows[:top]
    if truncated:
        rest = rows[top:]
        shown.append(
            {
                "id": OTHER,
                "dimension": OTHER,
                "key": OTHER,
                "impact": sum((r["impact"] for r in rest), Decimal(0)),
            }
        )
    return Answer(
        question=plan.question,
        text="\n".join(lines),
        kind="anomalies",
        period=period,
        filters={k: list(v) for k, v in plan.filters.items()},
        group_by=("dimension", "key"),
        metric="count",
        currency=currency,
        rows=shown,
        total=len(rows),
        truncated=truncated,
        comparison=comparison,
        rerun=_cli(*args),
        tool_calls=calls,
    )


def _anomaly_dimensions(plan: QueryPlan, usage: bool, ctx: AskContext) -> list[str]:
    """The series to look at: the filtered dimensions, else the configured ones; money series for a
    question about spend, token / request series for one about usage."""
    settings = ctx.config.anomalies
    dims = []
    for dim in plan.filters:
        if usage and dim in USAGE_DIMENSIONS:
            dims.append(f"{dim}.{plan.metric}")
        elif not usage and dim in DIMENSIONS:
            dims.append(dim)
    if dims:
        return dims
    if usage:
        return [f"{d}.{plan.metric}" for d in settings.usage_dimensions]
    return list(settings.dimensions)


def _anomaly_row(a: Any) -> dict[str, Any]:
    return {
        "id": a.id,
        "dimension": a.dimension,
        "key": a.key,
        "start": a.start.isoformat(),
        "end": a.end.isoformat(),
        "kind": a.kind,
        "actual": a.actual,
        "expected": a.expected,
        "lower": a.lower,
        "upper": a.upper,
        "impact": a.impact,
        "severity": a.severity,
        "root_cause": [
            {"dimension": c.dimension, "key": c.key, "delta": c.delta, "share": c.share} for c in a.root_cause
        ],
    }


def _anomaly_text(r: dict[str, Any], currency: str) -> str:
    unit = r["dimension"].partition(".")[2]

    def fmt(v: Decimal) -> str:
        return f"{int(v):,} {unit}" if unit else money(v, currency)

    cause = "; ".join(
        f"{c['dimension']}={c['key']} {'+' if c['delta'] >= 0 else ''}{fmt(c['delta'])} ({c['share']:.0%})"
        for c in r["root_cause"][:3]
    )
    days = r["start"] if r["end"] == r["start"] else f"{r['start']} to {r['end']}"
    return (
        f"- {days}: {r['kind']} in {r['dimension']}={r['key']}, {fmt(r['actual'])} vs {fmt(r['expected'])} "
        f"expected (impact {fmt(r['impact'])}, {r['severity']})" + (f"; root cause: {cause}" if cause else "")
    )


def _movers(
    plan: QueryPlan, ctx: AskContext, period: Period
) -> tuple[CostResult, list[dict[str, Any]], CostQuery]:
    """The period against the one before, by service (by team when the question is about a service): the
    five biggest changes."""
    cause = "team" if "service" in plan.filters else "service"
    filters = {d: v for d, v in plan.filters.items() if d in DIMENSIONS}
    q = CostQuery(period, (cause,), plan.cost_metric, filters, compare=True)
    moved = query_costs(ctx.costs, q, ctx.config.currency)
    movers = sorted(
        (
            {
                cause: r[cause],
                "cost": r["cost"],
                "previous": r["previous_cost"],
                "change": r["cost"] - r["previous_cost"],
            }
            for r in moved.rows
        ),
        key=lambda r: -abs(r["change"]),
    )[:5]
    return moved, [m for m in movers if m["change"]], q


BASELINE_DAYS = 14  # a short period's resources are compared with their daily average over this many days
BASELINE_MAX_DAYS = 7  # ... when the question is about a week or less


def _resource_drivers(
    plan: QueryPlan, ctx: AskContext, period: Period
) -> tuple[list[dict[str, Any]], CostQuery]:
    """The three resources whose spend in a short ``period`` rose most above what their daily average over
    the ``BASELINE_DAYS`` before it predicts (the root cause of a spike no detector flagged, or an
    explanation beside the anomalies)."""
    filters = {d: v for d, v in plan.filters.items() if d in DIMENSIONS}
    end = min(period.end, max(ctx.today, period.start + timedelta(days=1)))
    window = Period(period.start - timedelta(days=BASELINE_DAYS), end, "baseline")
    q = CostQuery(window, ("resource",), plan.cost_metric, filters, granularity="day")
    result = query_costs(ctx.costs, q, ctx.config.currency)
    days = (end - period.start).days
    now: dict[str, Decimal] = {}
    before: dict[str, Decimal] = {}
    for r in result.rows:
        key = r["resource"]
        if key in (None, NONE_VALUE):
            continue
        day = date.fromisoformat(str(r["period_start"])[:10])
        bucket = now if day >= period.start else before
        bucket[key] = bucket.get(key, Decimal(0)) + r["cost"]
    drivers: list[dict[str, Any]] = []
    for key, cost in now.items():
        expected = before.get(key, Decimal(0)) / BASELINE_DAYS * days
        rise = cost - expected
        if rise > 0:
            drivers.append(
                {"resource": key, "cost": cost, "expected": expected.quantize(Decimal("0.01")), "rise": rise}
            )
    drivers.sort(key=lambda d: (-d["rise"], d["resource"]))
    return drivers[:3], q


# ----- forecast ------------------------------------------------------------------------------------------
def _period_name(period: Period) -> str | None:
    """The --period text that names ``period`` exactly, when there is one."""
    if period.start.day == 1 and period.end == add_months(period.start, 1):
        return f"{period.start:%Y-%m}"
    if period.start.day == 1 and period.start.month % 3 == 1 and period.end == add_months(period.start, 3):
        return f"{period.start.year}-Q{(period.start.month - 1) // 3 + 1}"
    if period.start == date(period.start.year, 1, 1) and period.end == date(period.start.year + 1, 1, 1):
        return str(period.start.year)
    return None


def _forecast(plan: QueryPlan, ctx: AskContext, vocab: Vocabulary) -> Answer:

    assert plan.period is not None
    _Said(plan, ctx.today, vocab)
    period, currency = plan.period, ctx.config.currency
    filters = _cost_filters(plan, vocab)
    if isinstance(filters, Answer):
        return filters
    dim = plan.group_by[0] if plan.group_by else None
    pick: tuple[str, str] | None = None
    use_filters: dict[str, list[str]] = dict(filters)
    if dim is None and len(filters) == 1:
        ((fdim, fvals),) = filters.items()
        if len(fvals) == 1:
            dim, pick, use_filters = fdim, (fdim, fvals[0]), {}
    top = _limit(plan, AUTO_TOP)
    calls: list[ToolCall] = []
    rows = _run_forecast(ctx, dim, period, plan.cost_metric, use_filters, top, calls)
    if pick is not None:
        chosen = [r for r in rows if str(r[pick[0]]).lower() == pick[1].lower()]
        if chosen:
            rows = chosen
        else:  # folded into "(other)": forecast it on its own
            use_filters = dict(filters)
            dim, pick = None, None
            rows = _run_forecast(ctx, None, period, plan.cost_metric, use_filters, top, calls)
    truncated = 0
    out = []
    for r in rows:
        row = {k: v for k, v in r.items() if k != "period"}
        if "groups" in row:
            truncated += int(row.pop("groups"))
        row["cost"] = row["forecast"]
        out.append(row)
    total = sum((r["forecast"] for r in out), Decimal(0))
    actual = sum((r["actual_to_date"] for r in out), Decimal(0))
    lower = sum((r["lower"] for r in out), Decimal(0))
    upper = sum((r["upper"] for r in out), Decimal(0))
    lines = [
        f"Forecast of spend ({METRIC_WORDS[plan.cost_metric]}), {scope_text(filters)}, {describe(period)}"
        + ("" if plan.period_said else " (this month, the default)")
        + f": {money(total, currency)}"
        + (
            f" (80% interval {money(lower, currency)} to {money(upper, currency)} when there is one series)"
            if len(out) == 1
            else ""
        )
        + f"; actual so far {money(actual, currency)} (data through {(ctx.today - timedelta(days=1)).isoformat()})."
    ]
    if dim is not None and pick is None:
        items = [
            f"{r[dim]} {money(r['forecast'], currency)} (so far {money(r['actual_to_date'], currency)}, {r['method']})"
            for r in out[:TEXT_ROWS]
        ]
        lines.append(
            f"By {dim}"
            + (f", top {top} and {OTHER} for {truncated} more" if truncated else "")
            + ": "
            + "; ".join(items)
            + "."
        )
    elif out:
        r = out[0]
        lines.append(f"Method {r['method']}; run rate alone would give {money(r['run_rate'], currency)}.")
    lines += plan.notes
    name = _period_name(period)
    rerun = None
    if name and not use_filters:
        args = ["--as-of", ctx.today.isoformat(), "forecast", "--period", name]
        if dim:
            args += ["--by", dim]
        if plan.cost_metric != "effective":
            args += ["--metric", plan.cost_metric]
        rerun = _cli(*args)
        if pick is not None:
            lines.append(f"The command forecasts every {dim}; this answer is the row {pick[0]}={pick[1]}.")
    else:
        lines.append(
            "No `finops` command takes this forecast's filters or period; the tool call is listed in the answer."
        )
    return Answer(
        question=plan.question,
        text="\n".join(lines),
        kind="forecast",
        period=period,
        filters=filters,
        group_by=(dim,) if dim and pick is None else (),
        metric="cost",
        currency=currency,
        rows=out,
        total=total,
        truncated=truncated,
        rerun=rerun,
        tool_calls=calls,
    )


BUDGET_STATE_WORDS = {
    "over": "over (actual spend at or above the amount)",
    "forecast-over": "forecast to overrun by the end of their period",
    "warning": "at or past a warning threshold but not over",
}


def _budget_in_state(row: Mapping[str, Any], state: str) -> bool:
    if state == "over":
        return bool(row["status"] == "over")
    if state == "forecast-over":
        return bool(row["forecast_status"] == "over")
    return bool(row["status"] == "warning")


# ----- budgets ----------------------------------------------------------------------------------------------
def _budgets(plan: QueryPlan, ctx: AskContext, vocab: Vocabulary) -> Answer:
    from tools.budgets import budget_row, budget_status, token_budget_row, token_budget_status

    currency = ctx.config.currency
    money_budgets = budget_status(ctx.costs, ctx.config, ctx.today, plan.cost_metric)
    token_budgets = token_budget_status(ctx.costs, ctx.config, ctx.today)
    calls = [
        ToolCall("budget_status", {"as_of": ctx.today.isoformat(), "metric": plan.cost_metric}),
        ToolCall("token_budget_status", {"as_of": ctx.today.isoformat()}),
    ]
    wanted = {(d, v.lower()) for d, vs in plan.filters.items() for v in vs}
    notes = []
    if wanted:
        mb = [b for b in money_budgets if any((k, str(v).lower()) in wanted for k, v in b.scope.items())]
        tb = [t for t in token_budgets if ("project", t.project.lower()) in wanted]
        if mb or tb:
            money_budgets, token_budgets = mb, tb
        else:
            notes.append(f"No budget is scoped to {scope_text(plan.filters)}; all budgets are shown.")
    rows = [*map(budget_row, money_budgets), *map(token_budget_row, token_budgets)]
    order = {"over": 0, "warning": 1, "ok": 2}
    rows.sort(key=lambda r: (order.get(r["status"], 3), -r["used"]))
    all_budgets = len(rows)
    if plan.budget_state:
        rows = [r for r in rows if _budget_in_state(r, plan.budget_state)]
    state = f" {BUDGET_STATE_WORDS[plan.budget_state]}" if plan.budget_state else ""
    lines = [
        f"{len(rows)} of {all_budgets} budget{'s' if all_budgets != 1 else ''}{state}"
        if plan.budget_state
        else f"{len(rows)} budget{'s' if len(rows) != 1 else ''}"
    ]
    lines[0] += (
        f" as of {ctx.today.isoformat()} (actuals through "
        f"{(ctx.today - timedelta(days=1)).isoformat()}, {METRIC_WORDS[plan.cost_metric]}; forecast = run rate):"
    )
    for r in rows:
        if "tokens" in r:
            fig = f"{r['tokens']:,} of {r['amount']:,} tokens"
            fc = f"{r['forecast']:,} tokens"
        else:
            fig = f"{money(r['cost'], currency)} of {money(r['amount'], currency)}"
            fc = money(r["forecast"], currency)
        lines.append(
            f"- {r['budget']} ({r['scope']}, {r['period']}): {fig} ({r['used'] * 100:.1f}%), {r['status']}"
            + (f", thresholds crossed {', '.join(r['crossed'])}" if r["crossed"] else "")
            + f"; forecast {fc}, {r['forecast_status']}"
            + (f"; runs out on {r['runs_out_on']}" if r.get("runs_out_on") else "")
        )
    if not all_budgets:
        lines = ["No budgets are configured (add `budgets:` to finops.yaml)."]
    elif not rows:
        lines = [f"None of the {all_budgets} budgets is{state} as of {ctx.today.isoformat()}."]
    lines += notes + plan.notes
    args = ["--as-of", ctx.today.isoformat(), "budgets"]
    if plan.cost_metric != "effective":
        args += ["--metric", plan.cost_metric]
    return Answer(
        question=plan.question,
        text="\n".join(lines),
        kind="budgets",
        period=money_budgets[0].period if money_budgets else None,
        filters={k: list(v) for k, v in plan.filters.items()},
        group_by=("budget",),
        metric="cost",
        currency=currency,
        rows=rows,
        total=None,
        rerun=_cli(*args),
        tool_calls=calls,
    )


# ----- findings ---------------------------------------------------------------------------------------------
def _findings(plan: QueryPlan, ctx: AskContext, vocab: Vocabulary) -> Answer:
    from tools.findings_store import ACTIVE, finding_dict, list_findings

    currency = ctx.config.currency
    statuses = list(plan.statuses) or list(ACTIVE)
    teams: list[str | None] = [*plan.filters.get("team", [])] or [None]
    calls = []
    rows: list[dict[str, Any]] = []
    for team in teams:
        query: dict[str, Any] = {
            "team": team,
            "kind": plan.finding_kind,
            "rule": plan.finding_rule,
            "severity": plan.severity,
        }
        found = list_findings(ctx.db, status=statuses, **query)
        calls.append(ToolCall("list_findings", {"status": statuses, **query}))
        for f in found:
            d = finding_dict(f)
            d["cost"] = d["monthly_impact"]
            rows.append(d)
    other_filters = {k: v for k, v in plan.filters.items() if k != "team"}
    if other_filters:
        rows = [
            r
            for r in rows
            if all(
                str(r.get(k) or "").lower() in {x.lower() for x in v}
                for k, v in other_filters.items()
                if k in r
            )
        ]
    rows.sort(key=lambda r: (-r["cost"], r["id"]))
    total = sum((r["cost"] for r in rows), Decimal(0))
    group = tuple(d for d in plan.group_by if d in ("team", "kind", "rule", "severity", "status"))
    truncated = 0
    top = _limit(plan, AUTO_TOP)
    if group:
        sums: dict[tuple[Any, ...], dict[str, Any]] = {}
        for r in rows:
            k = _row_key(r, group)
            s = sums.setdefault(
                k, {**{d: r.get(d) or NONE_VALUE for d in group}, "cost": Decimal(0), "findings": 0}
            )
            s["cost"] += r["cost"]
            s["findings"] += 1
        rows, truncated = fold(list(sums.values()), group, top, "cost", sums=("findings",))
    elif len(rows) > top:
        rest = rows[top:]
        rows = [
            *rows[:top],
            {
                "id": OTHER,
                "title": f"{len(rest)} more findings",
                "cost": sum((r["cost"] for r in rest), Decimal(0)),
            },
        ]
        truncated = len(rest)
    count = (
        sum(r.get("findings", 1) for r in rows) if group else len(rows) - (1 if truncated else 0) + truncated
    )
    counting = plan.metric == "count"
    what = "".join(
        f"{w} "
        for w in (plan.severity and f"{plan.severity}-severity", plan.finding_rule, plan.finding_kind)
        if w
    )
    lines = [
        f"{count} {what}finding{'s' if count != 1 else ''} ({' or '.join(statuses)}) for {scope_text(plan.filters)}: "
        f"{money(total, currency)} per month at stake."
    ]
    if group:
        lines.append(
            f"By {', '.join(group)}: "
            + "; ".join(
                f"{_key_text(r, group)} {money(r['cost'], currency)} ({r['findings']})"
                for r in rows[:TEXT_ROWS]
            )
            + "."
        )
    else:
        for r in rows[:TEXT_ROWS]:
            if r["id"] == OTHER:
                lines.append(f"- {r['title']}: {money(r['cost'], currency)} per month")
                continue
            lines.append(
                f"- {r['title']}: {money(r['cost'], currency)}/month, team {r['team'] or 'unknown'}, "
                f"{r['status']}"
                + (f", fix: {r['proposed_action']}" if r["proposed_action"] else "")
                + f" [{r['id'][:10]}]"
            )
    if not rows:
        lines.append("Nothing found. Findings come from `finops scan`.")
    lines += plan.notes
    reruns = []
    for team in teams:
        args = ["findings"]
        for status in statuses:
            args += ["--status", status]
        if team:
            args += ["--team", team]
        if plan.finding_kind:
            args += ["--kind", plan.finding_kind]
        if plan.finding_rule:
            args += ["--rule", plan.finding_rule]
        if plan.severity:
            args += ["--severity", plan.severity]
        reruns.append(_cli(*args))
    return Answer(
        question=plan.question,
        text="\n".join(lines),
        kind="findings",
        filters={k: list(v) for k, v in plan.filters.items()},
        group_by=group or ("id",),
        metric="count" if counting else "cost",
        currency=currency,
        rows=rows,
        total=Decimal(count) if counting else total,
        truncated=truncated,
        rerun=" && ".join(reruns),
        tool_calls=calls,
    )


# ----- approvals and audit ----------------------------------------------------------------------------------
def _approvals(plan: QueryPlan, ctx: AskContext, vocab: Vocabulary) -> Answer:
    from approvals.service import ApprovalService

    currency = ctx.config.currency
    statuses = list(plan.statuses)
    teams: list[str | None] = [*plan.filters.get("team", [])] or [None]
    svc = ApprovalService(ctx.db, ctx.config)
    rows: list[dict[str, Any]] = []
    calls = []
    for team in teams:
        rows += svc.list_requests(status=statuses or None, team=team)
        calls.append(ToolCall("list_requests", {"status": statuses, "team": team}))
    savings = sum((Decimal(r["monthly_savings"]) for r in rows), Decimal(0))
    count = len(rows)
    top = _limit(plan, AUTO_TOP)
    truncated = max(0, count - top)
    if truncated:
        rest = rows[top:]
        rows = [
            *rows[:top],
            {
                "id": OTHER,
                "summary": f"{len(rest)} more requests",
                "monthly_savings": sum((Decimal(r["monthly_savings"]) for r in rest), Decimal(0)),
            },
        ]
    which = " or ".join(statuses) if statuses else "any status"
    lines = [
        f"{count} remediation request{'s' if count != 1 else ''} ({which}) for {scope_text(plan.filters)}, newest "
        f"first: {money(savings, currency)} per month of estimated savings."
    ]
    for r in rows[:TEXT_ROWS]:
        if r["id"] == OTHER:
            lines.append(f"- {r['summary']}")
            continue
        lines.append(
            f"- {r['id']} [{r['status']}] {r['summary']} (team {r['team'] or 'unknown'}, approvals {r['approvals']}, "
            f"expires {r['expires_at'][:16]})"
        )
    lines += plan.notes
    reruns = []
    for team in teams:
        args = ["approvals"]
        for status in statuses:
            args += ["--status", status]
        if team:
            args += ["--team", team]
        reruns.append(_cli(*args))
    return Answer(
        question=plan.question,
        text="\n".join(lines),
        kind="approvals",
        filters={k: list(v) for k, v in plan.filters.items()},
        group_by=("id",),
        metric="count",
        currency=currency,
        rows=rows,
        total=count,
        truncated=truncated,
        rerun=" && ".join(reruns),
        tool_calls=calls,
    )


def _audit(plan: QueryPlan, ctx: AskContext, vocab: Vocabulary) -> Answer:
    from approvals import audit

    limit = _limit(plan, 20)
    since = until = None
    if plan.period is not None:
        since = datetime(plan.period.start.year, plan.period.start.month, plan.period.start.day, tzinfo=UTC)
        until = datetime(plan.period.end.year, plan.period.end.month, plan.period.end.day, tzinfo=UTC)
    resource = next(iter(plan.filters.get("resource", [])), None)
    with ctx.db.session() as s:
        entries = audit.list_entries(
            s,
            resource=resource,
            event=plan.audit_event,
            since=since,
            until=until,
            limit=limit,
            newest_first=True,
        )
        rows = [audit.entry_dict(e) for e in entries]
    calls = [
        ToolCall(
            "audit.list_entries",
            {
                "resource": resource,
                "event": plan.audit_event,
                "since": since.isoformat() if since else None,
                "until": until.isoformat() if until else None,
                "limit": limit,
            },
        )
    ]
    what = f" of events {plan.audit_event}*" if plan.audit_event else ""
    when = f", {describe(plan.period, ctx.today)}" if plan.period else ""
    lines = [
        f"The last {len(rows)} audit entr{'y' if len(rows) == 1 else 'ies'}{what}{when} (newest first, at most {limit}):"
    ]
    for r in rows[:TEXT_ROWS]:
        lines.append(
            f"- #{r['seq']} {r['at'][:19]} {r['event']} by {r['actor'] or 'unknown'}"
            + (f" on {r['request_id']}" if r["request_id"] else "")
            + (f" ({r['resource']})" if r["resource"] else "")
        )
    if not rows:
        lines.append("- none")
    lines += plan.notes
    args = ["audit", "list", "--limit", str(limit)]
    if since:
        args += ["--since", since.date().isoformat()]
    if resource:
        args += ["--resource", resource]
    if plan.audit_event or until:
        lines.append(
            "The command lists every event"
            + (" up to now" if until else "")
            + "; this answer kept "
            + (f"events {plan.audit_event}*" if plan.audit_event else "")
            + (" and " if plan.audit_event and until else "")
            + (f"entries before {until.date().isoformat()}" if until else "")
            + "."
        )
    return Answer(
        question=plan.question,
        text="\n".join(lines),
        kind="audit",
        period=plan.period,
        filters={k: list(v) for k, v in plan.filters.items()},
        group_by=("seq",),
        metric="count",
        rows=rows,
        total=len(rows),
        rerun=_cli(*args),
        tool_calls=calls,
    )


# ----- untagged --------------------------------------------------------------------------------------------
def _untagged(plan: QueryPlan, ctx: AskContext, vocab: Vocabulary) -> Answer:
    assert plan.period is not None
    period, currency = plan.period, ctx.config.currency
    said = _Said(plan, ctx.today, vocab)
    top = _limit(plan, AUTO_TOP)
    filters = _cost_filters(plan, vocab)
    if isinstance(filters, Answer):
        return filters
    filters.pop("team", None)
    if filters:
        # untagged spend within a scope: the spend with no team, from query_costs
        scoped = QueryPlan(
            plan.question,
            kind="costs",
            period=period,
            period_said=plan.period_said,
            filters={**filters, "team": [NONE_VALUE]},
            group_by=plan.group_by or ("service", "resource"),
            cost_metric=plan.cost_metric,
            top=top,
            top_said=True,
            notes=[*plan.notes, "Untagged = no team (team=(none))."],
        )
        answer = _costs(scoped, ctx, vocab)
        answer.kind = "untagged"
        return answer
    from tools.costs import _where
    from tools.untagged import untagged_spend

    result = untagged_spend(ctx.costs, ctx.config, period, top=top, metric=plan.cost_metric)
    calls = [
        ToolCall("untagged_spend", {"period": _period_args(period), "top": top, "metric": plan.cost_metric})
    ]
    group = ("provider", "sub_account", "service", "resource")
    rows = [o.as_dict() for o in result.offenders]
    listed = sum((r["cost"] for r in rows), Decimal(0))
    truncated = 0
    if result.unallocated - listed and len(rows) == top:
        (groups,) = ctx.costs.execute(
            f"SELECT count(*) FROM (SELECT DISTINCT provider, sub_account, service, resource FROM spend "
            f"WHERE {_where(period, {}, {})} AND team IS NULL)"
        ).fetchone() or (0,)
        truncated = max(int(groups) - len(rows), 0)
        rows.append({**{d: OTHER for d in group}, "cost": result.unallocated - listed})
    share = _pct(result.unallocated, result.total)
    lines = [
        f"Untagged spend (no team; {METRIC_WORDS[plan.cost_metric]}), {said.period()}: "
        f"{money(result.unallocated, currency)} of {money(result.total, currency)}{share}."
    ]
    for r in rows[:TEXT_ROWS]:
        if r["resource"] == OTHER:
            lines.append(f"- {OTHER} {truncated} more: {money(r['cost'], currency)}")
            continue
        lines.append(
            f"- {r['resource'] or '(no resource)'} ({r['service']}, {r['provider']} {r['sub_account']}): "
            f"{money(r['cost'], currency)}; suggested owner: {r['suggested_team'] or 'none'} ({r['reason']})"
        )
    cover = said.coverage(period)
    if cover:
        lines.append(cover)
    lines += plan.notes
    args = ["untagged", "--from", period.start.isoformat(), "--to", period.end.isoformat(), "--top", str(top)]
    if plan.cost_metric != "effective":
        args += ["--metric", plan.cost_metric]
    return Answer(
        question=plan.question,
        text="\n".join(lines),
        kind="untagged",
        period=period,
        filters={},
        group_by=group,
        metric="cost",
        currency=currency,
        rows=rows,
        total=result.unallocated,
        truncated=truncated,
        rerun=_cli(*args),
        tool_calls=calls,
    )
