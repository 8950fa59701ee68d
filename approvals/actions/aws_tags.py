"""Tag actions: apply tags to a resource (e.g. the owning team), and tag an off-hours schedule.

Taggable resources: EC2 instances (``i-...``), EBS volumes (``vol-...``) and snapshots (``snap-...``), given
as ids or ARNs, and SageMaker endpoints, given as ARNs or as names with ``resource_kind:
sagemaker-endpoint``. Anything else (e.g. an Azure resource path from the bill) is refused: tag it by hand.

Both actions only touch the tag keys they set. Capture keeps the resource's whole previous tag set;
rollback restores those keys exactly (a key the action added is deleted, a value it changed gets its old
value back), so without someone else's tag edit in between the resource ends with its previous tag set.
A key someone else changed since the action set it (neither the action's value nor the old one) makes
rollback refuse rather than overwrite that later edit.
SageMaker's AddTags overwrites an existing key on AWS (moto appends a duplicate instead), so a changed key
is removed first and then added: the same result on both.

**Off-hours schedule tag.** ``offhours-schedule`` writes one tag, by default
``finops:schedule = "<days> <HH:MM>-<HH:MM> <timezone>"``, e.g. ``finops:schedule = mon-fri 08:00-18:00 UTC``:
the resource should run on those days (``mon-fri``, ``sat``, ``mon-sun``: one day or an ascending range)
between those local times (end ``24:00`` allowed) in that IANA time zone, and be off otherwise. The tag
only declares the schedule; a scheduler that reads it enforces it (an EventBridge Scheduler / Lambda job,
or an Instance Scheduler period of the same name). For a SageMaker endpoint "off" means deleted and
recreated from its kept endpoint config. The value uses only characters that both EC2 and SageMaker tag
values accept (letters, digits, space, ``:``, ``-``, ``/``, ``_``).
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any, Literal
from zoneinfo import available_timezones

import botocore.exceptions
from pydantic import Field, field_validator, model_validator

from approvals.actions.aws_clients import (
    AwsClients,
    clients_of,
    is_client_error,
    money,
    owner_words,
    scope_of,
    tag_dict,
    tag_list,
)
from approvals.actions.aws_ebs import observe_volume
from approvals.actions.aws_ec2 import observe_instance
from approvals.actions.aws_sagemaker import describe_endpoint, endpoint_hourly, observe_endpoint
from approvals.actions.base import (
    Action,
    ActionContext,
    ActionParams,
    ActionRefused,
    Change,
    Json,
    Observed,
    Plan,
    PlanContext,
    Target,
    Verification,
    register,
)
from tools.cloud.inventory import HOURS_PER_MONTH

ResourceKind = Literal["ec2-instance", "ebs-volume", "ebs-snapshot", "sagemaker-endpoint"]
#: the states a resource can be tagged in, per kind (not terminated / deleting)
TAGGABLE_STATES: dict[str, frozenset[str]] = {
    "ec2-instance": frozenset({"pending", "running", "stopping", "stopped"}),
    "ebs-volume": frozenset({"creating", "available", "in-use"}),
    "ebs-snapshot": frozenset({"pending", "completed"}),
    "sagemaker-endpoint": frozenset(
        {
            "Creating",
            "InService",
            "Updating",
            "SystemUpdating",
            "RollingBack",
            "OutOfService",
            "Failed",
            "UpdateRollbackFailed",
        }
    ),
}
SCHEDULE_TAG = "finops:schedule"
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HOURS_PER_WEEK = 168

_ID_KINDS = {"i": "ec2-instance", "vol": "ebs-volume", "snap": "ebs-snapshot"}
_EC2_ID = re.compile(r"^(i|vol|snap)-[0-9a-f]{8,17}$")
_EC2_ARN = re.compile(
    r"^arn:aws[a-z-]*:ec2:(?P<region>[a-z0-9-]+):(?P<account>\d{12})?:(?:instance|volume|snapshot)/"
    r"(?P<id>(?:i|vol|snap)-[0-9a-f]{8,17})$"
)
_SM_ARN = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):endpoint/(?P<id>.+)$"
)


def _check_tag(key: str, value: str) -> None:
    if not key or len(key) > 128 or key.lower().startswith("aws:"):
        raise ValueError(f"tag key {key!r}: 1-128 characters, not starting with 'aws:' (reserved for AWS)")
    if len(value) > 256:
        raise ValueError(f"tag {key!r}: values have at most 256 characters")


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


class ResourceParams(ActionParams):
    resource: str = Field(
        min_length=1,
        description="EC2 instance / volume / snapshot id or ARN, or SageMaker endpoint ARN (or name)",
        examples=["i-0abc1234def567890", "arn:aws:sagemaker:us-east-1:123456789012:endpoint/search"],
    )
    resource_kind: ResourceKind | None = Field(None, description="only needed for an endpoint given by name")
    region: str | None = Field(
        None, description="default: the ARN's region, else the first aws.regions entry"
    )


class ApplyTagsParams(ResourceParams):
    """What the untagged-spend rule proposes: ``{"resource", "tags": {"team": ...}}``."""

    tags: dict[str, str] = Field(min_length=1, max_length=48, examples=[{"team": "search"}])

    @field_validator("tags")
    @classmethod
    def _valid_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        for key, value in tags.items():
            _check_tag(key, value)
        return tags


class Schedule(ActionParams):
    """When the resource runs: ``hours_on`` hours from ``start`` on ``days``, in ``timezone``."""

    days: str = Field(
        "mon-fri",
        pattern=r"^(mon|tue|wed|thu|fri|sat|sun)(-(mon|tue|wed|thu|fri|sat|sun))?$",
        description="one day or an ascending range of days",
    )
    hours_on: int = Field(10, ge=1, le=24, description="hours on per scheduled day")
    start: str = Field("08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="local start time")
    timezone: str = Field("UTC", description="IANA time zone of start", examples=["Europe/Paris"])

    @model_validator(mode="after")
    def _consistent(self) -> Schedule:
        first, _, last = self.days.partition("-")
        if last and DAY_NAMES.index(last) <= DAY_NAMES.index(first):
            raise ValueError(f"days {self.days!r}: give an ascending range such as mon-fri")
        hour, minute = (int(p) for p in self.start.split(":"))
        if hour * 60 + minute + self.hours_on * 60 > 24 * 60:
            raise ValueError(f"start {self.start} + {self.hours_on} h goes past midnight")
        if self.timezone != "UTC":
            known = _time_zones()  # empty when the system has no time zone database
            shaped = re.fullmatch(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*", self.timezone)
            if not shaped or (known and self.timezone not in known):
                raise ValueError(
                    f"timezone {self.timezone!r} is not an IANA time zone name (e.g. Europe/Paris)"
                )
        return self

    @property
    def day_count(self) -> int:
        first, _, last = self.days.partition("-")
        return DAY_NAMES.index(last or first) - DAY_NAMES.index(first) + 1

    @property
    def hours_on_per_week(self) -> int:
        return self.day_count * self.hours_on

    def tag_value(self) -> str:
        hour, minute = (int(p) for p in self.start.split(":"))
        end = hour * 60 + minute + self.hours_on * 60
        return f"{self.days} {self.start}-{end // 60:02d}:{end % 60:02d} {self.timezone}"


class OffhoursScheduleParams(ResourceParams):
    """What the offhours-dev-resources rule proposes: ``{"resource", "resource_kind", "region",
    "schedule": {"days", "hours_on"}}``."""

    schedule: Schedule = Field(default_factory=Schedule)
    tag_key: str = Field(SCHEDULE_TAG, description="the tag the scheduler reads")

    @field_validator("tag_key")
    @classmethod
    def _valid_key(cls, key: str) -> str:
        _check_tag(key, "")
        return key


# --- resources ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """A resolved taggable resource: ``id`` is the EC2 id or the endpoint name."""

    kind: str
    id: str
    region: str | None
    account: str | None = None


def resolve(params: ResourceParams) -> Ref | None:
    """The resource ``params`` names, or None when it is not one the tag actions support."""
    raw = params.resource.strip()
    ref: Ref | None = None
    if m := _EC2_ARN.match(raw):
        ref = Ref(_ID_KINDS[m["id"].split("-")[0]], m["id"], m["region"], m["account"] or None)
    elif m := _SM_ARN.match(raw):
        ref = Ref("sagemaker-endpoint", m["id"], m["region"], m["account"])
    elif _EC2_ID.match(raw):
        ref = Ref(_ID_KINDS[raw.split("-")[0]], raw, None)
    elif params.resource_kind == "sagemaker-endpoint" and re.fullmatch(
        r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", raw
    ):
        ref = Ref("sagemaker-endpoint", raw, None)
    if ref is None:
        return None
    if params.resource_kind is not None and params.resource_kind != ref.kind:
        return None
    region = params.region or ref.region
    return Ref(ref.kind, ref.id, region, ref.account)


def observe_resource(aws: AwsClients, ref: Ref) -> Observed:
    region = ref.region or aws.default_region
    if ref.kind == "ec2-instance":
        observed = observe_instance(aws, region, ref.id)
    elif ref.kind == "ebs-volume":
        observed = observe_volume(aws, region, ref.id)
    elif ref.kind == "ebs-snapshot":
        observed = _observe_snapshot(aws, region, ref.id)
    else:
        observed = observe_endpoint(aws, region, ref.id)
    return Observed(
        observed.exists,
        observed.state,
        {"kind": ref.kind, "region": region, **observed.attributes},
        observed.tags,
    )


def _observe_snapshot(aws: AwsClients, region: str, snapshot_id: str) -> Observed:
    with aws.calling("ec2", region, f"DescribeSnapshots {snapshot_id}"):
        try:
            found = aws.client("ec2", region).describe_snapshots(SnapshotIds=[snapshot_id])
        except botocore.exceptions.ClientError as exc:
            if is_client_error(exc, "InvalidSnapshot.NotFound"):
                return Observed(exists=False)
            raise
    snapshots = found.get("Snapshots") or []
    if not snapshots:
        return Observed(exists=False)
    raw = snapshots[0]
    return Observed(
        True,
        str(raw.get("State", "")),
        {"volume_id": raw.get("VolumeId"), "size_gb": int(raw.get("VolumeSize", 0))},
        tag_dict(raw.get("Tags")),
    )


def _current_tags(aws: AwsClients, captured: Json) -> dict[str, str]:
    ref = Ref(str(captured["kind"]), str(captured["id"]), str(captured["region"]))
    observed = observe_resource(aws, ref)
    if not observed.exists:
        raise ActionRefused(f"{ref.kind} {ref.id} in {ref.region} no longer exists")
    return dict(observed.tags)


def _write_tags(
    aws: AwsClients, captured: Json, current: dict[str, str], put: dict[str, str], remove: list[str]
) -> None:
    """Set ``put`` and delete ``remove`` on the captured resource."""
    kind, rid, region = str(captured["kind"]), str(captured["id"]), str(captured["region"])
    if not put and not remove:
        return
    if kind == "sagemaker-endpoint":
        arn = str(captured["arn"])
        sm = aws.client("sagemaker", region)
        # AddTags overwrites on AWS but appends a duplicate on moto: clear changed keys first
        clear = sorted({*remove, *(k for k in put if k in current)})
        if clear:
            with aws.calling("sagemaker", region, f"DeleteTags {arn}"):
                sm.delete_tags(ResourceArn=arn, TagKeys=clear)
        if put:
            with aws.calling("sagemaker", region, f"AddTags {arn}"):
                sm.add_tags(ResourceArn=arn, Tags=tag_list(put))
        return
    ec2 = aws.client("ec2", region)
    if remove:
        with aws.calling("ec2", region, f"DeleteTags {rid}"):
            ec2.delete_tags(Resources=[rid], Tags=[{"Key": k} for k in sorted(remove)])
    if put:
        with aws.calling("ec2", region, f"CreateTags {rid}"):
            ec2.create_tags(Resources=[rid], Tags=tag_list(put))


class _TagAction(Action):
    """Shared steps of the tag actions; a subclass says which tags it wants (``wanted``) and plans."""

    #: the resource kinds this action accepts
    kinds: tuple[str, ...] = tuple(TAGGABLE_STATES)

    @abstractmethod
    def wanted(self, params: Any) -> dict[str, str]: ...

    def _ref(self, params: ResourceParams) -> Ref:
        ref = resolve(params)
        if ref is None or ref.kind not in self.kinds:
            kind = f" of kind {params.resource_kind}" if params.resource_kind else ""
            raise ActionRefused(
                f"{self.name}: cannot tag {params.resource!r}{kind}: this action handles "
                f"{', '.join(self.kinds)} (ids or ARNs); tag it by hand"
            )
        return ref

    def target(self, params: ResourceParams) -> Target:
        ref = resolve(params)
        if ref is None:
            return Target("cloud-resource", params.resource, params.region)
        return Target(ref.kind, ref.id, ref.region, ref.account)

    def observe(self, ctx: ActionContext, params: ResourceParams) -> Observed:
        return observe_resource(clients_of(ctx.aws, self.name), self._ref(params))

    def _changes(self, params: ResourceParams, observed: Observed) -> tuple[Change, ...]:
        ref = resolve(params)
        self.check_start_state(observed)
        kind = str(observed.attributes.get("kind"))
        if ref is None or observed.state not in TAGGABLE_STATES.get(kind, frozenset()):
            raise ActionRefused(f"{self.name}: a {kind} in state {observed.state!r} is not tagged")
        changes = tuple(
            Change(ref.id, f"tag:{key}", observed.tags.get(key), value)
            for key, value in sorted(self.wanted(params).items())
            if observed.tags.get(key) != value
        )
        if not changes:
            raise ActionRefused(f"{self.name}: {ref.id} already carries these tags; nothing to do")
        return changes

    def capture(self, ctx: ActionContext, params: ResourceParams, observed: Observed) -> Json:
        ref = self._ref(params)
        aws = clients_of(ctx.aws, self.name)
        return {
            "kind": ref.kind,
            "id": ref.id,
            "region": observed.attributes.get("region") or ref.region or aws.default_region,
            "arn": observed.attributes.get("arn"),
            "tags": dict(observed.tags),
        }

    def apply(self, ctx: ActionContext, params: ResourceParams, captured: Json) -> Json:
        aws = clients_of(ctx.aws, self.name)
        if captured["kind"] == "sagemaker-endpoint" and not captured.get("arn"):
            region = str(captured["region"])
            described = describe_endpoint(aws, region, str(captured["id"]))
            captured = {**captured, "arn": None if described is None else described["EndpointArn"]}
        current = _current_tags(aws, captured)
        put = {k: v for k, v in self.wanted(params).items() if current.get(k) != v}
        _write_tags(aws, captured, current, put, [])
        return {"set": sorted(self.wanted(params))}

    def verify(
        self, ctx: ActionContext, params: ResourceParams, captured: Json, applied: Json
    ) -> Verification:
        aws = clients_of(ctx.aws, self.name)
        observed = observe_resource(
            aws, Ref(str(captured["kind"]), str(captured["id"]), str(captured["region"]))
        )
        wrong = sorted(k for k, v in self.wanted(params).items() if observed.tags.get(k) != v)
        detail = f"tags not set: {wrong}" if wrong else f"tags {sorted(self.wanted(params))} are set"
        return Verification(observed.exists and not wrong, observed, detail)

    def rollback(self, ctx: ActionContext, params: ResourceParams, captured: Json, applied: Json) -> Json:
        aws = clients_of(ctx.aws, self.name)
        previous: dict[str, str] = dict(captured.get("tags") or {})
        current = _current_tags(aws, captured)
        keys = self.wanted(params)
        changed = sorted(k for k, v in keys.items() if current.get(k) not in (v, previous.get(k)))
        if changed:
            raise ActionRefused(
                f"{self.name}: tag(s) {changed} of {captured['id']} were changed by someone else since this "
                "action set them; not overwriting them: restore them by hand if needed"
            )
        restore = {k: previous[k] for k in keys if k in previous and current.get(k) != previous[k]}
        remove = sorted(k for k in keys if k not in previous and k in current)
        _write_tags(aws, captured, current, restore, remove)
        return {"restored": {k: previous.get(k) for k in sorted(keys)}}  # None: the key is absent

    def verify_rollback(
        self, ctx: ActionContext, params: ResourceParams, captured: Json, applied: Json
    ) -> Verification:
        aws = clients_of(ctx.aws, self.name)
        observed = observe_resource(
            aws, Ref(str(captured["kind"]), str(captured["id"]), str(captured["region"]))
        )
        previous: dict[str, str] = dict(captured.get("tags") or {})
        wrong = sorted(k for k in self.wanted(params) if observed.tags.get(k) != previous.get(k))
        detail = f"tags not restored: {wrong}" if wrong else "the previous values of the tags are back"
        return Verification(observed.exists and not wrong, observed, detail)


_ALL_TAGGABLE_STATES = frozenset(s for states in TAGGABLE_STATES.values() for s in states)
_TAG_PERMISSIONS = (
    "ec2:DescribeInstances",
    "ec2:DescribeVolumes",
    "ec2:DescribeSnapshots",
    "ec2:CreateTags",
    "ec2:DeleteTags",
    "sagemaker:DescribeEndpoint",
    "sagemaker:DescribeEndpointConfig",
    "sagemaker:DescribeModel",
    "sagemaker:ListTags",
    "sagemaker:AddTags",
    "sagemaker:DeleteTags",
)


@register("apply-tags")
class ApplyTags(_TagAction):
    """Set tags (e.g. ``team``) on an EC2 instance, EBS volume or snapshot, or SageMaker endpoint, so its
    spend gets an owner. Only the given keys change. Rollback restores those keys' previous values and
    deletes the keys the action added."""

    title = "Apply tags"
    Params = ApplyTagsParams
    resource_kind = "cloud-resource"
    permissions = _TAG_PERMISSIONS
    start_states = _ALL_TAGGABLE_STATES

    def wanted(self, params: ApplyTagsParams) -> dict[str, str]:
        return dict(params.tags)

    def plan(self, params: ApplyTagsParams, observed: Observed, pctx: PlanContext) -> Plan:
        changes = self._changes(params, observed)
        ref = self._ref(params)
        words = ", ".join(f"{c.attribute.removeprefix('tag:')}={c.after}" for c in changes)
        return Plan(
            action=self.name,
            params=params.model_dump(mode="json"),
            target=self.target(params),
            summary=f"Tag {ref.kind} {ref.id} with {words}{owner_words(observed.tags, pctx.config)}",
            changes=changes,
            blast_radius=(
                f"Only tags of 1 {ref.kind} change; nothing stops or restarts. Cost reports allocate its "
                "spend by the new tags from now on (AWS cost allocation tags are not applied to past "
                "usage); IAM policies or automation keyed on these tags may start to match it."
            ),
            monthly_savings=Decimal("0.00"),
            currency="USD",
            observed=observed,
            reversible=True,
            environment=_environment(observed.tags, self.wanted(params), pctx),
        )


@register("offhours-schedule")
class OffhoursSchedule(_TagAction):
    """Tag a non-production EC2 instance or SageMaker endpoint with an off-hours schedule,
    ``finops:schedule = "mon-fri 08:00-18:00 UTC"`` (days, local on-hours, IANA time zone), for a scheduler
    that reads the tag to stop it outside those hours. Savings = the off share of the week x its hourly
    price x 730 h (realised once the scheduler enforces the tag). Rollback restores the previous value of
    the schedule tag (or removes it)."""

    title = "Off-hours schedule"
    Params = OffhoursScheduleParams
    resource_kind = "ec2-instance"  # also sagemaker-endpoint; each request's target names its own kind
    permissions = _TAG_PERMISSIONS
    start_states = TAGGABLE_STATES["ec2-instance"] | TAGGABLE_STATES["sagemaker-endpoint"]
    kinds = ("ec2-instance", "sagemaker-endpoint")

    def wanted(self, params: OffhoursScheduleParams) -> dict[str, str]:
        return {params.tag_key: params.schedule.tag_value()}

    def plan(self, params: OffhoursScheduleParams, observed: Observed, pctx: PlanContext) -> Plan:
        ref = self._ref(params)
        changes = self._changes(params, observed)
        schedule = params.schedule
        on = schedule.hours_on_per_week
        off_fraction = Decimal(HOURS_PER_WEEK - on) / HOURS_PER_WEEK
        if ref.kind == "ec2-instance":
            itype = str(observed.attributes.get("instance_type"))
            hourly = pctx.price(itype)
            running = observed.state in ("pending", "running")
            label = f"{itype} instance {ref.id}"
        else:
            hourly = endpoint_hourly(observed, pctx)
            running = observed.state not in ("Failed", "OutOfService")
            label = f"SageMaker endpoint {ref.id}"
        savings = (
            money(hourly * HOURS_PER_MONTH * off_fraction)
            if hourly is not None and running
            else Decimal("0.00")
        )
        value = schedule.tag_value()
        off = (
            "stop it" if ref.kind == "ec2-instance" else "delete it (recreating it from its endpoint config)"
        )
        not_running = (
            "" if running else f" It is {observed.state} now, so nothing is saved until it runs again."
        )
        return Plan(
            action=self.name,
            params=params.model_dump(mode="json"),
            target=self.target(params),
            summary=(
                f"Schedule {label} to run {value} ({on} of {HOURS_PER_WEEK} h a week"
                f"{owner_words(observed.tags, pctx.config)})"
                + ("" if hourly is not None else " (price unknown)")
            ),
            changes=changes,
            blast_radius=(
                f"Only the tag {params.tag_key} of 1 {ref.kind} changes now; nothing stops today. A scheduler "
                f"that reads {params.tag_key} will {off} outside {value} ({HOURS_PER_WEEK - on} h a week): it "
                f"is unavailable then, and the savings only happen once that scheduler runs.{not_running}"
            ),
            monthly_savings=savings,
            currency="USD",
            observed=observed,
            reversible=True,
            environment=_environment(observed.tags, {}, pctx),
        )


def _environment(current: Mapping[str, str], new: Mapping[str, str], pctx: PlanContext) -> str | None:
    """The resource's environment (its current tags first, else the tags being set)."""
    return scope_of(current, pctx.config).get("environment") or scope_of(new, pctx.config).get("environment")
