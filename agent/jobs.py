"""The scheduled jobs: their registry (name -> ``"module:function"``, cadence, default schedule) and the
operational jobs themselves (ingestion from the configured sources, the daily scan, owner outreach, approval
expiry, reconcile, the weekly digest).

Every job follows ``agent.jobs_base``'s contract: ``fn(ctx: JobContext) -> dict`` (a JSON-able summary),
reading the time from ``ctx.now`` and never sleeping. ``agent.scheduler`` runs a job at most once per
(job, period); ``finops jobs run NAME`` runs one now through the same claim.

References are resolved lazily (``JobSpec.resolve``): listing the jobs never imports them, so a job whose
module does not import yet shows as unavailable with the import error instead of breaking the list.

Periods (``ctx.period``) name the slot a run is for, by the job's cadence:

==============  =====================  ==========================================
cadence         period                 example
==============  =====================  ==========================================
every-15-min    ``YYYY-MM-DDTHH:MM``   ``2024-09-21T08:15`` (minute 00, 15, 30, 45)
hourly          ``YYYY-MM-DDTHH``      ``2024-09-21T08``
daily           ``YYYY-MM-DD``         ``2024-09-21``
weekly          ``YYYY-Www`` (ISO)     ``2024-W38``
monthly         ``YYYY-MM``            ``2024-09``
quarterly       ``YYYY-Qn``            ``2024-Q3``
==============  =====================  ==========================================
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib
import logging
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from agent.jobs_base import JobContext, JobFn
from tools.errors import FinOpsError

if TYPE_CHECKING:
    from config.model import IngestSource, Team
    from tools.ingest.service import IngestReport

log = logging.getLogger("finops.jobs")

Cadence = Literal["every-15-min", "hourly", "daily", "weekly", "monthly", "quarterly"]
CADENCES: tuple[str, ...] = get_args(Cadence)


class JobError(FinOpsError):
    """A job could not do (all of) its work. ``detail`` is stored with the failed run (what was done and
    what went wrong), so ``finops jobs list`` can show it and the next run retries."""

    def __init__(self, message: str, detail: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.detail: dict[str, Any] = dict(detail or {})


class JobUnavailable(JobError):
    """A job's ``"module:function"`` reference does not resolve (the module does not import, or has no such
    function)."""


# --- the registry -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job. ``cron``: its default schedule (5 fields, UTC; ``operations.schedules`` in
    finops.yaml overrides it or turns it ``off``). ``timeout``: after how long a run still marked running
    is taken to be dead (its process crashed) and may be taken over."""

    name: str
    ref: str  # "module:function"
    cadence: Cadence
    cron: str
    description: str
    timeout: timedelta = timedelta(hours=1)

    def resolve(self) -> JobFn:
        """The job's function, imported now. Raises ``JobUnavailable`` saying why it cannot be."""
        return resolve_ref(self.ref, job=self.name)


