"""Cost queries: every dimension, filters, granularity, top-N, comparison, metrics, unit costs, budgets."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from config.loader import parse_config
from tests.focus_builder import row, write_focus
from tests.usage_builder import bill, ingest, usage
from tools.budgets import budget_status, token_budget_status
from tools.costs import DIMENSIONS, CostQuery, UnitCostQuery, open_costs, query_costs, unit_costs
from tools.errors import QueryError
from tools.ingest.service import Ingestor
from tools.periods import Period
from tools.store.lake import Lake
from tools.untagged import untagged_spend

SEPT = Period(date(2024, 9, 1), date(2024, 10, 1), "2024-09")
AUG = Period(date(2024, 8, 1), date(2024, 9, 1), "2024-08")


@pytest.fixture
def bill_lake(ingestor: Ingestor, lake: Lake, tmp_path: Path) -> Lake:
    rows = [
        row(
            "100",
            effective="80",
            list_cost="120",
            resource="i-a",
            region="us-east-1",
            tags={
                "team": "search",
                "project": "p1",
                "environment": "prod",
                "feature": "f1",
                "cost_center": "cc1",
                "owner": "ana@example.com",
                "workload": "inference",
                "model": "gpt-4o",
            },
        ),
        row(
            "50",
            resource="i-b",
            start="2024-09-08T00:00:00Z",
            sub_account="444455556666",
            RegionId="eu-west-1",
            service="Amazon SageMaker",
            category="AI and Machine Learning",
            tags={"team": "ml-research", "project": "p2", "environment": "dev", "workload": "training"},
        ),
        row("30", resource="i-c", start="2024-09-15T00:00:00Z", tags={"team": "platform"}),
        row("5", resource="i-d", start="2024-09-16T00:00:00Z", tags={"team": "growth"}),
        row("7", resource="tax", start="2024-09-30T00:00:00Z", charge_category="Tax", frequency="One-Time"),
        row("20", resource="i-c", start="2024-08-10T00:00:00Z", period="2024-08", tags={"team": "platform"}),
    ]
    ingestor.ingest_focus([write_focus(tmp_path / "bill.csv", rows)], "aws")
    return lake


@pytest.mark.parametrize("dimension", list(DIMENSIONS))
def test_costs_group_by_each_dimension_sums_to_the_total(bill_lake: Lake, dimension: str) -> None:
    result = query_costs(open_costs(bill_lake), CostQuery(SEPT, (dimension,)))
    assert result.total == Decimal("80") + 50 + 30 + 5 + 7
    assert sum(r["cost"] for r in result.rows) == result.total
    assert all(dimension in r for r in result.rows)


def test_costs_dimension_values_are_the_resolved_ones(bill_lake: Lake) -> None:
    con = open_costs(bill_lake)
    expect = {
        "team": "search",
        "project": "p1",
        "environment": "prod",
        "feature": "f1",
        "cost_center": "cc1",
        "owner": "ana@example.com",
        "workload": "inference",
        "provider": "AWS",
        "service": "Amazon Elastic Compute Cloud",
        "account": "999988887777",
        "sub_account": "111122223333",
        "region": "us-east-1",
        "resource": "i-a",
        "model": "gpt-4o",
    }
    for dim, value in expect.items():
        rows = query_costs(con, CostQuery(SEPT, (dim,), filters={dim: [value]})).rows
        assert [r[dim] for r in rows] == [value], dim
        assert rows[0]["cost"] >= Decimal("80")


def test_costs_metrics_billed_effective_list(bill_lake: Lake) -> None:
    con = open_costs(bill_lake)
    q = {"filters": {"resource": ["i-a"]}}
    assert query_costs(con, CostQuery(SEPT, metric="billed", **q)).total == Decimal("100")  # type: ignore[arg-type]
    assert query_costs(con, CostQuery(SEPT, metric="effective", **q)).total == Decimal("80")  # type: ignore[arg-type]
    assert query_costs(con, CostQuery(SEPT, metric="list", **q)).total == Decimal("120")  # type: ignore[arg-type]


def test_costs_filters_none_and_multiple_values(bill_lake: Lake) -> None:
    con = open_costs(bill_lake)
    assert query_costs(con, CostQuery(SEPT, filters={"team": ["(none)"]})).total == Decimal("7")
    assert query_costs(con, CostQuery(SEPT, filters={"team": ["Search", "growth"]})).total == Decimal("85")


def test_costs_top_n_folds_the_rest_into_other(bill_lake: Lake) -> None:
    rows = query_costs(open_costs(bill_lake), CostQuery(SEPT, ("team",), top=2)).rows
    assert [(r["team"], r["cost"]) for r in rows] == [
        ("search", Decimal("80")),
        ("ml-research", Decimal("50")),
        ("(other)", Decimal("42")),
    ]
    assert rows[-1]["groups"] == 3


def test_costs_granularity_buckets_by_week_and_month(bill_lake: Lake) -> None:
    con = open_costs(bill_lake)
    weekly = query_costs(con, CostQuery(SEPT, granularity="week")).rows
    assert [(r["period_start"], r["cost"]) for r in weekly] == [
        ("2024-08-26", Decimal("80")),
        ("2024-09-02", Decimal("50")),
        ("2024-09-09", Decimal("30")),
        ("2024-09-16", Decimal("5")),
        ("2024-09-30", Decimal("7")),
    ]
    monthly = query_costs(
        con,
        CostQuery(
            Period(date(2024, 8, 1), date(2024, 10, 1), "x"),
            ("team",),
            granularity="month",
            filters={"team": ["platform"]},
        ),
    ).rows
    assert [(r["period_start"], r["cost"]) for r in monthly] == [
        ("2024-08-01", Decimal("20")),
        ("2024-09-01", Decimal("30")),
    ]


def test_costs_compare_with_the_previous_period(bill_lake: Lake) -> None:
    result = query_costs(open_costs(bill_lake), CostQuery(SEPT, ("team",), compare=True))
    assert result.previous_period == AUG and result.previous_total == Decimal("20")
    platform = next(r for r in result.rows if r["team"] == "platform")
    assert platform["previous_cost"] == Decimal("20")
    assert platform["change"] == {"delta": Decimal("10"), "percent": Decimal("50.00")}
    assert next(r for r in result.rows if r["team"] == "search")["change"]["percent"] is None


def test_costs_exclude_one_offs(bill_lake: Lake) -> None:
    assert query_costs(open_costs(bill_lake), CostQuery(SEPT, exclude_one_offs=True)).total == Decimal("165")


def test_costs_unknown_dimension_lists_the_valid_ones(bill_lake: Lake) -> None:
    with pytest.raises(QueryError, match=r"unknown dimension .tema.*team, project"):
        query_costs(open_costs(bill_lake), CostQuery(SEPT, ("tema",)))


def test_costs_json_shape_is_stable(bill_lake: Lake) -> None:
    d = query_costs(open_costs(bill_lake), CostQuery(SEPT, ("team",))).as_dict()
    assert list(d)[:6] == ["metric", "currency", "period", "group_by", "rows", "total"]
    assert d["period"] == {"from": "2024-09-01", "to": "2024-10-01"}


def test_unit_costs_per_token_request_and_completed_task(
    ingestor: Ingestor, lake: Lake, tmp_path: Path
) -> None:
    ingest(ingestor, tmp_path, [bill(amount="30")], source="openai-costs", kind="openai-costs")
    ingest(
        ingestor,
        tmp_path,
        [
            usage(
                cost="1",
                input_tokens=900,
                output=100,
                requests=2,
                task="t1",
                feature="chat",
                status="completed",
            ),
            usage(
                cost="1",
                input_tokens=900,
                output=100,
                requests=2,
                task="t2",
                feature="chat",
                status="completed",
            ),
            usage(
                cost="1", input_tokens=900, output=100, requests=2, task="t3", feature="chat", status="failed"
            ),
        ],
    )
    result = unit_costs(open_costs(lake), UnitCostQuery(SEPT, ("feature",)))
    (r,) = result.rows
    assert (r["cost"], r["tokens"], r["requests"], r["tasks_completed"], r["tasks_failed"]) == (
        Decimal("30"),
        3000,
        6,
        2,
        1,
    )
    assert r["cost_per_1m_tokens"] == Decimal("10000")
    assert r["cost_per_request"] == Decimal("5")
    assert r["cost_per_completed_task"] == Decimal("15")
    assert result.workload_split == {"inference": Decimal("30")}


def test_budget_status_thresholds_and_forecast(bill_lake: Lake) -> None:
    config = parse_config(
        "budgets:\n  - {name: all, amount: 200}\n  - {name: search, scope: {team: search}, "
        "amount: 100, thresholds: [0.5, 0.75, 1.0]}\n"
    )
    statuses = {b.name: b for b in budget_status(open_costs(bill_lake), config, date(2024, 9, 16))}
    assert statuses["all"].actual == Decimal("160")  # through 15 Sept
    assert statuses["all"].status == "warning" and statuses["all"].crossed == ["75%"]
    assert statuses["all"].forecast == Decimal("320.00") and statuses["all"].forecast_status == "over"
    assert statuses["search"].actual == Decimal("80") and statuses["search"].crossed == ["50%", "75%"]


def test_token_budget_status(ingestor: Ingestor, lake: Lake, tmp_path: Path) -> None:
    ingest(ingestor, tmp_path, [usage(day="2024-09-02", input_tokens=700, output=100, project="bot")])
    config = parse_config("token_budgets:\n  - {project: bot, tokens: 1000}\n")
    (status,) = token_budget_status(open_costs(lake), config, date(2024, 9, 11))
    assert (status.actual, status.crossed, status.status) == (800, ["75%"], "warning")
    assert status.forecast_status == "over"


def test_untagged_spend_suggests_owner_from_the_same_resource_and_the_account(
    ingestor: Ingestor, lake: Lake, tmp_path: Path, config: object
) -> None:
    rows = [
        row("10", resource="vm-1", tags={"team": "search"}),
        row("40", resource="vm-1", start="2024-09-02T00:00:00Z"),  # same resource, tag missing that day
        row("25", resource="gpu-9", sub_account="444455556666"),
        row("60", resource="gpu-1", sub_account="444455556666", tags={"team": "ml-research"}),
        row("3", resource=None, service="AWS Support", sub_account="555500001111", tags={"team": None}),
    ]
    ingestor.ingest_focus([write_focus(tmp_path / "u.csv", rows)], "aws")
    result = untagged_spend(open_costs(lake), ingestor.config, SEPT)
    assert result.unallocated == Decimal("68") and result.total == Decimal("138")
    offenders = {o.resource: o for o in result.offenders}
    assert offenders[None].suggested_team is None and "shared cost" in offenders[None].reason
    assert offenders["vm-1"].suggested_team == "search" and "same resource" in offenders["vm-1"].reason
    assert offenders["gpu-9"].suggested_team == "ml-research" and "444455556666" in offenders["gpu-9"].reason


def test_token_budget_counts_calls_seen_by_two_sources_once(
    ingestor: Ingestor, lake: Lake, tmp_path: Path
) -> None:
    from dataclasses import replace

    api = usage(day="2024-09-02", input_tokens=700, output=100, cost="1", project="bot")
    span = usage(day="2024-09-02", input_tokens=700, output=100, cost="1", project="bot", feature="chat")
    ingest(ingestor, tmp_path, [replace(api, source_format="openai-usage")], source="openai-usage")
    ingest(ingestor, tmp_path, [replace(span, source_format="otel")], source="otel")
    config = parse_config("token_budgets:\n  - {project: bot, tokens: 1000}\n")
    (status,) = token_budget_status(open_costs(lake), config, date(2024, 9, 11))
    assert status.actual == 800


def test_other_currencies_are_converted_with_configured_rates_or_reported_apart(
    ingestor: Ingestor, lake: Lake, tmp_path: Path
) -> None:
    rows = [
        row("100", tags={"team": "a"}),
        row("50", resource="eu-1", BillingCurrency="EUR", tags={"team": "b"}),
        row("1000", resource="jp-1", BillingCurrency="JPY", tags={"team": "c"}),
    ]
    ingestor.ingest_focus([write_focus(tmp_path / "fx.csv", rows)], "multi")
    config = parse_config("currency_rates: {EUR: 1.10}\n")
    result = query_costs(open_costs(lake, config), CostQuery(SEPT, ("team",)))
    by = {(r["team"], r["currency"]): r["cost"] for r in result.rows}
    assert by == {("a", "USD"): Decimal("100"), ("b", "USD"): Decimal("55"), ("c", "JPY"): Decimal("1000")}
    assert result.total == Decimal("155") and result.totals_by_currency == {
        "USD": Decimal("155"),
        "JPY": Decimal("1000"),
    }
    converted = query_costs(
        open_costs(lake, parse_config("currency_rates: {EUR: 1.10, JPY: 0.0067}\n")), CostQuery(SEPT)
    )
    assert converted.total == Decimal("161.7") and converted.currencies == ["USD"]


def test_budget_actual_counts_only_its_currency_and_reports_unconverted_spend_apart(
    ingestor: Ingestor, lake: Lake, tmp_path: Path
) -> None:
    rows = [
        row("100", tags={"team": "a"}),
        row("50", resource="eu-1", BillingCurrency="EUR", tags={"team": "a"}),
        row("1000", resource="jp-1", BillingCurrency="JPY", tags={"team": "a"}),
    ]
    ingestor.ingest_focus([write_focus(tmp_path / "fx.csv", rows)], "multi")
    budgets = "budgets:\n  - {name: a, scope: {team: a}, amount: 200}\n"
    (status,) = budget_status(
        open_costs(lake, parse_config("currency_rates: {EUR: 1.10}\n" + budgets)),
        parse_config("currency_rates: {EUR: 1.10}\n" + budgets),
        date(2024, 9, 16),
    )
    assert status.actual == Decimal("155")  # 100 USD + 50 EUR at 1.10; the yen are not added in
    assert status.unconverted == {"JPY": Decimal("1000")}
    assert status.as_dict()["unconverted"] == {"JPY": Decimal("1000")}
