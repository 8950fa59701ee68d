"""The Slack app's messages and App Home view, as Block Kit built with ``slack_sdk.models``.

Pure: plain dicts in (``tools.findings_store.finding_dict``, ``ApprovalService.show`` / ``request_dict``,
``approvals.audit.entry_dict``, budget statuses, an ``agent.answer.Answer``), a ``Message`` (fallback text +
block dicts) or a view dict out. No network, no database. Wording lives in ``agent.slack.texts``.

Rules kept here:
- Every block goes through slack_sdk's ``to_dict()``, which runs its validators (header 150 characters,
  section text 3000, 10 fields, button text 75 ...). ``_check`` adds the limits slack_sdk does not check:
  at most 50 blocks per message, section fields of at most 2000 characters, no empty text objects.
- Buttons carry only an opaque id: the request id (approve, reject, roll back) or the finding id (snooze,
  not waste). The handler reads everything else from the database.
- Data values (tags, resource names, titles, actors, answer text) are untrusted: they are escaped
  (``&``, ``<``, ``>``) before they enter mrkdwn, so ``<!channel>`` or ``<https://evil|click>`` never
  becomes a mention or a link, and mrkdwn objects are ``verbatim`` (no auto-linking of bare names).
- Nothing is cut silently: a shortened evidence list, answer, table, digest or list says so and names the
  command that shows everything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    NumberInputElement,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
    UserSelectElement,
)
from slack_sdk.models.views import View

from agent.answer import Answer
from agent.slack import texts

# --- action ids: what the handlers listen to ---------------------------------------------------------

APPROVE_ACTION = "finops_approve"  # value: request id
REJECT_ACTION = "finops_reject"  # value: request id
SNOOZE_ACTION = "finops_snooze"  # value: finding id
NOT_WASTE_ACTION = "finops_not_waste"  # value: finding id
ROLLBACK_ACTION = "finops_rollback"  # value: request id
ACTION_IDS = (APPROVE_ACTION, REJECT_ACTION, SNOOZE_ACTION, NOT_WASTE_ACTION, ROLLBACK_ACTION)
HOME_CALLBACK_ID = "finops_home"
INTAKE_MODAL_CALLBACK_ID = "finops_intake"
#: block id -> action id of the intake modal's inputs (the submission's state.values[block][action])
INTAKE_FIELDS = {
    "feature": "feature_input",
    "environment": "environment_input",
    "team": "team_input",
    "owner": "owner_input",
    "use_case": "use_case_input",
    "models": "models_input",
    "est_monthly_spend": "spend_input",
}
REJECT_MODAL_CALLBACK_ID = "finops_reject_reason"  # private_metadata: {"request_id", "channel", "ts"}
REJECT_REASON_BLOCK = "reason"
REJECT_REASON_INPUT = "reason_input"
SNOOZE_DAYS = 7

# --- Slack's limits (https://docs.slack.dev/reference/block-kit) and our own caps -------------------

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
SECTION_TEXT_MAX = 3000
FIELD_TEXT_MAX = 2000
TEXT_OBJECT_MAX = 3000
HEADER_MAX = 150
CONFIRM_TEXT_MAX = 300
FALLBACK_MAX = 3000  # the notification text; Slack truncates at 40,000, previews show far less
DIGEST_LIMIT = 10
LIST_LIMIT = 20
HOME_LIMIT = 10
TABLE_ROWS = 15
TABLE_CELL = 32
ANSWER_SECTIONS = 3
EVIDENCE_LINES = 8
EVIDENCE_VALUE = 80
EVIDENCE_CHARS = 900
CHANGES_SHOWN = 5

ACTIVE_FINDING = ("open", "notified")
ListKind = Literal["findings", "budgets", "approvals", "audit"]
LIST_COMMANDS: dict[str, str] = {
    "findings": "finops findings",
    "budgets": "finops budgets",
    "approvals": "finops approvals list",
    "audit": "finops audit list",
}
#: answers whose text already lists every item: no table under them
_TEXT_ONLY_KINDS = ("budgets", "findings", "approvals", "audit", "help")


@dataclass(frozen=True)
class Message:
    """What chat.postMessage / chat.update / chat.postEphemeral take: ``text`` is the fallback shown in
    notifications and by clients that cannot render blocks."""

    text: str
    blocks: list[dict[str, Any]]

    def as_kwargs(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


# --- escaping and formatting ------------------------------------------------------------------------


def escape(value: object) -> str:
    """Untrusted text for mrkdwn: ``&``, ``<`` and ``>`` as entities (Slack's control characters)."""
    text = "" if value is None else str(value)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + "…"


def inline(value: object, limit: int = 200) -> str:
    """One line of untrusted data for mrkdwn: whitespace collapsed, cut to ``limit``, then escaped."""
    return escape(shorten(" ".join(("" if value is None else str(value)).split()), limit))


def code(value: object, limit: int = 200) -> str:
    """Untrusted data as an inline code span (a backtick inside would end the span early)."""
    return "`" + inline(str(value).replace("`", "'"), limit) + "`"


def plain(value: object, limit: int) -> str:
    """Text for a plain_text object (not parsed by Slack: no mentions, no links, shown as is)."""
    return shorten(" ".join(("" if value is None else str(value)).split()), limit) or texts.UNKNOWN


def _decimal(value: object) -> Decimal:
    if isinstance(value, bool | float):
        raise TypeError(f"amounts are Decimal, int or a decimal string, never {type(value).__name__}")
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not an amount: {value!r}") from None


def money(amount: Decimal | int | str | None, currency: str = "USD", places: int = 2) -> str:
    """``$1,234.56`` for USD, ``1,234.56 EUR`` otherwise; rounded half up. Decimal in, never float."""
    if amount is None:
        return texts.NOT_AVAILABLE
    value = _decimal(amount).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    sign = "-" if value < 0 else ""
    digits = f"{abs(value):,.{places}f}"
    return f"{sign}${digits}" if currency == "USD" else f"{sign}{digits} {escape(currency)}"


def unit_money(amount: Decimal | int | str | None, currency: str = "USD") -> str:
    """A unit cost (per request, per 1M tokens): 4 decimals below one unit of currency."""
    if amount is None:
        return texts.NOT_AVAILABLE
    return money(amount, currency, 2 if abs(_decimal(amount)) >= 1 else 4)


def count(value: object) -> str:
    if value is None:
        return texts.NOT_AVAILABLE
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return f"{value:,}" if isinstance(value, int) else f"{value.normalize():,f}"
    return str(value)


def _percent(value: object) -> str:
    """A ratio (0.5 → 50.0%); a float is fine here (``TokenBudgetStatus.as_dict`` rounds to one)."""
    if value is None:
        return texts.NOT_AVAILABLE
    ratio = Decimal(str(value)) if isinstance(value, float) else _decimal(value)
    return f"{ratio * 100:.1f}%"


def _time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def plain_date(value: object) -> str:
    moment = _time(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def slack_date(value: object) -> str:
    """A Slack date token: shown in the reader's time zone, with the UTC time as fallback ("" if none)."""
    moment = _time(value)
    if moment is None:
        return ""
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} at {{time}}|{plain_date(moment)}>"


_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,20}")


