"""The Slack app (slack-bolt): questions, lists, the owners' buttons and the App Home tab.

Every listener acks at once (Slack gives 3 s) and does its work in a lazy listener (a worker thread):
answering a question, deciding a request (which may execute a cloud change), rolling back, publishing the
Home tab. The rules of the approval design (../shared/DESIGN.md) hold here:

- the actor is the Slack user id of the signed payload; the approval policy (``approvals.policy``) decides,
  and a refusal is audited and explained to the clicker only (an ephemeral message);
- buttons carry only an opaque id (the request or the finding); the pause a click answers is the one stored
  with the message that was clicked (``agent.slack.store``), so a stale message never answers a newer
  pause, and the database claim (``ApprovalService``) lets one click of two win;
- a click from another workspace (``team.id`` of the payload differs from the bot token's) is refused;
- messages are updated with ``chat.update`` at the channel and ts stored when they were sent.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from agent.answer import Answer, AskContext
from agent.slack import blocks
from approvals.service import ApprovalService, Refused
from config.model import FinOpsConfig
from config.settings import Settings
from tools.errors import FinOpsError
from tools.store.db import Database
from tools.store.lake import Lake

log = logging.getLogger("finops.slack")

LIST_COMMANDS = ("findings", "budgets", "approvals", "audit", "help")
LISTENER_THREADS = 16  # lazy listeners (answers, executions) running at once
SNOOZE_DAYS = blocks.SNOOZE_DAYS
_MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")
_USER_TOKEN = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


@dataclass
class SlackDeps:
    """What the handlers need: the app database, the cost lake, the configuration and the Slack client.

    ``team_id`` is the workspace the bot token belongs to (``auth.test``): clicks and commands from any other
    workspace are refused. ``now`` is the clock (tests fix it); ``today`` the date questions count from."""

    db: Database
    lake: Lake
    config: FinOpsConfig
    settings: Settings
    client: WebClient
    team_id: str
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: AWS client factory for cloud actions (``approvals.actions.aws_clients.AwsClients``); None: from config
    aws: Any = None

    def today(self) -> date:
        as_of: date | None = self.settings.as_of
        return as_of or self.now().date()

    def service(self) -> ApprovalService:
        return ApprovalService(self.db, self.config, aws=self.aws, clock=self.now)


# ----- questions ----------------------------------------------------------------------------------------------
def answer(deps: SlackDeps, question: str) -> Answer:
    """The answer to a question, as ``finops ask`` gives it (the LLM graph with a key, else the planner)."""
    from agent.ask_cli import answer_question
    from tools.costs import open_costs

    con = open_costs(deps.lake, deps.config)
    try:
        ctx = AskContext(deps.config, con, deps.db, deps.today())
        result, note = answer_question(question, ctx, deps.settings)
        if note:
            log.info("question answered offline: %s", note)
        return result
    finally:
        con.close()


def _help(deps: SlackDeps) -> blocks.Message:
    from agent.planner import examples
    from agent.planner_vocab import vocabulary_for
    from tools.costs import open_costs

    con = open_costs(deps.lake, deps.config)
    try:
        ctx = AskContext(deps.config, con, deps.db, deps.today())
        return blocks.help_message(examples(vocabulary_for(ctx)))
    finally:
        con.close()


def list_reply(deps: SlackDeps, command: str, argument: str) -> blocks.Message:
    """``/finops findings | budgets | approvals | audit [resource|@user|last N] | help``."""
    if command == "help":
        return _help(deps)
    if command == "findings":
        from tools.findings_store import ACTIVE, finding_dict, list_findings

        rows = [finding_dict(r) for r in list_findings(deps.db, status=list(ACTIVE))]
        return blocks.list_message("findings", rows, command="finops findings")
    if command == "budgets":
        from tools.budgets import budget_status, token_budget_status
        from tools.costs import open_costs

        con = open_costs(deps.lake, deps.config)
        try:
            items: list[Any] = [
                *budget_status(con, deps.config, deps.today()),
                *token_budget_status(con, deps.config, deps.today()),
            ]
        finally:
            con.close()
        return blocks.list_message("budgets", items, command="finops budgets")
    if command == "approvals":
        rows = deps.service().list_requests(status=["pending", "approved", "executing"])
        return blocks.list_message("approvals", rows, command="finops approvals")
    return blocks.list_message("audit", audit_rows(deps, argument), command="finops audit list")


def audit_rows(deps: SlackDeps, argument: str) -> list[dict[str, Any]]:
    """Audit entries for ``/finops audit [resource|@user|last N]`` (newest first, 20 by default)."""
    from approvals import audit

    arg = argument.strip()
    limit, actor, resource = 20, None, None
    user = _USER_TOKEN.search(arg)
    last = re.fullmatch(r"last\s+(\d{1,3})", arg)
    if user:
        actor = user.group(1)
    elif last:
        limit = max(1, int(last.group(1)))
    elif arg:
        resource = arg
    with deps.db.session() as s:
        entries = audit.list_entries(s, actor=actor, resource=resource, limit=limit, newest_first=True)
        return [audit.entry_dict(e) for e in entries]


def split_command(text: str) -> tuple[str | None, str]:
    """(list command or None, the rest): ``"audit last 5"`` -> ("audit", "last 5"); a question -> None."""
    words = text.strip().split(maxsplit=1)
    if words and words[0].lower() in LIST_COMMANDS:
        return words[0].lower(), words[1] if len(words) > 1 else ""
    return None, text.strip()


# ----- messages the app sent ----------------------------------------------------------------------------------
def render_message(deps: SlackDeps, svc: ApprovalService, channel: str, ts: str) -> blocks.Message | None:
    """The message at ``channel``/``ts`` as it should look now (finding or digest), from the database."""
    from agent.slack.store import message_at
    from tools.findings_store import FindingNotFound, finding_dict, get_finding

    refs = message_at(deps.db, channel, ts)
    if not refs:
        return None
    findings: list[dict[str, Any]] = []
    requests: dict[str, dict[str, Any]] = {}
    for ref in refs:
        finding = None
        if ref.finding:
            try:
                finding = finding_dict(get_finding(deps.db, ref.finding), full=True)
            except FindingNotFound:
                finding = None
        request = svc.show(ref.request_id) if ref.request_id else None
        if finding is not None:
            findings.append(finding)
            if request is not None:
                requests[finding["id"]] = request
        elif request is not None and len(refs) == 1:
            return blocks.decided_message(None, request)
    if len(refs) > 1 or refs[0].kind == "digest":
        return blocks.digest_message(findings, requests, deps.config.slack.digest_top, team=refs[0].team)
    if not findings:
        return None
    return blocks.finding_message(findings[0], requests.get(findings[0]["id"]))


def update_messages(
    deps: SlackDeps, svc: ApprovalService, request_id: str | None, finding_id: str | None
) -> int:
    """chat.update every message that shows the request (or finding); returns how many were updated."""
    from agent.slack.store import refs_for_finding, refs_for_request

    refs = refs_for_request(deps.db, request_id) if request_id else []
    if finding_id:
        refs += refs_for_finding(deps.db, finding_id)
    done = set()
    for ref in refs:
        if not ref.channel or not ref.ts or (ref.channel, ref.ts) in done:
            continue
        done.add((ref.channel, ref.ts))
        message = render_message(deps, svc, ref.channel, ref.ts)
        if message is None:
            continue
        try:
            deps.client.chat_update(channel=ref.channel, ts=ref.ts, **message.as_kwargs())
        except SlackApiError as exc:
            log.warning("chat.update of %s/%s failed: %s", ref.channel, ref.ts, exc.response.get("error"))
    return len(done)


def refresh_messages(
    db: Database, config: FinOpsConfig, settings: Settings, client: WebClient, request_ids: list[str]
) -> int:
    """chat.update the Slack messages of requests decided outside Slack (expiry, the CLI, reconcile), so no
    message keeps buttons for a request that is no longer pending. Returns how many messages were updated."""
    deps = SlackDeps(
        db=db,
        lake=Lake(settings.resolved_lake_dir()),
        config=config,
        settings=settings,
        client=client,
        team_id="",
    )
    svc = deps.service()
    return sum(update_messages(deps, svc, request_id, None) for request_id in dict.fromkeys(request_ids))


# ----- clicks -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Click:
    """What a signed block_actions payload says: who clicked what, where."""

    action_id: str
    value: str
    user: str
    team: str | None
    channel: str | None
    ts: str | None

    @classmethod
    def of(cls, body: dict[str, Any]) -> Click:
        action = (body.get("actions") or [{}])[0]
        container = body.get("container") or {}
        message = body.get("message") or {}
        return cls(
            action_id=str(action.get("action_id") or ""),
            value=str(action.get("value") or ""),
            user=str((body.get("user") or {}).get("id") or ""),
            team=(body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id"),
            channel=container.get("channel_id") or (body.get("channel") or {}).get("id"),
            ts=container.get("message_ts") or message.get("ts"),
        )


def _failure_text(exc: BaseException) -> str:
    """What the user is told when something failed: the error, never a secret (tokens, URL passwords)."""
    from tools.redaction import redact_text

    return redact_text(f"Sorry, that failed: {type(exc).__name__}: {exc}")[:1500]


def _ephemeral(deps: SlackDeps, click: Click, text: str) -> None:
    message = blocks.refusal_ephemeral(text)
    try:
        if click.channel:
            deps.client.chat_postEphemeral(channel=click.channel, user=click.user, **message.as_kwargs())
        else:  # the Home tab: no channel to be ephemeral in, a DM instead
            deps.client.chat_postMessage(channel=click.user, **message.as_kwargs())
    except SlackApiError as exc:
        log.warning("could not tell %s: %s", click.user, exc.response.get("error"))


def _other_workspace(deps: SlackDeps, svc: ApprovalService, click: Click, request_id: str | None) -> bool:
    if click.team == deps.team_id:
        return False
    svc.refuse(
        f"a click from workspace {click.team}, not {deps.team_id}: only people of the app's own workspace decide",
        actor=click.user or "unknown",
        channel="slack",
        request_id=request_id,
        what=f"{click.action_id} {click.value}",
    )
    return True


def _pause_for(deps: SlackDeps, click: Click, request_id: str) -> str | None:
    """The approval pause the clicked message's buttons answer (stored when the message was sent)."""
    from agent.slack.store import message_at

    if not click.channel or not click.ts:
        return None
    for ref in message_at(deps.db, click.channel, click.ts):
        if ref.request_id == request_id:
            return str(ref.interrupt_id) if ref.interrupt_id else None
    return None


