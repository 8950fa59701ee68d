"""Governance intake: the register of AI services / features (owner, use case, environment, models, estimated
monthly spend).

A team registers a feature before (or when) it starts calling models: ``finops intake register`` or the
Slack modal (``/finops intake``). The register is what the ``unregistered-feature`` rule checks LLM usage
against, and what the monthly review lists. Registering a model that the environment's ``approved_models``
does not list is allowed but answered with a warning (the ``unapproved-model`` rule will flag its usage).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select

from config.model import FinOpsConfig
from tools.errors import FinOpsError
from tools.store.db import Database
from tools.store.models import AiService

STATUSES = ("registered", "retired")
ANY_ENVIRONMENT = "*"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


class IntakeError(FinOpsError):
    """A registration that cannot be recorded: what is wrong and what to give instead."""


@dataclass(frozen=True)
class AiServiceRecord:
    id: str
    feature: str
    environment: str
    team: str
    owner: str
    use_case: str
    models: tuple[str, ...]
    est_monthly_spend: Decimal
    currency: str
    status: str
    registered_by: str
    channel: str
    registered_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "feature": self.feature,
            "environment": self.environment,
            "team": self.team,
            "owner": self.owner,
            "use_case": self.use_case,
            "models": list(self.models),
            "est_monthly_spend": self.est_monthly_spend,
            "currency": self.currency,
            "status": self.status,
            "registered_by": self.registered_by,
            "channel": self.channel,
            "registered_at": self.registered_at.isoformat(timespec="seconds"),
            "updated_at": self.updated_at.isoformat(timespec="seconds"),
        }


@dataclass(frozen=True)
class Registration:
    """The validated fields of one registration (``validate``), before it is stored."""

    feature: str
    environment: str
    team: str
    owner: str
    use_case: str
    models: tuple[str, ...]
    est_monthly_spend: Decimal
    warnings: tuple[str, ...] = ()


def _record(row: AiService) -> AiServiceRecord:
    return AiServiceRecord(
        id=row.id,
        feature=row.feature,
        environment=row.environment,
        team=row.team,
        owner=row.owner,
        use_case=row.use_case,
        models=tuple(json.loads(row.models or "[]")),
        est_monthly_spend=Decimal(row.est_monthly_spend),
        currency=row.currency,
        status=row.status,
        registered_by=row.registered_by,
        channel=row.channel,
        registered_at=row.registered_at,
        updated_at=row.updated_at,
    )


def split_models(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"gpt-4o-mini, claude-3-5-haiku"`` or a list -> the distinct model names, in order."""
    items = re.split(r"[,\s]+", text) if isinstance(text, str) else list(text)
    return tuple(dict.fromkeys(m.strip() for m in items if m and m.strip()))


def validate(
    config: FinOpsConfig,
    *,
    feature: str,
    environment: str,
    team: str,
    owner: str,
    use_case: str,
    models: str | Sequence[str],
    est_monthly_spend: str | Decimal | int,
) -> Registration:
    """Check every field; one IntakeError listing every problem (field: what is wrong; what to give)."""
    from tools.rules.premium_model import approved_name

    problems: list[str] = []
    feature, environment, team, owner = feature.strip(), environment.strip(), team.strip(), owner.strip()
    if not _NAME.match(feature):
        problems.append(
            f"feature {feature!r}: give the feature's name as it appears in usage tags, e.g. support-chat"
        )
    if not _NAME.match(environment) and environment != ANY_ENVIRONMENT:
        problems.append(
            f"environment {environment!r}: give an environment such as prod, staging, dev (or * for all)"
        )
    known = [t.name for t in config.teams]
    if not team:
        problems.append("team: give the owning team")
    elif known and team not in known:
        problems.append(f"team {team!r} is not in finops.yaml; known teams: {', '.join(known)}")
    if not owner:
        problems.append("owner: give the owner's Slack id (U...) or e-mail")
    if len(use_case.strip()) < 3:
        problems.append("use case: say in a few words what the feature does with the models")
    names = split_models(models)
    if not names:
        problems.append("models: give at least one model, e.g. gpt-4o-mini")
    try:
        spend = Decimal(str(est_monthly_spend).replace(",", "").replace("$", "").strip())
        if spend < 0 or not spend.is_finite():
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        problems.append(
            f"estimated monthly spend {est_monthly_spend!r}: give a non-negative amount, e.g. 500"
        )
        spend = Decimal(0)
    if problems:
        raise IntakeError("cannot register the AI service: " + "; ".join(problems))
    warnings = []
    approved = config.approved_models.get(environment)
    if approved is not None:
        unapproved = [m for m in names if approved_name(m, approved) is None]
        if unapproved:
            warnings.append(
                f"{', '.join(unapproved)} {'is' if len(unapproved) == 1 else 'are'} not approved for {environment} "
                f"(approved: {', '.join(approved)}); its usage will be flagged by the unapproved-model rule"
            )
    return Registration(feature, environment, team, owner, use_case.strip(), names, spend, tuple(warnings))


def register_service(
    db: Database, config: FinOpsConfig, reg: Registration, *, actor: str, channel: str, now: datetime
) -> tuple[AiServiceRecord, bool]:
    """Store ``reg`` (a re-registration of the same feature and environment updates it and makes it
    ``registered`` again). Returns the record and whether it is new."""
    with db.session() as s:
        row = s.scalars(
            select(AiService).where(
                AiService.feature == reg.feature, AiService.environment == reg.environment
            )
        ).first()
        created = row is None
        if row is None:
            row = AiService(
                id=f"ai-{uuid.uuid4().hex[:12]}",
                feature=reg.feature,
                environment=reg.environment,
                registered_at=now,
            )
            s.add(row)
        row.team, row.owner, row.use_case = reg.team, reg.owner, reg.use_case
        row.models = json.dumps(list(reg.models))
        row.est_monthly_spend, row.currency = reg.est_monthly_spend, config.currency
        row.status, row.registered_by, row.channel, row.updated_at = "registered", actor, channel, now
        s.flush()
        return _record(row), created


def retire_service(db: Database, feature: str, environment: str, *, now: datetime) -> AiServiceRecord:
    with db.session() as s:
        row = s.scalars(
            select(AiService).where(AiService.feature == feature, AiService.environment == environment)
        ).first()
        if row is None:
            raise IntakeError(
                f"no registered AI service {feature!r} in {environment!r}; `finops intake list` shows the register"
            )
        row.status, row.updated_at = "retired", now
        s.flush()
        return _record(row)


def list_services(
    db: Database, *, status: str | None = None, team: str | None = None
) -> list[AiServiceRecord]:
    if status is not None and status not in STATUSES:
        raise IntakeError(f"unknown status {status!r}; choose {' or '.join(STATUSES)}")
    with db.session() as s:
        q = select(AiService).order_by(AiService.team, AiService.feature, AiService.environment)
        if status:
            q = q.where(AiService.status == status)
        if team:
            q = q.where(AiService.team == team)
        return [_record(r) for r in s.scalars(q)]


def registered_features(db: Database) -> frozenset[tuple[str, str]]:
    """(feature, environment) of every registered service; environment ``*`` covers every environment."""
    return frozenset((r.feature, r.environment) for r in list_services(db, status="registered"))
