"""Propose, approve, reject, execute, roll back, expire and reconcile remediation requests.

The CLI, the Slack handlers and the remediation graph all call these functions; none of them changes a
request any other way. Rules kept here (see ../shared/DESIGN.md, "Approval architecture"):

- A decision first *claims* the request with one conditional UPDATE and writes its audit entry in the
  same transaction; a caller whose UPDATE hits no row stops (double clicks and races execute nothing).
- An approval is bound to the plan's hash. Just before execution the resource is read again and the plan
  recomputed; if the hash differs, the request is superseded and a fresh one proposed for a new approval.
- What rollback needs is captured and stored *before* the change is made.
- Dry-run is decided here, once: in dry-run the service observes and plans, audits, and never calls
  ``capture``/``apply``/``rollback``.
- ``reconcile`` finishes requests a crash left in ``executing`` from the real state: done → succeeded;
  untouched → failed (nothing changed); half-done → rolled back to the captured state. Never a blind re-run.
- Refusals are audited (in their own transaction) and raised as ``Refused`` with the reason.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from approvals import audit
from approvals.actions.base import (
    Action,
    ActionContext,
    ActionError,
    ActionRefused,
    Observed,
    Plan,
    PlanContext,
    canonical_json,
    registry,
)
from approvals.machine import explain
from approvals.policy import (
    RequestFacts,
    approvers_for,
    may_approve,
    may_execute,
    may_propose,
    required_approvals,
)
from approvals.store import claim, decisions, get_request, loads
from config.model import FinOpsConfig
from tools.errors import FinOpsError
from tools.store.db import Database
from tools.store.models import ApprovalDecision, FindingRow, RemediationRequest

OPEN_STATUSES = ("pending", "approved", "executing")


class Refused(FinOpsError):
    """The operation was refused; the message says why (it is also in the audit trail)."""


@dataclass
class Outcome:
    request_id: str
    status: str
    message: str
    action_id: str | None = None
    new_request_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "status": self.status,
            "message": self.message,
            "action_id": self.action_id,
            "new_request_id": self.new_request_id,
            **({"details": self.details} if self.details else {}),
        }


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def default_price(instance_type: str) -> Decimal | None:
    from tools.cloud.aws import ON_DEMAND_USD_PER_HOUR

    return ON_DEMAND_USD_PER_HOUR.get(instance_type)


class ApprovalService:
    """``aws``: an AWS client factory for cloud actions (``approvals.actions.aws_clients.AwsClients``), or
    None to build one from ``config.aws`` on first use. ``clock`` is injected so tests never sleep.
    ``after_apply`` is a fault-injection point for crash tests (called between apply and the final write).
    """

    def __init__(
        self,
        db: Database,
        config: FinOpsConfig,
        *,
        aws: Any = None,
        clock: Callable[[], datetime] = _utcnow,
        price: Callable[[str], Decimal | None] = default_price,
        after_apply: Callable[[str], None] | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self._aws = aws
        self.clock = clock
        self.pctx = PlanContext(config=config, price=price)
        self.after_apply = after_apply

    # --- plumbing -------------------------------------------------------------------------------

    @property
    def agent(self) -> str:
        return self.config.guardrails.agent_id

    def _aws_clients(self) -> Any:
        if self._aws is None:
            from approvals.actions.aws_clients import AwsClients

            self._aws = AwsClients(self.config.aws)
        return self._aws

    def _ctx(self, action: Action, request_id: str) -> ActionContext:
        return ActionContext(
            config=self.config,
            now=self.clock(),
            request_id=request_id,
            aws=self._aws_clients() if action.cloud else None,
            db=self.db,
        )

    def refuse(
        self,
        reason: str,
        *,
        actor: str,
        channel: str | None,
        request_id: str | None = None,
        resource: str | None = None,
        what: str = "",
    ) -> Refused:
        """Audit the refusal in its own transaction, and return the exception to raise."""
        with self.db.session() as s:
            audit.append(
                s,
                event="request.refused",
                actor=actor,
                at=self.clock(),
                channel=channel,
                request_id=request_id,
                resource=resource,
                details={"refused": what, "reason": reason},
            )
        return Refused(reason)

    def _facts(self, row: RemediationRequest, approvers: tuple[str, ...] = ()) -> RequestFacts:
        plan = loads(row.plan)
        return RequestFacts(
            action=row.action,
            team=row.team,
            environment=row.environment,
            monthly_savings=Decimal(row.monthly_savings),
            requested_by=row.requested_by,
            tags=dict(plan.get("observed", {}).get("tags") or {}),
            approvers_so_far=approvers,
        )

    # --- guardrails -----------------------------------------------------------------------------

    def record_guardrails(self, actor: str | None = None) -> bool:
        """Audit the guardrails in force when they differ from the last audited ones (a config change of
        a guardrail is an audit event); True when an entry was written."""
        current = json.loads(canonical_json(self.config.guardrails.model_dump(mode="json")))
        with self.db.session() as s:
            (last,) = audit.list_entries(s, event="guardrail.changed", limit=1, newest_first=True) or (None,)
            before = json.loads(last.details).get("guardrails") if last is not None else None
            if before == current:
                return False
            changed = sorted(k for k in current if before is None or before.get(k) != current[k])
            audit.append(
                s,
                event="guardrail.changed",
                actor=actor or self.agent,
                at=self.clock(),
                details={"changed": changed, "previous": before, "guardrails": current},
            )
        return True

    # --- propose --------------------------------------------------------------------------------

    def propose(self, finding_id: str, *, requested_by: str | None = None, channel: str = "cli") -> Outcome:
        """Turn a finding into a remediation request with its plan (idempotent: an open request for the
        same finding is returned as it is)."""
        requester = requested_by or self.agent
        with self.db.session() as s:
            finding = s.get(FindingRow, finding_id)
            if finding is None:
                matches = list(
                    s.execute(
                        select(FindingRow).where(FindingRow.fingerprint.startswith(finding_id))
                    ).scalars()
                )
                finding = matches[0] if len(matches) == 1 else None
            if finding is None:
                raise Refused(f"no finding {finding_id!r}; `finops findings` lists them")
            open_request = s.execute(
                select(RemediationRequest).where(
                    RemediationRequest.finding == finding.fingerprint,
                    RemediationRequest.status.in_(OPEN_STATUSES),
                )
            ).scalar_one_or_none()
            if open_request is not None:
                return Outcome(
                    open_request.id,
                    open_request.status,
                    f"finding already has an open request {open_request.id} ({open_request.status})",
                )
            fp, action_name, team = finding.fingerprint, finding.proposed_action, finding.team
            params = json.loads(finding.action_params or "{}")
            scope = json.loads(finding.scope or "{}")
            # a waste finding's impact is what fixing it saves; other kinds' impact (spend on an unapproved
            # model, a budget overrun) is not a saving
            impact = Decimal(finding.monthly_impact) if finding.kind == "waste" else Decimal(0)
            resource = finding.resource
        if not action_name:
            raise self.refuse(
                "this finding is a recommendation only: it proposes no automated action",
                actor=requester,
                channel=channel,
                resource=resource,
                what=f"propose {fp}",
            )
        return self.propose_action(
            action_name,
            params,
            team=team,
            environment=scope.get("environment"),
            requested_by=requester,
            finding=fp,
            finding_impact=impact,
            channel=channel,
        )

    def propose_action(
        self,
        action_name: str,
        raw_params: dict[str, Any],
        *,
        team: str | None,
        environment: str | None = None,
        requested_by: str | None = None,
        finding: str | None = None,
        finding_impact: Decimal | None = None,
        channel: str = "cli",
        supersedes: str | None = None,
    ) -> Outcome:
        requester = requested_by or self.agent
        action = registry.create(action_name)
        fields = action.Params.model_fields
        if "monthly_savings" in fields and raw_params.get("monthly_savings") is None and finding_impact:
            raw_params = {**raw_params, "monthly_savings": str(finding_impact)}
        params = action.parse_params(raw_params)
        request_id = _new_id("req")
        target = action.target(params)
        try:
            observed = action.observe(self._ctx(action, request_id), params)
            plan = action.plan(params, observed, self.pctx)
        except ActionRefused as exc:
            raise self.refuse(
                str(exc), actor=requester, channel=channel, resource=target.id, what=f"propose {action_name}"
            ) from None
        env = plan.environment or environment
        savings = plan.monthly_savings if plan.monthly_savings else (finding_impact or Decimal(0))
        facts = RequestFacts(action_name, team, env, savings, requester, dict(observed.tags))
        verdict = may_propose(self.config, facts)
        if not verdict:
            raise self.refuse(
                verdict.reason,
                actor=requester,
                channel=channel,
                resource=target.id,
                what=f"propose {action_name}",
            )
        now = self.clock()
        required = required_approvals(self.config, env, savings)
        row = RemediationRequest(
            id=request_id,
            kind="remediation",
            finding=finding,
            action=action_name,
            params=canonical_json(params.model_dump(mode="json")),
            resource=target.id,
            resource_kind=target.kind,
            team=team,
            environment=env,
            plan=canonical_json(plan.as_dict()),
            plan_hash=plan.hash(),
            monthly_savings=savings,
            currency=plan.currency,
            status="pending",
            required_approvals=required,
            approvals_given=0,
            requested_by=requester,
            created_at=now,
            expires_at=now + timedelta(hours=self.config.guardrails.approval_expiry_hours),
            updated_at=now,
            supersedes=supersedes,
            dry_run=1 if self.config.guardrails.dry_run else 0,
        )
        with self.db.session() as s:
            s.add(row)
            s.flush()
            audit.append(
                s,
                event="request.proposed",
                actor=requester,
                at=now,
                channel=channel,
                request_id=request_id,
                resource=target.id,
                details={
                    "action": action_name,
                    "finding": finding,
                    "summary": plan.summary,
                    "plan_hash": row.plan_hash,
                    "monthly_savings": str(savings),
                    "required_approvals": required,
                    "approvers": sorted(approvers_for(self.config, team)),
                    "supersedes": supersedes,
                    "expires_at": row.expires_at.isoformat(),
                },
            )
        return Outcome(
            request_id,
            "pending",
            f"{plan.summary}: waiting for {required} approval(s) until {row.expires_at:%Y-%m-%d %H:%M} UTC",
        )

    # --- decide ---------------------------------------------------------------------------------

    def _expire_if_due(self, row: RemediationRequest, now: datetime) -> bool:
        if row.expires_at > now or row.status not in ("pending", "approved"):
            return False
        with self.db.session() as s:
            if claim(s, row.id, "expire", now, where=(RemediationRequest.expires_at <= now,)):
                audit.append(
                    s,
                    event="request.expired",
                    actor=self.agent,
                    at=now,
                    request_id=row.id,
                    resource=row.resource,
                    details={"expires_at": row.expires_at.isoformat(), "status_before": row.status},
                )
        return True

    def approve(
        self, request_id: str, actor: str, *, comment: str | None = None, channel: str = "cli"
    ) -> Outcome:
        """Record ``actor``'s approval. The last approval needed moves the request to ``approved``; call
        ``execute`` (or ``approve_and_execute``) to carry it out."""
        now = self.clock()
        with self.db.session() as s:
            row = get_request(s, request_id)
            given = tuple(d.actor for d in decisions(s, row.id) if d.decision == "approve")
        if self._expire_if_due(row, now):
            raise self.refuse(
                f"request {row.id} expired at {row.expires_at:%Y-%m-%d %H:%M} UTC; propose it again",
                actor=actor,
                channel=channel,
                request_id=row.id,
                resource=row.resource,
                what="approve",
            )
        if row.status != "pending":
            raise self.refuse(
                f"request {row.id} cannot be approved: {explain(row.status)}",
                actor=actor,
                channel=channel,
                request_id=row.id,
                resource=row.resource,
                what="approve",
            )
        verdict = may_approve(self.config, actor, self._facts(row, given))
        if not verdict:
            raise self.refuse(
                verdict.reason,
                actor=actor,
                channel=channel,
                request_id=row.id,
                resource=row.resource,
                what="approve",
            )
        final = row.approvals_given + 1 >= row.required_approvals
        try:
            with self.db.session() as s:
                won = claim(
                    s,
                    row.id,
                    "approve_final" if final else "approve",
                    now,
                    values={"approvals_given": RemediationRequest.approvals_given + 1},
                    where=(
                        RemediationRequest.approvals_given == row.approvals_given,
                        RemediationRequest.expires_at > now,
                    ),
                )
                if not won:
                    raise _LostRace()
                s.add(
                    ApprovalDecision(
                        request_id=row.id,
                        actor=actor,
                        decision="approve",
                        channel=channel,
                        comment=comment,
                        plan_hash=row.plan_hash,
                        decided_at=now,
                    )
                )
                s.flush()
                audit.append(
                    s,
                    event="request.approved",
                    actor=actor,
                    at=now,
                    channel=channel,
                    request_id=row.id,
                    resource=row.resource,
                    details={
                        "approval": f"{row.approvals_given + 1} of {row.required_approvals}",
                        "plan_hash": row.plan_hash,
                        "comment": comment,
                    },
                )
        except (_LostRace, IntegrityError):
            with self.db.session() as s:
                current = get_request(s, row.id).status
            raise self.refuse(
                f"request {row.id} was decided by someone else at the same moment; it is now {current}",
                actor=actor,
                channel=channel,
                request_id=row.id,
                resource=row.resource,
                what="approve",
            ) from None
        if final:
            return Outcome(row.id, "approved", f"approved by {actor}; ready to execute")
        left = row.required_approvals - row.approvals_given - 1
        return Outcome(
            row.id, "pending", f"approval recorded; {left} more approval(s) from someone else needed"
        )

    def reject(self, request_id: str, actor: str, *, reason: str, channel: str = "cli") -> Outcome:
        now = self.clock()
        if not reason.strip():
            raise Refused("give a reason for the rejection (--reason '...'); it goes into the audit trail")
        with self.db.session() as s:
            row = get_request(s, request_id)
        verdict = may_approve(self.config, actor, self._facts(row))
        if not verdict:
            raise self.refuse(
                verdict.reason,
                actor=actor,
                channel=channel,
                request_id=row.id,
                resource=row.resource,
                what="reject",
            )
        try:
            with self.db.session() as s:
                if not claim(s, row.id, "reject", now, values={"status_reason": reason}):
                    raise _LostRace()
                s.add(
                    ApprovalDecision(
                        request_id=row.id,
                        actor=actor,
                        decision="reject",
                        channel=channel,
                        comment=reason,
                        plan_hash=row.plan_hash,
                        decided_at=now,
                    )
                )
                s.flush()
                audit.append(
                    s,
                    event="request.rejected",
                    actor=actor,
                    at=now,
                    channel=channel,
                    request_id=row.id,
                    resource=row.resource,
                    details={"reason": reason},
                )
        except (_LostRace, IntegrityError):
            with self.db.session() as s:
                current = get_request(s, row.id).status
            raise self.refuse(
                f"request {row.id} cannot be rejected: {explain(current)}",
                actor=actor,
                channel=channel,
                request_id=row.id,
                resource=row.resource,
                what="reject",
            ) from None
        return Outcome(row.id, "rejected", f"rejected by {actor}: {reason}")

    def cancel(self, request_id: str, actor: str, *, reason: str, channel: str = "cli") -> Outcome:
        now = self.clock()
        with self.db.session() as s:
            row = get_request(s, request_id)
            if not claim(s, row.id, "cancel", now, values={"status_reason": reason}):
                raise Refused(f"request {row.id} cannot be cancelled: {explain(row.status)}")
            audit.append(
                s,
                event="request.cancelled",
                actor=actor,
                at=now,
                channel=channel,
                request_id=row.id,
                resource=row.resource,
                details={"reason": reason},
            )
        return Outcome(row.id, "cancelled", f"cancelled by {actor}: {reason}")

    def expire_due(self) -> list[str]:
        """Expire every pending or approved request past its expiry; the ids expired."""
        now = self.clock()
        with self.db.session() as s:
            due = list(
                s.execute(
                    select(RemediationRequest).where(
                        RemediationRequest.status.in_(("pending", "approved")),
                        RemediationRequest.expires_at <= now,
                    )
                ).scalars()
            )
        return [row.id for row in due if self._expire_if_due(row, now)]

    # --- execute --------------------------------------------------------------------------------

    def approve_and_execute(
        self, request_id: str, actor: str, *, comment: str | None = None, channel: str = "cli"
    ) -> Outcome:
        """What a click on Approve does: record the approval; if it was the last one needed, execute."""
        outcome = self.approve(request_id, actor, comment=comment, channel=channel)
        if outcome.status != "approved":
            return outcome
        return self.execute(outcome.request_id)

    def execute(self, request_id: str, *, executed_this_run: int = 0) -> Outcome:
        """Carry out an approved request, exactly once (see the module docstring)."""
        now = self.clock()
        with self.db.session() as s:
            row = get_request(s, request_id)
        if self._expire_if_due(row, now):
            return Outcome(
                row.id, "expired", f"request {row.id} expired before it was executed; propose it again"
            )
        if row.status != "approved":
            return Outcome(row.id, row.status, f"nothing to execute: {explain(row.status)}")
        action = registry.create(row.action)
        params = action.parse_params(loads(row.params))
        facts = self._facts(row)
        verdict = may_execute(self.config, facts, now, executed_this_run)
        if not verdict:
            raise self.refuse(
                verdict.reason,
                actor=self.agent,
                channel=None,
                request_id=row.id,
                resource=row.resource,
                what="execute",
            )
        stored_plan = loads(row.plan)
        try:
            observed = action.observe(self._ctx(action, row.id), params)
            plan = action.plan(params, observed, self.pctx)
            drift = None if plan.hash() == row.plan_hash else _describe_drift(stored_plan, plan)
        except ActionRefused as exc:
            observed, plan, drift = None, None, str(exc)
        if drift is not None:
            return self._supersede(row, drift, observed, now)
        if row.dry_run or self.config.guardrails.dry_run:
            with self.db.session() as s:
                if not claim(s, row.id, "dry_run", now):
                    return self._current(row.id, "another worker took this request")
                audit.append(
                    s,
                    event="execution.dry_run",
                    actor=self.agent,
                    at=now,
                    request_id=row.id,
                    resource=row.resource,
                    details={"plan": stored_plan, "note": "dry-run: planned and audited; no cloud call made"},
                )
            return Outcome(
                row.id, "dry_run", f"dry-run: would {plan.summary if plan else row.action}; nothing changed"
            )
        action_id = _new_id("act")
        with self.db.session() as s:
            if not claim(s, row.id, "start", now, values={"action_id": action_id, "executed_at": now}):
                return self._current(row.id, "another worker is executing or has executed this request")
            audit.append(
                s,
                event="execution.started",
                actor=self.agent,
                at=now,
                request_id=row.id,
                resource=row.resource,
                details={"action_id": action_id, "action": row.action, "plan_hash": row.plan_hash},
            )
        ctx = self._ctx(action, row.id)
        try:
            captured = action.capture(ctx, params, observed or Observed(False))
        except Exception as exc:  # nothing changed yet
            return self._finish(
                row, action_id, "fail", None, None, None, f"could not read the state to save: {exc}"
            )
        with self.db.session() as s:
            s.execute(
                update(RemediationRequest)
                .where(RemediationRequest.id == row.id, RemediationRequest.status == "executing")
                .values(captured=canonical_json(captured), updated_at=self.clock())
            )
        try:
            applied = action.apply(ctx, params, captured)
        except Exception as exc:
            return self._finish(row, action_id, "fail", captured, None, None, f"{type(exc).__name__}: {exc}")
        if self.after_apply is not None:
            self.after_apply(row.id)
        try:
            check = action.verify(ctx, params, captured, applied)
        except Exception as exc:
            return self._finish(
                row, action_id, "fail", captured, applied, None, f"verification failed: {exc}"
            )
        if not check.ok:
            return self._finish(
                row, action_id, "fail", captured, applied, check.observed, check.detail or "not in effect"
            )
        return self._finish(row, action_id, "succeed", captured, applied, check.observed, check.detail)

    def _current(self, request_id: str, why: str) -> Outcome:
        with self.db.session() as s:
            row = get_request(s, request_id)
        return Outcome(
            row.id, row.status, f"not executed here: {why} ({row.status})", action_id=row.action_id
        )

    def _finish(
        self,
        row: RemediationRequest,
        action_id: str,
        event: str,
        captured: dict[str, Any] | None,
        applied: dict[str, Any] | None,
        after: Observed | None,
        detail: str,
        *,
        actor: str | None = None,
        audit_event: str | None = None,
    ) -> Outcome:
        now = self.clock()
        result = {"detail": detail, "after": after.as_dict() if after else None}
        values: dict[str, Any] = {"result": canonical_json(result)}
        if applied is not None:
            values["applied"] = canonical_json(applied)
        with self.db.session() as s:
            if not claim(s, row.id, event, now, values=values):  # type: ignore[arg-type]
                return self._current(row.id, "its status changed meanwhile")
            status = get_request(s, row.id).status
            audit.append(
                s,
                event=audit_event or ("execution.succeeded" if event == "succeed" else "execution.failed"),
                actor=actor or self.agent,
                at=now,
                request_id=row.id,
                resource=row.resource,
                details={
                    "action_id": action_id,
                    "before": captured,
                    "applied": applied,
                    "after": after.as_dict() if after else None,
                    "detail": detail,
                },
            )
        word = "done" if event == "succeed" else "failed"
        return Outcome(row.id, status, f"{word}: {detail}" if detail else word, action_id=action_id)

    def _supersede(
        self, row: RemediationRequest, drift: str, observed: Observed | None, now: datetime
    ) -> Outcome:
        with self.db.session() as s:
            if not claim(s, row.id, "drift", now, values={"status_reason": drift}):
                return self._current(row.id, "its status changed meanwhile")
            audit.append(
                s,
                event="request.superseded",
                actor=self.agent,
                at=now,
                request_id=row.id,
                resource=row.resource,
                details={"drift": drift, "observed_now": observed.as_dict() if observed else None},
            )
        try:
            fresh = self.propose_action(
                row.action,
                loads(row.params),
                team=row.team,
                environment=row.environment,
                requested_by=row.requested_by,
                finding=row.finding,
                supersedes=row.id,
            )
        except (Refused, ActionError) as exc:
            return Outcome(row.id, "superseded", f"not executed: {drift}; no fresh request: {exc}")
        return Outcome(
            row.id,
            "superseded",
            f"not executed: the resource changed since the approval ({drift}); fresh request "
            f"{fresh.request_id} needs a new approval",
            new_request_id=fresh.request_id,
        )

    def execute_approved(self) -> list[Outcome]:
        """Execute every approved request, oldest first, at most ``max_actions_per_run`` of them."""
        with self.db.session() as s:
            ids = list(
                s.execute(
                    select(RemediationRequest.id)
                    .where(RemediationRequest.status == "approved")
                    .order_by(RemediationRequest.updated_at)
                ).scalars()
            )
        outcomes: list[Outcome] = []
        executed = 0
        for request_id in ids:
            try:
                outcome = self.execute(request_id, executed_this_run=executed)
            except Refused as exc:
                outcomes.append(Outcome(request_id, "approved", f"not executed: {exc}"))
                continue
            executed += outcome.status in ("succeeded", "failed")
            outcomes.append(outcome)
        return outcomes

    # --- rollback -------------------------------------------------------------------------------

    def rollback(
        self, action_id: str, actor: str, *, channel: str = "cli", reason: str | None = None
    ) -> Outcome:
        """Undo an executed action (by action id or request id). ``actor`` must be allowed to approve the
        original request: the rollback is a decision, audited like one, and verified afterwards."""
        now = self.clock()
        with self.db.session() as s:
            row = get_request(s, action_id)
        if row.status not in ("succeeded", "failed") or row.captured is None:
            why = (
                "it was never executed"
                if row.captured is None and row.status not in ("rolled_back",)
                else explain(row.status)
            )
            raise self.refuse(
                f"cannot roll back {action_id}: {why}",
                actor=actor,
                channel=channel,
                request_id=row.id,
                resource=row.resource,
                what="rollback",
            )
        facts = self._facts(row)
        facts = RequestFacts(
            facts.action, facts.team, facts.environment, facts.monthly_savings, self.agent, facts.tags
        )
        verdict = may_approve(self.config, actor, facts)
        if not verdict:
            raise self.refuse(
                verdict.reason,
                actor=actor,
                channel=channel,
                request_id=row.id,
                resource=row.resource,
                what="rollback",
            )
        return self._rollback(row, actor, channel, reason, now)

    def _rollback(
        self, row: RemediationRequest, actor: str, channel: str | None, reason: str | None, now: datetime
    ) -> Outcome:
        with self.db.session() as s:
            if not claim(s, row.id, "start_rollback", now):
                raise Refused(
                    f"cannot roll back {row.id}: it is being rolled back or was already rolled back"
                )
            audit.append(
                s,
                event="rollback.started",
                actor=actor,
                at=now,
                channel=channel,
                request_id=row.id,
                resource=row.resource,
                details={"action_id": row.action_id, "reason": reason, "restore": loads(row.captured)},
            )
        action = registry.create(row.action)
        params = action.parse_params(loads(row.params))
        ctx = self._ctx(action, row.id)
        captured, applied = loads(row.captured), loads(row.applied)
        try:
            undone = action.rollback(ctx, params, captured, applied)
            check = action.verify_rollback(ctx, params, captured, {**applied, **undone})
        except Exception as exc:
            return self._end_rollback(
                row, actor, "rollback_failed", f"{type(exc).__name__}: {exc}", None, None
            )
        if not check.ok:
            return self._end_rollback(
                row, actor, "rollback_failed", check.detail or "state not restored", undone, check.observed
            )
        return self._end_rollback(row, actor, "rolled_back", check.detail, undone, check.observed)

    def _end_rollback(
        self,
        row: RemediationRequest,
        actor: str,
        event: str,
        detail: str,
        undone: dict[str, Any] | None,
        after: Observed | None,
    ) -> Outcome:
        now = self.clock()
        with self.db.session() as s:
            values: dict[str, Any] = {"result": canonical_json({"rollback": detail, "undone": undone})}
            if event == "rolled_back":
                values["rolled_back_at"] = now
            claim(s, row.id, event, now, values=values)  # type: ignore[arg-type]
            audit.append(
                s,
                event="rollback.succeeded" if event == "rolled_back" else "rollback.failed",
                actor=actor,
                at=now,
                request_id=row.id,
                resource=row.resource,
                details={
                    "action_id": row.action_id,
                    "undone": undone,
                    "after": after.as_dict() if after else None,
                    "detail": detail,
                },
            )
        return Outcome(
            row.id,
            event,
            f"{event.replace('_', ' ')}: {detail}" if detail else event,
            action_id=row.action_id,
        )

    # --- reconcile ------------------------------------------------------------------------------

    def reconcile(self, *, stale_after: timedelta = timedelta(minutes=15)) -> list[Outcome]:
        """Finish requests left in ``executing`` for longer than ``stale_after`` (a crashed worker) from
        the real state of their resource. Safe to run from several processes: each request is claimed."""
        now = self.clock()
        with self.db.session() as s:
            stuck = list(
                s.execute(
                    select(RemediationRequest).where(
                        RemediationRequest.status == "executing",
                        RemediationRequest.updated_at <= now - stale_after,
                    )
                ).scalars()
            )
        outcomes = []
        for row in stuck:
            with self.db.session() as s:  # claim it for this reconciler (touch updated_at conditionally)
                won = _touch(s, row, now)
            if won:
                outcomes.append(self._reconcile_one(row))
        return outcomes

    def _reconcile_one(self, row: RemediationRequest) -> Outcome:
        action = registry.create(row.action)
        params = action.parse_params(loads(row.params))
        ctx = self._ctx(action, row.id)
        action_id = row.action_id or ""
        note = "reconciled after an interrupted execution: "
        if row.captured is None:  # capture is read-only and stored before apply: apply never ran
            return self._finish(
                row,
                action_id,
                "fail",
                None,
                None,
                None,
                note + "stopped before any change; nothing was changed",
                audit_event="execution.reconciled",
            )
        captured, applied = loads(row.captured), loads(row.applied)
        check = action.verify(ctx, params, captured, applied)
        if check.ok:
            return self._finish(
                row,
                action_id,
                "succeed",
                captured,
                applied,
                check.observed,
                note + "the change is in effect",
                audit_event="execution.reconciled",
            )
        stored = Observed.from_dict(loads(row.plan).get("observed") or {"exists": False})
        if check.observed == stored:
            return self._finish(
                row,
                action_id,
                "fail",
                captured,
                applied,
                check.observed,
                note + "the resource is as before the change; nothing was changed",
                audit_event="execution.reconciled",
            )
        outcome = self._finish(
            row,
            action_id,
            "fail",
            captured,
            applied,
            check.observed,
            note + "the change was half-done; restoring the saved state",
            audit_event="execution.reconciled",
        )
        if outcome.status != "failed":
            return outcome
        with self.db.session() as s:
            current = get_request(s, row.id)
        return self._rollback(current, self.agent, None, "half-done change found by reconcile", self.clock())

    # --- read -----------------------------------------------------------------------------------

    def list_requests(
        self, *, status: list[str] | None = None, team: str | None = None
    ) -> list[dict[str, Any]]:
        with self.db.session() as s:
            stmt = select(RemediationRequest).order_by(RemediationRequest.created_at.desc())
            if status:
                stmt = stmt.where(RemediationRequest.status.in_(status))
            if team:
                stmt = stmt.where(RemediationRequest.team == team)
            return [request_dict(r) for r in s.execute(stmt).scalars()]

    def show(self, request_id: str) -> dict[str, Any]:
        with self.db.session() as s:
            row = get_request(s, request_id)
            out = request_dict(row)
            out["plan"] = loads(row.plan)
            out["approvers"] = sorted(approvers_for(self.config, row.team) - {row.requested_by, self.agent})
            out["decisions"] = [
                {
                    "actor": d.actor,
                    "decision": d.decision,
                    "channel": d.channel,
                    "comment": d.comment,
                    "at": d.decided_at.isoformat(),
                }
                for d in decisions(s, row.id)
            ]
            out["captured"] = loads(row.captured) if row.captured else None
            out["applied"] = loads(row.applied) if row.applied else None
            out["result"] = loads(row.result) if row.result else None
            out["history"] = [audit.entry_dict(e) for e in audit.list_entries(s, request_id=row.id)]
        return out


class _LostRace(Exception):
    pass


def _touch(s: Session, row: RemediationRequest, now: datetime) -> bool:
    result = s.execute(
        update(RemediationRequest)
        .where(
            RemediationRequest.id == row.id,
            RemediationRequest.status == "executing",
            RemediationRequest.updated_at == row.updated_at,
        )
        .values(updated_at=now)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def _describe_drift(stored_plan: dict[str, Any], plan: Plan) -> str:
    before = stored_plan.get("observed") or {}
    now = plan.observed.as_dict()
    diffs = []
    for key in ("exists", "state"):
        if before.get(key) != now.get(key):
            diffs.append(f"{key} {before.get(key)!r} -> {now.get(key)!r}")
    for group in ("attributes", "tags"):
        b, n = before.get(group) or {}, now.get(group) or {}
        for k in sorted(set(b) | set(n)):
            if b.get(k) != n.get(k):
                diffs.append(f"{group[:-1]} {k} {b.get(k)!r} -> {n.get(k)!r}")
    return "; ".join(diffs) or "the plan changed"


def request_dict(row: RemediationRequest) -> dict[str, Any]:
    plan = loads(row.plan)
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "action": row.action,
        "summary": plan.get("summary"),
        "resource": row.resource,
        "resource_kind": row.resource_kind,
        "team": row.team,
        "environment": row.environment,
        "monthly_savings": Decimal(row.monthly_savings).quantize(Decimal("0.01")),
        "currency": row.currency,
        "approvals": f"{row.approvals_given}/{row.required_approvals}",
        "requested_by": row.requested_by,
        "created_at": row.created_at.isoformat(),
        "expires_at": row.expires_at.isoformat(),
        "finding": row.finding,
        "action_id": row.action_id,
        "plan_hash": row.plan_hash,
        "status_reason": row.status_reason,
        "supersedes": row.supersedes,
        "dry_run": bool(row.dry_run),
    }