@contextmanager
def _remediation(svc: ApprovalService) -> Iterator[Any]:
    from agent.remediation import open_remediation

    with open_remediation(svc) as remediation:
        yield remediation


def ask_reject_reason(deps: SlackDeps, click: Click, trigger_id: str | None) -> None:
    """Reject opens a modal asking why (the reason goes with the decision into the audit trail); the
    submission decides. Without a usable trigger (it lasts 3 s), the rejection is recorded with a default
    reason."""
    svc = deps.service()
    if _other_workspace(deps, svc, click, click.value):
        _ephemeral(deps, click, "This button belongs to another workspace; nothing was done.")
        return
    try:
        request = svc.show(click.value)
    except FinOpsError as exc:
        _ephemeral(deps, click, str(exc))
        return
    if trigger_id:
        metadata = {"request_id": request["id"], "channel": click.channel, "ts": click.ts}
        try:
            deps.client.views_open(trigger_id=trigger_id, view=blocks.reject_modal(request, metadata))
            return
        except SlackApiError as exc:
            log.warning("views.open failed (%s); rejecting without a reason", exc.response.get("error"))
    decide(deps, click, "reject")


def decide(deps: SlackDeps, click: Click, decision: str, *, reason: str | None = None) -> None:
    """Approve or reject from a button: workspace check, the pause of the clicked message, the claim, the
    resume (which executes on a final approval), then every message of the request updated in place."""
    svc = deps.service()
    request_id = click.value
    if _other_workspace(deps, svc, click, request_id):
        _ephemeral(deps, click, "This button belongs to another workspace; nothing was done.")
        return
    try:
        from approvals.store import get_request

        with deps.db.session() as s:
            request_id = get_request(s, request_id).id
    except FinOpsError as exc:
        _ephemeral(deps, click, str(exc))
        return
    interrupt_id = _pause_for(deps, click, request_id)
    try:
        with _remediation(svc) as remediation:
            if interrupt_id is None:  # the Home tab, or a request proposed outside the graph
                view = remediation.view(request_id)
                if not view.started:
                    view = remediation.start_request(request_id)
                interrupt_id = view.interrupt_id or f"none:{request_id}"
            outcome = remediation.decide(
                request_id,
                click.user,
                "approve" if decision == "approve" else "reject",
                interrupt_id=interrupt_id,
                reason=(reason or f"rejected in Slack by {click.user}") if decision == "reject" else None,
                channel="slack",
            )
    except Refused as exc:
        _ephemeral(deps, click, str(exc))
        update_messages(deps, svc, request_id, None)
        return
    except FinOpsError as exc:
        _ephemeral(deps, click, f"{decision} failed: {exc}")
        update_messages(deps, svc, request_id, None)
        return
    log.info("request %s: %s by %s -> %s", request_id, decision, click.user, outcome.status)
    fresh = outcome.new_request_id
    if fresh:  # drift: the request was superseded; its messages now show the fresh one, at its own pause
        _show_fresh_request(deps, svc, request_id, fresh)
        _ephemeral(
            deps,
            click,
            f"The resource changed since the proposal ({outcome.message}); nothing was executed. "
            f"The message now shows the fresh request {fresh}, which needs a new approval.",
        )
        return
    update_messages(deps, svc, request_id, None)


