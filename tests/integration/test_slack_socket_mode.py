"""The Slack app in Socket Mode, at the network edge: `finops serve`'s ``connect_socket_mode`` with the real Bolt
app and slack_sdk's builtin Socket Mode client, ``apps.connections.open`` answered by the fake Web API
(``FakeSlack``) and the envelopes delivered over a real WebSocket by ``FakeSocketMode``.

Each envelope carries the payload the HTTP Request URL would get (built with ``tests.fakes.slack_requests``);
the app acks it over the WebSocket (a slash command's ack carries the immediate reply) and its lazy listener
answers through the Web API or the response_url, as in HTTP mode."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, parse_qsl

import pytest
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.errors import SlackApiError

from agent.serve import connect_socket_mode, slack_mode
from agent.slack import texts
from agent.slack.app import SlackDeps, build_app
from agent.slack.blocks import APPROVE_ACTION
from config.settings import Settings
from tests.demo_org import DemoOrg
from tests.fakes.slack_requests import app_mention_event, block_actions, slash_command
from tests.fakes.slack_server import (
    APP_TOKEN,
    APPS_CONNECTIONS_OPEN,
    BOT_TOKEN,
    RESPONSE_URL_METHOD,
    TEAM_ID,
    FakeSlack,
)
from tests.fakes.socket_mode_server import FakeSocketMode, SocketConnection
from tests.integration.slack_harness import make_deps

OWNER = "U01SEARCH1"  # owner of team search in config/finops.example.yaml


@dataclass
class Connected:
    fake: FakeSlack
    sm: FakeSocketMode
    handler: SocketModeHandler
    connection: SocketConnection
    deps: SlackDeps


@contextmanager
def _connect(demo_org: DemoOrg) -> Iterator[Connected]:
    """The finops Slack app connected in Socket Mode, as `finops serve` connects it."""
    with FakeSlack() as fake, FakeSocketMode() as sm:
        fake.socket_mode_url = sm.url
        deps = make_deps(fake, demo_org.db, demo_org.lake, demo_org.config)
        handler = connect_socket_mode(build_app(deps, signing_secret="unused-in-socket-mode"), APP_TOKEN)
        try:
            yield Connected(fake, sm, handler, sm.wait_for_connection(), deps)
        finally:
            handler.close()  # up to ~3 s: the client waits out its 3 s socket read timeout


@pytest.fixture(scope="module")
def shared(demo_org: DemoOrg) -> Iterator[Connected]:
    """One connection for the tests that leave it open (closing one costs seconds)."""
    with _connect(demo_org) as connected:
        yield connected


@pytest.fixture
def connected(shared: Connected) -> Connected:
    """The shared connection, with the fake's recorded calls and state forgotten."""
    shared.fake.reset()
    assert shared.handler.client.is_connected()
    return shared


@pytest.fixture
def fresh(demo_org: DemoOrg) -> Iterator[Connected]:
    """A connection of its own, for tests that close or replace it."""
    with _connect(demo_org) as connected:
        yield connected


def _form(body: str) -> dict[str, str]:
    """A form-encoded HTTP body (a slash command) as the dict a Socket Mode envelope carries."""
    return dict(parse_qsl(body, keep_blank_values=True))


def _interactive(body: str) -> dict[str, Any]:
    """An interactivity HTTP body (``payload=<json>``) as the dict a Socket Mode envelope carries."""
    payload: dict[str, Any] = json.loads(parse_qs(body)["payload"][0])
    return payload


def test_slack_mode_is_socket_with_an_app_token_even_without_a_signing_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_APP_TOKEN", APP_TOKEN)
    monkeypatch.delenv("SLACK_SIGNING_SECRET", raising=False)
    mode = slack_mode(Settings())
    assert (mode.mode, mode.app_token, mode.bot_token) == ("socket", APP_TOKEN, BOT_TOKEN)


@pytest.mark.slow
def test_a_slash_command_is_acked_with_working_on_it_then_answered_through_the_response_url(
    connected: Connected,
) -> None:
    fake, sm = connected.fake, connected.sm
    payload = _form(slash_command("help", user_id=OWNER, response_url=fake.response_url("sm1")))
    envelope_id = sm.send_envelope("slash_commands", payload)
    ack = sm.wait_for_ack(envelope_id)
    assert set(ack) == {"envelope_id", "payload"} and "Working on it" in json.dumps(ack["payload"])
    (call,) = fake.wait_for(RESPONSE_URL_METHOD, timeout=20)
    assert call.params["_path"].endswith("/sm1")
    assert call.params["response_type"] == "ephemeral" and call.params["replace_original"] is True
    assert texts.HELP_TITLE in json.dumps(call.params["blocks"])


