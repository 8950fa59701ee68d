"""Findings life cycle and budget alerts, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from config.loader import parse_config
from config.model import FinOpsConfig
from tests.conftest import FixedClock
from tests.focus_builder import row, write_focus
from tools.alerts import budget_alerts, fire_new
from tools.costs import open_costs
from tools.errors import FinOpsError
from tools.findings import Finding, fingerprint
from tools.findings_store import (
    get_finding,
    list_findings,
    record_feedback,
    resolve_owner,
    upsert_findings,
)
from tools.ingest.service import Ingestor
from tools.store.db import Database
from tools.store.lake import Lake

NOW = datetime(2024, 9, 21, 8, tzinfo=UTC)


def waste(resource: str = "i-1", impact: str = "100", **kw: object) -> Finding:
    return Finding(
        kind="waste",
        rule_id="idle-gpu-instance",
        fingerprint=fingerprint("idle-gpu-instance", resource),
        title=f"idle {resource}",
        monthly_impact=Decimal(impact),
        detected_at=NOW,
        resource=resource,
        **kw,
    )  # type: ignore[arg-type]


def test_rescan_updates_instead_of_duplicating(db: Database, config: FinOpsConfig) -> None:
    first = upsert_findings(db, [waste(impact="100")], config, NOW, rules_run=["idle-gpu-instance"])
    second = upsert_findings(
        db, [waste(impact="120")], config, NOW + timedelta(days=1), rules_run=["idle-gpu-instance"]
    )
    assert (first.new, second.new, second.updated) == (1, 0, 1)
    (only,) = list_findings(db)
    assert only.monthly_impact == Decimal("120") and only.times_seen == 2 and only.status == "open"


def test_gone_waste_is_resolved_and_reopened_if_it_returns(db: Database, config: FinOpsConfig) -> None:
    upsert_findings(db, [waste("i-1"), waste("i-2")], config, NOW, rules_run=["idle-gpu-instance"])
    result = upsert_findings(
        db, [waste("i-1")], config, NOW + timedelta(days=1), rules_run=["idle-gpu-instance"]
    )
    assert result.resolved == 1
    assert {r.resource: r.status for r in list_findings(db)} == {"i-1": "open", "i-2": "resolved"}
    again = upsert_findings(db, [waste("i-2")], config, NOW + timedelta(days=2), rules_run=[])
    assert again.reopened == 1 and get_finding(db, waste("i-2").fingerprint).status == "open"


def test_feedback_suppresses_and_snoozes(db: Database, config: FinOpsConfig) -> None:
    upsert_findings(db, [waste("i-1"), waste("i-2")], config, NOW)
    record_feedback(db, waste("i-1").fingerprint[:8], "not-waste", NOW, actor="U01SEARCH1")
    snoozed = record_feedback(db, waste("i-2").fingerprint, "snooze", NOW, days=7)
    assert snoozed.snoozed_until == NOW + timedelta(days=7)
    upsert_findings(db, [waste("i-1"), waste("i-2")], config, NOW + timedelta(days=3))
    assert {r.resource: r.status for r in list_findings(db)} == {"i-1": "suppressed", "i-2": "snoozed"}
    upsert_findings(db, [waste("i-1"), waste("i-2")], config, NOW + timedelta(days=8))
    assert {r.resource: r.status for r in list_findings(db)} == {"i-1": "suppressed", "i-2": "open"}
    with pytest.raises(FinOpsError, match="snooze needs --days"):
        record_feedback(db, waste("i-2").fingerprint, "snooze", NOW)
    with pytest.raises(FinOpsError, match="no finding"):
        get_finding(db, "ffffffffff")


def test_owner_resolution_order(config: FinOpsConfig) -> None:
    assert resolve_owner(waste(tags={"Team": "search"}), config, {}).team == "search"
    assert resolve_owner(waste(tags={"user:team": "growth"}), config, {}).team == "growth"
    assert resolve_owner(waste(scope={"team": "data"}), config, {}).team == "data"
    owner = resolve_owner(waste(account="444455556666"), config, {"444455556666": "ml-research"})
    assert owner.team == "ml-research" and "usual team" in owner.reason
    assert resolve_owner(waste(), parse_config(""), {}).team is None
    fallback = resolve_owner(waste(), config, {})  # the example config names a FinOps team
    assert fallback.team == "platform" and "FinOps team" in fallback.reason


def test_budget_threshold_fires_once_per_period(
    db: Database, ingestor: Ingestor, lake: Lake, tmp_path: Path
) -> None:
    ingestor.ingest_focus(
        [
            write_focus(
                tmp_path / "b.csv",
                [
                    row("80", tags={"team": "search"}),
                    row("30", start="2024-09-10T00:00:00Z", tags={"team": "search"}),
                ],
            )
        ],
        "aws",
    )
    config = parse_config(
        "budgets:\n  - {name: s, scope: {team: search}, amount: 100, responder: U01SEARCH1}\n"
    )
    alerts = budget_alerts(open_costs(lake), config, NOW)
    keys = sorted(a.key for a in alerts)
    assert keys == ["budget:s:2024-09-01:0.75", "budget:s:2024-09-01:1.0"]
    assert all(a.finding.evidence["responder"] == "U01SEARCH1" for a in alerts)
    assert len(fire_new(db, alerts, NOW)) == 2
    assert fire_new(db, budget_alerts(open_costs(lake), config, NOW + timedelta(hours=6)), NOW) == []


def test_budget_forecast_to_exceed_alert(
    db: Database, ingestor: Ingestor, lake: Lake, tmp_path: Path, clock: FixedClock
) -> None:
    rows = [row("10", start=f"2024-09-{d:02d}T00:00:00Z", tags={"team": "search"}) for d in range(1, 11)]
    ingestor.ingest_focus([write_focus(tmp_path / "f.csv", rows)], "aws")
    config = parse_config("budgets:\n  - {name: s, scope: {team: search}, amount: 200}\n")
    alerts = budget_alerts(open_costs(lake), config, datetime(2024, 9, 11, tzinfo=UTC))
    assert [a.key for a in alerts] == ["budget-forecast:s:2024-09-01"]
    assert alerts[0].finding.evidence["forecast"] == Decimal("300.00")
