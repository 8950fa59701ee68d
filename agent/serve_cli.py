"""`finops serve`: the Slack app, the start-up reconcile and a health endpoint in one process."""

from __future__ import annotations

from typing import Annotated

import typer

from agent.cli_context import _ctx, run_guarded


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)


def serve_cmd(
    ctx: typer.Context,
    port: Annotated[
        int, typer.Option("--port", help="HTTP port (Slack events, buttons, /finops, /health)")
    ] = 3000,
    host: Annotated[str, typer.Option("--host", help="Address to listen on")] = "0.0.0.0",
    no_slack: Annotated[
        bool, typer.Option("--no-slack", help="Run without Slack (health endpoint and dashboard only)")
    ] = False,
    no_scheduler: Annotated[
        bool, typer.Option("--no-scheduler", help="Do not run the scheduled jobs in this process")
    ] = False,
    no_dashboard: Annotated[
        bool, typer.Option("--no-dashboard", help="Do not serve the web dashboard")
    ] = False,
    json_logs: Annotated[
        bool | None,
        typer.Option("--json-logs/--text-logs", help="Log format (default: JSON unless a terminal)"),
    ] = None,
) -> None:
    """Serve the Slack app (HTTP mode; Socket Mode with SLACK_APP_TOKEN) until SIGINT / SIGTERM.

    Needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN), unless --no-slack."""

    def go() -> None:
        from agent.serve import configure_logging, serve

        c = _ctx(ctx)
        configure_logging(json_lines=json_logs)
        serve(
            c.settings(),
            c.database(),
            c.config(),
            port=port,
            host=host,
            no_slack=no_slack,
            no_scheduler=no_scheduler,
            no_dashboard=no_dashboard,
        )

    run_guarded(go)
