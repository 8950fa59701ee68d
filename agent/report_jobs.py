"""Scheduled reviews and the price check (jobs, see ``agent.jobs_base``), and posting a review to Slack.

Jobs (``"agent.report_jobs:<name>"``), each ``fn(ctx) -> dict`` with a JSON-able summary:

- ``monthly_review``: the monthly AI cost review of the month before ``ctx.now``;
- ``quarterly_review``: the quarterly optimisation review of the quarter before ``ctx.now``;
- ``price_check``: ``tools.prices.check_prices`` (records model price changes), then a note in the FinOps
  channel when the changes of a model move last month's spend by more than ``PRICE_NOTE_THRESHOLD``.

A review is posted to ``slack.finops_channel``: a short Block Kit summary (``summary_message``), then the
full Markdown as a file in the summary's thread (``files_upload_v2``). Without a Slack client
(``ctx.slack`` None) or a FinOps channel, a job computes and returns its summary and says why it did not
post. Slack's own SDK is not imported here: the client is the one ``agent.slack.client`` made.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from agent.slack.blocks import Message, escape, fit
from tools.errors import FinOpsError

if TYPE_CHECKING:
    import duckdb
    from slack_sdk import WebClient

    from agent.jobs_base import JobContext
    from config.model import FinOpsConfig
    from tools.prices import PriceChangeInfo
    from tools.report import MonthlyReport, QuarterlyReport
    from tools.store.lake import Lake

    Report = MonthlyReport | QuarterlyReport

#: a model's price changes are announced when they move last month's spend by more than this (USD)
PRICE_NOTE_THRESHOLD = Decimal(1)
HEADER_MAX = 150
FIELD_MAX = 2000
FIELDS_PER_SECTION = 10


class ReportNotPosted(FinOpsError):
    """A review could not be posted to Slack (no channel configured)."""


# ----- Slack messages ------------------------------------------------------------------------------------


def _title(report: Report) -> str:
    from tools.report import MonthlyReport

    if isinstance(report, MonthlyReport):
        return f"Monthly AI cost review: {report.month.label}"
    return f"Quarterly optimisation review: {report.quarter.label}"


def _command(report: Report) -> str:
    from tools.report import MonthlyReport

    if isinstance(report, MonthlyReport):
        return f"finops report monthly --month {report.month.label}"
    return f"finops report quarterly --quarter {report.quarter.label}"


def summary_message(report: Report) -> Message:
    """The review's headline figures as one Block Kit message (the full review goes in its thread)."""
    from tools.report_render import summary

    title = _title(report)
    pairs = summary(report)
    period = f"{report.period.label} (complete)" if report.complete else report.period.label
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:HEADER_MAX], "emoji": True}},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": escape(f"{period}, as of {report.as_of.isoformat()}. Money: {report.metric}."),
                    "verbatim": True,
                }
            ],
        },
    ]
    fields = [
        {"type": "mrkdwn", "text": fit(f"*{escape(label)}*\n{escape(text)}", FIELD_MAX), "verbatim": True}
        for label, text in pairs
    ]
    for i in range(0, len(fields), FIELDS_PER_SECTION):
        chunk = fields[i : i + FIELDS_PER_SECTION]
        blocks.append({"type": "section", "fields": chunk})
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": escape(
                        f"The full review is attached in the thread; `{_command(report)}` prints it."
                    ),
                    "verbatim": True,
                }
            ],
        }
    )
    text = f"{title}: " + "; ".join(f"{label} {value}" for label, value in pairs[:3])
    return Message(fit(text, 3000), blocks)


def _file_name(report: Report) -> str:
    from tools.report import MonthlyReport

    if isinstance(report, MonthlyReport):
        return f"finops-monthly-review-{report.month.label}.md"
    return f"finops-quarterly-review-{report.quarter.label}.md"


def finops_channel(config: FinOpsConfig) -> str:
    channel = config.slack.finops_channel
    if not channel:
        raise ReportNotPosted(
            "no FinOps channel to post to: set slack.finops_channel in finops.yaml (a #name or a channel id)"
        )
    return channel


