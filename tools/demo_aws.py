"""A local AWS for `finops demo`: a moto server on 127.0.0.1 seeded with the demo organisation's EC2
instances, SageMaker endpoints, EBS volumes, a snapshot and their CloudWatch metrics, so the six AWS waste
rules run through the real ``AwsInventory`` (real boto3 over HTTP), without an AWS account.

moto stamps launch and creation times with the real clock, so the rules judge this world ``DAYS_AFTER``
days later (``DemoAws.now``), with the CloudWatch history seeded for the days before that. The
old-ebs-snapshots rule's minimum age (180 days by default) is lowered to ``SNAPSHOT_MIN_AGE_DAYS`` through
a ``rules:`` override in a copy of the configuration (``DemoAws.scan_config``); no time is faked.

Credentials are fake and exist only inside the context: the seeding clients get them explicitly, and
``AwsInventory`` (which reads the standard AWS credential chain) finds them in environment variables that are
set on entry and restored on exit. moto's random ids are seeded, so the same world gets the same ids.
moto keeps its resources per process, not per server: the context empties them on entry and on exit, so
nothing else in the process should rely on moto state while it runs (the tests reseed per module).
"""

from __future__ import annotations

import logging
import math
import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from config.model import AwsConfig, FinOpsConfig

#: the AWS waste rules the local AWS demonstrates
AWS_RULES = (
    "idle-gpu-instance",
    "idle-inference-endpoint",
    "overprovisioned-instance",
    "offhours-dev-resources",
    "unattached-ebs-volume",
    "old-ebs-snapshots",
)
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
#: the rules judge the world this many days after it was created
DAYS_AFTER = 20
#: days of CloudWatch history seeded before ``now`` (>= the longest rule window, overprovisioned's 14)
HISTORY_DAYS = 18
#: old-ebs-snapshots' ``days`` in the demo (the world is only DAYS_AFTER days old)
SNAPSHOT_MIN_AGE_DAYS = 14
MOTO_SEED = 20240921
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sagemaker-execution"
FAKE_CREDENTIALS = {
    "aws_access_key_id": "demo-access-key",
    "aws_secret_access_key": "demo-secret-key",
    "aws_session_token": "demo-session-token",
}
_ENV = {
    "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["aws_access_key_id"],
    "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["aws_secret_access_key"],
    "AWS_SESSION_TOKEN": FAKE_CREDENTIALS["aws_session_token"],
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",  # never wait for an instance-metadata service
    # the user's ~/.aws files and profile must not leak into the local AWS (nor its fake keys into them)
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
_ENV_REMOVED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION")
_NO_PROXY = ("NO_PROXY", "no_proxy")  # boto3 honours HTTP(S)_PROXY: keep 127.0.0.1 direct
MOTO_MISSING = "the AWS part of the demo needs moto: pip install 'moto[server]' (or pip install -e '.[dev]')"


@dataclass(frozen=True)
class DemoResource:
    """One seeded resource and what the rules are expected to say about it."""

    key: str  # stable name used by the demo and its tests
    id: str  # what findings name as their resource: instance / volume / snapshot id, endpoint ARN
    kind: str  # ec2-instance, sagemaker-endpoint, ebs-volume, ebs-snapshot
    name: str
    team: str
    description: str
    flagged_by: tuple[str, ...]  # the rules that should report it; empty: none may


@dataclass(frozen=True)
class DemoAws:
    url: str  # the moto server
    aws: AwsConfig  # regions + endpoint_url, for AwsInventory
    now: datetime  # when the rules judge the world (DAYS_AFTER days after it was created)
    resources: tuple[DemoResource, ...]

    def resource(self, key: str) -> DemoResource:
        return next(r for r in self.resources if r.key == key)

    def scan_config(self, config: FinOpsConfig) -> FinOpsConfig:
        """A copy of ``config`` whose old-ebs-snapshots rule reports snapshots older than
        SNAPSHOT_MIN_AGE_DAYS days (other rule settings are kept)."""
        rules = dict(config.rules)
        rules["old-ebs-snapshots"] = {**rules.get("old-ebs-snapshots", {}), "days": SNAPSHOT_MIN_AGE_DAYS}
        return config.model_copy(update={"rules": rules})


def moto_missing() -> str | None:
    """None when moto's server can be started here, else a one-line explanation."""
    try:
        from moto.server import ThreadedMotoServer  # noqa: F401
    except ImportError:
        return MOTO_MISSING
    return None


@contextmanager
def fake_aws_env() -> Iterator[None]:
    """The demo's fake credentials in the environment (no profile, no ~/.aws files); restored on exit."""
    saved = {k: os.environ.get(k) for k in (*_ENV, *_ENV_REMOVED, *_NO_PROXY)}
    try:
        for key in _ENV_REMOVED:
            os.environ.pop(key, None)
        os.environ.update(_ENV)
        for key in _NO_PROXY:
            os.environ[key] = ",".join(filter(None, [saved[key], "127.0.0.1"]))
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _post(url: str) -> None:
    request = urllib.request.Request(url, method="POST", data=b"")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1: never via a proxy
    with opener.open(request, timeout=10) as response:
        response.read()


@contextmanager
def demo_aws() -> Iterator[DemoAws]:
    """Start a moto server on 127.0.0.1 (a free port), seed the demo organisation's AWS resources and
    yield where it is; stop it (and restore the environment) on exit. Raises ImportError without moto."""
    from moto.server import ThreadedMotoServer

    requests_log = logging.getLogger("werkzeug")  # moto's server logs every request at INFO
    level = requests_log.level
    requests_log.setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    url = ""
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        # moto's backends are per process: start from an empty account, with reproducible ids
        _post(f"{url}/moto-api/reset")
        _post(f"{url}/moto-api/seed?a={MOTO_SEED}")
        with fake_aws_env():
            t0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            now = t0 + timedelta(days=DAYS_AFTER)
            resources = _seed(url, now)
            yield DemoAws(url, AwsConfig(regions=[REGION], endpoint_url=url), now, tuple(resources))
    finally:
        if url:  # leave no demo resources in this process's moto backends
            with suppress(OSError):
                _post(f"{url}/moto-api/reset")
        server.stop()
        requests_log.setLevel(level)


# --- the demo organisation's AWS ------------------------------------------------------------------


def _tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _wave(base: float, spread: float) -> list[float]:
    """HISTORY_DAYS deterministic daily values around ``base`` (never below 0.1)."""
    return [max(0.1, round(base + spread * math.sin(1.7 * k), 2)) for k in range(HISTORY_DAYS)]


def _daily(now: datetime, metric: str, dims: dict[str, str], values: list[float]) -> list[dict[str, Any]]:
    """One data point at noon on each of the len(values) days before ``now``'s day (values[0]: yesterday)."""
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


def _seed(url: str, now: datetime) -> list[DemoResource]:
    import boto3

    session = boto3.session.Session(region_name=REGION, **FAKE_CREDENTIALS)
    ec2 = session.client("ec2", endpoint_url=url)
    cw = session.client("cloudwatch", endpoint_url=url)
    sm = session.client("sagemaker", endpoint_url=url)
    image = ec2.describe_images(Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*"]}])["Images"][0][
        "ImageId"
    ]
    out: list[DemoResource] = []

    def instance(
        key: str,
        itype: str,
        tags: dict[str, str],
        description: str,
        flagged_by: tuple[str, ...],
        cpu: list[float],
        gpu: list[float] | None = None,
    ) -> None:
        spec = [{"ResourceType": "instance", "Tags": _tags(tags)}]
        iid = ec2.run_instances(
            ImageId=image, MinCount=1, MaxCount=1, InstanceType=itype, TagSpecifications=spec
        )["Instances"][0]["InstanceId"]
        dims = {"InstanceId": iid}
        cw.put_metric_data(Namespace="AWS/EC2", MetricData=_daily(now, "CPUUtilization", dims, cpu))
        if gpu is not None:  # the CloudWatch agent's NVIDIA GPU metric
            cw.put_metric_data(
                Namespace="CWAgent", MetricData=_daily(now, "nvidia_smi_utilization_gpu", dims, gpu)
            )
        out.append(
            DemoResource(
                key, iid, "ec2-instance", tags["Name"], tags["team"], f"{itype}: {description}", flagged_by
            )
        )

    instance(
        "idle_gpu_notebook",
        "g5.xlarge",
        {"Name": "research-notebook-7", "team": "ml-research", "project": "experiments"},
        "notebook left running, GPU ~1 %, CPU ~2 %",
        ("idle-gpu-instance",),
        cpu=_wave(2.0, 0.6),
        gpu=_wave(1.0, 0.4),
    )
    instance(
        "busy_training",
        "p4d.24xlarge",
        {
            "Name": "p4d-pretrain-b-1",
            "team": "ml-research",
            "project": "llm-pretrain",
            "environment": "dev",
            "workload": "training",
            "finops:schedule": "always-on",  # a declared schedule: the off-hours rule leaves it alone
        },
        "training run, GPU ~90 %, CPU ~60 %, schedule tag always-on",
        (),
        cpu=_wave(60.0, 8.0),
        gpu=_wave(90.0, 5.0),
    )
    instance(
        "oversized_worker",
        "c6i.8xlarge",
        {
            "Name": "search-reindex-worker",
            "team": "search",
            "project": "semantic-search",
            "environment": "prod",
        },
        "CPU ~4 % on its busiest days",
        ("overprovisioned-instance",),
        cpu=_wave(3.5, 1.0),
    )
    instance(
        "dev_gpu_24x7",
        "g4dn.xlarge",
        {
            "Name": "support-bot-finetune-dev",
            "team": "support",
            "project": "support-bot",
            "environment": "dev",
        },
        "dev GPU box in use on workdays, running 24/7",
        ("offhours-dev-resources",),
        cpu=_wave(30.0, 10.0),
        gpu=_wave(40.0, 15.0),
    )

    def endpoint(
        key: str, name: str, itype: str, tags: dict[str, str], description: str, invocations: float
    ) -> None:
        sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": f"{name}:latest"})
        variant = {
            "VariantName": "AllTraffic",
            "ModelName": name,
            "InitialInstanceCount": 1,
            "InstanceType": itype,
        }
        sm.create_endpoint_config(EndpointConfigName=f"{name}-config", ProductionVariants=[variant])
        arn = sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config", Tags=_tags(tags))[
            "EndpointArn"
        ]
        if invocations:  # SageMaker publishes no Invocations data point for a period without any
            dims = {"EndpointName": name, "VariantName": "AllTraffic"}
            values = [float(round(v)) for v in _wave(invocations, invocations / 4)]
            cw.put_metric_data(Namespace="AWS/SageMaker", MetricData=_daily(now, "Invocations", dims, values))
        flagged = () if invocations else ("idle-inference-endpoint",)
        out.append(
            DemoResource(
                key, arn, "sagemaker-endpoint", name, tags["team"], f"{itype}: {description}", flagged
            )
        )

    endpoint(
        "idle_endpoint",
        "churn-model-v2",
        "ml.g4dn.xlarge",
        {"team": "ml-research", "project": "churn-model", "environment": "prod", "workload": "inference"},
        "no invocations",
        0,
    )
    endpoint(
        "busy_endpoint",
        "ad-copy-ranker",
        "ml.m5.large",
        {"team": "growth", "project": "marketing-gen", "environment": "prod", "workload": "inference"},
        "~40,000 invocations a day",
        40_000,
    )

    def volume(key: str, size: int, vtype: str, tags: dict[str, str], description: str) -> str:
        spec = [{"ResourceType": "volume", "Tags": _tags(tags)}]
        vid = str(
            ec2.create_volume(
                AvailabilityZone=f"{REGION}a", Size=size, VolumeType=vtype, TagSpecifications=spec
            )["VolumeId"]
        )
        out.append(
            DemoResource(
                key,
                vid,
                "ebs-volume",
                tags["Name"],
                tags["team"],
                f"{size} GB {vtype}: {description}",
                ("unattached-ebs-volume",),
            )
        )
        return vid

    volume(
        "unattached_data",
        500,
        "gp3",
        {"Name": "spark-scratch-old", "team": "data", "project": "data-lake", "environment": "dev"},
        "attached to nothing since its cluster was deleted",
    )
    volume(
        "unattached_platform",
        200,
        "gp2",
        {"Name": "ci-cache-2023", "team": "platform", "project": "ci", "environment": "dev"},
        "a CI cache nobody mounts",
    )
    snap_tags = {"Name": "search-index-2023-backup", "team": "search", "project": "semantic-search"}
    source = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1000, VolumeType="gp2")["VolumeId"]
    snapshot = ec2.create_snapshot(
        VolumeId=source,
        Description="pre-migration backup of search-index-2023",
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": _tags(snap_tags)}],
    )["SnapshotId"]
    ec2.delete_volume(VolumeId=source)
    out.append(
        DemoResource(
            "old_snapshot",
            str(snapshot),
            "ebs-snapshot",
            snap_tags["Name"],
            "search",
            "1000 GB: backup of a volume deleted since",
            ("old-ebs-snapshots",),
        )
    )
    return out
