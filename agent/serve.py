"""`finops serve`: the long-running process — the Slack app, the reconcile step, a health endpoint.

One Starlette app served by uvicorn on one port:

- ``POST /slack/events``: events, interactivity (buttons) and the ``/finops`` slash command; Bolt checks
  Slack's signature (``SLACK_SIGNING_SECRET``) and answers 401 to a bad or stale one. Bolt's ``dispatch``
  runs in a worker thread, so a slow listener never blocks the event loop; every listener acks at once and
  works in a lazy listener.
- ``GET /health``: 200 with ``{"status": "ok", ...}`` when the database answers, 503 otherwise.

With ``SLACK_APP_TOKEN`` the app connects in Socket Mode instead (no public URL needed; the HTTP port then
serves only the health endpoint). ``--no-slack`` runs without Slack. At start-up requests left in
``executing`` by a crash are reconciled, overdue ones expired, decided ones settled. SIGINT / SIGTERM stop
it gracefully: uvicorn finishes the requests in flight, then the Socket Mode connection and the database
are closed. Logs are JSON lines when stderr is not a terminal; tokens and secrets never reach a log.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from config.settings import Settings
from tools.errors import FinOpsError
from tools.redaction import redact_text

if TYPE_CHECKING:
    from slack_bolt import App
    from starlette.applications import Starlette

    from agent.slack.app import SlackDeps
    from config.model import FinOpsConfig
    from tools.store.db import Database

log = logging.getLogger("finops.serve")

DEFAULT_PORT = 3000
SLACK_PATH = "/slack/events"


class ServeError(FinOpsError):
    """`finops serve` cannot start: what is missing and how to set it."""


# ----- logging ------------------------------------------------------------------------------------------------
class RedactingFilter(logging.Filter):
    """Formats the record's message now and redacts it (arguments included), so no handler sees a token."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_text(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


def configure_logging(*, json_lines: bool | None = None, level: int = logging.INFO) -> None:
    """Log to stderr: JSON lines when it is not a terminal (or ``json_lines``), always redacted."""
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "slack_bolt", "slack_sdk"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True


# ----- configuration --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SlackMode:
    mode: str  # "http" | "socket" | "off"
    bot_token: str | None = None
    signing_secret: str | None = None
    app_token: str | None = None


def slack_mode(settings: Settings, *, no_slack: bool = False) -> SlackMode:
    """How to run Slack, from the variables; a missing one is an error that names it."""
    if no_slack:
        return SlackMode("off")

    def secret(value: Any) -> str | None:
        text = value.get_secret_value() if value is not None else ""
        return text or None

    bot, signing, app_token = (
        secret(settings.slack_bot_token),
        secret(settings.slack_signing_secret),
        secret(settings.slack_app_token),
    )
    missing = []
    if not bot:
        missing.append("SLACK_BOT_TOKEN (the bot token, xoxb-...)")
    if not app_token and not signing:
        missing.append("SLACK_SIGNING_SECRET (Basic Information > App Credentials)")
    if missing:
        raise ServeError(
            "cannot start the Slack app: "
            + " and ".join(missing)
            + (" is" if len(missing) == 1 else " are")
            + " not set. Set "
            + ("it" if len(missing) == 1 else "them")
            + ", or set SLACK_APP_TOKEN (xapp-...) for Socket Mode, or run `finops serve --no-slack`."
        )
    if app_token:
        return SlackMode("socket", bot, signing, app_token)
    return SlackMode("http", bot, signing)


# ----- start-up -------------------------------------------------------------------------------------------------
def recover(settings: Settings, db: Database, config: FinOpsConfig) -> dict[str, Any]:
    """At start-up, before the first scheduled run: the `expire-approvals` and `reconcile` jobs once
    (executions a crash left in ``executing``, overdue requests, decided threads still paused). A failure is
    logged and reported, never a reason not to start: the scheduled runs try again."""
    from agent.jobs import expire_approvals, reconcile
    from agent.jobs_base import JobContext
    from tools.store.lake import Lake

    ctx = JobContext(db, Lake(settings.resolved_lake_dir()), config, settings, datetime.now(UTC), "start-up")
    out: dict[str, Any] = {"errors": []}
    for name, job in (("expire-approvals", expire_approvals), ("reconcile", reconcile)):
        try:
            out[name] = job(ctx)
        except Exception as exc:  # start anyway; the error is in the log and the summary
            log.exception("start-up %s failed", name)
            out["errors"].append(f"{name}: {type(exc).__name__}: {redact_text(str(exc))[:300]}")
    return out