def post_report(client: WebClient, channel: str, report: Report) -> dict[str, Any]:
    """Post the summary to ``channel`` and the full Markdown as a file in its thread; where it went.

    A failed summary raises (nothing was posted: a retry is safe); a failed upload after it is returned
    as ``file_error`` (the summary is out: retrying would post it twice)."""
    from tools.report_render import render_markdown

    message = summary_message(report)
    posted = client.chat_postMessage(channel=channel, **message.as_kwargs())
    channel_id, ts = str(posted["channel"]), str(posted["ts"])
    try:
        upload = client.files_upload_v2(
            channel=channel_id,
            thread_ts=ts,
            content=render_markdown(report),
            filename=_file_name(report),
            title=_title(report),
        )
    except Exception as exc:  # the summary is out: a retry must not post it twice, so say it and stop
        return {"channel": channel_id, "ts": ts, "file": None, "file_error": f"{type(exc).__name__}: {exc}"}
    file = upload.get("file") or {}
    return {"channel": channel_id, "ts": ts, "file": file.get("id") if isinstance(file, dict) else None}


def price_note(changes: Sequence[tuple[PriceChangeInfo, Decimal]], month: str) -> Message:
    """A note on model price changes and what they do to ``month``'s usage (impacts: new - old)."""
    from tools.report_render import price, signed_money

    per_model: dict[tuple[str, str], list[tuple[PriceChangeInfo, Decimal]]] = {}
    for change, impact in changes:
        per_model.setdefault((change.provider, change.model), []).append((change, impact))
    lines = []
    for (provider, model), items in sorted(per_model.items()):
        total = sum((i for _, i in items), Decimal(0))
        kinds = ", ".join(f"{c.kind} {price(c.old_price)} → {price(c.new_price)}" for c, _ in items)
        source = items[0][0].source
        lines.append(
            f"• *{escape(model)}* ({escape(provider)}, {escape(source)}): {escape(kinds)} USD per 1M tokens; "
            f"{escape(month)}'s usage would cost {escape(signed_money(total))}"
        )
    total = sum((i for _, i in changes), Decimal(0))
    head = f"Model prices changed: {signed_money(total)} on {month}'s usage at the new prices"
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": fit(f"*{escape(head)}*", 3000), "verbatim": True},
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": fit("\n".join(lines), 3000, "…"), "verbatim": True},
        },
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": escape("`finops prices changes` lists every recorded change."),
                    "verbatim": True,
                }
            ],
        },
    ]
    return Message(fit(head, 3000), blocks)


# ----- jobs ----------------------------------------------------------------------------------------------


@contextmanager
def _costs(lake: Lake, config: FinOpsConfig) -> Iterator[duckdb.DuckDBPyConnection]:
    from tools.costs import open_costs

    con = open_costs(lake, config)
    try:
        yield con
    finally:
        con.close()


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(Decimal("0.01")))


def _deliver(ctx: JobContext, report: Report) -> dict[str, Any]:
    if ctx.slack is None:
        return {"posted": False, "note": "Slack is not configured (SLACK_BOT_TOKEN): computed, not posted"}
    if not ctx.config.slack.finops_channel:
        return {"posted": False, "note": "no slack.finops_channel in finops.yaml: computed, not posted"}
    return {"posted": True, **post_report(ctx.slack, ctx.config.slack.finops_channel, report)}


def monthly_review(ctx: JobContext) -> dict[str, Any]:
    """The monthly AI cost review of the month before ``ctx.now``, posted to the FinOps channel."""
    from tools.report import last_full_month, monthly_report

    month = last_full_month(ctx.today)
    with _costs(ctx.lake, ctx.config) as con:
        report = monthly_report(ctx.db, con, ctx.config, month, as_of=ctx.today)
    return {
        "month": month,
        "total": _money(report.total),
        "previous_total": _money(report.previous_total),
        "budgets_over": [b.name for b in report.budgets.rows if b.status == "over"],
        "findings_opened": len(report.findings.opened),
        "findings_resolved": len(report.findings.resolved),
        "remediations": len(report.remediations.rows),
        "price_changes": len(report.price_changes.rows),
        **_deliver(ctx, report),
    }


