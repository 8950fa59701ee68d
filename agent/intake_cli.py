"""`finops intake`: the governance register of AI services / features (register, list, retire); every change
is audited. The Slack modal (`/finops intake`) records through the same ``record_registration``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent.cli_context import FormatOpt, _check_format, _ctx, run_guarded

if TYPE_CHECKING:
    from config.model import FinOpsConfig
    from tools.intake import AiServiceRecord, Registration
    from tools.store.db import Database

intake_app = typer.Typer(
    help="The AI service register: who runs which feature with which models, and what it should cost.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(intake_app, name="intake")


def record_registration(
    db: Database, config: FinOpsConfig, reg: Registration, *, actor: str, channel: str, now: datetime
) -> tuple[AiServiceRecord, bool]:
    """Store the registration and audit it (``intake.registered``) in one step."""
    from approvals import audit
    from tools.intake import register_service

    record, created = register_service(db, config, reg, actor=actor, channel=channel, now=now)
    with db.session() as s:
        audit.append(
            s,
            event="intake.registered" if created else "intake.updated",
            actor=actor,
            at=now,
            channel=channel,
            resource=f"{record.feature}@{record.environment}",
            details={**record.as_dict(), "warnings": list(reg.warnings)},
        )
    return record, created


@intake_app.command("register")
def intake_register(
    ctx: typer.Context,
    feature: Annotated[str, typer.Option("--feature", help="The feature's name as in usage tags")],
    environment: Annotated[str, typer.Option("--environment", help="prod, staging, dev ... or * for all")],
    team: Annotated[str, typer.Option("--team", help="The owning team (a team of finops.yaml)")],
    owner: Annotated[str, typer.Option("--owner", help="The owner's Slack id (U...) or e-mail")],
    use_case: Annotated[str, typer.Option("--use-case", help="What the feature does with the models")],
    models: Annotated[str, typer.Option("--models", help="Comma-separated model names")],
    monthly_spend: Annotated[str, typer.Option("--monthly-spend", help="Estimated spend per month")],
    actor: Annotated[str, typer.Option("--as", help="Who registers it (Slack id)")] = "cli",
    fmt: FormatOpt = "table",
) -> None:
    """Register an AI service / feature (a re-registration updates it)."""
    _check_format(fmt)

    def go() -> None:
        from agent.output import dumps_json
        from tools.intake import validate

        c = _ctx(ctx)
        config = c.config()
        reg = validate(
            config,
            feature=feature,
            environment=environment,
            team=team,
            owner=owner,
            use_case=use_case,
            models=models,
            est_monthly_spend=monthly_spend,
        )
        record, created = record_registration(
            c.database(), config, reg, actor=actor, channel="cli", now=datetime.now(UTC)
        )
        if fmt == "json":
            print(dumps_json({**record.as_dict(), "created": created, "warnings": list(reg.warnings)}))
            return
        print(
            f"{'Registered' if created else 'Updated'} {record.feature} ({record.environment}) for team {record.team}: {record.id}"
        )
        for w in reg.warnings:
            typer.echo(f"warning: {w}", err=True)

    run_guarded(go)


@intake_app.command("list")
def intake_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option("--status", help="registered or retired")] = None,
    team: Annotated[str | None, typer.Option("--team")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """The register."""
    _check_format(fmt)

    def go() -> None:
        from agent.output import dumps_json, print_table, to_csv
        from tools.intake import list_services

        rows: list[dict[str, Any]] = [
            r.as_dict() for r in list_services(_ctx(ctx).database(), status=status, team=team)
        ]
        cols = [
            "feature",
            "environment",
            "team",
            "owner",
            "models",
            "est_monthly_spend",
            "status",
            "use_case",
        ]
        if fmt == "json":
            print(dumps_json(rows))
        elif fmt == "csv":
            print(to_csv(rows, [*cols, "id", "registered_by", "registered_at"]), end="")
        else:
            for r in rows:
                r["models"] = ", ".join(r["models"])
            print_table(rows, cols, title=f"AI services: {len(rows)}", money_columns=["est_monthly_spend"])

    run_guarded(go)


@intake_app.command("retire")
def intake_retire(
    ctx: typer.Context,
    feature: Annotated[str, typer.Argument(help="The feature")],
    environment: Annotated[str, typer.Option("--environment")],
    actor: Annotated[str, typer.Option("--as", help="Who retires it (Slack id)")] = "cli",
) -> None:
    """Mark a registered feature retired (its usage then counts as unregistered)."""

    def go() -> None:
        from approvals import audit
        from tools.intake import retire_service

        db = _ctx(ctx).database()
        now = datetime.now(UTC)
        record = retire_service(db, feature, environment, now=now)
        with db.session() as s:
            audit.append(
                s,
                event="intake.retired",
                actor=actor,
                at=now,
                channel="cli",
                resource=f"{record.feature}@{record.environment}",
                details=record.as_dict(),
            )
        print(f"Retired {record.feature} ({record.environment}).")

    run_guarded(go)
