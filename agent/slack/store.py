"""The messages the Slack app sent (table ``slack_messages``): claimed before sending, found again after a
click.

One row per finding (or request) a message shows: a digest of five findings is five rows with the same
``channel`` / ``ts``. The handlers read ``message_at(channel, ts)`` (what a clicked message shows) or
``refs_for_request(request_id)`` (where a request is shown) and update those messages with chat.update.

Sending is claimed first, so a finding is notified once however many runs, restarts and concurrent
workers there are:

- ``claim_finding`` inserts the finding's row in status ``sending`` in its own transaction. The unique
  index on (finding, episode) of the outreach kinds (``finding``, ``digest``) decides between concurrent
  claims, on SQLite and PostgreSQL alike (``INSERT … ON CONFLICT DO NOTHING``: the loser inserts nothing).
  A ``failed`` row, and a ``sending`` row older than ``stale_after`` (a run that died between the claim
  and Slack's answer), are claimed again with one conditional UPDATE — also a single winner.
- ``mark_sent`` records Slack's channel id and ts, moves the finding ``open`` → ``notified``, stores the
  channel/ts on the remediation request, and writes the audit entries (``finding.notified``,
  ``request.notified``), all in one transaction. ``mark_failed`` records the error; a later run retries.

Reopened findings (the judgement call): a finding is notified once per *episode*. After its message, the
finding is ``notified``; it is ``open`` again only if it was resolved and came back, its snooze ended, or
someone reopened it. Such a finding gets a new message (episode + 1) — the owner hears about waste that
came back, and about a snoozed finding when the snooze ends. Re-scans, re-runs and restarts never send
again: a ``notified`` finding is not claimable. The earlier message and its row stay (its buttons still
answer by id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from approvals import audit
from tools.errors import FinOpsError
from tools.findings_store import mark_notified
from tools.store.db import Database
from tools.store.models import OUTREACH_KINDS, FindingRow, RemediationRequest, SlackMessage

Kind = Literal["finding", "digest"]
ResolvedBy = Literal["config", "email", "team-channel", "finops-channel"]
KINDS: tuple[str, ...] = OUTREACH_KINDS
RESOLVED_BY: tuple[str, ...] = ("config", "email", "team-channel", "finops-channel")
SENDING, SENT, FAILED = "sending", "sent", "failed"
#: a ``sending`` row older than this is taken to be a run that died before Slack answered, and retried
DEFAULT_STALE_AFTER = timedelta(minutes=30)
#: longest error text kept on a failed row
ERROR_MAX = 2000
#: findings per query when reading the rows of many findings (below SQLite's variable limit)
CHUNK = 500
#: the audit trail's channel for everything sent through Slack
AUDIT_CHANNEL = "slack"


class SlackStoreError(FinOpsError):
    """A call on the Slack message store that cannot be carried out; the message says what to do."""


@dataclass(frozen=True)
class SlackMessageRef:
    """One row of ``slack_messages``: one finding (or request) shown by the message at ``channel``/``ts``."""

    id: int
    kind: str
    finding: str | None
    episode: int
    request_id: str | None
    team: str | None
    recipient: str
    resolved_by: str
    channel: str | None
    ts: str | None
    thread_ts: str | None
    interrupt_id: str | None
    status: str
    error: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def sent(self) -> bool:
        return self.status == SENT

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "finding": self.finding,
            "episode": self.episode,
            "request_id": self.request_id,
            "team": self.team,
            "recipient": self.recipient,
            "resolved_by": self.resolved_by,
            "channel": self.channel,
            "ts": self.ts,
            "thread_ts": self.thread_ts,
            "interrupt_id": self.interrupt_id,
            "status": self.status,
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class Shown:
    """What a sent message shows of one finding: the finding, its remediation request and the remediation
    graph's pause the request's buttons answer (None when the message has no Approve / Reject)."""

    finding: str
    request_id: str | None = None
    interrupt_id: str | None = None


def _ref(row: SlackMessage) -> SlackMessageRef:
    return SlackMessageRef(
        id=row.id,
        kind=row.kind,
        finding=row.finding,
        episode=row.episode,
        request_id=row.request_id,
        team=row.team,
        recipient=row.recipient,
        resolved_by=row.resolved_by,
        channel=row.channel,
        ts=row.ts,
        thread_ts=row.thread_ts,
        interrupt_id=row.interrupt_id,
        status=row.status,
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _check_claim(kind: str, resolved_by: str, recipient: str) -> None:
    if kind not in KINDS:
        raise SlackStoreError(f"unknown message kind {kind!r}; outreach messages are {', '.join(KINDS)}")
    if resolved_by not in RESOLVED_BY:
        raise SlackStoreError(
            f"unknown resolved_by {resolved_by!r}; a destination is resolved by {', '.join(RESOLVED_BY)}"
        )
    if not recipient:
        raise SlackStoreError("a message needs a recipient (a Slack user id, a channel id or #name)")


def _outreach_rows(finding_id: str) -> Any:
    return and_(SlackMessage.finding == finding_id, SlackMessage.kind.in_(KINDS))


def _insert_new(session: Session, values: Mapping[str, Any]) -> bool:
    """INSERT the row unless the unique index already holds its (finding, episode): True when inserted."""
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt: Any = pg_insert(SlackMessage).values(**values).on_conflict_do_nothing()
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(SlackMessage).values(**values).on_conflict_do_nothing()
        # RETURNING says whether the row went in (rowcount is -1 with RETURNING on psycopg)
        return session.execute(stmt.returning(SlackMessage.id)).first() is not None
    try:  # another backend: the same decision through a savepoint
        with session.begin_nested():
            session.add(SlackMessage(**values))
        return True
    except IntegrityError:
        return False


def claim_finding(
    db: Database,
    finding_id: str,
    *,
    kind: Kind,
    team: str | None,
    recipient: str,
    resolved_by: ResolvedBy,
    now: datetime,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
) -> bool:
    """Claim the right to notify the owner of ``finding_id`` (an ``open`` finding): True for exactly one
    caller. Inserts the row in ``sending`` (the first message, or a new episode of a finding that is open
    again since its last message), or takes over a ``failed`` row or a ``sending`` row older than
    ``stale_after``. False when the finding is not open, or another run holds or sent its message."""
    claimed = claim_findings(
        db,
        {finding_id: team},
        kind=kind,
        recipient=recipient,
        resolved_by=resolved_by,
        now=now,
        stale_after=stale_after,
    )
    return claimed == [finding_id]


def claim_findings(
    db: Database,
    findings: Mapping[str, str | None],
    *,
    kind: Kind,
    recipient: str,
    resolved_by: ResolvedBy,
    now: datetime,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
) -> list[str]:
    """``claim_finding`` for the findings of one message (finding id → its team), in one transaction: the
    ids this caller claimed. Claims run in id order, so concurrent runs claiming the same digest queue on
    its first finding and one of them gets the whole digest (on SQLite the database lock serialises them)
    rather than each sending a part."""
    _check_claim(kind, resolved_by, recipient)
    claimed: list[str] = []
    with db.session() as s:
        for finding_id in sorted(findings):
            fields: dict[str, Any] = {
                "kind": kind,
                "team": findings[finding_id],
                "recipient": recipient,
                "resolved_by": resolved_by,
                "status": SENDING,
                "channel": None,
                "ts": None,
                "thread_ts": None,
                "request_id": None,
                "interrupt_id": None,
                "error": None,
                "updated_at": now,
            }
            if _claim_one(s, finding_id, fields, now - stale_after):
                claimed.append(finding_id)
    return claimed


def _claim_one(s: Session, finding_id: str, fields: Mapping[str, Any], stale_before: datetime) -> bool:
    finding_open = exists().where(FindingRow.fingerprint == finding_id, FindingRow.status == "open")
    # a write first: on SQLite it takes the database's write lock, so what follows reads a settled state
    retried = s.connection().execute(
        update(SlackMessage)
        .where(
            _outreach_rows(finding_id),
            or_(
                SlackMessage.status == FAILED,
                and_(SlackMessage.status == SENDING, SlackMessage.updated_at < stale_before),
            ),
            finding_open,
        )
        .values(**fields)
    )
    if int(getattr(retried, "rowcount", 0) or 0) >= 1:
        return True
    latest = s.execute(
        select(SlackMessage.episode, SlackMessage.status)
        .where(_outreach_rows(finding_id))
        .order_by(SlackMessage.episode.desc())
        .limit(1)
    ).first()
    if latest is not None and latest.status != SENT:
        return False  # being sent by another run (or failed and the finding is no longer open)
    if s.scalar(select(FindingRow.status).where(FindingRow.fingerprint == finding_id)) != "open":
        return False
    episode = 1 if latest is None else int(latest.episode) + 1
    created = fields["updated_at"]
    return _insert_new(s, {**fields, "finding": finding_id, "episode": episode, "created_at": created})


def _sending(s: Session, finding_ids: Sequence[str]) -> dict[str, SlackMessage]:
    rows = s.scalars(
        select(SlackMessage).where(
            SlackMessage.finding.in_(list(finding_ids)),
            SlackMessage.kind.in_(KINDS),
            SlackMessage.status == SENDING,
        )
    )
    return {str(r.finding): r for r in rows}


def mark_sent(
    db: Database,
    shown: Sequence[Shown],
    *,
    channel: str,
    ts: str,
    now: datetime,
    actor: str,
    thread_ts: str | None = None,
) -> list[SlackMessageRef]:
    """Slack accepted the message at ``channel``/``ts`` showing ``shown`` (one finding, or a digest's
    several): in one transaction the claimed rows become ``sent`` with the channel id, ts, request and
    interrupt id; the findings ``open`` → ``notified``; each request gets the message's channel/ts; and the
    audit trail gets ``finding.notified`` per finding and ``request.notified`` per request (actor
    ``actor``, channel ``slack``; recipient, how it was resolved, channel id and ts in the details).

    Returns the rows now sent. A finding whose row is no longer ``sending`` (another run took it over
    after ``stale_after``) is left out of the result; the caller can tell by the count."""
    if not channel or not ts:
        raise SlackStoreError("mark_sent needs the channel id and ts Slack returned for the message")
    if not shown:
        return []
    by_finding = {item.finding: item for item in shown}
    with db.session() as s:
        rows = _sending(s, list(by_finding))
        done: list[SlackMessage] = []
        for finding_id, item in by_finding.items():
            row = rows.get(finding_id)
            if row is None:
                continue
            row.status, row.channel, row.ts, row.thread_ts = SENT, channel, ts, thread_ts
            row.request_id, row.interrupt_id, row.error, row.updated_at = (
                item.request_id,
                item.interrupt_id,
                None,
                now,
            )
            done.append(row)
        s.flush()
        mark_notified(s, [str(r.finding) for r in done])
        request_ids = list(dict.fromkeys(r.request_id for r in done if r.request_id))
        if request_ids:
            s.execute(
                update(RemediationRequest)
                .where(RemediationRequest.id.in_(request_ids))
                .values(slack_channel=channel, slack_ts=ts)
            )
        _audit_sent(s, done, actor=actor, now=now)
        return [_ref(r) for r in done]


def _audit_sent(s: Session, rows: Sequence[SlackMessage], *, actor: str, now: datetime) -> None:
    if not rows:
        return
    fingerprints = [str(r.finding) for r in rows]
    found = {
        f.fingerprint: f
        for f in s.scalars(select(FindingRow).where(FindingRow.fingerprint.in_(fingerprints)))
    }
    requests = {
        r.id: r
        for r in s.scalars(
            select(RemediationRequest).where(
                RemediationRequest.id.in_([row.request_id for row in rows if row.request_id])
            )
        )
    }
    for row in rows:
        finding = found.get(str(row.finding))
        details = {
            "finding": row.finding,
            "title": finding.title if finding is not None else None,
            "kind": row.kind,
            "episode": row.episode,
            "team": row.team,
            "recipient": row.recipient,
            "resolved_by": row.resolved_by,
            "slack_channel": row.channel,
            "ts": row.ts,
            "shown_with": len(rows),
            "message": row.id,
        }
        audit.append(
            s,
            event="finding.notified",
            actor=actor,
            at=now,
            channel=AUDIT_CHANNEL,
            request_id=row.request_id,
            resource=finding.resource if finding is not None else None,
            details=details,
        )
        request = requests.get(row.request_id) if row.request_id else None
        if request is not None:
            audit.append(
                s,
                event="request.notified",
                actor=actor,
                at=now,
                channel=AUDIT_CHANNEL,
                request_id=request.id,
                resource=request.resource,
                details={**details, "interrupt_id": row.interrupt_id, "approvals": _approvals(request)},
            )


def _approvals(request: RemediationRequest) -> str:
    return f"{request.approvals_given}/{request.required_approvals}"


def mark_failed(db: Database, finding_ids: Iterable[str], *, error: str, now: datetime) -> int:
    """Slack refused the message (or it could not be sent): the claimed rows of ``finding_ids`` become
    ``failed`` with ``error`` (never a token: pass Slack's error code or the exception text), so a later
    run claims them again. Returns how many rows changed."""
    wanted = list(dict.fromkeys(finding_ids))
    if not wanted:
        return 0
    changed = 0
    with db.session() as s:
        for i in range(0, len(wanted), CHUNK):
            result = s.execute(
                update(SlackMessage)
                .where(
                    SlackMessage.finding.in_(wanted[i : i + CHUNK]),
                    SlackMessage.kind.in_(KINDS),
                    SlackMessage.status == SENDING,
                )
                .values(status=FAILED, error=(error or "unknown error")[:ERROR_MAX], updated_at=now)
            )
            changed += int(getattr(result, "rowcount", 0) or 0)
    return changed


def message_at(db: Database, channel: str, ts: str) -> list[SlackMessageRef]:
    """Every finding / request shown by the message at ``channel``/``ts`` (a digest shows several), in the
    order they were stored; empty when the app did not send (or did not record) that message."""
    with db.session() as s:
        rows = s.scalars(
            select(SlackMessage)
            .where(SlackMessage.channel == channel, SlackMessage.ts == ts)
            .order_by(SlackMessage.id)
        )
        return [_ref(r) for r in rows]


def refs_for_request(db: Database, request_id: str) -> list[SlackMessageRef]:
    """Every message row that shows ``request_id`` (oldest first): where to chat.update after a decision."""
    with db.session() as s:
        rows = s.scalars(
            select(SlackMessage).where(SlackMessage.request_id == request_id).order_by(SlackMessage.id)
        )
        return [_ref(r) for r in rows]


def refs_for_finding(db: Database, finding_id: str) -> list[SlackMessageRef]:
    """Every message row that shows ``finding_id`` (oldest first), e.g. after Snooze / Not waste."""
    with db.session() as s:
        rows = s.scalars(
            select(SlackMessage).where(SlackMessage.finding == finding_id).order_by(SlackMessage.id)
        )
        return [_ref(r) for r in rows]


def latest_outreach(db: Database, finding_ids: Iterable[str]) -> dict[str, SlackMessageRef]:
    """The latest outreach row (highest episode) of each of ``finding_ids`` that has one."""
    wanted = list(dict.fromkeys(finding_ids))
    out: dict[str, SlackMessageRef] = {}
    with db.session() as s:
        for i in range(0, len(wanted), CHUNK):
            rows = s.scalars(
                select(SlackMessage)
                .where(SlackMessage.finding.in_(wanted[i : i + CHUNK]), SlackMessage.kind.in_(KINDS))
                .order_by(SlackMessage.finding, SlackMessage.episode)
            )
            out.update((str(r.finding), _ref(r)) for r in rows)
    return out


def set_interrupt(
    db: Database, request_id: str, interrupt_id: str | None, *, now: datetime | None = None
) -> int:
    """The remediation graph of ``request_id`` now waits at ``interrupt_id`` (None: no longer waits): every
    message row showing the request records it, so the next click answers the current pause. Returns how
    many rows changed."""
    with db.session() as s:
        result = s.execute(
            update(SlackMessage)
            .where(SlackMessage.request_id == request_id)
            .values(interrupt_id=interrupt_id, updated_at=now or datetime.now(UTC))
        )
        return int(getattr(result, "rowcount", 0) or 0)


def link_request(
    db: Database,
    message_id: int,
    request_id: str,
    *,
    interrupt_id: str | None = None,
    now: datetime | None = None,
) -> SlackMessageRef:
    """Show another request in the message row ``message_id`` (e.g. the fresh request proposed when a
    resource drifted before execution, rendered in the same message): the row points at it and its
    pause, and the request gets the message's channel/ts."""
    with db.session() as s:
        row = s.get(SlackMessage, message_id)
        if row is None:
            raise SlackStoreError(f"no Slack message row {message_id}; `message_at(channel, ts)` lists them")
        if s.get(RemediationRequest, request_id) is None:
            raise SlackStoreError(
                f"no remediation request {request_id!r}; `finops approvals list` lists them"
            )
        row.request_id, row.interrupt_id, row.updated_at = request_id, interrupt_id, now or datetime.now(UTC)
        if row.channel and row.ts:
            s.execute(
                update(RemediationRequest)
                .where(RemediationRequest.id == request_id)
                .values(slack_channel=row.channel, slack_ts=row.ts)
            )
        s.flush()
        return _ref(row)


__all__ = [
    "DEFAULT_STALE_AFTER",
    "KINDS",
    "RESOLVED_BY",
    "Kind",
    "ResolvedBy",
    "Shown",
    "SlackMessageRef",
    "SlackStoreError",
    "claim_finding",
    "claim_findings",
    "latest_outreach",
    "link_request",
    "mark_failed",
    "mark_sent",
    "message_at",
    "refs_for_finding",
    "refs_for_request",
    "set_interrupt",
]
