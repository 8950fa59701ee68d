"""Ingestion: files -> cost lake partitions, recorded in the ledger. A file lands whole or not at all.

* FOCUS exports are a *delivery*: the files given to one call that cover the same (source, billing
  period, billing account) together replace that partition (a restated export replaces the period).
* Provider API pages and usage logs are *merged* by natural record key: fetching an overlapping window
  again, or re-ingesting a file, replaces the records it repeats and never counts them twice.
* The same file (by SHA-256) is skipped when it is already the active source of its data.
"""

from __future__ import annotations

import csv
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
from sqlalchemy import select

from config.model import FinOpsConfig
from tools.errors import IngestError, Location
from tools.ingest import focus
from tools.ingest.records import BillingRecord, Rejected, UsageRecord
from tools.store.db import Database
from tools.store.lake import Lake, PartitionKey, fetch_one, sql_string
from tools.store.models import IngestedFile, IngestionRun, LakePartition
from tools.store.schema import COST_FACT_COLUMNS, COST_FACT_NAMES, USAGE_FACT_COLUMNS, USAGE_FACT_NAMES
from tools.taxonomy import TAG_VALUES, dimension_sql

if TYPE_CHECKING:
    from tools.ingest.pricing import ModelPrice

Clock = Callable[[], datetime]
ProgressCallback = Callable[[int, int, Path], None]

MAX_REPORTED_ERRORS = 10

LLM_PROVIDER_SQL = """(CASE
    WHEN lower(coalesce(service, '')) LIKE '%bedrock%' THEN 'aws.bedrock'
    WHEN lower(coalesce(service, '')) LIKE '%openai%' AND lower(coalesce(provider, '')) LIKE '%microsoft%'
        THEN 'azure.ai.openai'
    WHEN lower(coalesce(service, '')) LIKE '%vertex%' AND lower(coalesce(service_subcategory, '')) = 'generative ai'
        THEN 'gcp.vertex_ai'
    WHEN lower(coalesce(provider, '')) = 'openai' THEN 'openai'
    WHEN lower(coalesce(provider, '')) = 'anthropic' THEN 'anthropic'
END)"""

TAG_MODEL_SQL = "coalesce(json_extract_string(tags, '$.\"model\"'), json_extract_string(tags, '$.\"gen_ai.request.model\"'))"

COST_WORKLOAD_FALLBACK = """(CASE
    WHEN lower(concat_ws(' ', resource_name, resource_type, sku, charge_description)) LIKE '%train%'
        THEN 'training'
    WHEN llm_provider IS NOT NULL THEN 'inference'
END)"""


@dataclass
class FileReport:
    path: Path
    status: str  # ingested | skipped (already ingested)
    rows_read: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    billing_periods: tuple[str, ...] = ()
    rejects_path: Path | None = None


@dataclass
class IngestReport:
    run_id: str
    kind: str
    source: str
    files: list[FileReport] = field(default_factory=list)
    partitions: list[PartitionKey] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_accepted(self) -> int:
        return sum(f.rows_accepted for f in self.files)

    @property
    def rows_rejected(self) -> int:
        return sum(f.rows_rejected for f in self.files)


