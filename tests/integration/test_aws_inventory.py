"""AwsInventory against a moto server with real boto3: EC2, EBS, SageMaker, CloudWatch (per metric and
batched with prefetch_metrics, its HTTP calls counted on the server's request recorder), errors."""

from __future__ import annotations

import base64
import json
import logging
import re
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from config.model import AwsConfig
from tests.moto_server import AWS_TEST_ENV, moto_endpoint_fixture, reset_moto  # noqa: F401
from tools.cloud.aws import AwsCredentialsError, AwsError, AwsInventory, AwsUnavailableError
from tools.cloud.inventory import Inventory, Metric, daily_window, is_gpu_instance_type
from tools.rules import load_rules, registry
from tools.rules.base import RuleContext

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


# --- batched metric reads: prefetch_metrics (GetMetricData) ------------------------------------------


def _recorder(url: str, path: str) -> str:
    method, data = ("GET", None) if path == "download-recording" else ("POST", b"")
    request = urllib.request.Request(f"{url}/moto-api/recorder/{path}", method=method, data=data)
    with urllib.request.urlopen(request, timeout=10) as response:
        body: bytes = response.read()
    return body.decode()


def _actions(url: str) -> list[str]:
    """The API operation of every request the moto server recorded: from the URL path for the CBOR
    protocol botocore uses for CloudWatch (``/service/<version>/operation/<Name>``), else from the query
    ``Action`` or the ``X-Amz-Target`` header."""
    out: list[str] = []
    for line in _recorder(url, "download-recording").splitlines():
        entry = json.loads(line)
        found = re.search(r"/operation/(\w+)", entry["url"])
        if found:
            out.append(found.group(1))
            continue
        body = entry.get("body") or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode(errors="replace")
        query = urllib.parse.parse_qs(body) | urllib.parse.parse_qs(urllib.parse.urlsplit(entry["url"]).query)
        target = entry["headers"].get("X-Amz-Target")
        out.extend(query.get("Action", []) or ([target.rsplit(".", 1)[-1]] if target else []))
    return out


@pytest.fixture
def recording(
    moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], list[str]]]:
    """Records the requests the moto server receives; call the result for the operations so far."""
    monkeypatch.chdir(tmp_path)  # the recorder appends to ./moto_recording (of this process's cwd)
    _recorder(moto_endpoint, "reset-recording")
    _recorder(moto_endpoint, "start-recording")
    try:
        yield lambda: _actions(moto_endpoint)
    finally:
        _recorder(moto_endpoint, "stop-recording")


def _fresh(url: str) -> AwsInventory:
    return AwsInventory(AwsConfig(regions=["us-east-1", "eu-west-1"], endpoint_url=url))