def _show_fresh_request(deps: SlackDeps, svc: ApprovalService, old: str, fresh: str) -> None:
    from agent.slack.store import link_request, refs_for_request

    with _remediation(svc) as remediation:
        view = remediation.view(fresh)
        if not view.started:
            view = remediation.start_request(fresh)
    for ref in refs_for_request(deps.db, old):
        link_request(deps.db, ref.id, fresh, interrupt_id=view.interrupt_id, now=deps.now())
    update_messages(deps, svc, fresh, None)


def rollback(deps: SlackDeps, click: Click) -> None:
    svc = deps.service()
    if _other_workspace(deps, svc, click, click.value):
        _ephemeral(deps, click, "This button belongs to another workspace; nothing was done.")
        return
    try:
        outcome = svc.rollback(click.value, click.user, channel="slack", reason="rolled back from Slack")
    except FinOpsError as exc:  # Refused included: audited by the service
        _ephemeral(deps, click, str(exc))
        update_messages(deps, svc, click.value, None)
        return
    log.info("request %s: rollback by %s -> %s", click.value, click.user, outcome.status)
    update_messages(deps, svc, outcome.request_id, None)


def feedback(deps: SlackDeps, click: Click, verdict: str) -> None:
    """Snooze 7 days / Not waste: allowed to the people who may approve for the finding's team; audited."""
    from approvals import audit
    from approvals.policy import approvers_for
    from tools.findings_store import get_finding, record_feedback

    svc = deps.service()
    if _other_workspace(deps, svc, click, None):
        _ephemeral(deps, click, "This button belongs to another workspace; nothing was done.")
        return
    try:
        row = get_finding(deps.db, click.value)
    except FinOpsError as exc:
        _ephemeral(deps, click, str(exc))
        return
    allowed = approvers_for(deps.config, row.team) - {deps.config.guardrails.agent_id}
    if click.user not in allowed:
        svc.refuse(
            f"{click.user} may not mark findings of team {row.team or '(none)'} ({verdict}); "
            "the team's owners and approvers and the FinOps admins may",
            actor=click.user,
            channel="slack",
            resource=row.resource,
            what=f"{verdict} {row.fingerprint}",
        )
        _ephemeral(
            deps,
            click,
            f"You may not mark this finding as {verdict}: only the owners and approvers of team "
            f"{row.team or '(none)'} and the FinOps admins may. Nothing was changed.",
        )
        return
    now = deps.now()
    # the finding is not waste (or not now): its pending fix must not stay approvable
    cancelled = []
    for request in svc.list_requests(status=["pending", "approved"]):
        if request["finding"] == row.fingerprint:
            try:
                svc.cancel(
                    request["id"], click.user, reason=f"finding marked {verdict} in Slack", channel="slack"
                )
                cancelled.append(request["id"])
            except Refused:
                pass  # decided meanwhile: the claim says who won
    record_feedback(
        deps.db,
        row.fingerprint,
        verdict,
        now,
        days=SNOOZE_DAYS if verdict == "snooze" else None,
        actor=click.user,
        comment="from Slack",
    )
    with deps.db.session() as s:
        audit.append(
            s,
            event="finding.feedback",
            actor=click.user,
            at=now,
            channel="slack",
            resource=row.resource,
            details={
                "finding": row.fingerprint,
                "verdict": verdict,
                "days": SNOOZE_DAYS if verdict == "snooze" else None,
            },
        )
    for request_id in cancelled:
        update_messages(deps, svc, request_id, None)
    update_messages(deps, svc, None, row.fingerprint)