def resolve_ref(ref: str, *, job: str = "") -> JobFn:
    """``"package.module:function"`` -> the function."""
    what = f"job {job!r}: " if job else ""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise JobUnavailable(f"{what}reference {ref!r} is not of the form 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time error makes the job unavailable, not the listing
        raise JobUnavailable(
            f"{what}cannot import {module_name!r} ({type(exc).__name__}: {exc}); the job stays unavailable "
            "until that module imports"
        ) from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise JobUnavailable(f"{what}module {module_name!r} has no function {attr!r} (reference {ref!r})")
    return cast(JobFn, fn)


def _spec(
    name: str,
    ref: str,
    cadence: Cadence,
    cron: str,
    description: str,
    timeout: timedelta = timedelta(hours=1),
) -> JobSpec:
    return JobSpec(name, ref, cadence, cron, description, timeout)


#: every scheduled job, in the order `finops jobs list` shows them. Crons are UTC; day-of-week numbers as in
#: crontab (0 or 7 = Sunday, 1 = Monday).
JOBS: dict[str, JobSpec] = {
    s.name: s
    for s in (
        _spec(
            "ingest",
            "agent.jobs:ingest_sources",
            "hourly",
            "50 * * * *",
            "ingest new files from operations.sources (local folders, S3 prefixes); each file once",
            timedelta(hours=2),
        ),
        _spec(
            "price-check",
            "agent.report_jobs:price_check",
            "daily",
            "0 5 * * *",
            "record model price changes (genai-prices snapshot, config overrides) and their impact",
        ),
        _spec(
            "scan",
            "agent.jobs:daily_scan",
            "daily",
            "0 6 * * *",
            "waste rules, anomalies, budget and token-budget alerts, stored as findings",
            timedelta(hours=2),
        ),
        _spec(
            "notify",
            "agent.jobs:notify_owners",
            "daily",
            "30 6 * * *",
            "send new findings to their owners in Slack, with the proposed fix",
        ),
        _spec(
            "expire-approvals",
            "agent.jobs:expire_approvals",
            "every-15-min",
            "*/15 * * * *",
            "expire approval requests past their expiry and settle their threads",
            timedelta(minutes=30),
        ),
        _spec(
            "reconcile",
            "agent.jobs:reconcile",
            "every-15-min",
            "5-59/15 * * * *",
            "finish executions a crash left in 'executing'; settle decided requests",
            timedelta(minutes=30),
        ),
        _spec(
            "weekly-digest",
            "agent.jobs:weekly_digest",
            "weekly",
            "0 8 * * 1",
            "each team's channel: spend last week vs the week before, top movers, open findings",
        ),
        _spec(
            "monthly-review",
            "agent.report_jobs:monthly_review",
            "monthly",
            "0 9 1 * *",
            "the monthly AI cost review, posted to Slack",
            timedelta(hours=2),
        ),
        _spec(
            "quarterly-review",
            "agent.report_jobs:quarterly_review",
            "quarterly",
            "0 10 1 1,4,7,10 *",
            "the quarterly optimisation review, posted to Slack",
            timedelta(hours=2),
        ),
    )
}


def get_spec(name: str, registry: Mapping[str, JobSpec] | None = None) -> JobSpec:
    """The job named ``name``; an unknown name is an error listing the jobs there are."""
    jobs = JOBS if registry is None else registry
    try:
        return jobs[name]
    except KeyError:
        raise JobError(
            f"no job named {name!r}; the jobs are: {', '.join(jobs)} (see `finops jobs list`)"
        ) from None


# --- periods ----------------------------------------------------------------------------------------------

_PERIOD_FORMS: dict[str, tuple[re.Pattern[str], str]] = {
    "every-15-min": (re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(00|15|30|45)$"), "2024-09-21T08:15"),
    "hourly": (re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2})$"), "2024-09-21T08"),
    "daily": (re.compile(r"^(\d{4})-(\d{2})-(\d{2})$"), "2024-09-21"),
    "weekly": (re.compile(r"^(\d{4})-W(\d{2})$"), "2024-W38"),
    "monthly": (re.compile(r"^(\d{4})-(\d{2})$"), "2024-09"),
    "quarterly": (re.compile(r"^(\d{4})-Q([1-4])$"), "2024-Q3"),
}


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    return now.astimezone(UTC)


def period_of(cadence: str, now: datetime) -> str:
    """The period ``now`` falls in, for a job of ``cadence`` (see the module's table)."""
    now = _utc(now)
    if cadence == "every-15-min":
        return f"{now:%Y-%m-%dT%H}:{now.minute - now.minute % 15:02d}"
    if cadence == "hourly":
        return f"{now:%Y-%m-%dT%H}"
    if cadence == "daily":
        return f"{now:%Y-%m-%d}"
    if cadence == "weekly":
        year, week, _ = now.isocalendar()
        return f"{year}-W{week:02d}"
    if cadence == "monthly":
        return f"{now:%Y-%m}"
    if cadence == "quarterly":
        return f"{now.year}-Q{(now.month - 1) // 3 + 1}"
    raise ValueError(f"unknown cadence {cadence!r}; choose from {', '.join(CADENCES)}")


def period_bounds(cadence: str, period: str) -> tuple[datetime, datetime]:
    """``[start, end)`` of ``period`` (UTC). A period not in the cadence's form is an error showing it."""
    if cadence not in _PERIOD_FORMS:
        raise ValueError(f"unknown cadence {cadence!r}; choose from {', '.join(CADENCES)}")
    pattern, example = _PERIOD_FORMS[cadence]
    match = pattern.match(period)
    problem = f"period {period!r} is not a {cadence} period; write it like {example!r}"
    if match is None:
        raise JobError(problem)
    n = [int(g) for g in match.groups()]
    try:
        if cadence == "every-15-min":
            start = datetime(n[0], n[1], n[2], n[3], n[4], tzinfo=UTC)
            return start, start + timedelta(minutes=15)
        if cadence == "hourly":
            start = datetime(n[0], n[1], n[2], n[3], tzinfo=UTC)
            return start, start + timedelta(hours=1)
        if cadence == "daily":
            start = datetime(n[0], n[1], n[2], tzinfo=UTC)
            return start, start + timedelta(days=1)
        if cadence == "weekly":
            monday = date.fromisocalendar(n[0], n[1], 1)
            start = datetime(monday.year, monday.month, monday.day, tzinfo=UTC)
            return start, start + timedelta(days=7)
        if cadence == "monthly":
            start = datetime(n[0], n[1], 1, tzinfo=UTC)
            return start, _add_months(start, 1)
        start = datetime(n[0], 3 * (n[1] - 1) + 1, 1, tzinfo=UTC)
        return start, _add_months(start, 3)
    except ValueError:
        raise JobError(problem) from None


def _add_months(start: datetime, months: int) -> datetime:
    index = start.year * 12 + start.month - 1 + months
    return start.replace(year=index // 12, month=index % 12 + 1)


# --- shared helpers ---------------------------------------------------------------------------------------


def _approval_service(ctx: JobContext) -> Any:
    from approvals.service import ApprovalService

    # approvals live on the wall clock (expiry, freeze windows, audit timestamps) even when the job runs for a
    # past period (`finops jobs run X --period P`, FINOPS_AS_OF): ctx.now only chooses the data period
    if ctx.approvals_clock is not None:
        return ApprovalService(ctx.db, ctx.config, aws=ctx.aws, clock=ctx.approvals_clock)
    return ApprovalService(ctx.db, ctx.config, aws=ctx.aws)


NO_SLACK_NOTE = (
    "SLACK_BOT_TOKEN is not set: nothing was sent. Set it (and restart `finops serve`) to send; "
    "`finops jobs run {job} --period {period} --force` sends this period's afterwards"
)


def _no_slack(ctx: JobContext, job: str) -> dict[str, Any]:
    return {"skipped": True, "note": NO_SLACK_NOTE.format(job=job, period=ctx.period)}


# --- ingest ------------------------------------------------------------------------------------------------

#: folders or files listed in one summary at most (the rest are counted)
SUMMARY_LIMIT = 20
#: a local file last changed at least this long before the ingestion run that read it, and still at the same
#: path with the same size, is taken as unchanged without reading it (the run hashes its files just before
#: it starts; anything changed later than this margin is hashed again, and its content decides)
CHANGE_MARGIN = timedelta(minutes=10)


@dataclass
class _File:
    """A file of a source: on disk (``local``), or an S3 object (``key``, ``etag``) downloaded when needed."""

    folder: str
    name: str  # what the summary and errors show: the path, or s3://bucket/key
    changed: datetime  # last modification (local: the later of mtime and ctime)
    size: int
    local: Path | None = None
    key: str | None = None
    etag: str = ""
    known: bool = False


@dataclass
class _Ledger:
    """What the ingestion ledger holds for one (kind, source): each file's path (by base name) with its size
    and the start of the run that read it, and every checksum ever ingested."""

    by_name: dict[str, list[tuple[str, int, datetime]]] = field(default_factory=dict)
    checksums: set[str] = field(default_factory=set)

    def unchanged_local(self, path: Path, size: int, changed: datetime) -> bool:
        """Ingested from this path at this size by a run that started well after the file last changed."""
        text = str(path)
        return any(
            seen == text and s == size and changed < started - CHANGE_MARGIN
            for seen, s, started in self.by_name.get(path.name, ())
        )

    def seen_object(self, suffix: str, size: int) -> bool:
        """An S3 object downloaded to a path ending with ``suffix`` (``/<etag>/<bucket>/<key>``) was
        ingested: the same key with the same ETag, so the same content."""
        return any(
            seen.endswith(suffix) and s == size
            for seen, s, _ in self.by_name.get(suffix.rpartition("/")[2], ())
        )


def _ledger(ctx: JobContext, kind: str, source: str) -> _Ledger:
    from sqlalchemy import select

    from tools.store.models import IngestedFile, IngestionRun

    ledger = _Ledger()
    with ctx.db.session() as s:
        rows = s.execute(
            select(IngestedFile.path, IngestedFile.size_bytes, IngestionRun.started_at, IngestedFile.checksum)
            .join(IngestionRun, IngestionRun.id == IngestedFile.run_id)
            .where(IngestedFile.kind == kind, IngestedFile.source == source)
        ).all()
    for path, size, started, checksum in rows:
        text = str(path)
        ledger.by_name.setdefault(text.rpartition("/")[2], []).append((text, int(size), started))
        ledger.checksums.add(str(checksum))
    return ledger


def _matches(name: str, pattern: str) -> bool:
    return not name.startswith(".") and fnmatch.fnmatchcase(name, pattern)


def _groups(files: Iterable[_File]) -> list[list[_File]]:
    """Files by folder, each folder sorted by name, the folders oldest delivery first (so that when several
    deliveries of one period are new, the newest is ingested last and is the one that stays)."""
    by_folder: dict[str, list[_File]] = {}
    for f in files:
        by_folder.setdefault(f.folder, []).append(f)
    groups = [sorted(g, key=lambda f: f.name) for g in by_folder.values()]
    return sorted(groups, key=lambda g: (max(f.changed for f in g), g[0].folder))


def ingest_sources(ctx: JobContext) -> dict[str, Any]:
    """Ingest what is new in every ``operations.sources`` entry (a local folder or an S3 prefix), through
    ``agent.ingest_cli.ingest`` and its ledger.

    Nothing is ingested twice. A local file still at the same path and size that has not changed since
    (well before) the run that ingested it is not read again; an S3 object whose key and ETag were ingested
    is not even downloaded; any other file is hashed, and skipped if its content (SHA-256) was ingested
    before. A folder is one delivery (how AWS, Azure and GCP write their exports: a folder per billing
    period or per export run): for FOCUS, when any file of a folder is new, all the folder's files are
    ingested together, so they replace the periods they cover and a multi-part export is never cut short by
    a part that did not change. Keep restated deliveries in folders of their own, as the exports do. One
    source or folder failing does not stop the others; the run then fails naming them, and the next run
    retries what was not ingested."""
    sources = ctx.config.operations.sources
    if not sources:
        return {
            "sources": [],
            "note": "no operations.sources in finops.yaml: nothing to ingest (add a local folder or an S3 prefix)",
        }
    results: list[dict[str, Any]] = []
    failed: list[str] = []
    for i, source in enumerate(sources):
        where = source.path or source.s3 or ""
        try:
            result = _ingest_local(ctx, source, i) if source.path else _ingest_s3(ctx, source)
        except Exception as exc:  # one source must not stop the others
            log.warning("ingest source %s failed: %s", source.name, exc)
            result = {"source": source.name, "kind": source.kind, "where": where, "error": _describe(exc)}
        if result.get("error") or result.get("errors"):
            failed.append(source.name)
        results.append(result)
    summary = {
        "sources": results,
        "files_ingested": sum(int(r.get("files_ingested", 0)) for r in results),
        "rows_accepted": sum(int(r.get("rows_accepted", 0)) for r in results),
    }
    if failed:
        raise JobError(
            f"ingestion failed for source(s) {', '.join(failed)}: see each source's error (`finops jobs "
            "list --format json`); what was ingested stays, and the next run retries the rest",
            summary,
        )
    return summary


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, FinOpsError) else f"{type(exc).__name__}: {exc}"


def _ingest_local(ctx: JobContext, source: IngestSource, index: int) -> dict[str, Any]:
    from tools.ingest.service import file_checksum

    assert source.path is not None
    root = Path(source.path).expanduser()
    if not root.is_dir():
        raise JobError(
            f"source {source.name!r}: {root} is not a folder (operations.sources[{index}].path in "
            "finops.yaml); create it or fix the path"
        )
    ledger = _ledger(ctx, source.kind, source.name)
    files: list[_File] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not _matches(path.name, source.pattern):
            continue
        if not path.is_file():
            continue
        stat = path.stat()
        # ctime too: a copy that keeps an old mtime (cp -p, rsync -t) still changes the ctime
        changed = datetime.fromtimestamp(max(stat.st_mtime, stat.st_ctime), UTC)
        f = _File(folder=str(path.parent), name=str(path), changed=changed, size=stat.st_size, local=path)
        f.known = ledger.unchanged_local(path, f.size, changed) or file_checksum(path) in ledger.checksums
        files.append(f)
    return _ingest_groups(ctx, source, str(root), files, fetch=None)


def _etag(raw: object) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "", str(raw or "")) or "no-etag"