def person(actor: object) -> str:
    """A Slack user id as a mention (``<@U…>``); anything else (a CLI user, the agent) as escaped text."""
    text = "" if actor is None else str(actor)
    if _SLACK_USER.fullmatch(text):
        return f"<@{text}>"
    return inline(text, 80) or texts.UNKNOWN


_PARTIAL_TOKEN = re.compile(r"(&[A-Za-z0-9#]*|<[^>]*)$")


def fit(text: str, limit: int, note: str = "") -> str:
    """mrkdwn ``text`` cut to at most ``limit`` characters with ``note`` (on its own line) after the cut:
    at a line end when one is near, never inside an entity or a ``<…>`` token."""
    if len(text) <= limit:
        return text
    room = max(0, limit - len(note) - 2)
    head = text[:room]
    newline = head.rfind("\n")
    head = head[:newline] if newline >= room // 2 else _PARTIAL_TOKEN.sub("", head).rstrip() + "…"
    return f"{head}\n{note}" if note else head


def _split(text: str, limit: int) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, split at line ends (a longer line is cut)."""
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        line = fit(line, limit)
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit and current:
            pieces.append(current)
            candidate = line
        current = candidate
    if current.strip():
        pieces.append(current)
    return pieces


# --- building blocks -------------------------------------------------------------------------------


def _md(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text or texts.NOT_AVAILABLE, verbatim=True)


def _section(text: str, fields: Sequence[str] = ()) -> SectionBlock:
    return SectionBlock(
        text=_md(fit(text, SECTION_TEXT_MAX)),
        fields=[_md(fit(f, FIELD_TEXT_MAX)) for f in fields] or None,
    )


def _context(*parts: str) -> ContextBlock:
    return ContextBlock(elements=[_md(fit(p, TEXT_OBJECT_MAX)) for p in parts if p][:10])


def _header(text: object) -> HeaderBlock:
    return HeaderBlock(text=PlainTextObject(text=plain(text, HEADER_MAX), emoji=True))


def _field(label: str, value: str) -> str:
    return f"*{label}*\n{value or texts.NOT_AVAILABLE}"


def _button(
    label: str,
    action_id: str,
    value: str,
    style: str | None = None,
    confirm: ConfirmObject | None = None,
) -> ButtonElement:
    return ButtonElement(
        text=PlainTextObject(text=label, emoji=True),
        action_id=action_id,
        value=value,
        style=style,
        confirm=confirm,
    )


def _approve_confirm(summary: object) -> ConfirmObject:
    for limit in (200, 120, 60, 0):
        body = texts.approve_confirm(inline(summary, limit)).strip()
        if len(body) <= CONFIRM_TEXT_MAX:
            break
    return ConfirmObject(
        title=texts.APPROVE_CONFIRM_TITLE,
        text=_md(body),
        confirm=texts.APPROVE_CONFIRM_YES,
        deny=texts.CONFIRM_NO,
        style="primary",
    )


def approve_button(request_id: str, summary: object) -> ButtonElement:
    return _button(texts.APPROVE, APPROVE_ACTION, request_id, "primary", _approve_confirm(summary))


def reject_button(request_id: str) -> ButtonElement:
    return _button(texts.REJECT, REJECT_ACTION, request_id, "danger")


def snooze_button(finding_id: str) -> ButtonElement:
    return _button(texts.SNOOZE, SNOOZE_ACTION, finding_id)


def not_waste_button(finding_id: str) -> ButtonElement:
    return _button(texts.NOT_WASTE, NOT_WASTE_ACTION, finding_id)


def rollback_button(request_id: str) -> ButtonElement:
    confirm = ConfirmObject(
        title=texts.ROLLBACK_CONFIRM_TITLE,
        text=_md(texts.ROLLBACK_CONFIRM_TEXT),
        confirm=texts.ROLLBACK_CONFIRM_YES,
        deny=texts.CONFIRM_NO,
        style="danger",
    )
    return _button(texts.ROLLBACK, ROLLBACK_ACTION, request_id, "danger", confirm)


def _check_text(obj: Mapping[str, Any], where: str) -> None:
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        raise SlackObjectFormationError(f"{where}: a text object needs at least one visible character")
    if len(text) > TEXT_OBJECT_MAX:
        raise SlackObjectFormationError(f"{where}: text cannot exceed {TEXT_OBJECT_MAX} characters")


def _walk_texts(value: Any, where: str) -> None:
    if isinstance(value, Mapping):
        if value.get("type") in ("mrkdwn", "plain_text"):
            _check_text(value, where)
        for key, item in value.items():
            _walk_texts(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk_texts(item, f"{where}[{i}]")


def _check(blocks: Sequence[Mapping[str, Any]], max_blocks: int) -> None:
    """The limits slack_sdk.models leave unchecked (it validates each object, not the whole)."""
    if len(blocks) > max_blocks:
        raise SlackObjectFormationError(f"at most {max_blocks} blocks are allowed, got {len(blocks)}")
    for i, block in enumerate(blocks):
        for field in block.get("fields") or ():
            if len(field.get("text", "")) > FIELD_TEXT_MAX:
                raise SlackObjectFormationError(
                    f"blocks[{i}]: a section field cannot exceed {FIELD_TEXT_MAX} characters"
                )
        _walk_texts(block, f"blocks[{i}]")


def _message(text: str, blocks: Sequence[Block]) -> Message:
    dicts = [b.to_dict() for b in blocks]  # slack_sdk validates every object on the way
    _check(dicts, MAX_MESSAGE_BLOCKS)
    fallback = fit(text.strip(), FALLBACK_MAX) or texts.NOT_AVAILABLE
    return Message(fallback, dicts)


# --- findings and remediation requests -------------------------------------------------------------


def _approvals(request: Mapping[str, Any]) -> tuple[str, str]:
    given, _, required = str(request.get("approvals") or "0/1").partition("/")
    return given or "0", required or "1"


def _decisions(request: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    return [d for d in request.get("decisions") or () if d.get("decision") == kind]


def _last_event(request: Mapping[str, Any], *events: str) -> Mapping[str, Any]:
    found = [e for e in request.get("history") or () if e.get("event") in events]
    return found[-1] if found else {}


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _result(request: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(request.get("result"))


def can_roll_back(request: Mapping[str, Any]) -> bool:
    """A Roll back button is offered after an execution that saved the prior state and is reversible."""
    plan = request.get("plan")
    reversible = not isinstance(plan, Mapping) or plan.get("reversible", True) is not False
    if not reversible or not request.get("id"):
        return False
    if request.get("status") == "succeeded":
        return True
    return request.get("status") == "failed" and request.get("captured") is not None


def request_state(request: Mapping[str, Any]) -> str:
    """One mrkdwn line: where the request is (who decided, when, the result)."""
    status = str(request.get("status") or "")
    given, required = _approvals(request)
    result = _result(request)
    line = _request_state(request, status, given, required, result)
    approvals = _decisions(request, "approve")
    if status not in ("pending", "approved", "rejected") and approvals:
        # after execution the message still says who approved it, and when
        last = approvals[-1]
        line += "\n" + texts.approved_by(
            ", ".join(person(d.get("actor")) for d in approvals), slack_date(last.get("at"))
        )
    return line


def _request_state(
    request: Mapping[str, Any], status: str, given: str, required: str, result: Mapping[str, Any]
) -> str:
    if status == "pending":
        approvers = ", ".join(person(d.get("actor")) for d in _decisions(request, "approve"))
        return texts.status_pending(given, required, approvers or None)
    if status == "approved":
        last = (_decisions(request, "approve") or [{}])[-1]
        return texts.status_approved(person(last.get("actor")), slack_date(last.get("at")))
    if status == "executing":
        return texts.EXECUTING
    if status in ("succeeded", "failed"):
        event = _last_event(request, "execution.succeeded", "execution.failed")
        detail = inline(result.get("detail") or texts.NOT_AVAILABLE, 400)
        when = slack_date(event.get("at"))
        if status == "failed":
            return texts.status_failed(when, detail)
        after = result.get("after")
        state = after.get("state") if isinstance(after, Mapping) else None
        return texts.status_succeeded(when, detail, inline(state, 60) if state else None)
    if status == "dry_run":
        return texts.DRY_RUN_DONE
    if status == "rolling_back":
        return texts.ROLLING_BACK
    if status in ("rolled_back", "rollback_failed"):
        event = _last_event(request, "rollback.succeeded", "rollback.failed", "rollback.started")
        detail = inline(result.get("rollback") or "", 400)
        when = slack_date(event.get("at"))
        if status == "rollback_failed":
            return texts.status_rollback_failed(when, detail or texts.NOT_AVAILABLE)
        return texts.status_rolled_back(person(event.get("actor")), when, detail)
    if status == "rejected":
        last = (_decisions(request, "reject") or [{}])[-1]
        reason = last.get("comment") or request.get("status_reason")
        return texts.status_rejected(
            person(last.get("actor")), slack_date(last.get("at")), inline(reason, 300) if reason else None
        )
    if status == "expired":
        event = _last_event(request, "request.expired")
        return texts.status_expired(slack_date(event.get("at") or request.get("expires_at")))
    if status == "cancelled":
        event = _last_event(request, "request.cancelled")
        reason = request.get("status_reason")
        return texts.status_cancelled(
            person(event.get("actor")), slack_date(event.get("at")), inline(reason, 300) if reason else None
        )
    if status == "superseded":
        reason = request.get("status_reason")
        return texts.status_superseded(inline(reason, 400) if reason else None)
    return texts.status_other(inline(status or texts.UNKNOWN, 40))


def _finding_state(finding: Mapping[str, Any], feedback_by: str | None) -> str | None:
    status = finding.get("status")
    by = person(feedback_by) if feedback_by else None
    if status == "snoozed":
        return texts.finding_snoozed(slack_date(finding.get("snoozed_until")) or texts.UNKNOWN, by)
    if status == "suppressed":
        return texts.finding_not_waste(by)
    if status == "resolved":
        return texts.RESOLVED
    return None


def _actions(finding: Mapping[str, Any] | None, request: Mapping[str, Any] | None) -> ActionsBlock | None:
    """Approve / Reject while the request is pending; Snooze / Not waste while the finding is open and
    nothing was decided; Roll back after an execution that can be undone."""
    elements: list[ButtonElement] = []
    pending = request is not None and request.get("status") == "pending" and bool(request.get("id"))
    if request is not None and pending:
        elements += [
            approve_button(str(request["id"]), request.get("summary")),
            reject_button(str(request["id"])),
        ]
    if (
        finding is not None
        and finding.get("id")
        and finding.get("status", "open") in ACTIVE_FINDING
        and (request is None or pending)
    ):
        elements += [snooze_button(str(finding["id"])), not_waste_button(str(finding["id"]))]
    if request is not None and can_roll_back(request):
        elements.append(rollback_button(str(request["id"])))
    return ActionsBlock(elements=elements) if elements else None


def _compact_value(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=str, ensure_ascii=False, separators=(", ", ": "))
    return str(value)


def _evidence(finding: Mapping[str, Any]) -> str | None:
    evidence = finding.get("evidence")
    if not isinstance(evidence, Mapping) or not evidence:
        return None
    lines, shortened = [], len(evidence) > EVIDENCE_LINES
    for key, value in list(evidence.items())[:EVIDENCE_LINES]:
        text = _compact_value(value)
        shortened = shortened or len(text) > EVIDENCE_VALUE
        lines.append(f"• {inline(key, 40)}: {inline(text, EVIDENCE_VALUE)}")
    body = f"*{texts.LABEL_EVIDENCE}*\n" + "\n".join(lines)
    note = texts.evidence_cut(code(f"finops findings show {finding.get('id')}"))
    if len(body) > EVIDENCE_CHARS:
        return fit(body, EVIDENCE_CHARS, note)
    return f"{body}\n{note}" if shortened else body


def _change_line(change: Mapping[str, Any]) -> str:
    def value(v: object) -> str:
        if v is None:
            return texts.NOT_SET
        return count(v) if isinstance(v, int) and not isinstance(v, bool) else inline(_compact_value(v), 60)

    return (
        f"• {code(change.get('resource'), 80)} {inline(change.get('attribute'), 60)}: "
        f"{value(change.get('before'))} → {value(change.get('after'))}"
    )


def _plan_text(request: Mapping[str, Any]) -> str:
    plan = _mapping(request.get("plan"))
    summary = request.get("summary") or plan.get("summary") or request.get("action")
    lines = [f"*{texts.LABEL_PROPOSED_FIX}:* {inline(summary, 400)}"]
    changes = [c for c in plan.get("changes") or () if isinstance(c, Mapping)]
    if changes:
        lines.append(f"*{texts.LABEL_CHANGES}:*")
        lines += [_change_line(c) for c in changes[:CHANGES_SHOWN]]
        if len(changes) > CHANGES_SHOWN:
            lines.append(texts.more_changes(len(changes) - CHANGES_SHOWN))
    if plan.get("blast_radius"):
        lines.append(f"*{texts.LABEL_BLAST_RADIUS}:* {inline(plan['blast_radius'], 800)}")
    return "\n".join(lines)


def _plan_fields(request: Mapping[str, Any]) -> list[str]:
    given, required = _approvals(request)
    currency = str(request.get("currency") or "USD")
    fields = [
        _field(texts.LABEL_SAVINGS, money(request.get("monthly_savings"), currency)),
        _field(texts.LABEL_APPROVALS, texts.approvals_given(inline(given, 10), inline(required, 10))),
    ]
    if request.get("status") in ("pending", "approved"):
        fields.append(_field(texts.LABEL_EXPIRES, slack_date(request.get("expires_at"))))
    return fields


def _finding_fields(finding: Mapping[str, Any], request: Mapping[str, Any] | None) -> list[str]:
    scope = _mapping(finding.get("scope"))
    environment = (request or {}).get("environment") or scope.get("environment")
    fields = [
        _field(
            texts.LABEL_MONTHLY, money(finding.get("monthly_impact"), str(finding.get("currency") or "USD"))
        ),
        _field(texts.LABEL_TEAM, inline(finding.get("team") or texts.NO_TEAM, 80)),
        _field(texts.LABEL_ENVIRONMENT, inline(environment or texts.UNKNOWN, 80)),
        _field(texts.LABEL_SEVERITY, inline(finding.get("severity") or texts.UNKNOWN, 20)),
    ]
    if scope.get("owner"):
        fields.append(_field(texts.LABEL_OWNER, inline(scope["owner"], 120)))
    return fields


def _what(finding: Mapping[str, Any]) -> str:
    what = finding.get("recommendation") or finding.get("title")
    lines = [f"*{texts.LABEL_WHAT}:* {inline(what, 600)}"]
    if finding.get("resource"):
        kind = finding.get("resource_kind")
        lines.append(texts.resource_line(code(finding["resource"], 200), inline(kind, 60) if kind else None))
    return "\n".join(lines)


def _ids_context(finding: Mapping[str, Any] | None, request: Mapping[str, Any] | None) -> ContextBlock:
    parts = []
    if finding is not None and finding.get("id"):
        parts.append(f"{texts.FINDING_ID} {code(finding['id'], 60)}")
    if request is not None and request.get("id"):
        parts.append(f"{texts.REQUEST_ID} {code(request['id'], 60)}")
    names = [person(a) for a in (request or {}).get("approvers") or ()]
    if names and (request or {}).get("status") == "pending":
        parts.append(texts.approvers(", ".join(names[:5]) + (" …" if len(names) > 5 else "")))
    return _context(*parts) if parts else _context(texts.NOT_AVAILABLE)


def _finding_blocks(
    finding: Mapping[str, Any] | None, request: Mapping[str, Any] | None, feedback_by: str | None
) -> list[Block]:
    title = (finding or {}).get("title") or (request or {}).get("summary") or (request or {}).get("action")
    blocks: list[Block] = [_header(title)]
    if finding is not None:
        blocks.append(_section(_what(finding), _finding_fields(finding, request)))
        evidence = _evidence(finding)
        if evidence:
            blocks.append(_section(evidence))
    if request is not None:
        blocks.append(_section(_plan_text(request), _plan_fields(request)))
        notes = []
        if request.get("dry_run"):
            notes.append(texts.DRY_RUN)
        plan = request.get("plan")
        if isinstance(plan, Mapping) and plan.get("reversible") is False:
            notes.append(texts.NOT_REVERSIBLE)
        if notes:
            blocks.append(_context(*notes))
    elif finding is not None:
        action, recommendation = finding.get("proposed_action"), finding.get("recommendation")
        if action:
            command = code(f"finops propose {finding.get('id')}")
            text = texts.fix_not_proposed(inline(action, 80), command)
        elif recommendation:
            text = texts.recommendation_only(inline(recommendation, 600))
        else:
            text = texts.NO_FIX
        blocks.append(_section(f"*{texts.LABEL_PROPOSED_FIX}:* {text}"))
    state = [request_state(request)] if request is not None else []
    finding_state = _finding_state(finding, feedback_by) if finding is not None else None
    if finding_state:
        state.append(finding_state)
    if state:
        blocks.append(_section("\n".join(state)))
    actions = _actions(finding, request)
    if actions is not None:
        blocks.append(actions)
    blocks.append(_ids_context(finding, request))
    return blocks


def _fallback_for(finding: Mapping[str, Any] | None, request: Mapping[str, Any] | None) -> str:
    title = inline((finding or {}).get("title") or (request or {}).get("summary") or texts.UNKNOWN, 200)
    if request is not None and request.get("status") != "pending":
        return texts.request_fallback(title, inline(str(request.get("status")).replace("_", " "), 40))
    if finding is not None:
        amount = money(finding.get("monthly_impact"), str(finding.get("currency") or "USD"))
        return texts.finding_fallback(title, amount)
    return texts.request_fallback(title, "pending")


def finding_message(
    finding: Mapping[str, Any],
    request: Mapping[str, Any] | None = None,
    *,
    feedback_by: str | None = None,
) -> Message:
    """A finding for its owner: what, evidence, $ per month, team/environment, the proposed fix and its
    plan, and the buttons its state allows. ``finding``: ``finding_dict(row, full=True)``; ``request``:
    ``ApprovalService.show(id)`` (or ``request_dict``) of its remediation request, None when there is none.
    The request's status decides what is shown, so this also renders the message after any decision;
    ``feedback_by`` names who snoozed or marked it not waste."""
    return _message(_fallback_for(finding, request), _finding_blocks(finding, request, feedback_by))


def decided_message(finding: Mapping[str, Any] | None, request: Mapping[str, Any]) -> Message:
    """The message after a decision, updated in place: who decided, when, the status (approved,
    rejected, expired, cancelled, superseded ...); no Approve / Reject once nothing is pending.
    ``finding`` may be None for a request proposed without one."""
    return _message(_fallback_for(finding, request), _finding_blocks(finding, request, None))


def executed_message(finding: Mapping[str, Any] | None, request: Mapping[str, Any]) -> Message:
    """After execution: the result and the verified state, with a Roll back button (value: request id)
    when the change can be undone; a failed execution says why."""
    return decided_message(finding, request)


def rolled_back_message(finding: Mapping[str, Any] | None, request: Mapping[str, Any]) -> Message:
    """After a rollback: who rolled back, when, and what was restored (or why the rollback failed)."""
    return decided_message(finding, request)


# --- digest ----------------------------------------------------------------------------------------


def _impact(finding: Mapping[str, Any]) -> Decimal:
    value = finding.get("monthly_impact")
    return _decimal(value) if value is not None else Decimal(0)


def _totals(findings: Iterable[Mapping[str, Any]]) -> str:
    by_currency: dict[str, Decimal] = {}
    for f in findings:
        currency = str(f.get("currency") or "USD")
        by_currency[currency] = by_currency.get(currency, Decimal(0)) + _impact(f)
    if not by_currency:
        return money(Decimal(0))
    ordered = sorted(by_currency.items(), key=lambda item: (item[0] != "USD", item[0]))
    return " + ".join(money(v, c) for c, v in ordered)


def _digest_item(finding: Mapping[str, Any], request: Mapping[str, Any] | None) -> list[Block]:
    amount = money(finding.get("monthly_impact"), str(finding.get("currency") or "USD"))
    lines = [f"*{inline(finding.get('title'), 200)}*: *{texts.per_month(amount)}*"]
    where = [code(finding["resource"], 120)] if finding.get("resource") else []
    where.append(inline(finding.get("team") or texts.NO_TEAM, 60))
    lines.append(" · ".join(where))
    if request is not None:
        given, required = _approvals(request)
        lines.append(
            f"*{texts.LABEL_PROPOSED_FIX}:* {inline(request.get('summary') or request.get('action'), 300)} "
            f"({texts.LABEL_APPROVALS.lower()} {texts.approvals_given(inline(given, 10), inline(required, 10))})"
        )
        if request.get("status") != "pending":
            lines.append(request_state(request))
    elif finding.get("recommendation"):
        lines.append(texts.recommendation_only(inline(finding["recommendation"], 300)))
    lines.append(f"{texts.FINDING_ID} {code(finding.get('id'), 60)}")
    blocks: list[Block] = [_section("\n".join(lines))]
    actions = _actions(finding, request)
    if actions is not None:
        blocks.append(actions)
    return blocks


def digest_message(
    findings: Sequence[Mapping[str, Any]],
    requests_by_finding: Mapping[str, Mapping[str, Any]],
    limit: int = DIGEST_LIMIT,
    *,
    team: str | None = None,
) -> Message:
    """Many new findings for one owner in one message: the count and total $ per month, then the
    ``limit`` largest, each with its own buttons, and how many were left out (never silently). At most
    50 blocks: ``limit`` is lowered to what fits. ``team`` defaults to the findings' team when they
    share one (it names the `finops findings --team X` command of the note)."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if team is None:
        teams = {f.get("team") for f in findings}
        team = str(teams.pop()) if len(teams) == 1 and None not in teams else None
    ordered = sorted(findings, key=_impact, reverse=True)
    total = _totals(ordered)
    header_team = inline(team, 60) if team else None
    fixed = 3  # header, summary, the "… and K more" note
    per_item = 3  # section, actions, divider
    shown = ordered[: min(limit, (MAX_MESSAGE_BLOCKS - fixed) // per_item)]
    blocks: list[Block] = [
        _header(texts.digest_header(len(ordered))),
        _section(
            texts.digest_summary(len(ordered), total, header_team)
            + ("\n" + texts.digest_top(len(shown), len(ordered)) if ordered else "")
        ),
    ]
    for finding in shown:
        blocks.append(DividerBlock())
        blocks += _digest_item(finding, requests_by_finding.get(str(finding.get("id"))))
    left = len(ordered) - len(shown)
    if left:
        command = code(f"finops findings --team {team}" if team else "finops findings", 120)
        blocks.append(_context(texts.digest_more(left, command)))
    return _message(texts.digest_fallback(len(ordered), total, header_team), blocks)


# --- answers ---------------------------------------------------------------------------------------


def working_message() -> Message:
    """The placeholder posted at once (within Slack's 3 s) and replaced by the answer."""
    return _message(texts.WORKING_FALLBACK, [_section(texts.WORKING)])


def _metric_cell(metric: str, value: object, currency: str) -> str:
    if value is None:
        return ""
    if metric in ("cost", "previous", "change"):
        return money(value, currency) if isinstance(value, Decimal | int | str) else str(value)
    if metric.startswith("cost_per_"):
        return unit_money(value, currency) if isinstance(value, Decimal | int | str) else str(value)
    return count(value)


def _table(answer: Answer) -> tuple[str, int] | None:
    """The rows as a monospaced table (raw values padded, then escaped) and how many rows it leaves out."""
    if answer.kind in _TEXT_ONLY_KINDS or not answer.group_by or not answer.rows:
        return None
    metric = str(answer.metric)
    columns = [*answer.group_by, metric]
    if any("previous" in r for r in answer.rows):
        columns += ["previous", "change"]
    money_like = {metric, "previous", "change"}
    body = [
        [
            _metric_cell(c, r.get(c), answer.currency)
            if c in money_like
            else shorten(" ".join(str(r.get(c, "")).split()), TABLE_CELL)
            for c in columns
        ]
        for r in answer.rows
    ]
    header = [c.replace("_", " ") for c in columns]
    numeric = [c in money_like for c in columns]

    def render(rows: list[list[str]]) -> str:
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(columns))]
        lines = [
            "  ".join(
                cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i]) for i, cell in enumerate(row)
            ).rstrip()
            for row in [header, *rows]
        ]
        return "```\n" + escape("\n".join(lines)) + "\n```"

    shown = body[:TABLE_ROWS]
    note_room = 200
    text = render(shown)
    while len(text) > SECTION_TEXT_MAX - note_room and len(shown) > 1:
        shown = shown[:-1]
        text = render(shown)
    if len(text) > SECTION_TEXT_MAX - note_room:
        return None
    return text, len(body) - len(shown)


