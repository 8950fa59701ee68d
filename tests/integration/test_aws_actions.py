"""The AWS remediation actions against a moto server with real boto3 over HTTP: plan (changes, savings,
refusals), execute (capture, apply), verify, rollback, verify_rollback, idempotency, plan hashes that are
stable for an unchanged resource and change on drift, and the path finding -> action parameters -> plan.

Each test seeds its own resources (moto is shared by the session; other modules reset it), so tests do
not depend on each other. Captured and applied data go through canonical JSON, as the service stores
them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import boto3
import botocore.exceptions
import pytest

from approvals.actions.aws_clients import AwsActionAccessDeniedError, AwsClients
from approvals.actions.base import (
    REQUEST_TAG,
    Action,
    ActionContext,
    ActionError,
    ActionRefused,
    Change,
    Json,
    Observed,
    Plan,
    PlanContext,
    Verification,
    canonical_json,
    registry,
)
from config.loader import load_config
from config.model import AwsConfig, FinOpsConfig
from config.settings import EXAMPLE_CONFIG
from tests.moto_server import moto_endpoint_fixture, reset_moto  # noqa: F401
from tools.cloud.aws import ON_DEMAND_USD_PER_HOUR, AwsError, AwsInventory
from tools.rules import load_rules
from tools.rules import registry as rules
from tools.rules.base import RuleContext

REGION = "us-east-1"
REQUEST = "req-test-1"
ROLE = "arn:aws:iam::123456789012:role/sagemaker"
ACCOUNT = "123456789012"


def money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


def _tags(**tags: str) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _dict(raw: Any) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in raw or []}


class World:
    """Seeds resources in moto with plain boto3 clients (not the code under test)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ec2 = boto3.client("ec2", endpoint_url=url, region_name=REGION)
        self.sm = boto3.client("sagemaker", endpoint_url=url, region_name=REGION)
        images = self.ec2.describe_images(Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*"]}])["Images"]
        self.image = images[0]["ImageId"]

    def instance(self, itype: str = "g5.xlarge", **tags: str) -> str:
        spec = [{"ResourceType": "instance", "Tags": _tags(**tags)}] if tags else []
        out = self.ec2.run_instances(
            ImageId=self.image, MinCount=1, MaxCount=1, InstanceType=itype, TagSpecifications=spec
        )
        return str(out["Instances"][0]["InstanceId"])

    def describe(self, instance_id: str) -> Any:
        return self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]

    def volume(self, size: int = 100, vtype: str = "gp3", **tags: str) -> str:
        spec = [{"ResourceType": "volume", "Tags": _tags(**tags)}] if tags else []
        out = self.ec2.create_volume(
            AvailabilityZone="us-east-1b", Size=size, VolumeType=vtype, TagSpecifications=spec
        )
        return str(out["VolumeId"])

    def snapshots_of_request(self, volume_id: str) -> list[Any]:
        found = self.ec2.describe_snapshots(
            OwnerIds=["self"], Filters=[{"Name": f"tag:{REQUEST_TAG}", "Values": [REQUEST]}]
        )["Snapshots"]
        return [s for s in found if _dict(s.get("Tags")).get("finops:source-volume") == volume_id]

    def endpoint(self, itype: str = "ml.g4dn.xlarge", count: int = 1, **tags: str) -> str:
        name = f"ep-{uuid.uuid4().hex[:10]}"
        self.sm.create_model(
            ModelName=f"{name}-model", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "img"}
        )
        variant = {
            "VariantName": "AllTraffic",
            "ModelName": f"{name}-model",
            "InitialInstanceCount": count,
            "InstanceType": itype,
        }
        self.sm.create_endpoint_config(EndpointConfigName=f"{name}-config", ProductionVariants=[variant])
        self.sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config", Tags=_tags(**tags))
        return name

    def endpoint_arn(self, name: str) -> str:
        return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{name}"

    def endpoint_tags(self, name: str) -> list[dict[str, str]]:
        return list(self.sm.list_tags(ResourceArn=self.endpoint_arn(name))["Tags"])

    def ec2_tags(self, resource_id: str) -> dict[str, str]:
        found = self.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [resource_id]}])["Tags"]
        return {t["Key"]: t["Value"] for t in found}


@pytest.fixture(scope="module")
def config() -> FinOpsConfig:
    return load_config(EXAMPLE_CONFIG)  # taxonomy: development/sandbox/test -> dev, stage -> staging


@pytest.fixture(scope="module")
def world(moto_endpoint: str) -> World:
    reset_moto(moto_endpoint)
    return World(moto_endpoint)


@pytest.fixture
def ctx(world: World, config: FinOpsConfig) -> ActionContext:
    clients = AwsClients(AwsConfig(regions=[REGION], endpoint_url=world.url), poll_seconds=0.05)
    return ActionContext(config=config, now=datetime.now(UTC), request_id=REQUEST, aws=clients)


@pytest.fixture
def pctx(config: FinOpsConfig) -> PlanContext:
    return PlanContext(config=config, price=ON_DEMAND_USD_PER_HOUR.get)


def stored(data: Json) -> Json:
    """What the service stores and hands back: canonical JSON, read again."""
    result: Json = json.loads(canonical_json(data))
    return result


