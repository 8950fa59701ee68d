"""The scheduler of ``finops serve``: APScheduler 3 with a persistent job store, one leader among the
replicas, and every job run claimed once per (job, period).

- **Jobs** (``agent.jobs.JOBS``) are stored in APScheduler's ``SQLAlchemyJobStore`` on the app database (its
  own ``apscheduler_jobs`` table), by textual reference: the target is ``agent.scheduler:run_job`` with the
  job's name as its only argument, the id is the job's name, ``replace_existing=True``. Schedules are the
  registry's defaults overridden by ``operations.schedules`` (a 5-field cron in UTC, crontab's weekday
  numbers, or ``off``). A job whose schedule did not change keeps the next run time the store holds, so a
  run that came due while no replica held the lease still happens (within its misfire grace time).
- **One leader.** APScheduler 3 job stores must not be shared by several running schedulers, so only the
  replica holding the database lease (``job_leases`` row ``scheduler``) runs an APScheduler at all. The
  lease is taken with one conditional UPDATE (when it is ours or expired) or one INSERT that does nothing
  on conflict (when there is no row) — on SQLite and PostgreSQL alike; it lasts ``operations.lease_seconds``
  and is renewed every third of that. A replica whose renewal fails (another took the lease after it
  expired, or the database cannot be reached) pauses its scheduler at once; the others try to take the lease
  at every renewal tick, so a dead holder is replaced within ``lease_seconds`` plus a tick. ``shutdown``
  releases the lease for an immediate handover. The job store hands due runs only to the lease holder's
  scheduler, and every run re-checks the lease in the database first, so a replica that lost the lease and
  has not noticed yet neither runs a job nor consumes a due run the new leader would run.
  (No PostgreSQL advisory lock: it is tied to a connection, so a hung process that keeps its connection
  would keep it forever; the lease expires.)
- **Once per (job, period).** A run is claimed by inserting its ``job_runs`` row (the unique (job, period)
  decides between racers). A failed run may be claimed again (attempts + 1); a succeeded one never is,
  except by ``finops jobs run NAME --force``; a run still ``running`` after the job's timeout is taken to be
  dead and may be taken over. The period is the one of the schedule's last fire time (a run delayed past a
  period boundary still counts for the period it was scheduled in), else of ``now``. A failed scheduled run
  is retried after 5 and 30 minutes while that stays within its period (a stored one-off job
  ``<name>-retry``).

Replicas' clocks must agree to within a small part of ``lease_seconds`` (NTP). Tests inject the clock.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import case, literal, or_, select, update
from sqlalchemy.orm import Session

from agent.jobs import JOBS, JobError, JobSpec, get_spec, period_bounds, period_of
from agent.jobs_base import JobContext
from config.model import FinOpsConfig
from config.settings import Settings
from tools.errors import FinOpsError
from tools.store.db import Database
from tools.store.models import JobLease, JobRun, UTCDateTime

if TYPE_CHECKING:
    from tools.store.lake import Lake

log = logging.getLogger("finops.scheduler")

LEASE_NAME = "scheduler"
#: what APScheduler stores as every job's target (a textual reference), with the job's name as argument
JOB_TARGET = "agent.scheduler:run_job"
#: how late a scheduled run may still start, by cadence (a missed run is coalesced into one)
MISFIRE_GRACE: dict[str, timedelta] = {
    "every-15-min": timedelta(minutes=10),
    "hourly": timedelta(minutes=30),
    "daily": timedelta(hours=6),
    "weekly": timedelta(days=1),
    "monthly": timedelta(days=1),
    "quarterly": timedelta(days=1),
}
#: a failed scheduled run is retried after these delays (attempt 2, attempt 3) when the retry still falls in
#: the run's period (the misfire grace time of its cadence); then it waits for its next scheduled run
RETRY_DELAYS = (timedelta(minutes=5), timedelta(minutes=30))
RETRY_SUFFIX = "-retry"
#: threads running jobs at the same time (each job runs at most once at a time)
WORKERS = 4
#: longest error text / traceback kept with a failed run
ERROR_MAX = 4000

Clock = Callable[[], datetime]
Status = Literal["succeeded", "failed", "skipped"]


class SchedulerError(FinOpsError):
    """The schedules in finops.yaml cannot be used, or the scheduler cannot do what was asked."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def default_holder(prefix: str = "serve") -> str:
    """``serve:<host>:<pid>:<random>``: unique per process, readable in `finops jobs list`."""
    return f"{prefix}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


