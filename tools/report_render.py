"""Rendering of the reviews (``tools.report``): Markdown for people, JSON for machines, a short summary.

``render_markdown(report)`` gives the whole review as GitHub-flavoured Markdown (a table per section, each
headed by its period and metric). ``as_json(report)`` gives a dict with the stable keys below; amounts are
``Decimal`` (exact: write them with ``agent.output.dumps_json``, which keeps every digit), counts are
``int``, ratios (``*_share``, ``used``, ``budget_used``) are Decimal fractions (0.25 = 25 %), ``*_percent``
are Decimal percentages, dates are ISO strings and a period is ``{"from", "to", "label"}`` with ``to``
exclusive. ``summary(report)`` gives the headline figures as (label, text) pairs (Slack, CLI).

Monthly review (``"report": "monthly"``)::

    report, month, period, previous_period, as_of, complete, currency, metric, total, previous_total,
    change, change_percent, notes,
    teams:          period, previous_period, metric, currency, total, previous_total, forecast_total,
                    rows[team, actual, previous, change, change_percent, budget, budget_used, forecast]
    budgets:        metric, currency, as_of,
                    rows[name, scope, cadence, period, through, amount, actual, used, crossed, status,
                         forecast, forecast_status, unconverted]
    movers:         period, previous_period, metric, currency,
                    by{team|service|feature|model: [key, current, previous, change, change_percent,
                                                    causes[dimension, key, delta, share]]}
    unit_economics: periods, metric, currency,
                    rows[feature, change_percent{cost_per_1m_tokens, cost_per_request,
                                                 cost_per_completed_task},
                         points[period, cost, tokens, requests, tasks_completed, cost_per_1m_tokens,
                                cost_per_request, cost_per_completed_task]]
    model_mix:      period, previous_period, metric, currency, total_cost, total_tokens,
                    rows[model, cost, cost_share, previous_cost, tokens, token_share, requests]
    workloads:      period, previous_period, metric, currency, current{workload: cost},
                    previous{workload: cost}
    token_budgets:  metric, as_of, rows[project, cadence, period, through, tokens, actual, used, crossed,
                                        status, forecast, forecast_status]
    tagging:        period, metric, currency, total, untagged, untagged_share, coverage{dimension: share},
                    offenders[provider, sub_account, service, resource, cost, tags, suggested_team, reason]
    findings:       period, metric, currency, opened_count, resolved_count, opened_impact,
                    resolved_impact, by_rule{rule: {opened, resolved}},
                    opened[...], resolved[...] (id, rule, kind, title, team, severity, status,
                                                monthly_impact, at)
    remediations:   period, metric, currency, estimated_total, realised_total, measured,
                    rows[request_id, action, resource, resource_kind, team, status, executed_at,
                         estimated_monthly, realised_monthly, baseline_daily, after_daily, baseline_days,
                         days_after, measured_on, note]
    price_changes:  period, changes_from, changes_to, metric, currency, total_impact, without_usage,
                    rows[provider, model, kind, old_price, new_price, unit, source, effective_from,
                         tokens, old_cost, new_cost, impact]

Quarterly review (``"report": "quarterly"``)::

    report, quarter, period, as_of, complete, currency, metric, total, notes,
    spend_by_month[period, cost],
    model_selection:  period, metric, currency, total_savings, monthly_savings,
                      rows[provider, model, environment, feature, team, target, requests,
                           avg_input_tokens, allocated_spend, cost_current, cost_target, savings,
                           monthly_savings]
    token_efficiency: periods, metric,
                      rows[feature, tokens_per_request_change, tokens_per_task_change,
                           points[period, tokens, requests, tasks_completed, tokens_per_request,
                                  tokens_per_task]]
    tagging_trend:    [the monthly ``tagging`` section, one per month]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tools.anomaly import Contribution
from tools.money import NA, money, unit_money
from tools.periods import Period
from tools.report import (
    NOT_ENOUGH_DATA,
    FindingLine,
    MonthlyReport,
    QuarterlyReport,
    TaggingSection,
)

Report = MonthlyReport | QuarterlyReport
TOP_FINDINGS = 10


# ----- JSON --------------------------------------------------------------------------------------------


def _period(p: Period) -> dict[str, str]:
    return {"from": p.start.isoformat(), "to": p.end.isoformat(), "label": p.label}


def _cause(c: Contribution) -> dict[str, Any]:
    return {"dimension": c.dimension, "key": c.key, "delta": c.delta, "share": c.share}


def _tagging(t: TaggingSection) -> dict[str, Any]:
    return {
        "period": _period(t.period),
        "metric": t.metric,
        "currency": t.currency,
        "total": t.total,
        "untagged": t.untagged,
        "untagged_share": t.untagged_share,
        "coverage": dict(t.coverage),
        "offenders": [dict(o) for o in t.offenders],
    }


def _finding(f: FindingLine) -> dict[str, Any]:
    return {
        "id": f.id,
        "rule": f.rule,
        "kind": f.kind,
        "title": f.title,
        "team": f.team,
        "severity": f.severity,
        "status": f.status,
        "monthly_impact": f.monthly_impact,
        "at": f.at.isoformat(),
    }


def _monthly_json(r: MonthlyReport) -> dict[str, Any]:
    t, b, mv, u, mm, w, tb, f, rem, pc = (
        r.teams,
        r.budgets,
        r.movers,
        r.unit_economics,
        r.model_mix,
        r.workloads,
        r.token_budgets,
        r.findings,
        r.remediations,
        r.price_changes,
    )
    change = r.total - r.previous_total
    return {
        "report": "monthly",
        "month": r.month.label,
        "period": _period(r.period),
        "previous_period": _period(r.previous_period),
        "as_of": r.as_of.isoformat(),
        "complete": r.complete,
        "currency": r.currency,
        "metric": r.metric,
        "total": r.total,
        "previous_total": r.previous_total,
        "change": change,
        "change_percent": _pct_change(r.total, r.previous_total),
        "teams": {
            "period": _period(t.period),
            "previous_period": _period(t.previous_period),
            "metric": t.metric,
            "currency": t.currency,
            "total": t.total,
            "previous_total": t.previous_total,
            "forecast_total": t.forecast_total,
            "rows": [asdict(line) for line in t.rows],
        },
        "budgets": {
            "metric": b.metric,
            "currency": b.currency,
            "as_of": b.as_of.isoformat(),
            "rows": [
                {
                    "name": x.name,
                    "scope": dict(x.scope),
                    "cadence": x.cadence,
                    "period": _period(x.period),
                    "through": x.through.isoformat(),
                    "amount": x.amount,
                    "actual": x.actual,
                    "used": x.used,
                    "crossed": list(x.crossed),
                    "status": x.status,
                    "forecast": x.forecast,
                    "forecast_status": x.forecast_status,
                    "unconverted": dict(x.unconverted),
                }
                for x in b.rows
            ],
        },
        "movers": {
            "period": _period(mv.period),
            "previous_period": _period(mv.previous_period),
            "metric": mv.metric,
            "currency": mv.currency,
            "by": {
                dim: [
                    {
                        "key": m.key,
                        "current": m.current,
                        "previous": m.previous,
                        "change": m.change,
                        "change_percent": m.change_percent,
                        "causes": [_cause(c) for c in m.causes],
                    }
                    for m in movers
                ]
                for dim, movers in mv.by.items()
            },
        },
        "unit_economics": {
            "periods": [_period(p) for p in u.periods],
            "metric": u.metric,
            "currency": u.currency,
            "rows": [
                {
                    "feature": row.feature,
                    "change_percent": dict(row.change_percent),
                    "points": [{**asdict(p), "period": _period(p.period)} for p in row.points],
                }
                for row in u.rows
            ],
        },
        "model_mix": {
            "period": _period(mm.period),
            "previous_period": _period(mm.previous_period),
            "metric": mm.metric,
            "currency": mm.currency,
            "total_cost": mm.total_cost,
            "total_tokens": mm.total_tokens,
            "rows": [asdict(row) for row in mm.rows],
        },
        "workloads": {
            "period": _period(w.period),
            "previous_period": _period(w.previous_period),
            "metric": w.metric,
            "currency": w.currency,
            "current": dict(w.current),
            "previous": dict(w.previous),
        },
        "token_budgets": {
            "metric": tb.metric,
            "as_of": tb.as_of.isoformat(),
            "rows": [
                {**asdict(x), "period": _period(x.period), "through": x.through.isoformat()} for x in tb.rows
            ],
        },
        "tagging": _tagging(r.tagging),
        "findings": {
            "period": _period(f.period),
            "metric": f.metric,
            "currency": f.currency,
            "opened_count": len(f.opened),
            "resolved_count": len(f.resolved),
            "opened_impact": f.opened_impact,
            "resolved_impact": f.resolved_impact,
            "by_rule": {k: dict(v) for k, v in f.by_rule.items()},
            "opened": [_finding(x) for x in f.opened],
            "resolved": [_finding(x) for x in f.resolved],
        },
        "remediations": {
            "period": _period(rem.period),
            "metric": rem.metric,
            "currency": rem.currency,
            "estimated_total": rem.estimated_total,
            "realised_total": rem.realised_total,
            "measured": rem.measured,
            "rows": [{**asdict(x), "executed_at": x.executed_at.isoformat()} for x in rem.rows],
        },
        "price_changes": {
            "period": _period(pc.period),
            "changes_from": pc.changes_from.isoformat(),
            "changes_to": pc.changes_to.isoformat(),
            "metric": pc.metric,
            "currency": pc.currency,
            "total_impact": pc.total_impact,
            "without_usage": pc.without_usage,
            "rows": [
                {
                    "provider": x.change.provider,
                    "model": x.change.model,
                    "kind": x.change.kind,
                    "old_price": x.change.old_price,
                    "new_price": x.change.new_price,
                    "unit": f"{x.change.currency} per 1M tokens",
                    "source": x.change.source,
                    "effective_from": x.change.effective_from.isoformat(),
                    "tokens": x.tokens,
                    "old_cost": x.old_cost,
                    "new_cost": x.new_cost,
                    "impact": x.impact,
                }
                for x in pc.rows
            ],
        },
        "notes": list(r.notes),
    }


def _quarterly_json(r: QuarterlyReport) -> dict[str, Any]:
    ms, te = r.model_selection, r.token_efficiency
    return {
        "report": "quarterly",
        "quarter": r.quarter.label,
        "period": _period(r.period),
        "as_of": r.as_of.isoformat(),
        "complete": r.complete,
        "currency": r.currency,
        "metric": r.metric,
        "total": r.total,
        "spend_by_month": [{"period": _period(p), "cost": c} for p, c in r.spend_by_month],
        "model_selection": {
            "period": _period(ms.period),
            "metric": ms.metric,
            "currency": ms.currency,
            "total_savings": ms.total_savings,
            "monthly_savings": ms.monthly_savings,
            "rows": [asdict(x) for x in ms.rows],
        },
        "token_efficiency": {
            "periods": [_period(p) for p in te.periods],
            "metric": te.metric,
            "rows": [
                {
                    "feature": x.feature,
                    "tokens_per_request_change": x.tokens_per_request_change,
                    "tokens_per_task_change": x.tokens_per_task_change,
                    "points": [{**asdict(p), "period": _period(p.period)} for p in x.points],
                }
                for x in te.rows
            ],
        },
        "tagging_trend": [_tagging(t) for t in r.tagging_trend],
        "notes": list(r.notes),
    }


def as_json(report: Report) -> dict[str, Any]:
    """The report as a dict with the stable keys of the module docstring (amounts stay Decimal)."""
    if isinstance(report, MonthlyReport):
        return _monthly_json(report)
    return _quarterly_json(report)


# ----- formatting --------------------------------------------------------------------------------------


def signed_money(value: Decimal | None, currency: str = "USD") -> str:
    if value is None:
        return NA
    return ("+" if value > 0 else "") + money(value, currency)


def share(value: Decimal | None) -> str:
    """A fraction as a percentage: 0.7519 -> ``75.19%``."""
    if value is None:
        return NA
    return f"{(value * 100).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}%"


def change(value: Decimal | None) -> str:
    """A percentage change: ``+37.00%``, ``-9.55%``, ``n/a`` when there was nothing before."""
    if value is None:
        return NA
    return f"{'+' if value > 0 else ''}{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}%"


def count(value: int | Decimal | None) -> str:
    if value is None:
        return NA
    if isinstance(value, Decimal):
        return f"{value:,.2f}" if value % 1 else f"{value:,.0f}"
    return f"{value:,}"


def price(value: Decimal | None) -> str:
    if value is None:
        return NA
    text = format(value.normalize(), "f")
    return text


def _pct_change(current: Decimal, previous: Decimal) -> Decimal | None:
    if not previous:
        return None
    return ((current - previous) / abs(previous) * 100).quantize(Decimal("0.01"))


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return " ".join(text.split()).replace("|", "\\|")


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], right: Sequence[int] = ()) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|")
    for row in rows:
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return lines


def _span(p: Period) -> str:
    """``2024-08 (2024-08-01 to 2024-08-31)``, ``2024-09 to date (2024-09-01 to 2024-09-20)``."""
    last = date.fromordinal(p.end.toordinal() - 1)
    return f"{p.label} ({p.start.isoformat()} to {last.isoformat()})"


def _heading(title: str, period: str, metric: str) -> list[str]:
    return ["", f"## {title}", "", f"*Period: {period}. Metric: {metric}.*", ""]


def _causes(causes: Sequence[Contribution], currency: str) -> str:
    if not causes:
        return "no single sub-dimension explains it"
    dim = causes[0].dimension
    parts = [f"{c.key} {signed_money(c.delta, currency)} ({share(c.share)})" for c in causes]
    return f"by {dim}: " + "; ".join(parts)


# ----- summary -----------------------------------------------------------------------------------------


def summary(report: Report) -> list[tuple[str, str]]:
    """The headline figures as (label, text) pairs, each text naming its period and metric."""
    if isinstance(report, QuarterlyReport):
        return _quarterly_summary(report)
    r = report
    c = r.currency
    out = [
        (
            "Spend",
            f"{money(r.total, c)} in {r.period.label} vs {money(r.previous_total, c)} in "
            f"{r.previous_period.label} ({change(_pct_change(r.total, r.previous_total))}), {r.metric}",
        )
    ]
    if r.teams.forecast_total is not None:
        out.append(("Month-end forecast", f"{money(r.teams.forecast_total, c)} for {r.month.label}"))
    over = [b for b in r.budgets.rows if b.status == "over" or b.forecast_status == "over"]
    warn = [b for b in r.budgets.rows if b.status == "warning" and b not in over]
    if r.budgets.rows:
        parts = [f"{b.name} {share(b.used)} used" for b in over + warn]
        out.append(
            (
                "Budgets",
                f"{len(over)} over, {len(warn)} past a threshold, of {len(r.budgets.rows)}"
                + (f": {', '.join(parts)}" if parts else ""),
            )
        )
    movers = [m for ms in r.movers.by.values() for m in ms[:1]]
    if movers:
        top = max(movers, key=lambda m: abs(m.change))
        out.append(
            (
                "Top mover",
                f"{top.dimension} {top.key} {signed_money(top.change, c)} ({change(top.change_percent)}) vs "
                f"{r.previous_period.label}; {_causes(top.causes[:1], c)}",
            )
        )
    if r.model_mix.rows:
        lead = r.model_mix.rows[0]
        out.append(
            (
                "Model mix",
                f"{lead.model} {share(lead.cost_share)} of LLM spend ({money(r.model_mix.total_cost, c)}), "
                f"{share(lead.token_share)} of tokens",
            )
        )
    if r.workloads.current:
        out.append(
            (
                "Training vs inference",
                ", ".join(f"{k} {money(v, c)}" for k, v in sorted(r.workloads.current.items())),
            )
        )
    over_tokens = [t for t in r.token_budgets.rows if t.status == "over"]
    if r.token_budgets.rows:
        out.append(
            (
                "Token budgets",
                f"{len(over_tokens)} of {len(r.token_budgets.rows)} over"
                + (
                    ": " + ", ".join(f"{t.project} {share(t.used)}" for t in over_tokens)
                    if over_tokens
                    else ""
                ),
            )
        )
    out.append(
        (
            "Tagging",
            f"{share(r.tagging.untagged_share)} of spend untagged ({money(r.tagging.untagged, c)}); "
            f"team coverage {share(r.tagging.coverage.get('team'))}",
        )
    )
    out.append(
        (
            "Findings",
            f"{len(r.findings.opened)} opened ({money(r.findings.opened_impact, c)}/month), "
            f"{len(r.findings.resolved)} resolved ({money(r.findings.resolved_impact, c)}/month)",
        )
    )
    rem = r.remediations
    out.append(
        (
            "Remediations",
            f"{len(rem.rows)} executed, estimated {money(rem.estimated_total, c)}/month; realised "
            f"{money(rem.realised_total, c)}/month on the {rem.measured} measured",
        )
    )
    if r.price_changes.rows:
        out.append(
            (
                "Price changes",
                f"{len(r.price_changes.rows)} affecting {r.period.label}'s usage: "
                f"{signed_money(r.price_changes.total_impact, c)} at the new prices",
            )
        )
    return out


def _quarterly_summary(r: QuarterlyReport) -> list[tuple[str, str]]:
    c = r.currency
    out = [("Spend", f"{money(r.total, c)} in {r.period.label}, {r.metric}")]
    ms = r.model_selection
    out.append(
        (
            "Model selection",
            f"{len(ms.rows)} feature(s) could use a cheaper approved model: {money(ms.total_savings, c)} "
            f"over the period ({money(ms.monthly_savings, c)} per 30 days)",
        )
    )
    if r.tagging_trend:
        first, last = r.tagging_trend[0], r.tagging_trend[-1]
        out.append(
            (
                "Tagging",
                f"untagged share {share(first.untagged_share)} in {first.period.label} -> "
                f"{share(last.untagged_share)} in {last.period.label}",
            )
        )
    rising = [x for x in r.token_efficiency.rows if (x.tokens_per_request_change or 0) > 0]
    out.append(
        (
            "Token efficiency",
            f"{len(rising)} of {len(r.token_efficiency.rows)} feature(s) use more tokens per request than "
            f"at the start of the quarter",
        )
    )
    return out


# ----- Markdown ----------------------------------------------------------------------------------------


def render_markdown(report: Report) -> str:
    """The whole review as Markdown."""
    lines = _monthly_md(report) if isinstance(report, MonthlyReport) else _quarterly_md(report)
    return "\n".join(lines).rstrip() + "\n"


def _summary_md(report: Report) -> list[str]:
    return [f"- **{label}:** {text}" for label, text in summary(report)]


def _notes_md(notes: Sequence[str]) -> list[str]:
    if not notes:
        return []
    return ["", "## Notes", "", *(f"- {n}" for n in notes)]


def _tagging_md(t: TaggingSection, title: str) -> list[str]:
    c = t.currency
    lines = _heading(title, _span(t.period), t.metric)
    lines.append(
        f"Untagged (no team): **{money(t.untagged, c)}** of {money(t.total, c)} "
        f"(**{share(t.untagged_share)}**)."
    )
    lines.append("")
    lines += _table(
        ["dimension", "share of spend carrying it"],
        [(d, share(v)) for d, v in t.coverage.items()],
        right=(1,),
    )
    if t.offenders:
        lines += ["", "Largest untagged spend:", ""]
        lines += _table(
            ["resource", "service", "account", "cost", "suggested team", "why"],
            [
                (
                    o.get("resource") or "(no resource)",
                    o.get("service"),
                    o.get("sub_account"),
                    money(o.get("cost"), c),
                    o.get("suggested_team") or "",
                    o.get("reason"),
                )
                for o in t.offenders
            ],
            right=(3,),
        )
    return lines


def _monthly_md(r: MonthlyReport) -> list[str]:
    c = r.currency
    status = "complete month" if r.complete else "month to date"
    lines = [
        f"# Monthly AI cost review: {r.month.label}",
        "",
        f"As of {r.as_of.isoformat()} ({status}; data {_span(r.period)}). Money is {r.metric}.",
        "",
        "## Summary",
        "",
        *_summary_md(r),
    ]
    t = r.teams
    lines += _heading(
        "Budget vs actual by team",
        f"{_span(t.period)}, compared with {_span(t.previous_period)}",
        t.metric + ("" if r.complete else "; forecast = month-end forecast"),
    )
    headers = ["team", "actual", "previous", "change", "%", "monthly budget", "used"]
    if t.forecast_total is not None:
        headers.append("forecast")
    rows = []
    for x in t.rows:
        row: list[object] = [
            x.team,
            money(x.actual, c),
            money(x.previous, c),
            signed_money(x.change, c),
            change(x.change_percent),
            money(x.budget, c) if x.budget is not None else "",
            share(x.budget_used) if x.budget_used is not None else "",
        ]
        if t.forecast_total is not None:
            row.append(money(x.forecast, c))
        rows.append(row)
    total: list[object] = [
        "**total**",
        money(t.total, c),
        money(t.previous_total, c),
        signed_money(t.total - t.previous_total, c),
        change(_pct_change(t.total, t.previous_total)),
        "",
        "",
    ]
    if t.forecast_total is not None:
        total.append(money(t.forecast_total, c))
    rows.append(total)
    lines += _table(headers, rows, right=tuple(range(1, len(headers))))

    b = r.budgets
    lines += _heading(
        "Budgets",
        f"each budget's own period up to the end of {r.month.label}; forecasts as of {b.as_of.isoformat()}",
        b.metric,
    )
    if b.rows:
        lines += _table(
            [
                "budget",
                "scope",
                "period",
                "amount",
                "actual",
                "used",
                "status",
                "forecast",
                "forecast status",
            ],
            [
                (
                    x.name,
                    ", ".join(f"{k}={v}" for k, v in x.scope.items()) or "organisation",
                    f"{x.period.label} (to {date.fromordinal(x.through.toordinal() - 1).isoformat()})",
                    money(x.amount, c),
                    money(x.actual, c),
                    share(x.used),
                    x.status + (f" ({', '.join(x.crossed)})" if x.crossed else ""),
                    money(x.forecast, c) if x.forecast is not None else "period over",
                    x.forecast_status or "",
                )
                for x in b.rows
            ],
            right=(3, 4, 5, 7),
        )
    else:
        lines.append("No budgets configured (budgets: in finops.yaml).")

    mv = r.movers
    lines += _heading(
        "Top movers and their root cause",
        f"{_span(mv.period)} vs {_span(mv.previous_period)}",
        f"{mv.metric}; share = part of the key's change",
    )
    for dim, movers in mv.by.items():
        lines += [f"### By {dim}", ""]
        if not movers:
            lines += ["No change.", ""]
            continue
        lines += _table(
            [dim, "this period", "previous", "change", "%", "root cause"],
            [
                (
                    m.key,
                    money(m.current, c),
                    money(m.previous, c),
                    signed_money(m.change, c),
                    change(m.change_percent),
                    _causes(m.causes, c),
                )
                for m in movers
            ],
            right=(1, 2, 3, 4),
        )
        lines.append("")

    u = r.unit_economics
    lines += _heading(
        "Unit economics per feature",
        ", ".join(_span(p) for p in u.periods),
        f"{u.metric} per 1M tokens, per request and per completed agent task; trend = last vs the month before",
    )
    if u.rows:
        labels = [p.label for p in u.periods]
        lines += _table(
            [
                "feature",
                *(f"per 1M tokens {lbl}" for lbl in labels),
                "trend",
                f"per request {labels[-1]}",
                "trend",
                f"per task {labels[-1]}",
                "trend",
                f"cost {labels[-1]}",
            ],
            [
                (
                    f.feature,
                    *(unit_money(p.cost_per_1m_tokens, c) for p in f.points),
                    change(f.change_percent.get("cost_per_1m_tokens")),
                    unit_money(f.points[-1].cost_per_request, c),
                    change(f.change_percent.get("cost_per_request")),
                    unit_money(f.points[-1].cost_per_completed_task, c),
                    change(f.change_percent.get("cost_per_completed_task")),
                    money(f.points[-1].cost, c),
                )
                for f in u.rows
            ],
            right=tuple(range(1, len(labels) + 8)),
        )
    else:
        lines.append("No LLM usage in the period.")

    mm = r.model_mix
    lines += _heading(
        "Model mix",
        _span(mm.period),
        f"LLM spend ({mm.metric}) and tokens (each call counted once) by model",
    )
    if mm.rows:
        lines += _table(
            [
                "model",
                "spend",
                "share of spend",
                f"spend {mm.previous_period.label}",
                "tokens",
                "share of tokens",
            ],
            [
                (
                    x.model,
                    money(x.cost, c),
                    share(x.cost_share),
                    money(x.previous_cost, c),
                    count(x.tokens),
                    share(x.token_share),
                )
                for x in mm.rows
            ]
            + [("**total**", money(mm.total_cost, c), "", "", count(mm.total_tokens), "")],
            right=(1, 2, 3, 4, 5),
        )
    else:
        lines.append("No LLM spend in the period.")

    w = r.workloads
    lines += _heading("Training vs inference", f"{_span(w.period)} vs {_span(w.previous_period)}", w.metric)
    keys = sorted(set(w.current) | set(w.previous))
    if keys:
        lines += _table(
            ["workload", w.period.label, w.previous_period.label, "change"],
            [
                (
                    k,
                    money(w.current.get(k, Decimal(0)), c),
                    money(w.previous.get(k, Decimal(0)), c),
                    change(_pct_change(w.current.get(k, Decimal(0)), w.previous.get(k, Decimal(0)))),
                )
                for k in keys
            ],
            right=(1, 2, 3),
        )
    else:
        lines.append("No AI spend in the period.")

    tb = r.token_budgets
    lines += _heading(
        "Token budgets",
        f"each budget's own period up to the end of {r.month.label}; forecasts as of {tb.as_of.isoformat()}",
        tb.metric,
    )
    if tb.rows:
        lines += _table(
            ["project", "period", "budget", "actual", "used", "status", "forecast", "forecast status"],
            [
                (
                    x.project,
                    x.period.label,
                    count(x.tokens),
                    count(x.actual),
                    share(x.used),
                    x.status,
                    count(x.forecast) if x.forecast is not None else "period over",
                    x.forecast_status or "",
                )
                for x in tb.rows
            ],
            right=(2, 3, 4, 6),
        )
    else:
        lines.append("No token budgets configured (token_budgets: in finops.yaml).")

    lines += _tagging_md(r.tagging, "Untagged spend and tagging coverage")

    f = r.findings
    lines += _heading("Findings opened and resolved", _span(f.period), f.metric)
    lines.append(
        f"Opened: **{len(f.opened)}** ({money(f.opened_impact, c)} per month). "
        f"Resolved: **{len(f.resolved)}** ({money(f.resolved_impact, c)} per month)."
    )
    if f.by_rule:
        lines += [""]
        lines += _table(
            ["rule", "opened", "resolved"],
            [(rule, n["opened"], n["resolved"]) for rule, n in f.by_rule.items()],
            right=(1, 2),
        )
    if f.opened:
        shown = f.opened[:TOP_FINDINGS]
        lines += ["", f"Largest opened ({len(shown)} of {len(f.opened)}; `finops findings` lists all):", ""]
        lines += _table(
            ["finding", "title", "team", "severity", "status", "per month"],
            [
                (x.id[:12], x.title, x.team or "", x.severity, x.status, money(x.monthly_impact, c))
                for x in shown
            ],
            right=(5,),
        )

    rem = r.remediations
    lines += _heading("Remediations executed", _span(rem.period), rem.metric)
    if rem.rows:
        lines += _table(
            [
                "request",
                "action",
                "measured on",
                "status",
                "executed",
                "estimated / month",
                "realised / month",
                "baseline / day",
                "after / day",
                "note",
            ],
            [
                (
                    x.request_id,
                    x.action,
                    x.measured_on,
                    x.status,
                    x.executed_at.date().isoformat(),
                    money(x.estimated_monthly, c),
                    money(x.realised_monthly, c)
                    if x.realised_monthly is not None
                    else NOT_ENOUGH_DATA
                    if x.note and x.note.startswith(NOT_ENOUGH_DATA)
                    else NA,
                    money(x.baseline_daily, c),
                    money(x.after_daily, c) + (f" ({x.days_after} days)" if x.days_after else ""),
                    x.note or "",
                )
                for x in rem.rows
            ],
            right=(5, 6, 7, 8),
        )
        lines += [
            "",
            f"Estimated {money(rem.estimated_total, c)} per month; realised {money(rem.realised_total, c)} "
            f"per month on the {rem.measured} change(s) with enough data.",
        ]
    else:
        lines.append("No remediation was executed in the month.")

    pc = r.price_changes
    lines += _heading(
        "Model price changes",
        f"changes effective {pc.changes_from.isoformat()} to {pc.changes_to.isoformat()}, "
        f"priced on the usage of {_span(pc.period)}",
        pc.metric,
    )
    if pc.rows:
        lines += _table(
            ["provider", "model", "kind", "old / 1M", "new / 1M", "source", "effective", "tokens", "impact"],
            [
                (
                    x.change.provider,
                    x.change.model,
                    x.change.kind,
                    price(x.change.old_price),
                    price(x.change.new_price),
                    x.change.source,
                    x.change.effective_from.isoformat(),
                    count(x.tokens),
                    signed_money(x.impact, c),
                )
                for x in pc.rows
            ],
            right=(3, 4, 7, 8),
        )
        lines += [
            "",
            f"Total: {signed_money(pc.total_impact, c)} on {pc.period.label}'s usage at the new prices.",
        ]
    else:
        lines.append("No model price change affected the period's usage.")
    if pc.without_usage:
        lines += ["", f"{pc.without_usage} other change(s) concern models not used in the period."]
    lines += _notes_md(r.notes)
    return lines


def _quarterly_md(r: QuarterlyReport) -> list[str]:
    c = r.currency
    status = "complete quarter" if r.complete else "quarter to date"
    lines = [
        f"# Quarterly optimisation review: {r.quarter.label}",
        "",
        f"As of {r.as_of.isoformat()} ({status}; data {_span(r.period)}). Money is {r.metric}.",
        "",
        "## Summary",
        "",
        *_summary_md(r),
    ]
    lines += _heading("Spend by month", _span(r.period), r.metric)
    lines += _table(
        ["month", "spend"],
        [(p.label, money(v, c)) for p, v in r.spend_by_month] + [("**total**", money(r.total, c))],
        right=(1,),
    )
    ms = r.model_selection
    lines += _heading("Model selection: where a smaller approved model would do", _span(ms.period), ms.metric)
    if ms.rows:
        lines += _table(
            [
                "feature",
                "environment",
                "model",
                "cheaper approved model",
                "requests",
                "avg input tokens",
                "cost now",
                "cost on target",
                "savings",
                "per 30 days",
            ],
            [
                (
                    x.feature,
                    x.environment,
                    x.model,
                    x.target,
                    count(x.requests),
                    count(x.avg_input_tokens),
                    money(x.cost_current, c),
                    money(x.cost_target, c),
                    money(x.savings, c),
                    money(x.monthly_savings, c),
                )
                for x in ms.rows
            ]
            + [
                (
                    "**total**",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    money(ms.total_savings, c),
                    money(ms.monthly_savings, c),
                )
            ],
            right=(4, 5, 6, 7, 8, 9),
        )
    else:
        lines.append("No usage where a cheaper approved model of the same family would do.")
    te = r.token_efficiency
    lines += _heading(
        "Token efficiency per feature",
        ", ".join(_span(p) for p in te.periods),
        f"{te.metric} per request and per completed agent task; trend = last month vs the first",
    )
    if te.rows:
        labels = [p.label for p in te.periods]
        lines += _table(
            [
                "feature",
                *(f"per request {lbl}" for lbl in labels),
                "trend",
                *(f"per task {lbl}" for lbl in labels),
                "trend",
            ],
            [
                (
                    x.feature,
                    *(count(p.tokens_per_request) for p in x.points),
                    change(x.tokens_per_request_change),
                    *(count(p.tokens_per_task) for p in x.points),
                    change(x.tokens_per_task_change),
                )
                for x in te.rows
            ],
            right=tuple(range(1, 2 * len(labels) + 3)),
        )
    else:
        lines.append("No LLM usage in the period.")
    if r.tagging_trend:
        lines += _heading(
            "Tagging coverage by month",
            ", ".join(_span(t.period) for t in r.tagging_trend),
            r.tagging_trend[0].metric,
        )
        dims = list(r.tagging_trend[0].coverage)
        lines += _table(
            ["month", "spend", "untagged", "untagged share", *(f"{d} coverage" for d in dims)],
            [
                (
                    t.period.label,
                    money(t.total, c),
                    money(t.untagged, c),
                    share(t.untagged_share),
                    *(share(t.coverage.get(d)) for d in dims),
                )
                for t in r.tagging_trend
            ],
            right=tuple(range(1, 4 + len(dims))),
        )
    lines += _notes_md(r.notes)
    return lines
