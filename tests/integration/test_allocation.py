"""Billing truth vs usage detail: usage allocates billed spend, never adds to it."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from tests.focus_builder import row, write_focus
from tests.usage_builder import bill, ingest, usage
from tools.costs import CostQuery, UnitCostQuery, open_costs, query_costs, unit_costs
from tools.ingest.service import Ingestor
from tools.periods import Period
from tools.spend import RECONCILIATION_SQL
from tools.store.lake import Lake

SEPT = Period(date(2024, 9, 1), date(2024, 10, 1), "2024-09")


def _costs(lake: Lake, *dims: str, **filters: list[str]) -> dict[tuple[str, ...], Decimal]:
    result = query_costs(open_costs(lake), CostQuery(SEPT, dims, filters=filters))
    return {tuple(r[d] for d in dims): r["cost"] for r in result.rows}


def _total(lake: Lake) -> Decimal:
    return query_costs(open_costs(lake), CostQuery(SEPT)).total


def test_ingesting_a_bill_and_its_usage_never_changes_the_total(
    ingestor: Ingestor, lake: Lake, tmp_path: Path
) -> None:
    bedrock = row(
        "90",
        service="Amazon Bedrock",
        category="AI and Machine Learning",
        subcategory="Generative AI",
        resource="bedrock",
        tags={"team": "platform"},
    )
    ec2 = row("10")
    ingestor.ingest_focus([write_focus(tmp_path / "bill.csv", [bedrock, ec2])], "aws")
    assert _total(lake) == Decimal("90") + Decimal("10")
    ingest(
        ingestor,
        tmp_path,
        [
            usage(provider="aws.bedrock", model="claude", cost="3", team="growth", feature="ad-copy"),
            usage(provider="aws.bedrock", model="claude", cost="1", team="search", feature="rerank"),
        ],
    )
    assert _total(lake) == Decimal("100")
    by_team = _costs(lake, "team")
    assert by_team == {("growth",): Decimal("67.5"), ("search",): Decimal("22.5"), ("(none)",): Decimal("10")}
    by_service = _costs(lake, "service")
    assert by_service[("Amazon Bedrock",)] == Decimal("90")


def test_allocation_by_model_when_the_bill_names_the_model(
    ingestor: Ingestor, lake: Lake, tmp_path: Path
) -> None:
    ingest(
        ingestor,
        tmp_path,
        [bill(amount="40", model="gpt-4o"), bill(amount="2", model="gpt-4o-mini")],
        source="openai-costs",
        kind="openai-costs",
    )
    ingest(
        ingestor,
        tmp_path,
        [
            usage(model="gpt-4o", cost="1", team="search"),
            usage(
                model="gpt-4o-mini", cost="100", team="growth"
            ),  # priced far off: the bill still rules per model
        ],
    )
    assert _costs(lake, "team", "model") == {
        ("search", "gpt-4o"): Decimal("40"),
        ("growth", "gpt-4o-mini"): Decimal("2"),
    }


def test_split_shares_sum_back_to_the_billed_amount_exactly(
    ingestor: Ingestor, lake: Lake, tmp_path: Path
) -> None:
    ingest(ingestor, tmp_path, [bill(amount="1.00")], source="openai-costs", kind="openai-costs")
    ingest(ingestor, tmp_path, [usage(cost="1", team=t) for t in ("a", "b", "c")])
    shares = _costs(lake, "team")
    assert sum(shares.values()) == Decimal("1.00")
    assert max(shares.values()) - min(shares.values()) <= Decimal("0.0000000002")


def test_usage_without_any_bill_is_reported_as_an_estimate(
    ingestor: Ingestor, lake: Lake, tmp_path: Path
) -> None:
    ingest(
        ingestor,
        tmp_path,
        [usage(provider="anthropic", model="claude-3-5-haiku", cost="2.5", team="support")],
    )
    result = query_costs(open_costs(lake), CostQuery(SEPT, ("team",)))
    assert result.total == Decimal("2.5") and result.estimated == Decimal("2.5")
    assert result.as_dict()["estimated"] == Decimal("2.5")


def test_usage_on_a_day_the_bill_does_not_cover_adds_nothing(
    ingestor: Ingestor, lake: Lake, tmp_path: Path
) -> None:
    ingest(
        ingestor, tmp_path, [bill(day="2024-09-01", amount="5")], source="openai-costs", kind="openai-costs"
    )
    ingest(ingestor, tmp_path, [usage(day="2024-09-02", cost="7", team="x")])
    assert _total(lake) == Decimal("5")
    rows = open_costs(lake).execute(RECONCILIATION_SQL).fetchall()
    assert rows == [
        ("openai", "2024-09", "test", Decimal("5"), Decimal("7"), Decimal("0"), Decimal("5"), 1100, 0)
    ]


def test_unpriced_usage_is_listed_and_never_costed_as_zero(
    ingestor: Ingestor, lake: Lake, tmp_path: Path
) -> None:
    ingest(ingestor, tmp_path, [usage(provider="openai", model="my-private-model-v9", team="x")])
    result = query_costs(open_costs(lake), CostQuery(SEPT))
    assert result.total == Decimal(0)
    assert result.unpriced == [
        {"provider": "openai", "model": "my-private-model-v9", "requests": 1, "tokens": 1100}
    ]


def test_usage_re_ingested_with_overlapping_records_is_merged_not_added(
    ingestor: Ingestor, lake: Lake, tmp_path: Path
) -> None:
    ingest(ingestor, tmp_path, [usage(cost="1", key="k1", team="a"), usage(cost="2", key="k2", team="a")])
    ingest(ingestor, tmp_path, [usage(cost="2", key="k2", team="a"), usage(cost="4", key="k3", team="a")])
    con = open_costs(lake)
    assert con.execute("SELECT count(*), sum(cost) FROM usage_facts").fetchall() == [(3, Decimal("7"))]


def _usage_source(ingestor: Ingestor, tmp_path: Path, source_format: str, records: list) -> None:  # type: ignore[type-arg]
    from dataclasses import replace

    ingest(
        ingestor, tmp_path, [replace(r, source_format=source_format) for r in records], source=source_format
    )


def test_two_usage_sources_of_the_same_calls_are_not_added(
    ingestor: Ingestor, lake: Lake, tmp_path: Path
) -> None:
    # the provider's usage report sees all calls (no team); the app's spans see the same calls with features
    _usage_source(
        ingestor,
        tmp_path,
        "anthropic-usage",
        [
            usage(
                provider="anthropic",
                model="claude-3-5-haiku-20241022",
                cost="10",
                input_tokens=9000,
                output=1000,
                requests=10,
                workspace_id="w1",
            ),
        ],
    )
    _usage_source(
        ingestor,
        tmp_path,
        "otel",
        [
            usage(
                provider="anthropic",
                model="claude-3-5-haiku-20241022",
                cost="6",
                input_tokens=5400,
                output=600,
                requests=6,
                team="support",
                feature="chat",
                task="t1",
            ),
            usage(
                provider="anthropic",
                model="claude-3-5-haiku-20241022",
                cost="2",
                input_tokens=1800,
                output=200,
                requests=2,
                team="support",
                feature="summary",
                task="t2",
            ),
        ],
    )
    result = query_costs(open_costs(lake), CostQuery(SEPT, ("feature",)))
    assert result.total == Decimal("10") and result.estimated == Decimal("10")  # not 18
    assert {r["feature"]: r["cost"] for r in result.rows} == {
        "chat": Decimal("6"),
        "summary": Decimal("2"),
        "(none)": Decimal("2"),
    }
    units = unit_costs(open_costs(lake), UnitCostQuery(SEPT, ()))
    assert units.rows[0]["tokens"] == 10000 and units.rows[0]["requests"] == 10  # counted once


def test_spans_refine_a_billed_providers_allocation(ingestor: Ingestor, lake: Lake, tmp_path: Path) -> None:
    ingest(
        ingestor, tmp_path, [bill(amount="100", model="gpt-4o")], source="openai-costs", kind="openai-costs"
    )
    _usage_source(
        ingestor,
        tmp_path,
        "openai-usage",
        [
            usage(
                model="gpt-4o", cost="30", project_id="proj_search01"
            ),  # -> team search via taxonomy.accounts
            usage(model="gpt-4o", cost="20", project_id="proj_growth01"),  # -> team growth
        ],
    )
    _usage_source(
        ingestor,
        tmp_path,
        "otel",
        [
            usage(model="gpt-4o", cost="15", team="search", feature="rerank"),
            usage(model="gpt-4o", cost="5", team="growth", feature="ad-copy"),
            usage(model="gpt-4o", cost="99", team="platform", feature="stray"),  # matches no coverage group
        ],
    )
    rows = query_costs(open_costs(lake), CostQuery(SEPT, ("team", "feature"))).rows
    got = {(r["team"], r["feature"]): r["cost"] for r in rows}
    assert got == {
        ("search", "rerank"): Decimal("30"),
        ("search", "(none)"): Decimal("30"),
        ("growth", "ad-copy"): Decimal("10"),
        ("growth", "(none)"): Decimal("30"),
    }
    assert sum(got.values()) == Decimal("100")


def test_usage_of_a_model_the_coverage_source_never_saw_is_counted_not_dropped(
    ingestor: Ingestor, lake: Lake, tmp_path: Path
) -> None:
    """The spans cover the provider that day, but only for claude; the gateway's llama calls to the same
    provider have no coverage group to refine: they are usage of their own (found in the demo: ad-copy's
    llama traffic was in usage_facts but missing from usage_allocated)."""
    _usage_source(
        ingestor,
        tmp_path,
        "otel",
        [
            usage(
                provider="aws.bedrock",
                model="claude-3-5-haiku",
                cost="4",
                input_tokens=4000,
                output=400,
                requests=4,
                team="search",
                feature="rerank",
            )
        ],
    )
    _usage_source(
        ingestor,
        tmp_path,
        "litellm",
        [
            usage(
                provider="aws.bedrock",
                model="llama-3.1-8b-instruct",
                cost="1",
                input_tokens=1000,
                output=100,
                requests=2,
                team="growth",
                feature="ad-copy",
            )
        ],
    )
    units = unit_costs(open_costs(lake), UnitCostQuery(SEPT, ("feature",)))
    by_feature = {r["feature"]: r for r in units.rows}
    assert by_feature["ad-copy"]["tokens"] == 1100 and by_feature["ad-copy"]["requests"] == 2
    assert by_feature["rerank"]["tokens"] == 4400
    costs = _costs(lake, "feature")
    assert costs[("ad-copy",)] == Decimal("1") and costs[("rerank",)] == Decimal("4")
