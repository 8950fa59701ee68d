"""SageMaker inference endpoints that serve no traffic."""

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


class IdleEndpointParams(RuleParams):
    days: int = Field(7, ge=1, le=90, description="whole days of history to judge on")
    max_invocations: int = Field(
        1, ge=1, description="fewer invocations than this over the window (summed over variants) = idle"
    )


@register
class IdleInferenceEndpoint(Rule):
    """An InService SageMaker endpoint that received fewer than ``max_invocations`` invocations (default:
    none) over the last ``days`` days, summed over its production variants (AWS/SageMaker Invocations, Sum).
    SageMaker publishes no Invocations data point for a period without invocations, so for this metric
    "no data" on an endpoint that existed for the whole window counts as zero invocations (unlike CPU or GPU
    metrics, where no data is never read as idle). Endpoints younger than the window and serverless
    endpoints (billed per request) are not judged. Proposes deleting the endpoint, keeping its config."""

    id = "idle-inference-endpoint"
    title = "Idle inference endpoint"
    resource_kind = "sagemaker-endpoint"
    needs_inventory = True
    Params = IdleEndpointParams
    action = "sagemaker-delete-endpoint"
    evidence_fields: ClassVar[tuple[str, ...]] = (
        "status",
        "instance_type",
        "instance_count",
        "creation_time",
        "window",
        "invocations",
        "invocations_total",
        "hourly_price",
        "cost_basis",
    )

    def evaluate(self, ctx: RuleContext) -> Iterator[Finding]:
        params = self.params
        assert isinstance(params, IdleEndpointParams)
        if ctx.inventory is None:
            return
        start, end = daily_window(ctx.now, params.days)
        candidates = [
            e
            for e in ctx.inventory.endpoints()
            if e.status == "InService" and e.creation_time <= start and e.instance_type is not None
        ]
        ctx.inventory.prefetch_metrics(
            [Metric.sagemaker_invocations(e, v) for e in candidates for v in e.variants], start, end
        )
        for ep in candidates:
            per_variant: list[dict[str, Any]] = []
            total = 0.0
            for variant in ep.variants:
                metric = Metric.sagemaker_invocations(ep, variant)
                series = metric.daily(ctx.inventory, start, end)
                variant_total = sum(v for _, v in series) if series else 0.0
                total += variant_total
                per_variant.append(
                    {
                        **metric.evidence(series),
                        "total": variant_total,
                        "no_data_counted_as_zero": series is None,
                    }
                )
            if total >= params.max_invocations:
                continue
            billed = billed_monthly_cost(ctx.costs, [ep.arn, ep.name], ctx.now, memo=ctx.extra)
            monthly = billed if billed is not None else monthly_from_hourly(ep.hourly_price)
            basis = "billed, last 30 days" if billed is not None else "list price x 730 h"
            if monthly is None:
                basis = "price unknown"
            impact = monthly if monthly is not None else Decimal(0)
            evidence: dict[str, Any] = {
                "status": ep.status,
                "config_name": ep.config_name,
                "instance_type": ep.instance_type,
                "instance_count": ep.instance_count,
                "creation_time": ep.creation_time.isoformat(),
                "age_days": age_days(ep.creation_time, ctx.now),
                "window": {"start": start.isoformat(), "end": end.isoformat(), "days": params.days},
                "invocations": per_variant,
                "invocations_total": total,
                "max_invocations": params.max_invocations,
                "hourly_price": None if ep.hourly_price is None else str(ep.hourly_price),
                "cost_basis": basis,
            }
            yield Finding(
                kind="waste",
                rule_id=self.id,
                fingerprint=fingerprint(self.id, ep.arn),
                title=f"Idle SageMaker endpoint {ep.name} ({ep.instance_count} x {ep.instance_type}) "
                f"in {ep.region}" + ("" if monthly is not None else " (price unknown)"),
                monthly_impact=impact,
                detected_at=ctx.now,
                resource=ep.arn,
                resource_kind=self.resource_kind,
                scope=scope_from_tags(ep.tags, ctx.config.taxonomy),
                currency="USD",
                severity=severity_for(impact),
                evidence=evidence,
                proposed_action=self.action,
                action_params={"endpoint_name": ep.name, "region": ep.region},
                recommendation=(
                    f"Delete endpoint {ep.name}: {total:.0f} invocations in the last {params.days} days. "
                    f"Its endpoint config {ep.config_name} and model are kept, so it can be recreated "
                    "(or move it to serverless inference if it is used rarely)."
                ),
                tags=dict(ep.tags),
                account=ep.account,
            )
