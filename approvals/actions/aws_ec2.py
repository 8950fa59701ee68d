"""EC2 instance actions: stop an idle instance, resize an over-provisioned one.

Both read the instance with DescribeInstances and wait for state changes with boto3's EC2 waiters
(``instance_stopped`` / ``instance_running``), polling at ``AwsClients.poll_seconds``. Neither touches the
instance's EBS volumes: a stopped instance keeps them (and keeps being billed for them).
"""

from __future__ import annotations

from decimal import Decimal

import botocore.exceptions
from pydantic import Field

from approvals.actions.aws_clients import (
    AwsClients,
    clients_of,
    is_client_error,
    money,
    owner_words,
    scope_of,
    tag_dict,
)
from approvals.actions.base import (
    Action,
    ActionContext,
    ActionError,
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

#: longest wait for an instance to stop or start (GPU instances with large root volumes can take minutes)
STATE_CHANGE_SECONDS = 15 * 60
INSTANCE_ID = r"^i-[0-9a-f]{8,17}$"


class InstanceParams(ActionParams):
    """What the idle-gpu-instance rule proposes: ``{"instance_id", "region"}``."""

    instance_id: str = Field(pattern=INSTANCE_ID, examples=["i-0abc1234def567890"])
    region: str = Field(min_length=1, examples=["us-east-1"])


class ResizeParams(InstanceParams):
    """What the overprovisioned-instance rule proposes: ``{"instance_id", "region", "target_type"}``."""

    target_type: str = Field(pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$", examples=["m5.large"])


# --- reading and waiting (shared with the tag actions) -----------------------------------------------


def observe_instance(aws: AwsClients, region: str, instance_id: str) -> Observed:
    """An instance's state, tags and the stable attributes plans depend on (no launch time, no IPs)."""
    ec2 = aws.client("ec2", region)
    with aws.calling("ec2", region, f"DescribeInstances {instance_id}"):
        try:
            response = ec2.describe_instances(InstanceIds=[instance_id])
        except botocore.exceptions.ClientError as exc:
            if is_client_error(exc, "InvalidInstanceID.NotFound"):
                return Observed(exists=False)
            raise
    found = [i for r in response.get("Reservations", []) for i in r.get("Instances", [])]
    if not found:
        return Observed(exists=False)
    raw = found[0]
    volumes = sorted(
        str(m["Ebs"]["VolumeId"])
        for m in raw.get("BlockDeviceMappings") or []
        if m.get("Ebs", {}).get("VolumeId")
    )
    return Observed(
        exists=True,
        state=str(raw.get("State", {}).get("Name", "unknown")),
        attributes={
            "instance_type": str(raw["InstanceType"]),
            "availability_zone": str(raw.get("Placement", {}).get("AvailabilityZone", "")),
            "root_device_type": str(raw.get("RootDeviceType", "ebs")),
            "lifecycle": str(raw.get("InstanceLifecycle", "on-demand")),
            "ebs_volumes": volumes,
        },
        tags=tag_dict(raw.get("Tags")),
    )


def _wait_instance(aws: AwsClients, region: str, instance_id: str, state: str) -> None:
    waiter = {"stopped": "instance_stopped", "running": "instance_running"}[state]
    aws.wait(
        "ec2",
        region,
        waiter,
        f"DescribeInstances {instance_id} (waiting for {state})",
        max_seconds=STATE_CHANGE_SECONDS,
        InstanceIds=[instance_id],
    )


def _stop(aws: AwsClients, region: str, instance_id: str) -> None:
    """Stop the instance (if it is not stopped or stopping already) and wait until it is stopped."""
    observed = observe_instance(aws, region, instance_id)
    if not observed.exists or observed.state in ("shutting-down", "terminated"):
        raise ActionRefused(
            f"instance {instance_id} in {region} no longer exists ({observed.state or 'gone'})"
        )
    if observed.state in ("pending", "running"):
        with aws.calling("ec2", region, f"StopInstances {instance_id}"):
            aws.client("ec2", region).stop_instances(InstanceIds=[instance_id])
    _wait_instance(aws, region, instance_id, "stopped")


def _start(aws: AwsClients, region: str, instance_id: str) -> None:
    """Start the instance (waiting first for a stop in progress to end) and wait until it runs."""
    observed = observe_instance(aws, region, instance_id)
    if not observed.exists or observed.state in ("shutting-down", "terminated"):
        raise ActionRefused(
            f"instance {instance_id} in {region} no longer exists ({observed.state or 'gone'})"
        )
    if observed.state == "stopping":
        _wait_instance(aws, region, instance_id, "stopped")
        observed = observe_instance(aws, region, instance_id)
    if observed.state == "stopped":
        with aws.calling("ec2", region, f"StartInstances {instance_id}"):
            aws.client("ec2", region).start_instances(InstanceIds=[instance_id])
    _wait_instance(aws, region, instance_id, "running")


def _set_type(aws: AwsClients, region: str, instance_id: str, instance_type: str, end_state: str) -> None:
    """Stop, change the type, and bring the instance back to ``end_state`` (running or stopped).

    The type is only changed on an instance seen stopped: if it is still running after the stop and the
    wait, this refuses rather than rely on the API to reject the change. Safe to run again."""
    observed = observe_instance(aws, region, instance_id)
    if not observed.exists:
        raise ActionRefused(f"instance {instance_id} in {region} no longer exists")
    if observed.attributes.get("instance_type") != instance_type:
        if observed.state != "stopped":
            _stop(aws, region, instance_id)
            observed = observe_instance(aws, region, instance_id)
        if observed.state != "stopped":
            raise ActionError(
                f"instance {instance_id} is {observed.state!r}, not stopped: its type is not changed on a "
                "running instance. Stop it (or wait for it to stop) and run the step again"
            )
        with aws.calling(
            "ec2", region, f"ModifyInstanceAttribute {instance_id} InstanceType={instance_type}"
        ):
            aws.client("ec2", region).modify_instance_attribute(
                InstanceId=instance_id, InstanceType={"Value": instance_type}
            )
    if end_state == "running":
        _start(aws, region, instance_id)
    elif observe_instance(aws, region, instance_id).state != "stopped":
        _stop(aws, region, instance_id)


def _refuse_instance_store(name: str, instance_id: str, observed: Observed) -> None:
    if observed.attributes.get("root_device_type") == "instance-store":
        raise ActionRefused(
            f"{name}: {instance_id} has an instance-store root device; such instances cannot be stopped "
            "(only terminated), so this action does not apply"
        )


# --- actions ----------------------------------------------------------------------------------------


@register("ec2-stop-instance")
class Ec2StopInstance(Action):
    """Stop a running EC2 instance (e.g. an idle GPU instance). Its EBS volumes, private IP and instance
    id are kept; compute billing stops. Verify waits until the instance is ``stopped``. Rollback starts it
    again (a public IPv4 address that is not an Elastic IP changes on start)."""

    title = "Stop EC2 instance"
    Params = InstanceParams
    resource_kind = "ec2-instance"
    permissions = ("ec2:DescribeInstances", "ec2:StopInstances", "ec2:StartInstances")
    start_states = frozenset({"running"})

    def target(self, params: InstanceParams) -> Target:
        return Target(self.resource_kind, params.instance_id, params.region)

    def observe(self, ctx: ActionContext, params: InstanceParams) -> Observed:
        return observe_instance(clients_of(ctx.aws, self.name), params.region, params.instance_id)

    def plan(self, params: InstanceParams, observed: Observed, pctx: PlanContext) -> Plan:
        self.check_start_state(observed)
        _refuse_instance_store(self.name, params.instance_id, observed)
        itype = str(observed.attributes["instance_type"])
        hourly = pctx.price(itype)
        savings = money(hourly * HOURS_PER_MONTH) if hourly is not None else Decimal("0.00")
        volumes = list(observed.attributes.get("ebs_volumes") or [])
        kept = f"its {len(volumes)} EBS volume(s)" if volumes else "its EBS volumes"
        spot = (
            " It is a spot instance: a stopped spot instance may not get capacity back on start."
            if observed.attributes.get("lifecycle") == "spot"
            else ""
        )
        return Plan(
            action=self.name,
            params=params.model_dump(mode="json"),
            target=self.target(params),
            summary=f"Stop EC2 instance {params.instance_id} ({itype}{owner_words(observed.tags, pctx.config)})"
            + ("" if hourly is not None else " (price unknown)"),
            changes=(Change(params.instance_id, "state", observed.state, "stopped"),),
            blast_radius=(
                f"1 instance stops; {kept}, private IP and instance id are kept (EBS storage is still "
                "billed); anything running on it is unreachable until it is started again, and a public "
                f"IPv4 address that is not an Elastic IP changes on the next start.{spot}"
            ),
            monthly_savings=savings,
            currency="USD",
            observed=observed,
            reversible=True,
            environment=scope_of(observed.tags, pctx.config).get("environment"),
        )

    def capture(self, ctx: ActionContext, params: InstanceParams, observed: Observed) -> Json:
        return {
            "state": observed.state,
            "instance_type": observed.attributes.get("instance_type"),
            "tags": dict(observed.tags),
        }

    def apply(self, ctx: ActionContext, params: InstanceParams, captured: Json) -> Json:
        aws = clients_of(ctx.aws, self.name)
        observed = observe_instance(aws, params.region, params.instance_id)
        if not observed.exists or observed.state in ("shutting-down", "terminated"):
            raise ActionRefused(f"{self.name}: instance {params.instance_id} no longer exists")
        if observed.state in ("pending", "running"):
            with aws.calling("ec2", params.region, f"StopInstances {params.instance_id}"):
                aws.client("ec2", params.region).stop_instances(InstanceIds=[params.instance_id])
        return {"previous_state": captured.get("state")}

    def verify(
        self, ctx: ActionContext, params: InstanceParams, captured: Json, applied: Json
    ) -> Verification:
        aws = clients_of(ctx.aws, self.name)
        observed = observe_instance(aws, params.region, params.instance_id)
        if observed.state == "stopping":
            _wait_instance(aws, params.region, params.instance_id, "stopped")
            observed = observe_instance(aws, params.region, params.instance_id)
        ok = observed.state == "stopped"
        return Verification(ok, observed, f"instance {params.instance_id} is {observed.state or 'gone'}")

    def rollback(self, ctx: ActionContext, params: InstanceParams, captured: Json, applied: Json) -> Json:
        aws = clients_of(ctx.aws, self.name)
        if captured.get("state", "running") in ("running", "pending"):
            _start(aws, params.region, params.instance_id)
        return {"state": "running"}

    def verify_rollback(
        self, ctx: ActionContext, params: InstanceParams, captured: Json, applied: Json
    ) -> Verification:
        aws = clients_of(ctx.aws, self.name)
        observed = observe_instance(aws, params.region, params.instance_id)
        if observed.state == "pending":
            _wait_instance(aws, params.region, params.instance_id, "running")
            observed = observe_instance(aws, params.region, params.instance_id)
        ok = observed.state == "running"
        return Verification(ok, observed, f"instance {params.instance_id} is {observed.state or 'gone'}")


@register("ec2-resize-instance")
class Ec2ResizeInstance(Action):
    """Change an EC2 instance's type (e.g. to the next smaller size): stop it, wait until it is stopped,
    change the type (never on an instance still running: the step refuses instead of relying on the API),
    then start it again if it was running. Verify: the new type, and the state it had before. Rollback:
    the same steps back to the original type and state."""

    title = "Resize EC2 instance"
    Params = ResizeParams
    resource_kind = "ec2-instance"
    permissions = (
        "ec2:DescribeInstances",
        "ec2:StopInstances",
        "ec2:ModifyInstanceAttribute",
        "ec2:StartInstances",
    )
    start_states = frozenset({"running", "stopped"})

    def target(self, params: ResizeParams) -> Target:
        return Target(self.resource_kind, params.instance_id, params.region)

    def observe(self, ctx: ActionContext, params: ResizeParams) -> Observed:
        return observe_instance(clients_of(ctx.aws, self.name), params.region, params.instance_id)

    def plan(self, params: ResizeParams, observed: Observed, pctx: PlanContext) -> Plan:
        self.check_start_state(observed)
        _refuse_instance_store(self.name, params.instance_id, observed)
        current = str(observed.attributes["instance_type"])
        if current == params.target_type:
            raise ActionRefused(f"{self.name}: {params.instance_id} already is a {current}; nothing to do")
        before, after = pctx.price(current), pctx.price(params.target_type)
        known = before is not None and after is not None
        savings = (
            money((before - after) * HOURS_PER_MONTH)
            if before is not None and after is not None
            else Decimal("0.00")
        )
        if observed.state == "running":
            downtime = (
                "the instance stops, changes type and starts again: anything on it is unreachable for a few "
                "minutes, and a public IPv4 address that is not an Elastic IP changes"
            )
        else:
            downtime = "the instance is stopped and stays stopped (it gets the new type on its next start)"
        return Plan(
            action=self.name,
            params=params.model_dump(mode="json"),
            target=self.target(params),
            summary=(
                f"Resize EC2 instance {params.instance_id} from {current} to {params.target_type}"
                f"{owner_words(observed.tags, pctx.config)}" + ("" if known else " (price unknown)")
            ),
            changes=(Change(params.instance_id, "instance_type", current, params.target_type),),
            blast_radius=(
                f"1 instance: {downtime}. Its EBS volumes, private IP and instance id are kept. The new type "
                "has less CPU and memory; check memory needs first (CloudWatch does not see memory "
                "without the agent)."
            ),
            monthly_savings=savings,
            currency="USD",
            observed=observed,
            reversible=True,
            environment=scope_of(observed.tags, pctx.config).get("environment"),
        )

    def capture(self, ctx: ActionContext, params: ResizeParams, observed: Observed) -> Json:
        return {
            "instance_type": observed.attributes.get("instance_type"),
            "state": observed.state,
            "tags": dict(observed.tags),
        }

    def apply(self, ctx: ActionContext, params: ResizeParams, captured: Json) -> Json:
        aws = clients_of(ctx.aws, self.name)
        _set_type(aws, params.region, params.instance_id, params.target_type, _end_state(captured))
        return {"instance_type": params.target_type, "state": _end_state(captured)}

    def verify(self, ctx: ActionContext, params: ResizeParams, captured: Json, applied: Json) -> Verification:
        return self._check(ctx, params, params.target_type, _end_state(captured))

    def rollback(self, ctx: ActionContext, params: ResizeParams, captured: Json, applied: Json) -> Json:
        aws = clients_of(ctx.aws, self.name)
        original = str(captured["instance_type"])
        _set_type(aws, params.region, params.instance_id, original, _end_state(captured))
        return {"instance_type": original, "state": _end_state(captured)}

    def verify_rollback(
        self, ctx: ActionContext, params: ResizeParams, captured: Json, applied: Json
    ) -> Verification:
        return self._check(ctx, params, str(captured["instance_type"]), _end_state(captured))

    def _check(self, ctx: ActionContext, params: ResizeParams, itype: str, state: str) -> Verification:
        aws = clients_of(ctx.aws, self.name)
        observed = observe_instance(aws, params.region, params.instance_id)
        if observed.state in ("pending", "stopping"):
            _wait_instance(aws, params.region, params.instance_id, state)
            observed = observe_instance(aws, params.region, params.instance_id)
        actual = observed.attributes.get("instance_type")
        ok = observed.exists and actual == itype and observed.state == state
        return Verification(
            ok, observed, f"instance {params.instance_id} is a {actual} and {observed.state or 'gone'}"
        )


def _end_state(captured: Json) -> str:
    """The state the instance returns to after a resize: running if it was running (or starting)."""
    return "running" if captured.get("state") in ("running", "pending") else "stopped"