def _period_text(answer: Answer) -> str | None:
    if answer.period is None:
        return None
    last_day = answer.period.end - timedelta(days=1)
    return texts.period(
        answer.period.start.isoformat(), last_day.isoformat(), inline(answer.period.label, 60)
    )


def _answer_context(answer: Answer) -> list[str]:
    parts = []
    period = _period_text(answer)
    if period:
        parts.append(f"*{texts.LABEL_PERIOD}:* {period}")
    filters = ", ".join(f"{k}={'|'.join(str(v) for v in vs)}" for k, vs in answer.filters.items())
    if answer.kind not in ("help",):
        parts.append(f"*{texts.LABEL_FILTERS}:* {inline(filters, 400) if filters else texts.NO_FILTER}")
        metric = answer.metric.replace("_", " ")
        unit = (
            f" ({inline(answer.currency, 10)})" if answer.metric == "cost" or "cost" in answer.metric else ""
        )
        parts.append(f"*{texts.LABEL_METRIC}:* {inline(metric, 60)}{unit}")
    if answer.group_by:
        parts.append(f"*{texts.LABEL_BY}:* {inline(', '.join(answer.group_by), 120)}")
    if answer.rerun:
        parts.append(f"*{texts.LABEL_RERUN}:* {code(answer.rerun, 600)}")
    return parts