def test_aws_inventory_prefetch_returns_what_metric_daily_reads_alone(seeded: Seeded) -> None:
    # The samples of a day lie within 24 h of the day's first one: moto's GetMetricStatistics starts its
    # periods at the first data point (AWS and moto's GetMetricData at StartTime, midnight here), so with
    # samples on both sides of such a boundary moto's two answers would differ and AWS's would not.
    start, end = daily_window(T0, 7)
    days = [(MIDNIGHT - timedelta(days=k)).date() for k in range(7, 0, -1)]
    invocations = {"EndpointName": "search-embed", "VariantName": "AllTraffic"}
    _client(seeded.url, "cloudwatch").put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {
                "MetricName": "Invocations",
                "Dimensions": [{"Name": k, "Value": v} for k, v in invocations.items()],
                "Timestamp": MIDNIGHT - timedelta(days=k) + timedelta(hours=h),
                "Value": float(10 * k + h),
            }
            for k in range(1, 8)
            for h in (3, 9, 15)  # three samples a day: Sum 30k + 27, Average 10k + 9
        ],
    )
    eu = {"InstanceId": seeded.ids["eu"]}
    _client(seeded.url, "cloudwatch", "eu-west-1").put_metric_data(
        Namespace="AWS/EC2",
        MetricData=[
            {
                "MetricName": "CPUUtilization",
                "Dimensions": [{"Name": "InstanceId", "Value": eu["InstanceId"]}],
                "Timestamp": MIDNIGHT - timedelta(days=k) + timedelta(hours=12),
                "Value": 40.0 + k,
            }
            for k in (1, 2, 4)  # gaps: days without data are absent, not zero
        ],
    )
    gpu_instance = next(i for i in _fresh(seeded.url).instances() if i.id == seeded.ids["gpu"])
    cpu = Metric.ec2_cpu(gpu_instance)
    metrics = [
        cpu,
        *(
            Metric(cpu.namespace, cpu.name, cpu.dimensions, stat, cpu.region)
            for stat in ("Maximum", "Minimum")
        ),
        *(Metric(cpu.namespace, cpu.name, cpu.dimensions, stat) for stat in ("Sum", "SampleCount")),
        Metric.ec2_gpu(gpu_instance),  # no CloudWatch agent: no data
        Metric("AWS/SageMaker", "Invocations", invocations, "Sum", "us-east-1"),
        Metric("AWS/SageMaker", "Invocations", invocations, "Average", "us-east-1"),
        Metric("AWS/EC2", "CPUUtilization", eu, region="eu-west-1"),
        Metric(cpu.namespace, cpu.name, cpu.dimensions, region="eu-west-1"),  # another region's: no data
        cpu,  # twice: read once
    ]
    prefetched = _fresh(seeded.url)
    prefetched.prefetch_metrics(metrics, start, end)
    batched = [m.daily(prefetched, start, end) for m in metrics]
    alone = _fresh(seeded.url)
    assert batched == [m.daily(alone, start, end) for m in metrics]

    assert batched[0] == [(d, float(k + 12)) for d, k in zip(days, range(7, 0, -1), strict=True)]
    assert [v for _, v in batched[1] or []] == [float(k + 18) for k in range(7, 0, -1)]  # Maximum
    assert [v for _, v in batched[2] or []] == [float(k + 6) for k in range(7, 0, -1)]  # Minimum
    assert [v for _, v in batched[3] or []] == [float(2 * k + 24) for k in range(7, 0, -1)]  # Sum
    assert [v for _, v in batched[4] or []] == [2.0] * 7  # SampleCount
    assert batched[5] is None  # "no data", never zero
    assert batched[6] == [(d, float(30 * k + 27)) for d, k in zip(days, range(7, 0, -1), strict=True)]
    assert [v for _, v in batched[7] or []] == [float(10 * k + 9) for k in range(7, 0, -1)]
    assert batched[8] == [(days[3], 44.0), (days[5], 42.0), (days[6], 41.0)]
    assert batched[9] is None


def _hosts(n: int) -> list[Metric]:
    return [Metric("Bench/Prefetch", "Load", {"Host": f"h{k:04d}"}) for k in range(n)]


@pytest.fixture(scope="module")
def hosts(seeded: Seeded) -> list[Metric]:
    """120 metrics, the even ones with a data point at noon on each of the 3 days before T0's day."""
    metrics = _hosts(120)
    data = [
        {
            "MetricName": m.name,
            "Dimensions": [{"Name": "Host", "Value": m.dimensions["Host"]}],
            "Timestamp": MIDNIGHT - timedelta(days=d) + timedelta(hours=12),
            "Value": float(k),
        }
        for k, m in enumerate(metrics)
        if k % 2 == 0
        for d in (1, 2, 3)
    ]
    cw = _client(seeded.url, "cloudwatch")
    for at in range(0, len(data), 500):
        cw.put_metric_data(Namespace="Bench/Prefetch", MetricData=data[at : at + 500])
    return metrics


