"""Rule ``feature-below-roi``: features whose cost per request exceeds what a request is worth."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from pydantic import Field

from tools.findings import Finding, fingerprint
from tools.rules.base import Rule, RuleContext, RuleParams, register
from tools.rules.premium_model import money, monthly, period_sql, severity_for, window

_Q = Decimal("0.000001")


class RoiThresholdParams(RuleParams):
    days: int = Field(30, ge=1, le=365, description="look-back window in days")
    min_requests: int = Field(100, ge=1, description="ignore features with fewer requests in the window")


@register
class FeatureBelowRoi(Rule):
    """A feature listed in ``feature_value`` whose cost per request is above its ``value_per_request``.

    Cost per request = the spend allocated to the feature over the last ``days`` days (every provider:
    LLM calls and any cloud resources tagged with the feature; effective cost) / the feature's LLM
    requests from ``usage_allocated`` (counted once across usage sources). Features with fewer than
    ``min_requests`` requests are skipped (too little traffic to judge). Impact = (cost per request -
    value per request) x requests, scaled to 30 days: what the feature loses per month at its current
    traffic. Recommendation only: review the feature (cheaper model, shorter prompts, caching) or retire it.
    """

    id = "feature-below-roi"
    title = "Feature costs more per request than it is worth"
    resource_kind = "llm-feature"
    Params = RoiThresholdParams
    action = None
    evidence_fields = (
        "window_days",
        "spend",
        "llm_spend",
        "requests",
        "cost_per_request",
        "value_per_request",
    )

    def evaluate(self, ctx: RuleContext) -> Iterator[Finding]:
        if ctx.costs is None:
            return
        p = self.params
        assert isinstance(p, RoiThresholdParams)
        period = window(ctx, p.days)
        for fv in ctx.config.feature_value:
            name = fv.feature.lower()
            spend_raw, llm_raw, team = ctx.costs.execute(
                "SELECT sum(effective_cost), sum(effective_cost) FILTER (WHERE llm_provider IS NOT NULL), "
                f"mode(team) FROM spend WHERE {period_sql(period)} AND lower(feature) = ?",
                [name],
            ).fetchall()[0]
            (requests_raw,) = ctx.costs.execute(
                f"SELECT sum(requests) FROM usage_allocated WHERE {period_sql(period)} AND lower(feature) = ?",
                [name],
            ).fetchall()[0]
            requests = int(requests_raw or 0)
            spend = Decimal(spend_raw or 0)
            if requests < p.min_requests or spend <= 0:
                continue
            per_request = spend / requests
            if per_request <= fv.value_per_request:
                continue
            impact = monthly((per_request - fv.value_per_request) * requests, p.days)
            yield Finding(
                kind="waste",
                rule_id=self.id,
                fingerprint=fingerprint(self.id, fv.feature),
                title=(
                    f"{fv.feature} costs {money(per_request.quantize(Decimal('0.001')))} per request "
                    f"for a value of {money(fv.value_per_request)}"
                ),
                monthly_impact=impact,
                detected_at=ctx.now,
                resource=fv.feature,
                resource_kind=self.resource_kind,
                scope={"feature": fv.feature, **({"team": str(team)} if team else {})},
                severity=severity_for(impact),
                evidence={
                    "window_days": p.days,
                    "spend": str(spend.quantize(Decimal("0.01"))),
                    "llm_spend": str(Decimal(llm_raw or 0).quantize(Decimal("0.01"))),
                    "requests": requests,
                    "cost_per_request": str(per_request.quantize(_Q)),
                    "value_per_request": str(fv.value_per_request),
                },
                proposed_action=None,
                recommendation=(
                    f"Each {fv.feature} request costs {per_request.quantize(_Q)} $ but is worth "
                    f"{fv.value_per_request} $ (feature_value): review it — a cheaper model, shorter prompts, "
                    "caching or fewer calls per task — or retire it."
                ),
            )
