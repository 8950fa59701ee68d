"""Rule ``batch-opportunity``: non-interactive LLM workloads paying on-demand prices instead of batch."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from pydantic import Field

from tools.findings import Finding, fingerprint
from tools.rules.base import Rule, RuleContext, RuleParams, register
from tools.rules.premium_model import (
    UsageGroup,
    money,
    monthly,
    price_tokens,
    severity_for,
    usage_groups,
    window,
)

#: name fragments that mark a feature (or project) as non-interactive: nobody waits for the answer
NON_INTERACTIVE_KEYWORDS: tuple[str, ...] = ("batch", "eval", "summary", "report", "ingest", "embedding")


class BatchOpportunityParams(RuleParams):
    days: int = Field(30, ge=1, le=365, description="look-back window in days")
    non_interactive_features: list[str] = Field(
        default_factory=list, description="features (or projects) known to be non-interactive"
    )
    non_interactive_keywords: list[str] = Field(
        default_factory=lambda: list(NON_INTERACTIVE_KEYWORDS),
        description="a feature (or project) whose name contains one of these is treated as non-interactive",
    )
    min_monthly_savings: Decimal = Field(Decimal("1"), ge=0, description="ignore smaller savings ($/month)")


@dataclass
class _Workload:
    environment: str | None
    name: str
    dimension: str  # "feature" or "project"
    team: str | None = None
    requests: int = 0
    on_demand: Decimal = Decimal(0)
    batch_price: Decimal = Decimal(0)
    models: dict[str, str] = field(default_factory=dict)


@register
class BatchOpportunity(Rule):
    """Non-interactive LLM work sent at on-demand prices: usage with ``batch = false`` of a feature that
    is listed in ``non_interactive_features``, or whose name contains one of ``non_interactive_keywords``
    (default: batch, eval, summary, report, ingest, embedding). Usage without a feature is judged by its
    project's name. Whether a feature is interactive cannot be read from daily data reliably (an even
    spread over 24 hours is weak evidence), hence the explicit, configurable list.

    Per (environment, feature) over the last ``days`` days, token mix from one usage source per model.
    Savings = the on-demand cost minus the same tokens at the batch price (genai-prices' batch price,
    else ``pricing.batch_discount``, 50 % by default), scaled to 30 days. Recommendation only: move the
    work to the provider's Batch API (OpenAI / Azure OpenAI Batch, Anthropic Message Batches, Bedrock
    batch inference; results within 24 hours).
    """

    id = "batch-opportunity"
    title = "Non-interactive LLM workload at on-demand prices"
    resource_kind = "llm-feature"
    Params = BatchOpportunityParams
    action = None
    evidence_fields = ("window_days", "requests", "on_demand_cost", "batch_cost", "models", "matched_by")

    def _matches(self, name: str) -> str | None:
        p = self.params
        assert isinstance(p, BatchOpportunityParams)
        lowered = name.lower()
        if lowered in (n.lower() for n in p.non_interactive_features):
            return "non_interactive_features"
        hit = next((k for k in p.non_interactive_keywords if k.lower() in lowered), None)
        return f"keyword '{hit}'" if hit else None

    def evaluate(self, ctx: RuleContext) -> Iterator[Finding]:
        if ctx.costs is None:
            return
        p = self.params
        assert isinstance(p, BatchOpportunityParams)
        period = window(ctx, p.days)
        price_day = period.end - timedelta(days=1)
        workloads: dict[tuple[str | None, str, str], tuple[_Workload, str]] = {}
        for g in usage_groups(ctx.costs, period):
            if g.requests == 0 and g.tokens.total == 0:
                continue
            name, dimension = (g.feature, "feature") if g.feature else (g.project, "project")
            if name is None:
                continue
            matched = self._matches(name)
            if matched is None:
                continue
            on_demand = price_tokens(ctx.config, g.provider, g.model, g.tokens, g.requests, price_day)
            batch = price_tokens(ctx.config, g.provider, g.model, g.tokens, g.requests, price_day, batch=True)
            if on_demand is None or batch is None:
                continue
            key = (g.environment, dimension, name)
            w, _ = workloads.setdefault(key, (_Workload(g.environment, name, dimension, g.team), matched))
            self._add(w, g, on_demand, batch)
        for (_env, _dim, _name), (w, matched) in sorted(
            workloads.items(), key=lambda kv: (str(kv[0][0]), kv[0][1], kv[0][2])
        ):
            impact = monthly(w.on_demand - w.batch_price, p.days)
            if impact <= 0 or impact < p.min_monthly_savings:
                continue
            yield self._finding(ctx, w, matched, impact, p.days)

    @staticmethod
    def _add(w: _Workload, g: UsageGroup, on_demand: Decimal, batch: Decimal) -> None:
        w.team = w.team or g.team
        w.requests += g.requests
        w.on_demand += on_demand
        w.batch_price += batch
        w.models[f"{g.provider}/{g.model}"] = str(on_demand.quantize(Decimal("0.01")))

    def _finding(self, ctx: RuleContext, w: _Workload, matched: str, impact: Decimal, days: int) -> Finding:
        scope = {"team": w.team, "environment": w.environment, w.dimension: w.name}
        return Finding(
            kind="waste",
            rule_id=self.id,
            fingerprint=fingerprint(self.id, w.environment, w.dimension, w.name),
            title=f"{w.dimension} {w.name} runs {w.requests:,} non-interactive LLM requests at on-demand prices",
            monthly_impact=impact,
            detected_at=ctx.now,
            resource=w.name,
            resource_kind=self.resource_kind,
            scope={k: v for k, v in scope.items() if v is not None},
            severity=severity_for(impact),
            evidence={
                "window_days": days,
                "requests": w.requests,
                "on_demand_cost": str(w.on_demand.quantize(Decimal("0.01"))),
                "batch_cost": str(w.batch_price.quantize(Decimal("0.01"))),
                "models": dict(w.models),
                "matched_by": matched,
            },
            proposed_action=None,
            recommendation=(
                f"{w.name} looks non-interactive ({matched}): send its requests through the provider's "
                f"Batch API (results within 24 h). {money(w.on_demand)} of on-demand calls over {days} days "
                f"would have cost {money(w.batch_price)}."
            ),
        )
