"""Governance intake: the AI service register (CLI, audited), the unregistered-feature rule, and the LiteLLM
export of finops.yaml's rate limits and budgets."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from approvals import audit
from config.loader import parse_config
from config.model import FinOpsConfig
from tests.usage_builder import ingest, usage
from tools import llm_policy
from tools.costs import open_costs
from tools.ingest.service import Ingestor
from tools.intake import IntakeError, list_services, register_service, registered_features, validate
from tools.rules import load_rules, registry
from tools.rules.base import RuleContext
from tools.rules.unregistered_feature import REGISTER_KEY
from tools.store.db import Database
from tools.store.lake import Lake

NOW = datetime(2024, 9, 21, 8, tzinfo=UTC)


def _reg(config: FinOpsConfig, **over: str) -> object:
    fields = {
        "feature": "support-chat",
        "environment": "prod",
        "team": "support",
        "owner": "U01SUPPRT1",
        "use_case": "answers customer questions",
        "models": "gpt-4o-mini",
        "est_monthly_spend": "2500",
        **over,
    }
    return validate(config, **fields)  # type: ignore[arg-type]


def test_validation_lists_every_problem_and_what_to_give(config: FinOpsConfig) -> None:
    with pytest.raises(IntakeError) as err:
        _reg(config, feature="", team="marketing", models=" ", est_monthly_spend="lots")
    text = str(err.value)
    for expected in (
        "feature ''",
        "team 'marketing' is not in finops.yaml",
        "models:",
        "estimated monthly spend",
    ):
        assert expected in text


def test_an_unapproved_model_registers_with_a_warning(config: FinOpsConfig) -> None:
    reg = validate(
        config,
        feature="support-chat",
        environment="prod",
        team="support",
        owner="ben@example.com",
        use_case="answers customer questions",
        models="gpt-4o-mini, o1-preview",
        est_monthly_spend=100,
    )
    assert reg.models == ("gpt-4o-mini", "o1-preview")
    assert len(reg.warnings) == 1 and "o1-preview is not approved for prod" in reg.warnings[0]


def test_cli_registers_updates_lists_and_retires_with_audit(
    sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FINOPS_CONFIG", raising=False)
    url = str(sqlite_db.engine.url)
    runner = CliRunner()
    args = ["--db", url, "intake", "register", "--feature", "ticket-summary", "--environment", "prod"]
    args += ["--team", "support", "--owner", "ben@example.com", "--use-case", "summarises tickets"]
    args += ["--models", "gpt-4o-mini", "--monthly-spend", "$1,200", "--as", "U01SUPPRT1", "--format", "json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    created = json.loads(first.stdout)
    assert (
        created["created"] is True and created["est_monthly_spend"] == 1200 and created["team"] == "support"
    )
    again = runner.invoke(
        app, [*args[:-4], "--monthly-spend", "1500", "--as", "U01SUPPRT1", "--format", "json"]
    )
    assert again.exit_code == 0 and json.loads(again.stdout)["created"] is False
    listed = runner.invoke(app, ["--db", url, "intake", "list", "--format", "json"])
    (row,) = json.loads(listed.stdout)
    assert row["est_monthly_spend"] == 1500 and row["models"] == ["gpt-4o-mini"]
    retired = runner.invoke(app, ["--db", url, "intake", "retire", "ticket-summary", "--environment", "prod"])
    assert retired.exit_code == 0, retired.output
    assert list_services(sqlite_db, status="registered") == []
    bad = runner.invoke(
        app,
        [
            "--db",
            url,
            "intake",
            "register",
            "--feature",
            "x",
            "--environment",
            "prod",
            "--team",
            "nobody",
            "--owner",
            "a",
            "--use-case",
            "abc",
            "--models",
            "m",
            "--monthly-spend",
            "1",
        ],
    )
    assert bad.exit_code == 2 and "team 'nobody' is not in finops.yaml" in bad.stderr
    with sqlite_db.session() as s:
        events = [e.event for e in audit.list_entries(s, event="intake.")]
        assert events == ["intake.registered", "intake.updated", "intake.retired"]
        assert audit.verify(s).ok


def _usage(ingestor: Ingestor, tmp_path: Path) -> None:
    records = []
    for day in range(1, 21):
        d = f"2024-09-{day:02d}"
        records.append(
            usage(
                d,
                model="gpt-4o-mini",
                input_tokens=200_000,
                output=20_000,
                requests=100,
                cost="30",
                feature="support-chat",
                environment="prod",
                team="support",
            )
        )
        records.append(
            usage(
                d,
                model="gpt-4o",
                input_tokens=100_000,
                output=10_000,
                requests=50,
                cost="12",
                feature="shadow-bot",
                environment="prod",
                team="growth",
            )
        )
        records.append(
            usage(
                d,
                model="gpt-4o",
                input_tokens=1_000,
                output=100,
                requests=1,
                cost="0.01",
                feature="tiny",
                environment="dev",
                team="growth",
            )
        )
    ingest(ingestor, tmp_path, records)


def _run(lake: Lake, config: FinOpsConfig, register: frozenset[tuple[str, str]]) -> list[object]:
    load_rules()
    cls = registry.get("unregistered-feature")
    ctx = RuleContext(config=config, now=NOW, costs=open_costs(lake, config), extra={REGISTER_KEY: register})
    return list(cls(cls.Params()).evaluate(ctx))


def test_unregistered_feature_is_silent_while_nobody_uses_the_register(
    ingestor: Ingestor, lake: Lake, config: FinOpsConfig, tmp_path: Path
) -> None:
    _usage(ingestor, tmp_path)
    assert _run(lake, config, frozenset()) == []


def test_usage_from_an_unregistered_feature_is_a_governance_finding(
    ingestor: Ingestor, lake: Lake, config: FinOpsConfig, tmp_path: Path, sqlite_db: Database
) -> None:
    _usage(ingestor, tmp_path)
    register_service(sqlite_db, config, _reg(config), actor="U01SUPPRT1", channel="cli", now=NOW)  # type: ignore[arg-type]
    (finding,) = _run(lake, config, registered_features(sqlite_db))
    assert finding.rule_id == "unregistered-feature" and finding.kind == "governance"  # type: ignore[attr-defined]
    assert finding.resource == "shadow-bot" and finding.scope["team"] == "growth"  # type: ignore[attr-defined]
    # 20 days x $12 = $240 in the 30-day window -> $240 a month; the $0.20 "tiny" feature is under min_monthly
    assert finding.monthly_impact == Decimal("240.00")  # type: ignore[attr-defined]
    assert "finops intake register --feature shadow-bot" in (finding.recommendation or "")  # type: ignore[attr-defined]
    star = frozenset({("support-chat", "prod"), ("shadow-bot", "*")})
    assert _run(lake, config, star) == []


def test_scan_passes_the_register_to_the_rule(
    ingestor: Ingestor, lake: Lake, config: FinOpsConfig, tmp_path: Path, sqlite_db: Database
) -> None:
    from tools.findings_store import list_findings
    from tools.scan import run_scan

    _usage(ingestor, tmp_path)
    register_service(sqlite_db, config, _reg(config), actor="U01SUPPRT1", channel="cli", now=NOW)  # type: ignore[arg-type]
    run_scan(
        sqlite_db,
        open_costs(lake, config),
        config,
        NOW,
        rule_ids=["unregistered-feature"],
        anomalies=False,
        budgets=False,
    )
    assert [f.resource for f in list_findings(sqlite_db, rule="unregistered-feature")] == ["shadow-bot"]


def test_litellm_export_carries_finops_yaml_limits_and_team_budgets(db: Database) -> None:
    cfg = parse_config(
        """