# ----- governance intake --------------------------------------------------------------------------------------
def _is_intake(text: str) -> bool:
    return text.strip().lower().split(maxsplit=1)[:1] == ["intake"]


def open_intake(deps: SlackDeps, client: WebClient, trigger_id: str, user: str, respond: Respond) -> None:
    """Open the intake modal (the trigger of the slash command lasts 3 s)."""
    config = deps.config
    environments = sorted(set(config.approved_models) | set(config.guardrails.protected_environments))
    view = blocks.intake_modal([t.name for t in config.teams], environments, user or None)
    try:
        client.views_open(trigger_id=trigger_id, view=view)
    except SlackApiError as exc:
        respond(
            response_type="ephemeral",
            text=f"Could not open the form ({exc.response.get('error')}); use `finops intake register` instead.",
        )


_INTAKE_PROBLEM_BLOCKS = (
    ("feature", "feature"),
    ("environment", "environment"),
    ("team", "team"),
    ("owner", "owner"),
    ("use case", "use_case"),
    ("models", "models"),
    ("estimated monthly spend", "est_monthly_spend"),
)


def intake_errors(deps: SlackDeps, values: dict[str, str]) -> dict[str, str]:
    """The modal's field errors (block id -> message), from the same validation as the CLI."""
    from tools.intake import IntakeError, validate

    try:
        validate(deps.config, **values)
    except IntakeError as exc:
        errors: dict[str, str] = {}
        for problem in str(exc).split(": ", 1)[-1].split("; "):
            block = next((b for prefix, b in _INTAKE_PROBLEM_BLOCKS if problem.startswith(prefix)), "feature")
            errors[block] = (errors.get(block, "") + " " + problem).strip()[:150]
        return errors
    return {}


