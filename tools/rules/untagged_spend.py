"""Rule ``untagged-spend``: spend no team owns, one finding per top offending resource."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal

from pydantic import Field

from tools.findings import Finding, fingerprint
from tools.rules.base import Rule, RuleContext, RuleParams, register
from tools.rules.premium_model import money, monthly, severity_for, window
from tools.untagged import Offender, untagged_spend


class UntaggedSpendParams(RuleParams):
    days: int = Field(30, ge=1, le=365, description="look-back window in days")
    min_share: Decimal = Field(
        Decimal("0.03"), ge=0, le=1, description="report when unallocated spend is at least this share"
    )
    min_amount: Decimal = Field(
        Decimal("5000"), ge=0, description="... or at least this much per month ($), whatever its share"
    )
    top: int = Field(10, ge=1, le=100, description="how many offenders to inspect")
    min_monthly_cost: Decimal = Field(Decimal("10"), ge=0, description="ignore smaller offenders ($/month)")


@register
class UntaggedSpend(Rule):
    """Unallocated spend (no ``team``) over the last ``days`` days, once it is material: at least
    ``min_share`` of all spend (default 3 %) or at least ``min_amount`` per month.

    Then one finding per top offending resource (``tools.untagged.untagged_spend``, largest first), with
    the team that most probably owns it (the same resource tagged on other days, its project/owner tags,
    the usual team of its account). With a suggestion the proposed action is ``apply-tags``
    ``{"resource", "tags": {"team": ...}}``; without one, no action (the owner must be found). Charges
    without a resource (support plan, tax, credits) cannot be tagged and are left to shared-cost
    allocation. Impact = the resource's unallocated cost scaled to 30 days (what stays unowned each month).
    """

    id = "untagged-spend"
    title = "Spend without an owning team"
    resource_kind = "cloud-resource"
    Params = UntaggedSpendParams
    action = "apply-tags"
    evidence_fields = (
        "window_days",
        "cost",
        "unallocated_share",
        "unallocated_total",
        "suggested_team",
        "reason",
        "service",
        "current_tags",
    )

    def evaluate(self, ctx: RuleContext) -> Iterator[Finding]:
        if ctx.costs is None:
            return
        p = self.params
        assert isinstance(p, UntaggedSpendParams)
        period = window(ctx, p.days)
        result = untagged_spend(ctx.costs, ctx.config, period, top=p.top)
        if result.total <= 0 or result.unallocated <= 0:
            return
        share = result.unallocated / result.total
        if share < p.min_share and monthly(result.unallocated, p.days) < p.min_amount:
            return
        for o in _per_resource(result.offenders):
            if not o.resource or o.cost <= 0:
                continue
            impact = monthly(o.cost, p.days)
            if impact < p.min_monthly_cost:
                continue
            team = o.suggested_team
            yield Finding(
                kind="governance",
                rule_id=self.id,
                fingerprint=fingerprint(self.id, o.resource),
                title=f"{o.resource} has no team" + (f" (probably {team})" if team else ""),
                monthly_impact=impact,
                detected_at=ctx.now,
                resource=o.resource,
                resource_kind=self.resource_kind,
                scope={k: v for k, v in {"team": team, "sub_account": o.account}.items() if v},
                severity=severity_for(impact),
                evidence={
                    "window_days": p.days,
                    "cost": str(o.cost.quantize(Decimal("0.01"))),
                    "unallocated_share": float(round(share, 4)),
                    "unallocated_total": str(result.unallocated.quantize(Decimal("0.01"))),
                    "suggested_team": team,
                    "reason": o.reason,
                    "service": o.service,
                    "current_tags": o.tags,
                },
                proposed_action=self.action if team else None,
                action_params={"resource": o.resource, "tags": {"team": team}} if team else {},
                recommendation=(
                    f"{money(o.cost)} of {o.service or 'spend'} over {p.days} days on {o.resource} has no team "
                    f"({share:.1%} of all spend is unallocated). "
                    + (f"Tag it team={team}: {o.reason}." if team else f"Find its owner: {o.reason}.")
                ),
                account=o.account,
            )


def _per_resource(offenders: list[Offender]) -> list[Offender]:
    """One offender per resource: a resource billed under several services (an instance and its EBS
    volumes, say) is one thing to tag, so one finding with the summed cost."""
    merged: dict[str, Offender] = {}
    for o in offenders:
        key = o.resource or f"\x00{len(merged)}"  # offenders without a resource stay apart
        seen = merged.get(key)
        if seen is None:
            merged[key] = o
            continue
        services = sorted({s for s in [*(seen.service or "").split(", "), o.service or ""] if s})
        merged[key] = replace(seen, cost=seen.cost + o.cost, service=", ".join(services) or None)
    return sorted(merged.values(), key=lambda o: -o.cost)
