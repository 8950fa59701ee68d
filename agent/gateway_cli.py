"""`finops gateway`: the model routes and LLM limits the product keeps, and their LiteLLM export."""

from __future__ import annotations

from typing import Annotated

import typer

from agent.cli_context import FormatOpt, _ctx, _fail, run_guarded

gateway_app = typer.Typer(
    help="Model routes and LLM rate limits / budgets kept by the assistant; export for LiteLLM.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(gateway_app, name="gateway")


@gateway_app.command("show")
def gateway_show(ctx: typer.Context, fmt: FormatOpt = "table") -> None:
    """The model routes (feature, environment -> model) and the limits per team / project."""

    def go() -> None:
        from dataclasses import asdict

        from agent.output import dumps_json, print_table
        from tools.llm_policy import list_limits, list_routes

        db = _ctx(ctx).database()
        routes = [asdict(r) for r in list_routes(db)]
        limits = [asdict(limit) for limit in list_limits(db)]
        if fmt == "json":
            print(dumps_json({"routes": routes, "limits": limits}))
            return
        print_table(
            routes, ["feature", "environment", "model", "updated_by", "updated_at"], title="Model routes"
        )
        print_table(
            limits,
            ["subject", "environment", "tpm", "rpm", "max_budget", "monthly_tokens", "updated_by"],
            title="LLM limits",
        )

    run_guarded(go)


@gateway_app.command("export")
def gateway_export(
    ctx: typer.Context,
    environment: Annotated[
        str | None, typer.Option("--environment", help="One environment's gateway (default: all, NAME@ENV)")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="yaml | json")] = "yaml",
) -> None:
    """A LiteLLM proxy config fragment: `finops gateway export --environment prod > litellm-finops.yaml`."""
    if fmt not in ("yaml", "json"):
        _fail(f"--format {fmt!r}: choose yaml or json")

    def go() -> None:
        from agent.output import dumps_json
        from tools.llm_policy import litellm_config, render_yaml

        c = _ctx(ctx)
        fragment = litellm_config(c.database(), c.config(), environment)
        print(
            dumps_json(fragment) if fmt == "json" else render_yaml(fragment),
            end="" if fmt == "yaml" else "\n",
        )

    run_guarded(go)
