"""Rule ``gpu-commitment-coverage``: steady on-demand GPU spend that a commitment would make cheaper."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal

from pydantic import Field

from tools.findings import Finding, fingerprint
from tools.rules.base import Rule, RuleContext, RuleParams, register
from tools.rules.premium_model import money, monthly, period_sql, severity_for, window
from tools.store.lake import sql_string

#: GPU / ML-accelerator instance families (EC2 and SageMaker ``ml.`` variants). Matched as a whole word in
#: the SKU, resource type, resource name, resource id or tags (instance names such as ``p4d-pretrain-a-1``
#: or ``ml-train-g5-02``, tags such as ``instance_type: g5.2xlarge``); bills rarely name the instance type
#: in a column of their own (FOCUS SKU ids are opaque).
GPU_FAMILIES: tuple[str, ...] = (
    "p5en",
    "p5e",
    "p5",
    "p4de",
    "p4d",
    "p3dn",
    "p3",
    "p2",
    "g6e",
    "g6",
    "gr6",
    "g5g",
    "g5",
    "g4dn",
    "g4ad",
    "inf2",
    "inf1",
    "trn2",
    "trn1n",
    "trn1",
)
GPU_PATTERN = r"(^|[^a-z0-9])(ml\.)?(" + "|".join(GPU_FAMILIES) + r")([^a-z0-9]|$)"


@dataclass
class _Group:
    daily: dict[date, Decimal] = field(default_factory=dict)
    committed: Decimal = Decimal(0)
    teams: list[str] = field(default_factory=list)
    resources: set[str] = field(default_factory=set)


class CommitmentCoverageParams(RuleParams):
    days: int = Field(30, ge=7, le=365, description="look-back window in days")
    services: list[str] = Field(
        default_factory=lambda: ["Amazon Elastic Compute Cloud", "Amazon SageMaker"],
        description="services whose GPU usage commitments can cover",
    )
    max_cv: float = Field(0.25, gt=0, description="steady: daily cost's coefficient of variation below this")
    commitment_discount: Decimal = Field(
        Decimal("0.30"), gt=0, lt=1, description="assumed discount of a 1-year, no-upfront savings plan"
    )
    on_demand_tolerance: Decimal = Field(
        Decimal("0.02"), ge=0, lt=1, description="a row is on-demand if effective >= billed x (1 - this)"
    )
    max_covered_share: Decimal = Field(
        Decimal("0.2"), ge=0, le=1, description="skip groups whose cost is already this much committed"
    )
    min_monthly_cost: Decimal = Field(Decimal("1000"), ge=0, description="ignore smaller on-demand spend")


@register
class GpuCommitmentCoverage(Rule):
    """Steady GPU spend paid at on-demand prices, per (account, service, GPU family).

    GPU rows are EC2 / SageMaker usage rows of the bill (``cost_facts``, which the ``spend`` view passes
    through unchanged for non-LLM services, and which keeps the raw tags) whose SKU, resource type, name, id or tags name a GPU or ML
    accelerator family (``GPU_FAMILIES``: g4dn, g5, g6, p3, p4d, p5, inf1/2, trn1/2 ...). A row is
    on-demand when its effective cost is (within ``on_demand_tolerance``) its billed cost, i.e. no
    savings plan or reservation discounted it; groups already mostly covered (``max_covered_share``) are
    skipped. The daily on-demand cost over the last ``days`` days (through the last day the bill has data
    for; missing days count as 0) is steady when its coefficient of variation is below ``max_cv``.

    Recommendation only (a purchase is a financial commitment): commit to the mean hourly on-demand
    spend. Assumption: a 1-year no-upfront savings plan saves ``commitment_discount`` (default 30 %;
    check the current rate for the family and region). Savings = discount x mean daily cost x 30. The
    commitment breaks even while utilisation stays above 1 - discount (70 %) of the committed level;
    the evidence shows how the lowest day of the window compares.
    """

    id = "gpu-commitment-coverage"
    title = "Steady GPU spend without a commitment discount"
    resource_kind = "gpu-compute"
    Params = CommitmentCoverageParams
    action = None
    evidence_fields = (
        "window_days",
        "days_with_data",
        "gpu_family",
        "resources",
        "on_demand_cost",
        "covered_share",
        "mean_daily_cost",
        "min_daily_cost",
        "coefficient_of_variation",
        "commitment_discount",
        "suggested_hourly_commitment",
        "break_even_utilisation",
    )

    def evaluate(self, ctx: RuleContext) -> Iterator[Finding]:
        if ctx.costs is None:
            return
        p = self.params
        assert isinstance(p, CommitmentCoverageParams)
        if not p.services:
            return
        period = window(ctx, p.days)
        services = ", ".join(sql_string(s) for s in p.services)
        on_demand = f"effective_cost >= billed_cost * (1 - {float(p.on_demand_tolerance)})"
        text = "lower(concat_ws(' ', sku, resource_type, resource_name, resource, tags))"
        sql = f"""
            WITH gpu AS (
                SELECT s.*, regexp_extract({text}, {sql_string(GPU_PATTERN)}, 3) AS family
                FROM cost_facts s
                WHERE {period_sql(period)} AND llm_provider IS NULL AND service IN ({services})
                  AND charge_category = 'Usage'
                  AND regexp_matches({text}, {sql_string(GPU_PATTERN)})
            )
            SELECT provider, sub_account, service, family, day,
                   sum(effective_cost) FILTER (WHERE {on_demand}) AS on_demand,
                   sum(effective_cost) FILTER (WHERE NOT ({on_demand})) AS committed,
                   mode(team) AS team, list(DISTINCT coalesce(resource_name, resource)) AS resources
            FROM gpu GROUP BY ALL ORDER BY provider, sub_account, service, family, day
        """
        rows = ctx.costs.execute(sql).fetchall()
        (last_day,) = ctx.costs.execute(
            f"SELECT max(day) FROM cost_facts WHERE {period_sql(period)} AND service IN ({services})"
        ).fetchall()[0]
        if last_day is None:
            return
        days = [period.start + timedelta(days=i) for i in range((last_day - period.start).days + 1)]
        groups: dict[tuple[str, str, str, str], _Group] = {}
        for provider, account, service, family, day, od, committed, team, resources in rows:
            g = groups.setdefault((provider, account, service, family), _Group())
            g.daily[day] = Decimal(od or 0)
            g.committed += Decimal(committed or 0)
            if team:
                g.teams.append(str(team))
            g.resources.update(str(r) for r in resources or [] if r)
        for (provider, account, service, family), g in sorted(groups.items()):
            finding = self._check(ctx, p, days, g.daily, g.committed, provider, account, service, family)
            if finding is not None:
                team = max(set(g.teams), key=g.teams.count) if g.teams else None
                scope = dict(finding.scope) | ({"team": team} if team else {})
                evidence = dict(finding.evidence) | {"resources": sorted(g.resources)}
                yield replace(finding, scope=scope, evidence=evidence)

    def _check(
        self,
        ctx: RuleContext,
        p: CommitmentCoverageParams,
        days: list[date],
        daily: dict[date, Decimal],
        committed: Decimal,
        provider: str,
        account: str,
        service: str,
        family: str,
    ) -> Finding | None:
        series = [daily.get(d, Decimal(0)) for d in days]
        total = sum(series, Decimal(0))
        if total <= 0 or len(series) < 2:
            return None
        if committed / (total + committed) >= p.max_covered_share:
            return None
        values = [float(v) for v in series]
        mean = statistics.fmean(values)
        cv = statistics.pstdev(values) / mean if mean else float("inf")
        if cv >= p.max_cv:
            return None
        mean_daily = total / len(series)
        on_demand_monthly = monthly(total, len(series))
        if on_demand_monthly < p.min_monthly_cost:
            return None
        impact = monthly(mean_daily * p.commitment_discount, 1)
        break_even = Decimal(1) - p.commitment_discount
        lowest = min(series)
        hourly = (mean_daily / 24).quantize(Decimal("0.01"))
        return Finding(
            kind="waste",
            rule_id=self.id,
            fingerprint=fingerprint(self.id, provider, account, service, family),
            title=f"Steady on-demand {family} spend in {service} ({account}): {money(on_demand_monthly)}/month",
            monthly_impact=impact,
            detected_at=ctx.now,
            resource=None,
            resource_kind=self.resource_kind,
            scope={"provider": provider, "sub_account": account, "service": service},
            severity=severity_for(impact),
            evidence={
                "window_days": p.days,
                "days_with_data": len(series),
                "gpu_family": family,
                "on_demand_cost": str(total.quantize(Decimal("0.01"))),
                "covered_share": float(round(committed / (total + committed), 4)),
                "mean_daily_cost": str(mean_daily.quantize(Decimal("0.01"))),
                "min_daily_cost": str(lowest.quantize(Decimal("0.01"))),
                "coefficient_of_variation": round(cv, 4),
                "commitment_discount": str(p.commitment_discount),
                "suggested_hourly_commitment": str(hourly),
                "break_even_utilisation": str(break_even),
            },
            proposed_action=None,
            recommendation=(
                f"{family} usage in {service} ({account}) cost {money(mean_daily)} a day on demand with little "
                f"variation (CV {cv:.2f}) over {len(series)} days. A 1-year savings plan of ~{money(hourly)}/hour "
                f"would save ~{money(impact)}/month at an assumed {p.commitment_discount:.0%} discount; it "
                f"breaks even while usage stays above {break_even:.0%} of that level (lowest day in the window: "
                f"{lowest / mean_daily:.0%} of the mean). Confirm the workload will keep running for a year."
            ),
        )
