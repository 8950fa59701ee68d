"""The audit trail: append-only, hash-chained, verifiable, exportable.

Each entry's ``hash`` is SHA-256 over the canonical JSON of its fields and the previous entry's hash, so
editing, deleting or reordering an entry breaks the chain from that entry on. The one-row ``audit_head``
holds the count and the last hash: an append locks it first (so appends chain in order on every backend,
also under concurrency), and ``verify`` compares it with the table, which catches a truncated tail. On
PostgreSQL a trigger also refuses UPDATE, DELETE and TRUNCATE of ``audit_log``. (Someone who can rewrite
every row *and* the head can forge a consistent chain: ``finops audit export`` prints the head hash, which
can be anchored elsewhere — a ticket, a signed commit — to close that gap.)

Entries are written in the caller's transaction: a decision and its audit entry commit together or not at
all. Secrets never land in the trail: keys that name a secret and values that look like one are redacted.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from approvals.actions.base import canonical_json
from tools.redaction import REDACTED, redact_text
from tools.store.models import AuditEntry, AuditHead

GENESIS = "0" * 64

_SECRET_KEY = re.compile(
    r"(secret|password|passwd|api[_-]?key|authorization|credential|signing"
    r"|(?<![a-z])token(?!s)(?!_?(?:count|limit|budget|usage)))",
    re.I,
)
#: keys that count tokens (``monthly_tokens``, ``max_tokens``, ``tokens_per_minute``) are figures, not secrets

#: the events the product writes (free text is allowed, these are the ones the code uses)
EVENTS = (
    "request.proposed",
    "request.approved",
    "request.rejected",
    "request.expired",
    "request.cancelled",
    "request.superseded",
    "request.refused",
    "request.notified",
    "finding.notified",
    "finding.feedback",
    "intake.registered",
    "intake.updated",
    "intake.retired",
    "execution.started",
    "execution.succeeded",
    "execution.failed",
    "execution.dry_run",
    "execution.reconciled",
    "rollback.started",
    "rollback.succeeded",
    "rollback.failed",
    "guardrail.changed",
)


def redact(value: Any) -> Any:
    """A copy of ``value`` with secret-looking keys and values replaced by ``[redacted]``."""
    if isinstance(value, Mapping):
        return {
            str(k): (REDACTED if _SECRET_KEY.search(str(k)) and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return at.astimezone(UTC)


def entry_hash(
    prev_hash: str,
    seq: int,
    at: datetime,
    event: str,
    actor: str,
    channel: str | None,
    request_id: str | None,
    resource: str | None,
    details: str,
) -> str:
    body = canonical_json(
        {
            "prev": prev_hash,
            "seq": seq,
            "at": _utc(at).isoformat(),
            "event": event,
            "actor": actor,
            "channel": channel,
            "request_id": request_id,
            "resource": resource,
            "details": details,
        }
    )
    return hashlib.sha256(body.encode()).hexdigest()


def append(
    session: Session,
    *,
    event: str,
    actor: str,
    at: datetime,
    channel: str | None = None,
    request_id: str | None = None,
    resource: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Add one entry in the caller's transaction (committed with it, or not at all)."""
    at = _utc(at).replace(microsecond=(_utc(at).microsecond // 1000) * 1000)  # ms: same on every backend
    # lock the head first: concurrent appends queue here, so each reads the hash the previous one wrote
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(entries=AuditHead.entries + 1))
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
    session.refresh(head)
    seq, prev = head.entries, head.last_hash
    text = canonical_json(redact(dict(details or {})))
    digest = entry_hash(prev, seq, at, event, actor, channel, request_id, resource, text)
    entry = AuditEntry(
        seq=seq,
        at=at,
        event=event,
        actor=actor,
        channel=channel,
        request_id=request_id,
        resource=resource,
        details=text,
        prev_hash=prev,
        hash=digest,
    )
    session.add(entry)
    head.last_hash = digest
    session.flush()
    return entry


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    last_hash: str
    broken_seq: int | None = None  # the first entry that does not check out
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "last_hash": self.last_hash,
            "broken_seq": self.broken_seq,
            "problem": self.problem,
        }


