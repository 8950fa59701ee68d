"""The approval policy, one rule at a time: who may approve, two approvers, protection, environments,
freeze windows, per-run limits. Every refusal says why."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from approvals.policy import (
    RequestFacts,
    approvers_for,
    may_approve,
    may_execute,
    may_propose,
    required_approvals,
)
from config.loader import parse_config
from config.model import FinOpsConfig

CONFIG = """
teams:
  - name: search
    owners: [{slack_id: U0OWNER1, email: ana@example.com}]
    approvers: [U0APPROV1, U0APPROV2]
  - name: data
    owners: [{email: fay@example.com}]
    approvers: [U0DATA001]
guardrails:
  finops_admins: [U0ADMIN01]
  two_approvals_above: 1000
  protected_environments: [prod]
  max_actions_per_run: 2
  freeze_windows:
    - {start: "2024-12-20T00:00:00Z", end: "2025-01-03T00:00:00Z", reason: year-end freeze}
  allowed_actions:
    prod: [apply-tags]
    "*": ["*"]
"""


@pytest.fixture
def cfg() -> FinOpsConfig:
    return parse_config(CONFIG)


def facts(**kw: object) -> RequestFacts:
    base: dict[str, object] = {
        "action": "ec2-stop-instance",
        "team": "search",
        "environment": "dev",
        "monthly_savings": Decimal("100"),
        "requested_by": "finops-agent",
        "tags": {},
    }
    base.update(kw)
    return RequestFacts(**base)  # type: ignore[arg-type]


def test_policy_approvers_are_team_owners_approvers_and_finops_admins(cfg: FinOpsConfig) -> None:
    assert approvers_for(cfg, "search") == {"U0OWNER1", "U0APPROV1", "U0APPROV2", "U0ADMIN01"}
    assert approvers_for(cfg, "data") == {"U0DATA001", "U0ADMIN01"}  # an owner without a Slack id
    assert approvers_for(cfg, None) == {"U0ADMIN01"}


@pytest.mark.parametrize("actor", ["U0OWNER1", "U0APPROV2", "U0ADMIN01"])
def test_policy_allows_owner_approver_and_admin(cfg: FinOpsConfig, actor: str) -> None:
    assert may_approve(cfg, actor, facts())


def test_policy_refuses_someone_outside_the_team_naming_who_may(cfg: FinOpsConfig) -> None:
    verdict = may_approve(cfg, "U0DATA001", facts())
    assert not verdict and "U0DATA001 may not approve" in verdict.reason and "U0APPROV1" in verdict.reason


def test_policy_the_agent_never_approves(cfg: FinOpsConfig) -> None:
    verdict = may_approve(cfg, "finops-agent", facts())
    assert not verdict and "never approve its own" in verdict.reason


def test_policy_the_requester_never_approves_even_as_approver(cfg: FinOpsConfig) -> None:
    verdict = may_approve(cfg, "U0APPROV1", facts(requested_by="U0APPROV1"))
    assert not verdict and "requested this change" in verdict.reason


def test_policy_second_approval_must_come_from_someone_else(cfg: FinOpsConfig) -> None:
    verdict = may_approve(cfg, "U0APPROV1", facts(approvers_so_far=("U0APPROV1",)))
    assert not verdict and "already approved" in verdict.reason
    assert may_approve(cfg, "U0APPROV2", facts(approvers_so_far=("U0APPROV1",)))


def test_policy_empty_actor_is_refused(cfg: FinOpsConfig) -> None:
    assert "--as" in may_approve(cfg, " ", facts()).reason


def test_policy_production_or_large_plans_need_two_approvers(cfg: FinOpsConfig) -> None:
    assert required_approvals(cfg, "dev", Decimal("999")) == 1
    assert required_approvals(cfg, "dev", Decimal("1000.01")) == 2
    assert required_approvals(cfg, "prod", Decimal("1")) == 2
    assert required_approvals(cfg, None, Decimal("1")) == 1


@pytest.mark.parametrize("value", ["true", "True", "yes", "1"])
def test_policy_never_touches_protected_resources(cfg: FinOpsConfig, value: str) -> None:
    verdict = may_propose(cfg, facts(tags={"finops:protected": value}))
    assert not verdict and "finops:protected=true" in verdict.reason
    assert may_propose(cfg, facts(tags={"finops:protected": "false"}))


def test_policy_limits_actions_per_environment(cfg: FinOpsConfig) -> None:
    verdict = may_propose(cfg, facts(environment="prod"))
    assert not verdict and "not allowed in environment prod" in verdict.reason
    assert may_propose(cfg, facts(environment="prod", action="apply-tags"))
    assert may_propose(cfg, facts(environment="staging"))  # falls back to the "*" entry


def test_policy_nothing_executes_in_a_freeze_window(cfg: FinOpsConfig) -> None:
    verdict = may_execute(cfg, facts(), datetime(2024, 12, 24, tzinfo=UTC), 0)
    assert not verdict and "year-end freeze" in verdict.reason
    assert may_execute(cfg, facts(), datetime(2025, 1, 3, tzinfo=UTC), 0)


def test_policy_caps_the_actions_of_one_run(cfg: FinOpsConfig) -> None:
    now = datetime(2024, 9, 1, tzinfo=UTC)
    assert may_execute(cfg, facts(), now, 1)
    verdict = may_execute(cfg, facts(), now, 2)
    assert not verdict and "max_actions_per_run" in verdict.reason


def test_policy_execution_rechecks_protection(cfg: FinOpsConfig) -> None:
    now = datetime(2024, 9, 1, tzinfo=UTC)
    assert not may_execute(cfg, facts(tags={"finops:protected": "true"}), now, 0)