def file_checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Ingestor:
    """Ingests files into the lake and records them in the ledger."""

    def __init__(self, db: Database, lake: Lake, config: FinOpsConfig, clock: Clock = _utcnow) -> None:
        self.db = db
        self.lake = lake
        self.config = config
        self.clock = clock

    # ----- ledger -------------------------------------------------------------------------------------
    def _already_ingested(self, kind: str, source: str, checksum: str) -> bool:
        with self.db.session() as session:
            found = session.scalar(
                select(IngestedFile.id)
                .where(
                    IngestedFile.kind == kind,
                    IngestedFile.source == source,
                    IngestedFile.checksum == checksum,
                    IngestedFile.status == "active",
                )
                .limit(1)
            )
        return found is not None

    def _start_run(self, kind: str, source: str, files: int) -> str:
        run_id = str(uuid.uuid4())
        with self.db.session() as session:
            session.add(
                IngestionRun(
                    id=run_id,
                    kind=kind,
                    source=source,
                    status="running",
                    started_at=self.clock(),
                    files=files,
                    rows_read=0,
                    rows_accepted=0,
                    rows_rejected=0,
                )
            )
        return run_id

    def _discard_run(self, run_id: str) -> None:
        with self.db.session() as session:
            run = session.get(IngestionRun, run_id)
            if run is not None:
                session.delete(run)

    def _fail_run(self, run_id: str, message: str) -> None:
        with self.db.session() as session:
            run = session.get(IngestionRun, run_id)
            if run is not None:
                run.status = "failed"
                run.finished_at = self.clock()
                run.message = message[:4000]

    def _finish_run(
        self,
        report: IngestReport,
        written: dict[PartitionKey, int],
        checksums: dict[Path, tuple[str, int]],
        *,
        replaces: bool,
    ) -> None:
        now = self.clock()
        with self.db.session() as session:
            replaced_paths = set()
            for key, rows in written.items():
                path = str(self.lake.partition_path(key))
                replaced_paths.add(path)
                existing = session.scalar(
                    select(LakePartition).where(
                        LakePartition.kind == key.kind,
                        LakePartition.source == key.source,
                        LakePartition.billing_period == key.billing_period,
                        LakePartition.account == key.account,
                    )
                )
                if existing is None:
                    session.add(
                        LakePartition(
                            kind=key.kind,
                            source=key.source,
                            billing_period=key.billing_period,
                            account=key.account,
                            path=path,
                            rows=rows,
                            run_id=report.run_id,
                            updated_at=now,
                        )
                    )
                else:
                    existing.rows, existing.run_id, existing.updated_at = rows, report.run_id, now
            if replaces:
                # files whose data was in a replaced partition are superseded by this delivery
                for old in session.scalars(
                    select(IngestedFile).where(
                        IngestedFile.kind == report.kind,
                        IngestedFile.source == report.source,
                        IngestedFile.status == "active",
                    )
                ):
                    if replaced_paths & set(json.loads(old.partitions)):
                        old.status = "superseded"
            for fr in report.files:
                if fr.status != "ingested":
                    continue
                checksum, size = checksums[fr.path]
                partitions = sorted(
                    str(self.lake.partition_path(k))
                    for k in written
                    if k.billing_period in fr.billing_periods
                )
                session.add(
                    IngestedFile(
                        run_id=report.run_id,
                        kind=report.kind,
                        source=report.source,
                        path=str(fr.path),
                        checksum=checksum,
                        size_bytes=size,
                        billing_periods=",".join(fr.billing_periods),
                        partitions=json.dumps(partitions),
                        rows_read=fr.rows_read,
                        rows_accepted=fr.rows_accepted,
                        rows_rejected=fr.rows_rejected,
                        rejects_path=str(fr.rejects_path) if fr.rejects_path else None,
                        status="active",
                        ingested_at=now,
                    )
                )
            run = session.get(IngestionRun, report.run_id)
            assert run is not None
            run.status, run.finished_at = "succeeded", now
            run.rows_read, run.rows_accepted, run.rows_rejected = (
                report.rows_read,
                report.rows_accepted,
                report.rows_rejected,
            )

    def _select_new(
        self, kind: str, source: str, paths: Sequence[Path], force: bool, report: IngestReport
    ) -> tuple[list[Path], dict[Path, tuple[str, int]]]:
        todo: list[Path] = []
        checksums: dict[Path, tuple[str, int]] = {}
        seen: set[str] = set()
        for path in paths:
            if not path.is_file():
                raise IngestError(Location(path), "file not found", "a path to an existing file")
            checksum = file_checksum(path)
            if checksum in seen or (not force and self._already_ingested(kind, source, checksum)):
                report.files.append(FileReport(path, "skipped"))
                continue
            seen.add(checksum)
            checksums[path] = (checksum, path.stat().st_size)
            todo.append(path)
        return todo, checksums

    def _looks_ingested(self, kind: str, source: str, path: Path) -> bool:
        """Cheap hint (same path and size as an active ledger entry) that a file may be a re-delivery."""
        with self.db.session() as session:
            found = session.scalar(
                select(IngestedFile.id)
                .where(
                    IngestedFile.kind == kind,
                    IngestedFile.source == source,
                    IngestedFile.path == str(path),
                    IngestedFile.size_bytes == path.stat().st_size,
                    IngestedFile.status == "active",
                )
                .limit(1)
            )
        return found is not None

    def _plan_checksums(
        self, kind: str, source: str, paths: Sequence[Path], force: bool, report: IngestReport, pool: Executor
    ) -> tuple[list[Path], dict[Path, Future[str]]]:
        """Files to stage, each with its SHA-256 under way in the background (it overlaps the staging).

        A file that looks like a re-delivery is hashed first, so an unchanged file is skipped unread.
        """
        todo: list[Path] = []
        hashes: dict[Path, Future[str]] = {}
        for path in paths:
            if not path.is_file():
                raise IngestError(Location(path), "file not found", "a path to an existing file")
            future = pool.submit(file_checksum, path)
            if (
                not force
                and self._looks_ingested(kind, source, path)
                and self._already_ingested(kind, source, future.result())
            ):
                report.files.append(FileReport(path, "skipped"))
                continue
            todo.append(path)
            hashes[path] = future
        return todo, hashes

    # ----- FOCUS ---------------------------------------------------------------------------------------
    def ingest_focus(
        self,
        paths: Sequence[Path],
        source: str,
        *,
        skip_bad_rows: bool = False,
        force: bool = False,
        rejects_dir: Path | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> IngestReport:
        report = IngestReport(run_id="", kind="focus", source=source)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="checksum") as pool:
            todo, hashes = self._plan_checksums("focus", source, paths, force, report, pool)
            if not todo:
                return report
            report.run_id = self._start_run("focus", source, len(todo))
            try:
                return self._ingest_focus_files(
                    report, todo, hashes, source, skip_bad_rows, force, rejects_dir, on_progress
                )
            except BaseException as exc:
                self._fail_run(report.run_id, str(exc))
                raise

    def _ingest_focus_files(
        self,
        report: IngestReport,
        todo: list[Path],
        hashes: dict[Path, Future[str]],
        source: str,
        skip_bad_rows: bool,
        force: bool,
        rejects_dir: Path | None,
        on_progress: ProgressCallback | None,
    ) -> IngestReport:
        checksums: dict[Path, tuple[str, int]] = {}
        seen: set[str] = set()
        con = self.lake.connect(for_ingest=True)
        try:
            con.execute("SET TimeZone='UTC'")
            focus.create_stage(con, "stage")
            for i, path in enumerate(todo):
                if on_progress:
                    on_progress(i, len(todo), path)
                staged = focus.stage_file(con, path, "stage", i)
                checksum = hashes[path].result()
                if checksum in seen or (not force and self._already_ingested("focus", source, checksum)):
                    con.execute(f"DELETE FROM stage WHERE file_id = {i}")
                    report.files.append(FileReport(path, "skipped"))
                    continue
                seen.add(checksum)
                checksums[path] = (checksum, path.stat().st_size)
                fr = FileReport(
                    path,
                    "ingested",
                    staged.rows_read,
                    staged.rows_read - staged.rows_bad,
                    staged.rows_bad,
                    staged.billing_periods,
                )
                if staged.rows_bad:
                    if not skip_bad_rows:
                        bad = focus.find_bad_rows(con, path, MAX_REPORTED_ERRORS)
                        raise IngestError(
                            bad[0].location,
                            f"{staged.rows_bad} bad row(s); nothing was ingested. First: {bad[0].reason}"
                            + "".join(
                                f"\n  {b.location}: {b.reason} (expected {b.expected})" for b in bad[1:]
                            ),
                            f"{bad[0].expected}; or pass --skip-bad-rows to keep the good rows and write "
                            "the bad ones to a rejects file",
                        )
                    fr.rejects_path = self._write_rejects(path, focus.find_bad_rows(con, path), rejects_dir)
                report.files.append(fr)
            if on_progress:
                on_progress(len(todo), len(todo), todo[-1])
            if not checksums:  # every file turned out to be ingested already: the run changed nothing
                self._discard_run(report.run_id)
                report.run_id = ""
                return report
            written = self._write_focus_partitions(con, source, report.run_id)
            report.partitions = sorted(written, key=lambda k: (k.billing_period, k.account))
            self._finish_run(report, written, checksums, replaces=True)
            return report
        finally:
            con.close()

    def _cost_select(
        self,
        table: str,
        source: str,
        run_id: str,
        *,
        llm_provider_sql: str = LLM_PROVIDER_SQL,
        model_sql: str = TAG_MODEL_SQL,
        record_key_sql: str = "CAST(NULL AS VARCHAR)",
    ) -> str:
        """SELECT of cost facts from a staged table: dimensions resolved through the taxonomy."""
        dims = dimension_sql(
            self.config.taxonomy,
            "tags",
            ["sub_account", "billing_account"],
            fallbacks={"workload": COST_WORKLOAD_FALLBACK},
        )
        exprs = {
            "source": sql_string(source),
            "record_key": record_key_sql,
            "model": model_sql,
            "run_id": sql_string(run_id),
            **dims.dimensions,
        }
        cols = ", ".join(
            f"CAST({exprs.get(name, name)} AS {typ}) AS {name}" for name, typ in COST_FACT_COLUMNS
        )
        return (
            f"SELECT {cols} FROM (SELECT *, {llm_provider_sql} AS llm_provider, {dims.tag_values} AS {TAG_VALUES} "
            f"FROM {table} WHERE NOT bad)"
        )

    def _write_focus_partitions(
        self, con: duckdb.DuckDBPyConnection, source: str, run_id: str
    ) -> dict[PartitionKey, int]:
        con.execute(f"CREATE OR REPLACE TEMP VIEW facts AS {self._cost_select('stage', source, run_id)}")
        keys = con.execute(
            "SELECT DISTINCT billing_period, coalesce(billing_account, '') FROM stage WHERE NOT bad ORDER BY ALL"
        ).fetchall()
        written: dict[PartitionKey, int] = {}
        with self.lake.write_lock():
            for period, account in keys:
                key = PartitionKey("cost", source, str(period), str(account))
                where = (
                    f"billing_period = {sql_string(str(period))} AND "
                    f"coalesce(billing_account, '') = {sql_string(str(account))}"
                )
                written[key] = self.lake.write_partition(con, key, f"SELECT * FROM facts WHERE {where}")
        return written

    def _write_rejects(self, path: Path, rejected: Iterable[Rejected], rejects_dir: Path | None) -> Path:
        out_dir = rejects_dir or (self.lake.root.parent / "rejects")
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / f"{path.name}.{self.clock().strftime('%Y%m%dT%H%M%SZ')}.rejects.csv"
        with open(out, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "line", "column", "key", "reason", "expected"])
            for r in rejected:
                loc = r.location
                writer.writerow(
                    [loc.path, loc.line or "", loc.column or "", loc.key or "", r.reason, r.expected or ""]
                )
        return out

    # ----- API pages and usage logs ----------------------------------------------------------------------
    def ingest_records(
        self,
        kind: str,
        paths: Sequence[Path],
        source: str,
        parse: Callable[[Path], Iterable[UsageRecord | BillingRecord | Rejected]],
        *,
        skip_bad_rows: bool = False,
        force: bool = False,
        rejects_dir: Path | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> IngestReport:
        """Ingest usage (UsageRecord) or provider billing (BillingRecord) files, merged by record key."""
        report = IngestReport(run_id="", kind=kind, source=source)
        todo, checksums = self._select_new(kind, source, paths, force, report)
        if not todo:
            return report
        report.run_id = self._start_run(kind, source, len(todo))
        tmp = self.lake.tmp_dir() / f"stage-{report.run_id}.jsonl"
        con = self.lake.connect(for_ingest=True)
        try:
            con.execute("SET TimeZone='UTC'")
            usage_rows = billing_rows = 0
            with open(tmp, "w", encoding="utf-8") as out:
                for i, path in enumerate(todo):
                    if on_progress:
                        on_progress(i, len(todo), path)
                    fr, n_usage, n_billing = self._stage_records(path, parse, out, skip_bad_rows, rejects_dir)
                    usage_rows += n_usage
                    billing_rows += n_billing
                    report.files.append(fr)
            if on_progress:
                on_progress(len(todo), len(todo), todo[-1])
            written: dict[PartitionKey, int] = {}
            if usage_rows:
                written.update(self._merge_usage(con, tmp, source, report.run_id))
            if billing_rows:
                written.update(self._merge_billing(con, tmp, source, report.run_id))
            report.partitions = sorted(written, key=lambda k: (k.kind, k.billing_period, k.account))
            self._finish_run(report, written, checksums, replaces=False)
            return report
        except BaseException as exc:
            self._fail_run(report.run_id, str(exc))
            raise
        finally:
            con.close()
            tmp.unlink(missing_ok=True)

    def _stage_records(
        self,
        path: Path,
        parse: Callable[[Path], Iterable[UsageRecord | BillingRecord | Rejected]],
        out: object,
        skip_bad_rows: bool,
        rejects_dir: Path | None,
    ) -> tuple[FileReport, int, int]:
        from tools.ingest.pricing import price_usage

        overrides = price_overrides(self.config)
        batch_discount = self.config.pricing.batch_discount
        rejected: list[Rejected] = []
        periods: set[str] = set()
        n_usage = n_billing = 0
        lines: list[str] = []
        for item in parse(path):
            if isinstance(item, Rejected):
                rejected.append(item)
                continue
            if isinstance(item, UsageRecord):
                priced = price_usage(item, overrides, batch_discount)
                lines.append(json.dumps(_usage_row(item, priced.cost, priced.source)))
                n_usage += 1
            else:
                lines.append(json.dumps(_billing_row(item)))
                n_billing += 1
            periods.add(item.start.astimezone(UTC).strftime("%Y-%m"))
        if rejected and not skip_bad_rows:
            first = rejected[0]
            more = "".join(f"\n  {r.location}: {r.reason}" for r in rejected[1:MAX_REPORTED_ERRORS])
            raise IngestError(
                first.location,
                f"{len(rejected)} bad record(s); nothing was ingested. First: {first.reason}{more}",
                (first.expected or "a valid record") + "; or pass --skip-bad-rows",
            )
        out.write("".join(line + "\n" for line in lines))  # type: ignore[attr-defined]
        fr = FileReport(
            path,
            "ingested",
            n_usage + n_billing + len(rejected),
            n_usage + n_billing,
            len(rejected),
            tuple(sorted(periods)),
        )
        if rejected:
            fr.rejects_path = self._write_rejects(path, rejected, rejects_dir)
        return fr, n_usage, n_billing

    def _read_stage(
        self, con: duckdb.DuckDBPyConnection, tmp: Path, row_type: str, columns: dict[str, str]
    ) -> None:
        spec = "{" + ", ".join(f"{sql_string(k)}: {sql_string(v)}" for k, v in columns.items()) + "}"
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE raw_{row_type} AS SELECT * FROM read_json({sql_string(str(tmp))}, "
            f"format='newline_delimited', columns={spec}) WHERE row_type = {sql_string(row_type)}"
        )

    def _merge_usage(
        self, con: duckdb.DuckDBPyConnection, tmp: Path, source: str, run_id: str
    ) -> dict[PartitionKey, int]:
        self._read_stage(con, tmp, "usage", USAGE_STAGE_COLUMNS)
        acct = [f"acct_{k}" for k in ACCOUNT_ATTRIBUTES]
        dims = dimension_sql(self.config.taxonomy, "attributes", acct, fallbacks={"workload": "'inference'"})
        exprs = {
            "day": "CAST(ts AS DATE)",
            "billing_period": "strftime(ts, '%Y-%m')",
            "source": sql_string(source),
            "total_tokens": "input_uncached_tokens + cache_read_tokens + cache_write_tokens + output_tokens"
            " + reasoning_tokens",
            "account": f"coalesce({', '.join(acct)})",
            "run_id": sql_string(run_id),
            **dims.dimensions,
        }
        cols = ", ".join(f"CAST({exprs.get(n, n)} AS {t}) AS {n}" for n, t in USAGE_FACT_COLUMNS)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE new_usage AS SELECT {cols} "
            f"FROM (SELECT *, {dims.tag_values} AS {TAG_VALUES} FROM raw_usage)"
        )
        return self._merge_partitions(con, "usage", "new_usage", source, USAGE_FACT_NAMES)

    def _merge_billing(
        self, con: duckdb.DuckDBPyConnection, tmp: Path, source: str, run_id: str
    ) -> dict[PartitionKey, int]:
        self._read_stage(con, tmp, "billing", BILLING_STAGE_COLUMNS)
        con.execute("""
            CREATE OR REPLACE TEMP TABLE billing_stage AS SELECT
                CAST(ts AS DATE) AS day, strftime(ts, '%Y-%m') AS billing_period, record_key,
                provider_name AS provider, billing_account, NULL AS billing_account_name,
                sub_account, NULL AS sub_account_name, service, 'AI and Machine Learning' AS service_category,
                'Generative AI' AS service_subcategory, NULL AS region, NULL AS resource, NULL AS resource_name,
                NULL AS resource_type, line_item AS sku, 'Usage' AS charge_category, NULL AS charge_class,
                'Usage-Based' AS charge_frequency, line_item AS charge_description, NULL AS pricing_unit,
                NULL AS consumed_quantity, NULL AS consumed_unit, amount AS billed_cost, amount AS effective_cost,
                amount AS list_cost, currency, attributes AS tags, 1 AS row_count, false AS bad,
                llm_provider AS api_llm_provider, model AS api_model
            FROM raw_billing
        """)
        # provider billing APIs say which provider and model a line item is for: keep them
        exprs = self._cost_select(
            "billing_stage",
            source,
            run_id,
            llm_provider_sql="api_llm_provider",
            model_sql="api_model",
            record_key_sql="record_key",
        )
        con.execute(f"CREATE OR REPLACE TEMP TABLE new_billing AS {exprs}")
        return self._merge_partitions(con, "cost", "new_billing", source, COST_FACT_NAMES)

    def _merge_partitions(
        self, con: duckdb.DuckDBPyConnection, kind: str, table: str, source: str, names: Sequence[str]
    ) -> dict[PartitionKey, int]:
        periods = [
            str(r[0])
            for r in con.execute(f"SELECT DISTINCT billing_period FROM {table} ORDER BY 1").fetchall()
        ]
        cols = ", ".join(names)
        written: dict[PartitionKey, int] = {}
        with self.lake.write_lock():
            for period in periods:
                key = PartitionKey(kind, source, period, "_all")
                new = f"SELECT {cols} FROM {table} WHERE billing_period = {sql_string(period)}"
                old_path = self.lake.partition_path(key)
                if old_path.exists():
                    old = (
                        f"SELECT {cols} FROM read_parquet({sql_string(str(old_path))}) WHERE record_key NOT IN "
                        f"(SELECT record_key FROM {table} WHERE billing_period = {sql_string(period)})"
                    )
                    query = f"{old} UNION ALL {new}"
                else:
                    query = new
                written[key] = self.lake.write_partition(con, key, query)
        return written


