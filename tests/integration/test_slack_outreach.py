"""Owner outreach in Slack on SQLite and PostgreSQL, with the real ``WebClient`` (``make_client``: its 429
retry handler) talking HTTP to ``FakeSlack``: who gets a finding (config Slack id, e-mail look-up, team
channel, FinOps channel), digests, proposals through the remediation graph with the pause stored, no
duplicate on re-runs, restarts or concurrent runs, failed sends retried, reopened findings, the audit trail,
the dry run and ``finops notify``; the demo organisation end to end."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from slack_sdk import WebClient
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from agent.remediation import open_remediation
from agent.slack import store
from agent.slack.blocks import ACTION_IDS, APPROVE_ACTION, REJECT_ACTION
from agent.slack.client import make_client
from agent.slack.outreach import OutreachReport, notify_owners, slack_notifier
from approvals import audit
from approvals.service import ApprovalService
from config.loader import parse_config
from config.model import AwsConfig, FinOpsConfig
from config.settings import Settings
from tests.demo_org import DemoOrg
from tests.fakes.slack_server import BOT_TOKEN, FakeSlack, dm_channel_for
from tests.moto_server import moto_endpoint_fixture  # noqa: F401
from tools.findings import Finding, fingerprint
from tools.findings_store import record_feedback, upsert_findings
from tools.store.db import Database
from tools.store.models import FindingRow, RemediationRequest, SlackMessage

T0 = datetime(2024, 9, 21, 8, 0, tzinfo=UTC)
OWNER, APPROVER, ADMIN = "U0SUPPORT1", "U0SUPPORT2", "U0FINOPS01"
DATA_EMAIL, DATA_USER = "fay@example.com", "U0DATAFAY1"
TAG_EMAIL, TAG_USER = "gus@example.com", "U0GUSTAG01"
REQUEST_ID = re.compile(r"^req-[0-9a-f]{12}$")

CONFIG = f"""
teams:
  - name: support
    owners: [{{slack_id: {OWNER}, email: ben@example.com}}]
    approvers: [{APPROVER}]
    slack_channel: "#team-support"
  - name: data
    owners: [{{email: {DATA_EMAIL}}}]
    approvers: [U0DATA0002]
    slack_channel: "#team-data"
  - name: web
    approvers: [U0WEB00001]
    slack_channel: C0TEAMWEB1
  - name: orphans
guardrails:
  finops_admins: [{ADMIN}]
"""
SLACK = """
slack:
  finops_channel: "#finops"
"""


def make_config(extra: str = SLACK) -> FinOpsConfig:
    return parse_config(CONFIG + extra)


def add(
    db: Database,
    cfg: FinOpsConfig,
    key: str,
    *,
    team: str | None = "support",
    impact: str = "100",
    action: bool = False,
    evidence: dict[str, Any] | None = None,
    now: datetime = T0,
) -> str:
    """A stored waste finding; ``action``: it proposes ``set-rate-limit`` (no cloud call) on project ``key``."""
    fp = fingerprint("test-rule", key)
    finding = Finding(
        kind="waste",
        rule_id="test-rule",
        fingerprint=fp,
        title=f"{key} wastes money",
        monthly_impact=Decimal(impact),
        detected_at=now,
        resource=f"project:{key}",
        resource_kind="llm-project",
        scope={"team": team} if team else {},
        evidence=evidence or {"requests": 1200},
        proposed_action="set-rate-limit" if action else None,
        action_params={"project": key, "tokens_per_month": 1_000_000} if action else {},
        recommendation=None if action else "look at it",
    )
    upsert_findings(db, [finding], cfg, now)
    return fp


@pytest.fixture
def cfg() -> FinOpsConfig:
    return make_config()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """The fake Slack Web API on 127.0.0.1, for one test."""
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> WebClient:
    return make_client(Settings().model_copy(update={"slack_api_url": slack.base_url}), token=BOT_TOKEN)


@pytest.fixture
def svc(db: Database, cfg: FinOpsConfig) -> ApprovalService:
    return ApprovalService(db, cfg)


def run(db: Database, cfg: FinOpsConfig, client: WebClient | None, **kw: Any) -> OutreachReport:
    kw.setdefault("now", T0)
    return notify_owners(db, cfg, client, **kw)


def rows(db: Database) -> list[SlackMessage]:
    with db.session() as s:
        return list(s.scalars(select(SlackMessage).order_by(SlackMessage.id)))


def finding_status(db: Database, fp: str) -> str:
    with db.session() as s:
        row = s.get(FindingRow, fp)
        assert row is not None
        return row.status


def entries(db: Database, event: str | None = None) -> list[audit.AuditEntry]:
    with db.session() as s:
        return [e for e in audit.list_entries(s) if event is None or e.event == event]


def chain_ok(db: Database) -> bool:
    with db.session() as s:
        return audit.verify(s).ok


def buttons(message: dict[str, Any]) -> dict[str, list[str]]:
    """action id → the values of the message's buttons with that action id."""
    out: dict[str, list[str]] = {}
    for block in message.get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("type") == "button":
                out.setdefault(element["action_id"], []).append(element["value"])
    return out


