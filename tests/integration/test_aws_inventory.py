"""AwsInventory against a moto server with real boto3: EC2, EBS, SageMaker, CloudWatch, errors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from config.model import AwsConfig
from tests.moto_server import AWS_TEST_ENV, moto_endpoint_fixture, reset_moto  # noqa: F401
from tools.cloud.aws import AwsCredentialsError, AwsError, AwsInventory, AwsUnavailableError
from tools.cloud.inventory import Inventory, Metric, daily_window, is_gpu_instance_type

T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
MIDNIGHT = datetime.combine(T0.date(), time(0), tzinfo=UTC)
ROLE = "arn:aws:iam::123456789012:role/sagemaker"


@dataclass
class Seeded:
    url: str
    ids: dict[str, str] = field(default_factory=dict)


def _client(url: str, service: str, region: str = "us-east-1") -> Any:
    return boto3.client(service, endpoint_url=url, region_name=region)


def _tags(**tags: str) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


_IMAGES: dict[str, str] = {}


def _image(ec2: Any) -> str:
    region = ec2.meta.region_name
    if region not in _IMAGES:
        images = ec2.describe_images(Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*"]}])["Images"]
        _IMAGES[region] = images[0]["ImageId"] if images else ec2.describe_images()["Images"][0]["ImageId"]
    return _IMAGES[region]


def _run(ec2: Any, itype: str, **tags: str) -> str:
    image = _image(ec2)
    spec = [{"ResourceType": "instance", "Tags": _tags(**tags)}] if tags else []
    out = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType=itype, TagSpecifications=spec)
    return str(out["Instances"][0]["InstanceId"])


def _endpoint(sm: Any, name: str, itype: str, count: int, **tags: str) -> None:
    sm.create_model(ModelName=f"{name}-model", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "img"})
    sm.create_endpoint_config(
        EndpointConfigName=f"{name}-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{name}-model",
                "InitialInstanceCount": count,
                "InstanceType": itype,
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config", Tags=_tags(**tags))


@pytest.fixture(scope="module")
def seeded(moto_endpoint: str) -> Seeded:
    reset_moto(moto_endpoint)
    s = Seeded(moto_endpoint)
    ec2 = _client(moto_endpoint, "ec2")
    s.ids["gpu"] = _run(ec2, "g5.xlarge", team="search", environment="dev")
    s.ids["p3"] = _run(ec2, "p3.2xlarge", team="ml-research")
    s.ids["m5"] = _run(ec2, "m5.2xlarge", Name="api")
    s.ids["t3"] = _run(ec2, "t3.micro")
    s.ids["odd"] = _run(ec2, "x2idn.metal")  # not in the price table
    s.ids["stopped"] = _run(ec2, "g4dn.xlarge")
    ec2.stop_instances(InstanceIds=[s.ids["stopped"]])
    s.ids["eu"] = _run(_client(moto_endpoint, "ec2", "eu-west-1"), "c5.large", team="growth")

    free = ec2.create_volume(
        AvailabilityZone="us-east-1a",
        Size=100,
        VolumeType="gp3",
        TagSpecifications=[{"ResourceType": "volume", "Tags": _tags(team="data")}],
    )
    s.ids["free_volume"] = free["VolumeId"]
    used = ec2.create_volume(AvailabilityZone="us-east-1a", Size=20, VolumeType="gp2")
    ec2.attach_volume(VolumeId=used["VolumeId"], InstanceId=s.ids["m5"], Device="/dev/sdf")
    s.ids["used_volume"] = used["VolumeId"]
    snap = ec2.create_snapshot(VolumeId=free["VolumeId"], Description="nightly")
    s.ids["snapshot"] = snap["SnapshotId"]
    gone = ec2.create_volume(AvailabilityZone="us-east-1a", Size=30, VolumeType="gp2")
    orphan = ec2.create_snapshot(VolumeId=gone["VolumeId"])
    ec2.delete_volume(VolumeId=gone["VolumeId"])
    s.ids["orphan_snapshot"], s.ids["gone_volume"] = orphan["SnapshotId"], gone["VolumeId"]

    sm = _client(moto_endpoint, "sagemaker")
    _endpoint(sm, "search-embed", "ml.g4dn.xlarge", 2, team="search", environment="staging")
    _endpoint(sm, "chat-small", "ml.m5.large", 1)

    cw = _client(moto_endpoint, "cloudwatch")
    cw.put_metric_data(
        Namespace="AWS/EC2",
        MetricData=[
            {
                "MetricName": "CPUUtilization",
                "Dimensions": [{"Name": "InstanceId", "Value": s.ids["gpu"]}],
                "Timestamp": MIDNIGHT - timedelta(days=k) + timedelta(hours=h),
                "Value": float(k + h),
            }
            for k in range(1, 8)
            for h in (6, 18)  # two samples a day: the daily Average is k + 12
        ],
    )
    return s


@pytest.fixture
def inventory(seeded: Seeded) -> AwsInventory:
    return AwsInventory(AwsConfig(regions=["us-east-1", "eu-west-1"], endpoint_url=seeded.url))


def test_aws_inventory_is_an_inventory(inventory: AwsInventory) -> None:
    as_protocol: Inventory = inventory
    assert as_protocol.account_id() == "123456789012"


def test_aws_inventory_reads_instances_with_tags_state_gpu_and_price(
    inventory: AwsInventory, seeded: Seeded
) -> None:
    by_id = {i.id: i for i in inventory.instances()}
    assert set(seeded.ids[k] for k in ("gpu", "p3", "m5", "t3", "odd", "stopped", "eu")) <= set(by_id)
    gpu = by_id[seeded.ids["gpu"]]
    assert (gpu.type, gpu.state, gpu.region, gpu.account) == (
        "g5.xlarge",
        "running",
        "us-east-1",
        "123456789012",
    )
    assert gpu.tags == {"team": "search", "environment": "dev"}
    assert gpu.gpu and gpu.hourly_price == Decimal("1.006")
    assert gpu.launch_time.tzinfo is not None and abs(gpu.launch_time - T0) < timedelta(hours=2)
    assert by_id[seeded.ids["p3"]].gpu and not by_id[seeded.ids["m5"]].gpu
    assert by_id[seeded.ids["m5"]].hourly_price == Decimal("0.384")
    assert by_id[seeded.ids["odd"]].hourly_price is None  # unknown type: price unknown, never invented
    assert by_id[seeded.ids["stopped"]].state == "stopped"
    eu = by_id[seeded.ids["eu"]]
    assert (eu.region, eu.type, eu.tags) == ("eu-west-1", "c5.large", {"team": "growth"})


def test_aws_inventory_follows_pages(seeded: Seeded) -> None:
    ec2 = _client(seeded.url, "ec2")
    assert ec2.describe_instances(MaxResults=2).get("NextToken")  # the server really pages
    sm = _client(seeded.url, "sagemaker")
    assert sm.list_endpoints(MaxResults=1).get("NextToken")
    paged = AwsInventory(AwsConfig(endpoint_url=seeded.url), page_size=1)
    unpaged = AwsInventory(AwsConfig(endpoint_url=seeded.url))
    assert sorted(i.id for i in paged.instances()) == sorted(i.id for i in unpaged.instances())
    assert len(paged.instances()) == 6
    assert sorted(e.name for e in paged.endpoints()) == ["chat-small", "search-embed"]


def test_aws_inventory_reads_volumes_attached_and_unattached(inventory: AwsInventory, seeded: Seeded) -> None:
    by_id = {v.id: v for v in inventory.volumes()}
    free, used = by_id[seeded.ids["free_volume"]], by_id[seeded.ids["used_volume"]]
    assert (free.state, free.attachments, free.size_gb, free.type, free.az) == (
        "available",
        0,
        100,
        "gp3",
        "us-east-1a",
    )
    assert free.tags == {"team": "data"} and free.account == "123456789012"
    assert (used.state, used.attachments) == ("in-use", 1)
    assert seeded.ids["gone_volume"] not in by_id
    assert any(v.region == "eu-west-1" for v in by_id.values())  # the eu instance's root volume


def test_aws_inventory_reads_only_the_accounts_snapshots(inventory: AwsInventory, seeded: Seeded) -> None:
    snaps = {s.id: s for s in inventory.snapshots()}
    # moto ignores OwnerIds=['self'] and also lists its public AMI snapshots; the inventory drops them
    assert set(snaps) == {seeded.ids["snapshot"], seeded.ids["orphan_snapshot"]}
    snap = snaps[seeded.ids["snapshot"]]
    assert (snap.volume_id, snap.size_gb, snap.description) == (seeded.ids["free_volume"], 100, "nightly")
    assert snaps[seeded.ids["orphan_snapshot"]].volume_id == seeded.ids["gone_volume"]


def test_aws_inventory_reads_sagemaker_endpoints_with_config_and_tags(inventory: AwsInventory) -> None:
    eps = {e.name: e for e in inventory.endpoints()}
    ep = eps["search-embed"]
    assert ep.status == "InService" and ep.config_name == "search-embed-config"
    assert (ep.instance_type, ep.instance_count, ep.variants) == ("ml.g4dn.xlarge", 2, ("AllTraffic",))
    assert ep.tags == {"team": "search", "environment": "staging"}
    assert ep.arn == "arn:aws:sagemaker:us-east-1:123456789012:endpoint/search-embed"
    assert ep.gpu and ep.hourly_price == Decimal("0.736") * 2
    assert not eps["chat-small"].gpu and eps["chat-small"].hourly_price == Decimal("0.115")


def test_aws_inventory_endpoint_without_config_still_listed(seeded: Seeded) -> None:
    sm = _client(seeded.url, "sagemaker", "eu-west-1")
    _endpoint(sm, "orphaned", "ml.m5.large", 1)
    sm.delete_endpoint_config(EndpointConfigName="orphaned-config")
    try:
        eps = AwsInventory(AwsConfig(regions=["eu-west-1"], endpoint_url=seeded.url)).endpoints()
        assert [(e.name, e.instance_type, e.instance_count) for e in eps] == [("orphaned", None, 1)]
    finally:
        sm.delete_endpoint(EndpointName="orphaned")


def test_aws_inventory_metric_daily_returns_one_value_per_day(
    inventory: AwsInventory, seeded: Seeded
) -> None:
    start, end = daily_window(T0, 7)
    dims = {"InstanceId": seeded.ids["gpu"]}
    series = inventory.metric_daily("AWS/EC2", "CPUUtilization", dims, start, end)
    assert series is not None and len(series) == 7
    assert series[0] == ((MIDNIGHT - timedelta(days=7)).date(), 19.0)  # (7+6 + 7+18) / 2
    assert series[-1] == ((MIDNIGHT - timedelta(days=1)).date(), 13.0)
    maximum = inventory.metric_daily("AWS/EC2", "CPUUtilization", dims, start, end, stat="Maximum")
    assert maximum is not None and maximum[-1][1] == 19.0
    short = inventory.metric_daily("AWS/EC2", "CPUUtilization", dims, *daily_window(T0, 3), stat="Sum")
    assert short is not None and [v for _, v in short] == [30.0, 28.0, 26.0]


def test_aws_inventory_metric_daily_no_data_is_none(inventory: AwsInventory, seeded: Seeded) -> None:
    start, end = daily_window(T0, 7)
    assert (
        inventory.metric_daily("AWS/EC2", "CPUUtilization", {"InstanceId": "i-0nothing"}, start, end) is None
    )
    gpu = Metric.ec2_gpu(next(i for i in inventory.instances() if i.id == seeded.ids["gpu"]))
    assert gpu.daily(inventory, start, end) is None  # no CloudWatch agent: "no data", not zero
    assert gpu.evidence(None)["daily"] is None
    # a metric of another region is not visible from this one
    assert (
        inventory.metric_daily(
            "AWS/EC2", "CPUUtilization", {"InstanceId": seeded.ids["gpu"]}, start, end, region="eu-west-1"
        )
        is None
    )
    with pytest.raises(ValueError, match="unknown statistic"):
        inventory.metric_daily("AWS/EC2", "CPUUtilization", {}, start, end, stat="p95")


def test_aws_inventory_caches_until_refresh(inventory: AwsInventory, seeded: Seeded) -> None:
    before = len(inventory.volumes())
    extra = _client(seeded.url, "ec2").create_volume(AvailabilityZone="us-east-1a", Size=1, VolumeType="sc1")
    try:
        assert len(inventory.volumes()) == before
        inventory.refresh()
        assert len(inventory.volumes()) == before + 1
    finally:
        _client(seeded.url, "ec2").delete_volume(VolumeId=extra["VolumeId"])


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[None]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield


def test_aws_inventory_without_credentials_says_what_to_do(seeded: Seeded, no_credentials: None) -> None:
    inv = AwsInventory(AwsConfig(regions=["eu-west-1"], endpoint_url=seeded.url))
    with pytest.raises(AwsCredentialsError) as err:
        inv.instances()
    message = str(err.value)
    assert "ec2 in eu-west-1" in message and "AWS_PROFILE" in message and "--no-cloud" in message


def test_aws_inventory_unknown_profile_names_it(seeded: Seeded, no_credentials: None) -> None:
    inv = AwsInventory(AwsConfig(endpoint_url=seeded.url, profile="finops-missing"))
    with pytest.raises(AwsCredentialsError, match="finops-missing"):
        inv.volumes()


def test_aws_inventory_unreachable_endpoint_is_an_aws_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in AWS_TEST_ENV.items():  # credentials present: the failure is the connection
        monkeypatch.setenv(key, value)
    inv = AwsInventory(AwsConfig(endpoint_url="http://127.0.0.1:9"))
    with pytest.raises(AwsUnavailableError, match=r"ec2 in us-east-1.*endpoint_url") as err:
        inv.instances()
    assert isinstance(err.value, AwsError)


def test_aws_gpu_family_detection() -> None:
    gpu = ["g4dn.xlarge", "g5.48xlarge", "gr6.4xlarge", "p3.2xlarge", "p4d.24xlarge", "inf2.xlarge"]
    gpu += ["trn1.32xlarge", "ml.g5.xlarge", "ml.p3.2xlarge"]
    other = ["m5.large", "c6g.large", "t3.micro", "r6i.large", "ml.m5.large", "x2idn.metal"]
    assert all(is_gpu_instance_type(t) for t in gpu)
    assert not any(is_gpu_instance_type(t) for t in other)