def record_intake(deps: SlackDeps, values: dict[str, str], user: str) -> blocks.Message:
    from agent.intake_cli import record_registration
    from approvals.policy import approvers_for
    from tools.intake import list_services, validate

    reg = validate(deps.config, **values)
    for existing in list_services(deps.db):
        if (existing.feature, existing.environment) != (reg.feature, reg.environment):
            continue
        allowed = approvers_for(deps.config, existing.team) | {existing.registered_by}
        if user not in allowed:  # anyone may register; only the owners may change a registration
            raise FinOpsError(
                f"{reg.feature} ({reg.environment}) is already registered by team {existing.team}; only its "
                f"owners and approvers, the FinOps admins or {existing.registered_by} may change it"
            )
    record, created = record_registration(
        deps.db, deps.config, reg, actor=user, channel="slack", now=deps.now()
    )
    return blocks.intake_done(record.as_dict(), created, reg.warnings)


# ----- App Home -----------------------------------------------------------------------------------------------
def home(deps: SlackDeps, user: str) -> dict[str, Any]:
    """The Home tab of ``user``: requests they may approve, their teams' budgets, their teams' audit."""
    from approvals import audit
    from approvals.policy import approvers_for
    from tools.budgets import budget_status, token_budget_status
    from tools.costs import open_costs

    config = deps.config
    teams = {t.name for t in config.teams if user in t.approvers or any(p.slack_id == user for p in t.owners)}
    svc = deps.service()
    admin = user in config.guardrails.finops_admins
    pending = [
        svc.show(r["id"])
        for r in svc.list_requests(status=["pending"])
        if user in approvers_for(config, r["team"]) and user != r["requested_by"]
    ]
    con = open_costs(deps.lake, config)
    try:
        budgets: list[Any] = [
            b for b in budget_status(con, config, deps.today()) if admin or b.scope.get("team") in teams
        ]
        budgets += [t for t in token_budget_status(con, config, deps.today()) if admin]
    finally:
        con.close()
    with deps.db.session() as s:
        entries = [audit.entry_dict(e) for e in audit.list_entries(s, limit=200, newest_first=True)]
    if not admin:
        mine = {r["id"] for r in svc.list_requests() if r["team"] in teams}
        entries = [e for e in entries if e.get("request_id") in mine or e.get("actor") == user]
    return blocks.home_view(pending, budgets, entries[:10], user)