def _ingest_s3(ctx: JobContext, source: IngestSource) -> dict[str, Any]:
    from approvals.actions.aws_clients import AwsClients
    from tools.ingest.service import file_checksum

    assert source.s3 is not None
    bucket, _, prefix = source.s3.removeprefix("s3://").partition("/")
    clients = ctx.aws if isinstance(ctx.aws, AwsClients) else AwsClients(ctx.config.aws)
    region = clients.default_region
    s3 = clients.client("s3", region)
    ledger = _ledger(ctx, source.kind, source.name)
    objects: list[_File] = []
    with clients.calling("s3", region, f"ListObjectsV2 s3://{bucket}/{prefix}", permission="s3:ListBucket"):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = str(obj["Key"])
                folder, _, name = key.rpartition("/")
                if key.endswith("/") or any(p.startswith(".") for p in key[len(prefix) :].split("/") if p):
                    continue
                if _matches(name, source.pattern):
                    objects.append(
                        _File(
                            folder=f"s3://{bucket}/{folder}",
                            name=f"s3://{bucket}/{key}",
                            changed=obj["LastModified"].astimezone(UTC),
                            size=int(obj["Size"]),
                            key=key,
                            etag=_etag(obj.get("ETag")),
                        )
                    )
    with tempfile.TemporaryDirectory(prefix="s3-", dir=ctx.lake.tmp_dir()) as tmp:
        downloaded: dict[str, str] = {}  # local path -> s3://bucket/key, to name objects in errors

        def fetch(f: _File) -> Path:
            # downloaded under its ETag: the ledger then knows this key with this content by its path
            if f.local is None:
                assert f.key is not None
                local = Path(tmp) / f.etag / bucket / f.key
                local.parent.mkdir(parents=True, exist_ok=True)
                with clients.calling(
                    "s3", region, f"GetObject s3://{bucket}/{f.key}", permission="s3:GetObject"
                ):
                    s3.download_file(bucket, f.key, str(local))
                downloaded[str(local)] = f.name
                f.local = local
            return f.local

        for f in objects:
            f.known = ledger.seen_object(f"/{f.etag}/{bucket}/{f.key}", f.size)
            if not f.known:  # new or rewritten since: its content decides
                f.known = file_checksum(fetch(f)) in ledger.checksums
        result = _ingest_groups(ctx, source, source.s3, objects, fetch=fetch, names=downloaded)
        result["downloaded"] = len(downloaded)
    return result


