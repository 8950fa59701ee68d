"""AWS inventory and metrics with boto3 (the only inventory module that imports boto3).

Reads EC2 instances, EBS volumes and snapshots (owned by the account), SageMaker endpoints (with their
endpoint configs and tags) and CloudWatch daily statistics in every configured region: the metrics a rule
announces with ``prefetch_metrics`` in GetMetricData requests of up to 500 metrics each, any other metric
with its own GetMetricStatistics call. Credentials come from the standard AWS chain (environment, shared
config / ``profile``, SSO, instance role); ``endpoint_url`` (e.g. a local moto server) is passed to every
client. Results are cached for the life of the object: one ``AwsInventory`` is one scan's snapshot of the
account.

AWS errors become ``AwsError`` subclasses whose message names the service, the region and what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, TypeVar

import boto3
import botocore.exceptions
import botocore.loaders
import botocore.session
from botocore.config import Config

from config.model import AwsConfig
from tools.cloud.inventory import (
    STATISTICS,
    DailySeries,
    Endpoint,
    Instance,
    Metric,
    Snapshot,
    Volume,
    is_gpu_instance_type,
)
from tools.errors import FinOpsError

# On-demand list prices, USD per hour, us-east-1, Linux / SageMaker real-time inference, as published on
# the AWS EC2 On-Demand and SageMaker pricing pages (figures of 2024, checked 2024-09). Used for every
# region as an estimate (other regions differ by a few to ~30 %); a type not listed is "price unknown".
# Verify against the AWS Price List API before quoting a figure as exact.
PRICE_TABLE_SOURCE = "AWS on-demand list prices, us-east-1, 2024-09 (static table in tools/cloud/aws.py)"
ON_DEMAND_USD_PER_HOUR: dict[str, Decimal] = {
    k: Decimal(v)
    for k, v in {
        # general purpose
        "t3.micro": "0.0104",
        "t3.small": "0.0208",
        "t3.medium": "0.0416",
        "t3.large": "0.0832",
        "t3.xlarge": "0.1664",
        "t3.2xlarge": "0.3328",
        "m5.large": "0.096",
        "m5.xlarge": "0.192",
        "m5.2xlarge": "0.384",
        "m5.4xlarge": "0.768",
        "m5.8xlarge": "1.536",
        "m5.12xlarge": "2.304",
        "m5.16xlarge": "3.072",
        "m5.24xlarge": "4.608",
        "m6i.large": "0.096",
        "m6i.xlarge": "0.192",
        "m6i.2xlarge": "0.384",
        "m6i.4xlarge": "0.768",
        "m6i.8xlarge": "1.536",
        "m6i.16xlarge": "3.072",
        # compute optimised
        "c5.large": "0.085",
        "c5.xlarge": "0.17",
        "c5.2xlarge": "0.34",
        "c5.4xlarge": "0.68",
        "c5.9xlarge": "1.53",
        "c6i.large": "0.085",
        "c6i.xlarge": "0.17",
        "c6i.2xlarge": "0.34",
        "c6i.4xlarge": "0.68",
        "c6i.8xlarge": "1.36",
        # memory optimised
        "r5.large": "0.126",
        "r5.xlarge": "0.252",
        "r5.2xlarge": "0.504",
        "r5.4xlarge": "1.008",
        "r6i.large": "0.126",
        "r6i.xlarge": "0.252",
        "r6i.2xlarge": "0.504",
        "r6i.4xlarge": "1.008",
        # GPU / accelerators
        "g4dn.xlarge": "0.526",
        "g4dn.2xlarge": "0.752",
        "g4dn.4xlarge": "1.204",
        "g4dn.8xlarge": "2.176",
        "g4dn.12xlarge": "3.912",
        "g4dn.16xlarge": "4.352",
        "g5.xlarge": "1.006",
        "g5.2xlarge": "1.212",
        "g5.4xlarge": "1.624",
        "g5.8xlarge": "2.448",
        "g5.12xlarge": "5.672",
        "g5.16xlarge": "4.096",
        "g5.24xlarge": "8.144",
        "g5.48xlarge": "16.288",
        "p3.2xlarge": "3.06",
        "p3.8xlarge": "12.24",
        "p3.16xlarge": "24.48",
        "p4d.24xlarge": "32.7726",
        "inf2.xlarge": "0.7582",
        "inf2.8xlarge": "1.9679",
        "inf2.24xlarge": "6.4906",
        "inf2.48xlarge": "12.9813",
        "trn1.2xlarge": "1.3438",
        "trn1.32xlarge": "21.50",
        # SageMaker real-time inference
        "ml.m5.large": "0.115",
        "ml.m5.xlarge": "0.23",
        "ml.c5.xlarge": "0.204",
        "ml.g4dn.xlarge": "0.736",
        "ml.g5.xlarge": "1.408",
        "ml.g5.2xlarge": "1.515",
        "ml.p3.2xlarge": "3.825",
    }.items()
}

T = TypeVar("T")

#: threads describing SageMaker endpoints in parallel (botocore's default pool holds 10 connections)
DESCRIBE_THREADS = 8

log = logging.getLogger(__name__)

#: metrics per GetMetricData request (the API's limit on MetricDataQueries)
METRIC_DATA_BATCH = 500
#: seconds in the period of every metric read: one value per UTC day
DAY_SECONDS = 86400

MetricKey = tuple[str, str, str, str, tuple[tuple[str, str], ...], datetime, datetime, str]


class AwsError(FinOpsError):
    """An AWS call failed; the message names the service, the region and what to do."""


class AwsCredentialsError(AwsError):
    """No usable AWS credentials (none found, unknown profile, expired or invalid keys)."""


class AwsAccessDeniedError(AwsError):
    """The credentials work but lack a permission."""


class AwsUnavailableError(AwsError):
    """AWS (or the configured endpoint_url) could not be reached."""


_CREDENTIAL_CODES = {
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "AuthFailure",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
}
_DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess"}

_READ_PERMISSIONS = (
    "ec2:DescribeInstances, ec2:DescribeVolumes, ec2:DescribeSnapshots, sagemaker:ListEndpoints, "
    "sagemaker:DescribeEndpoint, sagemaker:DescribeEndpointConfig, sagemaker:ListTags, "
    "cloudwatch:GetMetricStatistics, cloudwatch:GetMetricData, sts:GetCallerIdentity"
)


class AwsInventory:
    """``tools.cloud.inventory.Inventory`` over boto3. ``page_size`` sets the page size of paginated calls
    (None: the service default)."""

    def __init__(self, config: AwsConfig, *, page_size: int | None = None) -> None:
        self.config = config
        self.regions = list(config.regions)
        self.page_size = page_size
        self._session: Any = None
        self._clients: dict[tuple[str, str], Any] = {}
        self._cache: dict[object, Any] = {}
        self._metric_data_denied: set[str] = set()  # regions where GetMetricData is not allowed

    # --- plumbing -------------------------------------------------------------------------------

    def _where(self) -> str:
        where = f"profile {self.config.profile!r}" if self.config.profile else "the default credential chain"
        if self.config.endpoint_url:
            where += f", endpoint {self.config.endpoint_url}"
        return where

    @contextmanager
    def _calling(self, service: str, region: str, what: str) -> Iterator[None]:
        """Translate boto errors raised inside the block into AwsError naming the service, region and fix."""
        try:
            yield
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._translate(exc, f"AWS {service} in {region} ({what}, using {self._where()})") from exc

    @staticmethod
    def _translate(exc: Exception, place: str) -> AwsError:
        if isinstance(exc, botocore.exceptions.ProfileNotFound):
            return AwsCredentialsError(
                f"{place}: {exc}. Set aws.profile in finops.yaml to a profile of ~/.aws/config, or remove it "
                "to use the default credentials"
            )
        if isinstance(
            exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError
        ):
            return AwsCredentialsError(
                f"{place}: no AWS credentials found. Set AWS_PROFILE (or aws.profile in finops.yaml), "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws sso login`; or scan with --no-cloud"
            )
        if isinstance(
            exc,
            botocore.exceptions.EndpointConnectionError
            | botocore.exceptions.ConnectTimeoutError
            | botocore.exceptions.ReadTimeoutError,
        ):
            return AwsUnavailableError(
                f"{place}: cannot reach the service ({exc}). Check the network, the region name and "
                "aws.endpoint_url in finops.yaml"
            )
        if isinstance(exc, botocore.exceptions.ClientError):
            code, message = (
                _error_code(exc),
                str(exc.response.get("Error", {}).get("Message", "")) or str(exc),
            )
            if code in _DENIED_CODES:
                return AwsAccessDeniedError(
                    f"{place}: access denied ({code}: {message}). Grant the read-only permissions "
                    f"{_READ_PERMISSIONS} to the identity the assistant uses"
                )
            if code in _CREDENTIAL_CODES:
                return AwsCredentialsError(
                    f"{place}: the credentials were rejected ({code}: {message}). Refresh them "
                    "(e.g. `aws sso login`) or fix AWS_ACCESS_KEY_ID / the profile"
                )
            return AwsError(f"{place}: {code or 'error'}: {message}")
        return AwsError(f"{place}: {exc}")

    def _client(self, service: str, region: str) -> Any:
        key = (service, region)
        if key not in self._clients:
            with self._calling(service, region, "creating the client"):
                if self._session is None:
                    core = botocore.session.get_session()
                    core.register_component("data_loader", _shared_loader())
                    self._session = boto3.session.Session(
                        botocore_session=core, profile_name=self.config.profile
                    )
                self._clients[key] = self._session.client(
                    service,
                    region_name=region,
                    endpoint_url=self.config.endpoint_url,
                    config=Config(
                        retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30
                    ),
                )
        return self._clients[key]

    def _pages(
        self, client: Any, operation: str, *, sized: bool = True, **kwargs: Any
    ) -> Iterator[dict[str, Any]]:
        """Every page of a paginated call; ``sized=False`` keeps the service's page size."""
        paginator = client.get_paginator(operation)
        config = {"PageSize": self.page_size} if self.page_size and sized else {}
        yield from paginator.paginate(**kwargs, PaginationConfig=config)

    def _cached(self, key: object, compute: Callable[[], T]) -> T:
        if key not in self._cache:
            self._cache[key] = compute()
        value: T = self._cache[key]
        return value

    def refresh(self) -> None:
        """Forget cached results (the next call reads AWS again)."""
        self._cache.clear()
        self._metric_data_denied.clear()

    # --- Inventory ------------------------------------------------------------------------------

    def instance_price(self, instance_type: str) -> Decimal | None:
        return ON_DEMAND_USD_PER_HOUR.get(instance_type)

    def account_id(self) -> str:
        def read() -> str:
            region = self.regions[0]
            with self._calling("sts", region, "GetCallerIdentity"):
                return str(self._client("sts", region).get_caller_identity()["Account"])

        return self._cached("account", read)

    def instances(self) -> list[Instance]:
        return self._cached("instances", lambda: [i for r in self.regions for i in self._instances(r)])

    def _instances(self, region: str) -> list[Instance]:
        out: list[Instance] = []
        with self._calling("ec2", region, "DescribeInstances"):
            for page in self._pages(self._client("ec2", region), "describe_instances"):
                for reservation in page.get("Reservations", []):
                    for raw in reservation.get("Instances", []):
                        itype = str(raw["InstanceType"])
                        out.append(
                            Instance(
                                id=str(raw["InstanceId"]),
                                type=itype,
                                state=str(raw.get("State", {}).get("Name", "unknown")),
                                launch_time=_utc(raw["LaunchTime"]),
                                region=region,
                                account=_opt_str(reservation.get("OwnerId")),
                                tags=_tags(raw.get("Tags")),
                                gpu=is_gpu_instance_type(itype),
                                hourly_price=self.instance_price(itype),
                            )
                        )
        return out

    def volumes(self) -> list[Volume]:
        return self._cached("volumes", lambda: [v for r in self.regions for v in self._volumes(r)])

    def _volumes(self, region: str) -> list[Volume]:
        out: list[Volume] = []
        account = self.account_id()
        with self._calling("ec2", region, "DescribeVolumes"):
            for page in self._pages(self._client("ec2", region), "describe_volumes"):
                for raw in page.get("Volumes", []):
                    out.append(
                        Volume(
                            id=str(raw["VolumeId"]),
                            size_gb=int(raw.get("Size", 0)),
                            type=str(raw.get("VolumeType", "")),
                            state=str(raw.get("State", "")),
                            attachments=len(raw.get("Attachments") or []),
                            create_time=_utc(raw["CreateTime"]),
                            region=region,
                            az=str(raw.get("AvailabilityZone", "")),
                            account=account,
                            tags=_tags(raw.get("Tags")),
                        )
                    )
        return out

    def snapshots(self) -> list[Snapshot]:
        return self._cached("snapshots", lambda: [s for r in self.regions for s in self._snapshots(r)])

    def _snapshots(self, region: str) -> list[Snapshot]:
        out: list[Snapshot] = []
        account = self.account_id()
        with self._calling("ec2", region, "DescribeSnapshots"):
            # OwnerIds=['self'] restricts to the account on AWS; the owner-id filter and the check below
            # say it again for endpoints that ignore OwnerIds (moto also lists its public AMI snapshots).
            pages = self._pages(
                self._client("ec2", region),
                "describe_snapshots",
                OwnerIds=["self"],
                Filters=[{"Name": "owner-id", "Values": [account]}],
            )
            for page in pages:
                for raw in page.get("Snapshots", []):
                    if raw.get("OwnerId") not in (None, account):
                        continue
                    out.append(
                        Snapshot(
                            id=str(raw["SnapshotId"]),
                            volume_id=_opt_str(raw.get("VolumeId")),
                            size_gb=int(raw.get("VolumeSize", 0)),
                            start_time=_utc(raw["StartTime"]),
                            region=region,
                            account=account,
                            description=str(raw.get("Description") or ""),
                            tags=_tags(raw.get("Tags")),
                        )
                    )
        return out

    def endpoints(self) -> list[Endpoint]:
        return self._cached("endpoints", lambda: [e for r in self.regions for e in self._endpoints(r)])

    def _endpoints(self, region: str) -> list[Endpoint]:
        """Every endpoint of the region. Each needs three describe calls; they run on a few threads (boto3
        clients are thread-safe; the client's connection pool holds ``DESCRIBE_THREADS`` connections)."""
        from concurrent.futures import ThreadPoolExecutor

        account = self.account_id()
        sm = self._client("sagemaker", region)
        with self._calling("sagemaker", region, "ListEndpoints"):
            summaries = [s for page in self._pages(sm, "list_endpoints") for s in page.get("Endpoints", [])]
        if len(summaries) <= 1:
            return [self._endpoint(sm, s, region, account) for s in summaries]
        with ThreadPoolExecutor(max_workers=DESCRIBE_THREADS) as pool:
            return list(pool.map(lambda s: self._endpoint(sm, s, region, account), summaries))

    def _endpoint(self, sm: Any, summary: dict[str, Any], region: str, account: str) -> Endpoint:
        name = str(summary["EndpointName"])
        with self._calling("sagemaker", region, f"DescribeEndpoint {name}"):
            described = sm.describe_endpoint(EndpointName=name)
        config_name = _opt_str(described.get("EndpointConfigName"))
        variants = self._variants(sm, config_name, region)
        arn = str(described.get("EndpointArn") or summary["EndpointArn"])
        with self._calling("sagemaker", region, f"ListTags {arn}"):
            tags: dict[str, str] = {}
            for page in self._pages(sm, "list_tags", sized=False, ResourceArn=arn):
                tags.update(_tags(page.get("Tags")))
        running = {
            str(v["VariantName"]): int(v.get("CurrentInstanceCount") or 0)
            for v in described.get("ProductionVariants") or []
        }
        names = tuple(running) or tuple(n for n, _, _ in variants) or ("AllTraffic",)
        count = sum(running.values()) or sum(c for _, _, c in variants)
        itype = next((t for _, t, _ in variants if t), None)
        hourly = _endpoint_hourly(variants, running, self.instance_price)
        return Endpoint(
            name=name,
            arn=arn,
            status=str(described.get("EndpointStatus") or summary.get("EndpointStatus", "")),
            config_name=config_name,
            instance_type=itype,
            instance_count=count,
            creation_time=_utc(described.get("CreationTime") or summary["CreationTime"]),
            region=region,
            account=account,
            variants=names,
            tags=tags,
            hourly_price=hourly,
        )

    def _variants(self, sm: Any, config_name: str | None, region: str) -> list[tuple[str, str | None, int]]:
        """(variant name, instance type or None for serverless, initial instance count) of an endpoint
        config; empty when the config has been deleted (the endpoint keeps running without it)."""
        if not config_name:
            return []
        with self._calling("sagemaker", region, f"DescribeEndpointConfig {config_name}"):
            try:
                config = sm.describe_endpoint_config(EndpointConfigName=config_name)
            except botocore.exceptions.ClientError as exc:
                if _error_code(exc) == "ValidationException":  # "Could not find endpoint configuration"
                    return []
                raise
        return [
            (
                str(v.get("VariantName", "AllTraffic")),
                _opt_str(v.get("InstanceType")),
                int(v.get("InitialInstanceCount") or 0),
            )
            for v in config.get("ProductionVariants") or []
        ]

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
        if stat not in STATISTICS:
            raise ValueError(f"unknown statistic {stat!r}; use one of {', '.join(STATISTICS)}")
        where = region or self.regions[0]
        key = _metric_key(where, namespace, metric_name, dimensions, start, end, stat)

        def read() -> DailySeries | None:
            with self._calling("cloudwatch", where, f"GetMetricStatistics {namespace}/{metric_name}"):
                response = self._client("cloudwatch", where).get_metric_statistics(
                    Namespace=namespace,
                    MetricName=metric_name,
                    Dimensions=[{"Name": k, "Value": v} for k, v in sorted(dimensions.items())],
                    StartTime=start,
                    EndTime=end,
                    Period=DAY_SECONDS,
                    Statistics=[stat],
                )
            points = response.get("Datapoints") or []
            return _daily(stat, ((p["Timestamp"], p[stat]) for p in points))

        return self._cached(key, read)

    def prefetch_metrics(self, metrics: Sequence[Metric], start: datetime, end: datetime) -> None:
        """Read the daily series of ``metrics`` over [start, end) with GetMetricData, up to 500 metrics a
        request per region (following NextToken), and keep them where ``metric_daily`` looks first.

        Only for windows of whole UTC days (start and end at midnight UTC, as ``daily_window`` gives): then
        each 86400 s period from ``start`` is one UTC day, the same per-day values GetMetricStatistics
        gives for that window. Other windows, unknown statistics, metrics already read and every query
        GetMetricData does not answer with status ``Complete`` are left to ``metric_daily`` (one
        GetMetricStatistics call each, as without prefetching). A region where GetMetricData is denied is
        left to ``metric_daily`` too (logged once), so an identity granted only GetMetricStatistics
        still scans; other errors raise ``AwsError`` like every call.
        """
        if not _whole_utc_days(start, end):
            return
        by_region: dict[str, dict[MetricKey, Metric]] = {}
        for metric in metrics:
            if metric.stat not in STATISTICS:
                continue  # metric_daily raises ValueError for it, prefetched or not
            where = metric.region or self.regions[0]
            key = _metric_key(
                where, metric.namespace, metric.name, metric.dimensions, start, end, metric.stat
            )
            if key not in self._cache and where not in self._metric_data_denied:
                by_region.setdefault(where, {})[key] = metric
        for where, pending in by_region.items():
            keys = list(pending)
            for at in range(0, len(keys), METRIC_DATA_BATCH):
                batch = keys[at : at + METRIC_DATA_BATCH]
                try:
                    read = self._metric_data(where, [(k, pending[k]) for k in batch], start, end)
                except AwsAccessDeniedError as exc:
                    self._metric_data_denied.add(where)
                    log.warning("%s; reading metrics one GetMetricStatistics call at a time", exc)
                    break
                for key, series in read.items():
                    self._cache[key] = series

    def _metric_data(
        self, region: str, batch: list[tuple[MetricKey, Metric]], start: datetime, end: datetime
    ) -> dict[MetricKey, DailySeries | None]:
        """One GetMetricData request (all its pages) for at most 500 metrics of one region: the daily
        series of each query whose final status is Complete (None when it has no data point)."""
        queries = [
            {
                "Id": f"m{n}",
                "MetricStat": {
                    "Metric": {
                        "Namespace": metric.namespace,
                        "MetricName": metric.name,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in sorted(metric.dimensions.items())],
                    },
                    "Period": DAY_SECONDS,
                    "Stat": metric.stat,
                },
                "ReturnData": True,
            }
            for n, (_, metric) in enumerate(batch)
        ]
        points: dict[str, list[tuple[Any, Any]]] = {}
        status: dict[str, str] = {}
        client = self._client("cloudwatch", region)
        with self._calling("cloudwatch", region, f"GetMetricData ({len(queries)} metrics)"):
            pages = self._pages(
                client,
                "get_metric_data",
                sized=False,
                MetricDataQueries=queries,
                StartTime=start,
                EndTime=end,
                ScanBy="TimestampAscending",
            )
            for page in pages:
                for result in page.get("MetricDataResults") or []:
                    qid = str(result.get("Id"))
                    timestamps, values = result.get("Timestamps") or [], result.get("Values") or []
                    points.setdefault(qid, []).extend(zip(timestamps, values, strict=False))
                    if len(timestamps) != len(values) or status.get(qid) == "Malformed":
                        status[qid] = "Malformed"  # never cached: metric_daily reads it on its own
                    else:
                        status[qid] = str(result.get("StatusCode", ""))
        out: dict[MetricKey, DailySeries | None] = {}
        for n, (key, metric) in enumerate(batch):
            qid = f"m{n}"
            if status.get(qid) == "Complete":  # PartialData / InternalError / Forbidden / missing: not cached
                out[key] = _daily(metric.stat, points.get(qid, []))
        return out


