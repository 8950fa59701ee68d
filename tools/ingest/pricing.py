"""Price a usage record: the cost the source reports, else a configured override, else genai-prices.

Order (first that applies wins):

1. ``reported``: the record carries ``reported_cost`` (LiteLLM spend, ``gen_ai.usage.cost``).
2. ``override``: a negotiated price keyed by model name: the exact name, else the longest key that is
   a prefix of the model (``"gpt-4o"`` covers ``"gpt-4o-2024-08-06"``); compared case-insensitively.
3. ``computed``: genai-prices' offline snapshot, for the record's day, cache-aware, batch-aware.
4. ``unpriced``: no model, or genai-prices does not know it. The cost is ``None``, never an invented 0.

Batch: genai-prices is asked with ``price_context={"processing": "batch"}``; when the snapshot has no
batch variant for the model's token prices (the batch price equals the standard one), the standard
cost is multiplied by ``1 - batch_discount`` (default 50 % off). Override prices are list-like per-token
prices, so a batch record priced by an override gets the same discount.

Speed: genai-prices is asked once per (model, provider, day, context) for the per-token rate of each
token kind (``functools.lru_cache``); a record is then priced with a few Decimal multiplications. Prices
with tiers (rates that depend on the request's input size) are priced per record by genai-prices when
the record is one request; an aggregated bucket of several requests is priced at the base tier (the
tier thresholds apply per request, which a bucket's totals cannot tell).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import lru_cache
from typing import Literal

from genai_prices import Usage, calc_price
from genai_prices.types import TieredPrices

from tools.ingest.records import (
    ANTHROPIC,
    AWS_BEDROCK,
    AZURE_OPENAI,
    GCP_VERTEX_AI,
    OPENAI,
    TokenCounts,
    UsageRecord,
)

PriceSource = Literal["reported", "override", "computed", "unpriced"]

_MILLION = Decimal(1_000_000)
#: tokens used to read one rate from genai-prices: below every tier threshold, so the base tier
_PROBE = 1000
_PROBE_SCALE = Decimal(1_000_000 // _PROBE)

#: canonical provider id -> genai-prices provider id; others are tried as given, then guessed
GENAI_PROVIDER_IDS: Mapping[str, str] = {
    OPENAI: "openai",
    ANTHROPIC: "anthropic",
    AWS_BEDROCK: "aws",
    AZURE_OPENAI: "azure",
    GCP_VERTEX_AI: "google",
}


@dataclass(frozen=True)
class ModelPrice:
    """A negotiated price in USD per 1M tokens. ``cache_write_1h`` defaults to ``cache_write``.

    Reasoning tokens are priced as output tokens.
    """

    input: Decimal
    cache_read: Decimal
    cache_write: Decimal
    output: Decimal
    cache_write_1h: Decimal | None = None

    def __post_init__(self) -> None:
        for name in ("input", "cache_read", "cache_write", "output", "cache_write_1h"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, Decimal):
                raise TypeError(f"ModelPrice.{name} must be a Decimal, got {type(value).__name__}")
            if value < 0 or not value.is_finite():
                raise ValueError(f"ModelPrice.{name} must be a finite price >= 0, got {value}")


@dataclass(frozen=True)
class PricedCost:
    """The cost of one usage record and where it came from. ``price_model`` names the price used:
    the record's model (reported), the override key, or genai-prices' model id."""

    cost: Decimal | None
    source: PriceSource
    price_model: str | None


UNPRICED = PricedCost(None, "unpriced", None)


@dataclass(frozen=True)
class _Rates:
    """genai-prices' USD per 1M tokens of each token kind, for one model, provider, day and context."""

    input: Decimal
    cache_read: Decimal
    cache_write: Decimal
    cache_write_1h: Decimal
    output: Decimal
    model_id: str
    provider_id: str | None
    tiered: bool

    def token_rates(self) -> tuple[Decimal, ...]:
        return (self.input, self.cache_read, self.cache_write, self.cache_write_1h, self.output)


def price_usage(
    record: UsageRecord,
    overrides: Mapping[str, ModelPrice],
    batch_discount: Decimal = Decimal("0.5"),
) -> PricedCost:
    """Price ``record``: reported, else override, else computed from genai-prices, else unpriced."""
    if not Decimal(0) <= batch_discount <= Decimal(1):
        raise ValueError(f"batch_discount must be between 0 and 1, got {batch_discount}")
    if record.reported_cost is not None:
        return PricedCost(record.reported_cost, "reported", record.model)
    if not record.model:
        return UNPRICED
    batch_factor = Decimal(1) - batch_discount if record.batch else Decimal(1)

    override_key = find_override(record.model, overrides)
    if override_key is not None:
        price = overrides[override_key]
        cost = _linear_cost(
            record.tokens,
            input_rate=price.input,
            cache_read_rate=price.cache_read,
            cache_write_rate=price.cache_write,
            cache_write_1h_rate=price.cache_write if price.cache_write_1h is None else price.cache_write_1h,
            output_rate=price.output,
        )
        return PricedCost(cost * batch_factor, "override", override_key)

    return _computed(record, batch_factor)


