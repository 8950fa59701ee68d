"""The cloud inventory interface: the resources waste rules inspect, and their daily metrics.

Pure types and small pure helpers; no cloud SDK. ``tools.cloud.aws.AwsInventory`` implements ``Inventory``
with boto3. Rules receive an ``Inventory`` in ``RuleContext.inventory`` (``None`` when no cloud access is
configured) and never talk to a cloud API themselves.

Metric semantics: ``metric_daily`` returns one value per UTC day that has data, or ``None`` when the metric
has no data point at all in the window. ``None`` means "no data", which is *not* the same as "idle": a rule
that needs evidence of idleness reports nothing when the evidence is missing. (The one exception is
documented where it is made: SageMaker publishes no ``Invocations`` data point for a period without
invocations, so there "no data" for an endpoint older than the window means zero invocations.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, localcontext
from typing import Any, Literal, Protocol

from config.model import DIMENSIONS, Taxonomy

#: hours in a month, as AWS prices monthly figures (365 * 24 / 12)
HOURS_PER_MONTH = Decimal(730)

#: A daily metric series: (UTC day, value), oldest first.
DailySeries = list[tuple[date, float]]

Statistic = Literal["Average", "Sum", "Maximum", "Minimum", "SampleCount"]
STATISTICS: tuple[str, ...] = ("Average", "Sum", "Maximum", "Minimum", "SampleCount")

# GPU / ML accelerator families: g* (NVIDIA/AMD graphics: g4dn, g5, g6, gr6 ...), p* (p3, p4d, p5 ...),
# inf* (Inferentia), trn* (Trainium). SageMaker types carry an "ml." prefix.
_GPU_FAMILY = re.compile(r"^(g|gr|p|inf|trn)\d")


def instance_family(instance_type: str) -> str:
    """``g5`` for ``g5.xlarge`` and ``ml.g5.xlarge``."""
    name = instance_type.removeprefix("ml.")
    return name.split(".", 1)[0]


def instance_size(instance_type: str) -> str:
    """``xlarge`` for ``g5.xlarge`` and ``ml.g5.xlarge``; empty if the type has no size part."""
    name = instance_type.removeprefix("ml.")
    return name.split(".", 1)[1] if "." in name else ""


def is_gpu_instance_type(instance_type: str) -> bool:
    return bool(_GPU_FAMILY.match(instance_family(instance_type)))


@dataclass(frozen=True)
class Instance:
    """An EC2 instance. ``launch_time`` is reset by every start, so a running instance has been running
    continuously since then."""

    id: str
    type: str
    state: str  # pending | running | stopping | stopped | shutting-down | terminated
    launch_time: datetime
    region: str
    account: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    gpu: bool = False
    hourly_price: Decimal | None = None  # on-demand list price; None: unknown


@dataclass(frozen=True)
class Volume:
    """An EBS volume. ``state`` ``available`` means unattached."""

    id: str
    size_gb: int
    type: str  # gp2 | gp3 | io1 | io2 | st1 | sc1 | standard
    state: str  # creating | available | in-use | deleting | deleted | error
    attachments: int
    create_time: datetime
    region: str
    az: str
    account: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    """An EBS snapshot owned by the account. ``size_gb`` is the source volume's size (an upper bound of
    the billed, incremental storage)."""

    id: str
    volume_id: str | None
    size_gb: int
    start_time: datetime
    region: str
    account: str | None = None
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Endpoint:
    """A SageMaker real-time inference endpoint. ``instance_type`` is that of the first production variant
    (None for serverless endpoints); ``instance_count`` counts the instances of every variant."""

    name: str
    arn: str
    status: str  # Creating | InService | Updating | Failed | ...
    config_name: str | None
    instance_type: str | None
    instance_count: int
    creation_time: datetime
    region: str
    account: str | None = None
    variants: tuple[str, ...] = ("AllTraffic",)
    tags: Mapping[str, str] = field(default_factory=dict)
    hourly_price: Decimal | None = None  # all instances of the endpoint; None: unknown

    @property
    def gpu(self) -> bool:
        return self.instance_type is not None and is_gpu_instance_type(self.instance_type)


class Inventory(Protocol):
    """Read-only view of a cloud account's resources and metrics (one scan = one snapshot of it)."""

    def account_id(self) -> str: ...

    def instances(self) -> list[Instance]: ...

    def volumes(self) -> list[Volume]: ...

    def snapshots(self) -> list[Snapshot]: ...

    def endpoints(self) -> list[Endpoint]: ...

    def metric_daily(
        self,
        namespace: str,
        metric_name: str,
        dimensions: dict[str, str],
        start: datetime,
        end: datetime,
        stat: str = "Average",
        *,
        region: str | None = None,
    ) -> DailySeries | None:
        """One ``stat`` value per UTC day in [start, end), oldest first; None when there is no data point
        at all ("no data", never to be read as idle). ``region`` defaults to the first configured one."""
        ...

    def prefetch_metrics(self, metrics: Sequence[Metric], start: datetime, end: datetime) -> None:
        """Optional speed-up: the ``metrics`` a rule is about to read with ``metric_daily`` over [start, end),
        announced before its loop so an implementation can fetch them in a few batched requests instead of
        one call each. Implementations may ignore it (a no-op is correct); ``metric_daily`` must return
        exactly the same values with or without it (None for a metric without data, as always), and a
        metric announced here but never read changes nothing a rule sees."""
        ...

    def instance_price(self, instance_type: str) -> Decimal | None:
        """On-demand $/hour of an EC2 (``m5.large``) or SageMaker (``ml.g5.xlarge``) type; None: unknown."""
        ...


