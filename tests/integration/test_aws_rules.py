"""The AWS waste rules against a moto server: a positive and a negative case each, evidence, stable
fingerprints, and no finding without the evidence (missing metrics).

moto sets launch / creation times to the real clock, so the rules run at ``NOW``, 20 days after the
resources were created, and the CloudWatch data points are seeded in the days before ``NOW``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import boto3
import duckdb
import pytest

from config.model import AwsConfig, FinOpsConfig
from tests.moto_server import moto_endpoint_fixture, reset_moto  # noqa: F401
from tools.cloud.aws import AwsInventory
from tools.findings import Finding, fingerprint
from tools.rules import load_rules, registry
from tools.rules.base import RuleContext

T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
NOW = T0 + timedelta(days=20)
MIDNIGHT = datetime.combine(NOW.date(), time(0), tzinfo=UTC)
ROLE = "arn:aws:iam::123456789012:role/sagemaker"
AWS_RULES = (
    "idle-gpu-instance",
    "idle-inference-endpoint",
    "overprovisioned-instance",
    "offhours-dev-resources",
    "unattached-ebs-volume",
    "old-ebs-snapshots",
)


@dataclass
class World:
    url: str
    ids: dict[str, str] = field(default_factory=dict)


def _tags(**tags: str) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _daily(metric: str, dims: dict[str, str], values: list[float]) -> list[dict[str, Any]]:
    """One data point at noon on each of the len(values) days before NOW (values[0] = yesterday)."""
    return [
        {
            "MetricName": metric,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
            "Timestamp": MIDNIGHT - timedelta(days=k + 1) + timedelta(hours=12),
            "Value": value,
        }
        for k, value in enumerate(values)
    ]


@pytest.fixture(scope="module")
def world(moto_endpoint: str) -> World:
    reset_moto(moto_endpoint)
    w = World(moto_endpoint)
    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name="us-east-1")
    image = ec2.describe_images(Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*"]}])["Images"][0][
        "ImageId"
    ]

    def run(key: str, itype: str, **tags: str) -> str:
        spec = [{"ResourceType": "instance", "Tags": _tags(**tags)}] if tags else []
        out = ec2.run_instances(
            ImageId=image, MinCount=1, MaxCount=1, InstanceType=itype, TagSpecifications=spec
        )
        w.ids[key] = out["Instances"][0]["InstanceId"]
        return w.ids[key]

    run("gpu_idle", "g5.xlarge", team="search", environment="prod")
    run("gpu_busy", "g5.xlarge", team="search", environment="staging", Schedule="office-hours")
    run("gpu_cpu_only", "p3.2xlarge", team="ml-research")
    run("gpu_no_metrics", "g4dn.xlarge", team="ml-research", environment="sandbox")
    run("gpu_stopped", "g5.xlarge", environment="dev")
    run("big_idle", "m5.2xlarge", team="platform")
    run("big_busy", "m5.2xlarge", team="platform")
    run("smallest_idle", "m5.large")
    ec2.stop_instances(InstanceIds=[w.ids["gpu_stopped"]])

    cpu = {
        "gpu_idle": [2.0, 3.5, 1.0] * 6,
        "gpu_busy": [3.0] * 18,
        "gpu_cpu_only": [1.0] * 18,
        "gpu_stopped": [1.0] * 18,
        "big_idle": [12.0, 8.0, 15.0] * 6,
        "big_busy": [55.0, 40.0, 60.0] * 6,
        "smallest_idle": [5.0] * 18,
    }
    cw = boto3.client("cloudwatch", endpoint_url=moto_endpoint, region_name="us-east-1")
    for key, values in cpu.items():
        cw.put_metric_data(
            Namespace="AWS/EC2",
            MetricData=_daily("CPUUtilization", {"InstanceId": w.ids[key]}, values),
        )
    for key, value in (("gpu_idle", 1.0), ("gpu_busy", 70.0)):
        cw.put_metric_data(
            Namespace="CWAgent",
            MetricData=_daily("nvidia_smi_utilization_gpu", {"InstanceId": w.ids[key]}, [value] * 18),
        )

    sm = boto3.client("sagemaker", endpoint_url=moto_endpoint, region_name="us-east-1")
    for name, itype, tags in (
        ("ep-idle", "ml.g4dn.xlarge", {"team": "search", "environment": "staging"}),
        ("ep-busy", "ml.g4dn.xlarge", {"team": "support", "environment": "prod"}),
        ("ep-silent", "ml.m5.large", {"team": "growth"}),
    ):
        sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "img"})
        variant = {
            "VariantName": "AllTraffic",
            "ModelName": name,
            "InitialInstanceCount": 1,
            "InstanceType": itype,
        }
        sm.create_endpoint_config(EndpointConfigName=f"{name}-cfg", ProductionVariants=[variant])
        sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-cfg", Tags=_tags(**tags))
    for name, value in (("ep-idle", 0.0), ("ep-busy", 500.0)):
        dims = {"EndpointName": name, "VariantName": "AllTraffic"}
        cw.put_metric_data(Namespace="AWS/SageMaker", MetricData=_daily("Invocations", dims, [value] * 10))

    free = ec2.create_volume(
        AvailabilityZone="us-east-1a",
        Size=100,
        VolumeType="gp3",
        TagSpecifications=[{"ResourceType": "volume", "Tags": _tags(team="data", environment="dev")}],
    )
    w.ids["free_volume"] = free["VolumeId"]
    used = ec2.create_volume(AvailabilityZone="us-east-1a", Size=50, VolumeType="gp2")
    ec2.attach_volume(VolumeId=used["VolumeId"], InstanceId=w.ids["big_busy"], Device="/dev/sdf")
    w.ids["used_volume"] = used["VolumeId"]
    w.ids["kept_snapshot"] = ec2.create_snapshot(VolumeId=used["VolumeId"])["SnapshotId"]
    gone = ec2.create_volume(AvailabilityZone="us-east-1a", Size=200, VolumeType="gp2")
    w.ids["orphan_snapshot"] = ec2.create_snapshot(VolumeId=gone["VolumeId"], Description="pre-migration")[
        "SnapshotId"
    ]
    ec2.delete_volume(VolumeId=gone["VolumeId"])
    return w


@pytest.fixture(scope="module")
def config() -> FinOpsConfig:
    from config.loader import load_config
    from config.settings import EXAMPLE_CONFIG

    return load_config(EXAMPLE_CONFIG)  # its taxonomy: sandbox/test/development -> dev, stage -> staging


def evaluate(
    world: World,
    config: FinOpsConfig,
    rule_id: str,
    now: datetime = NOW,
    costs: Any = None,
    **params: Any,
) -> list[Finding]:
    load_rules()
    cls = registry.get(rule_id)
    inventory = AwsInventory(AwsConfig(regions=["us-east-1"], endpoint_url=world.url))
    ctx = RuleContext(config=config, now=now, inventory=inventory, costs=costs)
    findings = list(cls(cls.Params(**params)).evaluate(ctx))
    for f in findings:  # the contract every finding keeps
        assert f.kind == "waste" and f.rule_id == rule_id and f.detected_at == now
        assert f.fingerprint == fingerprint(rule_id, f.resource)
        assert set(cls.evidence_fields) <= set(f.evidence), set(cls.evidence_fields) - set(f.evidence)
        json.dumps(f.evidence)
        assert f.proposed_action == cls.action and f.recommendation
        assert f.account == "123456789012" and isinstance(f.monthly_impact, Decimal)
    return findings


def by_resource(findings: list[Finding]) -> dict[str, Finding]:
    return {str(f.resource): f for f in findings}


@pytest.mark.parametrize("rule_id", AWS_RULES)
def test_aws_rule_without_inventory_finds_nothing(rule_id: str, config: FinOpsConfig) -> None:
    load_rules()
    cls = registry.get(rule_id)
    assert list(cls().evaluate(RuleContext(config=config, now=NOW))) == []


@pytest.mark.parametrize("rule_id", AWS_RULES)
def test_aws_rule_fingerprints_stable_across_scans(rule_id: str, world: World, config: FinOpsConfig) -> None:
    now = NOW + timedelta(days=200) if rule_id == "old-ebs-snapshots" else NOW
    first = evaluate(world, config, rule_id, now=now)
    second = evaluate(world, config, rule_id, now=now)
    assert first and sorted(f.fingerprint for f in first) == sorted(f.fingerprint for f in second)


def test_idle_gpu_instance_flags_idle_gpu_with_evidence(world: World, config: FinOpsConfig) -> None:
    found = by_resource(evaluate(world, config, "idle-gpu-instance"))
    f = found[world.ids["gpu_idle"]]
    assert f.monthly_impact == Decimal("734.38")  # 1.006 $/h x 730 h
    assert (
        f.proposed_action == "ec2-stop-instance" and f.action_params["instance_id"] == world.ids["gpu_idle"]
    )
    assert f.evidence["cpu_max_daily"] == 3.5 and f.evidence["gpu_max_daily"] == 1.0
    assert len(f.evidence["cpu"]["daily"]) == 7 and f.evidence["cpu"]["metric"] == "CPUUtilization"
    assert f.scope == {"team": "search", "environment": "prod"} and f.tags["team"] == "search"
    assert f.severity == "medium"


def test_idle_gpu_instance_without_gpu_metric_decides_on_cpu(world: World, config: FinOpsConfig) -> None:
    found = by_resource(evaluate(world, config, "idle-gpu-instance"))
    f = found[world.ids["gpu_cpu_only"]]
    assert f.evidence["gpu"]["daily"] is None and f.evidence["gpu_max_daily"] is None
    assert f.monthly_impact == Decimal("2233.80") and f.severity == "medium"  # capped: GPU not measured
    assert "not measured" in str(f.recommendation)
    strict = evaluate(world, config, "idle-gpu-instance", require_gpu_metric=True)
    assert world.ids["gpu_cpu_only"] not in by_resource(strict)


def test_idle_gpu_instance_negative_cases(world: World, config: FinOpsConfig) -> None:
    found = by_resource(evaluate(world, config, "idle-gpu-instance"))
    assert world.ids["gpu_busy"] not in found  # GPU at 70 %
    assert world.ids["gpu_no_metrics"] not in found  # missing metrics: no evidence, no finding
    assert world.ids["gpu_stopped"] not in found  # not running
    assert world.ids["smallest_idle"] not in found  # not a GPU instance
    assert set(found) == {world.ids["gpu_idle"], world.ids["gpu_cpu_only"]}
    # launched within the window: not judged
    assert evaluate(world, config, "idle-gpu-instance", now=T0 + timedelta(days=3)) == []
    # a stricter threshold spares the idle instance whose busiest day was 3.5 %
    assert world.ids["gpu_idle"] not in by_resource(
        evaluate(world, config, "idle-gpu-instance", cpu_threshold=3)
    )


def test_idle_gpu_instance_uses_billed_cost_when_the_lake_has_it(world: World, config: FinOpsConfig) -> None:
    con = duckdb.connect(":memory:")
    con.execute("CREATE TABLE cost_facts (day DATE, resource VARCHAR, effective_cost DECIMAL(38,10))")
    arn = f"arn:aws:ec2:us-east-1:123456789012:instance/{world.ids['gpu_idle']}"
    rows = [(NOW.date() - timedelta(days=d), arn, Decimal("20.5")) for d in range(1, 31)]
    rows.append((NOW.date() - timedelta(days=40), arn, Decimal("999")))  # outside the 30 days
    con.executemany("INSERT INTO cost_facts VALUES (?, ?, ?)", rows)
    f = by_resource(evaluate(world, config, "idle-gpu-instance", costs=con))[world.ids["gpu_idle"]]
    assert f.monthly_impact == Decimal("615.00") and f.evidence["cost_basis"] == "billed, last 30 days"


def test_idle_inference_endpoint_flags_zero_invocations(world: World, config: FinOpsConfig) -> None:
    found = {f.action_params["endpoint_name"]: f for f in evaluate(world, config, "idle-inference-endpoint")}
    f = found["ep-idle"]
    assert f.monthly_impact == Decimal("537.28")  # ml.g4dn.xlarge 0.736 $/h x 730 h
    assert f.evidence["invocations_total"] == 0 and f.evidence["invocations"][0]["daily"] is not None
    assert f.proposed_action == "sagemaker-delete-endpoint"
    assert f.resource == "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep-idle"
    # SageMaker emits no Invocations data point without invocations: no data = zero, for this metric only
    silent = found["ep-silent"]
    assert silent.evidence["invocations"][0]["daily"] is None
    assert silent.evidence["invocations"][0]["no_data_counted_as_zero"] is True
    assert "ep-busy" not in found  # 500 a day


def test_idle_inference_endpoint_negative_young_or_busy(world: World, config: FinOpsConfig) -> None:
    # endpoints created a day ago: not old enough for the 7-day window, even without data
    assert evaluate(world, config, "idle-inference-endpoint", now=T0 + timedelta(days=1)) == []
    found = {
        f.action_params["endpoint_name"]
        for f in evaluate(world, config, "idle-inference-endpoint", max_invocations=10_000)
    }
    assert found == {"ep-idle", "ep-silent", "ep-busy"}  # 3500 invocations < 10000


def test_overprovisioned_instance_proposes_next_smaller_size(world: World, config: FinOpsConfig) -> None:
    found = by_resource(evaluate(world, config, "overprovisioned-instance"))
    f = found[world.ids["big_idle"]]
    assert f.action_params["target_type"] == "m5.xlarge" and f.proposed_action == "ec2-resize-instance"
    assert f.monthly_impact == Decimal("140.16")  # (0.384 - 0.192) x 730
    assert f.evidence["cpu_max_daily"] == 15.0 and len(f.evidence["cpu"]["daily"]) == 14
    assert world.ids["big_busy"] not in found  # 60 % on its busiest day
    assert world.ids["smallest_idle"] not in found  # no smaller m5 size in the price table
    assert world.ids["gpu_idle"] not in found  # GPU instances are idle-gpu-instance's business
    assert world.ids["gpu_no_metrics"] not in found
    with_gpu = by_resource(evaluate(world, config, "overprovisioned-instance", include_gpu=True))
    assert set(with_gpu) == set(found)  # g5.xlarge, p3.2xlarge: no smaller size of their family


def test_offhours_dev_resources_flags_non_prod_running_24_7(world: World, config: FinOpsConfig) -> None:
    found = by_resource(evaluate(world, config, "offhours-dev-resources"))
    f = found[world.ids["gpu_no_metrics"]]  # environment=sandbox, an alias of dev
    assert f.evidence["environment"] == "dev" and f.evidence["environment_tag"] == {"environment": "sandbox"}
    assert f.monthly_impact == Decimal("269.70")  # 0.526 x 730 = 383.98, x (168 - 50) / 168
    assert f.proposed_action == "offhours-schedule" and f.resource_kind == "ec2-instance"
    ep = found["arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep-idle"]  # staging endpoint
    assert ep.resource_kind == "sagemaker-endpoint" and ep.scope["environment"] == "staging"
    assert world.ids["gpu_idle"] not in found  # prod
    assert world.ids["gpu_busy"] not in found  # already has a Schedule tag
    assert world.ids["gpu_stopped"] not in found  # not running
    assert len(found) == 2
    assert evaluate(world, config, "offhours-dev-resources", now=T0 + timedelta(days=2)) == []  # not 24/7 yet
    eight_hours = by_resource(evaluate(world, config, "offhours-dev-resources", hours_on_per_weekday=8))
    assert eight_hours[world.ids["gpu_no_metrics"]].monthly_impact == Decimal("292.56")  # x 128/168


def test_unattached_ebs_volume_flags_available_volume(world: World, config: FinOpsConfig) -> None:
    found = by_resource(evaluate(world, config, "unattached-ebs-volume"))
    f = found[world.ids["free_volume"]]
    assert f.monthly_impact == Decimal("8.00") and f.evidence["usd_per_gb_month"] == "0.08"
    assert f.proposed_action == "ebs-snapshot-delete-volume" and f.scope == {
        "team": "data",
        "environment": "dev",
    }
    assert world.ids["used_volume"] not in found  # attached
    assert all(v.startswith("vol-") for v in found)
    assert evaluate(world, config, "unattached-ebs-volume", now=T0 + timedelta(days=3)) == []  # too recent


def test_old_ebs_snapshots_flags_snapshots_of_deleted_volumes(world: World, config: FinOpsConfig) -> None:
    later = NOW + timedelta(days=200)
    found = by_resource(evaluate(world, config, "old-ebs-snapshots", now=later))
    f = found[world.ids["orphan_snapshot"]]
    assert f.monthly_impact == Decimal("10.00") and f.proposed_action is None  # 200 GB x 0.05
    assert f.evidence["volume_exists"] is False and f.evidence["description"] == "pre-migration"
    assert world.ids["kept_snapshot"] not in found  # its volume still exists
    assert evaluate(world, config, "old-ebs-snapshots") == []  # 20 days old < 180