def test_aws_inventory_prefetch_reads_120_metrics_in_one_call(
    seeded: Seeded, hosts: list[Metric], recording: Callable[[], list[str]]
) -> None:
    start, end = daily_window(T0, 3)
    inv = _fresh(seeded.url)
    inv.prefetch_metrics(hosts, start, end)
    series = [m.daily(inv, start, end) for m in hosts]
    inv.prefetch_metrics(hosts, start, end)  # already read: no new request
    calls = recording()
    assert calls.count("GetMetricData") == 1 and calls.count("GetMetricStatistics") == 0, calls
    days = [(MIDNIGHT - timedelta(days=d)).date() for d in (3, 2, 1)]
    assert series == [[(d, float(k)) for d in days] if k % 2 == 0 else None for k in range(120)]
    alone = _fresh(seeded.url)
    assert series == [m.daily(alone, start, end) for m in hosts]


def test_aws_inventory_prefetch_batches_500_metrics_a_call(
    seeded: Seeded, hosts: list[Metric], recording: Callable[[], list[str]]
) -> None:
    start, end = daily_window(T0, 3)
    inv = _fresh(seeded.url)
    metrics = _hosts(1001)
    inv.prefetch_metrics(metrics, start, end)
    series = [m.daily(inv, start, end) for m in metrics]
    calls = recording()
    assert calls.count("GetMetricData") == 3 and calls.count("GetMetricStatistics") == 0, calls
    assert series[118] is not None and series[119] is None and set(series[120:]) == {None}


def test_aws_inventory_prefetch_ignores_windows_not_of_whole_days(
    seeded: Seeded, hosts: list[Metric], recording: Callable[[], list[str]]
) -> None:
    start, end = daily_window(T0, 3)
    inv = _fresh(seeded.url)
    inv.prefetch_metrics(hosts[:4], start + timedelta(hours=1), end)
    inv.prefetch_metrics(hosts[:4], end, start)
    assert recording() == []
    inv.prefetch_metrics(hosts[:4], start, end)
    hosts[4].daily(inv, start, end)  # not announced: read on its own
    assert recording() == ["GetMetricData", "GetMetricStatistics"]


def test_aws_rules_read_metrics_in_one_batched_call_each(
    seeded: Seeded, recording: Callable[[], list[str]]
) -> None:
    from config.loader import load_config
    from config.settings import EXAMPLE_CONFIG

    load_rules()
    config = load_config(EXAMPLE_CONFIG)
    now = T0 + timedelta(days=20)  # every seeded resource predates the windows
    for rule_id in ("idle-gpu-instance", "overprovisioned-instance", "idle-inference-endpoint"):
        inv = _fresh(seeded.url)
        inv.instances(), inv.endpoints()  # listed before recording: only the metric reads count
        _recorder(seeded.url, "reset-recording")
        cls = registry.get(rule_id)
        list(cls(cls.Params()).evaluate(RuleContext(config=config, now=now, inventory=inv)))
        assert recording() == ["GetMetricData"], rule_id


def _stubbed(url: str) -> tuple[AwsInventory, Stubber]:
    inv = AwsInventory(AwsConfig(regions=["us-east-1"], endpoint_url=url))
    stubber = Stubber(inv._client("cloudwatch", "us-east-1"))
    stubber.activate()
    return inv, stubber


def _result(qid: str, status: str, *points: tuple[datetime, float]) -> dict[str, Any]:
    return {
        "Id": qid,
        "Label": qid,
        "Timestamps": [t for t, _ in points],
        "Values": [v for _, v in points],
        "StatusCode": status,
    }


