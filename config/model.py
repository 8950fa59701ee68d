"""Pydantic models of finops.yaml. Unknown keys are rejected so that a typo never silently does nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

#: Canonical allocation dimensions, in the order reports show them.
DIMENSIONS: tuple[str, ...] = (
    "team",
    "project",
    "environment",
    "feature",
    "cost_center",
    "owner",
    "workload",
)
WORKLOADS: tuple[str, ...] = ("training", "inference")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _default_aliases() -> dict[str, list[str]]:
    return {
        "team": ["team", "Team", "business_unit", "finops.team", "user_api_key_team_alias"],
        "project": ["project", "Project", "finops.project"],
        "environment": [
            "environment",
            "env",
            "Environment",
            "deployment.environment.name",
            "deployment.environment",
            "finops.environment",
        ],
        "feature": ["feature", "Feature", "finops.feature"],
        "cost_center": ["cost_center", "CostCenter", "cost-center"],
        "owner": ["owner", "Owner", "owner_email"],
        "workload": ["workload", "Workload", "finops.workload"],
    }


class Taxonomy(_Strict):
    """How raw tags/labels/attributes become the canonical allocation dimensions."""

    dimensions: dict[str, list[str]] = Field(
        default_factory=_default_aliases,
        description="canonical dimension -> source tag keys, first match wins",
        examples=[{"team": ["team", "business_unit"]}],
    )
    values: dict[str, dict[str, list[str]]] = Field(
        default_factory=dict,
        description="dimension -> canonical value -> aliases (matched case-insensitively)",
        examples=[{"environment": {"prod": ["production", "prd"]}}],
    )
    accounts: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="account / sub account / OpenAI project / API key id -> default dimensions "
        "for spend without tags",
        examples=[{"111122223333": {"team": "platform", "environment": "prod"}}],
    )

    @field_validator("dimensions")
    @classmethod
    def _known_dimensions(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(v) - set(DIMENSIONS))
        if unknown:
            raise ValueError(f"unknown dimension(s) {unknown}; the dimensions are {list(DIMENSIONS)}")
        merged = _default_aliases()
        merged.update(v)
        return merged

    @field_validator("values", "accounts")
    @classmethod
    def _known_value_dimensions(
        cls, v: dict[str, dict[str, object]], info: object
    ) -> dict[str, dict[str, object]]:
        field = getattr(info, "field_name", "")
        keys = {k for inner in v.values() for k in inner} if field == "accounts" else set(v)
        unknown = sorted(keys - set(DIMENSIONS))
        if unknown:
            raise ValueError(f"unknown dimension(s) {unknown}; the dimensions are {list(DIMENSIONS)}")
        return v


class Person(_Strict):
    slack_id: str | None = Field(None, pattern=r"^[UW][A-Z0-9]{2,}$", examples=["U012ABCDEF"])
    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+$", examples=["ana@example.com"])

    @model_validator(mode="after")
    def _one_of(self) -> Person:
        if not self.slack_id and not self.email:
            raise ValueError("give slack_id or email (or both)")
        return self


class Team(_Strict):
    name: str = Field(min_length=1, examples=["search"])
    owners: list[Person] = Field(default_factory=list)
    approvers: list[str] = Field(
        default_factory=list, description="Slack user ids", examples=[["U012ABCDEF"]]
    )
    slack_channel: str | None = Field(None, pattern=r"^[#C]", examples=["#team-search"])


Period = Literal["monthly", "quarterly"]


class Budget(_Strict):
    name: str = Field(min_length=1, examples=["search-monthly"])
    scope: dict[str, str] = Field(
        default_factory=dict,
        description="dimension -> value; empty = whole organisation",
        examples=[{"team": "search"}],
    )
    amount: Annotated[Decimal, Field(gt=0, examples=[50000])]
    period: Period = "monthly"
    thresholds: list[Annotated[Decimal, Field(gt=0, le=5)]] = Field(
        default_factory=lambda: [Decimal("0.75"), Decimal("1.0")], examples=[[0.75, 1.0]]
    )
    responder: str | None = Field(None, examples=["U012ABCDEF"])


class TokenBudget(_Strict):
    project: str = Field(min_length=1, examples=["support-bot"])
    tokens: Annotated[int, Field(gt=0, examples=[2_000_000_000])]
    period: Period = "monthly"
    thresholds: list[Annotated[Decimal, Field(gt=0, le=5)]] = Field(
        default_factory=lambda: [Decimal("0.75"), Decimal("1.0")], examples=[[0.75, 1.0]]
    )
    responder: str | None = None


class RateLimit(_Strict):
    team: str = Field(min_length=1, examples=["search"])
    environment: str | None = Field(None, examples=["prod"])
    tpm: Annotated[int, Field(gt=0)] | None = Field(None, examples=[200000])
    rpm: Annotated[int, Field(gt=0)] | None = Field(None, examples=[1000])
    max_budget: Annotated[Decimal, Field(gt=0)] | None = Field(None, examples=[5000])


class FreezeWindow(_Strict):
    """A period in which no remediation executes (a release freeze, the year-end close)."""

    start: AwareDatetime = Field(examples=["2024-12-20T00:00:00Z"])
    end: AwareDatetime = Field(examples=["2025-01-03T00:00:00Z"])
    reason: str = Field("change freeze", examples=["year-end freeze"])

    @model_validator(mode="after")
    def _ordered(self) -> FreezeWindow:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class Guardrails(_Strict):
    two_approvals_above: Annotated[Decimal, Field(ge=0)] = Field(
        Decimal("5000"), description="monthly $ impact above which two approvers are needed", examples=[5000]
    )
    approval_expiry_hours: Annotated[int, Field(gt=0)] = Field(72, examples=[72])
    protected_environments: list[str] = Field(
        default_factory=lambda: ["prod"],
        description="environments whose changes need two distinct approvers",
        examples=[["prod"]],
    )
    dry_run: bool = Field(False, description="plan and audit remediations but never call the cloud")
    finops_admins: list[str] = Field(
        default_factory=list,
        description="Slack user ids who may approve any request",
        examples=[["U0FINOPS1"]],
    )
    protected_tag: str = Field(
        "finops:protected", description="resources tagged <protected_tag>=true are never touched"
    )
    max_actions_per_run: Annotated[int, Field(gt=0)] = Field(
        10, description="most remediations one execution run carries out", examples=[10]
    )
    freeze_windows: list[FreezeWindow] = Field(default_factory=list)
    allowed_actions: dict[str, list[str]] = Field(
        default_factory=dict,
        description="environment -> action types allowed there ('*' = all); an environment not listed "
        "allows all; use the key '*' for the default",
        examples=[{"prod": ["apply-tags", "set-rate-limit"], "*": ["*"]}],
    )
    agent_id: str = Field("finops-agent", description="the actor name the assistant itself uses")


class FeatureValue(_Strict):
    feature: str = Field(min_length=1, examples=["support-chat"])
    value_per_request: Annotated[Decimal, Field(ge=0, examples=[0.05])]


class PriceOverride(_Strict):
    """A negotiated price, USD per 1M tokens. The model name also covers its dated versions (prefix)."""

    model: str = Field(min_length=1, examples=["gpt-4o"])
    input_per_mtok: Annotated[Decimal, Field(ge=0, examples=[2.0])]
    output_per_mtok: Annotated[Decimal, Field(ge=0, examples=[8.0])]
    cache_read_per_mtok: Annotated[Decimal, Field(ge=0)] | None = Field(None, examples=[1.0])
    cache_write_per_mtok: Annotated[Decimal, Field(ge=0)] | None = Field(None, examples=[2.5])


class Pricing(_Strict):
    batch_discount: Annotated[Decimal, Field(ge=0, lt=1)] = Field(Decimal("0.5"), examples=[0.5])
    overrides: list[PriceOverride] = Field(default_factory=list)


class AnomalyThreshold(_Strict):
    """An anomaly is reported only if it is both this large in $ and this large relative to expected."""

    min_impact: Annotated[Decimal, Field(ge=0)] = Field(Decimal("50"), examples=[50])
    min_relative: Annotated[Decimal, Field(ge=0)] = Field(Decimal("0.25"), examples=[0.25])


def _default_thresholds() -> dict[str, AnomalyThreshold]:
    return {
        "default": AnomalyThreshold(),
        "prod": AnomalyThreshold(min_impact=Decimal("50"), min_relative=Decimal("0.2")),
        "dev": AnomalyThreshold(min_impact=Decimal("200"), min_relative=Decimal("0.5")),
    }


class AnomalyConfig(_Strict):
    dimensions: list[str] = Field(
        default_factory=lambda: ["service", "team", "project", "feature", "model", "account"],
        examples=[["service", "team"]],
    )
    usage_dimensions: list[str] = Field(default_factory=lambda: ["feature", "model"], examples=[["feature"]])
    thresholds: dict[str, AnomalyThreshold] = Field(
        default_factory=_default_thresholds,
        description="per environment ('default' for the rest); dev looser than prod",
    )
    include_one_offs: bool = Field(False, description="also watch Purchase / Tax / One-Time charges")
    lookback_days: Annotated[int, Field(ge=14, le=730)] = Field(90, examples=[90])


class AwsConfig(_Strict):
    """AWS inventory and metrics. Credentials come from the standard AWS configuration."""

    regions: list[str] = Field(default_factory=lambda: ["us-east-1"], examples=[["us-east-1", "eu-west-1"]])
    endpoint_url: str | None = Field(
        None, description="e.g. a local moto server", examples=["http://127.0.0.1:5000"]
    )
    profile: str | None = Field(None, examples=["finops-readonly"])


class SlackConfig(_Strict):
    """Where and how the Slack app tells owners about findings (`finops notify`, the scheduler)."""

    finops_channel: str | None = Field(
        None,
        pattern=r"^[#C]",
        description="channel for findings whose owner has no Slack id, no email found in Slack and no "
        "team channel: a name (#finops) or a channel id (C...)",
        examples=["#finops"],
    )
    deliver: Literal["dm", "channel"] = Field(
        "dm",
        description="dm: a direct message to the owner; channel: the team's slack_channel instead "
        "(owners are messaged directly only when their team has no channel)",
        examples=["dm"],
    )
    digest_over: Annotated[int, Field(ge=1)] = Field(
        5,
        description="more new findings than this for one recipient in one run are sent as one digest",
        examples=[5],
    )
    digest_top: Annotated[int, Field(ge=1, le=15)] = Field(
        10,
        description="findings listed in a digest (largest $ per month first; the rest are counted)",
        examples=[10],
    )


SourceKind = Literal[
    "focus", "openai-usage", "openai-costs", "anthropic-usage", "anthropic-costs", "otel", "litellm"
]


class IngestSource(_Strict):
    """Where exports land, for the scheduled ingestion: a local folder or an S3 prefix (exactly one).
    Every file matching ``pattern`` is ingested once (the ingestion ledger skips what it has seen)."""

    name: str = Field(min_length=1, description="the --source name of what it holds", examples=["aws-payer"])
    kind: SourceKind = Field(examples=["focus"])
    path: str | None = Field(None, description="a local folder", examples=["/data/exports/aws"])
    s3: str | None = Field(
        None, pattern=r"^s3://[^/]+/?.*$", description="s3://bucket/prefix/", examples=["s3://billing/focus/"]
    )
    pattern: str = Field("*", description="file name glob", examples=["*.csv.gz"])

    @model_validator(mode="after")
    def _one_place(self) -> IngestSource:
        if bool(self.path) == bool(self.s3):
            raise ValueError("give exactly one of path (a local folder) or s3 (s3://bucket/prefix/)")
        return self


class Operations(_Strict):
    """Continuous operation (`finops serve`'s scheduler, `finops jobs`)."""

    sources: list[IngestSource] = Field(default_factory=list)
    schedules: dict[str, str] = Field(
        default_factory=dict,
        description="job name -> cron expression (5 fields, UTC) overriding its default, or 'off'",
        examples=[{"scan": "30 6 * * *", "weekly-digest": "off"}],
    )
    lease_seconds: Annotated[int, Field(ge=10, le=3600)] = Field(
        60, description="how long a replica holds the scheduler lease without renewing it", examples=[60]
    )


class ReviewConfig(_Strict):
    """`finops review-diff`: the cost review of a change before it merges."""

    threshold: Annotated[Decimal, Field(ge=0)] = Field(
        Decimal("50"), description="monthly cost change under which the review stays silent", examples=[50]
    )
    feature_paths: dict[str, str] = Field(
        default_factory=dict,
        description="path glob -> feature whose traffic prices a change in those files",
        examples=[{"services/support/**": "support-chat"}],
    )
    production_paths: list[str] = Field(
        default_factory=list,
        description="path globs deployed to production: an unapproved model there fails the review",
        examples=[["services/**", "deploy/prod/**"]],
    )


class FinOpsConfig(_Strict):
    """The whole of finops.yaml."""

    currency: str = Field("USD", pattern=r"^[A-Z]{3}$", examples=["USD"])
    taxonomy: Taxonomy = Field(default_factory=Taxonomy)
    teams: list[Team] = Field(default_factory=list)
    budgets: list[Budget] = Field(default_factory=list)
    token_budgets: list[TokenBudget] = Field(default_factory=list)
    approved_models: dict[str, list[str]] = Field(
        default_factory=dict,
        description="environment -> approved model names",
        examples=[{"prod": ["gpt-4o-mini"]}],
    )
    rate_limits: list[RateLimit] = Field(default_factory=list)
    guardrails: Guardrails = Field(default_factory=Guardrails)
    feature_value: list[FeatureValue] = Field(default_factory=list)
    pricing: Pricing = Field(default_factory=Pricing)
    anomalies: AnomalyConfig = Field(default_factory=AnomalyConfig)
    rules: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="rule id -> parameter overrides; {enabled: false} disables a rule",
        examples=[{"idle-gpu-instance": {"days": 7}}],
    )
    aws: AwsConfig = Field(default_factory=AwsConfig)
    slack: SlackConfig = Field(default_factory=SlackConfig)
    operations: Operations = Field(default_factory=Operations)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    finops_team: str | None = Field(
        None, description="owner of findings no one else owns", examples=["platform"]
    )
    currency_rates: dict[str, Annotated[Decimal, Field(gt=0)]] = Field(
        default_factory=dict,
        description="1 unit of currency -> USD, for bills in other currencies",
        examples=[{"EUR": 1.08}],
    )

    @model_validator(mode="after")
    def _cross_checks(self) -> FinOpsConfig:
        names = [t.name for t in self.teams]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"team names must be unique; repeated: {dupes}")
        budget_names = [b.name for b in self.budgets]
        dupes = sorted({n for n in budget_names if budget_names.count(n) > 1})
        if dupes:
            raise ValueError(f"budget names must be unique; repeated: {dupes}")
        return self

    def team(self, name: str) -> Team | None:
        return next((t for t in self.teams if t.name == name), None)
