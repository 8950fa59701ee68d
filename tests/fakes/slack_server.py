"""A fake Slack Web API server for tests: the real ``slack_sdk.WebClient`` talks HTTP to it.

Modelled on slack-bolt's own ``tests/mock_web_api_server``: a threaded ``http.server`` on 127.0.0.1 (a free
port) answering the Web API methods the product calls, with the response shapes Slack documents::

    with FakeSlack() as fake:
        client = WebClient(token=BOT_TOKEN, base_url=fake.base_url)
        client.chat_postMessage(channel="C0FINOPS", text="hi")
        assert fake.last("chat.postMessage").params["text"] == "hi"

Or, in a test module: ``from tests.fakes.slack_server import fake_slack  # noqa: F401`` and ask for the
``fake_slack`` fixture.

What it mimics:

- ``POST /api/<method>`` (and ``GET`` with a query string). Bodies may be JSON (``slack_sdk`` sends JSON for
  chat.postMessage, chat.update, chat.postEphemeral, views.publish) or form-encoded (auth.test,
  conversations.open, users.*, files.*); both are parsed into ``SlackCall.params``.
- Authentication: ``Authorization: Bearer <token>`` must name a token in ``fake.tokens``; a form body may
  carry ``token=`` instead (Slack accepts that, but not a token inside a JSON body). Otherwise the answer is
  ``{"ok": false, "error": "invalid_auth"}`` (HTTP 200, as Slack does).
- ``apps.connections.open`` (Socket Mode) takes only an app-level token (``fake.app_tokens``, ``APP_TOKEN``);
  a bot token gets ``not_allowed_token_type``, as from Slack. It returns ``fake.socket_mode_url`` (set it to
  a ``FakeSocketMode``'s ``url``); while that is None it fails with ``socket_mode_disabled``.
- ``files_upload_v2``'s three steps: files.getUploadURLExternal hands out an upload URL on this server,
  the client POSTs the raw bytes there (no token: Slack's upload URLs are pre-signed), and
  files.completeUploadExternal shares the uploaded files.
- ``response_url`` / incoming-webhook posts: ``fake.response_url()`` gives a URL on this server; posts to it
  are recorded as method ``"response_url"``.
- Scripted failures with :meth:`FakeSlack.fail_next`: ``ratelimited`` answers HTTP 429 with ``Retry-After``
  (what ``RateLimitErrorRetryHandler`` reacts to); any other error answers ``ok: false`` with status 200.

Every request is recorded (:class:`SlackCall`) in a thread-safe list; ``calls``, ``last``, ``wait_for`` and
``reset`` read it. State that tests assert on: ``messages[(channel, ts)]`` (the current content of each
message, kept up to date by chat.postMessage and chat.update), ``ephemerals``, ``home_views[user_id]`` and
``files[file_id]``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

Body = dict[str, Any]

#: the bot token the fake accepts out of the box
BOT_TOKEN = "xoxb-1111-2222-fakebottoken"
#: the app-level token (Socket Mode) the fake accepts out of the box, for apps.connections.open only
APP_TOKEN = "xapp-1-A0FAKEAPP1-1-fakeapptoken"
TEAM_ID = "T0FAKE0001"
TEAM_DOMAIN = "fake-finops"
TEAM_NAME = "Fake FinOps Workspace"
APP_ID = "A0FAKEAPP1"
BOT_USER_ID = "U0FAKEBOT1"
BOT_ID = "B0FAKEBOT1"
BOT_NAME = "finops-bot"

#: method name recorded for posts to the URLs handed out by files.getUploadURLExternal
UPLOAD_METHOD = "files.upload_url"
#: method name recorded for posts to ``fake.response_url()`` URLs
RESPONSE_URL_METHOD = "response_url"
#: the Socket Mode method: the only one that takes an app-level token, and the only token it takes
APPS_CONNECTIONS_OPEN = "apps.connections.open"
#: the fake's error when ``socket_mode_url`` is not set (the app has Socket Mode turned off)
SOCKET_MODE_OFF_ERROR = "socket_mode_disabled"

#: parameters slack_sdk sends as JSON-encoded strings inside form bodies (decoded for ``messages`` state)
_JSON_PARAMS = ("blocks", "attachments", "metadata", "view", "files")


def dm_channel_for(user_id: str) -> str:
    """The DM channel id the fake gives the conversation between the bot and ``user_id``: ``"D" + user_id``."""
    return "D" + user_id


@dataclass(frozen=True)
class SlackCall:
    """One request the fake received."""

    method: str
    params: Body
    headers: dict[str, str]
    timestamp: float
    body: bytes = b""
    status: int = 200
    response: Body = field(default_factory=dict)

    @property
    def token(self) -> str | None:
        """The bearer token sent, if any."""
        return _bearer(self.headers)

    @property
    def is_json(self) -> bool:
        """Whether the body was sent as JSON (else form-encoded or empty)."""
        return self.headers.get("content-type", "").startswith("application/json")


@dataclass(frozen=True)
class _Failure:
    error: str
    status: int
    retry_after: int | None


class SlackApiFailure(Exception):
    """Raised inside a method handler to answer ``{"ok": false, "error": ...}``."""

    def __init__(self, error: str, status: int = 200) -> None:
        super().__init__(error)
        self.error = error
        self.status = status


def _decode_json_params(params: Body) -> Body:
    """Form bodies carry blocks/attachments/view as JSON strings; JSON bodies carry them as objects."""
    decoded = dict(params)
    for key in _JSON_PARAMS:
        value = decoded.get(key)
        if isinstance(value, str) and value[:1] in ("[", "{"):
            with contextlib.suppress(ValueError):
                decoded[key] = json.loads(value)
    return decoded


class FakeSlack:
    """A fake of the Slack Web API (https://slack.com/api/) for ``slack_sdk.WebClient(base_url=...)``."""

    def __init__(self, *, tokens: set[str] | None = None) -> None:
        #: tokens accepted in ``Authorization: Bearer ...``
        self.tokens: set[str] = set(tokens) if tokens is not None else {BOT_TOKEN}
        #: users.lookupByEmail resolves from this (users.info answers for its values too)
        self.users_by_email: dict[str, str] = {}
        #: when not None, chat.* to any other channel id (C/G ids) fails with channel_not_found
        self.known_channels: set[str] | None = None
        #: the current content of each message, by (channel, ts)
        self.messages: dict[tuple[str, str], Body] = {}
        #: chat.postEphemeral posts, in order
        self.ephemerals: list[Body] = []
        #: the last Home tab view published per user
        self.home_views: dict[str, Body] = {}
        #: modals opened with views.open, in order (each with its ``trigger_id``)
        self.modals: list[Body] = []
        #: files by id: name, title, length, content (bytes once uploaded), shares
        self.files: dict[str, Body] = {}
        #: app-level tokens (``xapp-...``) apps.connections.open accepts (no other method does)
        self.app_tokens: set[str] = {APP_TOKEN}
        #: the WebSocket URL apps.connections.open hands out (``FakeSocketMode.url``); None: Socket Mode off
        self.socket_mode_url: str | None = None
        self._calls: list[SlackCall] = []
        self._failures: dict[str, deque[_Failure]] = {}
        self._cond = threading.Condition()
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._methods: dict[str, Callable[[Body], Body]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "views.publish": self._views_publish,
            "views.open": self._views_open,
            "users.lookupByEmail": self._users_lookup_by_email,
            "users.info": self._users_info,
            "conversations.open": self._conversations_open,
            "conversations.history": self._conversations_history,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
            APPS_CONNECTIONS_OPEN: self._apps_connections_open,
        }

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        assert self._server is not None, "start the FakeSlack server first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        """The ``base_url`` for ``WebClient``: ``http://127.0.0.1:PORT/api/`` (the trailing slash matters)."""
        return f"{self.url}/api/"

    def response_url(self, name: str = "1") -> str:
        """A ``response_url`` (as in slash commands and block actions) that posts back to this fake."""
        return f"{self.url}/hooks/commands/{TEAM_ID}/{name}"

    def start(self) -> FakeSlack:
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ scripting and inspection

    def fail_next(
        self,
        method: str,
        error: str = "ratelimited",
        status: int | None = None,
        retry_after: int | None = None,
        *,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail with ``error``.

        ``ratelimited`` defaults to HTTP 429 with ``Retry-After: 1`` (Slack's rate-limit answer); any other
        error defaults to status 200 with ``{"ok": false, "error": error}``.
        """
        if status is None:
            status = 429 if error == "ratelimited" else 200
        if retry_after is None and status == 429:
            retry_after = 1
        with self._cond:
            queue = self._failures.setdefault(method, deque())
            queue.extend(_Failure(error, status, retry_after) for _ in range(times))

    def calls(self, method: str | None = None) -> list[SlackCall]:
        """Every call received so far (of ``method`` only, when given), oldest first."""
        with self._cond:
            return [c for c in self._calls if method is None or c.method == method]

    def last(self, method: str) -> SlackCall:
        """The latest call of ``method``; fails the test naming the methods seen if there was none."""
        found = self.calls(method)
        if not found:
            raise AssertionError(f"no {method} call; calls seen: {self._seen()}")
        return found[-1]

    def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[SlackCall]:
        """Wait until ``method`` was called at least ``count`` times; return those calls.

        Listeners in Bolt run after ``ack()`` on a worker thread, so their Web API calls land a little
        after ``app.dispatch`` returns. Fails the test, naming what was seen, after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [c for c in self._calls if c.method == method]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"waited {timeout}s for {count} {method} call(s), got {len(found)}; "
                        f"calls seen: {self._seen()}"
                    )
                self._cond.wait(remaining)

    def reset(self) -> None:
        """Forget recorded calls, scripted failures and message/file/view state (keeps tokens and users)."""
        with self._cond:
            self._calls.clear()
            self._failures.clear()
            self.messages.clear()
            self.ephemerals.clear()
            self.home_views.clear()
            self.files.clear()

    def _seen(self) -> str:
        with self._cond:
            names = [c.method for c in self._calls]
        return ", ".join(names) if names else "(none)"

    # ------------------------------------------------------------------ request handling

    def _next_ts(self) -> str:
        n = next(self._ts)
        return f"{1700000000 + n // 10000}.{(n % 10000) * 100:06d}"

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}0FAKE{next(self._ids):05d}"

    def _record(self, call: SlackCall) -> None:
        with self._cond:
            self._calls.append(call)
            self._cond.notify_all()

    def _handle_api(
        self, method: str, params: Body, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Body]:
        """Answer one Web API call: (status, extra headers, JSON body). Called on a server thread."""
        status, extra, payload = self._answer(method, params, headers)
        self._record(SlackCall(method, params, headers, time.time(), body, status, payload))
        return status, extra, payload

    def _answer(self, method: str, params: Body, headers: dict[str, str]) -> tuple[int, dict[str, str], Body]:
        token = _bearer(headers)
        if token is None and not headers.get("content-type", "").startswith("application/json"):
            form_token = params.get("token")
            token = form_token if isinstance(form_token, str) else None
        if token is None:
            return 200, {}, {"ok": False, "error": "not_authed"}
        if method == APPS_CONNECTIONS_OPEN:  # app-level tokens only: a bot token is the wrong type
            if token not in self.app_tokens:
                error = "not_allowed_token_type" if token in self.tokens else "invalid_auth"
                return 200, {}, {"ok": False, "error": error}
        elif token not in self.tokens:
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        with self._cond:
            queue = self._failures.get(method)
            failure = queue.popleft() if queue else None
        if failure is not None:
            extra = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
            return failure.status, extra, {"ok": False, "error": failure.error}
        handler = self._methods.get(method)
        if handler is None:
            return 200, {}, {"ok": False, "error": "unknown_method", "req_method": method}
        try:
            with self._cond:
                return 200, {}, {"ok": True, **handler(params)}
        except SlackApiFailure as failure_:
            return failure_.status, {}, {"ok": False, "error": failure_.error}

    # ------------------------------------------------------------------ methods (called holding the lock)

    def _auth_test(self, params: Body) -> Body:
        return {
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": TEAM_NAME,
            "user": BOT_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _channel(self, params: Body) -> str:
        channel = params.get("channel")
        if not isinstance(channel, str) or not channel:
            raise SlackApiFailure("channel_not_found")
        if channel[:1] in ("U", "W"):  # posting to a user id posts in the DM with the bot
            return dm_channel_for(channel)
        if (
            self.known_channels is not None
            and channel[:1] in ("C", "G")
            and channel not in self.known_channels
        ):
            raise SlackApiFailure("channel_not_found")
        return channel

    def _message(self, params: Body, ts: str) -> Body:
        message: Body = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "text": params.get("text") or "",
            "ts": ts,
        }
        for key in ("blocks", "attachments", "metadata", "thread_ts"):
            if params.get(key) is not None:
                message[key] = params[key]
        return message

    def _chat_post_message(self, params: Body) -> Body:
        params = _decode_json_params(params)
        channel = self._channel(params)
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            raise SlackApiFailure("no_text")
        ts = self._next_ts()
        message = self._message(params, ts)
        self.messages[(channel, ts)] = message
        return {"channel": channel, "ts": ts, "message": message}

    def _chat_update(self, params: Body) -> Body:
        params = _decode_json_params(params)
        channel = params.get("channel")
        ts = params.get("ts")
        if not isinstance(channel, str) or not channel:
            raise SlackApiFailure("channel_not_found")
        if not isinstance(ts, str) or (channel, ts) not in self.messages:
            raise SlackApiFailure("message_not_found")
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            raise SlackApiFailure("no_text")
        current = self.messages[(channel, ts)]
        updated = {**current, **self._message(params, ts), "edited": {"user": BOT_USER_ID, "ts": ts}}
        for key in ("blocks", "attachments"):  # chat.update replaces what it is given, drops omitted blocks
            if key not in params:
                updated.pop(key, None)
        self.messages[(channel, ts)] = updated
        return {"channel": channel, "ts": ts, "text": updated["text"], "message": updated}

    def _chat_post_ephemeral(self, params: Body) -> Body:
        params = _decode_json_params(params)
        channel = self._channel(params)
        user = params.get("user")
        if not isinstance(user, str) or not user:
            raise SlackApiFailure("user_not_found")
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            raise SlackApiFailure("no_text")
        ts = self._next_ts()
        self.ephemerals.append({**self._message(params, ts), "channel": channel, "to_user": user})
        return {"message_ts": ts}

    def _views_open(self, params: Body) -> Body:
        """A modal opened with a trigger id (Slack: a trigger is valid for 3 s and once; the fake checks it
        is present and that the view is a modal)."""
        params = _decode_json_params(params)
        trigger = params.get("trigger_id")
        view = params.get("view")
        if not isinstance(trigger, str) or not trigger:
            raise SlackApiFailure("invalid_trigger_id")
        if not isinstance(view, dict) or view.get("type") != "modal" or not view.get("blocks"):
            raise SlackApiFailure("invalid_arguments")
        opened: Body = {
            "id": self._next_id("V"),
            "team_id": TEAM_ID,
            "type": "modal",
            "callback_id": view.get("callback_id", ""),
            "private_metadata": view.get("private_metadata", ""),
            "blocks": view.get("blocks", []),
            "title": view.get("title"),
            "state": {"values": {}},
            "app_id": APP_ID,
            "bot_id": BOT_ID,
        }
        self.modals.append({**opened, "trigger_id": trigger})
        return {"view": opened}

    def _views_publish(self, params: Body) -> Body:
        params = _decode_json_params(params)
        user_id = params.get("user_id")
        view = params.get("view")
        if not isinstance(user_id, str) or not user_id:
            raise SlackApiFailure("invalid_arguments")
        if not isinstance(view, dict) or view.get("type") != "home":
            raise SlackApiFailure("invalid_arguments")
        published: Body = {
            "id": self._next_id("V"),
            "team_id": TEAM_ID,
            "type": "home",
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{time.time():.6f}.fakehash",
            "app_id": APP_ID,
            "bot_id": BOT_ID,
        }
        self.home_views[user_id] = published
        return {"view": published}

    def _user(self, user_id: str) -> Body:
        email = next((e for e, u in self.users_by_email.items() if u == user_id), None)
        name = email.split("@", 1)[0] if email else user_id.lower()
        return {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "real_name": name.title(),
            "deleted": False,
            "is_bot": False,
            "tz": "Europe/London",
            "profile": {"email": email, "real_name": name.title(), "display_name": name},
        }

    def _users_lookup_by_email(self, params: Body) -> Body:
        user_id = self.users_by_email.get(str(params.get("email", "")))
        if user_id is None:
            raise SlackApiFailure("users_not_found")
        return {"user": self._user(user_id)}

    def _users_info(self, params: Body) -> Body:
        user_id = params.get("user")
        known = set(self.users_by_email.values()) | {BOT_USER_ID}
        if not isinstance(user_id, str) or user_id not in known:
            raise SlackApiFailure("user_not_found")
        if user_id == BOT_USER_ID:
            return {"user": {**self._user(user_id), "name": BOT_NAME, "is_bot": True}}
        return {"user": self._user(user_id)}

    def _conversations_history(self, params: Body) -> Body:
        """The channel's messages, newest first (``limit``, default 100); ``metadata`` only with
        ``include_all_metadata`` (as Slack does)."""
        channel = params.get("channel")
        if not isinstance(channel, str) or not channel:
            raise SlackApiFailure("channel_not_found")
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        limit = int(params.get("limit") or 100)
        found = sorted(
            (m for (c, _), m in self.messages.items() if c == channel),
            key=lambda m: str(m["ts"]),
            reverse=True,
        )
        out = [m if with_metadata else {k: v for k, v in m.items() if k != "metadata"} for m in found[:limit]]
        return {"messages": out, "has_more": len(found) > limit}

    def _conversations_open(self, params: Body) -> Body:
        if isinstance(params.get("channel"), str) and params["channel"]:
            return {"channel": {"id": params["channel"]}, "no_op": True, "already_open": True}
        users = [u for u in str(params.get("users", "")).split(",") if u]
        if not users:
            raise SlackApiFailure("users_list_not_supplied")
        if len(users) == 1:
            return {"channel": {"id": dm_channel_for(users[0])}}
        return {"channel": {"id": "G" + "".join(sorted(u[1:] for u in users))[:20]}}

    def _files_get_upload_url_external(self, params: Body) -> Body:
        filename = params.get("filename")
        length = params.get("length")
        if not filename or length in (None, ""):
            raise SlackApiFailure("invalid_arguments")
        file_id = self._next_id("F")
        self.files[file_id] = {
            "id": file_id,
            "name": filename,
            "title": filename,
            "length": int(length),
            "content": None,
            "shares": [],
        }
        return {"upload_url": f"{self.url}/upload/v1/{file_id}", "file_id": file_id}

    def _files_complete_upload_external(self, params: Body) -> Body:
        params = _decode_json_params(params)
        files = params.get("files")
        if not isinstance(files, list) or not files:
            raise SlackApiFailure("invalid_arguments")
        done: list[Body] = []
        channels = [c for c in str(params.get("channels") or params.get("channel_id") or "").split(",") if c]
        for item in files:
            stored = self.files.get(str(item.get("id")))
            if stored is None or stored["content"] is None:
                raise SlackApiFailure("file_not_found")
            stored["title"] = item.get("title") or stored["title"]
            for channel in channels:
                stored["shares"].append(
                    {
                        "channel": channel,
                        "initial_comment": params.get("initial_comment"),
                        "thread_ts": params.get("thread_ts"),
                    }
                )
            done.append({"id": stored["id"], "title": stored["title"]})
        return {"files": done}

    def _apps_connections_open(self, params: Body) -> Body:
        if self.socket_mode_url is None:
            raise SlackApiFailure(SOCKET_MODE_OFF_ERROR)
        return {"url": self.socket_mode_url}

    def _handle_upload(self, file_id: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        """The pre-signed upload URL: stores the bytes, answers ``OK - <length>`` as Slack does."""
        with self._cond:
            stored = self.files.get(file_id)
            if stored is not None:
                stored["content"] = body
        status, text = (200, f"OK - {len(body)}") if stored is not None else (404, "file not found")
        self._record(
            SlackCall(
                UPLOAD_METHOD,
                {"file_id": file_id, "length": len(body)},
                headers,
                time.time(),
                body,
                status,
                {},
            )
        )
        return status, text

    def _handle_response_url(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        params = _parse_body(body, headers.get("content-type", ""))
        self._record(
            SlackCall(RESPONSE_URL_METHOD, {**params, "_path": path}, headers, time.time(), body, 200, {})
        )
        return 200, "ok"


def _bearer(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if not auth.startswith("Bearer "):
        return None
    token = auth.removeprefix("Bearer ").strip()
    return token or None


def _parse_body(body: bytes, content_type: str) -> Body:
    if not body:
        return {}
    text = body.decode("utf-8", errors="replace")
    if content_type.startswith("application/json") or text.lstrip().startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {"_json": parsed}
    return dict(parse_qsl(text, keep_blank_values=True))


def _make_handler(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            parts = urlsplit(self.path)
            path = parts.path
            if path.startswith("/api/"):
                params: Body = dict(parse_qsl(parts.query, keep_blank_values=True))
                params.update(_parse_body(raw, headers.get("content-type", "")))
                status, extra, payload = fake._handle_api(path.removeprefix("/api/"), params, headers, raw)
                self._send(status, json.dumps(payload), "application/json; charset=utf-8", extra)
            elif path.startswith("/upload/v1/"):
                status, text = fake._handle_upload(path.removeprefix("/upload/v1/"), raw, headers)
                self._send(status, text, "text/plain; charset=utf-8")
            elif path.startswith("/hooks/"):
                status, text = fake._handle_response_url(path, raw, headers)
                self._send(status, text, "text/html")
            else:
                self._send(404, json.dumps({"ok": False, "error": "unknown_method"}), "application/json")

        def _send(
            self, status: int, text: str, content_type: str, extra: dict[str, str] | None = None
        ) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    return Handler


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """A started :class:`FakeSlack` for one test (stopped afterwards)."""
    with FakeSlack() as fake:
        yield fake
