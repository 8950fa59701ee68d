"""`finops notify`: send each new finding to its owner in Slack (``agent.slack.outreach.notify_owners``);
``--dry-run`` shows who would get what and sends nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from agent.cli_context import _ctx, _now, run_guarded

if TYPE_CHECKING:
    from agent.slack.outreach import OutreachReport

FORMATS = ("table", "json")


def register(app: typer.Typer) -> None:
    app.command("notify")(notify)


def notify(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show who would get which finding; send and propose nothing")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
) -> None:
    """Message the owners of new findings in Slack (DM, team channel or the FinOps channel, per finops.yaml),
    each finding once, many at once as a digest; fixes are proposed for approval with the message."""
    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r}; choose table or json", param_hint="--format")

    def go() -> None:
        from agent.slack.client import make_client
        from agent.slack.outreach import notify_owners

        c = _ctx(ctx)
        settings, config, db = c.settings(), c.config(), c.database()
        token = settings.slack_bot_token
        client = make_client(settings) if not dry_run or (token and token.get_secret_value()) else None
        report = notify_owners(db, config, client, now=_now(c), dry_run=dry_run)
        _print(report, fmt)
        if report.failed:
            raise typer.Exit(1)

    run_guarded(go)


def _print(report: OutreachReport, fmt: str) -> None:
    from agent.output import dumps_json, print_table

    if fmt == "json":
        print(dumps_json(report.as_dict()))
        return
    shown = report.planned if report.dry_run else [i for i in report.items if i.outcome != "planned"]
    rows = [
        {
            "finding": i.finding[:12],
            "title": i.title if len(i.title) <= 60 else i.title[:59] + "…",
            "team": i.team or "",
            "per month": i.monthly_impact,
            "to": i.recipient or "",
            "via": i.resolved_by or "",
            "as": i.kind or "",
            "outcome": i.outcome,
            "why": i.reason or i.note or "",
        }
        for i in shown
    ]
    columns = ["finding", "title", "team", "per month", "to", "via", "as", "outcome", "why"]
    title = "Would notify (dry run: nothing sent)" if report.dry_run else "Owner notifications"
    if rows:
        print_table(rows, columns, title=title, money_columns=["per month"])
    if report.dry_run and report.skipped:
        skipped = [
            {"finding": i.finding[:12], "title": i.title[:60], "why": i.reason or ""} for i in report.skipped
        ]
        print_table(skipped, ["finding", "title", "why"], title="Not sent")
    counts = report.as_dict()["counts"]
    if report.dry_run:
        print(
            f"dry run: {counts['planned']} finding(s) in {len(report.per_destination())} destination(s), "
            f"{counts['digests']} digest(s); {counts['skipped']} skipped. Nothing was sent."
        )
    else:
        print(
            f"{counts['messages']} message(s) sent for {counts['sent']} finding(s) "
            f"({counts['digests']} digest(s)); {counts['failed']} failed (retried by the next run); "
            f"{counts['skipped']} skipped."
        )
    for note in report.notes:
        print(f"note: {note}")