def verify(session: Session) -> Verification:
    """Recompute the chain from the first entry; report the first entry that breaks it."""
    prev, expected_seq, count = GENESIS, 1, 0
    rows = session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars()
    for entry in rows:
        count += 1
        if entry.seq != expected_seq:
            return Verification(
                False,
                count,
                prev,
                expected_seq,
                f"entry {expected_seq} is missing (next entry is {entry.seq}): entries were deleted",
            )
        if entry.prev_hash != prev:
            return Verification(
                False,
                count,
                prev,
                entry.seq,
                f"entry {entry.seq} does not follow entry {entry.seq - 1}: entries were reordered, replaced "
                "or deleted",
            )
        digest = entry_hash(
            prev,
            entry.seq,
            entry.at,
            entry.event,
            entry.actor,
            entry.channel,
            entry.request_id,
            entry.resource,
            entry.details,
        )
        if digest != entry.hash:
            return Verification(
                False, count, prev, entry.seq, f"entry {entry.seq} was modified after it was written"
            )
        prev, expected_seq = entry.hash, expected_seq + 1
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one_or_none()
    if head is None:
        return Verification(False, count, prev, None, "the audit head row is missing")
    if head.entries != count or head.last_hash != prev:
        return Verification(
            False,
            count,
            prev,
            count + 1,
            f"the trail ends at entry {count} but {head.entries} were written: the newest entries were "
            "removed (truncated)",
        )
    return Verification(True, count, prev)


def entry_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": _utc(entry.at).isoformat(),
        "event": entry.event,
        "actor": entry.actor,
        "channel": entry.channel,
        "request_id": entry.request_id,
        "resource": entry.resource,
        "details": json.loads(entry.details),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def list_entries(
    session: Session,
    *,
    resource: str | None = None,
    actor: str | None = None,
    request_id: str | None = None,
    event: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
    newest_first: bool = False,
) -> list[AuditEntry]:
    stmt = select(AuditEntry)
    if resource:
        stmt = stmt.where(AuditEntry.resource == resource)
    if actor:
        stmt = stmt.where(AuditEntry.actor == actor)
    if request_id:
        stmt = stmt.where(AuditEntry.request_id == request_id)
    if event:
        stmt = stmt.where(AuditEntry.event.startswith(event))
    if since:
        stmt = stmt.where(AuditEntry.at >= _utc(since))
    if until:
        stmt = stmt.where(AuditEntry.at < _utc(until))
    stmt = stmt.order_by(AuditEntry.seq.desc() if newest_first else AuditEntry.seq)
    if limit:
        stmt = stmt.limit(limit)
    return list(session.execute(stmt).scalars())


EXPORT_COLUMNS = (
    "seq",
    "at",
    "event",
    "actor",
    "channel",
    "request_id",
    "resource",
    "details",
    "prev_hash",
    "hash",
)


def export_lines(entries: Sequence[AuditEntry], fmt: str) -> Iterator[str]:
    """JSON lines (one object per entry) or CSV with a header; ``details`` as canonical JSON text in CSV."""
    if fmt == "jsonl":
        for e in entries:
            yield json.dumps(entry_dict(e), sort_keys=True, ensure_ascii=False) + "\n"
        return
    if fmt != "csv":
        raise ValueError(f"unknown export format {fmt!r}; use jsonl or csv")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    yield buffer.getvalue()
    for e in entries:
        buffer.seek(0)
        buffer.truncate()
        d = entry_dict(e)
        d["details"] = e.details
        writer.writerow([d[c] if d[c] is not None else "" for c in EXPORT_COLUMNS])
        yield buffer.getvalue()
