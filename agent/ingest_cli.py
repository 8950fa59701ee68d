"""CLI side of ingestion: picks the parser for a kind, shows progress and a summary."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from config.model import FinOpsConfig
from tools.ingest.records import BillingRecord, Rejected, UsageRecord
from tools.ingest.service import Ingestor, IngestReport
from tools.store.db import Database
from tools.store.lake import Lake

Parser = Callable[[Path], Iterable[UsageRecord | BillingRecord | Rejected]]


def parser_for(kind: str) -> Parser:
    if kind == "openai-usage":
        from tools.ingest.openai_usage import parse_openai_usage

        return parse_openai_usage
    if kind == "openai-costs":
        from tools.ingest.openai_usage import parse_openai_costs

        return parse_openai_costs
    if kind == "anthropic-usage":
        from tools.ingest.anthropic_usage import parse_anthropic_usage

        return parse_anthropic_usage
    if kind == "anthropic-costs":
        from tools.ingest.anthropic_usage import parse_anthropic_costs

        return parse_anthropic_costs
    if kind == "otel":
        from tools.ingest.otel import parse_otel_spans

        return parse_otel_spans
    if kind == "litellm":
        from tools.ingest.litellm import parse_litellm_spend_logs

        return parse_litellm_spend_logs
    raise ValueError(f"unknown ingest kind {kind!r}")


def ingest(
    db: Database,
    lake: Lake,
    config: FinOpsConfig,
    kind: str,
    files: list[Path],
    source: str,
    *,
    skip_bad_rows: bool = False,
    force: bool = False,
    on_progress: Callable[[int, int, Path], None] | None = None,
) -> IngestReport:
    ingestor = Ingestor(db, lake, config)
    if kind == "focus":
        return ingestor.ingest_focus(
            files, source, skip_bad_rows=skip_bad_rows, force=force, on_progress=on_progress
        )
    return ingestor.ingest_records(
        kind,
        files,
        source,
        parser_for(kind),
        skip_bad_rows=skip_bad_rows,
        force=force,
        on_progress=on_progress,
    )


def run_ingest(
    db: Database,
    lake: Lake,
    config: FinOpsConfig,
    kind: str,
    files: list[Path],
    source: str,
    *,
    skip_bad_rows: bool,
    force: bool,
    fmt: str,
) -> IngestReport:
    progress_cb = None
    progress: Any = None
    if sys.stderr.isatty() and fmt == "table":
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
        )
        task = progress.add_task(f"ingest {kind}", total=len(files))

        def progress_cb(done: int, total: int, path: Path) -> None:
            progress.update(task, completed=done, total=total, description=f"ingest {kind}: {path.name}")

        progress.start()
    try:
        report = ingest(
            db,
            lake,
            config,
            kind,
            files,
            source,
            skip_bad_rows=skip_bad_rows,
            force=force,
            on_progress=progress_cb,
        )
    finally:
        if progress is not None:
            progress.stop()
    print_report(report, fmt)
    return report


def report_dict(report: IngestReport) -> dict[str, Any]:
    return {
        "run_id": report.run_id or None,
        "kind": report.kind,
        "source": report.source,
        "rows_read": report.rows_read,
        "rows_accepted": report.rows_accepted,
        "rows_rejected": report.rows_rejected,
        "files": [
            {
                "path": str(f.path),
                "status": f.status,
                "rows_read": f.rows_read,
                "rows_accepted": f.rows_accepted,
                "rows_rejected": f.rows_rejected,
                "billing_periods": list(f.billing_periods),
                "rejects": str(f.rejects_path) if f.rejects_path else None,
            }
            for f in report.files
        ],
        "partitions": [
            {"kind": k.kind, "billing_period": k.billing_period, "account": k.account}
            for k in report.partitions
        ],
    }


def print_report(report: IngestReport, fmt: str) -> None:
    from agent.output import dumps_json

    if fmt == "json":
        print(dumps_json(report_dict(report)))
        return
    for f in report.files:
        if f.status == "skipped":
            print(f"{f.path}: already ingested (same content); skipped. Use --force to ingest it again.")
        else:
            line = (
                f"{f.path}: {f.rows_accepted:,} of {f.rows_read:,} rows ingested"
                f" ({', '.join(f.billing_periods) or 'no billing period'})"
            )
            if f.rows_rejected:
                line += f"; {f.rows_rejected:,} rejected -> {f.rejects_path}"
            print(line)
    if report.partitions:
        print(
            f"{len(report.partitions)} partition(s) written for source {report.source!r} (run {report.run_id})"
        )


def show_log(db: Database, limit: int, fmt: str) -> None:
    from sqlalchemy import select

    from agent.output import dumps_json, print_table, to_csv
    from tools.store.models import IngestionRun

    with db.session() as session:
        runs = session.scalars(
            select(IngestionRun).order_by(IngestionRun.started_at.desc()).limit(limit)
        ).all()
        rows = [
            {
                "run_id": r.id,
                "kind": r.kind,
                "source": r.source,
                "status": r.status,
                "started_at": r.started_at.isoformat(timespec="seconds"),
                "files": r.files,
                "rows_read": r.rows_read,
                "rows_accepted": r.rows_accepted,
                "rows_rejected": r.rows_rejected,
                "message": r.message,
            }
            for r in runs
        ]
    cols = [
        "started_at",
        "kind",
        "source",
        "status",
        "files",
        "rows_read",
        "rows_accepted",
        "rows_rejected",
        "run_id",
    ]
    if fmt == "json":
        print(dumps_json(rows))
    elif fmt == "csv":
        print(to_csv(rows, [*cols, "message"]), end="")
    else:
        print_table(rows, cols, title="Ingestion runs")
