"""The Slack app over HTTP: the real Bolt app behind `finops serve`'s web app on 127.0.0.1, signed requests in
Slack's documented shapes, and the fake Slack Web API recording what the app sends."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from agent.answer import AskContext
from agent.planner import answer_offline
from tests.demo_org import DemoOrg
from tests.fakes.slack_requests import app_home_opened, app_mention_event, message_im_event
from tests.fakes.slack_server import RESPONSE_URL_METHOD, TEAM_ID, FakeSlack
from tests.integration.slack_harness import Served, make_deps, running_app

OWNER = "U01SEARCH1"  # owner of team search in config/finops.example.yaml


@pytest.fixture
def served(demo_org: DemoOrg) -> Iterator[tuple[Served, FakeSlack]]:
    with (
        FakeSlack() as fake,
        running_app(make_deps(fake, demo_org.db, demo_org.lake, demo_org.config)) as app,
    ):
        yield app, fake


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _offline(demo_org: DemoOrg, question: str) -> Any:
    con = demo_org.costs()
    try:
        return answer_offline(question, AskContext(demo_org.config, con, demo_org.db, demo_org.today))
    finally:
        con.close()


def _texts(value: Any) -> str:
    """Every text in a Block Kit payload, joined (to look for figures)."""
    if isinstance(value, dict):
        return " ".join(
            _texts(v)
            for k, v in value.items()
            if k in ("text", "blocks", "fields", "elements") or isinstance(v, dict | list)
        )
    if isinstance(value, list):
        return " ".join(_texts(v) for v in value)
    return str(value) if isinstance(value, str) else ""


@pytest.mark.slow
def test_health_endpoint_reports_the_database(served: tuple[Served, FakeSlack]) -> None:
    app, _ = served
    status, body = _get(app.url + "/health")
    assert status == 200 and body["status"] == "ok" and body["database"] == "ok" and body["slack"] == "http"


@pytest.mark.slow
@pytest.mark.parametrize("forge", ["bad_signature", "stale_timestamp"])
def test_a_bad_signature_or_an_old_timestamp_gets_401_and_changes_nothing(
    served: tuple[Served, FakeSlack], forge: str, demo_org: DemoOrg
) -> None:
    app, fake = served
    before = len(fake.calls())
    response = app.slack.command("findings", forge=forge)  # type: ignore[arg-type]
    assert response.status == 401
    response = app.slack.action("finops_approve", demo_org.request_id or "req-x", forge=forge)  # type: ignore[arg-type]
    assert response.status == 401
    time.sleep(0.3)
    assert len(fake.calls()) == before
    svc = app.deps.service()
    assert demo_org.request_id is None or svc.show(demo_org.request_id)["status"] == "pending"


@pytest.mark.slow
def test_slash_command_question_acks_at_once_then_answers_with_the_planner_figures(
    served: tuple[Served, FakeSlack], demo_org: DemoOrg
) -> None:
    app, fake = served
    question = "top 3 teams by AI spend last month"
    started = time.monotonic()
    response = app.slack.command(question, user_id=OWNER, response_url=fake.response_url("q1"))
    acked = time.monotonic() - started
    assert response.status == 200 and "Working on it" in response.body
    assert acked < 3.0
    (call,) = fake.wait_for(RESPONSE_URL_METHOD, timeout=20)
    text = _texts(call.params)
    expected = _offline(demo_org, question)
    top = expected.rows[0]
    assert top["team"] in text and f"{top['cost']:,.2f}" in text
    assert "finops costs" in text  # the command that re-runs it


@pytest.mark.slow
def test_slash_command_lists_findings_budgets_approvals_audit_and_help(
    served: tuple[Served, FakeSlack], demo_org: DemoOrg
) -> None:
    app, fake = served
    for i, sub in enumerate(("findings", "budgets", "approvals", "audit last 5", "help")):
        assert app.slack.command(sub, user_id=OWNER, response_url=fake.response_url(f"l{i}")).status == 200
    calls = fake.wait_for(RESPONSE_URL_METHOD, count=5, timeout=30)
    texts = " ".join(_texts(c.params) for c in calls)
    assert demo_org.request_id and demo_org.request_id in texts  # /finops approvals lists the pending request
    assert "org-monthly" in texts  # a budget
    from approvals import audit

    with demo_org.db.session() as s:  # /finops audit last 5: the five newest entries
        newest = audit.list_entries(s, limit=5, newest_first=True)
    assert newest and all(f"#{e.seq} " in texts and e.event in texts for e in newest)


@pytest.mark.slow
def test_app_mention_answers_in_the_thread_replacing_a_working_message(
    served: tuple[Served, FakeSlack], demo_org: DemoOrg
) -> None:
    app, fake = served
    envelope = app_mention_event(
        "how much did the search team spend last month?", OWNER, "C0FINOPS", TEAM_ID, ts="1726900000.000100"
    )
    assert app.slack.event(envelope).status == 200
    (placeholder,) = fake.wait_for("chat.postMessage", timeout=10)
    assert (
        placeholder.params["thread_ts"] == "1726900000.000100"
        and "Working on it" in placeholder.params["text"]
    )
    (update,) = fake.wait_for("chat.update", timeout=20)
    assert update.params["ts"] == placeholder.response["ts"]
    expected = _offline(demo_org, "how much did the search team spend last month?")
    assert f"{expected.total:,.2f}" in _texts(update.params)


@pytest.mark.slow
def test_a_direct_message_is_answered_and_the_bots_own_messages_are_ignored(
    served: tuple[Served, FakeSlack],
) -> None:
    app, fake = served
    assert app.slack.event(message_im_event("help", OWNER, team_id=TEAM_ID)).status == 200
    fake.wait_for("chat.update", timeout=20)
    bot = message_im_event("echo", OWNER, team_id=TEAM_ID)
    payload = json.loads(bot)
    payload["event"]["bot_id"] = "B0FAKE"
    before = len(fake.calls("chat.postMessage"))
    assert app.slack.event(json.dumps(payload)).status == 200
    time.sleep(0.5)
    assert len(fake.calls("chat.postMessage")) == before


@pytest.mark.slow
def test_app_home_shows_the_users_pending_approvals(
    served: tuple[Served, FakeSlack], demo_org: DemoOrg
) -> None:
    app, fake = served
    svc = app.deps.service()
    request = svc.show(demo_org.request_id or "")
    approver = request["approvers"][0]
    assert app.slack.event(app_home_opened(approver, TEAM_ID)).status == 200
    (call,) = fake.wait_for("views.publish", timeout=20)
    assert call.params["user_id"] == approver
    assert demo_org.request_id in json.dumps(call.params["view"])


@pytest.mark.slow
def test_a_command_from_another_workspace_is_refused(served: tuple[Served, FakeSlack]) -> None:
    app, fake = served
    response = app.slack.command("findings", team_id="T0OTHER", response_url=fake.response_url("x"))
    assert response.status == 200 and "own workspace" in response.body
    time.sleep(0.5)
    assert fake.calls(RESPONSE_URL_METHOD) == []


@pytest.mark.slow
def test_finops_intake_opens_a_modal_and_its_submission_registers_the_service(
    served: tuple[Served, FakeSlack], demo_org: DemoOrg
) -> None:
    from agent.slack.blocks import INTAKE_FIELDS, INTAKE_MODAL_CALLBACK_ID
    from tests.fakes.slack_requests import view_submission
    from tools.intake import list_services

    app, fake = served
    response = app.slack.command("intake", user_id=OWNER, response_url=fake.response_url("in"))
    assert response.status == 200 and "Working" not in response.body
    (call,) = fake.wait_for("views.open", timeout=20)
    view = call.params["view"] if isinstance(call.params["view"], dict) else json.loads(call.params["view"])
    assert view["callback_id"] == INTAKE_MODAL_CALLBACK_ID and call.params["trigger_id"]

    def values(**over: str) -> dict[str, dict[str, Any]]:
        fields = {
            "feature": "query-rewrite",
            "environment": "prod",
            "team": "search",
            "owner": OWNER,
            "use_case": "rewrites search queries",
            "models": "gpt-4o-mini",
            "est_monthly_spend": "150",
            **over,
        }
        out: dict[str, dict[str, Any]] = {}
        for block, action in INTAKE_FIELDS.items():
            if block in ("environment", "team"):
                out[block] = {action: {"type": "static_select", "selected_option": {"value": fields[block]}}}
            elif block == "owner":
                out[block] = {action: {"type": "users_select", "selected_user": fields[block]}}
            else:
                out[block] = {action: {"type": "plain_text_input", "value": fields[block]}}
        return out

    bad = app.slack.send(
        view_submission(INTAKE_MODAL_CALLBACK_ID, values(est_monthly_spend="lots", models=""), OWNER)
    )
    assert bad.status == 200
    errors = bad.json()["errors"]
    assert set(errors) == {"est_monthly_spend", "models"}
    ok = app.slack.send(view_submission(INTAKE_MODAL_CALLBACK_ID, values(), OWNER))
    assert ok.status == 200 and not ok.body
    (dm,) = fake.wait_for("chat.postMessage", timeout=20)
    assert dm.params["channel"] == OWNER and "query-rewrite" in dm.params["text"]
    (service,) = [s for s in list_services(demo_org.db) if s.feature == "query-rewrite"]
    assert service.team == "search" and service.registered_by == OWNER and service.channel == "slack"
