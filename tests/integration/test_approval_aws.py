"""The approval service with AWS actions against a moto server: dry-run makes no changing call (checked on
the server's own request recording), protected resources are refused, and a resource that changed after
the approval is not touched."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import boto3
import pytest

from approvals.actions.aws_clients import AwsClients
from approvals.service import ApprovalService, Refused
from config.loader import load_config
from config.model import AwsConfig, FinOpsConfig
from config.settings import EXAMPLE_CONFIG
from tests.moto_server import moto_endpoint_fixture  # noqa: F401
from tools.findings import Finding, fingerprint
from tools.findings_store import upsert_findings
from tools.store.db import Database

REGION = "us-east-1"
OWNER = "U01MLRSCH1"  # ml-research in the example config
T0 = datetime(2024, 9, 21, tzinfo=UTC)


def _moto(url: str, path: str) -> str:
    request = urllib.request.Request(f"{url}/moto-api/recorder/{path}", method="POST", data=b"")
    if path == "download-recording":
        request = urllib.request.Request(f"{url}/moto-api/recorder/{path}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


@pytest.fixture
def recording(moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The AWS API actions the moto server receives while the test runs (its own recorder)."""
    monkeypatch.chdir(tmp_path)  # the recorder appends to ./moto_recording
    _moto(moto_endpoint, "reset-recording")
    _moto(moto_endpoint, "start-recording")
    yield
    _moto(moto_endpoint, "stop-recording")


def recorded(url: str) -> list[str]:
    """The EC2 query API ``Action`` of every recorded request."""
    import base64

    out = []
    for line in _moto(url, "download-recording").splitlines():
        entry = json.loads(line)
        body = entry.get("body") or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode()
        query = urllib.parse.parse_qs(body) | urllib.parse.parse_qs(urllib.parse.urlsplit(entry["url"]).query)
        out.extend(query.get("Action", []))
        target = entry["headers"].get("X-Amz-Target")  # JSON APIs (SageMaker ...)
        if target:
            out.append(target.rsplit(".", 1)[-1])
    return out


def config_with(extra: str = "", endpoint: str | None = None) -> FinOpsConfig:
    base = load_config(EXAMPLE_CONFIG)
    if extra:
        guard = base.guardrails.model_copy(update=json.loads(extra))
        base = base.model_copy(update={"guardrails": guard})
    return base.model_copy(update={"aws": AwsConfig(regions=[REGION], endpoint_url=endpoint)})


def instance(url: str, **tags: str) -> str:
    ec2 = boto3.client("ec2", endpoint_url=url, region_name=REGION)
    image = ec2.describe_images(Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*"]}])["Images"][0][
        "ImageId"
    ]
    spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
    return str(
        ec2.run_instances(
            ImageId=image, MinCount=1, MaxCount=1, InstanceType="g5.xlarge", TagSpecifications=spec
        )["Instances"][0]["InstanceId"]
    )


def state(url: str, instance_id: str) -> str:
    ec2 = boto3.client("ec2", endpoint_url=url, region_name=REGION)
    return str(
        ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]
    )


def idle_finding(db: Database, cfg: FinOpsConfig, instance_id: str) -> str:
    fp = fingerprint("idle-gpu-instance", instance_id)
    upsert_findings(
        db,
        [
            Finding(
                kind="waste",
                rule_id="idle-gpu-instance",
                fingerprint=fp,
                title=f"Idle GPU instance {instance_id}",
                monthly_impact=Decimal("734.38"),
                detected_at=T0,
                resource=instance_id,
                resource_kind="ec2-instance",
                scope={"team": "ml-research"},
                proposed_action="ec2-stop-instance",
                action_params={"instance_id": instance_id, "region": REGION},
            )
        ],
        cfg,
        T0,
    )
    return fp


def service(db: Database, cfg: FinOpsConfig, url: str) -> ApprovalService:
    return ApprovalService(
        db, cfg, aws=AwsClients(AwsConfig(regions=[REGION], endpoint_url=url), poll_seconds=0.05)
    )


def test_dry_run_makes_no_changing_aws_call(moto_endpoint: str, recording: None, sqlite_db: Database) -> None:
    cfg = config_with('{"dry_run": true}', moto_endpoint)
    instance_id = instance(moto_endpoint, team="ml-research")
    _moto(moto_endpoint, "reset-recording")  # from here on, only what the assistant calls
    svc = service(sqlite_db, cfg, moto_endpoint)
    request_id = svc.propose(idle_finding(sqlite_db, cfg, instance_id)).request_id
    outcome = svc.approve_and_execute(request_id, OWNER)
    assert outcome.status == "dry_run"
    calls = recorded(moto_endpoint)
    assert "DescribeInstances" in calls  # it did look (proposal, and the re-read before "execution")
    assert [c for c in calls if not c.startswith(("Describe", "List", "Get"))] == []
    assert "StopInstances" not in calls and state(moto_endpoint, instance_id) == "running"


def test_without_dry_run_the_same_request_stops_the_instance(
    moto_endpoint: str, recording: None, sqlite_db: Database
) -> None:
    cfg = config_with("", moto_endpoint)
    instance_id = instance(moto_endpoint, team="ml-research")
    svc = service(sqlite_db, cfg, moto_endpoint)
    request_id = svc.propose(idle_finding(sqlite_db, cfg, instance_id)).request_id
    assert svc.approve_and_execute(request_id, OWNER).status == "succeeded"
    assert recorded(moto_endpoint).count("StopInstances") == 1  # the recorder does see changing calls
    assert state(moto_endpoint, instance_id) == "stopped"


def test_protected_resources_are_never_proposed(moto_endpoint: str, sqlite_db: Database) -> None:
    cfg = config_with("", moto_endpoint)
    instance_id = instance(moto_endpoint, team="ml-research", **{"finops:protected": "true"})
    svc = service(sqlite_db, cfg, moto_endpoint)
    with pytest.raises(Refused, match="finops:protected=true"):
        svc.propose(idle_finding(sqlite_db, cfg, instance_id))
    assert state(moto_endpoint, instance_id) == "running"


def test_protection_added_after_the_approval_stops_the_execution(
    moto_endpoint: str, sqlite_db: Database
) -> None:
    cfg = config_with("", moto_endpoint)
    instance_id = instance(moto_endpoint, team="ml-research")
    svc = service(sqlite_db, cfg, moto_endpoint)
    request_id = svc.propose(idle_finding(sqlite_db, cfg, instance_id)).request_id
    svc.approve(request_id, OWNER)
    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name=REGION)
    ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "finops:protected", "Value": "true"}])
    outcome = svc.execute(request_id)
    assert outcome.status == "superseded" and "finops:protected" in outcome.message
    assert outcome.new_request_id is None and "protected" in outcome.message  # no fresh request either
    assert state(moto_endpoint, instance_id) == "running"


def test_an_instance_stopped_by_hand_after_approval_is_not_touched(
    moto_endpoint: str, sqlite_db: Database
) -> None:
    cfg = config_with("", moto_endpoint)
    instance_id = instance(moto_endpoint, team="ml-research")
    svc = service(sqlite_db, cfg, moto_endpoint)
    request_id = svc.propose(idle_finding(sqlite_db, cfg, instance_id)).request_id
    svc.approve(request_id, OWNER)
    boto3.client("ec2", endpoint_url=moto_endpoint, region_name=REGION).stop_instances(
        InstanceIds=[instance_id]
    )
    outcome = svc.execute(request_id)
    assert outcome.status == "superseded" and "stopped" in outcome.message
    assert svc.show(request_id)["action_id"] is None