def assert_only_ids(message: dict[str, Any], findings: set[str], requests: set[str]) -> None:
    for action, values in buttons(message).items():
        assert action in ACTION_IDS
        for value in values:
            assert value in findings | requests, f"button {action} carries {value!r}, not an id"


# --- who gets it ----------------------------------------------------------------------------------


def test_outreach_dm_to_the_config_slack_id_with_the_fix_its_buttons_and_the_pause(
    db: Database, cfg: FinOpsConfig, client: WebClient, slack: FakeSlack, svc: ApprovalService
) -> None:
    fp = add(db, cfg, "support-bot", action=True)
    report = run(db, cfg, client, svc=svc)

    (item,) = report.sent
    assert (item.recipient, item.resolved_by, item.kind) == (OWNER, "config", "finding")
    assert item.channel == dm_channel_for(OWNER) and item.ts and report.messages == 1
    assert item.request_id and REQUEST_ID.match(item.request_id) and item.interrupt_id
    (call,) = slack.calls("chat.postMessage")
    assert call.params["channel"] == OWNER and call.token == BOT_TOKEN
    message = slack.messages[(item.channel, item.ts)]
    assert buttons(message)[APPROVE_ACTION] == [item.request_id] == buttons(message)[REJECT_ACTION]
    assert_only_ids(message, {fp}, {item.request_id})
    assert "support-bot" in message["text"] and message["blocks"]

    # the remediation graph waits at the pause the message stores
    with open_remediation(svc, notifier=slack_notifier) as rem:
        assert rem.view(item.request_id).interrupt_id == item.interrupt_id
    (ref,) = store.message_at(db, item.channel, item.ts)
    assert (ref.finding, ref.request_id, ref.interrupt_id) == (fp, item.request_id, item.interrupt_id)
    assert (ref.kind, ref.status, ref.recipient, ref.resolved_by, ref.episode) == (
        "finding",
        "sent",
        OWNER,
        "config",
        1,
    )
    assert store.refs_for_request(db, item.request_id) == [ref] == store.refs_for_finding(db, fp)
    with db.session() as s:
        request = s.get(RemediationRequest, item.request_id)
        assert request is not None and (request.slack_channel, request.slack_ts) == (item.channel, item.ts)
    assert finding_status(db, fp) == "notified"

    # audited: proposed, then notified once Slack accepted it; never a token
    events = [(e.event, e.channel) for e in entries(db)]
    assert events == [
        ("request.proposed", "slack"),
        ("finding.notified", "slack"),
        ("request.notified", "slack"),
    ]
    for entry in entries(db, "finding.notified") + entries(db, "request.notified"):
        details = json.loads(entry.details)
        assert details["recipient"] == OWNER and details["resolved_by"] == "config"
        assert (details["slack_channel"], details["ts"]) == (item.channel, item.ts)
        assert entry.request_id == item.request_id and entry.actor == "finops-agent"
        assert "xox" not in entry.details
    assert chain_ok(db)

    assert store.set_interrupt(db, item.request_id, "new-pause", now=T0) == 1
    assert store.message_at(db, item.channel, item.ts)[0].interrupt_id == "new-pause"