def build_web_app(
    db: Database, slack_app: App | None, mode: str, dashboard: Starlette | None = None
) -> Starlette:
    """The HTTP app: ``POST /slack/events`` (when Slack runs in HTTP mode), ``GET /health`` and the read-only
    dashboard at ``/`` (mounted last, so the two routes above match first)."""
    from sqlalchemy import text
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import BaseRoute, Route

    started = datetime.now(UTC)

    async def health(request: Request) -> Response:
        def check() -> str | None:
            try:
                with db.engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            except Exception as exc:  # the reason, not a stack trace
                return f"{type(exc).__name__}: {redact_text(str(exc))[:200]}"
            return None

        problem = await run_in_threadpool(check)
        body = {
            "status": "ok" if problem is None else "unavailable",
            "database": "ok" if problem is None else problem,
            "slack": mode,
            "started": started.isoformat(timespec="seconds"),
        }
        return JSONResponse(body, status_code=200 if problem is None else 503)

    routes: list[BaseRoute] = [Route("/health", health, methods=["GET"])]
    if slack_app is not None and mode == "http":
        from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response

        app = slack_app

        async def slack_events(request: Request) -> Response:
            body = await request.body()
            bolt_response = await run_in_threadpool(app.dispatch, to_bolt_request(request, body))
            return to_starlette_response(bolt_response)

        routes.append(Route(SLACK_PATH, slack_events, methods=["POST"]))
    if dashboard is not None:
        from starlette.routing import Mount

        routes.append(Mount("/", app=dashboard))
    return Starlette(routes=routes)


def slack_deps(settings: Settings, db: Database, config: FinOpsConfig, mode: SlackMode) -> SlackDeps:
    from agent.slack.app import SlackDeps, workspace_of
    from agent.slack.client import make_client
    from tools.store.lake import Lake

    assert mode.bot_token is not None
    client = make_client(settings, token=mode.bot_token)
    return SlackDeps(
        db=db,
        lake=Lake(settings.resolved_lake_dir()),
        config=config,
        settings=settings,
        client=client,
        team_id=workspace_of(client),
    )


def connect_socket_mode(slack_app: App, app_token: str) -> Any:
    """Connect ``slack_app`` to Slack in Socket Mode (``apps.connections.open`` with the app-level token on
    the app's Web API base URL, then a WebSocket); returns the handler, whose ``close()`` disconnects."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    handler = SocketModeHandler(slack_app, app_token)
    try:
        handler.connect()  # type: ignore[no-untyped-call]
    except Exception:
        handler.close()  # type: ignore[no-untyped-call]
        raise
    if not handler.client.is_connected():
        handler.close()  # type: ignore[no-untyped-call]
        raise ServeError(
            "could not open the Socket Mode WebSocket that apps.connections.open returned; check "
            "SLACK_APP_TOKEN (an app-level xapp- token with connections:write) and that Socket Mode is on"
        )
    return handler


def _dashboard(settings: Settings, db: Database, config: FinOpsConfig, host: str) -> Starlette | None:
    """The dashboard, or None (with a warning) when it would be open to the network without access control:
    the Slack app and the scheduler still start."""
    from agent.web import DashboardError, build_dashboard, check_exposure
    from tools.store.lake import Lake

    token = settings.dashboard_token.get_secret_value() if settings.dashboard_token else None
    proxy = settings.dashboard_proxy_header
    try:
        check_exposure(host, token=token, proxy_header=proxy)
    except DashboardError as exc:
        log.warning("dashboard not served: %s", exc)
        return None
    log.info("dashboard at / (%s)", "token" if token else f"header {proxy}" if proxy else "loopback only")
    return build_dashboard(
        db, Lake(settings.resolved_lake_dir()), config, settings, token=token, proxy_header=proxy
    )


def _graceful_server_class() -> type[Any]:
    import signal
    import threading
    from collections.abc import Generator
    from contextlib import contextmanager

    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn's server, except that after a graceful shutdown on SIGINT / SIGTERM it returns (exit
        status 0, our clean-up runs) instead of raising the signal again."""

        @contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return GracefulServer


def serve(
    settings: Settings,
    db: Database,
    config: FinOpsConfig,
    *,
    port: int,
    host: str,
    no_slack: bool,
    no_scheduler: bool = False,
    no_dashboard: bool = False,
) -> None:
    """Run until SIGINT / SIGTERM."""
    import uvicorn

    mode = slack_mode(settings, no_slack=no_slack)
    recovered = recover(settings, db, config)
    log.info("start-up recovery: %s", json.dumps(recovered))
    slack_app = None
    socket_handler = None
    if mode.mode != "off":
        from agent.slack.app import build_app

        deps = slack_deps(settings, db, config, mode)
        slack_app = build_app(deps, signing_secret=mode.signing_secret or "socket-mode")
        log.info("Slack app for workspace %s in %s mode", deps.team_id, mode.mode)
        if mode.mode == "socket":
            assert mode.app_token is not None
            socket_handler = connect_socket_mode(slack_app, mode.app_token)
    scheduler = None
    if not no_scheduler:
        from agent.scheduler import start_scheduler

        scheduler = start_scheduler(settings, db, config)
        log.info(
            "scheduler started (holder %s; the lease decides which replica runs the jobs)", scheduler.holder
        )
    dashboard = None if no_dashboard else _dashboard(settings, db, config, host)
    web = build_web_app(db, slack_app, mode.mode, dashboard)
    server = _graceful_server_class()(
        uvicorn.Config(web, host=host, port=port, log_config=None, access_log=False)
    )
    log.info(
        "serving on http://%s:%d (health: /health%s)",
        host,
        port,
        f", Slack: {SLACK_PATH}" if mode.mode == "http" else "",
    )
    try:
        server.run()  # returns after SIGINT / SIGTERM, once the requests in flight are done
    finally:
        if scheduler is not None:
            scheduler.shutdown()
        if socket_handler is not None:
            socket_handler.close()
        db.dispose()
        log.info("stopped")
