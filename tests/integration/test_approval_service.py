"""The approval service end to end on SQLite and PostgreSQL, with a real action (``set-rate-limit``
changes the product's own LLM limits in the app database): propose, who may approve, two approvers,
rejection, expiry, drift, dry-run, guardrails, rollback, reconcile, and the audit trail of all of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from approvals import audit
from approvals.service import ApprovalService, Refused
from approvals.store import RequestNotFound
from config.loader import parse_config
from config.model import FinOpsConfig
from tools import llm_policy
from tools.findings import Finding, fingerprint
from tools.findings_store import upsert_findings
from tools.store.db import Database
from tools.store.models import ApprovalDecision, RemediationRequest

T0 = datetime(2024, 9, 21, 8, 0, tzinfo=UTC)
OWNER, APPROVER, OUTSIDER, ADMIN = "U0SUPPORT1", "U0SUPPORT2", "U0SEARCH01", "U0FINOPS01"

CONFIG = f"""
teams:
  - name: support
    owners: [{{slack_id: {OWNER}, email: ben@example.com}}]
    approvers: [{APPROVER}]
  - name: search
    owners: [{{slack_id: {OUTSIDER}}}]
guardrails:
  finops_admins: [{ADMIN}]
  two_approvals_above: 5000
  protected_environments: [prod]
  max_actions_per_run: 2
