"""The read-only dashboard: a Starlette app mounted by ``finops serve`` at ``/``.

Access (decided once, at build time):

- ``token`` set: every request needs it, as ``Authorization: Bearer <token>`` or once as ``?token=<token>``,
  which sets an HttpOnly, SameSite=Strict cookie and redirects to the same URL without the token (so a
  shared link never carries it). No credentials → 401; a wrong one → 403.
- ``proxy_header`` set (e.g. ``X-Forwarded-User``, from a trusted reverse proxy that authenticates users):
  every request needs that header, non-empty → else 403. With both set, both are required.
- neither: the dashboard answers only requests from the loopback interface, and ``check_exposure`` refuses
  to start it on any other address (``finops serve`` calls it with its ``--host``).

Nothing here writes: every route is GET (HEAD) and reads through the product's query functions.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.web import charts, pages
from agent.web.params import Params
from agent.web.tables import fmt, raw
from config.model import FinOpsConfig
from config.settings import Settings
from tools.errors import FinOpsError
from tools.store.db import Database
from tools.store.lake import Lake

HERE = Path(__file__).parent
COOKIE = "finops_dashboard"
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
NAV = (
    ("/", "Overview"),
    ("/unit-economics", "AI unit economics"),
    ("/budgets", "Budgets"),
    ("/findings", "Findings"),
    ("/approvals", "Approvals"),
    ("/audit", "Audit trail"),
)


class DashboardError(FinOpsError):
    """The dashboard cannot start as configured: what is missing and how to set it."""


def check_exposure(host: str, *, token: str | None, proxy_header: str | None) -> None:
    """Refuse to serve the dashboard without access control on anything but the loopback interface."""
    if token or proxy_header or host in LOOPBACK:
        return
    raise DashboardError(
        f"the dashboard would be open to anyone who can reach {host}: set FINOPS_DASHBOARD_TOKEN (a long random "
        "secret) or FINOPS_DASHBOARD_PROXY_HEADER (the header your authenticating reverse proxy sets, e.g. "
        "X-Forwarded-User), or bind to 127.0.0.1 with --host 127.0.0.1, or run with --no-dashboard"
    )


class AccessMiddleware:
    """Token / trusted-header / loopback-only access, before any route runs."""

    def __init__(self, app: ASGIApp, *, token: str | None, proxy_header: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.proxy_header = proxy_header.lower().encode() if proxy_header else None

    def _ok(self, given: str | None) -> bool:
        return (
            self.token is not None and given is not None and hmac.compare_digest(given.encode(), self.token)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if self.proxy_header is not None and not headers.get(self.proxy_header, b"").strip():
            await _deny(
                scope, receive, send, 403, "missing the trusted proxy header: sign in through the proxy"
            )
            return
        if self.token is not None:
            query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            in_query = next((v for k, v in query if k == "token"), None)
            if in_query is not None:
                if not self._ok(in_query):
                    await _deny(scope, receive, send, 403, "wrong token")
                    return
                rest = urlencode([(k, v) for k, v in query if k != "token"])
                location = scope.get("root_path", "") + scope["path"] + (f"?{rest}" if rest else "")
                response = RedirectResponse(location, status_code=303)
                response.set_cookie(
                    COOKIE, in_query, httponly=True, samesite="strict", secure=scope.get("scheme") == "https"
                )
                await response(scope, receive, send)
                return
            auth = headers.get(b"authorization", b"").decode("latin-1")
            cookie = SimpleCookie(headers.get(b"cookie", b"").decode("latin-1")).get(COOKIE)
            given = auth[7:].strip() if auth[:7].lower() == "bearer " else (cookie.value if cookie else None)
            if given is None:
                await _deny(scope, receive, send, 401, "this dashboard needs a token")
                return
            if not self._ok(given):
                await _deny(scope, receive, send, 403, "wrong token")
                return
        if self.token is None and self.proxy_header is None:
            client = scope.get("client")
            if client is None or client[0] not in LOOPBACK:
                await _deny(
                    scope, receive, send, 403, "this dashboard answers only on the loopback interface"
                )
                return
        await self.app(scope, receive, send)


async def _deny(scope: Scope, receive: Receive, send: Send, status: int, reason: str) -> None:
    headers = {"WWW-Authenticate": 'Bearer realm="finops"'} if status == 401 else {}
    body = f"{status}: {reason}. Open the dashboard with ?token=... once, or send Authorization: Bearer ...\n"
    await PlainTextResponse(body, status_code=status, headers=headers)(scope, receive, send)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cache-control", b"no-store"),
                ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, wrapped if scope["type"] == "http" else send)


def build_dashboard(
    db: Database,
    lake: Lake,
    config: FinOpsConfig,
    settings: Settings,
    *,
    token: str | None,
    proxy_header: str | None,
) -> Starlette:
    """The dashboard app (mount it at ``/``). See the module docstring for access control."""
    stores = pages.Stores(db, lake, config, settings)
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(fmt=fmt, raw=raw, nav=NAV, currency=config.currency, swatch=charts.swatch)

    def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
        params = Params.parse(request.query_params.multi_items())
        base = request.scope.get("root_path", "").rstrip("/")
        html = env.get_template(template).render(
            **context,
            base=base,
            path=request.url.path,
            params=params,
            url=lambda path, **kw: base + params.url(path, **kw),
            current=request.url.path[len(base) :] or "/",
        )
        return HTMLResponse(html, status_code=status)

    def page(
        template: str, builder: Callable[[pages.Stores, Params], dict[str, Any]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            params = Params.parse(request.query_params.multi_items())
            try:
                context = await run_in_threadpool(builder, stores, params)
            except FinOpsError as exc:
                return render(
                    request, "error.html", {"title": "Cannot show this page", "message": str(exc)}, 400
                )
            if params.get("format") == "csv":
                name = params.get("table") or next(iter(context["tables"]))
                table = context["tables"].get(name)
                if table is None:
                    return PlainTextResponse(
                        f"no table {name!r}; choose: {', '.join(context['tables'])}\n", 404
                    )
                filename = f"finops-{template.removesuffix('.html')}-{name}.csv"
                return Response(
                    table.csv(),
                    media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'},
                )
            return render(request, template, context)

        return endpoint

    async def approval_detail(request: Request) -> Response:
        try:
            context = await run_in_threadpool(
                pages.approval_detail, stores, request.path_params["request_id"]
            )
        except FinOpsError as exc:
            return render(request, "error.html", {"title": "No such request", "message": str(exc)}, 404)
        return render(request, "approval.html", context)

    async def audit_export(request: Request) -> Response:
        params = Params.parse(request.query_params.multi_items())
        fmt_ = params.get("format", "jsonl") or "jsonl"
        if fmt_ not in ("jsonl", "csv"):
            return PlainTextResponse("format must be jsonl or csv\n", 400)
        try:
            lines = await run_in_threadpool(pages.audit_export, stores, params, fmt_)
        except FinOpsError as exc:
            return PlainTextResponse(f"{exc}\n", 400)
        return StreamingResponse(
            lines,
            media_type="text/csv; charset=utf-8" if fmt_ == "csv" else "application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="finops-audit.{fmt_}"'},
        )

    routes = [
        Route("/", page("overview.html", pages.overview), methods=["GET"]),
        Route("/unit-economics", page("unit_economics.html", pages.unit_economics), methods=["GET"]),
        Route("/budgets", page("budgets.html", pages.budgets), methods=["GET"]),
        Route("/findings", page("findings.html", pages.findings), methods=["GET"]),
        Route("/approvals", page("approvals.html", pages.approvals), methods=["GET"]),
        Route("/approvals/{request_id}", approval_detail, methods=["GET"]),
        Route("/audit", page("audit.html", pages.audit), methods=["GET"]),
        Route("/audit/export", audit_export, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(AccessMiddleware, token=token, proxy_header=proxy_header)
    app.add_middleware(SecurityHeaders)
    return app
