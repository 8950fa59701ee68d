"""SageMaker: delete an idle real-time inference endpoint, keeping its endpoint config and model(s).

An endpoint is billed for its instances for as long as it exists; its endpoint config and model cost
nothing. Deleting only the endpoint therefore stops the bill and keeps everything needed to recreate it
with ``CreateEndpoint(EndpointName, EndpointConfigName, Tags)`` (the rollback).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import botocore.exceptions
from pydantic import Field

from approvals.actions.aws_clients import (
    AwsClients,
    clients_of,
    error_code,
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
from tools.cloud.inventory import HOURS_PER_MONTH

#: longest wait for an endpoint to be deleted / to be InService again (GPU endpoints take 5-15 minutes)
DELETE_SECONDS = 20 * 60
CREATE_SECONDS = 45 * 60


class EndpointParams(ActionParams):
    """What the idle-inference-endpoint rule proposes: ``{"endpoint_name", "region"}``."""

    endpoint_name: str = Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", examples=["search-reranker"])
    region: str = Field(min_length=1, examples=["us-east-1"])


def _not_found(exc: botocore.exceptions.ClientError) -> bool:
    """SageMaker reports a missing endpoint / config / model as ValidationException "Could not find ..."."""
    message = str(exc.response.get("Error", {}).get("Message", ""))
    return error_code(exc) in ("ValidationException", "ResourceNotFound") and "Could not find" in message


def describe_endpoint(aws: AwsClients, region: str, name: str) -> Any:
    """DescribeEndpoint's answer, or None when there is no such endpoint."""
    with aws.calling("sagemaker", region, f"DescribeEndpoint {name}"):
        try:
            return aws.client("sagemaker", region).describe_endpoint(EndpointName=name)
        except botocore.exceptions.ClientError as exc:
            if _not_found(exc):
                return None
            raise


def describe_endpoint_config(aws: AwsClients, region: str, name: str) -> Any:
    with aws.calling("sagemaker", region, f"DescribeEndpointConfig {name}"):
        try:
            return aws.client("sagemaker", region).describe_endpoint_config(EndpointConfigName=name)
        except botocore.exceptions.ClientError as exc:
            if _not_found(exc):
                return None
            raise


def _model_exists(aws: AwsClients, region: str, name: str) -> bool:
    with aws.calling("sagemaker", region, f"DescribeModel {name}"):
        try:
            aws.client("sagemaker", region).describe_model(ModelName=name)
        except botocore.exceptions.ClientError as exc:
            if _not_found(exc):
                return False
            raise
    return True