def plan_for(name: str, raw: dict[str, Any], ctx: ActionContext, pctx: PlanContext) -> Plan:
    action = registry.create(name)
    params = action.parse_params(raw)
    return action.plan(params, action.observe(ctx, params), pctx)


@dataclass
class Run:
    action: Action
    params: Any
    plan: Plan
    captured: Json
    applied: Json

    def verify(self, ctx: ActionContext) -> Verification:
        return self.action.verify(ctx, self.params, self.captured, self.applied)

    def rollback(self, ctx: ActionContext) -> Json:
        """rollback then verify_rollback, as the service calls them; returns what rollback returned."""
        undone = stored(self.action.rollback(ctx, self.params, self.captured, self.applied))
        check = self.action.verify_rollback(ctx, self.params, self.captured, {**self.applied, **undone})
        assert check.ok, check.detail
        return undone


def execute(name: str, raw: dict[str, Any], ctx: ActionContext, pctx: PlanContext) -> Run:
    """observe, plan, capture, apply, as the service does."""
    action = registry.create(name)
    params = action.parse_params(raw)
    observed = action.observe(ctx, params)
    plan = action.plan(params, observed, pctx)
    assert action.observe(ctx, params) == observed  # the service re-reads just before executing
    captured = stored(action.capture(ctx, params, observed))
    applied = stored(action.apply(ctx, params, captured))
    return Run(action, params, plan, captured, applied)


# --- every action: hash stability, drift, refusal, full cycle ------------------------------------------


@dataclass(frozen=True)
class Case:
    action: str
    seed: Callable[[World], dict[str, Any]]  # a resource in a start state -> the action's parameters
    drift: Callable[[World, dict[str, Any]], None]  # change the resource behind the plan's back
    wrong: Callable[[World], dict[str, Any]]  # parameters of a resource in a wrong start state
    wrong_message: str
    restores_exactly: bool  # after rollback, observe() reads what it read before the change


def _instance_params(instance_id: str) -> dict[str, Any]:
    return {"instance_id": instance_id, "region": REGION}  # exactly what idle-gpu-instance proposes


def _stopped_instance(w: World) -> dict[str, Any]:
    iid = w.instance()
    w.ec2.stop_instances(InstanceIds=[iid])
    return _instance_params(iid)


def _terminated(itype: str) -> Callable[[World], str]:
    def make(w: World) -> str:
        iid = w.instance(itype)
        w.ec2.terminate_instances(InstanceIds=[iid])
        return iid

    return make


def _tag_instance(w: World, params: dict[str, Any]) -> None:
    rid = params.get("instance_id") or params.get("volume_id") or params["resource"]
    w.ec2.create_tags(Resources=[rid], Tags=_tags(owner="someone-else"))


def _attached_volume(w: World) -> dict[str, Any]:
    vid = w.volume(10, "gp2")
    w.ec2.attach_volume(VolumeId=vid, InstanceId=w.instance("m5.large"), Device="/dev/sdf")
    return {"volume_id": vid, "region": REGION}


def _offhours_params(resource: str, kind: str) -> dict[str, Any]:
    # exactly what offhours-dev-resources proposes
    return {
        "resource": resource,
        "resource_kind": kind,
        "region": REGION,
        "schedule": {"days": "mon-fri", "hours_on": 10},
    }


CASES = [
    Case(
        "ec2-stop-instance",
        lambda w: _instance_params(w.instance("g5.xlarge", team="ml-research", environment="development")),
        _tag_instance,
        _stopped_instance,
        "'stopped'",
        True,
    ),
    Case(
        "ec2-resize-instance",
        lambda w: {**_instance_params(w.instance("m5.2xlarge", team="platform")), "target_type": "m5.xlarge"},
        lambda w, p: w.ec2.stop_instances(InstanceIds=[p["instance_id"]]),  # running -> stopped
        lambda w: {**_instance_params(_terminated("m5.2xlarge")(w)), "target_type": "m5.xlarge"},
        "'terminated'",
        True,
    ),
    Case(
        "ebs-snapshot-delete-volume",
        lambda w: {"volume_id": w.volume(100, "gp3", team="data", environment="dev"), "region": REGION},
        _tag_instance,
        _attached_volume,
        "'in-use'",
        False,  # a new volume id
    ),
    Case(
        "sagemaker-delete-endpoint",
        lambda w: {"endpoint_name": w.endpoint(team="search", environment="stage"), "region": REGION},
        lambda w, p: w.sm.add_tags(ResourceArn=w.endpoint_arn(p["endpoint_name"]), Tags=_tags(owner="x")),
        lambda w: {"endpoint_name": "ep-never-created", "region": REGION},
        "no longer exists",
        False,  # recreated with the request tag
    ),
    Case(
        "apply-tags",
        lambda w: {"resource": w.instance("m5.large", project="search"), "tags": {"team": "search"}},
        _tag_instance,
        lambda w: {"resource": _terminated("m5.large")(w), "tags": {"team": "search"}},
        "'terminated'",
        True,
    ),
    Case(
        "offhours-schedule",
        lambda w: _offhours_params(
            w.instance("g5.xlarge", environment="dev", team="ml-research"), "ec2-instance"
        ),
        _tag_instance,
        lambda w: _offhours_params(_terminated("g5.xlarge")(w), "ec2-instance"),
        "'terminated'",
        True,
    ),
]
CASE_IDS = [c.action for c in CASES]


