"""The demo's local AWS: a moto server seeded by tools/demo_aws.py, read by the real AwsInventory over HTTP.
Every AWS waste rule finds what it is meant to find there, busy resources are left alone, findings are
owned by the team in their tags, and the demo says how to get moto when it is missing."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from agent.demo import show_aws_part, show_aws_world
from config.model import FinOpsConfig
from tools.cloud.aws import AwsInventory
from tools.demo_aws import AWS_RULES, MOTO_MISSING, SNAPSHOT_MIN_AGE_DAYS, DemoAws, demo_aws, fake_aws_env
from tools.findings import Finding
from tools.findings_store import list_findings, resolve_owner
from tools.rules import load_rules, registry
from tools.rules.base import RuleContext
from tools.store.db import Database
from tools.store.lake import Lake


@pytest.fixture(scope="module")
def world() -> Iterator[DemoAws]:
    with demo_aws() as w:
        yield w


def scan(world: DemoAws, config: FinOpsConfig) -> list[Finding]:
    """The six AWS rules, with the demo's rule settings, as the demo runs them (without storing)."""
    load_rules()
    demo_config = world.scan_config(config)
    ctx = RuleContext(config=demo_config, now=world.now, inventory=AwsInventory(world.aws))
    return [
        f for rule in registry.build(demo_config.rules) if rule.id in AWS_RULES for f in rule.evaluate(ctx)
    ]


def test_demo_aws_every_aws_rule_flags_exactly_its_resources(world: DemoAws, config: FinOpsConfig) -> None:
    findings = scan(world, config)
    assert {f.rule_id for f in findings} == set(AWS_RULES)
    for r in world.resources:
        rules = sorted(f.rule_id for f in findings if f.resource == r.id)
        assert rules == sorted(r.flagged_by), (r.key, rules)
    assert {f.resource for f in findings} <= {r.id for r in world.resources}  # nothing moto made itself
    assert all(f.monthly_impact > 0 and f.account == "123456789012" for f in findings)
    by_rule = {f.rule_id: f for f in findings if f.rule_id != "unattached-ebs-volume"}
    assert by_rule["idle-gpu-instance"].monthly_impact == Decimal("734.38")  # g5.xlarge 1.006 $/h x 730 h
    assert by_rule["overprovisioned-instance"].action_params["target_type"] == "c6i.4xlarge"
    assert by_rule["idle-inference-endpoint"].action_params["endpoint_name"] == "churn-model-v2"


def test_demo_aws_busy_resources_are_judged_and_not_flagged(world: DemoAws, config: FinOpsConfig) -> None:
    busy_instance, busy_endpoint = world.resource("busy_training"), world.resource("busy_endpoint")
    inventory = AwsInventory(world.aws)
    instance = next(i for i in inventory.instances() if i.id == busy_instance.id)
    endpoint = next(e for e in inventory.endpoints() if e.arn == busy_endpoint.id)
    # running, old enough for every window and with metrics: not flagged because they are busy
    assert instance.state == "running" and instance.type == "p4d.24xlarge" and instance.gpu
    assert endpoint.status == "InService"
    flagged = {f.resource for f in scan(world, config)}
    assert busy_instance.id not in flagged and busy_endpoint.id not in flagged
    assert busy_instance.flagged_by == () and busy_endpoint.flagged_by == ()


def test_demo_aws_findings_are_owned_by_the_team_in_their_tags(world: DemoAws, config: FinOpsConfig) -> None:
    teams = {r.id: r.team for r in world.resources}
    for f in scan(world, config):
        owner = resolve_owner(f, config, {})
        assert owner.team == teams[f.resource] == f.scope["team"]
        assert owner.reason == f"tag team={owner.team}"


def test_demo_aws_part_stores_and_prints_owned_findings(
    world: DemoAws,
    config: FinOpsConfig,
    sqlite_db: Database,
    lake: Lake,
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = show_aws_world(sqlite_db, lake, config, world)
    assert sorted(report.rules_run) == sorted(AWS_RULES) and report.errors == {}
    assert report.stored.new == len(report.findings) == 7
    rows = [row for rule_id in AWS_RULES for row in list_findings(sqlite_db, rule=rule_id)]
    teams = {r.id: r.team for r in world.resources}
    assert sorted((row.team, row.owner_reason) for row in rows) == sorted(
        (teams[str(row.resource)], f"tag team={teams[str(row.resource)]}") for row in rows
    )
    out = capsys.readouterr().out
    assert "AWS findings: 7" in out and "6 rules, 7 findings (7 new)" in out
    assert f"older than {SNAPSHOT_MIN_AGE_DAYS} days instead of 180" in out  # the override is said
    for rule_id in AWS_RULES:
        assert rule_id in out
    # a second scan of the same world finds the same findings (moto's ids are seeded)
    again = show_aws_world(sqlite_db, lake, config, world)
    assert again.stored.new == 0 and again.stored.updated == 7
    # a scan without cloud access skips the AWS rules: it must not resolve what it could not look at
    from tools.costs import open_costs
    from tools.scan import run_scan

    blind = run_scan(sqlite_db, open_costs(lake, config), config, world.now, anomalies=False, budgets=False)
    assert not set(AWS_RULES) & set(blind.rules_run) and set(AWS_RULES) <= set(blind.skipped)
    assert blind.stored.resolved == 0
    assert (
        len([r for rule_id in AWS_RULES for r in list_findings(sqlite_db, rule=rule_id, status=["open"])])
        == 7
    )


def test_demo_aws_credentials_live_only_inside_the_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "someone-else")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "real-looking-key")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    before = dict(os.environ)
    with fake_aws_env():
        assert "AWS_PROFILE" not in os.environ
        assert os.environ["AWS_ACCESS_KEY_ID"] == "demo-access-key" and os.environ["AWS_SESSION_TOKEN"]
        assert "127.0.0.1" in os.environ["NO_PROXY"]
    assert dict(os.environ) == before


def test_demo_without_moto_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
    config: FinOpsConfig,
    sqlite_db: Database,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "moto.server", None)  # `from moto.server import ...` raises ImportError
    show_aws_part(sqlite_db, Lake(tmp_path / "lake"), config)
    out = " ".join(capsys.readouterr().out.split())
    assert MOTO_MISSING in out and "pip install 'moto[server]'" in out
    assert list_findings(sqlite_db) == []


def test_demo_approval_loop_stops_and_restarts_the_notebook_with_an_intact_trail(
    world: DemoAws,
    config: FinOpsConfig,
    sqlite_db: Database,
    lake: Lake,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from agent.demo_approvals import OUTSIDER, instance_state, run_approval_loop
    from approvals import audit

    show_aws_world(sqlite_db, lake, config, world)
    result = run_approval_loop(sqlite_db, config, world)
    assert result.executed_state == "stopped" and result.rolled_back_state == "running"
    assert instance_state(world, world.resource("idle_gpu_notebook").id) == "running"
    assert f"{OUTSIDER} may not approve" in result.refusal and result.audit_ok
    with sqlite_db.session() as s:
        events = [e.event for e in audit.list_entries(s, request_id=result.request_id)]
    assert events == [
        "request.proposed",
        "request.refused",
        "request.approved",
        "execution.started",
        "execution.succeeded",
        "rollback.started",
        "rollback.succeeded",
    ]
    assert "audit verify: OK" in capsys.readouterr().out