@dataclass(frozen=True)
class Metric:
    """One metric time series: where to find it, and how to put it in a finding's evidence."""

    namespace: str
    name: str
    dimensions: Mapping[str, str]
    stat: str = "Average"
    region: str | None = None

    @classmethod
    def ec2_cpu(cls, instance: Instance) -> Metric:
        return cls("AWS/EC2", "CPUUtilization", {"InstanceId": instance.id}, region=instance.region)

    @classmethod
    def ec2_gpu(cls, instance: Instance) -> Metric:
        """GPU utilisation published by the CloudWatch agent's nvidia_smi plugin, aggregated per instance
        (agent setting ``aggregation_dimensions: [["InstanceId"]]``)."""
        return cls(
            "CWAgent", "nvidia_smi_utilization_gpu", {"InstanceId": instance.id}, region=instance.region
        )

    @classmethod
    def sagemaker_invocations(cls, endpoint: Endpoint, variant: str) -> Metric:
        return cls(
            "AWS/SageMaker",
            "Invocations",
            {"EndpointName": endpoint.name, "VariantName": variant},
            stat="Sum",
            region=endpoint.region,
        )

    def daily(self, inventory: Inventory, start: datetime, end: datetime) -> DailySeries | None:
        return inventory.metric_daily(
            self.namespace, self.name, dict(self.dimensions), start, end, self.stat, region=self.region
        )

    def evidence(self, series: DailySeries | None) -> dict[str, Any]:
        """JSON-serialisable: the metric's identity and the daily values used (None: no data)."""
        return {
            "namespace": self.namespace,
            "metric": self.name,
            "dimensions": dict(self.dimensions),
            "stat": self.stat,
            "daily": None if series is None else [[d.isoformat(), round(v, 4)] for d, v in series],
        }


def daily_window(now: datetime, days: int) -> tuple[datetime, datetime]:
    """The ``days`` whole UTC days before ``now``'s day: [midnight - days, midnight of today)."""
    end = datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)
    return end - timedelta(days=days), end


# --- helpers shared by the cloud waste rules -----------------------------------------------------


def scope_from_tags(tags: Mapping[str, str], taxonomy: Taxonomy) -> dict[str, str]:
    """Canonical dimensions found in a resource's tags (first configured key wins, value aliases applied)."""
    scope: dict[str, str] = {}
    for dimension in DIMENSIONS:
        for key in taxonomy.dimensions.get(dimension, []):
            value = (tags.get(key) or "").strip()
            if value:
                scope[dimension] = canonical_value(dimension, value, taxonomy)
                break
    return scope


