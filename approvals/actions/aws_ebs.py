"""EBS: snapshot an unattached volume, then delete it; rollback recreates it from the snapshot.

Everything the action creates carries ``REQUEST_TAG`` = the request id, so a re-run after a crash finds
its own snapshot (or recreated volume) instead of making a second one:

- the snapshot: ``REQUEST_TAG`` and ``finops:source-volume`` = the deleted volume's id, plus the volume's
  own tags (so cost allocation and owners stay visible on the snapshot);
- the recreated volume: the original tags, ``REQUEST_TAG`` and ``finops:restored-from`` = the snapshot id.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

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
    tag_list,
    user_tags,
)
from approvals.actions.base import (
    REQUEST_TAG,
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
from tools.rules.unattached_volume import EBS_USD_PER_GB_MONTH

#: EBS snapshot storage (standard tier), USD per GB-month, us-east-1 list price (2024-09). A snapshot is
#: billed for the blocks in use, so size x this rate is an upper bound of its cost.
SNAPSHOT_USD_PER_GB_MONTH = Decimal("0.05")
SOURCE_VOLUME_TAG = "finops:source-volume"
RESTORED_FROM_TAG = "finops:restored-from"
#: AWS allows 50 user tags per resource; the action adds up to 2 of its own
MAX_TAGS = 50
#: longest wait for a snapshot to complete (the first snapshot of a large volume can take hours)
SNAPSHOT_SECONDS = 4 * 3600
VOLUME_SECONDS = 15 * 60
#: volume types whose IOPS (and, for gp3, throughput) are set when the volume is created
PROVISIONED_IOPS_TYPES = frozenset({"io1", "io2", "gp3"})


class VolumeParams(ActionParams):
    """What the unattached-ebs-volume rule proposes: ``{"volume_id", "region"}``."""

    volume_id: str = Field(pattern=r"^vol-[0-9a-f]{8,17}$", examples=["vol-0abc1234def567890"])
    region: str = Field(min_length=1, examples=["us-east-1"])


def observe_volume(aws: AwsClients, region: str, volume_id: str) -> Observed:
    """A volume's state, tags and the attributes needed to recreate it (no create time)."""
    with aws.calling("ec2", region, f"DescribeVolumes {volume_id}"):
        try:
            response = aws.client("ec2", region).describe_volumes(VolumeIds=[volume_id])
        except botocore.exceptions.ClientError as exc:
            if is_client_error(exc, "InvalidVolume.NotFound"):
                return Observed(exists=False)
            raise
    volumes = response.get("Volumes") or []
    if not volumes:
        return Observed(exists=False)
    return _volume_observed(volumes[0])


def _volume_observed(raw: Any) -> Observed:
    return Observed(
        exists=True,
        state=str(raw.get("State", "")),
        attributes={
            "availability_zone": str(raw.get("AvailabilityZone", "")),
            "volume_type": str(raw.get("VolumeType", "")),
            "size_gb": int(raw.get("Size", 0)),
            "iops": _opt_int(raw.get("Iops")),
            "throughput": _opt_int(raw.get("Throughput")),
            "encrypted": bool(raw.get("Encrypted", False)),
            "kms_key_id": raw.get("KmsKeyId"),
            "multi_attach": bool(raw.get("MultiAttachEnabled", False)),
            "attachments": sorted(str(a.get("InstanceId")) for a in raw.get("Attachments") or []),
            "source_snapshot_id": raw.get("SnapshotId") or None,
        },
        tags=tag_dict(raw.get("Tags")),
    )


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


