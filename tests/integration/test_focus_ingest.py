"""FOCUS ingestion: real-export quirks, idempotence, restatement, bad input, taxonomy."""

from __future__ import annotations

import csv
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import FIXTURES
from tests.focus_builder import row, total, write_focus
from tools.costs import CostQuery, open_costs, query_costs
from tools.errors import IngestError
from tools.ingest.service import Ingestor
from tools.periods import Period
from tools.store.lake import Lake
from tools.store.models import IngestedFile, IngestionRun, LakePartition

SEPT = Period(date(2024, 9, 1), date(2024, 10, 1), "2024-09")


def _total(lake: Lake, period: Period = SEPT, metric: str = "effective", **filters: list[str]) -> Decimal:
    return query_costs(open_costs(lake), CostQuery(period, metric=metric, filters=filters)).total  # type: ignore[arg-type]


def _by(lake: Lake, dims: tuple[str, ...], period: Period = SEPT) -> dict[tuple[str, ...], Decimal]:
    result = query_costs(open_costs(lake), CostQuery(period, dims))
    return {tuple(r[d] for d in dims): r["cost"] for r in result.rows}


def test_focus_spec_examples_ingest_and_reconcile_with_the_source(ingestor: Ingestor, lake: Lake) -> None:
    files = sorted((FIXTURES / "focus" / "spec").glob("*.csv"))
    report = ingestor.ingest_focus(files, "spec", skip_bad_rows=True)
    expected = Decimal(0)
    for f in files:
        with open(f, encoding="utf-8-sig") as handle:
            for r in csv.DictReader(handle):
                if "30:00:00" in (r.get("ChargePeriodEnd") or ""):
                    continue  # the spec's own typo (hour 30): rejected
                expected += Decimal(r["BilledCost"].replace("$", "").replace(",", ""))
    got = _total(lake, Period(date(2020, 1, 1), date(2030, 1, 1), "all"), "billed")
    assert abs(got - expected) <= Decimal("0.000001")
    assert report.rows_rejected == 2


def test_focus_real_export_quirks_are_accepted(ingestor: Ingestor, lake: Lake, tmp_path: Path) -> None:
    rows = [
        row(
            "10.5",
            start="2024-09-01T00:00:00Z",
            tags={"team": "search", "env": "Production", "cpu": 4, "spot": True, "note": None},
        ),
        row(
            "2.25",
            start="2024-09-02 00:00:00",
            end="2024-09-02 01:00:00",
            charge_category="usage",
            frequency="usage-based",
            tags={"Team": "search"},
        ),
        row("-3.00", charge_category="Credit", frequency="One-Time", resource="credit-1"),
        row(
            "7.0000000001",
            start="2024-09-03T05:00:00Z",
            provider="AWS",
            x_UsageType="BoxUsage:p4d.24xlarge",
            ResourceGroupName="rg-1",
        ),
    ]
    path = write_focus(tmp_path / "quirks.csv", rows, null="NULL")
    report = ingestor.ingest_focus([path], "aws-payer")
    assert report.rows_accepted == 4 and report.rows_rejected == 0
    assert _total(lake) == total(rows)
    by_team = _by(lake, ("team", "environment"))
    assert by_team[("search", "prod")] == Decimal("10.5")
    assert by_team[("search", "(none)")] == Decimal("2.25")
    con = open_costs(lake)
    cats = dict(
        con.execute(
            "SELECT charge_category, charge_frequency FROM cost_facts WHERE resource='credit-1'"
        ).fetchall()
    )
    assert cats == {"Credit": "One-Time"}
    freq = con.execute("SELECT DISTINCT charge_frequency FROM cost_facts WHERE day = '2024-09-02'").fetchall()
    assert freq == [("Usage-Based",)]


def test_focus_hourly_rows_aggregate_to_one_daily_fact(
    ingestor: Ingestor, lake: Lake, tmp_path: Path
) -> None:
    rows = [
        row("0.1234567891", start=f"2024-09-05T{h:02d}:00:00Z", end=f"2024-09-05T{h:02d}:59:59Z")
        for h in range(24)
    ]
    ingestor.ingest_focus([write_focus(tmp_path / "hourly.csv.gz", rows)], "aws-payer")
    con = open_costs(lake)
    facts = con.execute("SELECT day, row_count, billed_cost FROM cost_facts").fetchall()
    assert facts == [(date(2024, 9, 5), 24, Decimal("0.1234567891") * 24)]