def canonical_value(dimension: str, value: str, taxonomy: Taxonomy) -> str:
    lowered = value.lower()
    for canonical, aliases in taxonomy.values.get(dimension, {}).items():
        if lowered == canonical.lower() or lowered in (a.lower() for a in aliases):
            return canonical
    return value


def monthly_from_hourly(hourly: Decimal | None) -> Decimal | None:
    return None if hourly is None else (hourly * HOURS_PER_MONTH).quantize(Decimal("0.01"))


def billed_monthly_cost(
    costs: Any, resource_ids: Sequence[str], now: datetime, *, memo: dict[str, Any] | None = None
) -> Decimal | None:
    """What the bill charged for a resource over the 30 days before ``now`` (``cost_facts`` of the cost
    lake, matched on the resource id or an ARN ending in it); None when the lake is absent or has nothing.

    ``memo`` (a scan's ``RuleContext.extra``): the first call reads every resource's 30-day total in one
    GROUP BY and keeps it there, later calls answer from it with the same matching, instead of one lake
    query per resource (a scan of thousands of resources spent most of its time in those queries). It
    holds one entry per resource billed in the window.
    """
    if costs is None or not resource_ids:
        return None
    import duckdb

    ids = list(resource_ids)
    end = now.astimezone(UTC).date()
    start = end - timedelta(days=30)
    if memo is not None:
        key = f"billed_monthly_cost:{id(costs)}:{start}:{end}"
        if key not in memo:
            memo[key] = _BilledTotals.read(costs, start, end)
        totals: _BilledTotals | None = memo[key]
        total = None if totals is None else totals.total(ids)
    else:
        match = " OR ".join(["resource = ? OR ends_with(resource, ?)"] * len(ids))
        params: list[object] = []
        for rid in ids:
            params += [rid, "/" + rid]
        try:
            rows = costs.execute(
                f"SELECT sum(effective_cost) FROM cost_facts WHERE ({match}) AND day >= ? AND day < ?",
                [*params, start, end],
            ).fetchall()
        except duckdb.Error:
            return None
        total = rows[0][0] if rows else None
    if total is None or Decimal(total) <= 0:
        return None
    return Decimal(total).quantize(Decimal("0.01"))


class _BilledTotals:
    """Per-resource effective cost over a window, indexed by the resource and by every part of it after a
    ``/``: ``resource = id OR ends_with(resource, '/' || id)`` becomes two dictionary lookups."""

    def __init__(self, by_resource: dict[str, Decimal]) -> None:
        self.by_resource = by_resource
        self.by_suffix: dict[str, list[str]] = {}
        for resource in by_resource:
            at = resource.find("/")
            while at >= 0:
                self.by_suffix.setdefault(resource[at + 1 :], []).append(resource)
                at = resource.find("/", at + 1)

    @classmethod
    def read(cls, costs: Any, start: date, end: date) -> _BilledTotals | None:
        import duckdb

        try:
            rows = costs.execute(
                "SELECT resource, sum(effective_cost) FROM cost_facts "
                "WHERE resource IS NOT NULL AND day >= ? AND day < ? GROUP BY resource",
                [start, end],
            ).fetchall()
        except duckdb.Error:
            return None
        return cls({str(r): Decimal(c) for r, c in rows if c is not None})

    def total(self, ids: Sequence[str]) -> Decimal | None:
        matched: set[str] = set()
        for rid in ids:
            if rid in self.by_resource:
                matched.add(rid)
            matched.update(self.by_suffix.get(rid, ()))
        if not matched:
            return None
        with localcontext(prec=80):  # exact: DuckDB's sums are DECIMAL(38, 10)
            return sum((self.by_resource[r] for r in matched), Decimal(0))


def severity_for(monthly_impact: Decimal) -> Literal["low", "medium", "high"]:
    if monthly_impact >= 1000:
        return "high"
    if monthly_impact >= 100:
        return "medium"
    return "low"


def age_days(since: datetime, now: datetime) -> float:
    return round((now - since).total_seconds() / 86400, 2)