def test_outreach_looks_owners_up_by_email_from_config_and_from_tags(
    db: Database, cfg: FinOpsConfig, client: WebClient, slack: FakeSlack
) -> None:
    slack.users_by_email.update({DATA_EMAIL: DATA_USER, TAG_EMAIL: TAG_USER})
    by_config = add(db, cfg, "lake", team="data")
    by_tag = add(db, cfg, "scratch", team=None, evidence={"current_tags": {"owner_email": TAG_EMAIL}})
    report = run(db, cfg, client)

    sent = {i.finding: i for i in report.sent}
    assert (sent[by_config].recipient, sent[by_config].resolved_by) == (DATA_USER, "email")
    assert (sent[by_tag].recipient, sent[by_tag].resolved_by) == (TAG_USER, "email")
    assert sent[by_config].channel == dm_channel_for(DATA_USER)
    looked_up = sorted(c.params["email"] for c in slack.calls("users.lookupByEmail"))
    assert looked_up == sorted([DATA_EMAIL, TAG_EMAIL])
    assert {r.resolved_by for r in rows(db)} == {"email"}


def test_outreach_falls_back_to_the_team_channel_and_deliver_channel_prefers_it(
    db: Database, client: WebClient, slack: FakeSlack
) -> None:
    cfg = make_config()
    unknown = add(db, cfg, "lake", team="data")  # fay@example.com is not a Slack user here
    web = add(db, cfg, "site", team="web")  # no owners at all: the team's channel id
    report = run(db, cfg, client)
    sent = {i.finding: i for i in report.sent}
    assert (sent[unknown].recipient, sent[unknown].resolved_by) == ("#team-data", "team-channel")
    assert (sent[web].recipient, sent[web].channel) == ("C0TEAMWEB1", "C0TEAMWEB1")

    channel_cfg = make_config(SLACK + "  deliver: channel\n")
    support = add(db, channel_cfg, "support-bot")
    (item,) = run(db, channel_cfg, client).sent
    assert item.finding == support and (item.recipient, item.resolved_by) == ("#team-support", "team-channel")
    assert slack.last("chat.postMessage").params["channel"] == "#team-support"


def test_outreach_falls_back_to_the_finops_channel_else_skips_and_says_what_to_set(
    db: Database, client: WebClient, slack: FakeSlack
) -> None:
    bare = make_config("")
    orphan = add(db, bare, "mystery", team="orphans")
    report = run(db, bare, client)
    (item,) = report.skipped
    assert item.finding == orphan and not report.sent and not slack.calls("chat.postMessage")
    assert "slack.finops_channel" in (item.reason or "") and "finops.yaml" in (item.reason or "")
    assert rows(db) == []  # not claimed: a run after the config is fixed sends it

    (item,) = run(db, make_config(), client).sent
    assert (item.finding, item.recipient, item.resolved_by) == (orphan, "#finops", "finops-channel")


def test_outreach_sends_a_digest_when_one_recipient_gets_many(
    db: Database, cfg: FinOpsConfig, client: WebClient, slack: FakeSlack, svc: ApprovalService
) -> None:
    fps = [add(db, cfg, f"p{i}", impact=str(100 + i), action=i < 2) for i in range(7)]
    single = add(db, cfg, "lake", team="web")
    report = run(db, cfg, client, svc=svc)

    assert len(slack.calls("chat.postMessage")) == 2 and report.messages == 2
    (digest,) = report.digests
    assert digest.recipient == OWNER and digest.outcome == "sent" and sorted(digest.findings) == sorted(fps)
    assert digest.channel and digest.ts
    shown = store.message_at(db, digest.channel, digest.ts)
    assert sorted(r.finding for r in shown if r.finding) == sorted(fps)
    assert {r.kind for r in shown} == {"digest"} and {r.status for r in shown} == {"sent"}
    requests = {r.request_id for r in shown if r.request_id}
    assert len(requests) == 2 and all(r.interrupt_id for r in shown if r.request_id)
    message = slack.messages[(digest.channel, digest.ts)]
    assert sorted(buttons(message)[APPROVE_ACTION]) == sorted(requests)
    assert_only_ids(message, set(fps), {str(r) for r in requests})
    assert {i.kind for i in report.sent if i.finding == single} == {"finding"}
    assert report.per_destination()[OWNER] == {"sent": 7, "digests": 1}
    assert len(entries(db, "finding.notified")) == 8 and len(entries(db, "request.notified")) == 2
    assert chain_ok(db)


