"""`finops report monthly|quarterly` (the reviews, as Markdown or JSON, optionally posted to Slack) and
`finops prices check|changes` (model price change tracking). Registered on the main app by ``register``."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent.cli_context import _ctx, _now, _parse_date, run_guarded

if TYPE_CHECKING:
    from agent.cli_context import Context
    from tools.prices import PriceChangeInfo

REPORT_FORMATS = ("md", "json")
PRICE_FORMATS = ("table", "json")

ReportFormatOpt = Annotated[str, typer.Option("--format", help="md | json")]
PostOpt = Annotated[
    bool,
    typer.Option(
        "--post",
        help="Also post it to Slack (slack.finops_channel): a summary, the full review in its thread",
    ),
]
PriceFormatOpt = Annotated[str, typer.Option("--format", help="table | json")]


def register(app: typer.Typer) -> None:
    report_app = typer.Typer(
        help="The monthly AI cost review and the quarterly optimisation review.", no_args_is_help=True
    )
    report_app.command("monthly")(report_monthly)
    report_app.command("quarterly")(report_quarterly)
    app.add_typer(report_app, name="report")
    prices_app = typer.Typer(
        help="Model price change tracking (genai-prices and finops.yaml overrides).", no_args_is_help=True
    )
    prices_app.command("check")(prices_check)
    prices_app.command("changes")(prices_changes)
    app.add_typer(prices_app, name="prices")


def _check(fmt: str, allowed: tuple[str, ...]) -> None:
    if fmt not in allowed:
        raise typer.BadParameter(f"{fmt!r}; choose {' or '.join(allowed)}", param_hint="--format")


def _emit(report: Any, fmt: str, post: bool, c: Context) -> None:
    from agent.output import dumps_json
    from tools.report_render import as_json, render_markdown

    if fmt == "json":
        typer.echo(dumps_json(as_json(report)))
    else:
        typer.echo(render_markdown(report), nl=False)
    if post:
        from agent.report_jobs import finops_channel, post_report
        from agent.slack.client import make_client

        config = c.config()
        where = post_report(make_client(c.settings()), finops_channel(config), report)
        if where.get("file_error"):
            typer.echo(
                f"posted the summary to {where['channel']} (ts {where['ts']}) but not the full review: "
                f"{where['file_error']}",
                err=True,
            )
            raise typer.Exit(1)
        typer.echo(
            f"posted to {where['channel']} (ts {where['ts']}), full review attached in the thread", err=True
        )


def report_monthly(
    ctx: typer.Context,
    month: Annotated[
        str | None, typer.Option("--month", help="YYYY-MM (default: the last full month before --as-of)")
    ] = None,
    fmt: ReportFormatOpt = "md",
    post: PostOpt = False,
) -> None:
    """The monthly AI cost review: budgets vs actual with forecast, top movers and their root cause, unit
    economics per feature, model mix, training vs inference, token budgets, tagging, findings,
    remediations with realised savings, model price changes."""
    _check(fmt, REPORT_FORMATS)

    def go() -> None:
        from tools.costs import open_costs
        from tools.report import last_full_month, month_period, monthly_report

        c = _ctx(ctx)
        config, today = c.config(), c.today()
        label = month_period(month).label if month else last_full_month(today)
        con = open_costs(c.lake(), config)
        try:
            report = monthly_report(c.database(), con, config, label, as_of=today)
        finally:
            con.close()
        _emit(report, fmt, post, c)

    run_guarded(go)


def report_quarterly(
    ctx: typer.Context,
    quarter: Annotated[
        str | None,
        typer.Option(
            "--quarter", help="YYYY-QN, e.g. 2024-Q3 (default: the last full quarter before --as-of)"
        ),
    ] = None,
    fmt: ReportFormatOpt = "md",
    post: PostOpt = False,
) -> None:
    """The quarterly optimisation review: model selection (where a cheaper approved model would do, with $),
    token efficiency per feature, tagging coverage by month."""
    _check(fmt, REPORT_FORMATS)

    def go() -> None:
        from tools.costs import open_costs
        from tools.report import last_full_quarter, quarter_period, quarterly_report

        c = _ctx(ctx)
        config, today = c.config(), c.today()
        label = quarter_period(quarter).label if quarter else last_full_quarter(today)
        con = open_costs(c.lake(), config)
        try:
            report = quarterly_report(c.database(), con, config, label, as_of=today)
        finally:
            con.close()
        _emit(report, fmt, post, c)

    run_guarded(go)


def _impact_rows(changes: list[PriceChangeInfo], c: Context, month: str) -> list[dict[str, Any]]:
    from tools.costs import open_costs
    from tools.prices import change_usage
    from tools.report import month_period

    config = c.config()
    period = month_period(month)
    con = open_costs(c.lake(), config)
    try:
        rows = []
        for change in changes:
            usage = change_usage(con, change, period, batch_discount=config.pricing.batch_discount)
            rows.append(
                {
                    **change.as_dict(),
                    "impact_month": month,
                    "impact_tokens": usage.tokens,
                    "impact": usage.impact,
                }
            )
        return rows
    finally:
        con.close()


def _print_changes(rows: list[dict[str, Any]], fmt: str, title: str, month: str) -> None:
    from agent.output import dumps_json, print_table

    if fmt == "json":
        typer.echo(dumps_json({"impact_month": month, "changes": rows}))
        return
    if not rows:
        typer.echo(f"{title}: none.")
        return
    table = [
        {
            "provider": r["provider"],
            "model": r["model"],
            "kind": r["kind"],
            "old / 1M": r["old_price"],
            "new / 1M": r["new_price"],
            "source": r["source"],
            "effective": r["effective_from"],
            f"tokens {month}": r["impact_tokens"],
            f"impact on {month}": r["impact"],
        }
        for r in rows
    ]
    print_table(
        table,
        list(table[0]),
        title=title,
        money_columns=[f"impact on {month}"],
        caption=f"impact = {month}'s tokens of the model and kind at the new price minus at the old (USD)",
    )


def prices_check(ctx: typer.Context, fmt: PriceFormatOpt = "table") -> None:
    """Compare today's model prices (finops.yaml overrides, else genai-prices) with the last ones seen for
    every model in the usage data; record the changes and show their impact on last month's usage."""
    _check(fmt, PRICE_FORMATS)

    def go() -> None:
        from tools.costs import open_costs
        from tools.prices import check_prices, list_price_snapshots
        from tools.report import last_full_month

        c = _ctx(ctx)
        config, db = c.config(), c.database()
        con = open_costs(c.lake(), config)
        try:
            changes = check_prices(db, config, _now(c), costs=con)
        finally:
            con.close()
        month = last_full_month(c.today())
        rows = _impact_rows(changes, c, month)
        _print_changes(rows, fmt, "Price changes found by this check", month)
        if fmt != "json":
            typer.echo(f"{len(list_price_snapshots(db))} model prices tracked; {len(changes)} changed.")

    run_guarded(go)


def prices_changes(
    ctx: typer.Context,
    since: Annotated[
        str | None, typer.Option("--since", help="Only changes effective from YYYY-MM-DD")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Only this model")] = None,
    fmt: PriceFormatOpt = "table",
) -> None:
    """Every recorded model price change, newest first, with its impact on last month's usage."""
    _check(fmt, PRICE_FORMATS)
    start: date | None = _parse_date(since, "--since") if since else None

    def go() -> None:
        from tools.prices import list_price_changes
        from tools.report import last_full_month

        c = _ctx(ctx)
        changes = list_price_changes(c.database(), since=start, model=model)
        month = last_full_month(c.today())
        _print_changes(_impact_rows(changes, c, month), fmt, "Recorded price changes", month)

    run_guarded(go)