def quarterly_review(ctx: JobContext) -> dict[str, Any]:
    """The quarterly optimisation review of the quarter before ``ctx.now``, posted to the FinOps channel."""
    from tools.report import last_full_quarter, quarterly_report

    quarter = last_full_quarter(ctx.today)
    with _costs(ctx.lake, ctx.config) as con:
        report = quarterly_report(ctx.db, con, ctx.config, quarter, as_of=ctx.today)
    return {
        "quarter": quarter,
        "total": _money(report.total),
        "model_switches": len(report.model_selection.rows),
        "model_selection_monthly_savings": _money(report.model_selection.monthly_savings),
        **_deliver(ctx, report),
    }


#: recorded price changes are announced in Slack once; this long after their date they are no longer news
PRICE_NOTE_WINDOW_DAYS = 90


def _announced_key(change: Any) -> str:
    return f"price-note:{change.id}"


def price_check(ctx: JobContext) -> dict[str, Any]:
    """Record model price changes; tell the FinOps channel when they move last month's spend by > $1.

    Every recorded change not yet announced is considered — not only this run's — so a post that failed, or
    Slack configured later, loses no note; a change is marked announced (``alert_state``) once its note is
    posted, or when it does not move last month's spend enough to be worth one."""
    from datetime import timedelta

    from sqlalchemy import select

    from tools.prices import change_usage, check_prices, list_price_changes
    from tools.report import last_full_month, month_period
    from tools.store.models import AlertState

    month = last_full_month(ctx.today)
    period = month_period(month)
    with _costs(ctx.lake, ctx.config) as con:
        changes = check_prices(ctx.db, ctx.config, ctx.now, costs=con)
        recorded = list_price_changes(ctx.db, since=ctx.today - timedelta(days=PRICE_NOTE_WINDOW_DAYS))
        with ctx.db.session() as s:
            keys = [_announced_key(c) for c in recorded]
            done = (
                set(s.scalars(select(AlertState.alert_key).where(AlertState.alert_key.in_(keys))))
                if keys
                else set()
            )
        pending = [c for c in recorded if _announced_key(c) not in done]
        impacts = [
            (c, change_usage(con, c, period, batch_discount=ctx.config.pricing.batch_discount).impact)
            for c in pending
        ]
    per_model: dict[str, Decimal] = {}
    for change, impact in impacts:
        key = f"{change.provider}/{change.model}"
        per_model[key] = per_model.get(key, Decimal(0)) + impact
    material = {k for k, v in per_model.items() if abs(v) > PRICE_NOTE_THRESHOLD}
    noted = [(c, i) for c, i in impacts if f"{c.provider}/{c.model}" in material]
    quiet = [c for c, _ in impacts if f"{c.provider}/{c.model}" not in material]
    out: dict[str, Any] = {
        "changes": len(changes),
        "month": month,
        "impact": {k: _money(v) for k, v in sorted(per_model.items())},
        "posted": False,
    }
    _mark_announced(ctx, quiet)
    if not noted:
        return out
    if ctx.slack is None or not ctx.config.slack.finops_channel:
        out["note"] = "price changes moved last month's spend, but Slack or slack.finops_channel is not set"
        return out
    message = price_note(noted, month)
    posted = ctx.slack.chat_postMessage(channel=ctx.config.slack.finops_channel, **message.as_kwargs())
    _mark_announced(ctx, [c for c, _ in noted])
    out.update(posted=True, channel=posted.get("channel"), ts=posted.get("ts"))
    return out


def _mark_announced(ctx: JobContext, changes: list[Any]) -> None:
    from tools.store.models import AlertState

    if not changes:
        return
    with ctx.db.session() as s:
        for c in changes:
            s.add(
                AlertState(alert_key=_announced_key(c), fingerprint=f"price-change-{c.id}", fired_at=ctx.now)
            )
