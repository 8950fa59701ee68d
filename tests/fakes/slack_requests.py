"""Signed Slack requests for tests: what Slack POSTs to the app's Request URL, built from Slack's documented
payload shapes, signed the way Slack signs them.

Two ways to use them:

- in-process, against a real ``slack_bolt.App``::

      body = slash_command("cost last week")
      app.dispatch(bolt_request(body, SECRET))  # = BoltRequest(body=body, headers=signed_headers(...))

- over HTTP, against a running Bolt server (``SignedClient`` builds, signs and POSTs)::

      client = SignedClient("http://127.0.0.1:3000/slack/events", SECRET)
      assert client.command("cost last week").status == 200
      assert client.action("approve", "req-123", forge="bad_signature").status == 401

Shapes (https://docs.slack.dev/): slash commands and interactivity payloads are form-encoded
(interactivity as ``payload=<json>``); Events API deliveries are a JSON ``event_callback`` envelope;
signatures are ``v0=`` + HMAC-SHA256 of ``v0:{timestamp}:{raw body}`` with the app's signing secret, and
Slack (and Bolt) refuse a timestamp more than five minutes from now.

Ids default to the workspace the fake Web API server (``tests.fakes.slack_server``) answers for, so a Bolt
app pointed at ``FakeSlack`` sees consistent team, app and bot ids.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple
from urllib.parse import urlencode

from slack_bolt import BoltRequest

from tests.fakes.slack_server import APP_ID, BOT_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID, dm_channel_for

Body = dict[str, Any]
#: ways to spoil a request: a signature made with the wrong secret, or a timestamp six minutes old
Forge = Literal["bad_signature", "stale_timestamp"]

#: the (deprecated) verification token Slack puts in payloads; Bolt ignores it when signatures are checked
VERIFICATION_TOKEN = "fakeverificationtoken0001"
USER_ID = "U0ALICE"
USER_NAME = "alice"
CHANNEL_ID = "C0FINOPS"
CHANNEL_NAME = "finops"
#: Slack refuses a request timestamp further than this from now (seconds)
MAX_CLOCK_SKEW = 60 * 5

JSON_CONTENT_TYPE = "application/json"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"

_ids = itertools.count(1)


def _n() -> int:
    return next(_ids)


def _default_response_url(team_id: str) -> str:
    return f"https://hooks.slack.com/commands/{team_id}/{_n():010d}/fake{uuid.uuid4().hex[:20]}"


def _trigger_id() -> str:
    return f"{_n()}.{int(time.time())}.{uuid.uuid4().hex}"


def _now_ts() -> str:
    return f"{time.time():.6f}"


# ---------------------------------------------------------------------------- signing


def sign(body: bytes | str, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's request-signing headers for ``body``: ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature``
    (``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}`` keyed with the signing secret)."""
    ts = int(time.time()) if timestamp is None else timestamp
    raw = body.decode("utf-8") if isinstance(body, bytes) else body
    digest = hmac.new(secret.encode(), f"v0:{ts}:{raw}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={digest}"}


def content_type_of(body: bytes | str) -> str:
    """The Content-Type Slack sends with ``body``: JSON for Events API envelopes, else form-encoded."""
    start = body[:1]
    return JSON_CONTENT_TYPE if start in ("{", b"{") else FORM_CONTENT_TYPE


def signed_headers(
    body: bytes | str,
    secret: str,
    *,
    timestamp: int | None = None,
    forge: Forge | None = None,
) -> dict[str, str]:
    """All the headers Slack sends: Content-Type plus the signature, optionally spoiled.

    ``forge="bad_signature"`` signs with a wrong secret; ``forge="stale_timestamp"`` signs correctly but
    with a timestamp six minutes old (Slack's limit is five).
    """
    ts = int(time.time()) if timestamp is None else timestamp
    if forge == "stale_timestamp":
        ts -= MAX_CLOCK_SKEW + 60
    key = secret + "-wrong" if forge == "bad_signature" else secret
    return {"Content-Type": content_type_of(body), **sign(body, key, ts)}


def bolt_request(
    body: str, secret: str, *, timestamp: int | None = None, forge: Forge | None = None
) -> BoltRequest:
    """``body`` as Bolt's HTTP adapters hand it to ``App.dispatch``: with Slack's signed headers."""
    headers: dict[str, str | Sequence[str]] = {
        **signed_headers(body, secret, timestamp=timestamp, forge=forge)
    }
    return BoltRequest(body=body, headers=headers)