def test_focus_parquet_and_gzip_give_the_same_facts(ingestor: Ingestor, lake: Lake, tmp_path: Path) -> None:
    rows = [row("1.5", resource="a"), row("2.5", resource="b", start="2024-09-09T00:00:00Z")]
    ingestor.ingest_focus(
        [write_focus(tmp_path / "x.parquet", rows)],
        "pq",
    )
    ingestor.ingest_focus([write_focus(tmp_path / "x.csv.gz", rows)], "gz")
    assert _total(lake, source=["pq"]) == _total(lake, source=["gz"]) == Decimal("4.0")


def test_focus_same_file_twice_never_double_counts(ingestor: Ingestor, lake: Lake, tmp_path: Path) -> None:
    path = write_focus(tmp_path / "sept.csv", [row("100"), row("50", resource="i-2")])
    first = ingestor.ingest_focus([path], "aws-payer")
    second = ingestor.ingest_focus([path], "aws-payer")
    assert [f.status for f in first.files] == ["ingested"]
    assert [f.status for f in second.files] == ["skipped"]
    assert _total(lake) == Decimal("150")
    forced = ingestor.ingest_focus([path], "aws-payer", force=True)
    assert forced.files[0].status == "ingested"
    assert _total(lake) == Decimal("150")


def test_focus_restated_period_replaces_only_its_account_and_period(
    ingestor: Ingestor, lake: Lake, tmp_path: Path
) -> None:
    aug = Period(date(2024, 8, 1), date(2024, 9, 1), "2024-08")
    ingestor.ingest_focus(
        [
            write_focus(
                tmp_path / "a1.csv", [row("100"), row("1", start="2024-08-03T00:00:00Z", period="2024-08")]
            )
        ],
        "aws",
    )
    ingestor.ingest_focus([write_focus(tmp_path / "b1.csv", [row("30", account="other-payer")])], "aws")
    restated = write_focus(tmp_path / "a2.csv", [row("90"), row("5", resource="i-late")])
    ingestor.ingest_focus([restated], "aws")
    assert _total(lake) == Decimal("125")  # 90 + 5 restated, 30 from the other account kept
    assert _total(lake, aug) == Decimal("1")  # August of the same account untouched
    with ingestor.db.session() as s:
        statuses = {Path(f.path).name: f.status for f in s.scalars(select(IngestedFile))}
    assert statuses == {"a1.csv": "superseded", "b1.csv": "active", "a2.csv": "active"}


def test_focus_bad_row_names_file_line_and_column_and_writes_nothing(
    ingestor: Ingestor, lake: Lake, tmp_path: Path
) -> None:
    good = write_focus(tmp_path / "good.csv", [row("1")])
    bad = write_focus(tmp_path / "bad.csv", [row("1"), row("1"), row("abc"), row("2", start="not a date")])
    with pytest.raises(IngestError) as err:
        ingestor.ingest_focus([good, bad], "aws")
    message = str(err.value)
    assert "bad.csv, line 4, column BilledCost" in message
    assert "'abc'" in message and "decimal" in message
    assert "line 5" in message and "ChargePeriodStart" in message
    assert lake.files("cost") == []
    with ingestor.db.session() as s:
        assert s.scalars(select(IngestedFile)).all() == []
        assert [r.status for r in s.scalars(select(IngestionRun))] == ["failed"]


def test_focus_skip_bad_rows_keeps_good_rows_and_writes_rejects(
    ingestor: Ingestor, lake: Lake, tmp_path: Path
) -> None:
    bad = write_focus(tmp_path / "bad.csv", [row("1"), row("x1"), row("2", tags="{not json")])
    report = ingestor.ingest_focus([bad], "aws", skip_bad_rows=True, rejects_dir=tmp_path / "rejects")
    assert (report.rows_accepted, report.rows_rejected) == (1, 2)
    assert _total(lake) == Decimal("1")
    rejects_path = report.files[0].rejects_path
    assert rejects_path is not None
    with open(rejects_path) as handle:
        rejects = list(csv.DictReader(handle))
    assert [(r["line"], r["column"]) for r in rejects] == [("3", "BilledCost"), ("4", "Tags")]
    assert "JSON object" in rejects[1]["expected"]