def endpoint_tags(aws: AwsClients, region: str, arn: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    with aws.calling("sagemaker", region, f"ListTags {arn}"):
        for page in aws.client("sagemaker", region).get_paginator("list_tags").paginate(ResourceArn=arn):
            tags.update(tag_dict(page.get("Tags")))
    return tags


def observe_endpoint(aws: AwsClients, region: str, name: str) -> Observed:
    """An endpoint's status, tags, config and variants (type and instance count), and whether its config
    and models still exist (without them it could not be recreated). No timestamps."""
    described = describe_endpoint(aws, region, name)
    if described is None:
        return Observed(exists=False)
    arn = str(described["EndpointArn"])
    config_name = str(described.get("EndpointConfigName") or "")
    config = describe_endpoint_config(aws, region, config_name) if config_name else None
    running = {
        str(v["VariantName"]): v.get("CurrentInstanceCount")
        for v in described.get("ProductionVariants") or []
    }
    variants: list[dict[str, Any]] = []
    models: set[str] = set()
    for v in (config or {}).get("ProductionVariants") or []:
        vname = str(v.get("VariantName", "AllTraffic"))
        count = running.get(vname)
        variants.append(
            {
                "name": vname,
                "model": v.get("ModelName"),
                "instance_type": v.get("InstanceType"),
                "instance_count": int(count if count is not None else v.get("InitialInstanceCount") or 0),
                "serverless": bool(v.get("ServerlessConfig")),
            }
        )
        if v.get("ModelName"):
            models.add(str(v["ModelName"]))
    missing = sorted(m for m in models if not _model_exists(aws, region, m))
    return Observed(
        exists=True,
        state=str(described.get("EndpointStatus", "")),
        attributes={
            "arn": arn,
            "endpoint_config_name": config_name,
            "endpoint_config_exists": config is not None,
            "variants": sorted(variants, key=lambda v: str(v["name"])),
            "models_missing": missing,
        },
        tags=endpoint_tags(aws, region, arn),
    )


def endpoint_hourly(observed: Observed, pctx: PlanContext) -> Decimal | None:
    """On-demand $/hour of the endpoint's instances (serverless variants: 0); None when a price is unknown."""
    total = Decimal(0)
    variants = list(observed.attributes.get("variants") or [])
    for v in variants:
        if v.get("serverless") or not v.get("instance_count"):
            continue
        unit = pctx.price(str(v.get("instance_type"))) if v.get("instance_type") else None
        if unit is None:
            return None
        total += unit * int(v["instance_count"])
    return total if variants else None


@register("sagemaker-delete-endpoint")
class SageMakerDeleteEndpoint(Action):
    """Delete an idle SageMaker real-time endpoint, keeping its endpoint config and model(s), so the
    instances stop being billed. Refused when the config or a model is gone (the endpoint could not be
    recreated). Verify: the endpoint is gone and its config still exists. Rollback: CreateEndpoint with
    the same name, config and tags, then wait until it is InService."""

    title = "Delete SageMaker endpoint"
    Params = EndpointParams
    resource_kind = "sagemaker-endpoint"
    permissions = (
        "sagemaker:DescribeEndpoint",
        "sagemaker:DescribeEndpointConfig",
        "sagemaker:DescribeModel",
        "sagemaker:ListTags",
        "sagemaker:DeleteEndpoint",
        "sagemaker:CreateEndpoint",
        "sagemaker:AddTags",
    )
    start_states = frozenset({"InService"})

    def target(self, params: EndpointParams) -> Target:
        return Target(self.resource_kind, params.endpoint_name, params.region)

    def observe(self, ctx: ActionContext, params: EndpointParams) -> Observed:
        return observe_endpoint(clients_of(ctx.aws, self.name), params.region, params.endpoint_name)

    def plan(self, params: EndpointParams, observed: Observed, pctx: PlanContext) -> Plan:
        self.check_start_state(observed)
        attrs = observed.attributes
        config = str(attrs.get("endpoint_config_name") or "")
        if not attrs.get("endpoint_config_exists"):
            raise ActionRefused(
                f"{self.name}: the endpoint config {config!r} of {params.endpoint_name} no longer exists, so "
                "the endpoint could not be recreated; recreate the config first (or delete the endpoint by "
                "hand if it is not needed)"
            )
        if attrs.get("models_missing"):
            raise ActionRefused(
                f"{self.name}: model(s) {attrs['models_missing']} of {params.endpoint_name} no longer exist, "
                "so the endpoint could not be recreated"
            )
        hourly = endpoint_hourly(observed, pctx)
        savings = money(hourly * HOURS_PER_MONTH) if hourly is not None else Decimal("0.00")
        variants = list(attrs.get("variants") or [])
        sizes = ", ".join(f"{v['instance_count']} x {v['instance_type'] or 'serverless'}" for v in variants)
        models = sorted({str(v["model"]) for v in variants if v.get("model")})
        return Plan(
            action=self.name,
            params=params.model_dump(mode="json"),
            target=self.target(params),
            summary=(
                f"Delete SageMaker endpoint {params.endpoint_name} ({sizes or 'no variants'}"
                f"{owner_words(observed.tags, pctx.config)})"
                + ("" if hourly is not None else " (price unknown)")
            ),
            changes=(Change(params.endpoint_name, "status", observed.state, "deleted"),),
            blast_radius=(
                f"1 endpoint is deleted: requests to {params.endpoint_name} fail until it is recreated. Its "
                f"endpoint config {config} and model(s) {', '.join(models) or '(none)'} are kept, so rollback "
                "recreates it under the same name (it takes 5-15 minutes to be InService). Auto scaling "
                "policies registered for its variants and data capture settings outside the config are not "
                "part of the rollback."
            ),
            monthly_savings=savings,
            currency="USD",
            observed=observed,
            reversible=True,
            environment=scope_of(observed.tags, pctx.config).get("environment"),
        )

    def capture(self, ctx: ActionContext, params: EndpointParams, observed: Observed) -> Json:
        attrs = observed.attributes
        return {
            "arn": attrs.get("arn"),
            "endpoint_config_name": attrs.get("endpoint_config_name"),
            "endpoint_config_exists": attrs.get("endpoint_config_exists"),
            "variants": attrs.get("variants"),
            "tags": user_tags(observed.tags),
        }

    def apply(self, ctx: ActionContext, params: EndpointParams, captured: Json) -> Json:
        aws = clients_of(ctx.aws, self.name)
        region, name = params.region, params.endpoint_name
        described = describe_endpoint(aws, region, name)
        if described is not None and described.get("EndpointStatus") != "Deleting":
            with aws.calling("sagemaker", region, f"DeleteEndpoint {name}"):
                try:
                    aws.client("sagemaker", region).delete_endpoint(EndpointName=name)
                except botocore.exceptions.ClientError as exc:
                    if not _not_found(exc):
                        raise  # not found: deleted by an earlier run of this step
        return {"endpoint_config_name": captured.get("endpoint_config_name")}

    def verify(
        self, ctx: ActionContext, params: EndpointParams, captured: Json, applied: Json
    ) -> Verification:
        aws = clients_of(ctx.aws, self.name)
        region, name = params.region, params.endpoint_name
        described = describe_endpoint(aws, region, name)
        if described is not None and described.get("EndpointStatus") == "Deleting":
            aws.wait(
                "sagemaker",
                region,
                "endpoint_deleted",
                f"DescribeEndpoint {name} (waiting for deletion)",
                max_seconds=DELETE_SECONDS,
                EndpointName=name,
            )
        observed = observe_endpoint(aws, region, name)
        config_name = str(captured.get("endpoint_config_name") or "")
        config_kept = bool(config_name) and describe_endpoint_config(aws, region, config_name) is not None
        detail = (
            f"endpoint {name} is {'deleted' if not observed.exists else observed.state}; endpoint config "
            f"{config_name} {'is kept' if config_kept else 'is missing'}"
        )
        return Verification(not observed.exists and config_kept, observed, detail)

    def rollback(self, ctx: ActionContext, params: EndpointParams, captured: Json, applied: Json) -> Json:
        aws = clients_of(ctx.aws, self.name)
        region, name = params.region, params.endpoint_name
        config_name = str(captured.get("endpoint_config_name") or "")
        described = describe_endpoint(aws, region, name)
        if described is not None and described.get("EndpointStatus") == "Deleting":
            aws.wait(
                "sagemaker",
                region,
                "endpoint_deleted",
                f"DescribeEndpoint {name} (waiting for deletion)",
                max_seconds=DELETE_SECONDS,
                EndpointName=name,
            )
            described = None
        if described is None:
            if describe_endpoint_config(aws, region, config_name) is None:
                raise ActionError(
                    f"{self.name}: cannot recreate {name}: its endpoint config {config_name!r} no longer exists"
                )
            tags = {**dict(captured.get("tags") or {}), REQUEST_TAG: ctx.request_id}
            with aws.calling("sagemaker", region, f"CreateEndpoint {name}"):
                aws.client("sagemaker", region).create_endpoint(
                    EndpointName=name, EndpointConfigName=config_name, Tags=tag_list(tags)
                )
        aws.wait(
            "sagemaker",
            region,
            "endpoint_in_service",
            f"DescribeEndpoint {name} (waiting for InService)",
            max_seconds=CREATE_SECONDS,
            EndpointName=name,
        )
        return {"endpoint_name": name, "endpoint_config_name": config_name}

    def verify_rollback(
        self, ctx: ActionContext, params: EndpointParams, captured: Json, applied: Json
    ) -> Verification:
        aws = clients_of(ctx.aws, self.name)
        observed = observe_endpoint(aws, params.region, params.endpoint_name)
        problems = []
        if observed.state != "InService":
            problems.append(f"status is {observed.state or 'gone'!r}, not 'InService'")
        config_name = captured.get("endpoint_config_name")
        if observed.exists and observed.attributes.get("endpoint_config_name") != config_name:
            problems.append(
                f"its config is {observed.attributes.get('endpoint_config_name')!r}, not {config_name!r}"
            )
        missing = sorted(k for k, v in dict(captured.get("tags") or {}).items() if observed.tags.get(k) != v)
        if missing:
            problems.append(f"tags differ: {missing}")
        detail = f"endpoint {params.endpoint_name} " + (
            "; ".join(problems) if problems else f"is InService with config {config_name} and its tags"
        )
        return Verification(not problems, observed, detail)