def test_aws_inventory_prefetch_follows_next_token(moto_endpoint: str) -> None:
    """moto answers GetMetricData in one page; AWS pages by data points (botocore's Stubber plays AWS)."""
    start, end = daily_window(T0, 3)
    inv, stubber = _stubbed(moto_endpoint)
    a, b = _hosts(2)
    day = [start + timedelta(days=k) for k in range(3)]

    def query(n: int, host: str) -> dict[str, Any]:
        dims = [{"Name": "Host", "Value": host}]
        metric = {"Namespace": "Bench/Prefetch", "MetricName": "Load", "Dimensions": dims}
        return {
            "Id": f"m{n}",
            "MetricStat": {"Metric": metric, "Period": 86400, "Stat": "Average"},
            "ReturnData": True,
        }

    request = {
        "MetricDataQueries": [query(0, "h0000"), query(1, "h0001")],
        "StartTime": start,
        "EndTime": end,
        "ScanBy": "TimestampAscending",
    }
    stubber.add_response(
        "get_metric_data",
        {
            "MetricDataResults": [_result("m0", "PartialData", (day[0], 1.0)), _result("m1", "Complete")],
            "NextToken": "more",
        },
        request,
    )
    stubber.add_response(
        "get_metric_data",
        {"MetricDataResults": [_result("m0", "Complete", (day[1], 2.0), (day[2], 3.0))]},
        {**request, "NextToken": "more"},
    )
    inv.prefetch_metrics([a, b], start, end)
    stubber.assert_no_pending_responses()
    assert a.daily(inv, start, end) == [(d.date(), float(k + 1)) for k, d in enumerate(day)]
    assert b.daily(inv, start, end) is None  # Complete without a data point: no data
    stubber.deactivate()


def test_aws_inventory_prefetch_leaves_incomplete_queries_to_metric_daily(moto_endpoint: str) -> None:
    start, end = daily_window(T0, 3)
    inv, stubber = _stubbed(moto_endpoint)
    metrics = _hosts(4)
    stubber.add_response(
        "get_metric_data",
        {
            "MetricDataResults": [
                _result("m0", "InternalError"),
                _result("m1", "Forbidden"),
                _result("m2", "PartialData", (start, 9.0)),  # and no NextToken
                # m3 missing from the answer
            ]
        },
    )
    inv.prefetch_metrics(metrics, start, end)
    for k in range(4):
        stubber.add_response(
            "get_metric_statistics",
            {"Label": "Load", "Datapoints": [{"Timestamp": start, "Average": float(k)}]},
            {
                "Namespace": "Bench/Prefetch",
                "MetricName": "Load",
                "Dimensions": [{"Name": "Host", "Value": f"h{k:04d}"}],
                "StartTime": start,
                "EndTime": end,
                "Period": 86400,
                "Statistics": ["Average"],
            },
        )
    assert [m.daily(inv, start, end) for m in metrics] == [[(start.date(), float(k))] for k in range(4)]
    stubber.assert_no_pending_responses()


def test_aws_inventory_prefetch_denied_falls_back_to_metric_daily(
    moto_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An identity granted GetMetricStatistics but not GetMetricData still scans (one call per metric)."""
    start, end = daily_window(T0, 3)
    inv, stubber = _stubbed(moto_endpoint)
    metric = _hosts(1)[0]
    stubber.add_client_error("get_metric_data", "AccessDenied", "not authorized", 403)
    with caplog.at_level(logging.WARNING, logger="tools.cloud.aws"):
        inv.prefetch_metrics([metric], start, end)
        inv.prefetch_metrics(_hosts(2), start, end)  # not asked again
    assert "cloudwatch:GetMetricData" in caplog.text and "GetMetricStatistics call at a time" in caplog.text
    stubber.add_response("get_metric_statistics", {"Label": "Load", "Datapoints": []})
    assert metric.daily(inv, start, end) is None
    stubber.assert_no_pending_responses()


def test_aws_inventory_prefetch_errors_are_aws_errors(moto_endpoint: str) -> None:
    start, end = daily_window(T0, 3)
    inv, stubber = _stubbed(moto_endpoint)
    stubber.add_client_error("get_metric_data", "InvalidParameterValue", "bad query", 400)
    with pytest.raises(AwsError, match=r"cloudwatch in us-east-1 \(GetMetricData \(2 metrics\).*bad query"):
        inv.prefetch_metrics(_hosts(2), start, end)


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