# ---------------------------------------------------------------------------- slash commands


def slash_command(
    text: str = "",
    user_id: str = USER_ID,
    team_id: str = TEAM_ID,
    channel_id: str = CHANNEL_ID,
    command: str = "/finops",
    *,
    user_name: str = USER_NAME,
    channel_name: str = CHANNEL_NAME,
    team_domain: str = TEAM_DOMAIN,
    api_app_id: str = APP_ID,
    response_url: str | None = None,
    trigger_id: str | None = None,
    enterprise_id: str | None = None,
    enterprise_name: str | None = None,
) -> str:
    """The form-encoded body Slack POSTs when a user runs ``command text``."""
    fields: dict[str, str] = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url or _default_response_url(team_id),
        "trigger_id": trigger_id or _trigger_id(),
    }
    if enterprise_id is not None:
        fields["enterprise_id"] = enterprise_id
        fields["enterprise_name"] = enterprise_name or "Fake Enterprise"
    return urlencode(fields)


# ---------------------------------------------------------------------------- Events API


def event_callback(
    event: Body,
    team_id: str = TEAM_ID,
    *,
    api_app_id: str = APP_ID,
    bot_user_id: str = BOT_USER_ID,
    event_id: str | None = None,
    event_time: int | None = None,
) -> str:
    """The JSON envelope Slack POSTs for an Events API event (``type: event_callback``)."""
    envelope: Body = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": None,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev0FAKE{_n():06d}",
        "event_time": int(time.time()) if event_time is None else event_time,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-fake-{_n()}",
    }
    return json.dumps(envelope)


def _rich_text(text: str) -> list[Body]:
    return [
        {
            "type": "rich_text",
            "block_id": f"rt{_n()}",
            "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}],
        }
    ]