def test_cases_cover_every_aws_action() -> None:
    aws_actions = {name for name, cls in registry.items() if cls.cloud}
    assert aws_actions == set(CASE_IDS)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_aws_action_plan_hash_is_stable_and_changes_on_drift(
    case: Case, world: World, ctx: ActionContext, pctx: PlanContext
) -> None:
    raw = case.seed(world)
    first = plan_for(case.action, raw, ctx, pctx)
    second = plan_for(case.action, raw, ctx, pctx)
    assert first == second and first.hash() == second.hash()
    json.dumps(first.as_dict())  # storable
    case.drift(world, raw)
    try:
        drifted = plan_for(case.action, raw, ctx, pctx).hash()
    except ActionRefused:  # a drift into a state the action does not start from
        drifted = "refused"
    assert drifted != first.hash()


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_aws_action_refuses_a_wrong_start_state(
    case: Case, world: World, ctx: ActionContext, pctx: PlanContext
) -> None:
    raw = case.wrong(world)
    with pytest.raises(ActionRefused, match=case.wrong_message):
        plan_for(case.action, raw, ctx, pctx)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_aws_action_full_cycle_is_idempotent(
    case: Case, world: World, ctx: ActionContext, pctx: PlanContext
) -> None:
    raw = case.seed(world)
    run = execute(case.action, raw, ctx, pctx)
    assert run.plan.reversible and run.plan.changes and run.plan.currency == "USD"
    check = run.verify(ctx)
    assert check.ok, check.detail
    # apply again (a retry after a crash): same result, still in effect
    again = stored(run.action.apply(ctx, run.params, run.captured))
    assert again == run.applied
    assert run.verify(ctx).ok
    # the service's re-plan now refuses or differs: the change is visible
    try:
        after = plan_for(case.action, raw, ctx, pctx).hash()
    except ActionRefused:
        after = "refused"
    assert after != run.plan.hash()
    # rollback, twice (a retry), each verified
    first = run.rollback(ctx)
    assert run.rollback(ctx) == first
    if case.restores_exactly:
        assert run.action.observe(ctx, run.params) == run.plan.observed


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_aws_action_without_aws_access_is_refused(case: Case, world: World, config: FinOpsConfig) -> None:
    action = registry.create(case.action)
    params = action.parse_params(case.seed(world))
    bare = ActionContext(config=config, now=datetime.now(UTC), request_id=REQUEST, aws=None)
    with pytest.raises(ActionRefused, match="no AWS access"):
        action.observe(bare, params)


# --- ec2-stop-instance --------------------------------------------------------------------------------


def test_ec2_stop_plan_says_what_changes_and_saves(
    world: World, ctx: ActionContext, pctx: PlanContext
) -> None:
    iid = world.instance("g5.xlarge", team="ml-research", environment="development")
    plan = plan_for("ec2-stop-instance", _instance_params(iid), ctx, pctx)
    assert plan.changes == (Change(iid, "state", "running", "stopped"),)
    assert plan.monthly_savings == Decimal("734.38")  # 1.006 $/h x 730 h
    assert plan.environment == "dev"  # "development" is an alias of dev in the taxonomy
    assert "team ml-research" in plan.summary and "g5.xlarge" in plan.summary
    assert "EBS volume" in plan.blast_radius and "unreachable" in plan.blast_radius
    assert plan.target.kind == "ec2-instance" and plan.target.id == iid and plan.target.region == REGION
    assert plan.observed.tags == {"team": "ml-research", "environment": "development"}


def test_ec2_stop_stops_once_and_rollback_starts(world: World, ctx: ActionContext, pctx: PlanContext) -> None:
    iid = world.instance("g4dn.xlarge")
    run = execute("ec2-stop-instance", _instance_params(iid), ctx, pctx)
    assert run.captured["state"] == "running"
    assert world.describe(iid)["State"]["Name"] == "stopped"
    assert run.verify(ctx).observed.state == "stopped"
    run.rollback(ctx)
    assert world.describe(iid)["State"]["Name"] == "running"


def test_ec2_stop_refuses_an_instance_that_is_gone(ctx: ActionContext, pctx: PlanContext) -> None:
    with pytest.raises(ActionRefused, match="no longer exists"):
        plan_for("ec2-stop-instance", _instance_params("i-0123456789abcdef0"), ctx, pctx)


def test_ec2_stop_unknown_price_saves_nothing_but_plans(
    world: World, ctx: ActionContext, config: FinOpsConfig
) -> None:
    iid = world.instance("g5.xlarge")
    plan = plan_for("ec2-stop-instance", _instance_params(iid), ctx, PlanContext(config=config))
    assert plan.monthly_savings == Decimal("0.00") and "price unknown" in plan.summary


# --- ec2-resize-instance ------------------------------------------------------------------------------


