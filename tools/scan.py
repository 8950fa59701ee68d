"""`finops scan`: every enabled waste rule, anomaly detection and budget checks, stored as findings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import duckdb

from config.model import FinOpsConfig
from tools.alerts import Alert, budget_alerts, fire_new
from tools.findings import Finding
from tools.findings_store import UpsertResult, suppressed_fingerprints, upsert_findings
from tools.rules import load_rules, registry
from tools.rules.base import RuleContext
from tools.store.db import Database

if TYPE_CHECKING:
    from tools.anomaly import Anomaly
    from tools.cloud.inventory import Inventory

ANOMALY_RULE = "cost-anomaly"
#: anomalies that started within this many days before the scan become findings
ANOMALY_WINDOW_DAYS = 14


@dataclass
class ScanReport:
    findings: list[Finding] = field(default_factory=list)
    stored: UpsertResult = field(default_factory=UpsertResult)
    new_alerts: list[Alert] = field(default_factory=list)
    rules_run: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # rule id -> what went wrong (the scan goes on)
    skipped: list[str] = field(default_factory=list)  # rules that need a cloud inventory the scan lacks

    def by_rule(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.findings:
            out[f.rule_id] = out.get(f.rule_id, 0) + 1
        return out


def _label(a: Anomaly) -> str:
    if a.kind == "spike":
        return "Spike" if a.impact >= 0 else "Drop"
    if a.kind == "level_shift":
        return "Level shift up" if a.impact >= 0 else "Level shift down"
    return "Upward drift" if a.impact >= 0 else "Downward drift"


def anomaly_finding(a: Anomaly, now: datetime, currency: str) -> Finding:
    days = (a.end - a.start).days + 1
    monthly = abs(a.impact) / days * 30 if a.kind in ("level_shift", "drift") else abs(a.impact)
    money = not a.dimension.endswith((".tokens", ".requests"))
    unit = currency if money else a.dimension.split(".", 1)[1]
    return Finding(
        kind="anomaly",
        rule_id=ANOMALY_RULE,
        fingerprint=a.id,
        title=f"{_label(a)} in {a.dimension} {a.key} from {a.start}: "
        f"{a.actual:,.2f} vs expected {a.expected:,.2f} {unit}",
        monthly_impact=monthly.quantize(Decimal("0.01")) if money else Decimal(0),
        detected_at=now,
        scope={a.dimension: a.key} if "." not in a.dimension else {a.dimension.split(".")[0]: a.key},
        currency=currency,
        severity=a.severity,
        evidence={
            "start": a.start.isoformat(),
            "end": a.end.isoformat(),
            "kind": a.kind,
            "actual": a.actual,
            "expected": a.expected,
            "lower": a.lower,
            "upper": a.upper,
            "impact": a.impact,
            "root_cause": [
                {"dimension": c.dimension, "key": c.key, "delta": c.delta, "share": c.share}
                for c in a.root_cause
            ],
        },
        recommendation="confirm with the owner; mark it `expected` if it was planned",
    )


def usual_team(con: duckdb.DuckDBPyConnection, dimension: str, key: str) -> str | None:
    """The team that carries most of a dimension value's spend (or tokens), to own its anomalies."""
    from tools.costs import DIMENSIONS, USAGE_DIMENSIONS

    base = dimension.split(".", 1)[0]
    if base == "team":
        return key
    if "." in dimension and base in USAGE_DIMENSIONS:
        sql = (
            f"SELECT team FROM usage_allocated WHERE {USAGE_DIMENSIONS[base]} = ? AND team IS NOT NULL "
            "GROUP BY team ORDER BY sum(tokens) DESC LIMIT 1"
        )
    elif base in DIMENSIONS:
        sql = (
            f"SELECT team FROM spend WHERE {DIMENSIONS[base]} = ? AND team IS NOT NULL "
            "GROUP BY team ORDER BY sum(effective_cost) DESC LIMIT 1"
        )
    else:
        return None
    rows = con.execute(sql, [key]).fetchall()
    return str(rows[0][0]) if rows else None


def account_usual_teams(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    rows = con.execute("""
        SELECT sub_account, arg_max(team, cost) FROM (
            SELECT sub_account, team, sum(effective_cost) AS cost FROM cost_facts
            WHERE sub_account IS NOT NULL AND team IS NOT NULL GROUP BY ALL) GROUP BY sub_account
    """).fetchall()
    return {str(a): str(t) for a, t in rows}


def run_scan(
    db: Database,
    con: duckdb.DuckDBPyConnection,
    config: FinOpsConfig,
    now: datetime,
    *,
    inventory: Inventory | None = None,
    rule_ids: Sequence[str] | None = None,
    anomalies: bool = True,
    budgets: bool = True,
) -> ScanReport:
    """Evaluate, then store. A rule that fails is reported in ``errors`` and the others still run."""
    from tools.anomalies_query import find_anomalies
    from tools.forecast_query import forecast_budgets

    report = ScanReport()
    load_rules()
    from tools.intake import registered_features
    from tools.rules.unregistered_feature import REGISTER_KEY

    extra = {REGISTER_KEY: registered_features(db)}
    ctx = RuleContext(config=config, now=now, costs=con, inventory=inventory, extra=extra)
    rules = registry.build(config.rules)
    if rule_ids is not None:
        wanted = set(rule_ids)
        for rule_id in wanted:
            registry.get(rule_id)
        rules = [r for r in rules if r.id in wanted]
    for rule in rules:
        if rule.needs_inventory and inventory is None:
            report.skipped.append(rule.id)
            continue
        try:
            found = list(rule.evaluate(ctx))
        except Exception as exc:  # one broken rule must not stop the scan
            report.errors[rule.id] = f"{type(exc).__name__}: {exc}"
            continue
        report.findings.extend(found)
        report.rules_run.append(rule.id)
    if anomalies:
        today: date = now.date()
        for a in find_anomalies(
            con,
            config,
            today - timedelta(days=ANOMALY_WINDOW_DAYS),
            today,
            feedback=suppressed_fingerprints(db),
        ):
            finding = anomaly_finding(a, now, config.currency)
            team = usual_team(con, a.dimension, a.key)
            if team and "team" not in finding.scope:
                finding = replace(finding, scope={**finding.scope, "team": team})
            report.findings.append(finding)
    if budgets:
        alerts = budget_alerts(con, config, now, forecaster=forecast_budgets)
        report.findings.extend(a.finding for a in alerts)
        report.new_alerts = fire_new(db, alerts, now)
    report.stored = upsert_findings(
        db, report.findings, config, now, account_teams=account_usual_teams(con), rules_run=report.rules_run
    )
    return report
