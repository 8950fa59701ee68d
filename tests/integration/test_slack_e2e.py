"""End to end through Slack: a scan of the local AWS (moto over HTTP) → the owner's DM → an Approve click → the
idle instance stopped in moto → the message updated → a Roll back click → running again → the audit chain
verifies. Refusals for a non-approver and another workspace; two concurrent clicks execute once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from agent.demo_approvals import OUTSIDER, OWNER, instance_state
from approvals import audit
from config.model import FinOpsConfig
from tests.fakes.slack_server import TEAM_ID, FakeSlack, SlackCall
from tests.integration.slack_harness import Served, make_deps, running_app
from tools.store.db import Database
from tools.store.lake import Lake

pytest.importorskip("moto")


@dataclass
class World:
    app: Served
    fake: FakeSlack
    aws: Any
    notebook: str
    dm: SlackCall


@pytest.fixture
def world(sqlite_db: Database, lake: Lake, config: FinOpsConfig) -> Iterator[World]:
    from agent.slack.outreach import notify_owners
    from approvals.actions.aws_clients import AwsClients
    from tools.cloud.aws import AwsInventory
    from tools.costs import open_costs
    from tools.demo_aws import AWS_RULES, demo_aws
    from tools.scan import run_scan

    with demo_aws() as aws, FakeSlack() as fake:
        live = aws.scan_config(config).model_copy(update={"aws": aws.aws})
        run_scan(
            sqlite_db,
            open_costs(lake, live),
            live,
            aws.now,
            inventory=AwsInventory(aws.aws),
            rule_ids=AWS_RULES,
            anomalies=False,
            budgets=False,
        )
        deps = make_deps(fake, sqlite_db, lake, live, aws=AwsClients(aws.aws, poll_seconds=0.2))
        notebook = aws.resource("idle_gpu_notebook").id
        report = notify_owners(sqlite_db, live, deps.client, now=aws.now, svc=deps.service())
        assert report.items, report
        dms = [c for c in fake.calls("chat.postMessage") if notebook in json.dumps(c.params.get("blocks"))]
        assert len(dms) == 1, [c.params.get("channel") for c in fake.calls("chat.postMessage")]
        with running_app(deps) as app:
            yield World(app, fake, aws, notebook, dms[0])


def _approve_button(call: SlackCall) -> tuple[str, str]:
    for block in call.params.get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("action_id") == "finops_approve":
                return str(element["value"]), str(block.get("block_id") or "actions")
    raise AssertionError("no Approve button in the message")


def _current(fake: FakeSlack, channel: str, ts: str) -> str:
    return json.dumps(fake.messages[(channel, ts)])


def _click(w: World, action: str, value: str, user: str, *, team: str = TEAM_ID) -> int:
    channel, ts = w.dm.response["channel"], w.dm.response["ts"]
    return w.app.slack.action(
        action, value, user_id=user, team_id=team, channel_id=channel, message_ts=ts
    ).status


def _wait(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def _events(db: Database, request_id: str, event: str) -> list[Any]:
    with db.session() as s:
        return audit.list_entries(s, request_id=request_id, event=event)


@pytest.mark.slow
def test_owner_approves_in_slack_instance_stops_message_updates_rollback_restores(world: World) -> None:
    w = world
    request_id, _ = _approve_button(w.dm)
    assert w.dm.params["channel"] == OWNER  # a DM to the owner from config
    assert instance_state(w.aws, w.notebook) == "running"
    assert _click(w, "finops_approve", request_id, OWNER) == 200
    channel, ts = w.dm.response["channel"], w.dm.response["ts"]
    _wait(lambda: "finops_rollback" in _current(w.fake, channel, ts))
    assert instance_state(w.aws, w.notebook) == "stopped"
    text = _current(w.fake, channel, ts)
    assert "finops_approve" not in text and OWNER in text
    assert _click(w, "finops_rollback", request_id, OWNER) == 200
    _wait(lambda: w.app.deps.service().show(request_id)["status"] == "rolled_back")
    assert instance_state(w.aws, w.notebook) == "running"
    _wait(lambda: "finops_rollback" not in _current(w.fake, channel, ts))
    with w.app.deps.db.session() as s:
        assert audit.verify(s).ok
    assert len(_events(w.app.deps.db, request_id, "execution.started")) == 1


@pytest.mark.slow
def test_a_non_approver_click_executes_nothing_and_the_refusal_is_audited(world: World) -> None:
    w = world
    request_id, _ = _approve_button(w.dm)
    assert _click(w, "finops_approve", request_id, OUTSIDER) == 200
    (ephemeral,) = w.fake.wait_for("chat.postEphemeral", timeout=20)
    assert ephemeral.params["user"] == OUTSIDER and "may not" in json.dumps(ephemeral.params).lower()
    assert w.app.deps.service().show(request_id)["status"] == "pending"
    assert instance_state(w.aws, w.notebook) == "running"
    refused = _events(w.app.deps.db, request_id, "request.refused")
    assert refused and refused[-1].actor == OUTSIDER and refused[-1].channel == "slack"


@pytest.mark.slow
def test_a_click_from_another_workspace_executes_nothing(world: World) -> None:
    w = world
    request_id, _ = _approve_button(w.dm)
    assert _click(w, "finops_approve", request_id, OWNER, team="T0OTHERWS") == 200
    w.fake.wait_for("chat.postEphemeral", timeout=20)
    assert w.app.deps.service().show(request_id)["status"] == "pending"
    assert instance_state(w.aws, w.notebook) == "running"
    assert any(
        "workspace" in json.loads(e.details)["reason"]
        for e in _events(w.app.deps.db, request_id, "request.refused")
    )


@pytest.mark.slow
def test_two_concurrent_approve_clicks_execute_once(world: World) -> None:
    w = world
    request_id, _ = _approve_button(w.dm)
    codes: list[int] = []
    threads = [
        threading.Thread(target=lambda: codes.append(_click(w, "finops_approve", request_id, OWNER)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200, 200]
    _wait(lambda: w.app.deps.service().show(request_id)["status"] == "succeeded")
    time.sleep(1.0)  # let the losing click finish
    assert len(_events(w.app.deps.db, request_id, "execution.started")) == 1
    assert instance_state(w.aws, w.notebook) == "stopped"
    # the second click (same person, same request) is refused, never a second execution
    assert _events(w.app.deps.db, request_id, "request.refused")


def _button_value(message: SlackCall | dict[str, Any], action_id: str) -> str:
    """The value of the ``action_id`` button in a sent message (a recorded call) or a message's content."""
    blocks = message.params.get("blocks") if isinstance(message, SlackCall) else message.get("blocks")
    for block in blocks or []:
        for element in block.get("elements") or []:
            if element.get("action_id") == action_id:
                return str(element["value"])
    raise AssertionError(f"no {action_id} button in the message")