approved_models: {prod: [gpt-4o-mini]}
teams: [{name: search, owners: [{slack_id: U01SEARCH1}]}, {name: growth, owners: [{slack_id: U01GROWTH1}]}]
budgets:
  - {name: search-monthly, scope: {team: search}, amount: 60000}
  - {name: growth-q, scope: {team: growth}, amount: 9000, period: quarterly}
rate_limits:
  - {team: search, environment: prod, tpm: 2000000, rpm: 5000}
  - {team: growth, environment: prod, tpm: 200000, rpm: 300, max_budget: 8000}
"""
    )
    prod = llm_policy.litellm_config(db, cfg, "prod")
    teams = {t["team_alias"]: t for t in prod["teams"]}
    assert teams["search"]["tpm_limit"] == 2_000_000 and teams["search"]["max_budget"] == 60000.0
    assert teams["search"]["models"] == ["gpt-4o-mini"] and teams["search"]["budget_duration"] == "30d"
    assert teams["growth"]["max_budget"] == 8000.0  # the quarterly budget is not a monthly gateway budget
    # a limit the product set (an approved remediation) wins over the file's, field by field
    llm_policy.set_limits(db, "team:search", "prod", rpm=100, updated_by="U01SEARCH1", now=NOW)
    teams = {t["team_alias"]: t for t in llm_policy.litellm_config(db, cfg, "prod")["teams"]}
    assert teams["search"]["rpm_limit"] == 100 and teams["search"]["tpm_limit"] == 2_000_000
    assert teams["search"]["max_budget"] == 60000.0
    # one gateway for every environment: the team's monthly budget once, on its "*" entry (not once per env)
    every = {t["team_alias"]: t for t in llm_policy.litellm_config(db, cfg)["teams"]}
    assert every["search"]["max_budget"] == 60000.0 and "max_budget" not in every["search@prod"]


def test_in_slack_only_the_owning_team_may_change_a_registration(
    sqlite_db: Database, lake: Lake, config: FinOpsConfig
) -> None:
    from agent.slack.app import record_intake
    from tests.fakes.slack_server import FakeSlack
    from tests.integration.slack_harness import make_deps
    from tools.errors import FinOpsError

    values = {
        "feature": "support-chat",
        "environment": "prod",
        "team": "support",
        "owner": "U01SUPPRT1",
        "use_case": "answers customer questions",
        "models": "gpt-4o-mini",
        "est_monthly_spend": "2500",
    }
    with FakeSlack() as fake:
        deps = make_deps(fake, sqlite_db, lake, config)
        record_intake(deps, values, "U0SOMEONE")  # anyone may register a new feature
        with pytest.raises(FinOpsError, match="already registered by team support"):
            record_intake(deps, {**values, "team": "growth", "owner": "U0OTHER"}, "U0OTHER")
        record_intake(deps, {**values, "est_monthly_spend": "3000"}, "U0SOMEONE")  # who registered it may
        record_intake(deps, {**values, "est_monthly_spend": "3100"}, "U01SUPPRT1")  # and the team's owner
    (record,) = list_services(sqlite_db)
    assert record.team == "support" and record.est_monthly_spend == Decimal("3100")