# --- schedules ---------------------------------------------------------------------------------------------

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbering: 0 (and 7) = Sunday
_DAY_NAMES = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")


def _day(text: str) -> int:
    text = text.strip()
    if text.isdigit():
        n = int(text)
        if 0 <= n <= 7:
            return n % 7
        raise ValueError(f"weekday {n} is out of range 0-7")
    for i, name in enumerate(_DAY_NAMES):
        if text in (name[:3], name):
            return i
    raise ValueError(f"{text!r} is not a weekday (0-7, or sun, mon ... sat)")


def crontab_weekdays(field_text: str) -> str:
    """A crontab day-of-week field (0 or 7 = Sunday) as APScheduler 3's (names, Monday first): APScheduler 3
    reads ``0`` as Monday, so numbers are never passed to it as they are."""
    text = field_text.strip().lower()
    if text in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = int(step_text) if slash else 1
        if step < 1:
            raise ValueError(f"step {step_text!r} must be at least 1")
        if base == "*":
            lo, hi = 0, 6
        elif "-" in base:
            a, b = base.split("-", 1)
            lo, hi = _day(a), _day(b)
            if b.strip() == "7":
                hi = 7
            if hi < lo:  # a range over the weekend: fri-mon
                hi += 7
        else:
            lo = _day(base)
            hi = 6 if slash else lo
        days.update(d % 7 for d in range(lo, hi + 1, step))
    if not days:
        raise ValueError(f"no weekday in {field_text!r}")
    return ",".join(_DAYS[d] for d in sorted(days, key=lambda d: (d + 6) % 7))


def _aps(module: str, name: str) -> Any:
    """An APScheduler class (APScheduler 3 ships no type information)."""
    return getattr(importlib.import_module(f"apscheduler.{module}"), name)


def cron_trigger(expr: str, *, where: str = "") -> Any:
    """A UTC ``CronTrigger`` from a 5-field crontab expression (minute hour day month weekday)."""
    CronTrigger = _aps("triggers.cron", "CronTrigger")

    fields = expr.split()
    try:
        if len(fields) != 5:
            raise ValueError(f"{len(fields)} field(s), expected 5")
        minute, hour, day, month, weekday = fields
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=crontab_weekdays(weekday),
            timezone=UTC,
        )
    except ValueError as exc:
        place = f"{where}: " if where else ""
        raise SchedulerError(
            f"{place}{expr!r} is not a cron expression ({exc}); write 5 fields in UTC — minute hour "
            "day-of-month month day-of-week (0 or 7 = Sunday), e.g. '30 6 * * *' — or 'off'"
        ) from None


def effective_schedules(
    config: FinOpsConfig, registry: Mapping[str, JobSpec] | None = None
) -> dict[str, str | None]:
    """Job name -> the cron it runs on (``operations.schedules`` over the defaults), None when ``off``.
    Unknown job names and bad expressions are errors naming the key."""
    jobs = JOBS if registry is None else registry
    overrides = config.operations.schedules
    unknown = sorted(set(overrides) - set(jobs))
    if unknown:
        raise SchedulerError(
            f"operations.schedules in finops.yaml names unknown job(s) {', '.join(map(repr, unknown))}; "
            f"the jobs are: {', '.join(jobs)}"
        )
    out: dict[str, str | None] = {}
    for name, spec in jobs.items():
        value = overrides.get(name, spec.cron).strip()
        if value.lower() == "off":
            out[name] = None
            continue
        cron_trigger(value, where=f"operations.schedules.{name}")
        out[name] = value
    return out


def next_fire(cron: str | None, now: datetime) -> datetime | None:
    if cron is None:
        return None
    fire: datetime | None = cron_trigger(cron).get_next_fire_time(None, now)
    return fire


def last_fire(cron: str | None, now: datetime, window: timedelta) -> datetime | None:
    """The latest time in ``[now - window, now]`` the schedule fired at, if any."""
    if cron is None:
        return None
    trigger = cron_trigger(cron)
    found: datetime | None = None
    fire: datetime | None = trigger.get_next_fire_time(None, now - window)
    while fire is not None and fire <= now:
        found = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return found


