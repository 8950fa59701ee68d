"""The app database behaves the same on SQLite and PostgreSQL (each test runs on both)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from config.model import FinOpsConfig
from tests.conftest import FixedClock
from tests.focus_builder import row, write_focus
from tests.usage_builder import ingest, usage
from tools.errors import IngestError
from tools.ingest.service import Ingestor
from tools.store.db import HEAD_REVISION, Database, current_revision, head_revision
from tools.store.lake import Lake
from tools.store.models import IngestedFile, IngestionRun, LakePartition


def test_migrations_create_the_ledger_and_are_idempotent(db: Database) -> None:
    db.migrate()
    assert current_revision(db.engine) == HEAD_REVISION == head_revision()
    assert {"ingestion_runs", "ingested_files", "lake_partitions"} <= set(
        inspect(db.engine).get_table_names()
    )


def test_datetimes_round_trip_as_aware_utc(db: Database) -> None:
    when = datetime(2024, 9, 21, 8, 30, tzinfo=UTC)
    with db.session() as s:
        s.add(
            IngestionRun(
                id="r1",
                kind="focus",
                source="s",
                status="running",
                started_at=when,
                files=0,
                rows_read=0,
                rows_accepted=0,
                rows_rejected=0,
            )
        )
    with db.session() as s:
        run = s.get(IngestionRun, "r1")
        assert run is not None and run.started_at == when and run.started_at.tzinfo is not None


def test_session_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError), db.session() as s:
        s.add(
            IngestionRun(
                id="r2",
                kind="focus",
                source="s",
                status="running",
                started_at=datetime.now(UTC),
                files=0,
                rows_read=0,
                rows_accepted=0,
                rows_rejected=0,
            )
        )
        s.flush()
        raise RuntimeError("boom")
    with db.session() as s:
        assert s.get(IngestionRun, "r2") is None


def test_ledger_makes_reingest_idempotent_on_both_backends(
    db: Database, lake: Lake, config: FinOpsConfig, clock: FixedClock, tmp_path: Path
) -> None:
    ingestor = Ingestor(db, lake, config, clock)
    path = write_focus(tmp_path / "b.csv", [row("3"), row("4", resource="i-2")])
    ingestor.ingest_focus([path], "aws")
    again = ingestor.ingest_focus([path], "aws")
    assert [f.status for f in again.files] == ["skipped"]
    ingest(ingestor, tmp_path, [usage(cost="1", key="a")])
    with db.session() as s:
        files = s.scalars(select(IngestedFile)).all()
        parts = s.scalars(select(LakePartition).order_by(LakePartition.kind)).all()
        runs = s.scalars(select(IngestionRun)).all()
    assert len(files) == 2 and {f.kind for f in files} == {"focus", "otel"}
    assert [(p.kind, p.rows) for p in parts] == [("cost", 2), ("usage", 1)]
    assert {r.status for r in runs} == {"succeeded"}


def test_failed_ingest_is_recorded_and_leaves_no_file_row(
    db: Database, lake: Lake, config: FinOpsConfig, clock: FixedClock, tmp_path: Path
) -> None:
    ingestor = Ingestor(db, lake, config, clock)
    with pytest.raises(IngestError):
        ingestor.ingest_focus([write_focus(tmp_path / "bad.csv", [row("nope")])], "aws")
    with db.session() as s:
        assert s.scalars(select(IngestedFile)).all() == []
        (run,) = s.scalars(select(IngestionRun)).all()
    assert run.status == "failed" and run.message is not None and "BilledCost" in run.message