def _ingest_groups(
    ctx: JobContext,
    source: IngestSource,
    where: str,
    files: Sequence[_File],
    *,
    fetch: Callable[[_File], Path] | None,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    from agent.ingest_cli import ingest

    result: dict[str, Any] = {
        "source": source.name,
        "kind": source.kind,
        "where": where,
        "files_seen": len(files),
        "files_new": sum(not f.known for f in files),
        "files_ingested": 0,
        "rows_accepted": 0,
        "partitions": 0,
        "folders": [],
    }
    errors: list[dict[str, str]] = []
    for group in _groups(files):
        new = [f for f in group if not f.known]
        if not new:
            continue
        # FOCUS: a folder is one delivery and replaces the periods it covers, so it goes in whole
        todo = group if source.kind == "focus" else new
        folder = group[0].folder
        try:
            paths = [fetch(f) if fetch is not None else _local(f) for f in todo]
            report = ingest(
                ctx.db,
                ctx.lake,
                ctx.config,
                source.kind,
                paths,
                source.name,
                force=source.kind == "focus" and len(new) < len(group),
            )
        except Exception as exc:  # one folder must not stop the others
            message = _describe(exc)
            for local, name in (names or {}).items():  # name the object, not its download
                message = message.replace(local, name)
            errors.append({"folder": folder, "error": message})
            log.warning("ingest %s of source %s failed: %s", folder, source.name, message)
            continue
        ingested = _ingested(report)
        result["files_ingested"] += ingested
        result["rows_accepted"] += report.rows_accepted
        result["partitions"] += len(report.partitions)
        if len(result["folders"]) < SUMMARY_LIMIT:
            result["folders"].append(
                {
                    "folder": folder,
                    "new": [f.name.rpartition("/")[2] for f in new][:SUMMARY_LIMIT],
                    "files_ingested": ingested,
                    "billing_periods": sorted({p.billing_period for p in report.partitions}),
                }
            )
    if errors:
        result["errors"] = errors
    return result


def _local(f: _File) -> Path:
    assert f.local is not None
    return f.local


def _ingested(report: IngestReport) -> int:
    return sum(1 for f in report.files if f.status == "ingested")


# --- scan, outreach, approvals ----------------------------------------------------------------------------


def daily_scan(ctx: JobContext) -> dict[str, Any]:
    """``finops scan`` as of ``ctx.now``: every enabled rule (with the AWS inventory when credentials are
    configured), anomalies, and the budget and token-budget alerts — each threshold fires once per budget
    period (``tools.alerts``), however often the scan runs. Findings reach their owners through ``notify``."""
    from tools.costs import open_costs
    from tools.scan import run_scan

    # agent.detect_cli is not under mypy --strict: looked up by name so this module stays checked
    make_inventory = importlib.import_module("agent.detect_cli").make_inventory
    inventory, note = make_inventory(ctx.config, cloud=True)
    con = open_costs(ctx.lake, ctx.config)
    try:
        report = run_scan(ctx.db, con, ctx.config, ctx.now, inventory=inventory)
    finally:
        con.close()
    return {
        "as_of": ctx.now.isoformat(timespec="seconds"),
        "cloud": note,
        "rules_run": len(report.rules_run),
        "rules_skipped": report.skipped,
        "rule_errors": report.errors,
        "findings": len(report.findings),
        "by_rule": report.by_rule(),
        "stored": vars(report.stored),
        "new_alerts": [a.finding.title for a in report.new_alerts],
    }


def notify_owners(ctx: JobContext) -> dict[str, Any]:
    """Send each new finding to its owner in Slack (``agent.slack.outreach.notify_owners``: each finding
    once, digests for many). Without a Slack bot token it sends nothing and says so."""
    if ctx.slack is None:
        return _no_slack(ctx, "notify")
    from agent.slack.outreach import notify_owners as send

    svc = _approval_service(ctx)
    # claims, messages and audit entries are stamped on the wall clock (the approvals' clock), not ctx.now: a
    # run for a past period must not stamp claims that a concurrent run would take for abandoned ones
    report = send(ctx.db, ctx.config, ctx.slack, now=svc.clock(), svc=svc)
    out = report.as_dict()
    return {
        "counts": out["counts"],
        "per_destination": out["per_destination"],
        "failed": [i.finding for i in report.failed][:SUMMARY_LIMIT],
        "notes": out["notes"][:SUMMARY_LIMIT],
    }


def _refresh_slack(ctx: JobContext, request_ids: Sequence[str]) -> int:
    """Update the Slack messages of requests this job decided or finished (none without Slack)."""
    if ctx.slack is None or not request_ids:
        return 0
    from agent.slack.app import refresh_messages

    try:
        return refresh_messages(ctx.db, ctx.config, ctx.settings, ctx.slack, list(request_ids))
    except Exception as exc:  # the decision stands; the message is refreshed by the next click or run
        log.warning("could not update the Slack messages of %s: %s", ", ".join(request_ids), _describe(exc))
        return 0


def _settle(svc: Any, request_ids: Sequence[str], settled_ids: list[str] | None = None) -> int:
    """Resume the paused threads of decided requests with the decision the database holds. One that cannot be
    resumed does not stop the others; the run then fails naming them (the next run tries again)."""
    if not request_ids:
        return 0
    from agent.remediation import open_remediation

    settled = 0
    failed: dict[str, str] = {}
    with open_remediation(svc) as remediation:
        for request_id in request_ids:
            try:
                if remediation.view(request_id).waiting:
                    remediation.settle(request_id)
                    settled += 1
                    if settled_ids is not None:
                        settled_ids.append(request_id)
            except Exception as exc:
                failed[request_id] = _describe(exc)
                log.warning("cannot settle request %s: %s", request_id, failed[request_id])
    if failed:
        raise JobError(
            f"{len(failed)} request thread(s) could not be settled ({', '.join(failed)}); see "
            "`finops approvals show ID`; the next run tries again",
            {"settled": settled, "not_settled": failed},
        )
    return settled


def expire_approvals(ctx: JobContext) -> dict[str, Any]:
    """Expire pending and approved requests past their expiry, and settle their paused threads."""
    svc = _approval_service(ctx)
    expired: list[str] = svc.expire_due()
    settled = _settle(svc, expired)
    return {"expired": expired, "settled": settled, "messages_updated": _refresh_slack(ctx, expired)}


#: decided requests updated within this window are checked for a paused thread to settle (older ones were
#: settled by earlier runs, or by `finops serve`'s start-up recovery)
SETTLE_WINDOW = timedelta(days=7)
DECIDED = ("approved", "rejected", "expired", "cancelled", "succeeded", "failed")


def reconcile(ctx: JobContext) -> dict[str, Any]:
    """Finish executions a crash left in ``executing`` (from the real state of their resource), then resume
    the paused threads of decided requests (approved ones execute; the others end)."""
    from sqlalchemy import select

    from tools.store.models import RemediationRequest

    svc = _approval_service(ctx)
    outcomes = svc.reconcile()
    with ctx.db.session() as s:
        decided = list(
            s.scalars(
                select(RemediationRequest.id)
                .where(
                    RemediationRequest.status.in_(DECIDED),
                    RemediationRequest.updated_at >= ctx.now - SETTLE_WINDOW,
                )
                .order_by(RemediationRequest.updated_at)
            )
        )
    settled_ids: list[str] = []
    settled = _settle(svc, decided, settled_ids)
    changed = [o.request_id for o in outcomes] + settled_ids
    return {
        "reconciled": [{"request": o.request_id, "status": o.status} for o in outcomes],
        "settled": settled,
        "messages_updated": _refresh_slack(ctx, changed),
    }


# --- weekly digest ----------------------------------------------------------------------------------------

#: movers shown per team
TOP_MOVERS = 3
WEEKLY_DIGEST_KEY = "weekly-digest"


@dataclass
class _TeamWeek:
    spend: dict[str, Decimal] = field(default_factory=dict)  # currency -> amount
    previous: dict[str, Decimal] = field(default_factory=dict)
    services: dict[tuple[str, str], list[Decimal]] = field(
        default_factory=dict
    )  # (service, cur) -> [now, before]
    open_findings: int = 0
    open_impact: dict[str, Decimal] = field(default_factory=dict)

    def movers(self) -> list[tuple[str, str, Decimal, Decimal]]:
        """(service, currency, this week, change), largest change first."""
        rows = [(svc, cur, v[0], v[0] - v[1]) for (svc, cur), v in self.services.items() if v[0] != v[1]]
        return sorted(rows, key=lambda r: (-abs(r[3]), r[0]))[:TOP_MOVERS]


def _week_spend(ctx: JobContext, start: date, end: date) -> list[dict[str, Any]]:
    from tools.costs import CostQuery, open_costs, query_costs
    from tools.periods import Period

    con = open_costs(ctx.lake, ctx.config)
    try:
        result = query_costs(
            con,
            CostQuery(Period(start, end, f"{start} to {end}"), group_by=("team", "service", "currency")),
            ctx.config.currency,
        )
    finally:
        con.close()
    return result.rows


def _team_weeks(ctx: JobContext, teams: Sequence[Team], week: date) -> dict[str, _TeamWeek]:
    from sqlalchemy import func, select

    from tools.store.models import FindingRow

    out = {t.name: _TeamWeek() for t in teams}
    by_lower = {t.name.lower(): t.name for t in teams}
    weeks = ((week - timedelta(days=7), week, 0), (week - timedelta(days=14), week - timedelta(days=7), 1))
    for start, end, slot in weeks:
        for r in _week_spend(ctx, start, end):
            name = by_lower.get(str(r["team"]).lower())
            if name is None:
                continue
            tw, cur, cost = out[name], str(r.get("currency") or ctx.config.currency), Decimal(r["cost"])
            totals = tw.spend if slot == 0 else tw.previous
            totals[cur] = totals.get(cur, Decimal(0)) + cost
            tw.services.setdefault((str(r["service"]), cur), [Decimal(0), Decimal(0)])[slot] += cost
    with ctx.db.session() as s:
        rows = s.execute(
            select(FindingRow.team, FindingRow.currency, func.count(), func.sum(FindingRow.monthly_impact))
            .where(FindingRow.status.in_(("open", "notified")), FindingRow.team.is_not(None))
            .group_by(FindingRow.team, FindingRow.currency)
        ).all()
    for team, currency, n, impact in rows:
        name = by_lower.get(str(team).lower())
        if name is None:
            continue
        tw = out[name]
        tw.open_findings += int(n)
        tw.open_impact[str(currency)] = tw.open_impact.get(str(currency), Decimal(0)) + Decimal(impact or 0)
    return out


def _amounts(values: Mapping[str, Decimal], currency: str) -> str:
    from agent.slack.blocks import money

    if not values:
        return money(Decimal(0), currency)
    ordered = sorted(values.items(), key=lambda kv: (kv[0] != currency, kv[0]))
    return " + ".join(money(v, c) for c, v in ordered)


def _change(now: Decimal, before: Decimal, currency: str) -> str:
    from agent.slack.blocks import money

    delta = now - before
    sign = "+" if delta > 0 else ""
    text = f"{sign}{money(delta, currency)}"
    if before > 0:
        pct = (delta / before * 100).quantize(Decimal("0.1"))
        text += f" ({sign}{pct}%)"
    return text


def _day(d: date) -> str:
    return f"{d:%b} {d.day}"


def digest_message(team: str, tw: _TeamWeek, week: date, currency: str) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, Block Kit blocks) of one team's weekly digest. Pure."""
    from agent.slack.blocks import escape, inline, money

    start, end = week - timedelta(days=7), week - timedelta(days=1)
    now_main = tw.spend.get(currency, Decimal(0))
    before_main = tw.previous.get(currency, Decimal(0))
    spend_line = (
        f"*Spend {_day(start)}–{_day(end)}:* {_amounts(tw.spend, currency)} "
        f"(week before: {_amounts(tw.previous, currency)}; change {_change(now_main, before_main, currency)})"
    )
    movers = tw.movers()
    mover_lines = [
        f"• {inline(svc, 80)}: {money(amount, cur)} ({_change(amount, amount - delta, cur)})"
        for svc, cur, amount, delta in movers
    ]
    findings_line = (
        f"*Open findings:* {tw.open_findings}, worth {_amounts(tw.open_impact, currency)} a month"
        if tw.open_findings
        else "*Open findings:* none"
    )
    header = f"Weekly cost digest: {team}"[:150]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header}},
        {"type": "section", "text": {"type": "mrkdwn", "text": spend_line, "verbatim": True}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "*Top movers:*\n" + "\n".join(mover_lines) if mover_lines else "*Top movers:* none",
                "verbatim": True,
            },
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": findings_line, "verbatim": True}},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"Ask `/finops why did {escape(team)} spend change last week` for the causes; "
                    f"`finops findings --team {escape(team)}` lists the findings.",
                }
            ],
        },
    ]
    text = (
        f"Weekly cost digest for {team}: {_amounts(tw.spend, currency)} from {_day(start)} to {_day(end)} "
        f"({_change(now_main, before_main, currency)} on the week before); {tw.open_findings} open finding(s)"
    )
    return text, blocks