# ----- the app ------------------------------------------------------------------------------------------------
def build_app(deps: SlackDeps, *, signing_secret: str) -> App:
    """The Bolt app with every listener registered. HTTP mode checks each request's signature with
    ``signing_secret`` (401 on a bad or stale one, before any listener runs)."""
    app = App(
        signing_secret=signing_secret,
        client=deps.client,
        token_verification_enabled=False,
        # acks run on the request's own thread and answer at once; the slow work (lazy listeners: questions,
        # executions, the Home tab) runs on a pool of its own, so busy workers never delay an ack past 3 s
        process_before_response=True,
        listener_executor=ThreadPoolExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="finops-slack"),
        raise_error_for_unhandled_request=False,
    )

    def refuse_other_workspace(body: dict[str, Any]) -> bool:
        team = body.get("team_id") or (body.get("team") or {}).get("id")
        return bool(team and team != deps.team_id)

    # -- /finops ------------------------------------------------------------------------------------------
    def command_ack(ack: Ack, body: dict[str, Any]) -> None:
        if refuse_other_workspace(body):
            ack(text="This app answers its own workspace only.")
            return
        if _is_intake(str(body.get("text") or "")):
            ack()  # the modal opens instead
            return
        ack(**blocks.working_message().as_kwargs())

    def command_work(body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        if refuse_other_workspace(body):
            return
        text = str(body.get("text") or "")
        if _is_intake(text):
            open_intake(
                deps, client, str(body.get("trigger_id") or ""), str(body.get("user_id") or ""), respond
            )
            return
        command, rest = split_command(text)
        try:
            if command is None and not rest:
                message = _help(deps)
            elif command is None:
                message = blocks.answer_message(answer(deps, rest))
            else:
                message = list_reply(deps, command, rest)
        except Exception as exc:  # a failure is told to the asker, never a silent "working on it"
            log.exception("/finops %s failed", command or "question")
            message = blocks.refusal_ephemeral(_failure_text(exc))
        respond(replace_original=True, response_type="ephemeral", **message.as_kwargs())

    app.command("/finops")(ack=command_ack, lazy=[command_work])

    # -- @finops and DMs ---------------------------------------------------------------------------------------
    def event_ack(ack: Ack) -> None:
        ack()

    def question_in_thread(event: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        if refuse_other_workspace(body) or event.get("bot_id") or event.get("subtype"):
            return
        channel = str(event.get("channel") or "")
        thread = str(event.get("thread_ts") or event.get("ts") or "")
        text = _MENTION.sub("", str(event.get("text") or "")).strip()
        placeholder = client.chat_postMessage(
            channel=channel, thread_ts=thread, **blocks.working_message().as_kwargs()
        )
        try:
            command, rest = split_command(text)
            if command is None and not rest:
                message = _help(deps)
            elif command is None:
                message = blocks.answer_message(answer(deps, rest))
            else:
                message = list_reply(deps, command, rest)
        except Exception as exc:
            log.exception("question failed")
            message = blocks.refusal_ephemeral(_failure_text(exc))
        client.chat_update(channel=placeholder["channel"], ts=placeholder["ts"], **message.as_kwargs())

    app.event("app_mention")(ack=event_ack, lazy=[question_in_thread])

    def dm(event: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        if event.get("channel_type") == "im":
            question_in_thread(event, body, client)

    app.event("message")(ack=event_ack, lazy=[dm])

    # -- App Home ----------------------------------------------------------------------------------------------
    def home_opened(event: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        if refuse_other_workspace(body) or event.get("tab") not in (None, "home"):
            return
        user = str(event.get("user") or "")
        try:
            client.views_publish(user_id=user, view=home(deps, user))
        except Exception:  # the tab keeps its last view; the reason is in the log
            log.exception("App Home of %s failed", user)

    app.event("app_home_opened")(ack=event_ack, lazy=[home_opened])

    # -- buttons -----------------------------------------------------------------------------------------------
    def action_ack(ack: Ack) -> None:
        ack()

    def on(action_id: str, work: Callable[[Click], None]) -> None:
        def run(body: dict[str, Any]) -> None:
            click = Click.of(body)
            try:
                work(click)
            except Exception as exc:  # told to the clicker; the database state is the truth
                log.exception("%s failed", action_id)
                _ephemeral(deps, click, _failure_text(exc))

        app.action(action_id)(ack=action_ack, lazy=[run])

    on(blocks.APPROVE_ACTION, lambda c: decide(deps, c, "approve"))

    def reject_clicked(body: dict[str, Any]) -> None:
        click = Click.of(body)
        try:
            ask_reject_reason(deps, click, body.get("trigger_id"))
        except Exception as exc:
            log.exception("reject failed")
            _ephemeral(deps, click, _failure_text(exc))

    app.action(blocks.REJECT_ACTION)(ack=action_ack, lazy=[reject_clicked])

    def reason_ack(ack: Ack, view: dict[str, Any]) -> None:
        value = (
            ((view.get("state") or {}).get("values") or {})
            .get(blocks.REJECT_REASON_BLOCK, {})
            .get(blocks.REJECT_REASON_INPUT, {})
            .get("value")
        )
        if not value or len(value.strip()) < 3:
            ack(response_action="errors", errors={blocks.REJECT_REASON_BLOCK: "Say why in a few words."})
            return
        ack()

    def reason_submitted(body: dict[str, Any], view: dict[str, Any]) -> None:
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            meta = {}
        value = (
            ((view.get("state") or {}).get("values") or {})
            .get(blocks.REJECT_REASON_BLOCK, {})
            .get(blocks.REJECT_REASON_INPUT, {})
            .get("value")
        )
        if not meta.get("request_id") or not value or len(value.strip()) < 3:
            return
        user = body.get("user") or {}
        click = Click(
            action_id=blocks.REJECT_ACTION,
            value=str(meta["request_id"]),
            user=str(user.get("id") or ""),
            team=(body.get("team") or {}).get("id") or user.get("team_id"),
            channel=meta.get("channel"),
            ts=meta.get("ts"),
        )
        try:
            decide(deps, click, "reject", reason=value.strip())
        except Exception as exc:
            log.exception("reject failed")
            _ephemeral(deps, click, _failure_text(exc))

    app.view(blocks.REJECT_MODAL_CALLBACK_ID)(ack=reason_ack, lazy=[reason_submitted])

    def intake_ack(ack: Ack, view: dict[str, Any]) -> None:
        errors = intake_errors(deps, blocks.intake_values(view))
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()

    def intake_submitted(body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        if refuse_other_workspace(body):
            return
        user = str((body.get("user") or {}).get("id") or "")
        values = blocks.intake_values(view)
        if intake_errors(deps, values):  # the modal showed the errors and stays open: nothing to record
            return
        try:
            message = record_intake(deps, values, user)
        except FinOpsError as exc:
            message = blocks.refusal_ephemeral(str(exc))
        except Exception as exc:
            log.exception("intake failed")
            message = blocks.refusal_ephemeral(_failure_text(exc))
        client.chat_postMessage(channel=user, **message.as_kwargs())

    app.view(blocks.INTAKE_MODAL_CALLBACK_ID)(ack=intake_ack, lazy=[intake_submitted])
    on(blocks.ROLLBACK_ACTION, lambda c: rollback(deps, c))
    on(blocks.SNOOZE_ACTION, lambda c: feedback(deps, c, "snooze"))
    on(blocks.NOT_WASTE_ACTION, lambda c: feedback(deps, c, "not-waste"))
    return app


def workspace_of(client: WebClient) -> str:
    """The workspace (team id) the bot token belongs to, from ``auth.test``."""
    response = client.auth_test()
    team = response.get("team_id")
    if not team:
        raise FinOpsError("Slack's auth.test returned no team_id; check SLACK_BOT_TOKEN")
    return str(team)
