"""Running instances far larger than their load: a smaller size of the same family would do."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import Field

from tools.cloud.inventory import (
    HOURS_PER_MONTH,
    Inventory,
    Metric,
    daily_window,
    instance_family,
    instance_size,
    scope_from_tags,
    severity_for,
)
from tools.findings import Finding, fingerprint
from tools.rules.base import Rule, RuleContext, RuleParams, register

#: EC2 sizes, smallest first (sizes a family lacks are skipped by the price lookup)
SIZES: tuple[str, ...] = (
    "nano",
    "micro",
    "small",
    "medium",
    "large",
    "xlarge",
    "2xlarge",
    "3xlarge",
    "4xlarge",
    "6xlarge",
    "8xlarge",
    "9xlarge",
    "12xlarge",
    "16xlarge",
    "18xlarge",
    "24xlarge",
    "32xlarge",
    "48xlarge",
)


def smaller_type(inventory: Inventory, instance_type: str) -> tuple[str, Decimal] | None:
    """The next smaller size of the same family that has a known price, with that price."""
    family, size = instance_family(instance_type), instance_size(instance_type)
    if size not in SIZES:
        return None
    for candidate in reversed(SIZES[: SIZES.index(size)]):
        target = f"{family}.{candidate}"
        price = inventory.instance_price(target)
        if price is not None:
            return target, price
    return None


class OverprovisionedParams(RuleParams):
    days: int = Field(14, ge=1, le=90, description="whole days of history to judge on")
    cpu_threshold: float = Field(
        20.0, gt=0, le=100, description="highest daily average CPU % below which the instance is oversized"
    )
    include_gpu: bool = Field(
        False, description="also judge GPU instances (their size is about GPUs, not CPU; off by default)"
    )


@register
class OverprovisionedInstance(Rule):
    """A running instance whose highest daily average CPUUtilization over the last ``days`` days (a
    p95-like peak of daily load) stayed below ``cpu_threshold``, when the next smaller size of the same
    family is in the price table. Saving = price difference x 730 h. Instances without CPU data, started
    within the window, or GPU instances (unless ``include_gpu``) are not judged. Proposes resizing."""

    id = "overprovisioned-instance"
    title = "Over-provisioned instance"
    resource_kind = "ec2-instance"
    needs_inventory = True
    Params = OverprovisionedParams
    action = "ec2-resize-instance"
    evidence_fields: ClassVar[tuple[str, ...]] = (
        "instance_type",
        "target_type",
        "window",
        "cpu",
        "cpu_max_daily",
        "hourly_price",
        "target_hourly_price",
    )

    def evaluate(self, ctx: RuleContext) -> Iterator[Finding]:
        params = self.params
        assert isinstance(params, OverprovisionedParams)
        if ctx.inventory is None:
            return
        start, end = daily_window(ctx.now, params.days)
        candidates = []
        for inst in ctx.inventory.instances():
            if inst.state != "running" or inst.launch_time > start or (inst.gpu and not params.include_gpu):
                continue
            smaller = smaller_type(ctx.inventory, inst.type)
            if smaller is not None:
                candidates.append((inst, smaller))
        ctx.inventory.prefetch_metrics([Metric.ec2_cpu(i) for i, _ in candidates], start, end)
        for inst, (target, target_price) in candidates:
            metric = Metric.ec2_cpu(inst)
            cpu = metric.daily(ctx.inventory, start, end)
            if not cpu:
                continue  # no evidence: not judged
            cpu_max = max(v for _, v in cpu)
            if cpu_max >= params.cpu_threshold:
                continue
            price = inst.hourly_price
            impact = (
                ((price - target_price) * HOURS_PER_MONTH).quantize(Decimal("0.01"))
                if price is not None and price > target_price
                else Decimal(0)
            )
            evidence: dict[str, Any] = {
                "instance_type": inst.type,
                "target_type": target,
                "launch_time": inst.launch_time.isoformat(),
                "window": {"start": start.isoformat(), "end": end.isoformat(), "days": params.days},
                "cpu": metric.evidence(cpu),
                "cpu_max_daily": round(cpu_max, 4),
                "cpu_threshold": params.cpu_threshold,
                "hourly_price": None if price is None else str(price),
                "target_hourly_price": str(target_price),
            }
            yield Finding(
                kind="waste",
                rule_id=self.id,
                fingerprint=fingerprint(self.id, inst.id),
                title=f"Over-provisioned instance {inst.id}: {inst.type} -> {target} in {inst.region}"
                + ("" if price is not None else " (price unknown)"),
                monthly_impact=impact,
                detected_at=ctx.now,
                resource=inst.id,
                resource_kind=self.resource_kind,
                scope=scope_from_tags(inst.tags, ctx.config.taxonomy),
                currency="USD",
                severity=severity_for(impact),
                evidence=evidence,
                proposed_action=self.action,
                action_params={"instance_id": inst.id, "region": inst.region, "target_type": target},
                recommendation=(
                    f"Resize {inst.id} from {inst.type} to {target}: its busiest day averaged "
                    f"{cpu_max:.1f} % CPU over the last {params.days} days. Resizing stops and restarts it; "
                    "check memory needs first (CloudWatch does not see memory without the agent)."
                ),
                tags=dict(inst.tags),
                account=inst.account,
            )
