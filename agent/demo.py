"""`finops demo`: writes a realistic organisation's exports as real files, ingests them through the real
ingestion paths (no side door), and prints a short tour. Deterministic: same files, same numbers."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from agent.ingest_cli import ingest
from config.model import FinOpsConfig
from tools.store.db import Database
from tools.store.lake import Lake

if TYPE_CHECKING:
    from tools.demo_aws import DemoAws
    from tools.scan import ScanReport


def run_demo(db: Database, lake: Lake, config: FinOpsConfig, data_dir: Path) -> None:
    from rich.console import Console

    from agent.query_cli import show_budgets, show_costs, show_reconciliation, show_unit_costs, show_untagged
    from tools.costs import CostQuery, UnitCostQuery
    from tools.demo_data import DEMO_AS_OF, generate_demo_files
    from tools.periods import parse_period

    console = Console()
    console.rule("[bold]FinOps assistant demo")
    console.print(f"Writing the demo organisation's exports to {data_dir} ...")
    files = generate_demo_files(data_dir)
    plan: list[tuple[str, str, list[Path]]] = [
        *(("focus", source, paths) for source, paths in sorted(files.focus.items())),
        ("openai-costs", "openai-costs", [files.openai_costs]),
        ("openai-usage", "openai-usage", [files.openai_usage]),
        ("anthropic-usage", "anthropic-usage", [files.anthropic_usage]),
        ("otel", "otel", [files.otel_spans]),
        ("litellm", "litellm", [files.litellm_spend_logs]),
    ]
    for kind, source, paths in plan:
        report = ingest(db, lake, config, kind, paths, source)
        skipped = sum(1 for f in report.files if f.status == "skipped")
        note = f" ({skipped} file(s) already ingested)" if skipped else ""
        console.print(
            f"  ingest {kind:<16} {source:<16} {report.rows_accepted:>9,} rows{note}", soft_wrap=True
        )

    today = DEMO_AS_OF
    last_month = parse_period("last-month", today)
    mtd = parse_period("this-month", today)
    console.print(
        f"\nThe demo's clock: today is {today} (data through the day before). "
        f"Pass --as-of {today} for relative periods.\n"
    )
    show_costs(lake, config, CostQuery(last_month, ("team",), compare=True), "table")
    show_costs(lake, config, CostQuery(last_month, ("service",), top=8), "table")
    show_unit_costs(lake, config, UnitCostQuery(last_month, ("feature",)), "table")
    show_untagged(lake, config, last_month, 5, "effective", "table")
    show_budgets(lake, config, today, "effective", "table")
    show_reconciliation(lake, config, "table")

    from datetime import UTC, datetime

    from agent.detect_cli import show_findings
    from tools.costs import open_costs
    from tools.scan import run_scan

    now = datetime(today.year, today.month, today.day, tzinfo=UTC)
    report = run_scan(db, open_costs(lake, config), config, now)
    console.print(
        f"\nScan as of {today}: {len(report.rules_run)} rules, {len(report.findings)} findings "
        f"({report.stored.new} new); AWS inventory rules need AWS access (see `finops scan`, and the "
        "local AWS below).",
        soft_wrap=True,
    )
    show_findings(db, status=["open", "notified"], team=None, kind=None, rule=None, fmt="table")
    show_questions(db, lake, config, today)
    show_aws_part(db, lake, config)
    console.print(
        "\nTry next:\n"
        f"  finops costs --by team,model --from {mtd.start} --to {mtd.end} --format json\n"
        f"  finops --as-of {today} unit-costs --by feature --period last-month\n"
        f"  finops --as-of {today} untagged --period last-month\n"
        f"  finops --as-of {today} budgets\n"
        "  finops costs --by provider,service --period 2024-Q3 --top 10\n"
        f"  finops --as-of {today} anomalies --period last-30-days\n"
        f"  finops --as-of {today} forecast --by team\n"
        "  finops findings show ID    (an id from the table above)\n"
        f'  finops --as-of {today} ask "what did the search team spend on gpt-4o last week?"\n'
        f"  finops --as-of {today} report monthly        (the monthly AI cost review)\n"
        "  finops jobs list                            (what finops serve runs on schedule)\n"
        f"  FINOPS_AS_OF={today} finops serve --no-slack --host 127.0.0.1   then open http://127.0.0.1:3000/\n"
    )


DEMO_QUESTIONS = (
    "top 5 teams by AI spend last month",
    "cost per completed task for the support agent this month vs last",
    "why did Vertex AI spend jump on 2024-09-17?",
)


def show_questions(db: Database, lake: Lake, config: FinOpsConfig, today: date) -> None:
    """Three plain-language questions answered by the offline planner (what `finops ask` does without an
    LLM key), each with the `finops` command that gives the same figures."""
    from rich.console import Console

    from agent.answer import AskContext
    from agent.ask_cli import print_answer
    from agent.planner import answer_offline
    from tools.costs import open_costs

    console = Console()
    console.rule("[bold]Questions in plain language (finops ask, offline planner)")
    con = open_costs(lake, config)
    try:
        ctx = AskContext(config, con, db, today)
        for question in DEMO_QUESTIONS:
            console.print(f"\n$ finops --as-of {today} ask {question!r}", markup=False, soft_wrap=True)
            print_answer(answer_offline(question, ctx), "text")
    finally:
        con.close()


def show_aws_part(db: Database, lake: Lake, config: FinOpsConfig) -> None:
    """The six AWS waste rules against a local AWS (a moto server seeded with the demo organisation's
    instances, endpoints, volumes and metrics), read through the real AwsInventory. Skipped, with one line
    saying why, when moto is not installed."""
    from rich.console import Console

    from tools.demo_aws import moto_missing

    console = Console()
    console.rule("[bold]AWS waste rules against a local AWS")
    missing = moto_missing()
    if missing:
        console.print(f"Skipped: {missing}.", soft_wrap=True, markup=False)
        return
    from agent.demo_approvals import run_approval_loop
    from tools.demo_aws import demo_aws

    with demo_aws() as world:
        show_aws_world(db, lake, config, world)
        run_approval_loop(db, config, world)


def show_aws_world(db: Database, lake: Lake, config: FinOpsConfig, world: DemoAws) -> ScanReport:
    """Describe the local AWS, scan it with the six AWS rules (stored as findings) and print them."""
    from rich.console import Console

    from agent.output import money, print_table
    from tools.cloud.aws import AwsInventory
    from tools.costs import open_costs
    from tools.demo_aws import AWS_RULES, DAYS_AFTER, HISTORY_DAYS, SNAPSHOT_MIN_AGE_DAYS
    from tools.findings_store import finding_dict, list_findings
    from tools.rules import load_rules, registry
    from tools.scan import run_scan

    console = Console()
    load_rules()
    default_days = registry.get("old-ebs-snapshots").Params.model_fields["days"].default
    snapshot_days = config.rules.get("old-ebs-snapshots", {}).get("days", default_days)
    console.print(
        f"A moto server at {world.url} plays the demo organisation's AWS account "
        f"({', '.join(world.aws.regions)}), read with boto3 through the same AwsInventory as `finops scan`. "
        f"moto stamps resources with today's clock, so the rules judge them as of "
        f"{world.now:%Y-%m-%d %H:%M} UTC, {DAYS_AFTER} days on, with {HISTORY_DAYS} days of CloudWatch "
        f"metrics seeded before that; for this world old-ebs-snapshots reports snapshots older than "
        f"{SNAPSHOT_MIN_AGE_DAYS} days instead of {snapshot_days} (a rules: override in a copy of the config).",
        soft_wrap=True,
    )
    print_table(
        [
            {
                "resource": r.name,
                "kind": r.kind,
                "team": r.team,
                "what": r.description,
                "expected": ", ".join(r.flagged_by) or "(not waste)",
            }
            for r in world.resources
        ],
        ["resource", "kind", "team", "what", "expected"],
        title="The local AWS",
    )
    report = run_scan(
        db,
        open_costs(lake, config),
        world.scan_config(config),
        world.now,
        inventory=AwsInventory(world.aws),
        rule_ids=AWS_RULES,
        anomalies=False,
        budgets=False,
    )
    console.print(
        f"\nAWS scan as of {world.now:%Y-%m-%d}: {len(report.rules_run)} rules, {len(report.findings)} findings "
        f"({report.stored.new} new).",
        soft_wrap=True,
    )
    for rule_id, error in report.errors.items():
        console.print(f"  ERROR {rule_id}: {error}", soft_wrap=True)
    # show_findings filters by one rule; the same table, for the six AWS rules
    rows = sorted(
        (
            finding_dict(f)
            for rule_id in AWS_RULES
            for f in list_findings(db, status=["open", "notified"], rule=rule_id)
        ),
        key=lambda r: (-r["monthly_impact"], r["id"]),
    )
    for r in rows:
        r["id"] = r["id"][:10]
    print_table(
        rows,
        ["id", "team", "rule", "title", "monthly_impact", "proposed_action"],
        title=f"AWS findings: {len(rows)}, {money(sum((r['monthly_impact'] for r in rows), start=Decimal(0)))} "
        "per month at stake",
        money_columns=["monthly_impact"],
        caption="owners come from the team tag; finops findings show ID for the evidence",
    )
    return report
