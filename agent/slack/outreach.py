"""Owner outreach: each new finding is sent once to its owner in Slack, with the proposed fix and its
Approve / Reject buttons, batched into a digest when one recipient gets many.

``notify_owners`` plans first, then sends (the dry run is decided once, here: it plans and stops):

1. **Which findings.** ``open`` findings without a message, with a failed one, with one whose send stopped
   half-way (a ``sending`` row older than ``stale_after``), or that are open again since their message
   (see ``agent.slack.store`` on episodes). A ``notified`` finding is never sent again.
2. **Where.** The owner team's owners' Slack id from finops.yaml (``config``); else the Slack user found by
   ``users.lookupByEmail`` for an owner's email (finops.yaml, or an ``owner`` / ``owner_email`` tag in the
   finding's scope or evidence) (``email``); else the team's ``slack_channel`` (``team-channel``); else
   ``slack.finops_channel`` (``finops-channel``). ``slack.deliver: channel`` puts the team channel first.
   A finding with no destination is skipped (not claimed), so a run after the config is fixed sends it.
3. **How.** More than ``digest_over`` findings for one recipient in one run: one ``digest_message``
   (one row per finding, same channel/ts, kind ``digest``); otherwise one ``finding_message`` each.
4. **Send, claimed.** Each finding is claimed (``claim_finding``) before anything is proposed or sent, so
   re-runs, restarts and concurrent runs send it once. A finding with a proposed action is proposed through
   the remediation graph (``Remediation.start``: the request's thread pauses at its approval interrupt)
   and shown with its plan and buttons; the pause's interrupt id is stored with the message. A proposal the
   policy refuses still sends the finding, without Approve / Reject, and the report says why. Slack errors
   (after the client's own 429 retries) mark the rows ``failed`` for a later run; success marks them sent,
   the finding ``notified``, and audits ``finding.notified`` / ``request.notified``.

A timeout after Slack accepted a message cannot be told from a refusal: such a message is retried and may
arrive twice (Slack's chat.postMessage has no idempotency key). Everything else sends once.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from slack_sdk.errors import SlackApiError, SlackClientError

from agent.slack import store
from agent.slack.blocks import Message, digest_message, finding_message
from agent.slack.store import ResolvedBy, Shown
from config.model import FinOpsConfig, Team
from tools.errors import FinOpsError
from tools.findings_store import finding_dict
from tools.store.db import Database
from tools.store.models import FindingRow

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from agent.remediation import Remediation
    from approvals.service import ApprovalService

log = logging.getLogger(__name__)

Outcome = Literal["planned", "sent", "failed", "skipped"]
#: evidence / scope keys that may hold the owner's email (besides the taxonomy's ``owner`` aliases)
OWNER_KEYS = ("owner", "owner_email", "Owner", "OwnerEmail", "owner-email")
#: evidence keys that hold a resource's tags
TAG_KEYS = ("tags", "current_tags", "resource_tags")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# --- the report -------------------------------------------------------------------------------------


@dataclass
class OutreachItem:
    """What happened to one finding in a run (or, in a dry run, what would)."""

    finding: str
    title: str
    team: str | None
    monthly_impact: Decimal
    currency: str
    outcome: Outcome
    recipient: str | None = None
    resolved_by: str | None = None
    kind: str | None = None  # finding | digest
    channel: str | None = None
    ts: str | None = None
    request_id: str | None = None
    interrupt_id: str | None = None
    reason: str | None = None  # why skipped / failed
    note: str | None = None  # e.g. why no fix was proposed, or that it was open again

    def as_dict(self) -> dict[str, Any]:
        return {
            "finding": self.finding,
            "title": self.title,
            "team": self.team,
            "monthly_impact": self.monthly_impact,
            "currency": self.currency,
            "outcome": self.outcome,
            "recipient": self.recipient,
            "resolved_by": self.resolved_by,
            "kind": self.kind,
            "channel": self.channel,
            "ts": self.ts,
            "request_id": self.request_id,
            "interrupt_id": self.interrupt_id,
            "reason": self.reason,
            "note": self.note,
        }


@dataclass
class Digest:
    """One digest message: who got it, where, and the findings it lists."""

    recipient: str
    resolved_by: str
    findings: list[str]
    outcome: Outcome
    channel: str | None = None
    ts: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "recipient": self.recipient,
            "resolved_by": self.resolved_by,
            "findings": list(self.findings),
            "outcome": self.outcome,
            "channel": self.channel,
            "ts": self.ts,
            "error": self.error,
        }


@dataclass
class OutreachReport:
    """The result of one ``notify_owners`` run: an item per finding considered, the digests, and notes
    (failed email look-ups and the like)."""

    dry_run: bool = False
    items: list[OutreachItem] = field(default_factory=list)
    digests: list[Digest] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def _with(self, outcome: Outcome) -> list[OutreachItem]:
        return [i for i in self.items if i.outcome == outcome]

    @property
    def sent(self) -> list[OutreachItem]:
        return self._with("sent")

    @property
    def failed(self) -> list[OutreachItem]:
        return self._with("failed")

    @property
    def skipped(self) -> list[OutreachItem]:
        return self._with("skipped")

    @property
    def planned(self) -> list[OutreachItem]:
        return self._with("planned")

    @property
    def messages(self) -> int:
        """Messages sent: single findings plus digests."""
        singles = sum(1 for i in self.sent if i.kind == "finding")
        return singles + sum(1 for d in self.digests if d.outcome == "sent")

    def per_destination(self) -> dict[str, dict[str, int]]:
        """recipient → counts of findings by outcome (planned / sent / failed / skipped) and digests."""
        out: dict[str, Counter[str]] = {}
        for item in self.items:
            if item.recipient is None:
                continue
            out.setdefault(item.recipient, Counter())[item.outcome] += 1
        for digest in self.digests:
            out.setdefault(digest.recipient, Counter())["digests"] += 1
        return {k: dict(v) for k, v in out.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "counts": {
                "messages": self.messages,
                "planned": len(self.planned),
                "sent": len(self.sent),
                "digests": len([d for d in self.digests if d.outcome in ("sent", "planned")]),
                "failed": len(self.failed),
                "skipped": len(self.skipped),
            },
            "per_destination": self.per_destination(),
            "items": [i.as_dict() for i in self.items],
            "digests": [d.as_dict() for d in self.digests],
            "notes": list(self.notes),
        }


# --- destinations -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    """Where a finding goes: ``recipient`` is what chat.postMessage takes (a user id, a channel id or a
    ``#name``); ``resolved_by`` says how it was found."""

    recipient: str
    resolved_by: ResolvedBy
    email: str | None = None


def _loads(text: str | None) -> Any:
    try:
        return json.loads(text or "{}")
    except ValueError:
        return {}


def tag_emails(row: FindingRow, config: FinOpsConfig) -> list[str]:
    """Owner emails named by the finding itself: its ``owner`` dimension (scope), and owner / owner_email
    tags in its evidence (the evidence's own keys and the tags it lists)."""
    keys = list(dict.fromkeys([*config.taxonomy.dimensions.get("owner", []), *OWNER_KEYS]))
    keys += [f"user:{k}" for k in keys]
    scope, evidence = _loads(row.scope), _loads(row.evidence)
    places: list[Mapping[str, Any]] = []
    for value in (scope, evidence):
        if isinstance(value, Mapping):
            places.append(value)
    if isinstance(evidence, Mapping):
        places += [evidence[k] for k in TAG_KEYS if isinstance(evidence.get(k), Mapping)]
    found: list[str] = []
    for place in places:
        for key in keys:
            value = place.get(key)
            if isinstance(value, str) and _EMAIL.match(value.strip()):
                found.append(value.strip())
    return list(dict.fromkeys(found))


class Resolver:
    """Resolves findings to destinations, looking e-mails up in Slack once per run (``client`` None: no
    look-ups, as in a dry run without a token)."""

    def __init__(self, config: FinOpsConfig, client: WebClient | None, report: OutreachReport) -> None:
        self.config = config
        self.client = client
        self.report = report
        self._users: dict[str, str | None] = {}

    def lookup(self, email: str) -> str | None:
        """The Slack user id of ``email`` (users.lookupByEmail), None when Slack knows no such user."""
        key = email.lower()
        if key in self._users:
            return self._users[key]
        user: str | None = None
        if self.client is not None:
            try:
                response = self.client.users_lookupByEmail(email=email)
                found = response.get("user") or {}
                if not found.get("deleted") and found.get("id"):
                    user = str(found["id"])
            except SlackApiError as exc:
                code = _slack_error(exc)
                if code != "users_not_found":
                    self.report.notes.append(
                        f"users.lookupByEmail failed for {email}: {code}"
                        + (" (the app needs the users:read.email scope)" if code == "missing_scope" else "")
                    )
            except (SlackClientError, OSError) as exc:
                self.report.notes.append(f"users.lookupByEmail failed for {email}: {exc}")
        self._users[key] = user
        return user

    def resolve(self, row: FindingRow) -> Destination | None:
        team: Team | None = self.config.team(row.team) if row.team else None
        slack = self.config.slack
        if slack.deliver == "channel" and team is not None and team.slack_channel:
            return Destination(team.slack_channel, "team-channel")
        if team is not None:
            for person in team.owners:
                if person.slack_id:
                    return Destination(person.slack_id, "config")
        emails = [p.email for p in (team.owners if team else []) if p.email]
        emails += tag_emails(row, self.config)
        for email in dict.fromkeys(emails):
            if self.client is None:  # a dry run without a token: say what would be looked up
                return Destination(email, "email", email)
            user = self.lookup(email)
            if user:
                return Destination(user, "email", email)
        if team is not None and team.slack_channel:
            return Destination(team.slack_channel, "team-channel")
        if slack.finops_channel:
            return Destination(slack.finops_channel, "finops-channel")
        return None


def no_destination(row: FindingRow) -> str:
    team = f"team {row.team!r}" if row.team else "the finding (no team)"
    return (
        f"no Slack destination for {team}: no owner with a slack_id, no owner email that Slack knows, no "
        "team slack_channel, and no slack.finops_channel; add one of them to finops.yaml"
    )


# --- the remediation graph --------------------------------------------------------------------------


def slack_notifier(svc: ApprovalService, proposal: dict[str, Any]) -> dict[str, Any]:
    """The remediation graph's notifier for requests proposed by outreach: it records nothing, because the
    message is sent (and ``request.notified`` audited, with the message's channel and ts) by
    ``notify_owners`` once Slack has accepted it."""
    return {"channel": "slack", "by": "agent.slack.outreach"}


def _slack_error(exc: SlackApiError) -> str:
    response = getattr(exc, "response", None)
    try:
        code = response.get("error") if response is not None else None
    except AttributeError:
        code = None
    status = getattr(response, "status_code", None)
    text = str(code or "error")
    return f"{text} (HTTP {status})" if status and status != 200 else text


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return _slack_error(exc)
    return f"{type(exc).__name__}: {exc}"


@dataclass
class _Candidate:
    row: FindingRow
    item: OutreachItem
    destination: Destination | None = None


@dataclass
class _Context:
    db: Database
    config: FinOpsConfig
    client: WebClient
    now: datetime
    actor: str
    stale_after: timedelta
    stack: ExitStack
    svc: ApprovalService | None
    remediation: Remediation | None
    report: OutreachReport

    def open_remediation(self) -> Remediation:
        if self.remediation is None:
            from agent.remediation import open_remediation

            if self.svc is None:
                from approvals.service import ApprovalService

                self.svc = ApprovalService(self.db, self.config)
            self.remediation = self.stack.enter_context(open_remediation(self.svc, notifier=slack_notifier))
        if self.svc is None:
            self.svc = self.remediation.svc
        return self.remediation


# --- the run ----------------------------------------------------------------------------------------


def _item(row: FindingRow, outcome: Outcome = "planned") -> OutreachItem:
    return OutreachItem(
        finding=row.fingerprint,
        title=row.title,
        team=row.team,
        monthly_impact=Decimal(row.monthly_impact),
        currency=row.currency,
        outcome=outcome,
    )


def _candidates(
    db: Database, now: datetime, stale_after: timedelta, report: OutreachReport
) -> list[_Candidate]:
    """Open findings (largest $ per month first) that need a message; the others are reported skipped."""
    from sqlalchemy import select

    with db.session() as s:
        rows = list(
            s.scalars(
                select(FindingRow)
                .where(FindingRow.status == "open")
                .order_by(FindingRow.monthly_impact.desc(), FindingRow.fingerprint)
            )
        )
    latest = store.latest_outreach(db, [r.fingerprint for r in rows])
    out: list[_Candidate] = []
    for row in rows:
        item = _item(row)
        ref = latest.get(row.fingerprint)
        if ref is not None and ref.status == store.SENDING and ref.updated_at >= now - stale_after:
            item.outcome, item.recipient, item.resolved_by = "skipped", ref.recipient, ref.resolved_by
            item.reason = f"being sent by another run since {ref.updated_at:%Y-%m-%d %H:%M} UTC"
            report.items.append(item)
            continue
        if ref is not None and ref.status == store.SENT:
            item.note = f"open again since its message of {ref.updated_at:%Y-%m-%d %H:%M} UTC"
        elif ref is not None and ref.status == store.FAILED:
            item.note = f"retry: the last attempt failed ({ref.error})"
        elif ref is not None:
            item.note = "retry: an earlier run stopped before Slack answered"
        out.append(_Candidate(row, item))
    return out


def _group(candidates: Sequence[_Candidate]) -> dict[str, list[_Candidate]]:
    groups: dict[str, list[_Candidate]] = {}
    for c in candidates:
        assert c.destination is not None
        groups.setdefault(c.destination.recipient, []).append(c)
    return groups


def notify_owners(
    db: Database,
    config: FinOpsConfig,
    client: WebClient | None,
    *,
    now: datetime,
    svc: ApprovalService | None = None,
    remediation: Remediation | None = None,
    digest_over: int | None = None,
    dry_run: bool = False,
    stale_after: timedelta = store.DEFAULT_STALE_AFTER,
) -> OutreachReport:
    """Send every open finding that has no message yet to its owner (see the module's docstring).

    ``client``: a ``WebClient`` (``agent.slack.client.make_client``); None only in a dry run, which then
    shows the e-mails it would look up. ``now`` stamps the message rows and audit entries. Proposals go
    through ``remediation`` (a ``Remediation``), else one opened over ``svc`` (else a new
    ``ApprovalService`` on ``db`` with the real clock) with ``slack_notifier``. ``digest_over`` defaults to
    ``slack.digest_over`` in finops.yaml. ``dry_run``: resolve and plan only; claim, propose and send nothing."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    threshold = config.slack.digest_over if digest_over is None else digest_over
    if threshold < 1:
        raise ValueError(f"digest_over must be at least 1, got {threshold}")
    if client is None and not dry_run:
        raise FinOpsError(
            "sending needs a Slack client: set SLACK_BOT_TOKEN, or use --dry-run to see the plan"
        )
    report = OutreachReport(dry_run=dry_run)
    resolver = Resolver(config, client, report)
    ready: list[_Candidate] = []
    for c in _candidates(db, now, stale_after, report):
        c.destination = resolver.resolve(c.row)
        if c.destination is None:
            c.item.outcome, c.item.reason = "skipped", no_destination(c.row)
            report.items.append(c.item)
            continue
        c.item.recipient, c.item.resolved_by = c.destination.recipient, c.destination.resolved_by
        ready.append(c)
    groups = _group(ready)
    if dry_run:
        for recipient, group in groups.items():
            kind = "digest" if len(group) > threshold else "finding"
            for c in group:
                c.item.kind = kind
                if c.row.proposed_action:
                    c.item.note = _join(c.item.note, f"would propose {c.row.proposed_action}")
                report.items.append(c.item)
            if kind == "digest":
                first = group[0].destination
                assert first is not None
                report.digests.append(
                    Digest(recipient, first.resolved_by, [c.row.fingerprint for c in group], "planned")
                )
        return report
    assert client is not None
    owner = remediation.svc if remediation is not None else svc
    agent_id = owner.agent if owner is not None else config.guardrails.agent_id
    with ExitStack() as stack:
        ctx = _Context(db, config, client, now, agent_id, stale_after, stack, svc, remediation, report)
        for group in groups.values():
            if len(group) > threshold:
                _send_digest(ctx, group)
            else:
                for c in group:
                    _send_one(ctx, c)
    return report


def _join(a: str | None, b: str) -> str:
    return f"{a}; {b}" if a else b


def _claim(ctx: _Context, c: _Candidate, kind: store.Kind) -> bool:
    d = c.destination
    assert d is not None
    c.item.kind = kind
    won = store.claim_finding(
        ctx.db,
        c.row.fingerprint,
        kind=kind,
        team=c.row.team,
        recipient=d.recipient,
        resolved_by=d.resolved_by,
        now=ctx.now,
        stale_after=ctx.stale_after,
    )
    if not won:
        _lost(ctx, c)
    return won


def _lost(ctx: _Context, c: _Candidate) -> None:
    c.item.outcome = "skipped"
    c.item.reason = "already notified or being sent by another run"
    ctx.report.items.append(c.item)


def _propose(ctx: _Context, c: _Candidate) -> dict[str, Any] | None:
    """Propose the finding's fix through the remediation graph (up to its approval pause); the request as
    ``ApprovalService.show`` gives it, or None (no action, or the proposal was refused: noted)."""
    if not c.row.proposed_action:
        return None
    from approvals.service import Refused

    remediation = ctx.open_remediation()
    svc = remediation.svc
    try:
        _, view = remediation.start(c.row.fingerprint, requested_by=svc.agent, channel="slack")
    except Refused as exc:
        c.item.note = _join(c.item.note, f"fix not proposed: {exc}")
        return None
    except FinOpsError as exc:  # the action could not observe or plan (cloud unreachable, bad params ...)
        c.item.note = _join(c.item.note, f"fix not proposed: {exc}")
        log.warning("outreach: proposing a fix for finding %s failed: %s", c.row.fingerprint, exc)
        return None
    c.item.request_id, c.item.interrupt_id = view.request_id, view.interrupt_id
    return svc.show(view.request_id)


@contextmanager
def _released_on_error(ctx: _Context, findings: Sequence[str]) -> Iterator[None]:
    """Anything unexpected between the claim and Slack's answer: nothing was sent, so the claimed rows are
    marked failed (a later run retries) before the error propagates."""
    try:
        yield
    except BaseException as exc:
        store.mark_failed(ctx.db, findings, error=_error_text(exc), now=ctx.now)
        raise


#: ``metadata.event_type`` of the app's outreach messages; the payload names the findings the message shows
OUTREACH_EVENT = "finops_outreach"
#: messages of the recipient's channel read when looking for one a crashed run sent
HISTORY_LIMIT = 100


def _sent_before(ctx: _Context, recipient: str, findings: Sequence[str]) -> tuple[str, str] | None:
    """The message an earlier run posted for ``findings`` and crashed before recording (found by its
    metadata in the recipient's channel), so a takeover records it instead of sending it twice. None when
    there is none, or the channel cannot be read (a #name: a channel id is needed; then it is sent again)."""
    try:
        if recipient[:1] in ("U", "W"):
            channel = str(ctx.client.conversations_open(users=recipient)["channel"]["id"])
        elif recipient[:1] in ("C", "G", "D"):
            channel = recipient
        else:
            return None
        history = ctx.client.conversations_history(
            channel=channel, limit=HISTORY_LIMIT, include_all_metadata=True
        )
    except (SlackClientError, OSError, KeyError, TypeError) as exc:
        log.warning("outreach: could not read %s to look for an unrecorded message: %s", recipient, exc)
        return None
    wanted = set(findings)
    for m in history.get("messages") or []:
        meta = m.get("metadata") or {}
        payload = meta.get("event_payload") or {}
        if meta.get("event_type") == OUTREACH_EVENT and wanted <= set(payload.get("findings") or []):
            return channel, str(m["ts"])
    return None


def _post(
    ctx: _Context, recipient: str, message: Message, findings: Sequence[str], *, taken_over: bool = False
) -> tuple[str, str] | str:
    """chat.postMessage: (channel id, ts), or the error text. The message's metadata names ``findings``;
    when the claim took over a run that died while sending, a message it already posted is recorded
    instead of posting a second one."""
    if taken_over:
        found = _sent_before(ctx, recipient, findings)
        if found is not None:
            log.info(
                "outreach: %s was already sent by a run that stopped; recorded, not sent again", findings
            )
            return found
    try:
        response = ctx.client.chat_postMessage(
            channel=recipient,
            metadata={"event_type": OUTREACH_EVENT, "event_payload": {"findings": list(findings)}},
            **message.as_kwargs(),
        )
    except (SlackClientError, OSError) as exc:
        return _error_text(exc)
    channel, ts = response.get("channel"), response.get("ts")
    if not channel or not ts:
        return "chat.postMessage answered without channel and ts"
    return str(channel), str(ts)


def _interrupted(ctx: _Context, findings: Sequence[str]) -> bool:
    """Whether any of ``findings`` has a row left in ``sending`` (a run died while sending it)."""
    latest = store.latest_outreach(ctx.db, findings)
    return any(ref.status == "sending" for ref in latest.values())


def _send_one(ctx: _Context, c: _Candidate) -> None:
    taken_over = _interrupted(ctx, [c.row.fingerprint])
    if not _claim(ctx, c, "finding"):
        return
    d = c.destination
    assert d is not None
    with _released_on_error(ctx, [c.row.fingerprint]):
        request = _propose(ctx, c)
        try:
            message = finding_message(finding_dict(c.row, full=True), request)
        except SlackClientError as exc:  # a message Slack would refuse (slack_sdk's validation)
            result: tuple[str, str] | str = _error_text(exc)
        else:
            result = _post(ctx, d.recipient, message, [c.row.fingerprint], taken_over=taken_over)
    shown = [Shown(c.row.fingerprint, c.item.request_id, c.item.interrupt_id)]
    _record(ctx, [c], shown, result)


def _send_digest(ctx: _Context, group: Sequence[_Candidate]) -> None:
    first = group[0].destination
    assert first is not None
    taken_over = _interrupted(ctx, [c.row.fingerprint for c in group])
    won = set(
        store.claim_findings(
            ctx.db,
            {c.row.fingerprint: c.row.team for c in group},
            kind="digest",
            recipient=first.recipient,
            resolved_by=first.resolved_by,
            now=ctx.now,
            stale_after=ctx.stale_after,
        )
    )
    claimed: list[_Candidate] = []
    for c in group:
        c.item.kind = "digest"
        if c.row.fingerprint in won:
            claimed.append(c)
        else:
            _lost(ctx, c)
    if not claimed:
        return
    d = claimed[0].destination
    assert d is not None
    fingerprints = [c.row.fingerprint for c in claimed]
    with _released_on_error(ctx, fingerprints):
        requests: dict[str, dict[str, Any]] = {}
        for c in claimed:
            request = _propose(ctx, c)
            if request is not None:
                requests[c.row.fingerprint] = request
        teams = {c.row.team for c in claimed}
        team = teams.pop() if len(teams) == 1 else None
        try:
            message = digest_message(
                [finding_dict(c.row, full=True) for c in claimed],
                requests,
                ctx.config.slack.digest_top,
                team=team,
            )
        except SlackClientError as exc:
            result: tuple[str, str] | str = _error_text(exc)
        else:
            result = _post(ctx, d.recipient, message, fingerprints, taken_over=taken_over)
    digest = Digest(d.recipient, d.resolved_by, fingerprints, "sent")
    ctx.report.digests.append(digest)
    shown = [Shown(c.row.fingerprint, c.item.request_id, c.item.interrupt_id) for c in claimed]
    _record(ctx, claimed, shown, result)
    if isinstance(result, str):
        digest.outcome, digest.error = "failed", result
    else:
        digest.channel, digest.ts = result


def _record(
    ctx: _Context, group: Sequence[_Candidate], shown: Sequence[Shown], result: tuple[str, str] | str
) -> None:
    fingerprints = [c.row.fingerprint for c in group]
    if isinstance(result, str):
        store.mark_failed(ctx.db, fingerprints, error=result, now=ctx.now)
        for c in group:
            c.item.outcome, c.item.reason = "failed", result
            ctx.report.items.append(c.item)
        log.warning("outreach: sending to %s failed: %s", group[0].item.recipient, result)
        return
    channel, ts = result
    done = {
        r.finding
        for r in store.mark_sent(ctx.db, shown, channel=channel, ts=ts, now=ctx.now, actor=ctx.actor)
    }
    for c in group:
        c.item.outcome, c.item.channel, c.item.ts = "sent", channel, ts
        if c.row.fingerprint not in done:
            c.item.note = _join(
                c.item.note,
                "sent, but another run had taken the claim over (sent twice); see the audit trail",
            )
        ctx.report.items.append(c.item)


__all__ = [
    "Destination",
    "Digest",
    "OutreachItem",
    "OutreachReport",
    "Resolver",
    "notify_owners",
    "slack_notifier",
    "tag_emails",
]
