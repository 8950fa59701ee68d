"""Rule ``unapproved-model``: LLM usage of a model that is not approved for its environment."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

from pydantic import Field

from tools.findings import Finding, fingerprint
from tools.rules.base import Rule, RuleContext, RuleParams, register
from tools.rules.premium_model import (
    UsageGroup,
    allocated_llm_spend,
    approved_name,
    is_embedding_model,
    model_vendor,
    money,
    monthly,
    price_group,
    usage_groups,
    window,
)


class UnapprovedModelParams(RuleParams):
    days: int = Field(30, ge=1, le=365, description="look-back window in days")


@register
class UnapprovedModel(Rule):
    """Usage in an environment of a model that ``approved_models`` does not list for that environment.

    A model is approved when an approved name equals it or it is a dated/versioned variant of an approved
    name (``gpt-4o`` approves ``gpt-4o-2024-08-06`` but not ``gpt-4o-mini``; gateway and Bedrock prefixes
    such as ``anthropic.`` are ignored). Environments without an ``approved_models`` entry are not
    governed, and usage without an environment (e.g. a provider usage API with no project mapping) cannot
    be checked: both are skipped.

    One finding per (provider, model, environment, feature) — a governance finding. The proposed fix is
    ``switch-llm-model`` to the cheapest approved model of the same vendor (priced on the group's actual
    token mix; embedding models only replace embedding models), when the group has a feature to route and
    such a model exists; otherwise no action: the owner is notified. Impact = the spend allocated to the
    model in that environment and feature over the window (the usage's own cost when no bill allocates
    it), scaled to 30 days.
    """

    id = "unapproved-model"
    title = "LLM model not approved for its environment"
    resource_kind = "llm-feature"
    Params = UnapprovedModelParams
    action = "switch-llm-model"
    evidence_fields = ("window_days", "requests", "tokens", "spend", "approved_models", "suggested_model")

    def evaluate(self, ctx: RuleContext) -> Iterator[Finding]:
        if ctx.costs is None:
            return
        p = self.params
        assert isinstance(p, UnapprovedModelParams)
        period = window(ctx, p.days)
        price_day = period.end - timedelta(days=1)
        spend = allocated_llm_spend(ctx.costs, period)
        for g in usage_groups(ctx.costs, period):
            if g.environment is None or g.environment not in ctx.config.approved_models:
                continue
            approved = ctx.config.approved_models[g.environment]
            if approved_name(g.model, approved) is not None:
                continue
            allocated = spend.get((g.provider, g.model, g.environment, g.feature), Decimal(0))
            amount = allocated if allocated else (g.cost or Decimal(0))
            impact = monthly(amount, p.days)
            target = self._cheapest_approved(ctx, g, approved, price_day)
            yield self._finding(ctx, g, approved, target, amount, impact, p.days)

    @staticmethod
    def _cheapest_approved(
        ctx: RuleContext, g: UsageGroup, approved: list[str], price_day: date
    ) -> tuple[str, Decimal] | None:
        vendor = model_vendor(g.model)
        if vendor is None:
            return None
        best: tuple[str, Decimal] | None = None
        for candidate in approved:
            if model_vendor(candidate) != vendor:
                continue
            if is_embedding_model(candidate) != is_embedding_model(g.model):
                continue
            cost = price_group(ctx.config, g, candidate, price_day)
            if cost is not None and (best is None or cost < best[1]):
                best = (candidate, cost)
        return best

    def _finding(
        self,
        ctx: RuleContext,
        g: UsageGroup,
        approved: list[str],
        target: tuple[str, Decimal] | None,
        amount: Decimal,
        impact: Decimal,
        days: int,
    ) -> Finding:
        where = f"{g.environment}" + (f", feature {g.feature}" if g.feature else "")
        routable = target is not None and g.feature is not None
        if target is not None and g.feature is not None:
            advice = (
                f"Switch {g.feature} to {target[0]}, the cheapest model approved for {g.environment} from "
                f"the same vendor (about {money(target[1])} for the same tokens over {days} days), or "
                f"get {g.model} approved for {g.environment}."
            )
        elif target is not None:
            advice = (
                f"Find the callers (no feature is recorded) and move them to {target[0]}, the cheapest "
                f"approved model of the same vendor, or get {g.model} approved for {g.environment}."
            )
        else:
            advice = (
                f"No approved model of the same vendor is available in {g.environment}: ask the owner to "
                f"get {g.model} approved or to move to one of {', '.join(approved) or 'the approved models'}."
            )
        return Finding(
            kind="governance",
            rule_id=self.id,
            fingerprint=fingerprint(self.id, g.environment, g.provider, g.model, g.feature),
            title=f"{g.model} is not approved for {g.environment}" + (f" ({g.feature})" if g.feature else ""),
            monthly_impact=impact,
            detected_at=ctx.now,
            resource=f"{g.feature}/{g.model}" if g.feature else g.model,
            resource_kind=self.resource_kind,
            scope=g.scope(),
            severity="high" if g.environment in ctx.config.guardrails.protected_environments else "medium",
            evidence={
                "window_days": days,
                "requests": g.all_requests,
                "tokens": g.total_tokens,
                "spend": str(amount.quantize(Decimal("0.01"))),
                "approved_models": list(approved),
                "suggested_model": target[0] if target else None,
            },
            proposed_action=self.action if routable else None,
            action_params=(
                {
                    "feature": g.feature,
                    "environment": g.environment,
                    "from_model": g.model,
                    "to_model": target[0],
                }
                if target is not None and routable
                else {}
            ),
            recommendation=f"{g.model} ran in {where} without approval: {advice}",
        )
