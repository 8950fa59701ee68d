"""Old EBS snapshots whose source volume is gone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import Field

from tools.cloud.inventory import age_days, billed_monthly_cost, scope_from_tags, severity_for
from tools.findings import Finding, fingerprint
from tools.rules.base import Rule, RuleContext, RuleParams, register

#: EBS snapshot storage (standard tier), USD per GB-month, us-east-1 list price (2024-09)
SNAPSHOT_USD_PER_GB_MONTH = Decimal("0.05")


class OldSnapshotsParams(RuleParams):
    days: int = Field(180, ge=1, le=3650, description="report snapshots older than this many days")
    skip_ami_snapshots: bool = Field(
        True, description="skip snapshots created for an AMI (they cannot be deleted while the AMI exists)"
    )


@register
class OldEbsSnapshots(Rule):
    """An EBS snapshot owned by the account, older than ``days`` days, whose source volume no longer
    exists in its region. Saving = volume size x $0.05/GB-month, an upper bound (snapshots are incremental),
    or the billed cost when the cost lake has it. Recommendation only: whether a backup is still needed
    is a retention decision no rule can make."""

    id = "old-ebs-snapshots"
    title = "Old EBS snapshot of a deleted volume"
    resource_kind = "ebs-snapshot"
    needs_inventory = True
    Params = OldSnapshotsParams
    action = None
    evidence_fields: ClassVar[tuple[str, ...]] = (
        "volume_id",
        "volume_exists",
        "size_gb",
        "start_time",
        "age_days",
        "usd_per_gb_month",
        "cost_basis",
    )

    def evaluate(self, ctx: RuleContext) -> Iterator[Finding]:
        params = self.params
        assert isinstance(params, OldSnapshotsParams)
        if ctx.inventory is None:
            return
        cutoff = ctx.now - timedelta(days=params.days)
        existing = {(v.region, v.id) for v in ctx.inventory.volumes()}
        for snap in ctx.inventory.snapshots():
            if snap.start_time > cutoff or (snap.region, snap.volume_id) in existing:
                continue
            if params.skip_ami_snapshots and "CreateImage" in snap.description:
                continue
            billed = billed_monthly_cost(ctx.costs, [snap.id], ctx.now, memo=ctx.extra)
            monthly = (
                billed
                if billed is not None
                else (SNAPSHOT_USD_PER_GB_MONTH * snap.size_gb).quantize(Decimal("0.01"))
            )
            age = age_days(snap.start_time, ctx.now)
            evidence: dict[str, Any] = {
                "volume_id": snap.volume_id,
                "volume_exists": False,
                "size_gb": snap.size_gb,
                "description": snap.description,
                "start_time": snap.start_time.isoformat(),
                "age_days": age,
                "usd_per_gb_month": str(SNAPSHOT_USD_PER_GB_MONTH),
                "cost_basis": "billed, last 30 days" if billed is not None else "size x list $/GB-month",
            }
            yield Finding(
                kind="waste",
                rule_id=self.id,
                fingerprint=fingerprint(self.id, snap.id),
                title=f"EBS snapshot {snap.id} ({snap.size_gb} GB, {age:.0f} days old) of deleted volume "
                f"{snap.volume_id} in {snap.region}",
                monthly_impact=monthly,
                detected_at=ctx.now,
                resource=snap.id,
                resource_kind=self.resource_kind,
                scope=scope_from_tags(snap.tags, ctx.config.taxonomy),
                currency="USD",
                severity=severity_for(monthly),
                evidence=evidence,
                proposed_action=None,
                recommendation=(
                    f"Check whether {snap.id} is still needed as a backup; if not, delete it, or move it to the "
                    "EBS Snapshots Archive tier (75 % cheaper storage, 90-day minimum) or set a Data Lifecycle "
                    "Manager retention policy."
                ),
                tags=dict(snap.tags),
                account=snap.account,
            )
