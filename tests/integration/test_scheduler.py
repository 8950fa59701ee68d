"""The scheduler (``agent.scheduler``): one leader among replicas through the database lease (two schedulers
on PostgreSQL: only one runs a job; takeover when the holder stops renewing; a failed renewal pauses the
jobs), every run claimed once per (job, period) on SQLite and PostgreSQL (a second run does nothing, a failed
run is retried, a dead run is taken over, --force re-runs), the APScheduler job store (textual references,
schedules from finops.yaml, a due run kept across a change of leader), crontab weekdays and periods.

Every clock is injected; the jobs registered here are scheduled on January 1st only, so no test waits on
real cron. The two tests that go through APScheduler's own thread wait on an event the job sets."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from agent import scheduler as scheduler_module
from agent.jobs import JOBS, JobError, JobSpec, period_bounds, period_of
from agent.jobs_base import JobContext
from agent.scheduler import (
    JOB_TARGET,
    Lease,
    RunningScheduler,
    SchedulerError,
    claim_run,
    cron_trigger,
    effective_schedules,
    last_fire,
    run_job,
    start_scheduler,
)
from config.loader import parse_config
from config.model import FinOpsConfig
from config.settings import Settings
from tools.store.db import Database
from tools.store.models import JobLease, JobRun

T0 = datetime(2024, 9, 21, 8, 7, tzinfo=UTC)
NEVER_SOON = "0 0 1 1 *"  # January 1st, 00:00: never during a test
HERE = "tests.integration.test_scheduler"

CALLS: list[tuple[str, str]] = []  # (job, period) of every call of the jobs below
FAILING: set[str] = set()  # periods in which flaky_job fails
RAN = threading.Event()


def counting_job(ctx: JobContext) -> dict[str, Any]:
    CALLS.append(("count", ctx.period))
    return {"period": ctx.period, "now": ctx.now.isoformat()}


def flaky_job(ctx: JobContext) -> dict[str, Any]:
    CALLS.append(("flaky", ctx.period))
    if ctx.period in FAILING:
        raise RuntimeError("disk full")
    return {"ok": True}


def signalling_job(ctx: JobContext) -> dict[str, Any]:
    CALLS.append(("signal", ctx.period))
    RAN.set()
    return {"signalled": True}


REGISTRY: dict[str, JobSpec] = {
    "count": JobSpec("count", f"{HERE}:counting_job", "daily", NEVER_SOON, "counts its calls"),
    "flaky": JobSpec("flaky", f"{HERE}:flaky_job", "daily", NEVER_SOON, "fails when told"),
    "signal": JobSpec("signal", f"{HERE}:signalling_job", "daily", NEVER_SOON, "sets an event"),
}


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    CALLS.clear()
    FAILING.clear()
    RAN.clear()
    yield


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, lake_dir=tmp_path / "lake")


@pytest.fixture
def cfg() -> FinOpsConfig:
    return parse_config("operations: {lease_seconds: 60}")


@pytest.fixture
def replicas(settings: Settings, cfg: FinOpsConfig) -> Iterator[Callable[..., RunningScheduler]]:
    """Makes schedulers (not started: tests tick them) and shuts every one down afterwards."""
    made: list[RunningScheduler] = []

    def make(db: Database, holder: str, clock: Clock, config: FinOpsConfig = cfg) -> RunningScheduler:
        s = RunningScheduler(settings, db, config, holder=holder, clock=clock, slack=None, registry=REGISTRY)
        made.append(s)
        return s

    yield make
    for s in made:
        s.shutdown()


def runs(db: Database, job: str | None = None) -> list[JobRun]:
    with db.session() as s:
        stmt = select(JobRun).order_by(JobRun.id)
        if job:
            stmt = stmt.where(JobRun.job == job)
        return list(s.scalars(stmt))


# --- the lease -----------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_scheduler_two_replicas_on_postgres_one_runs_the_job_and_the_other_takes_over(
    postgres_url: str, replicas: Callable[..., RunningScheduler]
) -> None:
    db_a, db_b = Database(postgres_url), Database(postgres_url)  # two processes' engines
    db_a.migrate()
    try:
        clock = Clock()
        a, b = replicas(db_a, "replica-a", clock), replicas(db_b, "replica-b", clock)
        assert a.tick() is True
        assert b.tick() is False
        assert a.leader and not b.leader
        assert a.scheduler is not None and b.scheduler is None  # only the leader runs an APScheduler
        stored = a.scheduler.get_job("count")
        assert stored.func_ref == JOB_TARGET and stored.args == ("count",)

        # the job comes due on both replicas: only the holder runs it
        ran = a.run_scheduled("count")
        skipped = b.run_scheduled("count")
        assert ran.status == "succeeded" and skipped.status == "skipped"
        assert "does not hold the scheduler lease" in str(skipped.reason)
        assert CALLS == [("count", "2024-09-21")]
        assert [(r.job, r.period, r.status, r.holder) for r in runs(db_b)] == [
            ("count", "2024-09-21", "succeeded", "replica-a")
        ]

        # the holder stops renewing: before expiry nobody takes over; after it, b does
        clock.advance(30)
        assert b.tick() is False
        clock.advance(31)  # 61 s after a's last renewal (lease 60 s)
        assert b.tick() is True
        assert b.scheduler is not None and b.scheduler.get_job("count") is not None
        lease = Lease.read(db_a)
        assert lease is not None and lease.holder == "replica-b" and lease.acquired_at == clock.now

        # a comes back: its renewal fails, it stops running jobs
        clock.advance(1)
        assert a.tick() is False
        assert not a.leader and a.scheduler.state == 2  # APScheduler's STATE_PAUSED
        clock.now = T0 + timedelta(days=1)
        assert b.tick() is True  # (an expired lease of its own is simply taken again)
        assert a.run_scheduled("count").status == "skipped"
        assert b.run_scheduled("count").status == "succeeded"
        assert CALLS == [("count", "2024-09-21"), ("count", "2024-09-22")]
    finally:
        db_a.dispose()
        db_b.dispose()


def test_scheduler_renewals_keep_the_lease_and_shutdown_hands_it_over(
    sqlite_db: Database, replicas: Callable[..., RunningScheduler]
) -> None:
    clock = Clock()
    a, b = replicas(sqlite_db, "a", clock), replicas(sqlite_db, "b", clock)
    assert a.renew_every == 20
    for step in (0, 20, 20, 30):  # renewals within the lease
        clock.advance(step)
        assert a.tick() is True
    clock.advance(55)  # 55 s after the last renewal: still a's
    assert b.tick() is False
    a.shutdown()  # releases the lease: b takes it at once, without waiting for expiry
    assert b.tick() is True
    state = Lease.read(sqlite_db)
    assert state is not None and state.holder == "b"


def test_scheduler_a_renewal_the_database_refuses_pauses_the_jobs(
    sqlite_db: Database, replicas: Callable[..., RunningScheduler], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    a = replicas(sqlite_db, "a", clock)
    assert a.tick() is True and a.scheduler.state == 1  # STATE_RUNNING

    def unreachable(now: datetime) -> bool:
        raise ConnectionError("database unreachable")

    monkeypatch.setattr(a.lease, "acquire", unreachable)
    assert a.tick(clock.advance(20)) is False
    assert not a.leader and a.scheduler.state == 2  # paused
    monkeypatch.undo()
    assert a.tick(clock.advance(20)) is True  # its lease was still its own
    assert a.leader and a.scheduler.state == 1


def test_scheduler_lease_is_one_row_taken_by_one_conditional_statement(sqlite_db: Database) -> None:
    a, b = Lease(sqlite_db, "a", 60), Lease(sqlite_db, "b", 60)
    assert a.acquire(T0) and not b.acquire(T0) and a.acquire(T0 + timedelta(seconds=10))
    with sqlite_db.session() as s:
        rows = list(s.scalars(select(JobLease)))
    assert [(r.holder, r.acquired_at, r.expires_at) for r in rows] == [
        ("a", T0, T0 + timedelta(seconds=70))  # renewed, acquisition time kept
    ]
    assert b.acquire(T0 + timedelta(seconds=70))  # exactly at expiry
    assert not a.held(T0 + timedelta(seconds=70)) and b.held(T0 + timedelta(seconds=70))
    assert not a.release(T0 + timedelta(seconds=71))  # not a's to release


# --- once per (job, period) -------------------------------------------------------------------------------------


def test_scheduler_job_runs_once_per_period_retries_failures_and_takes_over_dead_runs(
    db: Database, settings: Settings, cfg: FinOpsConfig
) -> None:
    from agent.scheduler import JobRunner

    clock = Clock()
    runner = JobRunner(db, cfg, settings, holder="r1", clock=clock, slack=None, registry=REGISTRY)

    first, second = runner.run("count"), runner.run("count")
    assert (first.status, first.attempt, first.period) == ("succeeded", 1, "2024-09-21")
    assert second.status == "skipped" and "already succeeded for 2024-09-21" in str(second.reason)
    assert CALLS == [("count", "2024-09-21")]
    forced = runner.run("count", force=True)
    assert (forced.status, forced.attempt) == ("succeeded", 2)
    assert "forced re-run" in str(forced.note)

    # a failed run is recorded with its error and retried by the next attempt, once
    FAILING.add("2024-09-21")
    failed = runner.run("flaky")
    assert failed.status == "failed" and failed.error == "RuntimeError: disk full"
    (row,) = runs(db, "flaky")
    assert row.status == "failed" and '"error": "RuntimeError: disk full"' in row.detail
    FAILING.clear()
    retried = runner.run("flaky")
    assert (retried.status, retried.attempt) == ("succeeded", 2)
    assert "retry of a failed run" in str(retried.note)
    assert runner.run("flaky").status == "skipped"

    # a run left 'running' by a dead process is taken over only after the job's timeout (1 h)
    with db.session() as s:
        s.add(JobRun(job="count", period="2024-09-22", status="running", holder="dead", started_at=T0))
    clock.now = T0 + timedelta(minutes=10)
    busy = runner.run("count", period="2024-09-22")
    assert busy.status == "skipped" and "running on dead" in str(busy.reason)
    clock.now = T0 + timedelta(minutes=61)
    taken = runner.run("count", period="2024-09-22")
    assert (taken.status, taken.attempt) == ("succeeded", 2)
    assert "took over a run left running by dead" in str(taken.note)
    assert [(r.period, r.status, r.attempts, r.holder) for r in runs(db, "count")] == [
        ("2024-09-21", "succeeded", 2, "r1"),
        ("2024-09-22", "succeeded", 2, "r1"),
    ]

    with pytest.raises(JobError, match="no job named 'nope'; the jobs are: count, flaky, signal"):
        runner.run("nope")
    with pytest.raises(JobError, match="not a daily period; write it like '2024-09-21'"):
        runner.run("count", period="2024-W38")


def test_scheduler_failed_scheduled_run_is_retried_later_within_its_period(
    sqlite_db: Database, replicas: Callable[..., RunningScheduler]
) -> None:
    clock = Clock()
    a = replicas(sqlite_db, "a", clock)
    assert a.tick()
    FAILING.add("2024-09-21")
    delays = []
    for attempt in (1, 2):
        failed = a.run_scheduled("flaky")
        assert (failed.status, failed.attempt) == ("failed", attempt)
        assert f"(attempt {attempt + 1})" in str(failed.note)
        retry = a.scheduler.get_job("flaky-retry")
        assert (retry.func_ref, retry.args, type(retry.trigger).__name__) == (
            JOB_TARGET,
            ("flaky",),
            "DateTrigger",
        )
        delays.append(round((retry.next_run_time - datetime.now(UTC)).total_seconds() / 60))
    assert delays == [5, 30]
    assert a.run_scheduled("flaky").attempt == 3  # the last retry fails too: it waits for its next run
    assert a.scheduler.get_job("flaky-retry") is None
    # a retry that would fall in the next period is not scheduled
    clock.now = datetime(2024, 9, 22, 23, 58, tzinfo=UTC)
    assert a.tick()
    FAILING.add("2024-09-22")
    assert a.run_scheduled("flaky").status == "failed" and a.scheduler.get_job("flaky-retry") is None


def test_scheduler_concurrent_claims_of_one_period_have_one_winner(db: Database) -> None:
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def claim(i: int) -> None:
        barrier.wait()
        results.append(claim_run(db, "count", "2024-09-21", f"w{i}", T0, timeout=timedelta(hours=1)).won)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 5 + [True]
    assert len(runs(db)) == 1


# --- APScheduler ------------------------------------------------------------------------------------------------


def test_scheduler_apscheduler_runs_the_stored_job_through_run_job(
    sqlite_db: Database, settings: Settings, cfg: FinOpsConfig
) -> None:
    running = start_scheduler(
        settings, sqlite_db, cfg, holder="solo", slack=None, registry=REGISTRY, background=False
    )
    try:
        assert running.leader
        job = running.scheduler.get_job("signal")
        assert (job.func_ref, job.args, job.id) == (JOB_TARGET, ("signal",), "signal")
        running.scheduler.modify_job("signal", next_run_time=datetime.now(UTC))  # due now
        assert RAN.wait(10), "APScheduler did not run the job"
    finally:
        running.shutdown()  # waits for the running job to finish and record itself
    (row,) = runs(sqlite_db, "signal")
    assert row.status == "succeeded" and row.holder == "solo"
    with sqlite_db.session() as s:
        stored = sorted(s.execute(text("SELECT id FROM apscheduler_jobs")).scalars())
    assert stored == ["count", "flaky", "signal"]  # the store persists beyond the process
    released = Lease.read(sqlite_db)
    assert released is not None and not released.live(datetime.now(UTC))  # handed over at shutdown


def test_scheduler_new_leader_keeps_a_due_run_and_applies_schedule_changes(
    sqlite_db: Database, replicas: Callable[..., RunningScheduler]
) -> None:
    clock = Clock(datetime.now(UTC))
    a = replicas(sqlite_db, "a", clock)
    assert a.tick()
    a.scheduler.pause()
    a.scheduler.modify_job("signal", next_run_time=datetime.now(UTC) - timedelta(minutes=1))
    a.shutdown()  # the leader goes away with the run due

    changed = parse_config('operations: {schedules: {count: "off", flaky: "15 3 * * *"}}')
    b = replicas(sqlite_db, "b", clock, changed)
    assert b.tick()
    assert RAN.wait(10), "the run that came due while nobody led was lost"
    assert b.scheduler.get_job("count") is None  # turned off
    assert str(b.scheduler.get_job("flaky").trigger) == str(cron_trigger("15 3 * * *"))


def test_scheduler_run_job_without_a_scheduler_in_the_process_does_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert scheduler_module._ACTIVE == []
    with caplog.at_level("WARNING", logger="finops.scheduler"):
        run_job("count")
    assert "no scheduler runs in this process" in caplog.text
    assert CALLS == []


# --- schedules and periods ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "first"),
    [
        ("0 8 * * 1", datetime(2024, 9, 23, 8, tzinfo=UTC)),  # Monday, as in crontab (APScheduler 3: Tuesday)
        ("0 8 * * 0", datetime(2024, 9, 22, 8, tzinfo=UTC)),  # Sunday
        ("0 8 * * 7", datetime(2024, 9, 22, 8, tzinfo=UTC)),  # Sunday too
        ("0 8 * * 1-5", datetime(2024, 9, 23, 8, tzinfo=UTC)),  # next weekday after Saturday 21st
        ("0 9 * * fri-sun", datetime(2024, 9, 21, 9, tzinfo=UTC)),  # Saturday 21st, later today
        ("0 10 1 1,4,7,10 *", datetime(2024, 10, 1, 10, tzinfo=UTC)),
        ("*/15 * * * *", datetime(2024, 9, 21, 8, 15, tzinfo=UTC)),
    ],
)
def test_scheduler_cron_reads_weekdays_as_crontab_does(expr: str, first: datetime) -> None:
    assert cron_trigger(expr).get_next_fire_time(None, T0) == first


def test_scheduler_schedules_from_config_override_defaults_and_errors_name_the_key() -> None:
    config = parse_config('operations: {schedules: {scan: "30 7 * * *", weekly-digest: "off"}}')
    schedules = effective_schedules(config)
    assert set(schedules) == set(JOBS)
    assert schedules["scan"] == "30 7 * * *" and schedules["weekly-digest"] is None
    assert schedules["notify"] == JOBS["notify"].cron
    with pytest.raises(SchedulerError, match=r"unknown job\(s\) 'scna'; the jobs are: ingest, "):
        effective_schedules(parse_config('operations: {schedules: {scna: "0 6 * * *"}}'))
    with pytest.raises(SchedulerError, match=r"operations\.schedules\.scan: '61 6 \* \* \*' is not a cron"):
        effective_schedules(parse_config('operations: {schedules: {scan: "61 6 * * *"}}'))
    with pytest.raises(SchedulerError, match="1 field"):
        cron_trigger("daily")


def test_scheduler_periods_by_cadence() -> None:
    now = datetime(2024, 9, 21, 8, 44, tzinfo=UTC)
    assert [
        period_of(c, now) for c in ("every-15-min", "hourly", "daily", "weekly", "monthly", "quarterly")
    ] == [
        "2024-09-21T08:30",
        "2024-09-21T08",
        "2024-09-21",
        "2024-W38",
        "2024-09",
        "2024-Q3",
    ]
    assert period_bounds("weekly", "2024-W39") == (
        datetime(2024, 9, 23, tzinfo=UTC),
        datetime(2024, 9, 30, tzinfo=UTC),
    )
    assert period_bounds("quarterly", "2024-Q4")[1] == datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(JobError, match="not a monthly period"):
        period_bounds("monthly", "2024-13")
    # a run delayed past midnight still counts for the day it was scheduled in
    late = datetime(2024, 9, 22, 0, 30, tzinfo=UTC)
    fired = last_fire("0 23 * * *", late, timedelta(hours=6))
    assert fired == datetime(2024, 9, 21, 23, tzinfo=UTC) and period_of("daily", fired) == "2024-09-21"