@pytest.mark.slow
def test_an_app_mention_is_acked_then_answered_in_its_thread(connected: Connected) -> None:
    fake, sm = connected.fake, connected.sm
    envelope = json.loads(app_mention_event("help", OWNER, "C0FINOPS", TEAM_ID, ts="1726900000.000200"))
    envelope_id = sm.send_envelope("events_api", envelope)
    assert sm.wait_for_ack(envelope_id) == {"envelope_id": envelope_id}  # nothing to say in an event ack
    (placeholder,) = fake.wait_for("chat.postMessage", timeout=10)
    assert placeholder.params["thread_ts"] == "1726900000.000200"
    assert "Working on it" in placeholder.params["text"]
    (update,) = fake.wait_for("chat.update", timeout=20)
    assert update.params["ts"] == placeholder.response["ts"]
    assert texts.HELP_TITLE in json.dumps(update.params["blocks"])
    assert fake.messages[("C0FINOPS", placeholder.response["ts"])]["thread_ts"] == "1726900000.000200"


@pytest.mark.slow
def test_an_approve_click_from_another_workspace_executes_nothing(
    connected: Connected, demo_org: DemoOrg
) -> None:
    if demo_org.request_id is None:
        pytest.skip("the demo organisation proposed no request")
    fake, sm = connected.fake, connected.sm
    payload = _interactive(
        block_actions(APPROVE_ACTION, demo_org.request_id, user_id=OWNER, team_id="T0OTHER")
    )
    envelope_id = sm.send_envelope("interactive", payload)
    assert sm.wait_for_ack(envelope_id) == {"envelope_id": envelope_id}
    (call,) = fake.wait_for("chat.postEphemeral", timeout=10)
    assert call.params["user"] == OWNER and "another workspace" in json.dumps(call.params)
    assert connected.deps.service().show(demo_org.request_id)["status"] == "pending"
    assert fake.calls("chat.update") == []


@pytest.mark.slow
def test_connect_opens_one_websocket_with_the_app_token_and_close_disconnects_for_good(
    fresh: Connected,
) -> None:
    sm, fake = fresh.sm, fresh.fake
    (call,) = fake.calls(APPS_CONNECTIONS_OPEN)
    assert call.token == APP_TOKEN and call.response == {"ok": True, "url": sm.url}
    assert fresh.handler.client.is_connected()
    assert [c.id for c in sm.connections] == [fresh.connection.id]
    assert fresh.connection.ticket and fresh.connection.ticket in sm.url

    fresh.handler.close()  # type: ignore[no-untyped-call]
    closed = sm.wait_closed(fresh.connection)
    # slack_sdk's builtin client drops the TCP connection without a WebSocket Close frame: 1006
    assert closed.close_code == 1006
    assert not fresh.handler.client.is_connected()
    assert len(sm.connections) == 1 and len(fake.calls(APPS_CONNECTIONS_OPEN)) == 1


@pytest.mark.slow
def test_a_disconnect_message_makes_the_client_reconnect_on_a_fresh_url(fresh: Connected) -> None:
    sm, fake = fresh.sm, fresh.fake
    first = fresh.connection
    sm.send_disconnect("refresh_requested")
    second = sm.wait_for_connection(count=2, timeout=10)
    assert second is not first
    sm.wait_closed(first, timeout=10)
    assert len(fake.calls(APPS_CONNECTIONS_OPEN)) == 2
    envelope = json.loads(app_mention_event("help", OWNER, "C0FINOPS", TEAM_ID))
    envelope_id = sm.send_envelope("events_api", envelope, connection=second)
    assert sm.wait_for_ack(envelope_id)["envelope_id"] == envelope_id
    fake.wait_for("chat.update", timeout=20)


@pytest.mark.slow
def test_a_bot_token_in_place_of_the_app_token_fails_at_connect(
    demo_org: DemoOrg, monkeypatch: pytest.MonkeyPatch
) -> None:
    handlers: list[SocketModeHandler] = []
    original = SocketModeHandler.__init__

    def recording_init(self: SocketModeHandler, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        handlers.append(self)

    monkeypatch.setattr(SocketModeHandler, "__init__", recording_init)
    with FakeSlack() as fake, FakeSocketMode() as sm:
        fake.socket_mode_url = sm.url
        deps = make_deps(fake, demo_org.db, demo_org.lake, demo_org.config)
        app = build_app(deps, signing_secret="unused-in-socket-mode")
        try:
            with pytest.raises(SlackApiError) as raised:
                connect_socket_mode(app, BOT_TOKEN)
            assert raised.value.response["error"] == "not_allowed_token_type"
            assert sm.connections == []
        finally:
            for handler in handlers:  # its threads were started before the failing call
                handler.close()  # type: ignore[no-untyped-call]
