"""EBS volumes attached to nothing, still billed every month."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import Field

from tools.cloud.inventory import age_days, billed_monthly_cost, scope_from_tags, severity_for
from tools.findings import Finding, fingerprint
from tools.rules.base import Rule, RuleContext, RuleParams, register

#: EBS storage, USD per GB-month, us-east-1 list prices (AWS EBS pricing page, 2024-09). IOPS and
#: throughput charges of io1/io2/gp3 beyond the baseline are not included, so savings are a lower bound.
EBS_USD_PER_GB_MONTH: dict[str, Decimal] = {
    "gp2": Decimal("0.10"),
    "gp3": Decimal("0.08"),
    "io1": Decimal("0.125"),
    "io2": Decimal("0.125"),
    "st1": Decimal("0.045"),
    "sc1": Decimal("0.015"),
    "standard": Decimal("0.05"),
}


class UnattachedVolumeParams(RuleParams):
    days: int = Field(7, ge=0, le=3650, description="report volumes created at least this many days ago")


@register
class UnattachedEbsVolume(Rule):
    """An EBS volume in state ``available`` (attached to no instance) created at least ``days`` days ago.
    EBS bills provisioned GB whether or not a volume is attached. (AWS records no detach time, so the age
    is that of the volume, not of its detachment.) Saving = size x $/GB-month of its type, or the billed
    cost when the cost lake has it. Proposes snapshotting then deleting the volume."""

    id = "unattached-ebs-volume"
    title = "Unattached EBS volume"
    resource_kind = "ebs-volume"
    needs_inventory = True
    Params = UnattachedVolumeParams
    action = "ebs-snapshot-delete-volume"
    evidence_fields: ClassVar[tuple[str, ...]] = (
        "state",
        "attachments",
        "size_gb",
        "volume_type",
        "create_time",
        "age_days",
        "usd_per_gb_month",
        "cost_basis",
    )

    def evaluate(self, ctx: RuleContext) -> Iterator[Finding]:
        params = self.params
        assert isinstance(params, UnattachedVolumeParams)
        if ctx.inventory is None:
            return
        cutoff = ctx.now - timedelta(days=params.days)
        for vol in ctx.inventory.volumes():
            if vol.state != "available" or vol.attachments > 0 or vol.create_time > cutoff:
                continue
            rate = EBS_USD_PER_GB_MONTH.get(vol.type)
            billed = billed_monthly_cost(ctx.costs, [vol.id], ctx.now, memo=ctx.extra)
            if billed is not None:
                monthly: Decimal | None = billed
                basis = "billed, last 30 days"
            elif rate is not None:
                monthly = (rate * vol.size_gb).quantize(Decimal("0.01"))
                basis = "size x list $/GB-month"
            else:
                monthly, basis = None, "price unknown"
            impact = monthly if monthly is not None else Decimal(0)
            evidence: dict[str, Any] = {
                "state": vol.state,
                "attachments": vol.attachments,
                "size_gb": vol.size_gb,
                "volume_type": vol.type,
                "availability_zone": vol.az,
                "create_time": vol.create_time.isoformat(),
                "age_days": age_days(vol.create_time, ctx.now),
                "usd_per_gb_month": None if rate is None else str(rate),
                "cost_basis": basis,
            }
            yield Finding(
                kind="waste",
                rule_id=self.id,
                fingerprint=fingerprint(self.id, vol.id),
                title=f"Unattached EBS volume {vol.id} ({vol.size_gb} GB {vol.type}) in {vol.az}"
                + ("" if monthly is not None else " (price unknown)"),
                monthly_impact=impact,
                detected_at=ctx.now,
                resource=vol.id,
                resource_kind=self.resource_kind,
                scope=scope_from_tags(vol.tags, ctx.config.taxonomy),
                currency="USD",
                severity=severity_for(impact),
                evidence=evidence,
                proposed_action=self.action,
                action_params={"volume_id": vol.id, "region": vol.region},
                recommendation=(
                    f"Snapshot and delete {vol.id}: attached to nothing, created "
                    f"{age_days(vol.create_time, ctx.now):.0f} days ago. The snapshot (about $0.05/GB-month) "
                    "allows recreating it."
                ),
                tags=dict(vol.tags),
                account=vol.account,
            )