def test_ec2_resize_running_instance_and_back(world: World, ctx: ActionContext, pctx: PlanContext) -> None:
    iid = world.instance("m5.2xlarge", team="platform")
    raw = {**_instance_params(iid), "target_type": "m5.xlarge"}  # what overprovisioned-instance proposes
    run = execute("ec2-resize-instance", raw, ctx, pctx)
    assert run.plan.changes == (Change(iid, "instance_type", "m5.2xlarge", "m5.xlarge"),)
    assert run.plan.monthly_savings == money((Decimal("0.384") - Decimal("0.192")) * 730)
    assert "stops, changes type and starts again" in run.plan.blast_radius
    assert run.captured["instance_type"] == "m5.2xlarge" and run.captured["state"] == "running"
    now = world.describe(iid)
    assert now["InstanceType"] == "m5.xlarge" and now["State"]["Name"] == "running"
    run.rollback(ctx)
    now = world.describe(iid)
    assert now["InstanceType"] == "m5.2xlarge" and now["State"]["Name"] == "running"


def test_ec2_resize_stopped_instance_stays_stopped(
    world: World, ctx: ActionContext, pctx: PlanContext
) -> None:
    iid = world.instance("m5.2xlarge")
    world.ec2.stop_instances(InstanceIds=[iid])
    raw = {**_instance_params(iid), "target_type": "m5.large"}
    run = execute("ec2-resize-instance", raw, ctx, pctx)
    assert "stays stopped" in run.plan.blast_radius
    now = world.describe(iid)
    assert now["InstanceType"] == "m5.large" and now["State"]["Name"] == "stopped"
    assert run.verify(ctx).ok
    # drift: someone starts it after the plan -> the plan hash changes
    iid2 = world.instance("m5.2xlarge")
    world.ec2.stop_instances(InstanceIds=[iid2])
    before = plan_for("ec2-resize-instance", {**_instance_params(iid2), "target_type": "m5.large"}, ctx, pctx)
    world.ec2.start_instances(InstanceIds=[iid2])
    after = plan_for("ec2-resize-instance", {**_instance_params(iid2), "target_type": "m5.large"}, ctx, pctx)
    assert before.hash() != after.hash() and after.observed.state == "running"


def test_ec2_resize_to_its_own_type_is_refused(world: World, ctx: ActionContext, pctx: PlanContext) -> None:
    iid = world.instance("m5.large")
    with pytest.raises(ActionRefused, match=r"already is a m5\.large"):
        plan_for("ec2-resize-instance", {**_instance_params(iid), "target_type": "m5.large"}, ctx, pctx)


