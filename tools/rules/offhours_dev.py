"""Dev / test / staging GPU instances and inference endpoints that run around the clock."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import Field

from config.model import Taxonomy
from tools.cloud.inventory import (
    age_days,
    billed_monthly_cost,
    canonical_value,
    monthly_from_hourly,
    scope_from_tags,
    severity_for,
)
from tools.findings import Finding, fingerprint
from tools.rules.base import Rule, RuleContext, RuleParams, register

HOURS_PER_WEEK = 168
WORKDAYS_PER_WEEK = 5


class OffhoursParams(RuleParams):
    environments: list[str] = Field(
        default_factory=lambda: ["dev", "test", "staging"],
        description="non-production environments (taxonomy value aliases also match)",
    )
    min_running_days: int = Field(7, ge=1, le=90, description="running without a stop for at least this long")
    hours_on_per_weekday: int = Field(10, ge=1, le=24, description="hours a day the schedule keeps it on")
    gpu_only: bool = Field(True, description="only GPU instances (endpoints are always included)")
    schedule_tag_keys: list[str] = Field(
        default_factory=lambda: ["finops:schedule", "Schedule", "schedule", "instance-scheduler"],
        description="a resource tagged with any of these already has a schedule",
    )


def environment_names(environments: list[str], taxonomy: Taxonomy) -> set[str]:
    """The given environments plus, for any canonical environment they name or alias, all its aliases."""
    names = {e.lower() for e in environments}
    for canonical, aliases in taxonomy.values.get("environment", {}).items():
        group = {canonical.lower(), *(a.lower() for a in aliases)}
        if group & names:
            names |= group
    return names


def environment_tag(tags: Mapping[str, str], taxonomy: Taxonomy) -> tuple[str, str] | None:
    for key in taxonomy.dimensions.get("environment", []):
        value = (tags.get(key) or "").strip()
        if value:
            return key, value
    return None


@dataclass(frozen=True)
class _Candidate:
    kind: str
    resource: str
    label: str
    region: str
    running_since: datetime
    tags: Mapping[str, str]
    hourly_price: Decimal | None
    account: str | None


@register
class OffhoursDevResources(Rule):
    """A GPU instance or a SageMaker endpoint tagged as a non-production environment (dev, test, staging,
    or their aliases in the taxonomy) that has run without a stop for at least ``min_running_days`` days
    and carries no schedule tag. Running it only ``hours_on_per_weekday`` hours on weekdays saves
    (168 - 5 x hours_on_per_weekday) / 168 of its monthly cost. Proposes an off-hours schedule."""

    id = "offhours-dev-resources"
    title = "Non-production resource running 24/7"
    resource_kind = "ec2-instance"  # also sagemaker-endpoint; each finding names its own kind
    needs_inventory = True
    Params = OffhoursParams
    action = "offhours-schedule"
    evidence_fields: ClassVar[tuple[str, ...]] = (
        "environment_tag",
        "environment",
        "running_since",
        "running_days",
        "hours_on_per_week",
        "off_fraction",
        "monthly_cost",
        "cost_basis",
    )

    def evaluate(self, ctx: RuleContext) -> Iterator[Finding]:
        params = self.params
        assert isinstance(params, OffhoursParams)
        if ctx.inventory is None:
            return
        taxonomy = ctx.config.taxonomy
        wanted = environment_names(params.environments, taxonomy)
        since = ctx.now - timedelta(days=params.min_running_days)
        hours_on = params.hours_on_per_weekday * WORKDAYS_PER_WEEK
        off_fraction = Decimal(HOURS_PER_WEEK - hours_on) / HOURS_PER_WEEK
        candidates = [
            _Candidate(
                "ec2-instance",
                i.id,
                f"{i.type} instance {i.id}",
                i.region,
                i.launch_time,
                i.tags,
                i.hourly_price,
                i.account,
            )
            for i in ctx.inventory.instances()
            if i.state == "running" and (i.gpu or not params.gpu_only)
        ] + [
            _Candidate(
                "sagemaker-endpoint",
                e.arn,
                f"SageMaker endpoint {e.name} ({e.instance_count} x {e.instance_type})",
                e.region,
                e.creation_time,
                e.tags,
                e.hourly_price,
                e.account,
            )
            for e in ctx.inventory.endpoints()
            if e.status == "InService" and e.instance_type is not None
        ]
        for c in candidates:
            kind, resource, label, region = c.kind, c.resource, c.label, c.region
            running_since, tags, hourly, account = c.running_since, c.tags, c.hourly_price, c.account
            if running_since > since or any(k in tags for k in params.schedule_tag_keys):
                continue
            found = environment_tag(tags, taxonomy)
            if found is None:
                continue
            key, raw = found
            canonical = canonical_value("environment", raw, taxonomy)
            if raw.lower() not in wanted and canonical.lower() not in wanted:
                continue
            billed = billed_monthly_cost(ctx.costs, [resource], ctx.now, memo=ctx.extra)
            monthly = billed if billed is not None else monthly_from_hourly(hourly)
            basis = "billed, last 30 days" if billed is not None else "list price x 730 h"
            if monthly is None:
                basis = "price unknown"
            impact = (monthly * off_fraction).quantize(Decimal("0.01")) if monthly is not None else Decimal(0)
            evidence: dict[str, Any] = {
                "environment_tag": {key: raw},
                "environment": canonical,
                "running_since": running_since.isoformat(),
                "running_days": age_days(running_since, ctx.now),
                "hours_on_per_week": hours_on,
                "off_fraction": f"{HOURS_PER_WEEK - hours_on}/{HOURS_PER_WEEK}",
                "monthly_cost": None if monthly is None else str(monthly),
                "cost_basis": basis,
            }
            yield Finding(
                kind="waste",
                rule_id=self.id,
                fingerprint=fingerprint(self.id, resource),
                title=f"{canonical} {label} runs 24/7 in {region}"
                + ("" if monthly is not None else " (price unknown)"),
                monthly_impact=impact,
                detected_at=ctx.now,
                resource=resource,
                resource_kind=kind,
                scope=scope_from_tags(tags, taxonomy),
                currency="USD",
                severity=severity_for(impact),
                evidence=evidence,
                proposed_action=self.action,
                action_params={
                    "resource": resource,
                    "resource_kind": kind,
                    "region": region,
                    "schedule": {"days": "mon-fri", "hours_on": params.hours_on_per_weekday},
                },
                recommendation=(
                    f"Run this {canonical} resource only {params.hours_on_per_weekday} h on weekdays: it has "
                    f"run for {age_days(running_since, ctx.now):.0f} days without a stop; "
                    f"{HOURS_PER_WEEK - hours_on} of the week's {HOURS_PER_WEEK} hours would be off."
                ),
                tags=dict(tags),
                account=account,
            )