# --- the lease ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaseState:
    name: str
    holder: str
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime

    def live(self, now: datetime) -> bool:
        return self.expires_at > now

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "holder": self.holder,
            "acquired_at": self.acquired_at.isoformat(timespec="seconds"),
            "renewed_at": self.renewed_at.isoformat(timespec="seconds"),
            "expires_at": self.expires_at.isoformat(timespec="seconds"),
        }


def _insert_ignore(session: Session, model: Any, values: Mapping[str, Any], returning: Any) -> Any:
    """INSERT unless a unique key already holds the row: the returned row, or None when nothing went in."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(model).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(model).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - the product runs on SQLite and PostgreSQL
        from sqlalchemy.exc import IntegrityError

        try:
            with session.begin_nested():
                session.execute(model.__table__.insert().values(**values))
        except IntegrityError:
            return None
        return session.execute(select(returning).filter_by(**values)).first()
    return session.execute(stmt.returning(returning)).first()


class Lease:
    """The scheduler lease of ``holder``: who may run the scheduled jobs, until ``expires_at``."""

    def __init__(self, db: Database, holder: str, seconds: int, name: str = LEASE_NAME) -> None:
        if seconds < 1:
            raise ValueError("lease seconds must be at least 1")
        self.db = db
        self.holder = holder
        self.ttl = timedelta(seconds=seconds)
        self.name = name

    def acquire(self, now: datetime) -> bool:
        """Take the lease, or renew it: True when this holder has it until ``now + ttl``. One conditional
        UPDATE (ours, or expired), else one INSERT that does nothing when the row exists."""
        expires = now + self.ttl
        with self.db.session() as s:
            taken = s.execute(
                update(JobLease)
                .where(
                    JobLease.name == self.name,
                    or_(JobLease.holder == self.holder, JobLease.expires_at <= now),
                )
                .values(
                    acquired_at=case(
                        (JobLease.holder == self.holder, JobLease.acquired_at),
                        else_=literal(now, UTCDateTime()),
                    ),
                    holder=self.holder,
                    renewed_at=now,
                    expires_at=expires,
                )
                .execution_options(synchronize_session=False)
            )
            if getattr(taken, "rowcount", 0) == 1:
                return True
            values = {
                "name": self.name,
                "holder": self.holder,
                "acquired_at": now,
                "renewed_at": now,
                "expires_at": expires,
            }
            return _insert_ignore(s, JobLease, values, JobLease.name) is not None

    def held(self, now: datetime) -> bool:
        """Whether the database says this holder has the lease at ``now``."""
        state = self.read(self.db, self.name)
        return state is not None and state.holder == self.holder and state.live(now)

    def release(self, now: datetime) -> bool:
        """Let the lease go now (if this holder has it), so another replica takes it at its next tick."""
        with self.db.session() as s:
            done = s.execute(
                update(JobLease)
                .where(JobLease.name == self.name, JobLease.holder == self.holder, JobLease.expires_at > now)
                .values(expires_at=now)
                .execution_options(synchronize_session=False)
            )
            return getattr(done, "rowcount", 0) == 1

    @staticmethod
    def read(db: Database, name: str = LEASE_NAME) -> LeaseState | None:
        with db.session() as s:
            row = s.get(JobLease, name)
            if row is None:
                return None
            return LeaseState(row.name, row.holder, row.acquired_at, row.renewed_at, row.expires_at)


# --- job runs ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunState:
    """A ``job_runs`` row as read."""

    id: int
    job: str
    period: str
    status: str
    holder: str
    attempts: int
    started_at: datetime
    finished_at: datetime | None
    detail: dict[str, Any]

    @classmethod
    def of(cls, row: JobRun) -> RunState:
        try:
            detail = json.loads(row.detail or "{}")
        except ValueError:
            detail = {"raw": row.detail}
        return cls(
            row.id,
            row.job,
            row.period,
            row.status,
            row.holder,
            row.attempts,
            row.started_at,
            row.finished_at,
            detail if isinstance(detail, dict) else {"value": detail},
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "period": self.period,
            "status": self.status,
            "holder": self.holder,
            "attempts": self.attempts,
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "finished_at": self.finished_at.isoformat(timespec="seconds") if self.finished_at else None,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Claim:
    won: bool
    run_id: int | None = None
    attempt: int = 0
    previous: RunState | None = None  # the row before this claim (a retry, a takeover, a forced re-run)
    reason: str | None = None  # why not won


def claim_run(
    db: Database,
    job: str,
    period: str,
    holder: str,
    now: datetime,
    *,
    timeout: timedelta,
    force: bool = False,
) -> Claim:
    """Claim the run of ``job`` for ``period``: insert its row (the unique (job, period) decides), else take
    the row over when it failed, when it is still ``running`` after ``timeout`` (its holder died), or — with
    ``force`` — when it succeeded. The takeover is one UPDATE conditional on the status and attempt read."""
    values = {
        "job": job,
        "period": period,
        "status": "running",
        "holder": holder,
        "attempts": 1,
        "started_at": now,
        "finished_at": None,
        "detail": "{}",
    }
    with db.session() as s:
        inserted = _insert_ignore(s, JobRun, values, JobRun.id)
        if inserted is not None:
            return Claim(True, int(inserted[0]), 1)
        row = s.scalars(select(JobRun).where(JobRun.job == job, JobRun.period == period)).one()
        prev = RunState.of(row)
    if prev.status == "succeeded" and not force:
        when = prev.finished_at.isoformat(timespec="seconds") if prev.finished_at else "?"
        return Claim(
            False,
            previous=prev,
            reason=f"{job} already succeeded for {period} at {when} (attempt {prev.attempts}); "
            "nothing to do (`finops jobs run` with --force runs it again)",
        )
    if prev.status == "running" and prev.started_at > now - timeout:
        return Claim(
            False,
            previous=prev,
            reason=f"{job} for {period} is running on {prev.holder} since "
            f"{prev.started_at.isoformat(timespec='seconds')}; it is taken over only if still running "
            f"after {_duration(timeout)}",
        )
    with db.session() as s:
        done = s.execute(
            update(JobRun)
            .where(JobRun.id == prev.id, JobRun.status == prev.status, JobRun.attempts == prev.attempts)
            .values(
                status="running",
                holder=holder,
                attempts=prev.attempts + 1,
                started_at=now,
                finished_at=None,
                detail="{}",
            )
            .execution_options(synchronize_session=False)
        )
        won = getattr(done, "rowcount", 0) == 1
    if not won:
        return Claim(
            False, previous=prev, reason=f"{job} for {period} was claimed by another process just now"
        )
    return Claim(True, prev.id, prev.attempts + 1, previous=prev)


def _duration(d: timedelta) -> str:
    minutes = int(d.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _finish(
    db: Database, claim: Claim, holder: str, status: str, now: datetime, detail: Mapping[str, Any]
) -> bool:
    from agent.output import dumps_json

    with db.session() as s:
        done = s.execute(
            update(JobRun)
            .where(
                JobRun.id == claim.run_id,
                JobRun.holder == holder,
                JobRun.attempts == claim.attempt,
                JobRun.status == "running",
            )
            .values(status=status, finished_at=now, detail=dumps_json(detail, indent=None))
            .execution_options(synchronize_session=False)
        )
        return getattr(done, "rowcount", 0) == 1


def last_runs(db: Database, jobs: list[str]) -> dict[str, RunState]:
    """The latest run of each job (by start time)."""
    out: dict[str, RunState] = {}
    with db.session() as s:
        for job in jobs:
            row = s.scalars(
                select(JobRun).where(JobRun.job == job).order_by(JobRun.started_at.desc(), JobRun.id.desc())
            ).first()
            if row is not None:
                out[job] = RunState.of(row)
    return out


@dataclass
class RunResult:
    """What one call of ``JobRunner.run`` did."""

    job: str
    period: str
    status: Status
    holder: str
    attempt: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    reason: str | None = None  # why skipped
    note: str | None = None  # a retry, a takeover, a forced re-run
    started_at: datetime | None = None
    finished_at: datetime | None = None
    seconds: float | None = None  # how long the job ran

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "period": self.period,
            "status": self.status,
            "holder": self.holder,
            "attempt": self.attempt,
            "summary": self.summary,
            "error": self.error,
            "reason": self.reason,
            "note": self.note,
            "started_at": self.started_at.isoformat(timespec="seconds") if self.started_at else None,
            "finished_at": self.finished_at.isoformat(timespec="seconds") if self.finished_at else None,
            "seconds": self.seconds,
        }


_AUTO: Any = object()


class JobRunner:
    """Runs jobs once per (job, period) with a ``JobContext`` built from the process's settings.

    ``slack``: a ``WebClient``, None for no Slack, or (default) one from ``settings`` when SLACK_BOT_TOKEN is
    set. ``lake``: default from ``settings``. ``aws``: an AWS client factory for the jobs (None: from
    config). ``clock``: the time (tests inject it). ``registry``: the jobs (default ``agent.jobs.JOBS``)."""

    def __init__(
        self,
        db: Database,
        config: FinOpsConfig,
        settings: Settings,
        *,
        holder: str,
        lake: Lake | None = None,
        slack: Any = _AUTO,
        aws: Any = None,
        clock: Clock = _utcnow,
        registry: Mapping[str, JobSpec] | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.settings = settings
        self.holder = holder
        self.clock = clock
        self.registry: Mapping[str, JobSpec] = JOBS if registry is None else registry
        self.aws = aws
        self._lake = lake
        self._slack = slack

    def lake(self) -> Lake:
        if self._lake is None:
            from tools.store.lake import Lake

            self._lake = Lake(self.settings.resolved_lake_dir())
        return self._lake

    def slack(self) -> Any:
        if self._slack is _AUTO:
            token = self.settings.slack_bot_token
            if token is not None and token.get_secret_value():
                from agent.slack.client import make_client

                self._slack = make_client(self.settings)
            else:
                self._slack = None
        return self._slack

    def context(self, now: datetime, period: str) -> JobContext:
        return JobContext(
            db=self.db,
            lake=self.lake(),
            config=self.config,
            settings=self.settings,
            now=now,
            period=period,
            slack=self.slack(),
            aws=self.aws,
        )

    def run(
        self, name: str, *, now: datetime | None = None, period: str | None = None, force: bool = False
    ) -> RunResult:
        """Run job ``name`` for ``period`` (default: the period ``now`` is in) unless that run succeeded
        already or is running elsewhere; ``force`` runs a succeeded period again. ``now`` is the job's
        ``ctx.now`` (default: the clock); the claim is stamped with the clock. Never raises for the job's own
        failure: it is recorded (the run is ``failed``, retried by the next attempt) and returned."""
        spec = get_spec(name, self.registry)
        claimed_at = self.clock()
        now = claimed_at if now is None else now
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware (UTC)")
        if period is None:
            period = period_of(spec.cadence, now)
        else:
            period_bounds(spec.cadence, period)  # a malformed period is an error that shows the form
        claim = claim_run(self.db, name, period, self.holder, claimed_at, timeout=spec.timeout, force=force)
        result = RunResult(name, period, "skipped", self.holder, started_at=claimed_at)
        if not claim.won:
            result.reason = claim.reason
            log.info("job %s %s skipped: %s", name, period, claim.reason)
            return result
        result.attempt = claim.attempt
        result.note = _claim_note(claim, force)
        log.info("job %s %s started (attempt %d) %s", name, period, claim.attempt, result.note or "")
        began = time.monotonic()
        try:
            fn = spec.resolve()
            summary = fn(self.context(now, period))
            if not isinstance(summary, dict):
                raise JobError(
                    f"job {name} ({spec.ref}) returned {type(summary).__name__}, not a dict summary; "
                    "the job must return a JSON-able dict"
                )
        except Exception as exc:
            result.status = "failed"
            result.error = str(exc) if isinstance(exc, FinOpsError) else f"{type(exc).__name__}: {exc}"
            detail: dict[str, Any] = dict(getattr(exc, "detail", None) or {})
            detail["error"] = result.error[:ERROR_MAX]
            if not isinstance(exc, FinOpsError):
                detail["traceback"] = "".join(traceback.format_exception(exc))[-ERROR_MAX:]
            if result.note:
                detail["note"] = result.note
            result.summary = detail
            result.seconds = round(time.monotonic() - began, 3)
            result.finished_at = self.clock()
            recorded = _finish(self.db, claim, self.holder, "failed", result.finished_at, detail)
            log.error("job %s %s failed (attempt %d): %s", name, period, claim.attempt, result.error)
        else:
            result.status = "succeeded"
            result.summary = summary
            result.seconds = round(time.monotonic() - began, 3)
            result.finished_at = self.clock()
            detail = {**summary, "note": result.note} if result.note else summary
            recorded = _finish(self.db, claim, self.holder, "succeeded", result.finished_at, detail)
            log.info("job %s %s succeeded (attempt %d)", name, period, claim.attempt)
        if not recorded:
            log.warning(
                "job %s %s: another process took the run over while it ran; its outcome (%s) is not recorded",
                name,
                period,
                result.status,
            )
        return result


def _claim_note(claim: Claim, force: bool) -> str | None:
    prev = claim.previous
    if prev is None:
        return None
    if prev.status == "succeeded":
        return f"forced re-run: this period succeeded before (attempt {prev.attempts})" if force else None
    if prev.status == "failed":
        return f"retry of a failed run (attempt {prev.attempts}: {str(prev.detail.get('error', '?'))[:200]})"
    return (
        f"took over a run left running by {prev.holder} since "
        f"{prev.started_at.isoformat(timespec='seconds')} (its process is presumed dead)"
    )


# --- the running scheduler -----------------------------------------------------------------------------------

_ACTIVE: list[RunningScheduler] = []
_ACTIVE_LOCK = threading.Lock()


def run_job(name: str) -> None:
    """APScheduler's target for every job (stored as ``agent.scheduler:run_job`` with the job's name): runs
    the job through this process's scheduler if it holds the lease. Never raises."""
    with _ACTIVE_LOCK:
        active = list(_ACTIVE)
    if not active:
        log.warning("job %s came due but no scheduler runs in this process; skipped", name)
        return
    for scheduler in active:
        if scheduler.leader:
            try:
                scheduler.run_scheduled(name)
            except Exception:  # the scheduler thread must survive anything
                log.exception("job %s could not be run", name)
            return
    log.info("job %s came due on a replica that no longer holds the scheduler lease; skipped", name)