@pytest.mark.slow
def test_snooze_by_the_owner_snoozes_the_finding_and_an_outsider_is_refused(world: World) -> None:
    from tools.findings_store import get_finding

    w = world
    finding_id = _button_value(w.dm, "finops_snooze")
    assert _click(w, "finops_snooze", finding_id, OUTSIDER) == 200
    w.fake.wait_for("chat.postEphemeral", timeout=20)
    assert get_finding(w.app.deps.db, finding_id).status == "notified"
    assert _click(w, "finops_snooze", finding_id, OWNER) == 200
    _wait(lambda: get_finding(w.app.deps.db, finding_id).status == "snoozed")
    channel, ts = w.dm.response["channel"], w.dm.response["ts"]
    _wait(lambda: "finops_snooze" not in _current(w.fake, channel, ts))
    with w.app.deps.db.session() as s:
        feedback = audit.list_entries(s, event="finding.feedback")
        refused = audit.list_entries(s, event="request.refused", actor=OUTSIDER)
    assert [e.actor for e in feedback] == [OWNER] and refused


@pytest.mark.slow
def test_drift_before_execution_shows_a_fresh_request_in_the_same_message_and_its_approval_executes(
    world: World,
) -> None:
    import boto3

    w = world
    old_request, _ = _approve_button(w.dm)
    ec2 = boto3.client("ec2", endpoint_url=w.aws.url, region_name=w.aws.aws.regions[0])
    ec2.create_tags(Resources=[w.notebook], Tags=[{"Key": "note", "Value": "changed after the proposal"}])
    assert _click(w, "finops_approve", old_request, OWNER) == 200
    svc = w.app.deps.service()
    _wait(lambda: svc.show(old_request)["status"] == "superseded")
    channel, ts = w.dm.response["channel"], w.dm.response["ts"]
    _wait(lambda: old_request not in _current(w.fake, channel, ts))
    assert instance_state(w.aws, w.notebook) == "running"  # nothing executed on a drifted plan
    fresh = json.loads(_current(w.fake, channel, ts))
    fresh_request = _button_value(fresh, "finops_approve")
    assert fresh_request != old_request and svc.show(fresh_request)["status"] == "pending"
    assert _click(w, "finops_approve", fresh_request, OWNER) == 200
    _wait(lambda: svc.show(fresh_request)["status"] == "succeeded")
    assert instance_state(w.aws, w.notebook) == "stopped"