"""


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def make_config(extra: str = "") -> FinOpsConfig:
    return parse_config(CONFIG + extra)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cfg() -> FinOpsConfig:
    return make_config()


@pytest.fixture
def svc(db: Database, cfg: FinOpsConfig, clock: Clock) -> ApprovalService:
    return ApprovalService(db, cfg, clock=clock)


def add_finding(
    db: Database,
    cfg: FinOpsConfig,
    project: str = "support-bot",
    tokens: int = 1_000_000,
    impact: str = "120",
    kind: str = "waste",
) -> str:
    fp = fingerprint("token-budget-breach", project)
    finding = Finding(
        kind=kind,  # type: ignore[arg-type]
        rule_id="token-budget-breach",
        fingerprint=fp,
        title=f"{project} crossed its token budget",
        monthly_impact=Decimal(impact),
        detected_at=T0,
        resource=f"project:{project}",
        resource_kind="llm-project",
        scope={"team": "support", "project": project},
        proposed_action="set-rate-limit",
        action_params={"project": project, "tokens_per_month": tokens},
    )
    upsert_findings(db, [finding], cfg, T0)
    return fp


def events(db: Database, request_id: str | None = None) -> list[str]:
    with db.session() as s:
        return [e.event for e in audit.list_entries(s, request_id=request_id)]


def limits(db: Database, project: str = "support-bot") -> Any:
    return llm_policy.get_limits(db, llm_policy.subject_of("project", project), "*")


def chain_ok(db: Database) -> bool:
    with db.session() as s:
        return audit.verify(s).ok


def test_propose_turns_a_finding_into_a_pending_request_with_its_plan(
    svc: ApprovalService, db: Database, cfg: FinOpsConfig
) -> None:
    fp = add_finding(db, cfg)
    outcome = svc.propose(fp)
    assert outcome.status == "pending"
    shown = svc.show(outcome.request_id)
    assert shown["action"] == "set-rate-limit" and shown["team"] == "support" and shown["finding"] == fp
    assert shown["approvals"] == "0/1" and shown["requested_by"] == "finops-agent"
    assert shown["approvers"] == sorted([OWNER, APPROVER, ADMIN])
    assert shown["monthly_savings"] == Decimal("120.00")
    assert shown["plan"]["changes"] and shown["plan_hash"] == shown["history"][0]["details"]["plan_hash"]
    assert events(db) == ["request.proposed"]
    assert svc.propose(fp).request_id == outcome.request_id  # idempotent while open


def test_approve_by_an_allowed_approver_executes_once_and_audits_before_and_after(
    svc: ApprovalService, db: Database, cfg: FinOpsConfig
) -> None:
    request_id = svc.propose(add_finding(db, cfg)).request_id
    outcome = svc.approve_and_execute(request_id, APPROVER, comment="ok")
    assert outcome.status == "succeeded" and outcome.action_id and outcome.action_id.startswith("act-")
    assert limits(db) is not None and limits(db).monthly_tokens == 1_000_000
    assert events(db, request_id) == [
        "request.proposed",
        "request.approved",
        "execution.started",
        "execution.succeeded",
    ]
    with db.session() as s:
        done = audit.list_entries(s, event="execution.succeeded")[0]
    assert '"before"' in done.details and '"after"' in done.details and chain_ok(db)
    with pytest.raises(Refused, match="already been executed"):
        svc.approve_and_execute(request_id, OWNER)
    assert svc.execute(request_id).status == "succeeded"  # a second execute does nothing
    assert events(db, request_id).count("execution.started") == 1


def test_approve_refuses_outsiders_the_agent_and_the_requester_and_audits_each_refusal(
    svc: ApprovalService, db: Database, cfg: FinOpsConfig
) -> None:
    request_id = svc.propose(add_finding(db, cfg), requested_by=OWNER).request_id
    for actor, reason in [
        (OUTSIDER, "may not approve"),
        ("finops-agent", "never approve its own"),
        (OWNER, "requested this change"),
    ]:
        with pytest.raises(Refused, match=reason):
            svc.approve(request_id, actor)
    assert svc.show(request_id)["status"] == "pending"
    with db.session() as s:
        refusals = audit.list_entries(s, event="request.refused")
    assert [e.actor for e in refusals] == [OUTSIDER, "finops-agent", OWNER]
    assert all("reason" in e.details for e in refusals)


def test_large_plans_need_two_distinct_approvers(db: Database, clock: Clock) -> None:
    cfg = make_config()
    svc = ApprovalService(db, cfg, clock=clock)
    request_id = svc.propose(add_finding(db, cfg, impact="9000")).request_id
    assert svc.show(request_id)["approvals"] == "0/2"
    first = svc.approve_and_execute(request_id, OWNER)
    assert first.status == "pending" and "1 more approval" in first.message and limits(db) is None
    with pytest.raises(Refused, match="already approved"):
        svc.approve(request_id, OWNER)
    second = svc.approve_and_execute(request_id, ADMIN)
    assert second.status == "succeeded" and limits(db) is not None
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ApprovalDecision)) == 2


def test_reject_needs_a_reason_and_ends_the_request(
    svc: ApprovalService, db: Database, cfg: FinOpsConfig
) -> None:
    request_id = svc.propose(add_finding(db, cfg)).request_id
    with pytest.raises(Refused, match="give a reason"):
        svc.reject(request_id, OWNER, reason=" ")
    assert svc.reject(request_id, OWNER, reason="launch week").status == "rejected"
    with pytest.raises(Refused, match="it was rejected"):
        svc.approve(request_id, APPROVER)
    assert limits(db) is None and events(db, request_id)[:2] == ["request.proposed", "request.rejected"]


def test_requests_expire_after_the_configured_hours(
    svc: ApprovalService, db: Database, cfg: FinOpsConfig, clock: Clock
) -> None:
    request_id = svc.propose(add_finding(db, cfg)).request_id
    clock.now = T0 + timedelta(hours=72)
    with pytest.raises(Refused, match="expired"):
        svc.approve(request_id, OWNER)
    assert svc.show(request_id)["status"] == "expired"
    assert "request.expired" in events(db, request_id) and limits(db) is None
    other = svc.propose(add_finding(db, cfg, project="other-bot")).request_id
    clock.now += timedelta(hours=73)
    assert svc.expire_due() == [other]


def test_drift_after_approval_stops_execution_and_asks_again(
    svc: ApprovalService, db: Database, cfg: FinOpsConfig
) -> None:
    request_id = svc.propose(add_finding(db, cfg)).request_id
    assert svc.approve(request_id, OWNER).status == "approved"
    llm_policy.set_limits(
        db, llm_policy.subject_of("project", "support-bot"), "*", tpm=5000, now=T0, updated_by="someone"
    )
    outcome = svc.execute(request_id)
    assert outcome.status == "superseded" and outcome.new_request_id
    assert "changed" in outcome.message
    assert limits(db).monthly_tokens is None  # not executed
    fresh = svc.show(outcome.new_request_id)
    assert fresh["status"] == "pending" and fresh["supersedes"] == request_id
    assert "request.superseded" in events(db, request_id)


def test_dry_run_plans_and_audits_but_changes_nothing(db: Database, clock: Clock) -> None:
    cfg = make_config("  dry_run: true\n")
    svc = ApprovalService(db, cfg, clock=clock)
    request_id = svc.propose(add_finding(db, cfg)).request_id
    outcome = svc.approve_and_execute(request_id, OWNER)
    assert outcome.status == "dry_run" and "nothing changed" in outcome.message
    assert limits(db) is None
    assert events(db, request_id)[-1] == "execution.dry_run"
    with pytest.raises(Refused, match="never executed"):
        svc.rollback(request_id, OWNER)


def test_freeze_window_blocks_execution_and_keeps_the_approval(db: Database, clock: Clock) -> None:
    cfg = make_config(
        '  freeze_windows:\n    - {start: "2024-09-20T00:00:00Z", end: "2024-09-23T00:00:00Z", reason: launch}\n'
    )
    svc = ApprovalService(db, cfg, clock=clock)
    request_id = svc.propose(add_finding(db, cfg)).request_id
    with pytest.raises(Refused, match=r"change freeze .*launch"):
        svc.approve_and_execute(request_id, OWNER)
    assert svc.show(request_id)["status"] == "approved" and limits(db) is None
    clock.now = datetime(2024, 9, 23, 1, tzinfo=UTC)
    assert svc.execute(request_id).status == "succeeded"


def test_a_run_executes_at_most_max_actions_per_run(
    svc: ApprovalService, db: Database, cfg: FinOpsConfig
) -> None:
    ids = [svc.propose(add_finding(db, cfg, project=f"bot-{i}")).request_id for i in range(3)]
    for request_id in ids:
        svc.approve(request_id, OWNER)
    outcomes = svc.execute_approved()
    assert [o.status for o in outcomes] == ["succeeded", "succeeded", "approved"]
    assert "max_actions_per_run" in outcomes[2].message


def test_rollback_is_approved_audited_verified_and_only_once(
    svc: ApprovalService, db: Database, cfg: FinOpsConfig
) -> None:
    subject = llm_policy.subject_of("project", "support-bot")
    llm_policy.set_limits(db, subject, "*", monthly_tokens=500, now=T0, updated_by="ops")
    request_id = svc.propose(add_finding(db, cfg)).request_id
    action_id = svc.approve_and_execute(request_id, OWNER).action_id
    assert action_id and limits(db).monthly_tokens == 1_000_000
    with pytest.raises(Refused, match="may not approve"):
        svc.rollback(action_id, OUTSIDER)
    with pytest.raises(Refused, match="never approve"):
        svc.rollback(action_id, "finops-agent")
    outcome = svc.rollback(action_id, APPROVER, reason="budget raised instead")
    assert outcome.status == "rolled_back" and limits(db).monthly_tokens == 500
    assert events(db, request_id)[-2:] == ["rollback.started", "rollback.succeeded"]
    with pytest.raises(Refused, match="already been rolled back"):
        svc.rollback(action_id, APPROVER)
    assert chain_ok(db)


def test_rollback_of_a_request_that_never_ran_is_refused(
    svc: ApprovalService, db: Database, cfg: FinOpsConfig
) -> None:
    request_id = svc.propose(add_finding(db, cfg)).request_id
    with pytest.raises(Refused, match="never executed"):
        svc.rollback(request_id, OWNER)
    with pytest.raises(RequestNotFound, match="no remediation request or action"):
        svc.rollback("act-000000000000", OWNER)


class Crash(BaseException):
    """Stands for the process dying between the change and the final write."""


def test_reconcile_finishes_an_execution_interrupted_after_the_change(
    db: Database, cfg: FinOpsConfig, clock: Clock
) -> None:
    def die(_request_id: str) -> None:
        raise Crash

    crashing = ApprovalService(db, cfg, clock=clock, after_apply=die)
    request_id = crashing.propose(add_finding(db, cfg)).request_id
    with pytest.raises(Crash):
        crashing.approve_and_execute(request_id, OWNER)
    assert crashing.show(request_id)["status"] == "executing"
    healthy = ApprovalService(db, cfg, clock=clock)
    assert healthy.reconcile() == []  # not stale yet: a live worker may still be on it
    clock.now += timedelta(minutes=16)
    (outcome,) = healthy.reconcile()
    assert outcome.status == "succeeded" and "in effect" in outcome.message
    assert events(db, request_id).count("execution.started") == 1
    assert events(db, request_id)[-1] == "execution.reconciled" and chain_ok(db)


def test_reconcile_marks_an_execution_that_never_changed_anything_failed(
    db: Database, cfg: FinOpsConfig, clock: Clock
) -> None:
    svc = ApprovalService(db, cfg, clock=clock)
    request_id = svc.propose(add_finding(db, cfg)).request_id
    svc.approve(request_id, OWNER)
    with db.session() as s:  # as a worker that died right after claiming the request
        row = s.get(RemediationRequest, request_id)
        assert row is not None
        row.status, row.action_id = "executing", "act-crashed00001"
    clock.now += timedelta(hours=1)
    (outcome,) = svc.reconcile()
    assert outcome.status == "failed" and "nothing was changed" in outcome.message and limits(db) is None


def test_a_guardrail_change_in_the_config_is_audited_once(db: Database, clock: Clock) -> None:
    assert ApprovalService(db, make_config(), clock=clock).record_guardrails()
    assert not ApprovalService(db, make_config(), clock=clock).record_guardrails()
    changed = ApprovalService(db, make_config("  dry_run: true\n"), clock=clock)
    assert changed.record_guardrails(actor="U0FINOPS01")
    with db.session() as s:
        entries = audit.list_entries(s, event="guardrail.changed")
    assert len(entries) == 2 and entries[1].actor == "U0FINOPS01"
    assert '"changed":["dry_run"]' in entries[1].details


def test_only_a_waste_findings_impact_counts_as_savings(
    svc: ApprovalService, db: Database, cfg: FinOpsConfig
) -> None:
    request_id = svc.propose(add_finding(db, cfg, impact="9000", kind="token-budget")).request_id
    shown = svc.show(request_id)
    assert shown["monthly_savings"] == Decimal("0.00") and shown["approvals"] == "0/1"
