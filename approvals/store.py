"""Reading and moving remediation requests in the app database.

``claim`` is the only way a status changes: one conditional UPDATE ``WHERE id = :id AND status IN (the
states the event may leave) [AND extra conditions]``. The caller whose UPDATE hit one row owns the move; any
other caller (a double click, a second worker, a concurrent approver) hits zero rows and stops.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from approvals.machine import Event, next_status, sources
from tools.errors import FinOpsError
from tools.store.models import ApprovalDecision, RemediationRequest


class RequestNotFound(FinOpsError):
    pass


def get_request(session: Session, request_id: str) -> RemediationRequest:
    """By request id, or by action id (``act-...``); raises ``RequestNotFound`` naming what to run."""
    row = session.get(RemediationRequest, request_id)
    if row is None:
        row = session.execute(
            select(RemediationRequest).where(RemediationRequest.action_id == request_id)
        ).scalar_one_or_none()
    if row is None:
        raise RequestNotFound(
            f"no remediation request or action {request_id!r}; `finops approvals list` shows the ids"
        )
    return row


def claim(
    session: Session,
    request_id: str,
    event: Event,
    now: datetime,
    *,
    values: Mapping[str, Any] | None = None,
    where: tuple[ColumnElement[bool], ...] = (),
    to_status: str | None = None,
) -> bool:
    """Move the request by ``event`` if (and only if) it is still in a state the event may leave and the
    ``where`` conditions hold; True when this caller made the move."""
    allowed = sources(event)
    target = to_status or next_status(allowed[0], event)
    stmt = (
        update(RemediationRequest)
        .where(RemediationRequest.id == request_id, RemediationRequest.status.in_(allowed), *where)
        .values(status=target, updated_at=now, **dict(values or {}))
        .execution_options(synchronize_session=False)
    )
    result = session.execute(stmt)
    return bool(getattr(result, "rowcount", 0) == 1)


def decisions(session: Session, request_id: str) -> list[ApprovalDecision]:
    return list(
        session.execute(
            select(ApprovalDecision)
            .where(ApprovalDecision.request_id == request_id)
            .order_by(ApprovalDecision.decided_at, ApprovalDecision.id)
        ).scalars()
    )


def loads(text: str | None) -> dict[str, Any]:
    return dict(json.loads(text)) if text else {}