def answer_message(answer: Answer) -> Message:
    """The answer to a cost question: its text, a compact table of the top rows (the answer's own "top N
    + other" rows; cut further with a note when they do not fit), and the period, filters, metric and the
    `finops` command that gives the same figures."""
    rerun = code(answer.rerun, 600) if answer.rerun else None
    pieces = _split(escape(answer.text.strip()) or texts.NOT_AVAILABLE, SECTION_TEXT_MAX)
    if len(pieces) > ANSWER_SECTIONS:
        note = texts.text_cut(rerun)
        last = fit(pieces[ANSWER_SECTIONS - 1], SECTION_TEXT_MAX - len(note) - 1)
        pieces = [*pieces[: ANSWER_SECTIONS - 1], f"{last}\n{note}"]
    blocks: list[Block] = [_section(p) for p in pieces]
    if (not answer.understood or answer.kind == "help") and answer.examples:
        bullets = "\n".join(f"• {inline(e, 300)}" for e in answer.examples[:10])
        blocks.append(_section(f"{texts.NOT_UNDERSTOOD}\n{bullets}"))
    table = _table(answer)
    if table is not None:
        text, left = table
        if left:
            text += "\n" + texts.table_more(left, rerun)
        blocks.append(_section(text))
    context = _answer_context(answer)
    if context:
        blocks.append(_context(*context))
    return _message(escape(answer.text), blocks)


