"""What every `finops` command shares: the global options' context, output formats, error handling."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from config.model import FinOpsConfig
    from tools.store.db import Database
    from tools.store.lake import Lake

FORMATS = ("table", "json", "csv")


@dataclass
class Context:
    db_url: str | None
    config_path: Path | None
    as_of: date | None

    def settings(self) -> Any:
        from config.settings import Settings

        s = Settings()
        updates: dict[str, Any] = {}
        if self.db_url:
            updates["database_url"] = self.db_url
        if self.config_path:
            updates["config"] = self.config_path
        if self.as_of:
            updates["as_of"] = self.as_of
        return s.model_copy(update=updates)

    def config(self) -> FinOpsConfig:
        from config.loader import load_config

        return load_config(self.settings().resolved_config_path())

    def database(self, migrate: bool = True) -> Database:
        from tools.store.db import Database

        db = Database(self.settings().resolved_database_url())
        if migrate:
            db.migrate()
        return db

    def lake(self) -> Lake:
        from tools.store.lake import Lake

        return Lake(self.settings().resolved_lake_dir())

    def today(self) -> date:
        as_of: date | None = self.settings().as_of
        return as_of or datetime.now(UTC).date()


def _ctx(ctx: typer.Context) -> Context:
    obj = ctx.find_root().obj
    assert isinstance(obj, Context)
    return obj


def _parse_date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date; use YYYY-MM-DD", param_hint=option) from None


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def run_guarded(fn: Any) -> Any:
    """Turn the product's errors into one clear line on stderr and exit code 2."""
    from config.loader import ConfigError
    from tools.errors import FinOpsError

    try:
        return fn()
    except (FinOpsError, ConfigError) as exc:
        _fail(str(exc))


FormatOpt = Annotated[str, typer.Option("--format", help="table | json | csv")]


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r}; choose table, json or csv", param_hint="--format")


def _now(c: Context) -> datetime:
    """The scan clock: --as-of (start of that day, UTC) or now."""
    as_of: date | None = c.settings().as_of
    return datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC) if as_of else datetime.now(UTC)