ACCOUNT_ATTRIBUTES = ("project_id", "workspace_id", "api_key_id", "team_id")

USAGE_STAGE_COLUMNS = {
    "row_type": "VARCHAR",
    "record_key": "VARCHAR",
    "source_format": "VARCHAR",
    "ts": "TIMESTAMPTZ",
    "provider": "VARCHAR",
    "model": "VARCHAR",
    "operation": "VARCHAR",
    "requests": "BIGINT",
    "input_uncached_tokens": "BIGINT",
    "cache_read_tokens": "BIGINT",
    "cache_write_tokens": "BIGINT",
    "output_tokens": "BIGINT",
    "reasoning_tokens": "BIGINT",
    "cost": "DECIMAL(38,10)",
    "price_source": "VARCHAR",
    "currency": "VARCHAR",
    "batch": "BOOLEAN",
    "service_tier": "VARCHAR",
    "task_id": "VARCHAR",
    "task_status": "VARCHAR",
    "adjusted_count": "BIGINT",
    "attributes": "VARCHAR",
    **{f"acct_{k}": "VARCHAR" for k in ACCOUNT_ATTRIBUTES},
}
BILLING_STAGE_COLUMNS = {
    "row_type": "VARCHAR",
    "record_key": "VARCHAR",
    "ts": "TIMESTAMPTZ",
    "provider_name": "VARCHAR",
    "llm_provider": "VARCHAR",
    "billing_account": "VARCHAR",
    "sub_account": "VARCHAR",
    "service": "VARCHAR",
    "line_item": "VARCHAR",
    "model": "VARCHAR",
    "amount": "DECIMAL(38,10)",
    "currency": "VARCHAR",
    "attributes": "VARCHAR",
}