# --- /finops lists, help, refusals ----------------------------------------------------------------


def _as_mapping(item: Any) -> dict[str, Any]:
    """A row as a dict: budget statuses (``BudgetStatus`` / ``TokenBudgetStatus``) through ``as_dict``,
    keeping the period's label."""
    if isinstance(item, Mapping):
        return dict(item)
    as_dict = getattr(item, "as_dict", None)
    if not callable(as_dict):
        raise TypeError(f"cannot render a {type(item).__name__}")
    out = dict(as_dict())
    label = getattr(getattr(item, "period", None), "label", None)
    if label:
        out["period_label"] = label
    return out


_BUDGET_MARK = {"ok": ":large_green_circle:", "warning": ":large_orange_circle:", "over": ":red_circle:"}


def budget_text(budget: Any) -> str:
    """One budget (a ``BudgetStatus`` / ``TokenBudgetStatus`` or its ``as_dict()``) as a line: spend to
    date vs amount, and the run-rate forecast."""
    b = _as_mapping(budget)
    period = b.get("period_label") or b.get("period")
    if isinstance(period, Mapping):
        period = f"{period.get('from')} to {period.get('to')}"
    scope = b.get("scope")
    if isinstance(scope, Mapping):
        scope = ", ".join(f"{k}={v}" for k, v in scope.items()) or texts.ALL_SPEND
    used = _percent(b.get("used")) if b.get("used") is not None else texts.NOT_AVAILABLE
    if "tokens" in b and "amount" not in b:  # a token budget
        name = b.get("project")
        actual, amount = texts.tokens(count(b.get("actual"))), texts.tokens(count(b.get("tokens")))
        forecast = texts.tokens(count(b.get("forecast")))
    else:
        currency = str(b.get("currency") or "USD")
        name = b.get("name") or b.get("budget")
        actual = money(b.get("actual", b.get("cost")), currency)
        amount, forecast = money(b.get("amount"), currency), money(b.get("forecast"), currency)
    fstatus = str(b.get("forecast_status") or "")
    line = texts.budget_line(
        inline(name, 80), inline(scope or texts.ALL_SPEND, 200), inline(period, 40), actual, amount, used
    )
    line += " · " + texts.budget_forecast(forecast, inline(texts.FORECAST_STATUS.get(fstatus, fstatus), 40))
    unconverted = b.get("unconverted")
    if isinstance(unconverted, Mapping) and unconverted:
        line += " · " + texts.budget_unconverted(", ".join(money(v, str(c)) for c, v in unconverted.items()))
    return f"{_BUDGET_MARK.get(str(b.get('status')), ':white_circle:')} {line}"