def app_mention_event(
    text: str,
    user: str = USER_ID,
    channel: str = CHANNEL_ID,
    team_id: str = TEAM_ID,
    ts: str | None = None,
    thread_ts: str | None = None,
    *,
    bot_user_id: str = BOT_USER_ID,
) -> str:
    """An ``app_mention`` event in a channel. ``text`` gets the ``<@bot>`` mention prefixed unless it
    already mentions the bot, as Slack's text always carries it."""
    mention = f"<@{bot_user_id}>"
    full_text = text if mention in text else f"{mention} {text}"
    ts = ts or _now_ts()
    event: Body = {
        "type": "app_mention",
        "client_msg_id": str(uuid.uuid4()),
        "text": full_text,
        "user": user,
        "ts": ts,
        "blocks": _rich_text(full_text),
        "team": team_id,
        "channel": channel,
        "event_ts": ts,
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return event_callback(event, team_id, bot_user_id=bot_user_id)


def message_im_event(
    text: str,
    user: str = USER_ID,
    channel: str | None = None,
    team_id: str = TEAM_ID,
    ts: str | None = None,
    thread_ts: str | None = None,
) -> str:
    """A ``message`` event (``channel_type: im``) for a user writing to the bot in its DM
    (``channel`` defaults to the DM id ``FakeSlack`` gives that user)."""
    ts = ts or _now_ts()
    event: Body = {
        "type": "message",
        "client_msg_id": str(uuid.uuid4()),
        "text": text,
        "user": user,
        "ts": ts,
        "blocks": _rich_text(text),
        "team": team_id,
        "channel": channel or dm_channel_for(user),
        "event_ts": ts,
        "channel_type": "im",
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return event_callback(event, team_id)


def app_home_opened(
    user: str = USER_ID,
    team_id: str = TEAM_ID,
    *,
    channel: str | None = None,
    view: Body | None = None,
) -> str:
    """An ``app_home_opened`` event (Home tab); ``view`` is present once a Home view was published."""
    event: Body = {
        "type": "app_home_opened",
        "user": user,
        "channel": channel or dm_channel_for(user),
        "tab": "home",
        "event_ts": _now_ts(),
    }
    if view is not None:
        event["view"] = view
    return event_callback(event, team_id)


def url_verification(challenge: str = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P") -> str:
    """The handshake Slack sends when the Request URL is saved; the app must echo ``challenge``."""
    return json.dumps({"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"})


# ---------------------------------------------------------------------------- interactivity


def button(action_id: str, value: str, text: str | None = None, style: str | None = None) -> Body:
    """A Block Kit button element."""
    element: Body = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text or action_id.title(), "emoji": True},
        "value": value,
    }
    if style is not None:
        element["style"] = style
    return element


def block_actions(
    action_id: str,
    value: str = "",
    user_id: str = USER_ID,
    team_id: str = TEAM_ID,
    channel_id: str = CHANNEL_ID,
    message_ts: str = "1700000000.000100",
    block_id: str = "approval_actions",
    *,
    user_name: str = USER_NAME,
    channel_name: str = CHANNEL_NAME,
    team_domain: str = TEAM_DOMAIN,
    api_app_id: str = APP_ID,
    message_text: str = "Approval requested",
    message_blocks: list[Body] | None = None,
    response_url: str | None = None,
    trigger_id: str | None = None,
) -> str:
    """The form body (``payload=<json>``) Slack POSTs when a user clicks a button in a bot message.

    ``message_blocks`` defaults to one ``actions`` block holding the clicked button.
    """
    blocks = (
        message_blocks
        if message_blocks is not None
        else [{"type": "actions", "block_id": block_id, "elements": [button(action_id, value)]}]
    )
    payload: Body = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": trigger_id or _trigger_id(),
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "message": {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": api_app_id,
            "team": team_id,
            "text": message_text,
            "ts": message_ts,
            "blocks": blocks,
        },
        "state": {"values": {}},
        "response_url": response_url or _default_response_url(team_id).replace("/commands/", "/actions/"),
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": action_id.title(), "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": _now_ts(),
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


def view_submission(
    callback_id: str,
    values: dict[str, dict[str, Body]],
    user_id: str = USER_ID,
    team_id: str = TEAM_ID,
    *,
    private_metadata: str = "",
    user_name: str = USER_NAME,
    team_domain: str = TEAM_DOMAIN,
    api_app_id: str = APP_ID,
) -> str:
    """The form body Slack POSTs when a user submits a modal: ``values`` is the view's
    ``state.values`` (block id -> action id -> ``{"type", "value" | "selected_option" | "selected_user"}``)."""
    payload: Body = {
        "type": "view_submission",
        "team": {"id": team_id, "domain": team_domain},
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "trigger_id": _trigger_id(),
        "view": {
            "id": f"V{_n():09d}",
            "team_id": team_id,
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "state": {"values": values},
            "hash": f"{time.time():.6f}.fakehash",
            "app_id": api_app_id,
            "bot_id": BOT_ID,
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return urlencode({"payload": json.dumps(payload)})


# ---------------------------------------------------------------------------- HTTP


class Response(NamedTuple):
    """What an HTTP endpoint answered: ``status, headers, body = post(...)``."""

    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


def post(url: str, body: bytes | str, headers: dict[str, str], timeout: float = 10.0) -> Response:
    """POST ``body`` with ``headers`` using urllib; HTTP error statuses are returned, not raised."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return Response(resp.status, dict(resp.headers.items()), resp.read().decode("utf-8"))
    except urllib.error.HTTPError as err:
        with err:
            return Response(err.code, dict(err.headers.items()), err.read().decode("utf-8"))


class SignedClient:
    """Plays Slack against an app's Request URL: builds a payload, signs it with ``secret`` and POSTs it."""

    def __init__(self, base_url: str, secret: str) -> None:
        #: the full Request URL, e.g. ``http://127.0.0.1:3000/slack/events``
        self.base_url = base_url
        self.secret = secret

    def send(
        self, body: bytes | str, *, forge: Forge | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        """Sign and POST a ready-made body (extra ``headers``, e.g. ``X-Slack-Retry-Num``, are added)."""
        return post(
            self.base_url, body, {**signed_headers(body, self.secret, forge=forge), **(headers or {})}
        )

    def command(self, text: str = "", *, forge: Forge | None = None, **fields: Any) -> Response:
        """A slash command (fields as :func:`slash_command`)."""
        return self.send(slash_command(text, **fields), forge=forge)

    def event(self, event: Body | str, *, forge: Forge | None = None, **fields: Any) -> Response:
        """An Events API delivery: a built envelope (:func:`app_mention_event`, ...) or an event dict to wrap
        with :func:`event_callback`."""
        body = event if isinstance(event, str) else event_callback(event, **fields)
        return self.send(body, forge=forge)

    def action(
        self, action_id: str, value: str = "", *, forge: Forge | None = None, **fields: Any
    ) -> Response:
        """A button click (fields as :func:`block_actions`)."""
        return self.send(block_actions(action_id, value, **fields), forge=forge)