def find_override(model: str, overrides: Mapping[str, ModelPrice]) -> str | None:
    """The override key for ``model``: an exact match, else the longest key that prefixes it."""
    if model in overrides:
        return model
    folded = model.casefold()
    best: str | None = None
    for key in overrides:
        key_folded = key.casefold()
        if key_folded == folded:
            return key
        if folded.startswith(key_folded) and (best is None or len(key) > len(best)):
            best = key
    return best


def _linear_cost(
    tokens: TokenCounts,
    *,
    input_rate: Decimal,
    cache_read_rate: Decimal,
    cache_write_rate: Decimal,
    cache_write_1h_rate: Decimal,
    output_rate: Decimal,
) -> Decimal:
    total = (
        tokens.input_uncached * input_rate
        + tokens.cache_read * cache_read_rate
        + (tokens.cache_write - tokens.cache_write_1h) * cache_write_rate
        + tokens.cache_write_1h * cache_write_1h_rate
        + tokens.total_output * output_rate
    )
    return total / _MILLION


def _provider_candidates(provider: str) -> tuple[str | None, ...]:
    mapped = GENAI_PROVIDER_IDS.get(provider)
    if mapped is not None:
        return (mapped,)
    if provider and provider != "unknown":
        return (provider, None)
    return (None,)


def _computed(record: UsageRecord, batch_factor: Decimal) -> PricedCost:
    assert record.model is not None
    day = record.start.astimezone(UTC).date()
    context: tuple[tuple[str, str], ...] = ()
    if record.service_tier and record.service_tier != "batch":
        context = (("service_tier", record.service_tier),)
    for provider_id in _provider_candidates(record.provider):
        standard = _genai_rates(record.model, provider_id, day, context)
        if standard is None:
            continue
        rates, factor = standard, Decimal(1)
        if record.batch:
            batch = _genai_rates(record.model, provider_id, day, (*context, ("processing", "batch")))
            if batch is not None and batch.token_rates() != standard.token_rates():
                rates = batch
            else:
                factor = batch_factor
        if rates.tiered and record.requests <= 1:
            cost = _genai_exact(
                record, rates, day, dict(context) | ({"processing": "batch"} if record.batch else {})
            )
            if cost is None:
                continue
        else:
            cost = _linear_cost(
                record.tokens,
                input_rate=rates.input,
                cache_read_rate=rates.cache_read,
                cache_write_rate=rates.cache_write,
                cache_write_1h_rate=rates.cache_write_1h,
                output_rate=rates.output,
            )
        return PricedCost(cost * factor, "computed", rates.model_id)
    return UNPRICED


def _genai_usage(tokens: TokenCounts) -> Usage:
    """genai-prices' Usage: its input_tokens INCLUDE cache reads and writes; output includes reasoning."""
    return Usage(
        input_tokens=tokens.total_input,
        cache_read_tokens=tokens.cache_read,
        cache_write_tokens=tokens.cache_write,
        cache_write_1h_tokens=tokens.cache_write_1h,
        output_tokens=tokens.total_output,
    )


def _at(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _genai_exact(record: UsageRecord, rates: _Rates, day: date, context: dict[str, str]) -> Decimal | None:
    try:
        result = calc_price(
            _genai_usage(record.tokens),
            record.model or rates.model_id,
            provider_id=rates.provider_id,
            genai_request_timestamp=_at(day),
            price_context=context or None,
        )
    except (LookupError, ValueError):
        return None
    return Decimal(result.total_price)


@lru_cache(maxsize=8192)
def _genai_rates(
    model: str, provider_id: str | None, day: date, context: tuple[tuple[str, str], ...]
) -> _Rates | None:
    """Per-1M-token rates of each token kind, read from genai-prices with probe usages; None if unknown."""
    probes = {
        "input": TokenCounts(input_uncached=_PROBE),
        "cache_read": TokenCounts(cache_read=_PROBE),
        "cache_write": TokenCounts(cache_write=_PROBE),
        "cache_write_1h": TokenCounts(cache_write=_PROBE, cache_write_1h=_PROBE),
        "output": TokenCounts(output=_PROBE),
    }
    price_context: dict[str, str] | None = dict(context) or None
    rates: dict[str, Decimal] = {}
    model_id = model
    tiered = False
    try:
        for name, probe in probes.items():
            result = calc_price(
                _genai_usage(probe),
                model,
                provider_id=provider_id,
                genai_request_timestamp=_at(day),
                price_context=price_context,
            )
            rates[name] = Decimal(result.total_price) * _PROBE_SCALE
            model_id = result.model.id
            tiered = tiered or any(
                isinstance(value, TieredPrices) for value in vars(result.model_price).values()
            )
    except (LookupError, ValueError):
        return None
    return _Rates(
        input=rates["input"],
        cache_read=rates["cache_read"],
        cache_write=rates["cache_write"],
        cache_write_1h=rates["cache_write_1h"],
        output=rates["output"],
        model_id=model_id,
        provider_id=provider_id,
        tiered=tiered,
    )