@register("ebs-snapshot-delete-volume")
class EbsSnapshotDeleteVolume(Action):
    """Snapshot an unattached EBS volume, wait until the snapshot is completed, then delete the volume.
    The snapshot is tagged with the request id and the volume's tags. Verify: the volume is gone and the
    snapshot completed. Rollback: a new volume from the snapshot, in the same availability zone with the
    original type, size, IOPS/throughput, encryption and tags (a new volume id)."""

    title = "Snapshot and delete EBS volume"
    Params = VolumeParams
    resource_kind = "ebs-volume"
    permissions = (
        "ec2:DescribeVolumes",
        "ec2:DescribeSnapshots",
        "ec2:CreateSnapshot",
        "ec2:CreateTags",
        "ec2:DeleteVolume",
        "ec2:CreateVolume",
    )
    start_states = frozenset({"available"})

    def target(self, params: VolumeParams) -> Target:
        return Target(self.resource_kind, params.volume_id, params.region)

    def observe(self, ctx: ActionContext, params: VolumeParams) -> Observed:
        return observe_volume(clients_of(ctx.aws, self.name), params.region, params.volume_id)

    def plan(self, params: VolumeParams, observed: Observed, pctx: PlanContext) -> Plan:
        self.check_start_state(observed)
        attrs = observed.attributes
        if attrs.get("attachments"):
            raise ActionRefused(f"{self.name}: {params.volume_id} is attached to {attrs['attachments']}")
        size, vtype, az = int(attrs["size_gb"]), str(attrs["volume_type"]), str(attrs["availability_zone"])
        rate = EBS_USD_PER_GB_MONTH.get(vtype)
        savings = (
            money(max(Decimal(0), (rate - SNAPSHOT_USD_PER_GB_MONTH) * size)) if rate else Decimal("0.00")
        )
        snapshot_cost = money(SNAPSHOT_USD_PER_GB_MONTH * size)
        return Plan(
            action=self.name,
            params=params.model_dump(mode="json"),
            target=self.target(params),
            summary=(
                f"Snapshot then delete unattached EBS volume {params.volume_id} ({size} GiB {vtype} in {az}"
                f"{owner_words(observed.tags, pctx.config)})" + ("" if rate else " (price unknown)")
            ),
            changes=(
                Change(f"new snapshot of {params.volume_id}", "state", None, "completed"),
                Change(params.volume_id, "state", observed.state, "deleted"),
            ),
            blast_radius=(
                f"1 volume attached to nothing is deleted, only after a snapshot of it has completed; no "
                f"instance is affected. The snapshot stays (at most about ${snapshot_cost}/month, "
                f"${SNAPSHOT_USD_PER_GB_MONTH}/GB-month for the blocks in use) until someone deletes it. "
                "Rollback recreates the volume from it in the same zone with the same type, size and tags, "
                "under a new volume id; its data loads lazily, so first reads are slower."
            ),
            monthly_savings=savings,
            currency="USD",
            observed=observed,
            reversible=True,
            environment=scope_of(observed.tags, pctx.config).get("environment"),
        )

    def capture(self, ctx: ActionContext, params: VolumeParams, observed: Observed) -> Json:
        attrs = observed.attributes
        return {
            "availability_zone": attrs.get("availability_zone"),
            "volume_type": attrs.get("volume_type"),
            "size_gb": attrs.get("size_gb"),
            "iops": attrs.get("iops"),
            "throughput": attrs.get("throughput"),
            "encrypted": attrs.get("encrypted"),
            "kms_key_id": attrs.get("kms_key_id"),
            "tags": user_tags(observed.tags),
        }

    # --- apply -------------------------------------------------------------------------------------

    def apply(self, ctx: ActionContext, params: VolumeParams, captured: Json) -> Json:
        aws = clients_of(ctx.aws, self.name)
        region, volume_id = params.region, params.volume_id
        snapshot = self._own_snapshot(aws, region, volume_id, ctx.request_id)
        if snapshot is None:
            observed = observe_volume(aws, region, volume_id)
            if not observed.exists:
                raise ActionRefused(
                    f"{self.name}: volume {volume_id} no longer exists and request {ctx.request_id} made no "
                    "snapshot of it: nothing was done (someone else deleted it)"
                )
            snapshot = self._create_snapshot(aws, region, volume_id, ctx.request_id, captured)
        snapshot_id = str(snapshot["SnapshotId"])
        if snapshot.get("State") == "error":
            raise ActionError(
                f"{self.name}: snapshot {snapshot_id} of {volume_id} failed (state error); the volume is kept. "
                f"Delete the failed snapshot and run the step again"
            )
        aws.wait(
            "ec2",
            region,
            "snapshot_completed",
            f"DescribeSnapshots {snapshot_id} (waiting for completed)",
            max_seconds=SNAPSHOT_SECONDS,
            SnapshotIds=[snapshot_id],
        )
        with aws.calling("ec2", region, f"DeleteVolume {volume_id}"):
            try:
                aws.client("ec2", region).delete_volume(VolumeId=volume_id)
            except botocore.exceptions.ClientError as exc:
                if not is_client_error(exc, "InvalidVolume.NotFound"):
                    raise  # NotFound: deleted by an earlier run of this step
        return {"snapshot_id": snapshot_id}

    def _own_snapshot(self, aws: AwsClients, region: str, volume_id: str, request_id: str) -> Any:
        """The snapshot an earlier run of this request made of the volume, or None."""
        with aws.calling("ec2", region, f"DescribeSnapshots tag:{REQUEST_TAG}={request_id}"):
            found = aws.client("ec2", region).describe_snapshots(
                OwnerIds=["self"],
                Filters=[
                    {"Name": f"tag:{REQUEST_TAG}", "Values": [request_id]},
                    {"Name": f"tag:{SOURCE_VOLUME_TAG}", "Values": [volume_id]},
                ],
            )
        snapshots = [s for s in found.get("Snapshots") or [] if s.get("State") != "error"]
        snapshots.sort(key=lambda s: (s.get("State") != "completed", str(s["SnapshotId"])))
        return snapshots[0] if snapshots else None

    def _create_snapshot(
        self, aws: AwsClients, region: str, volume_id: str, request_id: str, captured: Json
    ) -> Any:
        own = {REQUEST_TAG: request_id, SOURCE_VOLUME_TAG: volume_id}
        tags = _with_own_tags(dict(captured.get("tags") or {}), own)
        with aws.calling("ec2", region, f"CreateSnapshot {volume_id}"):
            return aws.client("ec2", region).create_snapshot(
                VolumeId=volume_id,
                Description=f"finops: {volume_id} before deletion (request {request_id})",
                TagSpecifications=[{"ResourceType": "snapshot", "Tags": tag_list(tags)}],
            )

    def verify(self, ctx: ActionContext, params: VolumeParams, captured: Json, applied: Json) -> Verification:
        aws = clients_of(ctx.aws, self.name)
        observed = observe_volume(aws, params.region, params.volume_id)
        gone = not observed.exists or observed.state in ("deleting", "deleted")
        snapshot_id = self._snapshot_id(aws, params, ctx.request_id, applied)
        state = self._snapshot_state(aws, params.region, snapshot_id) if snapshot_id else None
        detail = (
            f"volume {params.volume_id} is {'gone' if gone else observed.state}; "
            f"snapshot {snapshot_id or '(none)'} is {state or 'missing'}"
        )
        return Verification(gone and state == "completed", observed, detail)

    def _snapshot_id(
        self, aws: AwsClients, params: VolumeParams, request_id: str, applied: Json
    ) -> str | None:
        """The snapshot apply made: from its result, else (apply interrupted) found by the request tag."""
        if applied.get("snapshot_id"):
            return str(applied["snapshot_id"])
        own = self._own_snapshot(aws, params.region, params.volume_id, request_id)
        return None if own is None else str(own["SnapshotId"])

    def _snapshot_state(self, aws: AwsClients, region: str, snapshot_id: str) -> str | None:
        with aws.calling("ec2", region, f"DescribeSnapshots {snapshot_id}"):
            try:
                found = aws.client("ec2", region).describe_snapshots(SnapshotIds=[snapshot_id])
            except botocore.exceptions.ClientError as exc:
                if is_client_error(exc, "InvalidSnapshot.NotFound"):
                    return None
                raise
        snapshots = found.get("Snapshots") or []
        return str(snapshots[0].get("State")) if snapshots else None

    # --- rollback ----------------------------------------------------------------------------------

    def rollback(self, ctx: ActionContext, params: VolumeParams, captured: Json, applied: Json) -> Json:
        aws = clients_of(ctx.aws, self.name)
        region = params.region
        original = observe_volume(aws, region, params.volume_id)
        if original.exists and original.state not in ("deleting", "deleted"):
            # apply stopped before deleting it: the volume is untouched (a snapshot of it may remain)
            return {"volume_id": params.volume_id, "recreated": False}
        snapshot_id = self._snapshot_id(aws, params, ctx.request_id, applied)
        if snapshot_id is None:
            raise ActionError(
                f"{self.name}: cannot recreate {params.volume_id}: it is gone and request {ctx.request_id} "
                "has no snapshot of it"
            )
        restored = self._restored_volume(aws, region, snapshot_id, ctx.request_id)
        if restored is None:
            if self._snapshot_state(aws, region, snapshot_id) != "completed":
                raise ActionError(
                    f"{self.name}: cannot recreate {params.volume_id}: snapshot {snapshot_id} is missing or "
                    "not completed"
                )
            restored = self._create_volume(aws, region, snapshot_id, ctx.request_id, captured)
        volume_id = str(restored["VolumeId"])
        aws.wait(
            "ec2",
            region,
            "volume_available",
            f"DescribeVolumes {volume_id} (waiting for available)",
            max_seconds=VOLUME_SECONDS,
            VolumeIds=[volume_id],
        )
        return {"volume_id": volume_id, "snapshot_id": snapshot_id, "recreated": True}

    def _restored_volume(self, aws: AwsClients, region: str, snapshot_id: str, request_id: str) -> Any:
        """The volume an earlier rollback of this request recreated from the snapshot, or None."""
        with aws.calling("ec2", region, f"DescribeVolumes tag:{REQUEST_TAG}={request_id}"):
            found = aws.client("ec2", region).describe_volumes(
                Filters=[
                    {"Name": f"tag:{REQUEST_TAG}", "Values": [request_id]},
                    {"Name": f"tag:{RESTORED_FROM_TAG}", "Values": [snapshot_id]},
                ]
            )
        volumes = [
            v for v in found.get("Volumes") or [] if v.get("State") not in ("deleting", "deleted", "error")
        ]
        volumes.sort(key=lambda v: str(v["VolumeId"]))
        return volumes[0] if volumes else None

    def _create_volume(
        self, aws: AwsClients, region: str, snapshot_id: str, request_id: str, captured: Json
    ) -> Any:
        vtype = str(captured["volume_type"])
        tags = _with_own_tags(
            dict(captured.get("tags") or {}), {REQUEST_TAG: request_id, RESTORED_FROM_TAG: snapshot_id}
        )
        kwargs: dict[str, Any] = {
            "AvailabilityZone": captured["availability_zone"],
            "SnapshotId": snapshot_id,
            "VolumeType": vtype,
            "Size": int(captured["size_gb"]),
            "TagSpecifications": [{"ResourceType": "volume", "Tags": tag_list(tags)}],
        }
        if vtype in PROVISIONED_IOPS_TYPES and captured.get("iops"):
            kwargs["Iops"] = int(captured["iops"])
        if vtype == "gp3" and captured.get("throughput"):
            kwargs["Throughput"] = int(captured["throughput"])
        if captured.get("encrypted"):
            kwargs["Encrypted"] = True
            if captured.get("kms_key_id"):
                kwargs["KmsKeyId"] = str(captured["kms_key_id"])
        with aws.calling("ec2", region, f"CreateVolume from {snapshot_id}"):
            return aws.client("ec2", region).create_volume(**kwargs)

    def verify_rollback(
        self, ctx: ActionContext, params: VolumeParams, captured: Json, applied: Json
    ) -> Verification:
        aws = clients_of(ctx.aws, self.name)
        original = observe_volume(aws, params.region, params.volume_id)
        if original.exists and original.state not in ("deleting", "deleted"):
            return Verification(
                original.state == "available", original, f"volume {params.volume_id} was not deleted"
            )
        snapshot_id = self._snapshot_id(aws, params, ctx.request_id, applied)
        raw = self._restored_volume(aws, params.region, snapshot_id, ctx.request_id) if snapshot_id else None
        if raw is None:
            return Verification(
                False, Observed(exists=False), f"no volume recreated from {snapshot_id or 'a snapshot'}"
            )
        observed = _volume_observed(raw)
        attrs = observed.attributes
        expected = {k: captured.get(k) for k in ("availability_zone", "volume_type", "size_gb")}
        problems = [f"{k} is {attrs.get(k)!r}, not {v!r}" for k, v in expected.items() if attrs.get(k) != v]
        if observed.state != "available":
            problems.append(f"state is {observed.state!r}, not 'available'")
        missing = {k: v for k, v in dict(captured.get("tags") or {}).items() if observed.tags.get(k) != v}
        if missing:
            problems.append(f"tags differ: {sorted(missing)}")
        detail = f"volume {raw['VolumeId']} recreated from {snapshot_id}" + (
            ": " + "; ".join(problems) if problems else " with the original zone, type, size and tags"
        )
        return Verification(not problems, observed, detail)


def _with_own_tags(tags: dict[str, str], own: dict[str, str]) -> dict[str, str]:
    """The resource's user tags plus the action's own, within AWS's 50-tag limit (own tags win)."""
    kept = {k: v for k, v in sorted(user_tags(tags).items()) if k not in own}
    room = MAX_TAGS - len(own)
    return {**dict(list(kept.items())[:room]), **own}