_PROVIDER_NAMES = {"openai": "OpenAI", "anthropic": "Anthropic"}


def _usage_row(r: UsageRecord, cost: Decimal | None, price_source: str) -> dict[str, object]:
    t = r.tokens
    return {
        "row_type": "usage",
        "record_key": f"{r.source_format}:{r.record_key}",
        "source_format": r.source_format,
        "ts": r.start.astimezone(UTC).isoformat(),
        "provider": r.provider,
        "model": r.model,
        "operation": r.operation,
        "requests": r.requests,
        "input_uncached_tokens": t.input_uncached,
        "cache_read_tokens": t.cache_read,
        "cache_write_tokens": t.cache_write,
        "output_tokens": t.output,
        "reasoning_tokens": t.reasoning,
        "cost": str(cost) if cost is not None else None,
        "price_source": price_source,
        "currency": r.currency.upper(),
        "batch": r.batch,
        "service_tier": r.service_tier,
        "task_id": r.task_id,
        "task_status": r.task_status,
        "adjusted_count": r.adjusted_count,
        "attributes": json.dumps(dict(r.attributes), sort_keys=True),
        **{f"acct_{k}": r.attributes.get(k) for k in ACCOUNT_ATTRIBUTES},
    }


def _billing_row(r: BillingRecord) -> dict[str, object]:
    attrs = dict(r.attributes)
    return {
        "row_type": "billing",
        "record_key": f"{r.source_format}:{r.record_key}",
        "ts": r.start.astimezone(UTC).isoformat(),
        "provider_name": _PROVIDER_NAMES.get(r.provider, r.provider),
        "llm_provider": r.provider,
        "billing_account": attrs.get("organization_id", r.provider),
        "sub_account": attrs.get("project_id") or attrs.get("workspace_id"),
        "service": f"{_PROVIDER_NAMES.get(r.provider, r.provider)} API",
        "line_item": r.line_item,
        "model": r.model,
        "amount": str(r.amount),
        "currency": r.currency.upper(),
        "attributes": json.dumps(attrs, sort_keys=True),
    }


def price_overrides(config: FinOpsConfig) -> dict[str, ModelPrice]:
    from tools.ingest.pricing import ModelPrice

    out: dict[str, ModelPrice] = {}
    for o in config.pricing.overrides:
        out[o.model] = ModelPrice(
            input=o.input_per_mtok,
            output=o.output_per_mtok,
            cache_read=o.cache_read_per_mtok if o.cache_read_per_mtok is not None else o.input_per_mtok,
            cache_write=o.cache_write_per_mtok if o.cache_write_per_mtok is not None else o.input_per_mtok,
        )
    return out


def partition_rows(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    return int(fetch_one(con, f"SELECT count(*) FROM read_parquet({sql_string(str(path))})")[0])