@pytest.mark.slow
def test_reject_asks_for_a_reason_in_a_modal_and_records_it(world: World) -> None:
    from agent.slack.blocks import REJECT_MODAL_CALLBACK_ID, REJECT_REASON_BLOCK, REJECT_REASON_INPUT
    from tests.fakes.slack_requests import view_submission

    w = world
    request_id, _ = _approve_button(w.dm)
    assert _click(w, "finops_reject", request_id, OWNER) == 200
    _wait(lambda: len(w.fake.modals) == 1)
    (modal,) = w.fake.modals
    assert modal["callback_id"] == REJECT_MODAL_CALLBACK_ID
    assert w.app.deps.service().show(request_id)["status"] == "pending"  # nothing decided by the click

    def submit(reason: str) -> Any:
        values = {REJECT_REASON_BLOCK: {REJECT_REASON_INPUT: {"type": "plain_text_input", "value": reason}}}
        return w.app.slack.send(
            view_submission(
                REJECT_MODAL_CALLBACK_ID, values, OWNER, private_metadata=modal["private_metadata"]
            )
        )

    too_short = submit("no")
    assert too_short.status == 200 and too_short.json()["response_action"] == "errors"
    assert submit("the notebook is used for a demo on Friday").status == 200
    svc = w.app.deps.service()
    _wait(lambda: svc.show(request_id)["status"] == "rejected")
    decision = svc.show(request_id)["decisions"][-1]
    assert decision["actor"] == OWNER and decision["comment"] == "the notebook is used for a demo on Friday"
    channel, ts = w.dm.response["channel"], w.dm.response["ts"]
    _wait(lambda: "finops_approve" not in _current(w.fake, channel, ts))
    assert "demo on Friday" in _current(w.fake, channel, ts)
    assert instance_state(w.aws, w.notebook) == "running"


@pytest.mark.slow
def test_not_waste_cancels_the_pending_fix_so_a_later_approve_executes_nothing(world: World) -> None:
    from tools.findings_store import get_finding

    w = world
    request_id, _ = _approve_button(w.dm)
    finding_id = _button_value(w.dm, "finops_not_waste")
    assert _click(w, "finops_not_waste", finding_id, OWNER) == 200
    svc = w.app.deps.service()
    _wait(lambda: get_finding(w.app.deps.db, finding_id).status == "suppressed")
    _wait(lambda: svc.show(request_id)["status"] == "cancelled")
    channel, ts = w.dm.response["channel"], w.dm.response["ts"]
    _wait(lambda: "finops_approve" not in _current(w.fake, channel, ts))
    assert _click(w, "finops_approve", request_id, OWNER) == 200  # an old copy of the message
    w.fake.wait_for("chat.postEphemeral", timeout=20)
    assert svc.show(request_id)["status"] == "cancelled"
    assert instance_state(w.aws, w.notebook) == "running"


@pytest.mark.slow
def test_a_request_expired_by_the_job_has_its_slack_message_updated(world: World) -> None:
    """Decisions made outside Slack (here: expiry by the scheduled job) update the message too, so no message
    keeps Approve / Reject for a request that can no longer be approved."""
    from datetime import UTC, datetime, timedelta

    from agent.jobs import expire_approvals
    from agent.jobs_base import JobContext

    w = world
    request_id, _ = _approve_button(w.dm)
    later = datetime.now(UTC) + timedelta(days=30)
    d = w.app.deps
    ctx = JobContext(
        d.db, d.lake, d.config, d.settings, later, "x", d.client, aws=d.aws, approvals_clock=lambda: later
    )
    summary = expire_approvals(ctx)
    assert request_id in summary["expired"] and summary["messages_updated"] == len(summary["expired"])
    channel, ts = w.dm.response["channel"], w.dm.response["ts"]
    text = _current(w.fake, channel, ts)
    assert "finops_approve" not in text and "xpired" in text


@pytest.mark.slow
def test_a_rejection_from_the_cli_updates_the_slack_message(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from typer.testing import CliRunner

    from agent.cli import app
    from tests.fakes.slack_server import BOT_TOKEN

    w = world
    request_id, _ = _approve_button(w.dm)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("FINOPS_SLACK_API_URL", w.fake.base_url)
    monkeypatch.setenv("FINOPS_LAKE_DIR", str(w.app.deps.lake.root))
    url = str(w.app.deps.db.engine.url)
    result = CliRunner().invoke(
        app, ["--db", url, "approvals", "reject", request_id, "--as", OWNER, "--reason", "not this week"]
    )
    assert result.exit_code == 0, result.output
    channel, ts = w.dm.response["channel"], w.dm.response["ts"]
    text = _current(w.fake, channel, ts)
    assert "finops_approve" not in text and "not this week" in text