class RunningScheduler:
    """The scheduler of one ``finops serve`` process: the lease loop and, while it holds the lease, an
    APScheduler ``BackgroundScheduler`` over the persistent job store. ``tick(now)`` is one step of the lease
    loop (tests call it with their clock; ``start()`` runs it every ``lease_seconds / 3`` in a thread)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        config: FinOpsConfig,
        *,
        holder: str | None = None,
        clock: Clock = _utcnow,
        lake: Lake | None = None,
        slack: Any = _AUTO,
        aws: Any = None,
        registry: Mapping[str, JobSpec] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.config = config
        self.holder = holder or default_holder()
        self.clock = clock
        self.registry: Mapping[str, JobSpec] = JOBS if registry is None else registry
        self.schedules = effective_schedules(config, self.registry)  # a bad schedule stops start-up here
        self.lease = Lease(db, self.holder, config.operations.lease_seconds)
        self.runner = JobRunner(
            db,
            config,
            settings,
            holder=self.holder,
            lake=lake,
            slack=slack,
            aws=aws,
            clock=clock,
            registry=self.registry,
        )
        self.renew_every = config.operations.lease_seconds / 3
        self.scheduler: Any = None  # APScheduler's BackgroundScheduler, created with the lease
        self._leader = False
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def leader(self) -> bool:
        """Whether this process currently runs the jobs (it held the lease at its last tick)."""
        return self._leader

    # --- the lease loop ---------------------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> bool:
        """Take or renew the lease; start or resume the jobs when it is ours, pause them when it is not (or
        the database cannot say). Returns whether this process is the leader now."""
        now = self.clock() if now is None else now
        with self._lock:
            if self._stop.is_set():
                return False
            try:
                held = self.lease.acquire(now)
            except Exception as exc:
                log.error("cannot renew the scheduler lease (%s: %s); jobs paused", type(exc).__name__, exc)
                held = False
            if held and not self._leader:
                log.info("scheduler lease taken by %s: running the scheduled jobs", self.holder)
                try:
                    self._resume_jobs()
                except Exception:  # cannot run the jobs: let another replica have the lease
                    log.exception("cannot start the scheduled jobs; releasing the scheduler lease")
                    self._pause_jobs()
                    self.lease.release(now)
                    held = False
            elif not held and self._leader:
                state = _safe_read(self.db)
                log.warning(
                    "scheduler lease lost by %s (now held by %s): scheduled jobs paused",
                    self.holder,
                    state.holder if state and state.live(now) else "nobody",
                )
                self._pause_jobs()
            self._leader = held
            return held

    def _loop(self) -> None:
        while not self._stop.wait(self.renew_every):
            try:
                self.tick()
            except Exception:
                log.exception("scheduler lease tick failed")

    def start(self, *, background: bool = True) -> RunningScheduler:
        """First tick now; with ``background``, a thread ticks every ``lease_seconds / 3`` until shutdown."""
        self.tick()
        if background and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="finops-scheduler-lease", daemon=True)
            self._thread.start()
        return self

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop the lease loop and the jobs (``wait``: let running jobs finish), then release the lease."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        with self._lock:
            if self.scheduler is not None:
                try:
                    # detach the store first: APScheduler 3 processes due jobs once more while it stops, and
                    # a run it cannot submit any more would be lost for its period
                    self.scheduler.pause()
                    self.scheduler.remove_jobstore("default", shutdown=False)
                    self.scheduler.shutdown(wait=wait)
                except Exception:  # already stopped
                    log.debug("APScheduler shutdown", exc_info=True)
                self.scheduler = None
            with _ACTIVE_LOCK:
                if self in _ACTIVE:
                    _ACTIVE.remove(self)
            if self._leader:
                try:
                    self.lease.release(self.clock())
                except Exception as exc:
                    log.warning("could not release the scheduler lease (%s); it expires by itself", exc)
            self._leader = False

    # --- APScheduler ------------------------------------------------------------------------------------
    def _resume_jobs(self) -> None:
        if self.scheduler is None:
            scheduler = _aps("schedulers.background", "BackgroundScheduler")(
                jobstores={"default": self._job_store()},
                executors={"default": _aps("executors.pool", "ThreadPoolExecutor")(WORKERS)},
                job_defaults={"coalesce": True, "max_instances": 1},
                timezone=UTC,
            )
            scheduler.start(paused=True)  # creates the job store's table; runs nothing until resumed
            self.scheduler = scheduler
            with _ACTIVE_LOCK:
                if self not in _ACTIVE:
                    _ACTIVE.append(self)
        self.sync_jobs()
        self.scheduler.resume()

    def _job_store(self) -> Any:
        """APScheduler's SQLAlchemyJobStore on the app database, whose due runs only the lease holder sees: a
        replica that lost the lease and has not noticed yet must not consume (and so lose) a due run that the
        new leader's scheduler would run from the same store."""
        store = _aps("jobstores.sqlalchemy", "SQLAlchemyJobStore")(engine=self.db.engine)
        unguarded = store.get_due_jobs

        def get_due_jobs(now: datetime) -> list[Any]:
            try:
                held = self.lease.held(self.clock())
            except Exception:
                held = False
            return list(unguarded(now)) if held else []

        store.get_due_jobs = get_due_jobs
        return store

    def _pause_jobs(self) -> None:
        if self.scheduler is not None:
            self.scheduler.pause()

    def sync_jobs(self) -> None:
        """Make the job store hold exactly the enabled jobs with their schedules. A job whose schedule did not
        change keeps its stored next run time (a run due while no replica led still happens)."""
        assert self.scheduler is not None, "the scheduler starts with the lease"
        for name, spec in self.registry.items():
            cron = self.schedules[name]
            existing = self.scheduler.get_job(name)
            if cron is None:
                if existing is not None:
                    self.scheduler.remove_job(name)
                continue
            trigger = cron_trigger(cron, where=f"operations.schedules.{name}")
            kwargs: dict[str, Any] = {}
            if (
                existing is not None
                and str(existing.trigger) == str(trigger)
                and existing.next_run_time is not None
            ):
                kwargs["next_run_time"] = existing.next_run_time
            self.scheduler.add_job(
                JOB_TARGET,
                trigger=trigger,
                args=[name],
                id=name,
                name=f"{name}: {spec.description}"[:200],
                replace_existing=True,
                misfire_grace_time=int(MISFIRE_GRACE[spec.cadence].total_seconds()),
                coalesce=True,
                max_instances=1,
                **kwargs,
            )
        for job in self.scheduler.get_jobs():  # jobs no longer wanted, and retries of those
            if self.schedules.get(job.id.removesuffix(RETRY_SUFFIX)) is None:
                self.scheduler.remove_job(job.id)

    def scheduled(self) -> dict[str, datetime | None]:
        """Job id -> next run time, as the running APScheduler holds them (empty when not the leader)."""
        if self.scheduler is None:
            return {}
        return {job.id: job.next_run_time for job in self.scheduler.get_jobs()}

    def run_scheduled(self, name: str, now: datetime | None = None) -> RunResult:
        """What APScheduler's target does: if the database says this process holds the lease, run ``name``
        for the period of its schedule's last fire time (else of ``now``)."""
        now = self.clock() if now is None else now
        spec = get_spec(name, self.registry)
        if not self.lease.held(now):
            reason = "this process does not hold the scheduler lease"
            log.info("job %s skipped: %s", name, reason)
            return RunResult(name, "", "skipped", self.holder, reason=reason, started_at=now)
        fired = last_fire(self.schedules.get(name), now, MISFIRE_GRACE[spec.cadence])
        result = self.runner.run(name, now=now, period=period_of(spec.cadence, fired or now))
        if result.status == "failed":
            self._retry_later(name, spec, result, fired, now)
        return result

    def _retry_later(
        self, name: str, spec: JobSpec, result: RunResult, fired: datetime | None, now: datetime
    ) -> None:
        """Schedule a one-off retry of a failed run (after ``RETRY_DELAYS[attempt - 1]``) if it would still
        fall in the same period; a job due again sooner (every 15 minutes) is simply retried by its next run."""
        if self.scheduler is None:
            return
        retry_id = name + RETRY_SUFFIX
        delay = RETRY_DELAYS[result.attempt - 1] if result.attempt <= len(RETRY_DELAYS) else None
        later = now + delay if delay is not None else now
        grace = MISFIRE_GRACE[spec.cadence]
        same_period = delay is not None and period_of(
            spec.cadence, last_fire(self.schedules.get(name), later, grace) or later
        ) == period_of(spec.cadence, fired or now)
        if delay is None or not same_period:
            if self.scheduler.get_job(retry_id) is not None:
                self.scheduler.remove_job(retry_id)
            log.warning(
                "job %s %s failed (attempt %d); not retried before its next run",
                name,
                result.period,
                result.attempt,
            )
            return
        run_date = datetime.now(UTC) + delay  # APScheduler's own clock
        self.scheduler.add_job(
            JOB_TARGET,
            trigger="date",
            run_date=run_date,
            args=[name],
            id=retry_id,
            name=f"retry of {name} {result.period}",
            replace_existing=True,
            misfire_grace_time=int(grace.total_seconds()),
        )
        result.note = f"retried at {run_date.isoformat(timespec='seconds')} (attempt {result.attempt + 1})"
        log.info(
            "job %s %s failed (attempt %d); retried at %s", name, result.period, result.attempt, run_date
        )


def _safe_read(db: Database) -> LeaseState | None:
    try:
        return Lease.read(db)
    except Exception:
        return None


def start_scheduler(
    settings: Settings,
    db: Database,
    config: FinOpsConfig,
    *,
    holder: str | None = None,
    clock: Clock = _utcnow,
    lake: Lake | None = None,
    slack: Any = _AUTO,
    aws: Any = None,
    registry: Mapping[str, JobSpec] | None = None,
    background: bool = True,
) -> RunningScheduler:
    """Start the scheduler of this process (``finops serve``): it runs the jobs while it holds the lease;
    call ``.shutdown()`` on exit. A bad ``operations.schedules`` entry raises ``SchedulerError`` here."""
    scheduler = RunningScheduler(
        settings,
        db,
        config,
        holder=holder,
        clock=clock,
        lake=lake,
        slack=slack,
        aws=aws,
        registry=registry,
    )
    return scheduler.start(background=background)