def _finding_text(f: Mapping[str, Any]) -> str:
    amount = money(f.get("monthly_impact"), str(f.get("currency") or "USD"))
    resource = code(f["resource"], 80) if f.get("resource") else None
    return "• " + texts.finding_line(
        amount,
        inline(f.get("title"), 160),
        resource,
        inline(f.get("team") or texts.NO_TEAM, 40),
        inline(f.get("status"), 20),
        code(str(f.get("id", ""))[:12], 20),
    )


def _request_text(r: Mapping[str, Any]) -> str:
    given, required = _approvals(r)
    line = texts.request_line(
        code(r.get("id"), 40),
        inline(r.get("summary") or r.get("action"), 200),
        money(r.get("monthly_savings"), str(r.get("currency") or "USD")),
        inline(str(r.get("status")).replace("_", " "), 20),
        texts.approvals_given(inline(given, 10), inline(required, 10)),
    )
    expires = slack_date(r.get("expires_at")) if r.get("status") in ("pending", "approved") else ""
    return f"• {line}" + (f" · {texts.LABEL_EXPIRES.lower()} {expires}" if expires else "")


def _audit_text(e: Mapping[str, Any]) -> str:
    when = slack_date(e.get("at")) or texts.UNKNOWN
    seq = f"#{inline(e.get('seq'), 12)} " if e.get("seq") is not None else ""
    return (
        "• "
        + seq
        + texts.audit_line(
            when,
            inline(e.get("event"), 40),
            person(e.get("actor")),
            code(e["resource"], 80) if e.get("resource") else None,
            code(e["request_id"], 40) if e.get("request_id") else None,
        )
    )


