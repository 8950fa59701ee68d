"""Rule ``unregistered-feature``: LLM usage from a feature that is not in the governance intake register."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from pydantic import Field

from tools.findings import Finding, fingerprint
from tools.rules.base import Rule, RuleContext, RuleParams, register
from tools.rules.premium_model import allocated_llm_spend, money, monthly, severity_for, usage_groups, window

#: RuleContext.extra key: the (feature, environment) pairs of the register (``tools.intake.registered_features``)
REGISTER_KEY = "ai_services"


@dataclass
class _Usage:
    scope: dict[str, str]
    spend: Decimal = Decimal(0)
    requests: int = 0
    tokens: int = 0
    models: set[str] = field(default_factory=set)


class UnregisteredFeatureParams(RuleParams):
    days: int = Field(30, ge=1, le=365, description="look-back window in days")
    min_monthly: Decimal = Field(
        Decimal("1"), ge=0, description="ignore features spending less than this per month"
    )


@register
class UnregisteredFeature(Rule):
    """LLM usage of a feature (in an environment) that nobody registered with ``finops intake``.

    A registration for environment ``*`` covers every environment. The rule is silent while the register is
    empty (the organisation does not use intake yet; otherwise every feature would be a finding the day it
    is installed) and for usage with no feature recorded (the ``untagged-spend`` rule covers that). One
    governance finding per (feature, environment); impact = the feature's LLM spend in the window scaled to a
    month; no automatic fix: the owner registers the feature (or stops it).
    """

    id = "unregistered-feature"
    title = "LLM usage from a feature not registered in the AI service intake"
    resource_kind = "llm-feature"
    Params = UnregisteredFeatureParams
    action = None
    evidence_fields = ("window_days", "requests", "tokens", "spend", "models")

    def evaluate(self, ctx: RuleContext) -> Iterator[Finding]:
        register_ = ctx.extra.get(REGISTER_KEY)
        if ctx.costs is None or not register_:
            return
        p = self.params
        assert isinstance(p, UnregisteredFeatureParams)
        period = window(ctx, p.days)
        spend = allocated_llm_spend(ctx.costs, period)
        groups: dict[tuple[str, str], _Usage] = {}
        for g in usage_groups(ctx.costs, period):
            if g.feature is None:
                continue
            env = g.environment or "(none)"
            if (g.feature, env) in register_ or (g.feature, "*") in register_:
                continue
            allocated = spend.get((g.provider, g.model, g.environment, g.feature), Decimal(0))
            item = groups.setdefault((g.feature, env), _Usage(scope=g.scope()))
            item.spend += allocated if allocated else (g.cost or Decimal(0))
            item.requests += g.all_requests
            item.tokens += g.total_tokens
            item.models.add(g.model)
        for (feature, env), item in sorted(groups.items()):
            impact = monthly(item.spend, p.days)
            if impact < p.min_monthly:
                continue
            models = sorted(item.models)
            scope = {
                k: v for k, v in item.scope.items() if k in ("team", "project", "environment", "feature")
            }
            yield Finding(
                kind="governance",
                rule_id=self.id,
                fingerprint=fingerprint(self.id, feature, env),
                title=f"{feature} ({env}) calls {', '.join(models)} but is not registered",
                monthly_impact=impact,
                detected_at=ctx.now,
                resource=feature,
                resource_kind=self.resource_kind,
                scope=scope,
                severity=severity_for(impact),
                evidence={
                    "window_days": p.days,
                    "requests": item.requests,
                    "tokens": item.tokens,
                    "spend": str(item.spend.quantize(Decimal("0.01"))),
                    "models": models,
                },
                recommendation=(
                    f"Register {feature} for {env} with `finops intake register --feature {feature} "
                    f"--environment {env} ...` (owner, use case, models, estimated monthly spend; about "
                    f"{money(impact)} a month now), or stop the calls."
                ),
            )
