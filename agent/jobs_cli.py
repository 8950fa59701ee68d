"""`finops jobs list` and `finops jobs run NAME`: the scheduled jobs for operators.

``list`` shows each job's schedule (finops.yaml's ``operations.schedules`` over the defaults), its next run,
its last run and whether its reference imports, and who holds the scheduler lease. ``run`` runs one job now
through the same (job, period) claim as the scheduler, so it never repeats a period that succeeded unless
``--force`` says so.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent.cli_context import _ctx, _now, run_guarded

if TYPE_CHECKING:
    from agent.cli_context import Context
    from agent.scheduler import RunResult

LIST_FORMATS = ("table", "json")


def register(app: typer.Typer) -> None:
    jobs_app = typer.Typer(
        help="Scheduled jobs (run by `finops serve`): list them, or run one now.", no_args_is_help=True
    )
    jobs_app.command("list")(list_jobs)
    jobs_app.command("run")(run_job)
    app.add_typer(jobs_app, name="jobs")


def _check(fmt: str) -> None:
    if fmt not in LIST_FORMATS:
        raise typer.BadParameter(f"{fmt!r}; choose table or json", param_hint="--format")


def _clock_now(c: Context) -> datetime:
    """--as-of (start of that day, UTC) or the real time."""
    return _now(c) if c.settings().as_of else datetime.now(UTC)


def _short(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M") if when else ""


def list_jobs(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
) -> None:
    """Every scheduled job: schedule (UTC), next run, last run, and who holds the scheduler lease."""
    _check(fmt)

    def go() -> None:
        from agent.jobs import JOBS, JobUnavailable
        from agent.scheduler import Lease, effective_schedules, last_runs, next_fire

        c = _ctx(ctx)
        config, db = c.config(), c.database()
        now = _clock_now(c)
        schedules = effective_schedules(config)
        runs = last_runs(db, list(JOBS))
        lease = Lease.read(db)
        rows: list[dict[str, Any]] = []
        for name, spec in JOBS.items():
            cron = schedules[name]
            try:
                spec.resolve()
                available, problem = True, None
            except JobUnavailable as exc:
                available, problem = False, str(exc)
            last = runs.get(name)
            rows.append(
                {
                    "name": name,
                    "schedule": cron or "off",
                    "configured": name in config.operations.schedules,
                    "cadence": spec.cadence,
                    "next_run": next_fire(cron, now),
                    "last_status": last.status if last else None,
                    "last_period": last.period if last else None,
                    "last_started": last.started_at if last else None,
                    "last_error": (last.detail.get("error") if last and last.status == "failed" else None),
                    "available": available,
                    "unavailable_because": problem,
                    "reference": spec.ref,
                    "description": spec.description,
                }
            )
        live = lease is not None and lease.live(now)
        lease_info: dict[str, Any] = {
            "holder": lease.holder if live and lease else None,
            "expires_at": lease.expires_at if live and lease else None,
            "free": not live,
            "lease_seconds": config.operations.lease_seconds,
        }
        if fmt == "json":
            from agent.output import dumps_json

            print(dumps_json({"as_of": now, "jobs": rows, "lease": lease_info}))
            return
        _print_table(rows, lease_info)

    run_guarded(go)


def _print_table(rows: list[dict[str, Any]], lease: dict[str, Any]) -> None:
    from agent.output import print_table

    table = [
        {
            "job": r["name"],
            "schedule (UTC)": r["schedule"] + (" (finops.yaml)" if r["configured"] else ""),
            "next run": _short(r["next_run"]) if r["available"] else "unavailable",
            "last run": (f"{r['last_status']} {r['last_period']}" if r["last_status"] else "never"),
            "what": r["description"],
        }
        for r in rows
    ]
    print_table(table, ["job", "schedule (UTC)", "next run", "last run", "what"], title="Scheduled jobs")
    for r in rows:
        if not r["available"]:
            print(f"unavailable: {r['unavailable_because']}")
        if r["last_error"]:
            print(f"{r['name']} {r['last_period']} failed: {str(r['last_error'])[:300]}")
    if lease["free"]:
        print(
            "scheduler lease: free — a `finops serve` started now would take it and run the jobs "
            f"(lease {lease['lease_seconds']} s)"
        )
    else:
        print(
            f"scheduler lease: held by {lease['holder']} until {_short(lease['expires_at'])} UTC — a "
            "`finops serve` started now would wait (it takes over if the holder stops renewing)"
        )


def run_job(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The job (see `finops jobs list`)")],
    period: Annotated[
        str | None,
        typer.Option(
            "--period",
            help="The period to run it for, in its cadence's form: 2024-09-21 (daily), 2024-09-21T08 "
            "(hourly), 2024-09-21T08:15 (every 15 min), 2024-W38 (weekly), 2024-09 (monthly), 2024-Q3 "
            "(quarterly); default: the current one",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Run it again even if that period already succeeded")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
) -> None:
    """Run one job now, through the same once-per-period claim as the scheduler, and print its summary."""
    _check(fmt)

    def go() -> RunResult:
        from agent.jobs import get_spec, period_bounds
        from agent.scheduler import JobRunner, default_holder, effective_schedules, last_fire

        c = _ctx(ctx)
        spec = get_spec(name)
        settings, config, db = c.settings(), c.config(), c.database()
        now = _clock_now(c)
        if period is not None:
            start, end = period_bounds(spec.cadence, period)
            if not start <= now < end:
                # run it as of its scheduled time in that period (else the period's start)
                cron = effective_schedules(config)[name] or spec.cron
                fired = last_fire(cron, end - timedelta(microseconds=1), end - start)
                now = fired if fired is not None and fired >= start else start
        runner = JobRunner(db, config, settings, holder=default_holder("cli"))
        return runner.run(name, now=now, period=period, force=force)

    result: RunResult = run_guarded(go)
    _print_result(result, fmt)
    if result.status == "failed":
        raise typer.Exit(1)


def _print_result(result: RunResult, fmt: str) -> None:
    from agent.output import dumps_json

    if fmt == "json":
        print(dumps_json(result.as_dict()))
        return
    if result.status == "skipped":
        print(f"{result.job} {result.period}: not run — {result.reason}")
        return
    if result.note:
        print(f"note: {result.note}")
    took = f" in {result.seconds:.1f} s" if result.seconds is not None else ""
    print(f"{result.job} {result.period}: {result.status}{took} (attempt {result.attempt})")
    if result.status == "failed":
        print(f"error: {result.error}")
        print("The run is recorded as failed; run the same command again to retry it.")
    shown = {k: v for k, v in result.summary.items() if k not in ("error", "traceback", "note")}
    if shown:
        print(dumps_json(shown))