def test_outreach_digest_threshold_comes_from_config_or_the_argument(
    db: Database, cfg: FinOpsConfig, client: WebClient, slack: FakeSlack
) -> None:
    for i in range(3):
        add(db, cfg, f"p{i}")
    report = run(db, cfg, client, digest_over=2, dry_run=True)
    assert {i.kind for i in report.planned} == {"digest"} and len(report.digests) == 1
    report = run(db, cfg, client)  # slack.digest_over = 5
    assert {i.kind for i in report.sent} == {"finding"} and report.messages == 3


# --- once, and only once ------------------------------------------------------------------------------


def test_outreach_rerun_and_restart_send_nothing_twice(
    db: Database, cfg: FinOpsConfig, client: WebClient, slack: FakeSlack, svc: ApprovalService
) -> None:
    add(db, cfg, "support-bot", action=True)
    add(db, cfg, "lake", team="web")
    assert len(run(db, cfg, client, svc=svc).sent) == 2
    # a re-scan sees the same findings again: still notified, nothing sent
    add(db, cfg, "support-bot", action=True, now=T0 + timedelta(days=1))
    again = run(db, cfg, client, now=T0 + timedelta(days=1))  # a fresh service: a restart
    assert again.items == [] and len(slack.calls("chat.postMessage")) == 2
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(RemediationRequest)) == 1


def test_outreach_a_send_in_flight_is_left_alone_until_it_is_stale(
    db: Database, cfg: FinOpsConfig, client: WebClient, slack: FakeSlack
) -> None:
    fp = add(db, cfg, "lake", team="web")
    # another worker claimed it and (say) died before Slack answered
    assert store.claim_finding(
        db, fp, kind="finding", team="web", recipient="C0TEAMWEB1", resolved_by="team-channel", now=T0
    )
    assert not store.claim_finding(
        db, fp, kind="finding", team="web", recipient="C0TEAMWEB1", resolved_by="team-channel", now=T0
    )
    (item,) = run(db, cfg, client).skipped
    assert "another run" in (item.reason or "") and not slack.calls("chat.postMessage")
    later = T0 + store.DEFAULT_STALE_AFTER + timedelta(minutes=1)
    (item,) = run(db, cfg, client, now=later).sent
    assert item.finding == fp and "stopped before Slack answered" in (item.note or "")
    (row,) = rows(db)
    assert (row.status, row.episode) == ("sent", 1)


def test_outreach_concurrent_runs_send_each_finding_once(
    db: Database, cfg: FinOpsConfig, slack: FakeSlack
) -> None:
    """Four workers at once (threads, each with its own client and service): every finding is sent once,
    proposed once, audited once."""
    digest = [add(db, cfg, f"p{i}", action=i < 2) for i in range(6)]  # 6 > 5: a digest to the owner
    singles = [add(db, cfg, "lake", team="web"), add(db, cfg, "mystery", team="orphans")]
    barrier = threading.Barrier(4)
    reports: list[OutreachReport] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            client = make_client(
                Settings().model_copy(update={"slack_api_url": slack.base_url}), token=BOT_TOKEN
            )
            svc = ApprovalService(db, cfg)
            barrier.wait(timeout=30)
            reports.append(notify_owners(db, cfg, client, now=T0, svc=svc))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    sent = [i.finding for r in reports for i in r.sent]
    assert sorted(sent) == sorted(digest + singles)
    posted = slack.calls("chat.postMessage")
    assert len(posted) == sum(r.messages for r in reports) == 3  # one digest + two singles
    assert sorted(r.finding for r in rows(db) if r.finding) == sorted(digest + singles)
    assert {r.status for r in rows(db)} == {"sent"}
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(RemediationRequest)) == 2
    assert len(entries(db, "finding.notified")) == 8 and len(entries(db, "request.notified")) == 2
    assert chain_ok(db)