_LINE = {
    "findings": _finding_text,
    "budgets": budget_text,
    "approvals": _request_text,
    "audit": _audit_text,
}


def _lines_blocks(lines: Sequence[str], empty: str) -> list[Block]:
    if not lines:
        return [_section(empty)]
    return [_section(p) for p in _split("\n".join(fit(line, 1000) for line in lines), SECTION_TEXT_MAX)]


def list_message(
    kind: ListKind, rows: Sequence[Any], *, limit: int = LIST_LIMIT, command: str | None = None
) -> Message:
    """``/finops findings|budgets|approvals|audit``: one compact line per row (rows as the CLI lists
    them: ``finding_dict``, budget statuses, ``request_dict``, ``entry_dict``), the first ``limit`` with
    a note naming ``command`` (default: the matching CLI command) when more exist."""
    if kind not in _LINE:
        raise ValueError(f"unknown list {kind!r}; the lists are: {', '.join(sorted(_LINE))}")
    if limit < 1:
        raise ValueError("limit must be at least 1")
    title = texts.LIST_TITLES[kind]
    line = _LINE[kind]
    lines = [line(r if kind == "budgets" else _as_mapping(r)) for r in rows[:limit]]
    blocks: list[Block] = [_header(title), *_lines_blocks(lines, texts.LIST_EMPTY[kind])]
    left = len(rows) - len(lines)
    if left > 0:
        blocks.append(_context(texts.list_more(left, code(command or LIST_COMMANDS[kind], 200))))
    return _message(texts.list_fallback(title, len(rows)), blocks)


def help_message(examples: Sequence[str]) -> Message:
    """``/finops help``: the commands and a few questions to try."""
    commands = "\n".join(f"• {code(cmd, 80)}: {escape(what)}" for cmd, what in texts.HELP_COMMANDS)
    blocks: list[Block] = [_header(texts.HELP_TITLE), _section(f"{texts.HELP_INTRO}\n{commands}")]
    if examples:
        bullets = "\n".join(f"• {inline(e, 300)}" for e in examples[:10])
        blocks.append(_section(f"{texts.HELP_EXAMPLES}\n{bullets}"))
    return _message(texts.HELP_FALLBACK, blocks)


def refusal_ephemeral(reason: str) -> Message:
    """What someone not allowed to do something sees (chat.postEphemeral): the reason, escaped."""
    text = fit(inline(reason, 2000), SECTION_TEXT_MAX)
    return _message(texts.refusal_fallback(text), [_section(texts.refusal(text))])


# --- App Home --------------------------------------------------------------------------------------


def _home_request(request: Mapping[str, Any]) -> list[Block]:
    given, required = _approvals(request)
    currency = str(request.get("currency") or "USD")
    lines = [
        f"*{inline(request.get('summary') or request.get('action'), 300)}*",
        " · ".join(
            [
                texts.per_month(money(request.get("monthly_savings"), currency)),
                f"{texts.LABEL_APPROVALS.lower()} {texts.approvals_given(inline(given, 10), inline(required, 10))}",
                f"{texts.LABEL_EXPIRES.lower()} {slack_date(request.get('expires_at')) or texts.UNKNOWN}",
            ]
        ),
        f"{texts.REQUEST_ID} {code(request.get('id'), 40)}",
    ]
    blocks: list[Block] = [_section("\n".join(lines))]
    actions = _actions(None, request)
    if actions is not None:
        blocks.append(actions)
    return blocks


def home_view(
    pending_requests: Sequence[Mapping[str, Any]],
    budgets: Sequence[Any],
    audit_entries: Sequence[Mapping[str, Any]],
    user_id: str,
    *,
    limit: int = HOME_LIMIT,
) -> dict[str, Any]:
    """The App Home tab (for views.publish): the user's pending approvals with Approve / Reject, their
    team's spend to date vs budget with the forecast, and the latest audit entries on their resources;
    each section says so when it is empty. The caller selects what belongs to the user."""
    blocks: list[Block] = [
        _header(texts.HOME_TITLE),
        _section(texts.home_greeting(person(user_id))),
        _header(texts.HOME_APPROVALS),
    ]
    if pending_requests:
        for request in pending_requests[:limit]:
            blocks += _home_request(request)
        if len(pending_requests) > limit:
            more = len(pending_requests) - limit
            blocks.append(_context(texts.home_more(more, code(LIST_COMMANDS["approvals"]))))
    else:
        blocks.append(_section(texts.HOME_APPROVALS_EMPTY))
    blocks += [DividerBlock(), _header(texts.HOME_BUDGETS)]
    blocks += _lines_blocks([budget_text(b) for b in budgets[:limit]], texts.HOME_BUDGETS_EMPTY)
    if len(budgets) > limit:
        blocks.append(_context(texts.home_more(len(budgets) - limit, code(LIST_COMMANDS["budgets"]))))
    blocks += [DividerBlock(), _header(texts.HOME_AUDIT)]
    blocks += _lines_blocks([_audit_text(e) for e in audit_entries[:limit]], texts.HOME_AUDIT_EMPTY)
    if len(audit_entries) > limit:
        blocks.append(_context(texts.home_more(len(audit_entries) - limit, code(LIST_COMMANDS["audit"]))))
    view = View(type="home", callback_id=HOME_CALLBACK_ID, blocks=blocks)
    out = view.to_dict()  # validates the view (at most 100 blocks) and every block in it
    _check(out["blocks"], MAX_VIEW_BLOCKS)
    return out


