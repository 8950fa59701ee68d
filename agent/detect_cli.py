"""CLI side of detection: scan, findings, anomalies, forecast."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from agent.output import dumps_json, money, print_table, to_csv
from config.model import FinOpsConfig
from tools.costs import open_costs
from tools.store.db import Database
from tools.store.lake import Lake


def make_inventory(config: FinOpsConfig, cloud: bool) -> tuple[Any, str]:
    """The AWS inventory when credentials (or a local endpoint) are configured, else None and why."""
    if not cloud:
        return None, "cloud inventory skipped (--no-cloud)"
    import boto3

    session = boto3.Session(profile_name=config.aws.profile) if config.aws.profile else boto3.Session()
    if session.get_credentials() is None:
        return None, "cloud inventory skipped: no AWS credentials (set AWS_PROFILE or AWS_ACCESS_KEY_ID)"
    from tools.cloud.aws import AwsInventory

    where = config.aws.endpoint_url or "AWS"
    return AwsInventory(config.aws), f"cloud inventory from {where} ({', '.join(config.aws.regions)})"


def run_scan_cli(
    db: Database,
    lake: Lake,
    config: FinOpsConfig,
    now: datetime,
    *,
    cloud: bool,
    rules: list[str] | None,
    fmt: str,
) -> None:
    from tools.scan import run_scan

    inventory, note = make_inventory(config, cloud)
    report = run_scan(db, open_costs(lake, config), config, now, inventory=inventory, rule_ids=rules)
    payload = {
        "as_of": now.isoformat(timespec="seconds"),
        "cloud": note,
        "rules_run": report.rules_run,
        "rules_skipped": report.skipped,
        "errors": report.errors,
        "findings": len(report.findings),
        "by_rule": report.by_rule(),
        "stored": vars(report.stored),
        "new_alerts": [a.finding.title for a in report.new_alerts],
    }
    if fmt == "json":
        print(dumps_json(payload))
        return
    print(f"scan as of {payload['as_of']}: {note}")
    print(
        f"{len(report.rules_run)} rules run; {len(report.findings)} findings "
        f"({report.stored.new} new, {report.stored.updated} updated, {report.stored.reopened} reopened, "
        f"{report.stored.resolved} resolved)"
    )
    for rule_id, n in sorted(report.by_rule().items()):
        print(f"  {rule_id:<32} {n}")
    if report.skipped:
        print(f"  skipped (no cloud inventory): {', '.join(report.skipped)}")
    for rule_id, err in report.errors.items():
        print(f"  ERROR {rule_id}: {err}")
    for alert in report.new_alerts:
        print(f"  ALERT {alert.finding.title}")
    print("List them with `finops findings`; details with `finops findings show ID`.")


def show_findings(
    db: Database,
    *,
    status: list[str],
    team: str | None,
    kind: str | None,
    rule: str | None,
    fmt: str,
    severity: str | None = None,
) -> None:
    from tools.findings_store import finding_dict, list_findings

    rows = [
        finding_dict(r)
        for r in list_findings(db, status=status, team=team, kind=kind, rule=rule, severity=severity)
    ]
    cols = ["id", "status", "team", "rule", "title", "monthly_impact", "proposed_action"]
    if fmt == "json":
        print(dumps_json(rows))
    elif fmt == "csv":
        print(to_csv(rows, [*cols, "kind", "severity", "resource", "currency", "last_seen"]), end="")
    else:
        for r in rows:
            r["id"] = r["id"][:10]
        total = sum((r["monthly_impact"] for r in rows), start=0)
        print_table(
            rows,
            cols,
            title=f"Findings: {len(rows)}, {money(total)} per month at stake",
            money_columns=["monthly_impact"],
            caption="finops findings show ID for the evidence",
        )


def show_finding(db: Database, finding_id: str, fmt: str) -> None:
    from tools.findings_store import finding_dict, get_finding

    d = finding_dict(get_finding(db, finding_id), full=True)
    if fmt == "json":
        print(dumps_json(d))
        return
    print(f"{d['title']}\n")
    for key in (
        "id",
        "status",
        "kind",
        "rule",
        "severity",
        "team",
        "owner_reason",
        "resource",
        "resource_kind",
        "account",
        "scope",
        "first_seen",
        "last_seen",
        "times_seen",
        "snoozed_until",
    ):
        if d.get(key) not in (None, {}, ""):
            print(f"  {key:<14} {d[key]}")
    print(f"  {'impact':<14} {money(d['monthly_impact'], d['currency'])} per month")
    print("\nEvidence:")
    print("  " + json.dumps(json.loads(dumps_json(d["evidence"])), indent=2).replace("\n", "\n  "))
    if d["proposed_action"]:
        print(f"\nProposed fix: {d['proposed_action']} {json.dumps(d['action_params'])}")
    if d["recommendation"]:
        print(f"Recommendation: {d['recommendation']}")


def show_anomalies(
    lake: Lake,
    config: FinOpsConfig,
    db: Database,
    start: date,
    end: date,
    dimensions: list[str] | None,
    include_one_offs: bool,
    fmt: str,
) -> None:
    from tools.anomalies_query import find_anomalies
    from tools.findings_store import suppressed_fingerprints

    found = find_anomalies(
        open_costs(lake, config),
        config,
        start,
        end,
        dimensions=dimensions,
        include_one_offs=include_one_offs,
        feedback=suppressed_fingerprints(db),
    )
    rows = [
        {
            "id": a.id,
            "start": a.start.isoformat(),
            "end": a.end.isoformat(),
            "dimension": a.dimension,
            "key": a.key,
            "kind": a.kind,
            "actual": a.actual,
            "expected": a.expected,
            "lower": a.lower,
            "upper": a.upper,
            "impact": a.impact,
            "severity": a.severity,
            "root_cause": [
                {"dimension": c.dimension, "key": c.key, "delta": c.delta, "share": c.share}
                for c in a.root_cause
            ],
        }
        for a in found
    ]
    if fmt == "json":
        print(dumps_json(rows))
        return
    table = [
        {
            **r,
            "id": r["id"][:10],
            "root_cause": "; ".join(
                f"{c['dimension']}={c['key']} {c['share']:.0%}" for c in r["root_cause"][:2]
            ),
        }
        for r in rows
    ]
    cols = [
        "id",
        "start",
        "end",
        "dimension",
        "key",
        "kind",
        "actual",
        "expected",
        "impact",
        "severity",
        "root_cause",
    ]
    if fmt == "csv":
        print(to_csv(table, cols), end="")
    else:
        print_table(
            table,
            cols,
            title=f"Anomalies {start} to {end}",
            currency=config.currency,
            money_columns=["actual", "expected", "impact"],
        )


def show_forecast(
    lake: Lake, config: FinOpsConfig, by: str | None, period: Any, as_of: date, metric: str, fmt: str
) -> None:
    from tools.forecast_query import forecast_budgets, forecast_by

    con = open_costs(lake, config)
    rows = forecast_by(con, by, period, as_of, metric=metric, config=config)
    budgets = forecast_budgets(con, config, as_of, metric=metric)
    if fmt == "json":
        print(
            dumps_json(
                {
                    "as_of": as_of.isoformat(),
                    "metric": metric,
                    "currency": config.currency,
                    "period": period.as_dict(),
                    "group_by": [by] if by else [],
                    "rows": rows,
                    "budgets": budgets,
                }
            )
        )
        return
    cols = ([by] if by else []) + ["actual_to_date", "forecast", "lower", "upper", "method"]
    if fmt == "csv":
        print(to_csv(rows, cols), end="")
        return
    print_table(
        rows,
        cols,
        title=f"Forecast for {period.start} to {period.end} as of {as_of}",
        currency=config.currency,
        money_columns=["actual_to_date", "forecast", "lower", "upper"],
    )
    if budgets:
        bcols = [
            c
            for c in ("name", "amount", "actual", "forecast", "lower", "upper", "runs_out_on")
            if c in budgets[0]
        ]
        print_table(
            budgets,
            bcols,
            title="Budgets",
            currency=config.currency,
            money_columns=["amount", "actual", "forecast", "lower", "upper"],
        )