def test_claim_is_decided_by_the_unique_index(db: Database, cfg: FinOpsConfig) -> None:
    fp = add(db, cfg, "lake", team="web")
    row = {
        "kind": "finding",
        "finding": fp,
        "episode": 1,
        "recipient": "C0TEAMWEB1",
        "resolved_by": "team-channel",
        "status": "sending",
        "created_at": T0,
        "updated_at": T0,
    }
    with db.session() as s:
        s.add(SlackMessage(**row))
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(SlackMessage(**{**row, "kind": "digest"}))
    claim = {"team": "web", "recipient": "C0TEAMWEB1", "resolved_by": "team-channel", "now": T0}
    assert not store.claim_finding(db, fp, kind="finding", **claim)
    with pytest.raises(store.SlackStoreError, match="resolved by config, email"):
        store.claim_finding(db, fp, kind="finding", **{**claim, "resolved_by": "guess"})  # type: ignore[arg-type]


# --- Slack errors ---------------------------------------------------------------------------------


def test_outreach_retries_a_rate_limited_post(
    db: Database, cfg: FinOpsConfig, client: WebClient, slack: FakeSlack
) -> None:
    add(db, cfg, "lake", team="web")
    slack.fail_next("chat.postMessage", "ratelimited", status=429, retry_after=0)
    report = run(db, cfg, client)
    assert len(report.sent) == 1 and not report.failed
    assert [c.status for c in slack.calls("chat.postMessage")] == [429, 200]


def test_outreach_marks_a_slack_error_failed_and_a_later_run_retries_it(
    db: Database, cfg: FinOpsConfig, client: WebClient, slack: FakeSlack, svc: ApprovalService
) -> None:
    fp = add(db, cfg, "support-bot", action=True)
    slack.fail_next("chat.postMessage", "channel_not_found")
    report = run(db, cfg, client, svc=svc)
    (item,) = report.failed
    assert item.reason == "channel_not_found" and not report.sent
    (row,) = rows(db)
    assert (row.status, row.error, row.channel, row.ts) == ("failed", "channel_not_found", None, None)
    assert finding_status(db, fp) == "open" and entries(db, "finding.notified") == []

    (item,) = run(db, cfg, client, svc=svc, now=T0 + timedelta(hours=1)).sent
    assert "last attempt failed (channel_not_found)" in (item.note or "")
    (again,) = rows(db)
    assert (again.id, again.status, again.error, again.episode) == (row.id, "sent", None, 1)
    assert again.request_id == item.request_id and again.interrupt_id  # the same request, proposed once
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(RemediationRequest)) == 1
    assert finding_status(db, fp) == "notified" and len(entries(db, "finding.notified")) == 1
    assert chain_ok(db)


def test_outreach_sends_a_refused_proposal_without_approve_and_says_why(
    db: Database, client: WebClient, slack: FakeSlack
) -> None:
    cfg = make_config()
    cfg = cfg.model_copy(
        update={"guardrails": cfg.guardrails.model_copy(update={"allowed_actions": {"*": ["apply-tags"]}})}
    )
    fp = add(db, cfg, "support-bot", action=True)
    (item,) = run(db, cfg, client).sent
    assert item.request_id is None and "fix not proposed" in (item.note or "")
    assert "set-rate-limit is not allowed" in (item.note or "")
    message = slack.messages[(str(item.channel), str(item.ts))]
    assert APPROVE_ACTION not in buttons(message) and buttons(message)  # Snooze / Not waste remain
    assert_only_ids(message, {fp}, set())
    assert [e.event for e in entries(db)] == ["request.refused", "finding.notified"]