__all__ = [
    "ACTION_IDS",
    "APPROVE_ACTION",
    "NOT_WASTE_ACTION",
    "REJECT_ACTION",
    "ROLLBACK_ACTION",
    "SNOOZE_ACTION",
    "Message",
    "answer_message",
    "budget_text",
    "decided_message",
    "digest_message",
    "escape",
    "executed_message",
    "finding_message",
    "help_message",
    "home_view",
    "list_message",
    "money",
    "refusal_ephemeral",
    "rolled_back_message",
    "working_message",
]


def reject_modal(request: Mapping[str, Any], metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The modal that asks why a request is rejected (the reason is recorded with the decision and audited).
    ``metadata`` (the request id and the clicked message's channel / ts) travels in ``private_metadata``."""
    summary = plain(request.get("summary") or request.get("id") or "", 2900)
    blocks: list[Block] = [
        _section(texts.reject_modal_intro(escape(summary))),
        InputBlock(
            block_id=REJECT_REASON_BLOCK,
            label=PlainTextObject(text=texts.REJECT_REASON_LABEL),
            element=PlainTextInputElement(
                action_id=REJECT_REASON_INPUT, multiline=True, min_length=3, max_length=1000
            ),
        ),
    ]
    view = View(
        type="modal",
        callback_id=REJECT_MODAL_CALLBACK_ID,
        title=PlainTextObject(text=texts.REJECT_MODAL_TITLE),
        submit=PlainTextObject(text=texts.REJECT),
        close=PlainTextObject(text=texts.CONFIRM_NO),
        private_metadata=json.dumps(dict(metadata), sort_keys=True),
        blocks=blocks,
    )
    return view.to_dict()


def intake_modal(teams: Sequence[str], environments: Sequence[str], user: str | None) -> dict[str, Any]:
    """`/finops intake`: register an AI service / feature (the same fields as `finops intake register`)."""

    def text_input(block: str, label: str, hint: str, *, multiline: bool = False) -> InputBlock:
        return InputBlock(
            block_id=block,
            label=PlainTextObject(text=label),
            hint=PlainTextObject(text=hint),
            element=PlainTextInputElement(
                action_id=INTAKE_FIELDS[block], multiline=multiline, max_length=500
            ),
        )

    def select(block: str, label: str, values: Sequence[str]) -> InputBlock:
        options = [Option(value=v, label=plain(v, 75)) for v in list(dict.fromkeys(values))[:100]]
        return InputBlock(
            block_id=block,
            label=PlainTextObject(text=label),
            element=StaticSelectElement(action_id=INTAKE_FIELDS[block], options=options),
        )

    blocks: list[Block] = [
        _section(texts.INTAKE_INTRO),
        text_input("feature", texts.INTAKE_FEATURE, texts.INTAKE_FEATURE_HINT),
        select("environment", texts.INTAKE_ENVIRONMENT, [*environments, "*"])
        if environments
        else text_input("environment", texts.INTAKE_ENVIRONMENT, texts.INTAKE_ENVIRONMENT_HINT),
        select("team", texts.INTAKE_TEAM, teams)
        if teams
        else text_input("team", texts.INTAKE_TEAM, texts.INTAKE_TEAM_HINT),
        InputBlock(
            block_id="owner",
            label=PlainTextObject(text=texts.INTAKE_OWNER),
            element=UserSelectElement(action_id=INTAKE_FIELDS["owner"], initial_user=user),
        ),
        text_input("use_case", texts.INTAKE_USE_CASE, texts.INTAKE_USE_CASE_HINT, multiline=True),
        text_input("models", texts.INTAKE_MODELS, texts.INTAKE_MODELS_HINT),
        InputBlock(
            block_id="est_monthly_spend",
            label=PlainTextObject(text=texts.INTAKE_SPEND),
            element=NumberInputElement(
                action_id=INTAKE_FIELDS["est_monthly_spend"], is_decimal_allowed=True, min_value="0"
            ),
        ),
    ]
    view = View(
        type="modal",
        callback_id=INTAKE_MODAL_CALLBACK_ID,
        title=PlainTextObject(text=texts.INTAKE_TITLE),
        submit=PlainTextObject(text=texts.INTAKE_SUBMIT),
        close=PlainTextObject(text=texts.CONFIRM_NO),
        blocks=blocks,
    )
    out = view.to_dict()
    _check(out["blocks"], MAX_VIEW_BLOCKS)
    return out


def intake_values(view: Mapping[str, Any]) -> dict[str, str]:
    """The submitted intake modal's values by field name (selects give their value, the user select its id)."""
    state = ((view.get("state") or {}).get("values")) or {}
    out: dict[str, str] = {}
    for block, action in INTAKE_FIELDS.items():
        item = (state.get(block) or {}).get(action) or {}
        value = item.get("value")
        if value is None and item.get("selected_option"):
            value = item["selected_option"].get("value")
        if value is None:
            value = item.get("selected_user")
        out[block] = str(value or "")
    return out


def intake_done(record: Mapping[str, Any], created: bool, warnings: Sequence[str]) -> Message:
    what = texts.intake_done(
        escape(record["feature"]), escape(record["environment"]), escape(record["team"]), created
    )
    lines = [what, *(f":warning: {escape(w)}" for w in warnings)]
    return _message(what, [_section("\n".join(lines))])
