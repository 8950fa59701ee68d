"""Who may approve what, and the guardrails every remediation passes — pure functions over the config.

Every "no" carries its reason in words, for the person who clicked and for the audit trail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from config.model import FinOpsConfig


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.allowed


ALLOW = Verdict(True)


def no(reason: str) -> Verdict:
    return Verdict(False, reason)


@dataclass(frozen=True)
class RequestFacts:
    """What the policy needs to know about a request (no database objects in pure code)."""

    action: str
    team: str | None
    environment: str | None
    monthly_savings: Decimal
    requested_by: str
    tags: Mapping[str, str]
    approvers_so_far: tuple[str, ...] = ()


def approvers_for(config: FinOpsConfig, team: str | None) -> set[str]:
    """The Slack ids allowed to approve a request of ``team``: its owners and approvers, and FinOps admins."""
    allowed = set(config.guardrails.finops_admins)
    spec = config.team(team) if team else None
    if spec is not None:
        allowed.update(spec.approvers)
        allowed.update(p.slack_id for p in spec.owners if p.slack_id)
    return allowed


def required_approvals(config: FinOpsConfig, environment: str | None, monthly_savings: Decimal) -> int:
    """Two distinct approvers for a protected environment (production) or a plan above the $ threshold."""
    g = config.guardrails
    if environment is not None and environment in g.protected_environments:
        return 2
    if monthly_savings > g.two_approvals_above:
        return 2
    return 1


def may_approve(config: FinOpsConfig, actor: str, request: RequestFacts) -> Verdict:
    """Whether ``actor`` may approve (or reject, or roll back) ``request``."""
    g = config.guardrails
    if not actor.strip():
        return no("no approver given: pass the Slack user id of the person deciding (--as U012ABC)")
    if actor == g.agent_id:
        return no(f"the assistant ({g.agent_id}) can never approve its own proposals")
    if actor == request.requested_by:
        return no(f"{actor} requested this change and cannot also approve it")
    if actor in request.approvers_so_far:
        return no(f"{actor} has already approved this request; a second approval must come from someone else")
    allowed = approvers_for(config, request.team)
    if actor not in allowed:
        who = f"team {request.team}'s owners and approvers" if request.team else "no team (unowned resource)"
        return no(
            f"{actor} may not approve this request: approvers are {who} and the FinOps admins "
            f"({', '.join(sorted(allowed)) or 'none configured'})"
        )
    return ALLOW


def is_protected(config: FinOpsConfig, tags: Mapping[str, str]) -> bool:
    value = tags.get(config.guardrails.protected_tag)
    return value is not None and value.strip().lower() in ("true", "yes", "1")


def action_allowed_in(config: FinOpsConfig, action: str, environment: str | None) -> Verdict:
    allowed = config.guardrails.allowed_actions
    if not allowed:
        return ALLOW
    key = environment if environment in allowed else "*"
    names = allowed.get(key) if key is not None else None
    if names is None or "*" in names or action in names:
        return ALLOW
    return no(
        f"action {action} is not allowed in environment {environment or '(none)'} "
        f"(guardrails.allowed_actions[{key!r}] = {names})"
    )


def in_freeze(config: FinOpsConfig, now: datetime) -> Verdict:
    """ALLOW outside every freeze window; otherwise the window that blocks."""
    for w in config.guardrails.freeze_windows:
        if w.start <= now < w.end:
            return no(f"change freeze until {w.end.isoformat()} ({w.reason}); nothing executes in a freeze")
    return ALLOW


def may_propose(config: FinOpsConfig, request: RequestFacts) -> Verdict:
    """Guardrails checked at proposal time: protected resources and environments' allowed actions."""
    if is_protected(config, request.tags):
        return no(
            f"the resource is tagged {config.guardrails.protected_tag}=true; the assistant never touches "
            "protected resources"
        )
    return action_allowed_in(config, request.action, request.environment)


def may_execute(
    config: FinOpsConfig, request: RequestFacts, now: datetime, executed_this_run: int
) -> Verdict:
    """Guardrails checked again just before execution (the config or the resource may have changed)."""
    verdict = may_propose(config, request)
    if not verdict:
        return verdict
    verdict = in_freeze(config, now)
    if not verdict:
        return verdict
    limit = config.guardrails.max_actions_per_run
    if executed_this_run >= limit:
        return no(f"this run has already executed {limit} actions (guardrails.max_actions_per_run)")
    return ALLOW