def weekly_digest(ctx: JobContext) -> dict[str, Any]:
    """Post each team's weekly digest to its ``slack_channel``: spend last week (Monday to Sunday before the
    period's week) vs the week before, the top movers (services), and its open findings (count and $ a
    month). Each team's channel gets it once per week: the post is claimed first (an ``alert_state`` key
    ``weekly-digest:<week>:<team>``), a Slack error releases the claim so the retry of the run sends it,
    and a team already sent is skipped by the retry."""
    if ctx.slack is None:
        return _no_slack(ctx, "weekly-digest")
    from slack_sdk.errors import SlackApiError, SlackClientError

    start, _ = period_bounds("weekly", ctx.period)
    week = start.date()
    teams = [t for t in ctx.config.teams if t.slack_channel]
    no_channel = [t.name for t in ctx.config.teams if not t.slack_channel]
    data = _team_weeks(ctx, teams, week)
    sent: list[str] = []
    already: list[str] = []
    failed: list[dict[str, str]] = []
    for team in teams:
        assert team.slack_channel is not None
        key = f"{WEEKLY_DIGEST_KEY}:{ctx.period}:{team.name}"
        if not _claim_key(ctx, key):
            already.append(team.name)
            continue
        text, blocks = digest_message(team.name, data[team.name], week, ctx.config.currency)
        try:
            ctx.slack.chat_postMessage(channel=team.slack_channel, text=text, blocks=blocks)
        except (SlackApiError, SlackClientError) as exc:
            _release_key(ctx, key)
            error = exc.response.get("error") if isinstance(exc, SlackApiError) else None
            failed.append({"team": team.name, "channel": team.slack_channel, "error": str(error or exc)})
            continue
        sent.append(team.name)
    summary: dict[str, Any] = {
        "week": f"{week - timedelta(days=7)} to {week - timedelta(days=1)}",
        "sent": sent,
        "already_sent": already,
    }
    if no_channel:
        summary["no_channel"] = no_channel
        summary["note"] = "teams without slack_channel in finops.yaml get no digest"
    if failed:
        summary["failed"] = failed
        raise JobError(
            f"weekly digest not sent to {', '.join(f['team'] for f in failed)} "
            f"({'; '.join(f['channel'] + ': ' + f['error'] for f in failed)}); invite the app to the channel "
            "or fix slack_channel in finops.yaml; a retry sends only those",
            summary,
        )
    return summary


def _claim_key(ctx: JobContext, key: str) -> bool:
    """Insert ``key`` into alert_state; False when it is there already (sent before, or by a concurrent run)."""
    from sqlalchemy.exc import IntegrityError

    from tools.store.models import AlertState

    try:
        with ctx.db.session() as s:
            s.add(
                AlertState(
                    alert_key=key, fingerprint=hashlib.sha256(key.encode()).hexdigest(), fired_at=ctx.now
                )
            )
    except IntegrityError:
        return False
    return True


def _release_key(ctx: JobContext, key: str) -> None:
    from sqlalchemy import delete

    from tools.store.models import AlertState

    with ctx.db.session() as s:
        s.execute(delete(AlertState).where(AlertState.alert_key == key))