# --- reopened findings, dry run, CLI -----------------------------------------------------------------


def test_outreach_notifies_a_finding_again_only_when_it_is_open_again(
    db: Database, cfg: FinOpsConfig, client: WebClient, slack: FakeSlack
) -> None:
    fp = add(db, cfg, "lake", team="web")
    (first,) = run(db, cfg, client).sent
    record_feedback(db, fp, "snooze", T0, days=7, actor=OWNER)
    assert run(db, cfg, client, now=T0 + timedelta(days=1)).items == []  # snoozed: nothing
    back = T0 + timedelta(days=8)
    add(db, cfg, "lake", team="web", now=back)  # the scan after the snooze: open again
    (second,) = run(db, cfg, client, now=back).sent
    assert "open again" in (second.note or "") and second.ts != first.ts
    assert [(r.episode, r.status, r.ts) for r in rows(db)] == [(1, "sent", first.ts), (2, "sent", second.ts)]
    assert store.message_at(db, str(first.channel), str(first.ts))[0].episode == 1  # the old one stays
    assert run(db, cfg, client, now=back).items == []


def test_outreach_dry_run_shows_who_would_get_what_and_sends_nothing(
    db: Database, cfg: FinOpsConfig, client: WebClient, slack: FakeSlack
) -> None:
    slack.users_by_email[DATA_EMAIL] = DATA_USER
    add(db, cfg, "support-bot", action=True)
    add(db, cfg, "lake", team="data")
    report = run(db, cfg, client, dry_run=True)
    planned = {i.team: i for i in report.planned}
    assert (planned["support"].recipient, planned["support"].resolved_by) == (OWNER, "config")
    assert "would propose set-rate-limit" in (planned["support"].note or "")
    assert (planned["data"].recipient, planned["data"].resolved_by) == (DATA_USER, "email")
    assert slack.calls("chat.postMessage") == [] and rows(db) == [] and entries(db) == []
    offline = run(db, cfg, None, dry_run=True)  # no token: the e-mail it would look up
    assert {i.recipient for i in offline.planned} == {OWNER, DATA_EMAIL}
    with pytest.raises(Exception, match="SLACK_BOT_TOKEN"):
        run(db, cfg, None)