def test_focus_missing_mandatory_columns_are_listed(ingestor: Ingestor, tmp_path: Path) -> None:
    path = tmp_path / "partial.csv"
    path.write_text("ServiceName,ChargePeriodEnd\nEC2,2024-09-01T00:00:00Z\n")
    with pytest.raises(IngestError) as err:
        ingestor.ingest_focus([path], "aws")
    assert "BilledCost" in str(err.value) and "ChargePeriodStart" in str(err.value)
    assert "line 1" in str(err.value)


def test_focus_unknown_columns_are_ignored(ingestor: Ingestor, lake: Lake, tmp_path: Path) -> None:
    path = write_focus(tmp_path / "extra.csv", [row("4", x_Whatever="1", SomethingElse="y")])
    ingestor.ingest_focus([path], "aws")
    assert _total(lake) == Decimal("4")


def test_focus_not_a_csv_is_a_clear_error(ingestor: Ingestor, tmp_path: Path) -> None:
    path = tmp_path / "bill.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(IngestError, match="unsupported file type"):
        ingestor.ingest_focus([path], "aws")


def test_focus_taxonomy_aliases_values_and_account_defaults(
    ingestor: Ingestor, lake: Lake, tmp_path: Path
) -> None:
    rows = [
        row("1", tags={"business_unit": "platform", "Environment": "prd"}),
        row("2", tags={"team": "  "}, sub_account="proj_search01"),  # blank tag -> account default
        row("4", tags={"project": "semantic-search"}, sub_account="proj_search01"),
        row("8", tags={"workload": "finetune"}, resource="train-job-1"),
        row("16", resource="sagemaker-training-job-7", tags={}),
        row("32", resource="i-aws", tags={"user:team": "growth", "aws:createdBy": "x"}),
    ]
    ingestor.ingest_focus([write_focus(tmp_path / "t.csv", rows)], "aws")
    con = open_costs(lake)
    got = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT billed_cost, team, environment, project, workload FROM cost_facts ORDER BY 1"
        ).fetchall()
    }
    assert got[Decimal("1")] == ("platform", "prod", None, None)
    assert got[Decimal("2")] == ("search", "prod", "semantic-search", None)
    assert got[Decimal("4")] == ("search", "prod", "semantic-search", None)
    assert got[Decimal("8")][3] == "training"
    assert got[Decimal("16")][3] == "training"  # from the resource name
    assert got[Decimal("32")][0] == "growth"  # AWS user-defined cost allocation tag


def test_focus_ledger_records_files_partitions_and_counts(ingestor: Ingestor, tmp_path: Path) -> None:
    path = write_focus(
        tmp_path / "l.csv", [row("1"), row("2", start="2024-08-31T00:00:00Z", period="2024-08")]
    )
    report = ingestor.ingest_focus([path], "aws-payer")
    with ingestor.db.session() as s:
        (f,) = s.scalars(select(IngestedFile)).all()
        parts = s.scalars(select(LakePartition).order_by(LakePartition.billing_period)).all()
        run = s.get(IngestionRun, report.run_id)
    assert (f.rows_read, f.rows_accepted, f.rows_rejected) == (2, 2, 0)
    assert f.billing_periods == "2024-08,2024-09" and len(json.loads(f.partitions)) == 2
    assert [(p.billing_period, p.account, p.rows) for p in parts] == [
        ("2024-08", "999988887777", 1),
        ("2024-09", "999988887777", 1),
    ]
    assert run is not None and run.status == "succeeded" and run.rows_accepted == 2
    assert all(Path(p.path).exists() for p in parts)


def test_focus_same_content_under_two_names_counts_once(
    ingestor: Ingestor, lake: Lake, tmp_path: Path
) -> None:
    first = write_focus(tmp_path / "a" / "part-1.csv", [row("11")])
    copy = tmp_path / "b" / "part-1-copy.csv"
    copy.parent.mkdir()
    copy.write_bytes(first.read_bytes())
    report = ingestor.ingest_focus([first, copy], "aws")
    assert [f.status for f in report.files] == ["ingested", "skipped"]
    assert _total(lake) == Decimal("11")
    moved = ingestor.ingest_focus([copy], "aws")  # same content, new path: recognised by its checksum
    assert [f.status for f in moved.files] == ["skipped"] and moved.run_id == ""
