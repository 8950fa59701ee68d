"""A fake Slack Socket Mode server for tests: a WebSocket server on 127.0.0.1 that the real Socket Mode client
(``slack_sdk.socket_mode.builtin.SocketModeClient``, which Bolt's ``SocketModeHandler`` uses) connects to.

Socket Mode (https://docs.slack.dev/apis/events-api/using-socket-mode/): the app calls
``apps.connections.open`` with its app-level token (``xapp-...``) and gets a WebSocket URL; it connects,
Slack greets it with a ``hello`` message, then delivers everything the HTTP Request URL would get as JSON
envelopes::

    {"envelope_id": "...", "type": "slash_commands" | "events_api" | "interactive",
     "payload": {...}, "accepts_response_payload": true | false, ...}

and the app acknowledges each one within 3 s with ``{"envelope_id": "..."}``, plus a ``payload`` when the
envelope accepts one (a slash command's immediate reply, say). Used with ``FakeSlack``, whose
``apps.connections.open`` hands out ``fake.socket_mode_url``::

    with FakeSlack() as fake, FakeSocketMode() as sm:
        fake.socket_mode_url = sm.url
        handler = SocketModeHandler(app, APP_TOKEN)
        handler.connect()
        envelope_id = sm.send_envelope("slash_commands", {"command": "/finops", "text": "help", ...})
        ack = sm.wait_for_ack(envelope_id)   # {"envelope_id": ..., "payload": {"text": "Working on it", ...}}
        handler.close()
        sm.wait_closed()

What it mimics: the ``/link/?ticket=...&app_id=...`` URL shape (served over plain ``ws://``: slack_sdk's
builtin client uses TLS only on port 443, whatever the scheme), the ``hello`` message on connect, the
envelopes above, ``disconnect`` messages (``send_disconnect``, after which the client fetches a new URL and
reconnects) and WebSocket ping/pong (the ``websockets`` library answers the client's pings). Every
connection is recorded (:class:`SocketConnection`) with the text messages it received and how it closed.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

Body = dict[str, Any]
T = TypeVar("T")

#: the app id the fake greets connections with (FakeSlack's)
DEFAULT_APP_ID = "A0FAKEAPP1"
#: the path of Slack's Socket Mode URLs (``wss://wss-primary.slack.com/link/?ticket=...&app_id=...``)
LINK_PATH = "/link/"
#: envelope types Slack sends over Socket Mode
ENVELOPE_TYPES = ("slash_commands", "events_api", "interactive")
#: interactive payload types whose ack may carry a response payload (errors, options, a new view)
_INTERACTIVE_WITH_RESPONSE = ("block_suggestion", "view_submission", "dialog_suggestion", "dialog_submission")


@dataclass
class SocketConnection:
    """One WebSocket connection the fake accepted."""

    id: int
    path: str
    opened_at: float
    #: every text message the client sent, parsed as JSON (a non-JSON message is kept as ``{"_raw": text}``)
    received: list[Body] = field(default_factory=list)
    #: envelope ids sent on this connection, in order
    sent: list[str] = field(default_factory=list)
    #: set once the connection is closed (by either side)
    closed: threading.Event = field(default_factory=threading.Event)
    #: the close code the server saw: 1000/1001 after a closing handshake, 1006 when the TCP connection just
    #: went away without a Close frame (which is how slack_sdk's builtin client disconnects)
    close_code: int | None = None
    close_reason: str | None = None
    _ws: ServerConnection | None = field(default=None, repr=False)
    _ready: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def is_open(self) -> bool:
        return self._ready.is_set() and not self.closed.is_set()

    @property
    def ticket(self) -> str | None:
        """The ``ticket`` query parameter of the URL the client connected to."""
        from urllib.parse import parse_qs, urlsplit

        values = parse_qs(urlsplit(self.path).query).get("ticket")
        return values[0] if values else None


class FakeSocketMode:
    """A fake of Slack's Socket Mode WebSocket endpoint, served in a thread on a free port of 127.0.0.1."""

    def __init__(self, *, app_id: str = DEFAULT_APP_ID) -> None:
        self.app_id = app_id
        #: every ack received (``{"envelope_id": ..., "payload"?: ...}``), in order, on any connection
        self.acks: list[Body] = []
        self._connections: list[SocketConnection] = []
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._ticket = uuid.uuid4().hex
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT/link/?ticket=...&app_id=...``: what ``apps.connections.open`` returns."""
        assert self._server is not None, "start the FakeSocketMode server first"
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}{LINK_PATH}?ticket={self._ticket}&app_id={self.app_id.lower()}fake"

    def start(self) -> FakeSocketMode:
        self._server = serve(
            self._handle,
            "127.0.0.1",
            0,
            process_request=self._check_path,
            compression=None,
            ping_interval=None,  # the client pings (every ping_interval seconds); the server answers
            close_timeout=2,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-socket-mode", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every open connection (code 1001, going away) and stop listening."""
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeSocketMode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ inspection

    @property
    def connections(self) -> list[SocketConnection]:
        """Every connection accepted so far, oldest first."""
        with self._cond:
            return list(self._connections)

    def wait_for_connection(self, count: int = 1, timeout: float = 5.0) -> SocketConnection:
        """Wait until ``count`` connections were greeted; return the latest open one."""

        def ready() -> SocketConnection | None:
            greeted = [c for c in self._connections if c._ready.is_set()]
            open_ = [c for c in greeted if not c.closed.is_set()]
            return open_[-1] if len(greeted) >= count and open_ else None

        return self._wait(ready, timeout, f"{count} open connection(s)")

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> Body:
        """Wait for the ack of ``envelope_id``; return it (``{"envelope_id": ..., "payload"?: {...}}``)."""

        def found() -> Body | None:
            return next((a for a in self.acks if a.get("envelope_id") == envelope_id), None)

        return self._wait(found, timeout, f"the ack of envelope {envelope_id}")

    def ack_for(self, envelope_id: str) -> Body | None:
        """The ack of ``envelope_id`` received so far, if any."""
        with self._cond:
            return next((a for a in self.acks if a.get("envelope_id") == envelope_id), None)

    def wait_closed(
        self, connection: SocketConnection | None = None, timeout: float = 5.0
    ) -> SocketConnection:
        """Wait until ``connection`` (default: the latest) is closed; return it."""
        target = connection or self._latest()
        if not target.closed.wait(timeout):
            raise AssertionError(f"connection {target.id} still open after {timeout}s")
        return target

    # ------------------------------------------------------------------ sending

    def send_envelope(
        self,
        type: str,
        payload: Body,
        *,
        accepts_response_payload: bool | None = None,
        envelope_id: str | None = None,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        connection: SocketConnection | None = None,
        timeout: float = 5.0,
    ) -> str:
        """Deliver ``payload`` in a Socket Mode envelope of ``type`` on the latest open connection (waiting up
        to ``timeout`` for one); return its envelope id.

        ``payload`` is what the HTTP Request URL would get: the slash command's fields as a dict
        (``slash_commands``), the ``event_callback`` envelope (``events_api``), the interactivity payload
        (``interactive``). ``accepts_response_payload`` defaults as Slack sets it: true for slash commands
        and for the interactive payloads whose response may carry content (view submissions, suggestions),
        false otherwise. Events API envelopes carry ``retry_attempt`` / ``retry_reason`` (0 and "" on a
        first delivery).
        """
        if type not in ENVELOPE_TYPES:
            raise ValueError(f"unknown envelope type {type!r}; Slack sends {', '.join(ENVELOPE_TYPES)}")
        if accepts_response_payload is None:
            accepts_response_payload = type == "slash_commands" or (
                type == "interactive" and payload.get("type") in _INTERACTIVE_WITH_RESPONSE
            )
        envelope_id = envelope_id or str(uuid.uuid4())
        envelope: Body = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": type,
            "accepts_response_payload": accepts_response_payload,
        }
        if type == "events_api":
            envelope["retry_attempt"] = retry_attempt or 0
            envelope["retry_reason"] = retry_reason or ""
        target = connection or self.wait_for_connection(timeout=timeout)
        self._send(target, envelope)
        with self._cond:
            target.sent.append(envelope_id)
        return envelope_id

    def send_disconnect(
        self, reason: str = "refresh_requested", connection: SocketConnection | None = None
    ) -> None:
        """Slack's ``disconnect`` message (``warning``: the connection closes in about 10 s;
        ``refresh_requested``: reconnect now; ``link_disabled``: Socket Mode was turned off). The client
        answers by fetching a new URL, connecting to it and closing this connection."""
        target = connection or self.wait_for_connection()
        self._send(
            target,
            {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake-0"}},
        )

    def close_connection(
        self, connection: SocketConnection | None = None, code: int = 1001, reason: str = ""
    ) -> None:
        """Close a connection from the server side, with a Close frame."""
        target = connection or self.wait_for_connection()
        if target._ws is not None:
            target._ws.close(code, reason)

    # ------------------------------------------------------------------ internals

    def _latest(self) -> SocketConnection:
        with self._cond:
            if not self._connections:
                raise AssertionError("no Socket Mode connection was made")
            return self._connections[-1]

    def _wait(self, probe: Callable[[], T | None], timeout: float, what: str) -> T:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = probe()
                if result is not None:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"waited {timeout}s for {what}; connections: {len(self._connections)}, "
                        f"acks: {[a.get('envelope_id') for a in self.acks]}"
                    )
                self._cond.wait(remaining)

    def _send(self, connection: SocketConnection, message: Body) -> None:
        if connection._ws is None or connection.closed.is_set():
            raise AssertionError(f"connection {connection.id} is closed")
        connection._ws.send(json.dumps(message))

    def _check_path(self, ws: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0] != LINK_PATH:
            return ws.respond(404, "not found\n")
        return None

    def _hello(self) -> Body:
        return {
            "type": "hello",
            "num_connections": sum(1 for c in self._connections if not c.closed.is_set()),
            "debug_info": {
                "host": "applink-fake-0",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self.app_id},
        }

    def _handle(self, ws: ServerConnection) -> None:
        """One connection (on the server's handler thread): greet, then record what the client sends."""
        with self._cond:
            conn = SocketConnection(
                next(self._ids), ws.request.path if ws.request else "", time.time(), _ws=ws
            )
            self._connections.append(conn)
            hello = self._hello()
        try:
            ws.send(json.dumps(hello))
            with self._cond:
                conn._ready.set()
                self._cond.notify_all()
            for raw in ws:
                text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
                try:
                    message = json.loads(text)
                except ValueError:
                    message = {"_raw": text}
                if not isinstance(message, dict):
                    message = {"_raw": text}
                with self._cond:
                    conn.received.append(message)
                    if "envelope_id" in message:
                        self.acks.append(message)
                    self._cond.notify_all()
        except ConnectionClosed:
            pass
        finally:
            with self._cond:
                conn.close_code = ws.close_code if ws.close_code is not None else 1006
                conn.close_reason = ws.close_reason
                conn.closed.set()
                self._cond.notify_all()