def test_finops_notify_cli_dry_run_then_send(
    sqlite_db: Database, slack: FakeSlack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.cli_context import Context
    from agent.notify_cli import register

    config_path = tmp_path / "finops.yaml"
    config_path.write_text(CONFIG + SLACK)
    cfg = make_config()
    add(sqlite_db, cfg, "lake", team="web")
    app = typer.Typer()

    @app.callback()
    def main(ctx: typer.Context) -> None:
        ctx.obj = Context(sqlite_db.url, config_path, None)

    register(app)
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("FINOPS_SLACK_BOT_TOKEN", raising=False)
    runner = CliRunner()
    result = runner.invoke(app, ["notify", "--dry-run", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (
        data["dry_run"] and data["counts"]["planned"] == 1 and data["items"][0]["recipient"] == "C0TEAMWEB1"
    )
    assert not slack.calls()

    result = runner.invoke(app, ["notify"])
    assert result.exit_code == 2 and "SLACK_BOT_TOKEN" in result.output

    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("FINOPS_SLACK_API_URL", slack.base_url)
    result = runner.invoke(app, ["notify"])
    assert result.exit_code == 0, result.output
    assert "1 message(s) sent for 1 finding(s)" in result.output and BOT_TOKEN not in result.output
    assert len(slack.calls("chat.postMessage")) == 1
    assert "0 message(s) sent" in runner.invoke(app, ["notify"]).output


def test_the_migration_matches_the_model(db: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from tools.store.models import Base

    with db.engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    mine = [d for d in diffs if "slack_messages" in repr(d)]
    assert mine == []


# --- the demo organisation ------------------------------------------------------------------------


@dataclass
class DemoCopy:
    db: Database
    config: FinOpsConfig
    request_id: str | None  # the request the demo proposed before any message


@pytest.fixture
def demo_copy(demo_org: DemoOrg, tmp_path: Path, moto_endpoint: str) -> Iterator[DemoCopy]:
    """The session's demo database copied (the shared one stays untouched); AWS actions observe the
    (empty) moto server, so cloud fixes are refused rather than reaching for real AWS."""
    target = tmp_path / "demo.db"
    with sqlite3.connect(str(demo_org.directory / "finops.db")) as src, sqlite3.connect(str(target)) as dst:
        src.backup(dst)
    database = Database(f"sqlite:///{target}")
    database.migrate()
    config = demo_org.config.model_copy(update={"aws": AwsConfig(endpoint_url=moto_endpoint)})
    yield DemoCopy(database, config, demo_org.request_id)
    database.dispose()


def test_outreach_on_the_demo_organisation(demo_copy: DemoCopy, slack: FakeSlack, client: WebClient) -> None:
    db, cfg = demo_copy.db, demo_copy.config
    with db.session() as s:
        open_findings = set(s.scalars(select(FindingRow.fingerprint).where(FindingRow.status == "open")))
        teams = {fp: team for fp, team in s.execute(select(FindingRow.fingerprint, FindingRow.team))}
    report = notify_owners(db, cfg, client, now=datetime(2024, 9, 21, 6, tzinfo=UTC))

    assert not report.failed and {i.finding for i in report.sent} == open_findings
    owners = {t.name: t.owners[0].slack_id for t in cfg.teams if t.owners and t.owners[0].slack_id}
    for item in report.sent:
        assert item.recipient == owners[str(teams[item.finding])] and item.resolved_by == "config"
    per_team: dict[str, int] = {}
    for fp in open_findings:
        per_team[str(teams[fp])] = per_team.get(str(teams[fp]), 0) + 1
    digests = {d.recipient for d in report.digests}
    assert digests == {owners[t] for t, n in per_team.items() if n > cfg.slack.digest_over}
    assert len(slack.calls("chat.postMessage")) == report.messages
    requests = {i.request_id for i in report.sent if i.request_id}
    assert requests and all(i.interrupt_id for i in report.sent if i.request_id)
    assert demo_copy.request_id is None or demo_copy.request_id in requests  # reused, not proposed again
    for (channel, ts), message in slack.messages.items():
        assert_only_ids(message, open_findings, {str(r) for r in requests})
        assert store.message_at(db, channel, ts)
    assert notify_owners(db, cfg, client, now=datetime(2024, 9, 21, 7, tzinfo=UTC)).items == []
    assert chain_ok(db)


@pytest.mark.parametrize("many", [False, True], ids=["one-finding", "digest"])
def test_outreach_after_a_crash_between_the_post_and_its_record_sends_no_second_message(
    db: Database,
    cfg: FinOpsConfig,
    client: WebClient,
    slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
    many: bool,
) -> None:
    """The process dies after Slack accepted the message but before the row says so: the run that takes the
    stale claim over finds the message by its metadata in the recipient's channel and records it."""
    fps = [add(db, cfg, f"svc-{i}", team="web") for i in range(7 if many else 1)]

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise SystemExit("killed")  # what a SIGKILL leaves behind: the message is out, the row says sending

    with monkeypatch.context() as m:
        m.setattr(store, "mark_sent", crash)
        with pytest.raises(SystemExit):
            run(db, cfg, client)
    assert len(slack.calls("chat.postMessage")) == 1
    later = T0 + store.DEFAULT_STALE_AFTER + timedelta(minutes=1)
    report = run(db, cfg, client, now=later)
    assert {i.finding for i in report.sent} == set(fps)
    assert len(slack.calls("chat.postMessage")) == 1  # recorded, not sent again
    first = slack.calls("chat.postMessage")[0]
    assert {(r.channel, r.ts) for r in rows(db)} == {(first.response["channel"], first.response["ts"])}
    assert all(r.status == "sent" for r in rows(db))
