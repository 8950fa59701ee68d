"""Pricing of usage records: reported, override, computed from genai-prices, unpriced."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from genai_prices import Usage, calc_price

from tools.ingest.pricing import ModelPrice, PricedCost, price_usage
from tools.ingest.records import TokenCounts, UsageRecord

DAY = datetime(2025, 8, 1, 12, 0, tzinfo=UTC)
M = Decimal(1_000_000)


def _record(**overrides: Any) -> UsageRecord:
    values: dict[str, Any] = {
        "record_key": "k1",
        "source_format": "openai-usage",
        "start": DAY,
        "provider": "openai",
        "model": "gpt-4o",
        "tokens": TokenCounts(input_uncached=900_000, cache_read=100_000, output=1_000_000),
    }
    values.update(overrides)
    return UsageRecord(**values)


def _genai_prices(model: str, provider: str) -> dict[str, Decimal]:
    result = calc_price(Usage(input_tokens=1), model, provider_id=provider, genai_request_timestamp=DAY)
    return {key: value for key, value in vars(result.model_price).items() if isinstance(value, Decimal)}


def test_pricing_computed_gpt4o_equals_hand_computed_from_genai_prices() -> None:
    prices = _genai_prices("gpt-4o", "openai")
    expected = (
        900_000 * prices["input_mtok"]
        + 100_000 * prices["cache_read_mtok"]
        + 1_000_000 * prices["output_mtok"]
    ) / M

    priced = price_usage(_record(), {})

    assert priced.source == "computed"
    assert priced.price_model == "gpt-4o"
    assert priced.cost == expected
    assert priced.cost == Decimal("12.375")


def test_pricing_computed_matches_genai_calc_price_for_dated_model() -> None:
    tokens = TokenCounts(input_uncached=12_345, cache_read=6_789, output=2_222, reasoning=1_111)
    direct = calc_price(
        Usage(input_tokens=19_134, cache_read_tokens=6_789, output_tokens=3_333),
        "gpt-4o-2024-08-06",
        provider_id="openai",
        genai_request_timestamp=DAY,
    )

    priced = price_usage(_record(model="gpt-4o-2024-08-06", tokens=tokens), {})

    assert priced.cost == direct.total_price


def test_pricing_cache_reads_cost_less_than_uncached_input() -> None:
    uncached = price_usage(_record(tokens=TokenCounts(input_uncached=1_000_000, output=1000)), {})
    cached = price_usage(
        _record(tokens=TokenCounts(input_uncached=400_000, cache_read=600_000, output=1000)), {}
    )

    assert uncached.cost is not None and cached.cost is not None
    assert cached.cost < uncached.cost


def test_pricing_anthropic_1h_cache_writes_priced_higher() -> None:
    prices = _genai_prices("claude-sonnet-4-20250514", "anthropic")
    tokens = TokenCounts(
        input_uncached=700_000, cache_read=100_000, cache_write=200_000, cache_write_1h=100_000
    )
    record = _record(provider="anthropic", model="claude-sonnet-4-20250514", tokens=tokens)
    expected = (
        700_000 * prices["input_mtok"]
        + 100_000 * prices["cache_read_mtok"]
        + 100_000 * prices["cache_write_mtok"]
        + 100_000 * prices["cache_write_1h_mtok"]
    ) / M

    priced = price_usage(record, {})

    assert priced.source == "computed"
    assert priced.cost == expected
    assert prices["cache_write_1h_mtok"] > prices["cache_write_mtok"]


def test_pricing_batch_halves_the_standard_price() -> None:
    standard = price_usage(_record(), {})
    batch = price_usage(_record(batch=True), {})

    assert standard.cost is not None
    assert batch.cost == standard.cost / 2
    assert batch.source == "computed"


def test_pricing_batch_discount_is_configurable() -> None:
    standard = price_usage(_record(), {})
    batch = price_usage(_record(batch=True), {}, batch_discount=Decimal("0.25"))

    assert standard.cost is not None
    assert batch.cost == standard.cost * Decimal("0.75")


def test_pricing_override_by_longest_prefix() -> None:
    overrides = {
        "gpt-4o": ModelPrice(
            input=Decimal("2"), cache_read=Decimal("1"), cache_write=Decimal("2"), output=Decimal("8")
        ),
        "gpt-4o-mini": ModelPrice(
            input=Decimal("0.1"),
            cache_read=Decimal("0.05"),
            cache_write=Decimal("0.1"),
            output=Decimal("0.4"),
        ),
    }

    big = price_usage(_record(model="gpt-4o-2024-08-06"), overrides)
    mini = price_usage(_record(model="gpt-4o-mini-2024-07-18"), overrides)

    assert big == PricedCost(Decimal("9.9"), "override", "gpt-4o")  # 0.9*2 + 0.1*1 + 1*8
    assert mini == PricedCost(Decimal("0.495"), "override", "gpt-4o-mini")  # 0.09 + 0.005 + 0.4


def test_pricing_override_exact_match_and_1h_cache_write_price() -> None:
    price = ModelPrice(
        input=Decimal("3"),
        cache_read=Decimal("0.3"),
        cache_write=Decimal("3.75"),
        output=Decimal("15"),
        cache_write_1h=Decimal("6"),
    )
    tokens = TokenCounts(cache_write=2_000_000, cache_write_1h=1_000_000, output=100_000, reasoning=100_000)

    priced = price_usage(_record(model="claude-x", tokens=tokens), {"claude-x": price})

    assert priced == PricedCost(Decimal("3.75") + Decimal("6") + Decimal("3"), "override", "claude-x")


def test_pricing_override_batch_gets_discount() -> None:
    price = ModelPrice(
        input=Decimal("1"), cache_read=Decimal("1"), cache_write=Decimal("1"), output=Decimal("1")
    )
    tokens = TokenCounts(input_uncached=1_000_000)

    priced = price_usage(_record(model="m", tokens=tokens, batch=True), {"m": price})

    assert priced.cost == Decimal("0.5")


def test_pricing_reported_cost_wins() -> None:
    price = ModelPrice(
        input=Decimal("1"), cache_read=Decimal("1"), cache_write=Decimal("1"), output=Decimal("1")
    )
    record = _record(reported_cost=Decimal("0.0123"))

    assert price_usage(record, {"gpt-4o": price}) == PricedCost(Decimal("0.0123"), "reported", "gpt-4o")


def test_pricing_reported_zero_cost_is_kept() -> None:
    priced = price_usage(_record(reported_cost=Decimal("0")), {})

    assert priced.source == "reported"
    assert priced.cost == Decimal("0")


@pytest.mark.parametrize("model", ["totally-unknown-model-xyz", None, ""])
def test_pricing_unknown_or_missing_model_is_unpriced(model: str | None) -> None:
    priced = price_usage(_record(model=model), {})

    assert priced == PricedCost(None, "unpriced", None)


def test_pricing_unknown_provider_lets_genai_guess() -> None:
    priced = price_usage(_record(provider="unknown"), {})

    assert priced.source == "computed"
    assert priced.cost == Decimal("12.375")


def test_pricing_bedrock_provider_mapped() -> None:
    record = _record(provider="aws.bedrock", model="anthropic.claude-3-5-sonnet-20240620-v1:0")

    priced = price_usage(record, {})

    assert priced.source == "computed"
    assert priced.cost is not None and priced.cost > 0


def test_pricing_tiered_single_request_priced_exactly_by_genai() -> None:
    tokens = TokenCounts(input_uncached=300_000, output=1000)
    direct = calc_price(
        Usage(input_tokens=300_000, output_tokens=1000),
        "gpt-5.4",
        provider_id="openai",
        genai_request_timestamp=DAY,
    )

    priced = price_usage(_record(model="gpt-5.4", tokens=tokens, requests=1), {})

    assert priced.cost == direct.total_price


def test_pricing_is_deterministic_for_repeated_records() -> None:
    record = _record()

    costs = {price_usage(replace(record, record_key=str(i)), {}).cost for i in range(50)}

    assert costs == {Decimal("12.375")}


def test_pricing_model_price_rejects_negative() -> None:
    with pytest.raises(ValueError, match="input"):
        ModelPrice(
            input=Decimal("-1"), cache_read=Decimal("0"), cache_write=Decimal("0"), output=Decimal("0")
        )


def test_pricing_batch_discount_out_of_range_raises() -> None:
    with pytest.raises(ValueError, match="batch_discount"):
        price_usage(_record(), {}, batch_discount=Decimal("1.5"))
