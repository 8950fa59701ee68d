"""Stored findings: upsert by fingerprint, status life cycle, owner resolution, feedback.

Life cycle: a new fingerprint is ``open``. A re-scan that sees it again updates it (impact, evidence,
last_seen) and keeps its status; ``snoozed`` comes back ``open`` once the snooze has passed; feedback
``expected`` / ``not-waste`` makes it ``suppressed`` (never raised again); an ``open`` or ``notified``
finding that a scan of its rule no longer sees is ``resolved`` (the waste is gone), and reopened if it
comes back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from config.model import FinOpsConfig
from tools.errors import FinOpsError
from tools.findings import Finding
from tools.store.db import Database
from tools.store.models import FindingFeedback, FindingRow

STATUSES = ("open", "notified", "snoozed", "resolved", "suppressed")
VERDICTS = ("expected", "not-waste", "snooze", "reopen")
ACTIVE = ("open", "notified")
#: fingerprints per query when reading the stored findings of a scan (below SQLite's variable limit)
UPSERT_CHUNK = 500


class FindingNotFound(FinOpsError):
    pass


@dataclass(frozen=True)
class Owner:
    team: str | None
    reason: str


def resolve_owner(finding: Finding, config: FinOpsConfig, account_teams: dict[str, str]) -> Owner:
    """Tags through the taxonomy, then a team named in the scope, then the account's usual team, else the
    FinOps team (``finops_team`` in finops.yaml)."""
    known = {t.name for t in config.teams}
    for key in config.taxonomy.dimensions.get("team", []):
        for candidate in (key, f"user:{key}"):
            value = (finding.tags.get(candidate) or "").strip()
            if value:
                note = "" if value in known or not known else " (not a team in finops.yaml)"
                return Owner(value, f"tag {candidate}={value}{note}")
    if finding.scope.get("team"):
        return Owner(finding.scope["team"], "the spend it is about belongs to this team")
    if finding.account and finding.account in account_teams:
        return Owner(account_teams[finding.account], f"the usual team of account {finding.account}")
    if config.finops_team:
        return Owner(config.finops_team, "no owner found: the FinOps team (finops_team in finops.yaml)")
    return Owner(None, "no owner found; set finops_team in finops.yaml")


@dataclass
class UpsertResult:
    new: int = 0
    updated: int = 0
    reopened: int = 0
    resolved: int = 0


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def upsert_findings(
    db: Database,
    findings: Iterable[Finding],
    config: FinOpsConfig,
    now: datetime,
    *,
    account_teams: dict[str, str] | None = None,
    rules_run: Sequence[str] = (),
) -> UpsertResult:
    """Store what a scan found. Open findings of ``rules_run`` that were not found again are resolved."""
    result = UpsertResult()
    seen: set[str] = set()
    findings = list(findings)
    with db.session() as session:
        # the stored rows of these findings, a few queries in all rather than one per finding
        wanted = list(dict.fromkeys(f.fingerprint for f in findings))
        existing: dict[str, FindingRow] = {}
        for i in range(0, len(wanted), UPSERT_CHUNK):
            chunk = wanted[i : i + UPSERT_CHUNK]
            existing.update(
                (r.fingerprint, r)
                for r in session.scalars(select(FindingRow).where(FindingRow.fingerprint.in_(chunk)))
            )
        for f in findings:
            if f.fingerprint in seen:
                continue
            seen.add(f.fingerprint)
            owner = resolve_owner(f, config, account_teams or {})
            row = existing.get(f.fingerprint)
            fields: dict[str, Any] = {
                "kind": f.kind,
                "rule_id": f.rule_id,
                "title": f.title,
                "severity": f.severity,
                "resource": f.resource,
                "resource_kind": f.resource_kind,
                "account": f.account,
                "scope": _dumps(dict(f.scope)),
                "team": owner.team,
                "owner_reason": owner.reason,
                "monthly_impact": f.monthly_impact,
                "currency": f.currency,
                "evidence": _dumps(dict(f.evidence)),
                "proposed_action": f.proposed_action,
                "action_params": _dumps(dict(f.action_params)),
                "recommendation": f.recommendation,
                "last_seen": now,
            }
            if row is None:
                session.add(
                    FindingRow(
                        fingerprint=f.fingerprint, status="open", first_seen=now, times_seen=1, **fields
                    )
                )
                result.new += 1
                continue
            for name, value in fields.items():
                setattr(row, name, value)
            row.times_seen += 1
            if row.status == "resolved":
                row.status, row.resolved_at = "open", None
                result.reopened += 1
            elif row.status == "snoozed" and row.snoozed_until is not None and row.snoozed_until <= now:
                row.status, row.snoozed_until = "open", None
                result.reopened += 1
            else:
                result.updated += 1
        if rules_run:
            stale = session.scalars(
                select(FindingRow).where(
                    FindingRow.rule_id.in_(list(rules_run)), FindingRow.status.in_(ACTIVE)
                )
            )
            for row in stale:
                if row.fingerprint not in seen:
                    row.status, row.resolved_at = "resolved", now
                    result.resolved += 1
    return result


def list_findings(
    db: Database,
    *,
    status: Sequence[str] = (),
    team: str | None = None,
    kind: str | None = None,
    rule: str | None = None,
    severity: str | None = None,
    limit: int = 500,
) -> list[FindingRow]:
    for s in status:
        if s not in STATUSES:
            raise FinOpsError(f"unknown status {s!r}; choose from {', '.join(STATUSES)}")
    with db.session() as session:
        q = select(FindingRow)
        if status:
            q = q.where(FindingRow.status.in_(list(status)))
        if team:
            q = q.where(FindingRow.team == team)
        if kind:
            q = q.where(FindingRow.kind == kind)
        if rule:
            q = q.where(FindingRow.rule_id == rule)
        if severity:
            q = q.where(FindingRow.severity == severity)
        q = q.order_by(FindingRow.monthly_impact.desc(), FindingRow.fingerprint).limit(limit)
        return list(session.scalars(q))


def get_finding(db: Database, finding_id: str) -> FindingRow:
    """A finding by its id (the fingerprint) or a unique prefix of at least 6 characters."""
    finding_id = finding_id.strip().lower()
    with db.session() as session:
        row = session.get(FindingRow, finding_id)
        if row is not None:
            return row
        if len(finding_id) >= 6:
            rows = list(
                session.scalars(
                    select(FindingRow).where(FindingRow.fingerprint.startswith(finding_id)).limit(2)
                )
            )
            if len(rows) == 1:
                return rows[0]
            if len(rows) > 1:
                raise FindingNotFound(f"finding id {finding_id!r} is ambiguous; give more characters")
    raise FindingNotFound(f"no finding {finding_id!r}; list them with `finops findings`")


def record_feedback(
    db: Database,
    finding_id: str,
    verdict: str,
    now: datetime,
    *,
    days: int | None = None,
    actor: str | None = None,
    comment: str | None = None,
) -> FindingRow:
    if verdict not in VERDICTS:
        raise FinOpsError(f"unknown feedback {verdict!r}; choose from {', '.join(VERDICTS)}")
    if verdict == "snooze" and (days is None or days < 1):
        raise FinOpsError("snooze needs --days N (N >= 1)")
    fingerprint = get_finding(db, finding_id).fingerprint
    with db.session() as session:
        row = session.get(FindingRow, fingerprint)
        assert row is not None
        until = now + timedelta(days=days) if verdict == "snooze" and days else None
        session.add(
            FindingFeedback(
                fingerprint=fingerprint,
                verdict=verdict,
                actor=actor,
                comment=comment,
                until=until,
                created_at=now,
            )
        )
        if verdict == "snooze":
            row.status, row.snoozed_until = "snoozed", until
        elif verdict == "reopen":
            row.status, row.snoozed_until, row.resolved_at = "open", None, None
        else:
            row.status = "suppressed"
        return row


def mark_notified(session: Session, fingerprints: Iterable[str]) -> int:
    """``open`` → ``notified`` for these findings, in the caller's transaction (the owner was told; other
    statuses are left as they are). Returns how many changed."""
    wanted = list(dict.fromkeys(fingerprints))
    if not wanted:
        return 0
    result = session.execute(
        update(FindingRow)
        .where(FindingRow.fingerprint.in_(wanted), FindingRow.status == "open")
        .values(status="notified")
    )
    return int(getattr(result, "rowcount", 0) or 0)


def suppressed_fingerprints(db: Database) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(FindingRow.fingerprint).where(FindingRow.status == "suppressed")))


def finding_dict(row: FindingRow, *, full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.fingerprint,
        "kind": row.kind,
        "rule": row.rule_id,
        "title": row.title,
        "status": row.status,
        "severity": row.severity,
        "team": row.team,
        "resource": row.resource,
        "monthly_impact": Decimal(row.monthly_impact),
        "currency": row.currency,
        "proposed_action": row.proposed_action,
        "last_seen": row.last_seen.isoformat(timespec="seconds"),
    }
    if full:
        out.update(
            resource_kind=row.resource_kind,
            account=row.account,
            scope=json.loads(row.scope),
            owner_reason=row.owner_reason,
            evidence=json.loads(row.evidence),
            action_params=json.loads(row.action_params),
            recommendation=row.recommendation,
            first_seen=row.first_seen.isoformat(timespec="seconds"),
            times_seen=row.times_seen,
            resolved_at=row.resolved_at.isoformat(timespec="seconds") if row.resolved_at else None,
            snoozed_until=row.snoozed_until.isoformat(timespec="seconds") if row.snoozed_until else None,
        )
    return out