class _Ec2ThatNeverStops:
    """A real EC2 client whose StopInstances is ignored and whose waiters return at once: the instance
    stays running, as when someone starts it again between the stop and the type change."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.modified: list[Any] = []

    def stop_instances(self, **kwargs: Any) -> dict[str, Any]:
        return {"StoppingInstances": []}

    def get_waiter(self, name: str) -> Any:
        class _Done:
            def wait(self, **kwargs: Any) -> None:
                return None

        return _Done()

    def modify_instance_attribute(self, **kwargs: Any) -> Any:
        self.modified.append(kwargs)
        return self._real.modify_instance_attribute(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_ec2_resize_never_changes_the_type_of_a_running_instance(
    world: World, ctx: ActionContext, pctx: PlanContext
) -> None:
    iid = world.instance("m5.2xlarge")
    clients = ctx.aws
    assert isinstance(clients, AwsClients)
    fake = _Ec2ThatNeverStops(clients.client("ec2", REGION))
    clients._clients[("ec2", REGION)] = fake
    action = registry.create("ec2-resize-instance")
    params = action.parse_params({**_instance_params(iid), "target_type": "m5.xlarge"})
    observed = action.observe(ctx, params)
    action.plan(params, observed, pctx)
    with pytest.raises(ActionError, match="not changed on a running instance"):
        action.apply(ctx, params, action.capture(ctx, params, observed))
    assert fake.modified == [] and world.describe(iid)["InstanceType"] == "m5.2xlarge"


def test_waiter_that_gives_up_says_the_step_can_be_rerun(world: World, ctx: ActionContext) -> None:
    iid = world.instance("m5.large")
    world.ec2.stop_instances(InstanceIds=[iid])
    clients = ctx.aws
    assert isinstance(clients, AwsClients)
    with pytest.raises(ActionError, match=r"did not finish .* run the step again"):
        clients.wait(
            "ec2", REGION, "instance_running", f"waiting for {iid}", max_seconds=0.1, InstanceIds=[iid]
        )


# --- ebs-snapshot-delete-volume ---------------------------------------------------------------------


def test_ebs_plan_savings_and_refusals(world: World, ctx: ActionContext, pctx: PlanContext) -> None:
    vid = world.volume(100, "gp3", team="data", environment="dev")
    plan = plan_for("ebs-snapshot-delete-volume", {"volume_id": vid, "region": REGION}, ctx, pctx)
    assert plan.monthly_savings == Decimal("3.00")  # (0.08 - 0.05 snapshot) x 100 GB
    assert plan.changes[-1] == Change(vid, "state", "available", "deleted")
    assert plan.environment == "dev" and "team data" in plan.summary
    assert plan.observed.attributes["availability_zone"] == "us-east-1b"
    gp2 = world.volume(50, "gp2")
    plan = plan_for("ebs-snapshot-delete-volume", {"volume_id": gp2, "region": REGION}, ctx, pctx)
    assert plan.monthly_savings == Decimal("2.50")  # (0.10 - 0.05) x 50 GB
    with pytest.raises(ActionRefused, match="no longer exists"):
        plan_for(
            "ebs-snapshot-delete-volume", {"volume_id": "vol-0123456789abcdef0", "region": REGION}, ctx, pctx
        )


def test_ebs_snapshots_once_deletes_and_recreates(
    world: World, ctx: ActionContext, pctx: PlanContext
) -> None:
    vid = world.volume(100, "gp3", team="data", environment="dev")
    run = execute("ebs-snapshot-delete-volume", {"volume_id": vid, "region": REGION}, ctx, pctx)
    snapshot_id = run.applied["snapshot_id"]
    snapshots = world.snapshots_of_request(vid)
    assert [s["SnapshotId"] for s in snapshots] == [snapshot_id]
    assert snapshots[0]["State"] == "completed"
    assert _dict(snapshots[0]["Tags"]) == {
        "team": "data",
        "environment": "dev",
        REQUEST_TAG: REQUEST,
        "finops:source-volume": vid,
    }
    assert world.ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [vid]}])["Volumes"] == []
    run.action.apply(ctx, run.params, run.captured)  # a retry: no second snapshot
    assert len(world.snapshots_of_request(vid)) == 1
    # reconcile after a crash inside apply has no applied data: verify finds the snapshot by its tag
    assert run.action.verify(ctx, run.params, run.captured, {}).ok

    undone = run.rollback(ctx)
    new_id = undone["volume_id"]
    assert new_id != vid and undone["snapshot_id"] == snapshot_id
    new = world.ec2.describe_volumes(VolumeIds=[new_id])["Volumes"][0]
    assert (new["AvailabilityZone"], new["VolumeType"], new["Size"], new["Iops"]) == (
        "us-east-1b",
        "gp3",
        100,
        3000,
    )
    assert new["SnapshotId"] == snapshot_id and new["State"] == "available"
    assert _dict(new["Tags"]) == {
        "team": "data",
        "environment": "dev",
        REQUEST_TAG: REQUEST,
        "finops:restored-from": snapshot_id,
    }
    run.rollback(ctx)  # a retry: still one recreated volume
    restored = world.ec2.describe_volumes(
        Filters=[{"Name": "tag:finops:restored-from", "Values": [snapshot_id]}]
    )["Volumes"]
    assert [v["VolumeId"] for v in restored] == [new_id]


def test_ebs_apply_resumes_with_the_snapshot_of_an_interrupted_run(
    world: World, ctx: ActionContext, pctx: PlanContext
) -> None:
    vid = world.volume(20, "gp2", team="data")
    # an earlier run made the snapshot, then crashed before deleting the volume
    earlier = world.ec2.create_snapshot(
        VolumeId=vid,
        TagSpecifications=[
            {"ResourceType": "snapshot", "Tags": _tags(**{REQUEST_TAG: REQUEST, "finops:source-volume": vid})}
        ],
    )["SnapshotId"]
    action = registry.create("ebs-snapshot-delete-volume")
    params = action.parse_params({"volume_id": vid, "region": REGION})
    observed = action.observe(ctx, params)
    # rollback of a run that never deleted the volume: nothing to recreate
    captured = stored(action.capture(ctx, params, observed))
    assert action.rollback(ctx, params, captured, {})["recreated"] is False
    assert action.verify_rollback(ctx, params, captured, {}).ok
    applied = action.apply(ctx, params, captured)
    assert applied == {"snapshot_id": earlier}
    assert [s["SnapshotId"] for s in world.snapshots_of_request(vid)] == [earlier]


def test_ebs_encrypted_io2_volume_comes_back_with_its_iops_and_key(
    world: World, ctx: ActionContext, pctx: PlanContext
) -> None:
    vid = world.ec2.create_volume(
        AvailabilityZone="us-east-1a", Size=40, VolumeType="io2", Iops=2000, Encrypted=True
    )["VolumeId"]
    run = execute("ebs-snapshot-delete-volume", {"volume_id": vid, "region": REGION}, ctx, pctx)
    assert run.captured["encrypted"] is True and run.captured["iops"] == 2000
    new_id = run.rollback(ctx)["volume_id"]
    new = world.ec2.describe_volumes(VolumeIds=[new_id])["Volumes"][0]
    assert (new["VolumeType"], new["Iops"], new["Encrypted"]) == ("io2", 2000, True)
    assert new["KmsKeyId"] == run.captured["kms_key_id"]


# --- sagemaker-delete-endpoint ------------------------------------------------------------------------


def test_sagemaker_plan_savings_and_environment(world: World, ctx: ActionContext, pctx: PlanContext) -> None:
    name = world.endpoint("ml.g4dn.xlarge", 2, team="search", environment="stage")
    plan = plan_for("sagemaker-delete-endpoint", {"endpoint_name": name, "region": REGION}, ctx, pctx)
    assert plan.monthly_savings == money(Decimal("0.736") * 2 * 730)
    assert plan.changes == (Change(name, "status", "InService", "deleted"),)
    assert plan.environment == "staging" and "2 x ml.g4dn.xlarge" in plan.summary
    assert f"{name}-config" in plan.blast_radius and f"{name}-model" in plan.blast_radius


def test_sagemaker_deletes_endpoint_keeps_config_and_recreates(
    world: World, ctx: ActionContext, pctx: PlanContext
) -> None:
    name = world.endpoint("ml.m5.large", team="support", environment="dev")
    run = execute("sagemaker-delete-endpoint", {"endpoint_name": name, "region": REGION}, ctx, pctx)
    assert run.captured["endpoint_config_name"] == f"{name}-config"
    assert run.captured["tags"] == {"team": "support", "environment": "dev"}
    with pytest.raises(botocore.exceptions.ClientError, match="Could not find endpoint"):
        world.sm.describe_endpoint(EndpointName=name)
    world.sm.describe_endpoint_config(EndpointConfigName=f"{name}-config")  # kept
    world.sm.describe_model(ModelName=f"{name}-model")  # kept
    run.rollback(ctx)
    described = world.sm.describe_endpoint(EndpointName=name)
    assert described["EndpointStatus"] == "InService" and described["EndpointConfigName"] == f"{name}-config"
    assert _dict(world.endpoint_tags(name)) == {"team": "support", "environment": "dev", REQUEST_TAG: REQUEST}


def test_sagemaker_refuses_when_the_endpoint_could_not_be_recreated(
    world: World, ctx: ActionContext, pctx: PlanContext
) -> None:
    name = world.endpoint()
    world.sm.delete_endpoint_config(EndpointConfigName=f"{name}-config")
    with pytest.raises(ActionRefused, match="could not be recreated"):
        plan_for("sagemaker-delete-endpoint", {"endpoint_name": name, "region": REGION}, ctx, pctx)
    other = world.endpoint()
    world.sm.delete_model(ModelName=f"{other}-model")
    with pytest.raises(ActionRefused, match="model"):
        plan_for("sagemaker-delete-endpoint", {"endpoint_name": other, "region": REGION}, ctx, pctx)


# --- apply-tags ---------------------------------------------------------------------------------------


def test_apply_tags_as_untagged_spend_proposes_it(
    world: World, ctx: ActionContext, pctx: PlanContext
) -> None:
    iid = world.instance("m5.large", project="semantic-search", team="")
    arn = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{iid}"
    run = execute("apply-tags", {"resource": arn, "tags": {"team": "search"}}, ctx, pctx)
    assert run.plan.changes == (Change(iid, "tag:team", "", "search"),)
    assert run.plan.monthly_savings == Decimal("0.00") and run.plan.target.account == ACCOUNT
    assert world.ec2_tags(iid) == {"project": "semantic-search", "team": "search"}
    run.rollback(ctx)
    assert world.ec2_tags(iid) == {"project": "semantic-search", "team": ""}


@pytest.mark.parametrize("kind", ["ebs-volume", "ebs-snapshot"])
def test_apply_tags_on_volumes_and_snapshots(
    kind: str, world: World, ctx: ActionContext, pctx: PlanContext
) -> None:
    vid = world.volume(10, "gp2", owner="ana")
    rid = vid if kind == "ebs-volume" else world.ec2.create_snapshot(VolumeId=vid)["SnapshotId"]
    if kind == "ebs-snapshot":
        world.ec2.create_tags(Resources=[rid], Tags=_tags(owner="ana"))
    run = execute("apply-tags", {"resource": rid, "tags": {"team": "data", "owner": "fay"}}, ctx, pctx)
    assert run.plan.target.kind == kind and run.plan.target.region is None  # the default region is used
    assert world.ec2_tags(rid) == {"owner": "fay", "team": "data"}
    run.rollback(ctx)
    assert world.ec2_tags(rid) == {"owner": "ana"}


def test_apply_tags_on_an_endpoint_restores_the_exact_tag_list(
    world: World, ctx: ActionContext, pctx: PlanContext
) -> None:
    name = world.endpoint("ml.m5.large", team="growth", owner="eli")
    before = world.endpoint_tags(name)
    raw = {"resource": world.endpoint_arn(name), "tags": {"team": "search", "project": "ads"}}
    run = execute("apply-tags", raw, ctx, pctx)
    assert {c.attribute for c in run.plan.changes} == {"tag:team", "tag:project"}
    assert sorted(world.endpoint_tags(name), key=lambda t: t["Key"]) == [
        {"Key": "owner", "Value": "eli"},
        {"Key": "project", "Value": "ads"},
        {"Key": "team", "Value": "search"},
    ]  # no duplicate team key (moto appends on AddTags; the action clears the key first)
    run.rollback(ctx)
    assert sorted(world.endpoint_tags(name), key=lambda t: t["Key"]) == sorted(before, key=lambda t: t["Key"])
    # an endpoint given by name needs its kind
    by_name = plan_for(
        "apply-tags",
        {"resource": name, "resource_kind": "sagemaker-endpoint", "tags": {"team": "x"}},
        ctx,
        pctx,
    )
    assert by_name.target.kind == "sagemaker-endpoint" and by_name.target.id == name


def test_apply_tags_refusals(world: World, ctx: ActionContext, pctx: PlanContext) -> None:
    azure = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
    with pytest.raises(ActionRefused, match="tag it by hand"):
        plan_for("apply-tags", {"resource": azure, "tags": {"team": "search"}}, ctx, pctx)
    iid = world.instance("m5.large", team="search")
    with pytest.raises(ActionRefused, match="already carries"):
        plan_for("apply-tags", {"resource": iid, "tags": {"team": "search"}}, ctx, pctx)
    with pytest.raises(ActionRefused, match="tag it by hand"):  # kind given does not match the id
        plan_for(
            "apply-tags", {"resource": iid, "resource_kind": "ebs-volume", "tags": {"a": "b"}}, ctx, pctx
        )
    action = registry.create("apply-tags")
    with pytest.raises(ActionError, match="aws:"):
        action.parse_params({"resource": iid, "tags": {"aws:owner": "x"}})
    with pytest.raises(ActionError, match="tags"):
        action.parse_params({"resource": iid, "tags": {}})


def test_apply_tags_rollback_leaves_a_later_edit_alone(
    world: World, ctx: ActionContext, pctx: PlanContext
) -> None:
    iid = world.instance("m5.large")
    run = execute("apply-tags", {"resource": iid, "tags": {"team": "search"}}, ctx, pctx)
    world.ec2.create_tags(Resources=[iid], Tags=_tags(team="growth"))  # someone corrects it meanwhile
    with pytest.raises(ActionRefused, match="changed by someone else"):
        run.action.rollback(ctx, run.params, run.captured, run.applied)
    assert world.ec2_tags(iid) == {"team": "growth"}


# --- offhours-schedule --------------------------------------------------------------------------------


def test_offhours_plan_for_an_instance(world: World, ctx: ActionContext, pctx: PlanContext) -> None:
    iid = world.instance("g5.xlarge", environment="dev", team="ml-research")
    run = execute("offhours-schedule", _offhours_params(iid, "ec2-instance"), ctx, pctx)
    value = "mon-fri 08:00-18:00 UTC"
    assert run.plan.changes == (Change(iid, "tag:finops:schedule", None, value),)
    off = Decimal(168 - 50) / 168
    assert run.plan.monthly_savings == money(Decimal("1.006") * 730 * off)
    assert run.plan.environment == "dev" and "nothing stops today" in run.plan.blast_radius
    assert world.ec2_tags(iid)["finops:schedule"] == value
    assert world.describe(iid)["State"]["Name"] == "running"  # the tag alone stops nothing
    run.rollback(ctx)
    assert "finops:schedule" not in world.ec2_tags(iid)


def test_offhours_on_an_endpoint_replaces_and_restores_an_old_schedule(
    world: World, ctx: ActionContext, pctx: PlanContext
) -> None:
    name = world.endpoint(
        "ml.g4dn.xlarge", environment="staging", **{"finops:schedule": "mon-sun 00:00-24:00 UTC"}
    )
    raw = _offhours_params(world.endpoint_arn(name), "sagemaker-endpoint")
    raw["schedule"] = {"days": "mon-sat", "hours_on": 12, "start": "07:30", "timezone": "Europe/Paris"}
    run = execute("offhours-schedule", raw, ctx, pctx)
    value = "mon-sat 07:30-19:30 Europe/Paris"
    assert run.plan.changes == (Change(name, "tag:finops:schedule", "mon-sun 00:00-24:00 UTC", value),)
    assert run.plan.monthly_savings == money(Decimal("0.736") * 730 * Decimal(168 - 72) / 168)
    assert _dict(world.endpoint_tags(name))["finops:schedule"] == value
    run.rollback(ctx)
    assert _dict(world.endpoint_tags(name)) == {
        "environment": "staging",
        "finops:schedule": "mon-sun 00:00-24:00 UTC",
    }


def test_offhours_schedule_validation(world: World, ctx: ActionContext, pctx: PlanContext) -> None:
    action = registry.create("offhours-schedule")
    base = _offhours_params("i-0123456789abcdef0", "ec2-instance")
    for bad, message in (
        ({"days": "fri-mon", "hours_on": 10}, "ascending"),
        ({"days": "mon-fri", "hours_on": 10, "start": "20:00"}, "past midnight"),
        ({"days": "weekdays", "hours_on": 10}, "days"),
        ({"days": "mon-fri", "hours_on": 10, "timezone": "Paris time"}, "IANA"),
        ({"days": "mon-fri", "hours_on": 0}, "hours_on"),
    ):
        with pytest.raises(ActionError, match=message):
            action.parse_params({**base, "schedule": bad})
    assert action.parse_params({**base, "schedule": {"days": "sun", "hours_on": 24, "start": "00:00"}})
    vid = world.volume(10, "gp2")
    with pytest.raises(ActionRefused, match="tag it by hand"):
        plan_for("offhours-schedule", {**base, "resource": vid, "resource_kind": None}, ctx, pctx)
    stopped = world.instance("g5.xlarge")
    world.ec2.stop_instances(InstanceIds=[stopped])
    plan = plan_for("offhours-schedule", _offhours_params(stopped, "ec2-instance"), ctx, pctx)
    assert plan.monthly_savings == Decimal("0.00") and "nothing is saved" in plan.blast_radius


# --- errors -------------------------------------------------------------------------------------------


def test_access_denied_names_the_write_permission(world: World) -> None:
    clients = AwsClients(AwsConfig(regions=[REGION], endpoint_url=world.url))
    denied = botocore.exceptions.ClientError(
        {"Error": {"Code": "UnauthorizedOperation", "Message": "You are not authorized"}}, "StopInstances"
    )
    with (
        pytest.raises(AwsActionAccessDeniedError, match=r"Grant ec2:StopInstances") as err,
        clients.calling("ec2", REGION, "StopInstances i-0abc"),
    ):
        raise denied
    assert "us-east-1" in str(err.value) and world.url in str(err.value)
    permission = "sagemaker:DeleteEndpoint, sagemaker:X"
    with (
        pytest.raises(AwsActionAccessDeniedError, match=rf"Grant {permission}"),
        clients.calling("sagemaker", REGION, "DeleteEndpoint ep", permission=permission),
    ):
        raise denied


def test_other_aws_errors_are_translated(world: World, ctx: ActionContext) -> None:
    clients = ctx.aws
    assert isinstance(clients, AwsClients)
    with (
        pytest.raises(AwsError, match=r"AWS ec2 in us-east-1 \(DescribeVolumes .*InvalidVolume.NotFound"),
        clients.calling("ec2", REGION, "DescribeVolumes vol-0"),
    ):
        clients.client("ec2", REGION).describe_volumes(VolumeIds=["vol-0123456789abcdef0"])


# --- from a finding to a request ----------------------------------------------------------------------


def _daily(now: datetime, metric: str, dims: dict[str, str], values: list[float]) -> list[dict[str, Any]]:
    midnight = datetime.combine(now.date(), time(0), tzinfo=UTC)
    return [
        {
            "MetricName": metric,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
            "Timestamp": midnight - timedelta(days=k + 1) + timedelta(hours=12),
            "Value": value,
        }
        for k, value in enumerate(values)
    ]


@pytest.fixture
def findings_world(world: World) -> Iterator[tuple[World, datetime, dict[str, str]]]:
    now = datetime.now(UTC) + timedelta(days=20)  # moto stamps launch times with the real clock
    ids = {
        "idle_gpu": world.instance("g5.xlarge", team="search", environment="development"),
        "big_idle": world.instance("m5.2xlarge", team="platform"),
        "volume": world.volume(100, "gp3", team="data"),
        "endpoint": world.endpoint("ml.g4dn.xlarge", team="search", environment="stage"),
    }
    cw = boto3.client("cloudwatch", endpoint_url=world.url, region_name=REGION)
    for key in ("idle_gpu", "big_idle"):
        cw.put_metric_data(
            Namespace="AWS/EC2",
            MetricData=_daily(now, "CPUUtilization", {"InstanceId": ids[key]}, [2.0] * 16),
        )
    yield world, now, ids


def test_every_finding_of_the_aws_rules_becomes_a_plannable_request(
    findings_world: tuple[World, datetime, dict[str, str]],
    config: FinOpsConfig,
    ctx: ActionContext,
    pctx: PlanContext,
) -> None:
    world, now, ids = findings_world
    load_rules()
    inventory = AwsInventory(AwsConfig(regions=[REGION], endpoint_url=world.url))
    rule_ctx = RuleContext(config=config, now=now, inventory=inventory)
    mine = {*ids.values(), world.endpoint_arn(ids["endpoint"])}
    planned: dict[str, dict[str, Plan]] = {}
    for rule_id in (
        "idle-gpu-instance",
        "overprovisioned-instance",
        "unattached-ebs-volume",
        "idle-inference-endpoint",
        "offhours-dev-resources",
    ):
        cls = rules.get(rule_id)
        for finding in cls(cls.Params()).evaluate(rule_ctx):
            assert finding.proposed_action
            action = registry.create(finding.proposed_action)
            params = action.parse_params(finding.action_params)  # exactly what the rule proposes
            if finding.resource not in mine:  # resources of other tests (some made unplannable on purpose)
                continue
            plan = action.plan(params, action.observe(ctx, params), pctx)
            planned.setdefault(rule_id, {})[str(finding.resource)] = plan
            if rule_id in ("idle-gpu-instance", "overprovisioned-instance", "idle-inference-endpoint"):
                assert plan.monthly_savings == finding.monthly_impact, (rule_id, finding.resource)
    # the snapshot kept is not free: the plan saves the volume's cost minus the snapshot's
    volume_finding = planned["unattached-ebs-volume"][ids["volume"]]
    assert volume_finding.monthly_savings == Decimal("3.00")
    assert planned["idle-gpu-instance"][ids["idle_gpu"]].action == "ec2-stop-instance"
    assert planned["overprovisioned-instance"][ids["big_idle"]].changes[0].after == "m5.xlarge"
    assert planned["unattached-ebs-volume"][ids["volume"]].action == "ebs-snapshot-delete-volume"
    endpoint_arn = world.endpoint_arn(ids["endpoint"])
    assert planned["idle-inference-endpoint"][endpoint_arn].action == "sagemaker-delete-endpoint"
    assert planned["offhours-dev-resources"][ids["idle_gpu"]].action == "offhours-schedule"
    assert planned["offhours-dev-resources"][endpoint_arn].target.kind == "sagemaker-endpoint"


def test_observed_survives_the_store(world: World, ctx: ActionContext, pctx: PlanContext) -> None:
    """The plan's observed state, stored as JSON and read back, equals a fresh read (reconcile compares)."""
    for case in CASES:
        raw = case.seed(world)
        plan = plan_for(case.action, raw, ctx, pctx)
        back = Observed.from_dict(stored(plan.as_dict())["observed"])
        assert back == registry.create(case.action).observe(
            ctx, registry.create(case.action).parse_params(raw)
        )
