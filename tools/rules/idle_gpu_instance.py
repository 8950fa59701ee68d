"""Running GPU instances that do nothing: low CPU and (where measured) low GPU utilisation for days."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import Field

from tools.cloud.inventory import (
    Metric,
    age_days,
    billed_monthly_cost,
    daily_window,
    monthly_from_hourly,
    scope_from_tags,
    severity_for,
)
from tools.findings import Finding, fingerprint
from tools.rules.base import Rule, RuleContext, RuleParams, register


class IdleGpuParams(RuleParams):
    days: int = Field(7, ge=1, le=90, description="whole days of history to judge on")
    cpu_threshold: float = Field(10.0, gt=0, le=100, description="max daily average CPU %, below = idle")
    gpu_threshold: float = Field(5.0, gt=0, le=100, description="max daily average GPU %, below = idle")
    require_gpu_metric: bool = Field(
        False, description="only report instances whose GPU utilisation is measured"
    )


@register
class IdleGpuInstance(Rule):
    """A running GPU instance (g*, p*, inf*, trn*) whose highest daily average CPUUtilization stayed below
    ``cpu_threshold`` on every one of the last ``days`` days and, when the CloudWatch agent publishes GPU
    utilisation (CWAgent nvidia_smi_utilization_gpu), whose GPU stayed below ``gpu_threshold`` too. Instances
    without CPU data, or started within the window, are not judged (no evidence, no finding). Proposes
    stopping the instance."""

    id = "idle-gpu-instance"
    title = "Idle GPU instance"
    resource_kind = "ec2-instance"
    needs_inventory = True
    Params = IdleGpuParams
    action = "ec2-stop-instance"
    evidence_fields: ClassVar[tuple[str, ...]] = (
        "instance_type",
        "state",
        "launch_time",
        "window",
        "cpu",
        "cpu_max_daily",
        "gpu",
        "gpu_max_daily",
        "hourly_price",
        "cost_basis",
    )

    def evaluate(self, ctx: RuleContext) -> Iterator[Finding]:
        params = self.params
        assert isinstance(params, IdleGpuParams)
        if ctx.inventory is None:
            return
        start, end = daily_window(ctx.now, params.days)
        candidates = [
            i for i in ctx.inventory.instances() if i.gpu and i.state == "running" and i.launch_time <= start
        ]
        # one batched read of every metric below (the GPU one is read only where the CPU is low)
        ctx.inventory.prefetch_metrics(
            [m for i in candidates for m in (Metric.ec2_cpu(i), Metric.ec2_gpu(i))], start, end
        )
        for inst in candidates:
            cpu_metric = Metric.ec2_cpu(inst)
            cpu = cpu_metric.daily(ctx.inventory, start, end)
            if not cpu:
                continue  # no evidence: not judged
            cpu_max = max(v for _, v in cpu)
            if cpu_max >= params.cpu_threshold:
                continue
            gpu_metric = Metric.ec2_gpu(inst)
            gpu = gpu_metric.daily(ctx.inventory, start, end)
            gpu_max = max(v for _, v in gpu) if gpu else None
            if gpu_max is not None and gpu_max >= params.gpu_threshold:
                continue
            if gpu_max is None and params.require_gpu_metric:
                continue
            billed = billed_monthly_cost(ctx.costs, [inst.id], ctx.now, memo=ctx.extra)
            monthly = billed if billed is not None else monthly_from_hourly(inst.hourly_price)
            basis = "billed, last 30 days" if billed is not None else "list price x 730 h"
            if monthly is None:
                basis = "price unknown"
            evidence: dict[str, Any] = {
                "instance_type": inst.type,
                "state": inst.state,
                "launch_time": inst.launch_time.isoformat(),
                "running_days": age_days(inst.launch_time, ctx.now),
                "window": {"start": start.isoformat(), "end": end.isoformat(), "days": params.days},
                "cpu": cpu_metric.evidence(cpu),
                "cpu_max_daily": round(cpu_max, 4),
                "cpu_threshold": params.cpu_threshold,
                "gpu": gpu_metric.evidence(gpu),
                "gpu_max_daily": None if gpu_max is None else round(gpu_max, 4),
                "gpu_threshold": params.gpu_threshold,
                "hourly_price": None if inst.hourly_price is None else str(inst.hourly_price),
                "cost_basis": basis,
            }
            gpu_words = (
                f"GPU at most {gpu_max:.1f} %"
                if gpu_max is not None
                else "GPU utilisation not measured (install the CloudWatch agent's nvidia_smi plugin)"
            )
            impact = monthly if monthly is not None else Decimal(0)
            severity = severity_for(impact)
            yield Finding(
                kind="waste",
                rule_id=self.id,
                fingerprint=fingerprint(self.id, inst.id),
                title=f"Idle GPU instance {inst.id} ({inst.type}) in {inst.region}"
                + ("" if monthly is not None else " (price unknown)"),
                monthly_impact=impact,
                detected_at=ctx.now,
                resource=inst.id,
                resource_kind=self.resource_kind,
                scope=scope_from_tags(inst.tags, ctx.config.taxonomy),
                currency="USD",
                # without a GPU measurement the evidence is weaker: never "high"
                severity="medium" if gpu_max is None and severity == "high" else severity,
                evidence=evidence,
                proposed_action=self.action,
                action_params={"instance_id": inst.id, "region": inst.region},
                recommendation=(
                    f"Stop {inst.id}: CPU at most {cpu_max:.1f} % and {gpu_words} on each of the last "
                    f"{params.days} days. Its EBS volumes are kept; start it again when needed."
                ),
                tags=dict(inst.tags),
                account=inst.account,
            )
