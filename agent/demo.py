"""`finops demo`: writes a realistic organisation's exports as real files, ingests them through the real
ingestion paths (no side door), and prints a short tour. Deterministic: same files, same numbers."""

from __future__ import annotations

from pathlib import Path

from agent.ingest_cli import ingest
from config.model import FinOpsConfig
from tools.store.db import Database
from tools.store.lake import Lake


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
    report = run_scan(db, open_costs(lake), config, now)
    console.print(
        f"\nScan as of {today}: {len(report.rules_run)} rules, {len(report.findings)} findings "
        f"({report.stored.new} new); AWS inventory rules need AWS access (see `finops scan`).",
        soft_wrap=True,
    )
    show_findings(db, status=["open", "notified"], team=None, kind=None, rule=None, fmt="table")
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
    )
