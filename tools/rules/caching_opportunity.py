"""Rule ``prompt-caching-opportunity``: large prompts that are hardly ever read from the prompt cache."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from pydantic import Field

from tools.findings import Finding, fingerprint
from tools.ingest.records import TokenCounts
from tools.rules.base import Rule, RuleContext, RuleParams, register
from tools.rules.premium_model import (
    UsageGroup,
    money,
    monthly,
    price_group,
    severity_for,
    usage_groups,
    window,
)


class CachingOpportunityParams(RuleParams):
    days: int = Field(30, ge=1, le=365, description="look-back window in days")
    min_avg_input_tokens: int = Field(
        2000, ge=1, description="average uncached input tokens per request from which caching is worth it"
    )
    max_cache_read_share: Decimal = Field(
        Decimal("0.10"), ge=0, le=1, description="cache reads / all input tokens below which caching is 'low'"
    )
    cacheable_share: Decimal = Field(
        Decimal("0.5"), gt=0, le=1, description="assumed share of the uncached input that a cache could serve"
    )
    min_monthly_savings: Decimal = Field(Decimal("1"), ge=0, description="ignore smaller savings ($/month)")


def _move_to_cache(tokens: TokenCounts, share: Decimal) -> TokenCounts:
    moved = int(Decimal(tokens.input_uncached) * share)
    return replace(tokens, input_uncached=tokens.input_uncached - moved, cache_read=tokens.cache_read + moved)


@register
class PromptCachingOpportunity(Rule):
    """A feature sends large prompts (average uncached input tokens per request at least
    ``min_avg_input_tokens``) to a model, yet reads less than ``max_cache_read_share`` of its input from
    the provider's prompt cache.

    Per (provider, model, environment, feature) over the last ``days`` days, token mix from one usage
    source (as in ``premium-model-downgrade``). Savings estimate — an assumption, stated in the evidence:
    ``cacheable_share`` (default 50 %) of the uncached input tokens could have been cache reads (a stable
    system prompt, tool definitions, retrieved documents placed first). Both mixes are priced with the
    model's own prices (overrides, else genai-prices' cache-read price); the difference, scaled to 30
    days, is the impact. Cache-write premiums (Anthropic charges +25 % on the first write of a prefix) are
    not counted. Models without a cache discount yield no saving and no finding. Recommendation only:
    restructure prompts with the stable prefix first (OpenAI caches automatically from 1,024 tokens;
    Anthropic and Bedrock need ``cache_control`` breakpoints).
    """

    id = "prompt-caching-opportunity"
    title = "Large LLM prompts without prompt caching"
    resource_kind = "llm-feature"
    Params = CachingOpportunityParams
    action = None
    evidence_fields = (
        "window_days",
        "requests",
        "avg_uncached_input_tokens",
        "cache_read_share",
        "cacheable_share",
        "cost_now",
        "cost_with_caching",
    )

    def evaluate(self, ctx: RuleContext) -> Iterator[Finding]:
        if ctx.costs is None:
            return
        p = self.params
        assert isinstance(p, CachingOpportunityParams)
        period = window(ctx, p.days)
        price_day = period.end - timedelta(days=1)
        for g in usage_groups(ctx.costs, period):
            if g.feature is None or g.all_requests == 0 or g.input_tokens == 0:
                continue
            avg_uncached = g.input_uncached / g.all_requests
            share = Decimal(g.cache_read) / Decimal(g.input_tokens)
            if avg_uncached < p.min_avg_input_tokens or share >= p.max_cache_read_share:
                continue
            now = price_group(ctx.config, g, g.model, price_day)
            cached_group = replace(
                g,
                tokens=_move_to_cache(g.tokens, p.cacheable_share),
                batch_tokens=_move_to_cache(g.batch_tokens, p.cacheable_share),
            )
            cached = price_group(ctx.config, cached_group, g.model, price_day)
            if now is None or cached is None or cached >= now:
                continue
            impact = monthly(now - cached, p.days)
            if impact < p.min_monthly_savings or impact <= 0:
                continue
            yield self._finding(ctx, g, avg_uncached, share, now, cached, impact, p)

    def _finding(
        self,
        ctx: RuleContext,
        g: UsageGroup,
        avg_uncached: float,
        share: Decimal,
        now: Decimal,
        cached: Decimal,
        impact: Decimal,
        p: CachingOpportunityParams,
    ) -> Finding:
        pct = f"{share:.1%}"
        return Finding(
            kind="waste",
            rule_id=self.id,
            fingerprint=fingerprint(self.id, g.provider, g.model, g.environment, g.feature),
            title=f"{g.feature} sends ~{round(avg_uncached):,} uncached input tokens per {g.model} request",
            monthly_impact=impact,
            detected_at=ctx.now,
            resource=f"{g.feature}/{g.model}",
            resource_kind=self.resource_kind,
            scope=g.scope(),
            severity=severity_for(impact),
            evidence={
                "window_days": p.days,
                "requests": g.all_requests,
                "avg_uncached_input_tokens": round(avg_uncached),
                "cache_read_share": float(round(share, 4)),
                "cacheable_share": float(p.cacheable_share),
                "cost_now": str(now.quantize(Decimal("0.01"))),
                "cost_with_caching": str(cached.quantize(Decimal("0.01"))),
            },
            proposed_action=None,
            recommendation=(
                f"Only {pct} of {g.feature}'s input to {g.model} is read from the prompt cache. Put the stable "
                "part of the prompt (system prompt, tools, shared context) first and enable caching: if "
                f"{p.cacheable_share:.0%} of the uncached input were cache reads, {money(now)} over "
                f"{p.days} days would have been {money(cached)}."
            ),
        )