def _endpoint_hourly(
    variants: list[tuple[str, str | None, int]],
    running: dict[str, int],
    price: Callable[[str], Decimal | None],
) -> Decimal | None:
    total = Decimal(0)
    for name, itype, initial in variants:
        count = running.get(name, initial)
        if count == 0:
            continue
        unit = price(itype) if itype else None
        if unit is None:
            return None
        total += unit * count
    return total if variants else None


_LOADER: list[Any] = []


def _shared_loader() -> Any:
    """One botocore model loader for every inventory: service models are static data, and loading the EC2
    model again for each new session costs more than half a second. Credentials stay per session."""
    if not _LOADER:
        _LOADER.append(botocore.loaders.create_loader())
    return _LOADER[0]


def _error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _metric_key(
    region: str,
    namespace: str,
    name: str,
    dimensions: Any,
    start: datetime,
    end: datetime,
    stat: str,
) -> MetricKey:
    return ("metric", region, namespace, name, tuple(sorted(dimensions.items())), start, end, stat)


def _whole_utc_days(start: datetime, end: datetime) -> bool:
    """[start, end) is a non-empty run of whole UTC days (both ends aware, at midnight UTC)."""
    if start.tzinfo is None or end.tzinfo is None or start >= end:
        return False
    return start.astimezone(UTC).time() == time(0) and end.astimezone(UTC).time() == time(0)


def _daily(stat: str, points: Iterable[tuple[Any, Any]]) -> DailySeries | None:
    """(timestamp, value) data points as one value per UTC day, oldest first; None without any point.
    Several points of one day (CloudWatch periods not aligned to midnight) are merged with ``_combine``."""
    by_day: dict[date, list[float]] = {}
    for stamp, value in points:
        by_day.setdefault(_utc(stamp).date(), []).append(float(value))
    if not by_day:
        return None
    return [(day, _combine(stat, values)) for day, values in sorted(by_day.items())]


def _combine(stat: str, values: list[float]) -> float:
    """Merge several data points of one UTC day (CloudWatch periods not aligned to midnight)."""
    if len(values) == 1:
        return values[0]
    if stat in ("Sum", "SampleCount"):
        return sum(values)
    if stat == "Maximum":
        return max(values)
    if stat == "Minimum":
        return min(values)
    return sum(values) / len(values)


def _tags(raw: Any) -> dict[str, str]:
    return {str(t["Key"]): str(t.get("Value", "")) for t in raw or []}


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
