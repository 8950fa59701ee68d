"""`finops` command line. Heavy libraries are imported inside the commands that need them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    pass

from agent.cli_context import (
    Context,
    FormatOpt,
    _check_format,
    _ctx,
    _now,
    _parse_date,
    run_guarded,
)

app = typer.Typer(
    help="FinOps assistant for cloud and AI spend: ingest bills and LLM usage, allocate, ask, act with approval.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
ingest_app = typer.Typer(
    help="Load cost and usage files into the cost lake (idempotent).", no_args_is_help=True
)
app.add_typer(ingest_app, name="ingest")


@app.callback()
def main_callback(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="App database URL (env FINOPS_DATABASE_URL; default sqlite:///.finops/finops.db)"
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="finops.yaml (env FINOPS_CONFIG; default ./finops.yaml, else the shipped example)",
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Today's date for relative periods, YYYY-MM-DD (env FINOPS_AS_OF)"),
    ] = None,
) -> None:
    ctx.obj = Context(db, config, _parse_date(as_of, "--as-of") if as_of else None)


# ----- init ----------------------------------------------------------------------------------------------
@app.command()
def init(ctx: typer.Context) -> None:
    """Create the app database (or bring it up to date) and the lake folder."""

    def go() -> None:
        c = _ctx(ctx)
        c.config()  # validate early
        db = c.database()
        from tools.store.db import current_revision

        lake = c.lake()
        lake.root.mkdir(parents=True, exist_ok=True)
        typer.echo(
            f"database {db.engine.url.render_as_string(hide_password=True)} at revision "
            f"{current_revision(db.engine)}; lake {lake.root}"
        )

    run_guarded(go)


# ----- ingest --------------------------------------------------------------------------------------------
def _ingest(
    ctx: typer.Context,
    kind: str,
    files: list[Path],
    source: str | None,
    skip_bad_rows: bool,
    force: bool,
    fmt: str,
) -> None:
    def go() -> None:
        from agent.ingest_cli import run_ingest

        c = _ctx(ctx)
        run_ingest(
            c.database(),
            c.lake(),
            c.config(),
            kind,
            files,
            source or kind,
            skip_bad_rows=skip_bad_rows,
            force=force,
            fmt=fmt,
        )

    run_guarded(go)


FilesArg = Annotated[list[Path], typer.Argument(help="Files to ingest", exists=False)]
SkipOpt = Annotated[
    bool, typer.Option("--skip-bad-rows", help="Keep good rows; write bad ones to a rejects file")
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Ingest again even if the same file was ingested")]


@ingest_app.command("focus")
def ingest_focus(
    ctx: typer.Context,
    files: FilesArg,
    source: Annotated[str, typer.Option("--source", help="Name of this bill, e.g. aws-payer")],
    skip_bad_rows: SkipOpt = False,
    force: ForceOpt = False,
    fmt: FormatOpt = "table",
) -> None:
    """FOCUS 1.0-1.2 exports (CSV, CSV.gz, Parquet). All parts of one export go in one call."""
    _ingest(ctx, "focus", files, source, skip_bad_rows, force, fmt)


UsageSourceOpt = Annotated[
    str | None, typer.Option("--source", help="Source name (default: the command name)")
]


def _usage_command(kind: str, doc: str) -> None:
    def command(
        ctx: typer.Context,
        files: FilesArg,
        source: UsageSourceOpt = None,
        skip_bad_rows: SkipOpt = False,
        force: ForceOpt = False,
        fmt: FormatOpt = "table",
    ) -> None:
        _ingest(ctx, kind, files, source, skip_bad_rows, force, fmt)

    command.__doc__ = doc
    ingest_app.command(kind)(command)


_usage_command("openai-usage", "OpenAI usage API pages (GET /v1/organization/usage/completions).")
_usage_command("openai-costs", "OpenAI costs API pages (GET /v1/organization/costs): billing truth.")
_usage_command("anthropic-usage", "Anthropic usage report pages (/v1/organizations/usage_report/messages).")
_usage_command(
    "anthropic-costs", "Anthropic cost report pages (/v1/organizations/cost_report): billing truth."
)
_usage_command("otel", "OTLP/JSON span exports with gen_ai.* attributes (JSON or JSON Lines).")
_usage_command("litellm", "LiteLLM_SpendLogs exports (CSV or JSON).")


@ingest_app.command("log")
def ingest_log(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="How many runs")] = 20,
    fmt: FormatOpt = "table",
) -> None:
    """The ingestion ledger: recent runs and their files."""

    def go() -> None:
        from agent.ingest_cli import show_log

        show_log(_ctx(ctx).database(), limit, fmt)

    run_guarded(go)


# ----- queries -------------------------------------------------------------------------------------------
FromOpt = Annotated[str | None, typer.Option("--from", help="Start date, inclusive (YYYY-MM-DD)")]
ToOpt = Annotated[str | None, typer.Option("--to", help="End date, exclusive (YYYY-MM-DD)")]
PeriodOpt = Annotated[
    str | None,
    typer.Option(
        "--period", help="last-month, this-month, last-7-days, 2024-09, 2024-Q3 ... (default last-30-days)"
    ),
]
MetricOpt = Annotated[str, typer.Option("--metric", help="billed | effective | list")]
FilterOpt = Annotated[
    list[str] | None,
    typer.Option("--filter", "-f", help="dim=value[,value] (repeatable); (none) matches missing values"),
]


def _period(c: Context, period: str | None, start: str | None, end: str | None) -> Any:
    from tools.periods import resolve_period

    return resolve_period(
        period,
        _parse_date(start, "--from") if start else None,
        _parse_date(end, "--to") if end else None,
        c.today(),
    )


def _filters(items: list[str] | None) -> dict[str, list[str]]:
    from tools.errors import QueryError

    out: dict[str, list[str]] = {}
    for item in items or []:
        if "=" not in item:
            raise QueryError(f"--filter {item!r}: use dimension=value, e.g. team=search")
        dim, _, values = item.partition("=")
        out.setdefault(dim.strip(), []).extend(v.strip() for v in values.split(",") if v.strip())
    return out


@app.command()
def costs(
    ctx: typer.Context,
    by: Annotated[
        str,
        typer.Option(
            "--by",
            help="Dimensions, comma-separated: team, project, environment, "
            "feature, cost_center, owner, workload, provider, service, service_category, "
            "account, sub_account, region, resource, model",
        ),
    ] = "",
    start: FromOpt = None,
    end: ToOpt = None,
    period: PeriodOpt = None,
    metric: MetricOpt = "effective",
    filters: FilterOpt = None,
    granularity: Annotated[str | None, typer.Option("--granularity", help="day | week | month")] = None,
    top: Annotated[int | None, typer.Option("--top", help="Keep the N largest groups, fold the rest")] = None,
    compare: Annotated[bool, typer.Option("--compare", help="Compare with the previous period")] = False,
    exclude_one_offs: Annotated[
        bool, typer.Option("--exclude-one-offs", help="Drop Purchase/Tax/One-Time")
    ] = False,
    fmt: FormatOpt = "table",
) -> None:
    """Spend by any combination of dimensions over a period."""
    _check_format(fmt)

    def go() -> None:
        from agent.query_cli import show_costs
        from tools.costs import CostQuery

        c = _ctx(ctx)
        q = CostQuery(
            _period(c, period, start, end),
            tuple(b for b in by.split(",") if b.strip()),
            metric,
            _filters(filters),
            granularity,
            top,
            compare,
            exclude_one_offs,
        )  # type: ignore[arg-type]
        show_costs(c.lake(), c.config(), q, fmt)

    run_guarded(go)


@app.command("unit-costs")
def unit_costs_cmd(
    ctx: typer.Context,
    by: Annotated[
        str, typer.Option("--by", help="team, project, environment, feature, model, llm_provider, ...")
    ] = "feature",
    start: FromOpt = None,
    end: ToOpt = None,
    period: PeriodOpt = None,
    metric: MetricOpt = "effective",
    filters: FilterOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """AI unit economics: cost per 1M tokens, per request, per completed task; training vs inference."""
    _check_format(fmt)

    def go() -> None:
        from agent.query_cli import show_unit_costs
        from tools.costs import UnitCostQuery

        c = _ctx(ctx)
        q = UnitCostQuery(
            _period(c, period, start, end),
            tuple(b for b in by.split(",") if b.strip()),
            metric,
            _filters(filters),
        )  # type: ignore[arg-type]
        show_unit_costs(c.lake(), c.config(), q, fmt)

    run_guarded(go)


@app.command()
def untagged(
    ctx: typer.Context,
    start: FromOpt = None,
    end: ToOpt = None,
    period: PeriodOpt = None,
    top: Annotated[int, typer.Option("--top", help="How many offenders")] = 10,
    metric: MetricOpt = "effective",
    fmt: FormatOpt = "table",
) -> None:
    """Unallocated spend (no team), top offenders and a suggested owner for each."""
    _check_format(fmt)

    def go() -> None:
        from agent.query_cli import show_untagged

        c = _ctx(ctx)
        show_untagged(c.lake(), c.config(), _period(c, period, start, end), top, metric, fmt)

    run_guarded(go)


@app.command()
def budgets(ctx: typer.Context, metric: MetricOpt = "effective", fmt: FormatOpt = "table") -> None:
    """Budget and token-budget status vs actuals for the current period, with a run-rate forecast."""
    _check_format(fmt)

    def go() -> None:
        from agent.query_cli import show_budgets

        c = _ctx(ctx)
        show_budgets(c.lake(), c.config(), c.today(), metric, fmt)

    run_guarded(go)


@app.command()
def reconcile(ctx: typer.Context, fmt: FormatOpt = "table") -> None:
    """Per LLM provider and month: billed vs usage-estimated cost, allocated and unallocated remainder."""
    _check_format(fmt)

    def go() -> None:
        from agent.query_cli import show_reconciliation

        c = _ctx(ctx)
        show_reconciliation(c.lake(), c.config(), fmt)

    run_guarded(go)


@app.command()
def demo(
    ctx: typer.Context,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where the demo's input files are written")
    ] = Path(".finops/demo-data"),
) -> None:
    """Generate a realistic demo organisation as real export files, ingest them, and print a tour."""

    def go() -> None:
        from agent.demo import run_demo

        c = _ctx(ctx)
        run_demo(c.database(), c.lake(), c.config(), data_dir)

    run_guarded(go)


# ----- detection -----------------------------------------------------------------------------------------
findings_app = typer.Typer(help="Findings from scans: list, show, feedback.", invoke_without_command=True)
app.add_typer(findings_app, name="findings")


@app.command()
def scan(
    ctx: typer.Context,
    rule: Annotated[list[str] | None, typer.Option("--rule", help="Only these rule ids (repeatable)")] = None,
    no_cloud: Annotated[bool, typer.Option("--no-cloud", help="Do not read the AWS inventory")] = False,
    fmt: FormatOpt = "table",
) -> None:
    """Run every enabled waste rule, anomaly detection and budget checks; store the findings."""

    def go() -> None:
        from agent.detect_cli import run_scan_cli

        c = _ctx(ctx)
        run_scan_cli(c.database(), c.lake(), c.config(), _now(c), cloud=not no_cloud, rules=rule, fmt=fmt)

    run_guarded(go)


@findings_app.callback()
def findings_list(
    ctx: typer.Context,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="open, notified, snoozed, resolved, suppressed (repeatable)"),
    ] = None,
    team: Annotated[str | None, typer.Option("--team", help="Owner team")] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="waste, anomaly, budget, token-budget, governance")
    ] = None,
    rule: Annotated[str | None, typer.Option("--rule", help="Rule id")] = None,
    severity: Annotated[str | None, typer.Option("--severity", help="high, medium or low")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """List findings, largest monthly impact first."""
    if ctx.invoked_subcommand is not None:
        return
    _check_format(fmt)

    def go() -> None:
        from agent.detect_cli import show_findings

        show_findings(
            _ctx(ctx).database(),
            status=status or [],
            team=team,
            kind=kind,
            rule=rule,
            severity=severity,
            fmt=fmt,
        )

    run_guarded(go)


@findings_app.command("show")
def findings_show(
    ctx: typer.Context,
    finding_id: Annotated[str, typer.Argument(help="Finding id or prefix")],
    fmt: FormatOpt = "table",
) -> None:
    """Evidence, $ impact per month, owner and proposed remediation of one finding."""

    def go() -> None:
        from agent.detect_cli import show_finding

        show_finding(_ctx(ctx).database(), finding_id, fmt)

    run_guarded(go)


@findings_app.command("feedback")
def findings_feedback(
    ctx: typer.Context,
    finding_id: Annotated[str, typer.Argument(help="Finding id or prefix")],
    verdict: Annotated[str, typer.Argument(help="expected | not-waste | snooze | reopen")],
    days: Annotated[int | None, typer.Option("--days", help="Snooze for N days")] = None,
    actor: Annotated[str | None, typer.Option("--as", help="Who says so (Slack id or name)")] = None,
    comment: Annotated[str | None, typer.Option("--comment")] = None,
) -> None:
    """Record feedback: expected / not-waste suppress the finding for good; snooze hides it for N days."""

    def go() -> None:
        from tools.findings_store import record_feedback

        c = _ctx(ctx)
        row = record_feedback(
            c.database(), finding_id, verdict, _now(c), days=days, actor=actor, comment=comment
        )
        typer.echo(
            f"{row.fingerprint}: {row.status}"
            + (f" until {row.snoozed_until:%Y-%m-%d}" if row.snoozed_until else "")
        )

    run_guarded(go)


@app.command()
def anomalies(
    ctx: typer.Context,
    start: FromOpt = None,
    end: ToOpt = None,
    period: PeriodOpt = None,
    dimension: Annotated[list[str] | None, typer.Option("--dimension", help="Only these dimensions")] = None,
    include_one_offs: Annotated[
        bool, typer.Option("--include-one-offs", help="Also Purchase/Tax/One-Time")
    ] = False,
    fmt: FormatOpt = "table",
) -> None:
    """Cost and usage anomalies (spikes, level shifts, drifts) with expected range and root cause."""
    _check_format(fmt)

    def go() -> None:
        from agent.detect_cli import show_anomalies

        c = _ctx(ctx)
        p = _period(c, period, start, end)
        show_anomalies(c.lake(), c.config(), c.database(), p.start, p.end, dimension, include_one_offs, fmt)

    run_guarded(go)


@app.command()
def forecast(
    ctx: typer.Context,
    by: Annotated[str | None, typer.Option("--by", help="A dimension, e.g. team")] = None,
    period: Annotated[str, typer.Option("--period", help="The period to forecast the end of")] = "this-month",
    metric: MetricOpt = "effective",
    fmt: FormatOpt = "table",
) -> None:
    """Period-end spend forecast with an interval, per group and per budget (date a budget runs out)."""
    _check_format(fmt)

    def go() -> None:
        from agent.detect_cli import show_forecast

        c = _ctx(ctx)
        show_forecast(c.lake(), c.config(), by, _period(c, period, None, None), c.today(), metric, fmt)

    run_guarded(go)


GLOBAL_OPTIONS = ("--db", "--config", "--as-of")


def hoist_global_options(argv: list[str]) -> list[str]:
    """Let --db / --config / --as-of be given anywhere (``finops costs --db URL``), not only first."""
    hoisted: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        if arg in GLOBAL_OPTIONS and i + 1 < len(argv):
            hoisted += [arg, argv[i + 1]]
            i += 2
            continue
        if arg.split("=", 1)[0] in GLOBAL_OPTIONS and "=" in arg:
            hoisted.append(arg)
        else:
            rest.append(arg)
        i += 1
    return hoisted + rest


from agent.approvals_cli import register as _register_approvals  # noqa: E402
from agent.ask_cli import register as _register_ask  # noqa: E402
from agent.gateway_cli import register as _register_gateway  # noqa: E402
from agent.intake_cli import register as _register_intake  # noqa: E402
from agent.jobs_cli import register as _register_jobs  # noqa: E402
from agent.notify_cli import register as _register_notify  # noqa: E402
from agent.report_cli import register as _register_report  # noqa: E402
from agent.review_cli import register as _register_review  # noqa: E402
from agent.serve_cli import register as _register_serve  # noqa: E402

_register_approvals(app)
_register_ask(app)
_register_gateway(app)
_register_intake(app)
_register_jobs(app)
_register_review(app)
_register_report(app)
_register_notify(app)
_register_serve(app)


def main() -> None:
    try:
        app(args=hoist_global_options(sys.argv[1:]), prog_name="finops")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
