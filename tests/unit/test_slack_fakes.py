"""The Slack fakes behave like Slack for the real clients: ``slack_sdk.WebClient`` against ``FakeSlack``,
and signed requests from ``slack_requests`` accepted (or refused) by a real ``slack_bolt.App``."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from slack_bolt import Ack, App, Respond, Say
from slack_bolt.app.app import SlackAppDevelopmentServer
from slack_bolt.error import BoltError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import builtin_handlers
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from tests.fakes import slack_requests as sr
from tests.fakes.slack_server import (
    BOT_ID,
    BOT_TOKEN,
    BOT_USER_ID,
    RESPONSE_URL_METHOD,
    TEAM_ID,
    UPLOAD_METHOD,
    FakeSlack,
    dm_channel_for,
    fake_slack,  # noqa: F401
)

SECRET = "fake-signing-secret-0123456789abcdef"
TS_PATTERN = re.compile(r"^\d{10}\.\d{6}$")


@pytest.fixture
def client(fake_slack: FakeSlack) -> WebClient:  # noqa: F811
    return WebClient(token=BOT_TOKEN, base_url=fake_slack.base_url)


def _app(fake: FakeSlack, **kwargs: Any) -> App:
    # the App takes its token from the client (also passing token= only logs a warning)
    return App(
        signing_secret=SECRET,
        client=WebClient(token=BOT_TOKEN, base_url=fake.base_url),
        **kwargs,
    )


@pytest.fixture
def app(fake_slack: FakeSlack) -> App:  # noqa: F811
    return _app(fake_slack)


def _dispatch(app: App, body: str, forge: sr.Forge | None = None) -> Any:
    return app.dispatch(sr.bolt_request(body, SECRET, forge=forge))


# ---------------------------------------------------------------------------- WebClient against FakeSlack


def test_fake_slack_post_message_answers_channel_ts_and_keeps_the_message(
    fake_slack: FakeSlack,  # noqa: F811
    client: WebClient,
) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Spend* up 12%"}}]
    resp = client.chat_postMessage(channel="C0FINOPS", text="Spend up 12%", blocks=blocks)

    assert resp["ok"] is True
    assert resp["channel"] == "C0FINOPS"
    assert TS_PATTERN.match(resp["ts"])
    assert resp["message"]["text"] == "Spend up 12%"
    assert resp["message"]["bot_id"] == BOT_ID
    assert fake_slack.messages[("C0FINOPS", resp["ts"])]["blocks"] == blocks
    call = fake_slack.last("chat.postMessage")
    assert call.is_json  # slack_sdk sends chat.postMessage as JSON
    assert call.token == BOT_TOKEN
    assert call.params["blocks"] == blocks


def test_fake_slack_ts_values_are_unique_and_increasing(client: WebClient) -> None:
    stamps = [client.chat_postMessage(channel="C0FINOPS", text=str(i))["ts"] for i in range(3)]
    assert stamps == sorted(stamps, key=float)
    assert len(set(stamps)) == 3


def test_fake_slack_post_to_user_id_lands_in_the_dm_conversations_open_returns(
    fake_slack: FakeSlack,  # noqa: F811
    client: WebClient,
) -> None:
    posted = client.chat_postMessage(channel="U0ALICE", text="hello")
    opened = client.conversations_open(users="U0ALICE")

    assert posted["channel"] == opened["channel"]["id"] == dm_channel_for("U0ALICE")
    assert posted["channel"].startswith("D")
    assert not fake_slack.last("conversations.open").is_json  # form-encoded
    assert fake_slack.last("conversations.open").params["users"] == "U0ALICE"


def test_fake_slack_chat_update_replaces_the_stored_message(
    fake_slack: FakeSlack,  # noqa: F811
    client: WebClient,
) -> None:
    posted = client.chat_postMessage(channel="U0ALICE", text="Approve stopping i-123?")
    channel, ts = posted["channel"], posted["ts"]

    updated = client.chat_update(channel=channel, ts=ts, text="Approved by alice", blocks=[])

    assert (updated["channel"], updated["ts"], updated["text"]) == (channel, ts, "Approved by alice")
    assert fake_slack.messages[(channel, ts)]["text"] == "Approved by alice"
    assert len(fake_slack.messages) == 1
    with pytest.raises(SlackApiError) as err:
        client.chat_update(channel=channel, ts="1.000000", text="x")
    assert err.value.response["error"] == "message_not_found"


def test_fake_slack_chat_post_ephemeral_records_the_post(
    fake_slack: FakeSlack,  # noqa: F811
    client: WebClient,
) -> None:
    resp = client.chat_postEphemeral(channel="C0FINOPS", user="U0ALICE", text="only you")
    assert TS_PATTERN.match(resp["message_ts"])
    assert fake_slack.ephemerals[0]["to_user"] == "U0ALICE"
    assert fake_slack.messages == {}


def test_fake_slack_users_lookup_by_email_resolves_known_users_only(
    fake_slack: FakeSlack,  # noqa: F811
    client: WebClient,
) -> None:
    fake_slack.users_by_email = {"alice@example.com": "U0ALICE"}

    assert client.users_lookupByEmail(email="alice@example.com")["user"]["id"] == "U0ALICE"
    assert client.users_info(user="U0ALICE")["user"]["profile"]["email"] == "alice@example.com"
    with pytest.raises(SlackApiError) as err:
        client.users_lookupByEmail(email="mallory@example.com")
    assert err.value.response["error"] == "users_not_found"
    with pytest.raises(SlackApiError) as err:
        client.users_info(user="U0NOBODY")
    assert err.value.response["error"] == "user_not_found"


def test_fake_slack_views_publish_stores_the_home_view(
    fake_slack: FakeSlack,  # noqa: F811
    client: WebClient,
) -> None:
    view = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Hi"}}]}
    resp = client.views_publish(user_id="U0ALICE", view=view)

    assert resp["view"]["type"] == "home"
    assert fake_slack.home_views["U0ALICE"]["blocks"] == view["blocks"]
    assert fake_slack.last("views.publish").is_json


def test_fake_slack_files_upload_v2_runs_the_three_steps(
    fake_slack: FakeSlack,  # noqa: F811
    client: WebClient,
) -> None:
    resp = client.files_upload_v2(
        channel="C0FINOPS", content="day,cost\n2024-01-01,12.5\n", filename="costs.csv", title="Costs"
    )

    assert resp["file"]["title"] == "Costs"
    methods = [c.method for c in fake_slack.calls()]
    assert methods == ["files.getUploadURLExternal", UPLOAD_METHOD, "files.completeUploadExternal"]
    stored = fake_slack.files[resp["file"]["id"]]
    assert stored["content"] == b"day,cost\n2024-01-01,12.5\n"
    assert stored["length"] == len(stored["content"])
    assert stored["shares"][0]["channel"] == "C0FINOPS"
    assert fake_slack.last(UPLOAD_METHOD).token is None  # the upload URL is pre-signed
    assert json.loads(fake_slack.last("files.completeUploadExternal").params["files"])[0]["title"] == "Costs"


def test_fake_slack_unknown_or_missing_token_is_refused(fake_slack: FakeSlack) -> None:  # noqa: F811
    with pytest.raises(SlackApiError) as err:
        WebClient(token="xoxb-not-a-known-token", base_url=fake_slack.base_url).chat_postMessage(
            channel="C0FINOPS", text="x"
        )
    assert err.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as err:
        WebClient(base_url=fake_slack.base_url).auth_test()
    assert err.value.response["error"] == "not_authed"
    assert fake_slack.messages == {}


def test_fake_slack_fail_next_returns_ok_false_once(
    fake_slack: FakeSlack,  # noqa: F811
    client: WebClient,
) -> None:
    fake_slack.fail_next("chat.postMessage", error="channel_not_found")

    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C0GONE", text="x")
    assert err.value.response.status_code == 200
    assert err.value.response["error"] == "channel_not_found"
    assert client.chat_postMessage(channel="C0FINOPS", text="x")["ok"] is True


def test_fake_slack_known_channels_refuses_others(
    fake_slack: FakeSlack,  # noqa: F811
    client: WebClient,
) -> None:
    fake_slack.known_channels = {"C0FINOPS"}
    client.chat_postMessage(channel="C0FINOPS", text="x")
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C0OTHER", text="x")
    assert err.value.response["error"] == "channel_not_found"


def test_fake_slack_ratelimited_answers_429_with_retry_after(
    fake_slack: FakeSlack,  # noqa: F811
    client: WebClient,
) -> None:
    fake_slack.fail_next("chat.postMessage", retry_after=7)

    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C0FINOPS", text="x")
    assert err.value.response.status_code == 429
    assert err.value.response["error"] == "ratelimited"
    assert err.value.response.headers["Retry-After"] == "7"


def test_fake_slack_ratelimited_is_retried_by_the_sdk_retry_handler(
    fake_slack: FakeSlack,  # noqa: F811
    client: WebClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    # the handler sleeps Retry-After + random(); record instead of waiting
    monkeypatch.setattr(builtin_handlers, "time", SimpleNamespace(sleep=slept.append))
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    fake_slack.fail_next("chat.postMessage", error="ratelimited", status=429, retry_after=1)

    resp = client.chat_postMessage(channel="C0FINOPS", text="after the limit")

    assert resp["ok"] is True
    assert [c.status for c in fake_slack.calls("chat.postMessage")] == [429, 200]
    assert len(slept) == 1 and 1 <= slept[0] < 2
    assert len(fake_slack.messages) == 1


def test_fake_slack_wait_for_names_what_was_seen(
    fake_slack: FakeSlack,  # noqa: F811
    client: WebClient,
) -> None:
    client.auth_test()
    assert len(fake_slack.wait_for("auth.test")) == 1
    with pytest.raises(AssertionError, match=r"chat\.postMessage.*got 0.*auth\.test"):
        fake_slack.wait_for("chat.postMessage", timeout=0.05)


def test_fake_slack_wait_for_sees_calls_from_other_threads(
    fake_slack: FakeSlack,  # noqa: F811
    client: WebClient,
) -> None:
    worker = threading.Thread(
        target=lambda: [client.chat_postMessage(channel="C0FINOPS", text=str(i)) for i in range(2)]
    )
    worker.start()
    assert len(fake_slack.wait_for("chat.postMessage", count=2)) == 2
    worker.join()


def test_fake_slack_reset_forgets_calls_and_state(
    fake_slack: FakeSlack,  # noqa: F811
    client: WebClient,
) -> None:
    client.chat_postMessage(channel="C0FINOPS", text="x")
    fake_slack.fail_next("auth.test", error="account_inactive")
    fake_slack.reset()
    assert fake_slack.calls() == [] and fake_slack.messages == {}
    assert client.auth_test()["ok"] is True


def test_fake_slack_records_response_url_posts(fake_slack: FakeSlack) -> None:  # noqa: F811
    resp = WebhookClient(fake_slack.response_url()).send(text="done", replace_original=True)
    assert resp.status_code == 200
    assert fake_slack.last(RESPONSE_URL_METHOD).params["text"] == "done"


# ---------------------------------------------------------------------------- signing


def test_slack_requests_sign_is_accepted_by_the_sdk_verifier() -> None:
    body = sr.slash_command("cost last week")
    verifier = SignatureVerifier(SECRET)

    headers = sr.sign(body, SECRET)
    assert verifier.is_valid(body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])
    assert verifier.is_valid_request(body.encode(), sr.signed_headers(body.encode(), SECRET))
    for forge in ("bad_signature", "stale_timestamp"):
        assert not verifier.is_valid_request(body, sr.signed_headers(body, SECRET, forge=forge))


def test_slack_requests_payload_shapes_follow_slack_docs() -> None:
    from urllib.parse import parse_qsl

    command = dict(parse_qsl(sr.slash_command("top services", command="/finops")))
    assert {"response_url", "trigger_id", "api_app_id", "user_name", "team_domain", "channel_name"} <= set(
        command
    )
    assert command["text"] == "top services"

    action = json.loads(dict(parse_qsl(sr.block_actions("approve", "req-1")))["payload"])
    assert action["type"] == "block_actions"
    assert action["container"] == {
        "type": "message",
        "message_ts": "1700000000.000100",
        "channel_id": "C0FINOPS",
        "is_ephemeral": False,
    }
    assert action["actions"][0]["action_id"] == "approve" and action["actions"][0]["type"] == "button"

    event = json.loads(sr.app_mention_event("why is spend up?", thread_ts="1700000000.000100"))
    assert event["type"] == "event_callback"
    assert event["event"]["text"] == f"<@{BOT_USER_ID}> why is spend up?"
    assert event["authorizations"][0]["user_id"] == BOT_USER_ID


# ---------------------------------------------------------------------------- a real Bolt App


def test_bolt_app_verifies_its_token_with_auth_test_on_the_fake(fake_slack: FakeSlack) -> None:  # noqa: F811
    _app(fake_slack)
    assert fake_slack.last("auth.test").token == BOT_TOKEN


def test_bolt_app_with_an_unknown_token_fails_at_construction(fake_slack: FakeSlack) -> None:  # noqa: F811
    with pytest.raises(BoltError, match="invalid_auth"):
        App(
            signing_secret=SECRET,
            client=WebClient(token="xoxb-revoked", base_url=fake_slack.base_url),
        )


def test_bolt_app_without_token_verification_calls_auth_test_on_first_request(
    fake_slack: FakeSlack,  # noqa: F811
) -> None:
    app = _app(fake_slack, token_verification_enabled=False)
    app.command("/finops")(lambda ack: ack())
    assert fake_slack.calls("auth.test") == []

    assert _dispatch(app, sr.slash_command("x")).status == 200
    assert len(fake_slack.calls("auth.test")) == 1


@pytest.mark.parametrize("forge", ["bad_signature", "stale_timestamp"])
def test_bolt_app_refuses_forged_requests(app: App, forge: sr.Forge) -> None:
    seen: list[str] = []

    @app.command("/finops")
    def handle(ack: Ack, command: dict[str, Any]) -> None:
        seen.append(command["text"])
        ack()

    response = _dispatch(app, sr.slash_command("cost"), forge=forge)

    assert response.status == 401
    assert seen == []


def test_bolt_app_slash_command_reaches_the_handler(fake_slack: FakeSlack, app: App) -> None:  # noqa: F811
    seen: list[dict[str, Any]] = []

    @app.command("/finops")
    def handle(ack: Ack, command: dict[str, Any], say: Say, respond: Respond) -> None:
        ack("working on it")
        seen.append(command)
        say(f"you asked: {command['text']}")
        respond("done")

    body = sr.slash_command("cost last week", response_url=fake_slack.response_url())
    response = _dispatch(app, body)

    assert response.status == 200
    assert response.body == "working on it"
    post = fake_slack.wait_for("chat.postMessage")[0]
    assert (post.params["channel"], post.params["text"]) == ("C0FINOPS", "you asked: cost last week")
    assert fake_slack.wait_for(RESPONSE_URL_METHOD)[0].params["text"] == "done"
    assert seen[0]["user_id"] == "U0ALICE" and seen[0]["team_id"] == TEAM_ID


def test_bolt_app_block_action_reaches_the_handler_and_updates_the_message(
    fake_slack: FakeSlack,  # noqa: F811
    app: App,
) -> None:
    posted = WebClient(token=BOT_TOKEN, base_url=fake_slack.base_url).chat_postMessage(
        channel="U0ALICE", text="Approve stopping i-123?"
    )

    @app.action("approve")
    def handle(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        ack()
        container = body["container"]
        client.chat_update(
            channel=container["channel_id"],
            ts=container["message_ts"],
            text=f"Approved {action['value']} by <@{body['user']['id']}>",
        )

    body = sr.block_actions("approve", "req-42", channel_id=posted["channel"], message_ts=posted["ts"])
    assert _dispatch(app, body).status == 200

    fake_slack.wait_for("chat.update")
    assert fake_slack.messages[(posted["channel"], posted["ts"])]["text"] == "Approved req-42 by <@U0ALICE>"


def test_bolt_app_events_reach_their_handlers(fake_slack: FakeSlack, app: App) -> None:  # noqa: F811
    got: dict[str, threading.Event] = {k: threading.Event() for k in ("mention", "dm")}
    app.event("app_mention")(lambda event: got["mention"].set() if "spend" in event["text"] else None)
    app.event("message")(lambda event: got["dm"].set() if event["channel_type"] == "im" else None)

    @app.event("app_home_opened")
    def home(event: dict[str, Any], client: WebClient) -> None:
        client.views_publish(user_id=event["user"], view={"type": "home", "blocks": []})

    for body in (sr.app_mention_event("why is spend up?"), sr.message_im_event("hi"), sr.app_home_opened()):
        assert _dispatch(app, body).status == 200

    assert got["mention"].wait(5) and got["dm"].wait(5)
    fake_slack.wait_for("views.publish")
    assert "U0ALICE" in fake_slack.home_views


def test_bolt_app_answers_url_verification(app: App) -> None:
    response = _dispatch(app, sr.url_verification("challenge-123"))
    assert response.status == 200
    assert "challenge-123" in response.body


@pytest.fixture
def bolt_url(app: App) -> Iterator[str]:
    """Bolt's own development HTTP server for ``app``, on a free port."""
    server = SlackAppDevelopmentServer(
        port=0, path="/slack/events", app=app, http_server_logger_enabled=False
    )
    http = server._server
    thread = threading.Thread(target=http.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_address[1]}/slack/events"
    finally:
        http.shutdown()
        http.server_close()
        thread.join(5)


def test_signed_client_posts_to_a_running_bolt_server(
    fake_slack: FakeSlack,  # noqa: F811
    app: App,
    bolt_url: str,
) -> None:
    clicked: list[str] = []
    app.command("/finops")(lambda ack: ack("ok"))

    @app.action("approve")
    def click(ack: Ack, action: dict[str, Any]) -> None:
        clicked.append(action["value"])
        ack()

    app.event("app_mention")(lambda say: say("hello"))
    slack = sr.SignedClient(bolt_url, SECRET)

    assert slack.command("cost").status == 200
    assert slack.action("approve", "req-7").status == 200
    assert slack.event(sr.app_mention_event("hi")).status == 200
    assert slack.command("cost", forge="bad_signature").status == 401
    assert slack.action("approve", "req-8", forge="stale_timestamp").status == 401

    fake_slack.wait_for("chat.postMessage")
    deadline = time.monotonic() + 5
    while not clicked and time.monotonic() < deadline:
        time.sleep(0.01)
    assert clicked == ["req-7"]
