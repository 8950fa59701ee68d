"""boto3 clients for the AWS remediation actions, and AWS errors that say which permission is missing.

``AwsClients`` is what ``ActionContext.aws`` holds for the AWS actions. Credentials come from the standard
AWS chain (environment, shared config / ``aws.profile``, SSO, instance role), exactly as the read-only
inventory (``tools.cloud.aws.AwsInventory``) gets them; ``aws.endpoint_url`` (e.g. a local moto server) is
passed to every client. Clients use botocore's standard retry mode and bounded timeouts, and one shared
botocore model loader.

``calling(service, region, what)`` turns botocore errors into ``tools.cloud.aws.AwsError`` subclasses whose
message names the service, region and call; an access-denied error names the IAM permission the call
needs (``ec2:StopInstances`` ...), not the inventory's read-only list. ``wait(...)`` runs a boto3 waiter
with this object's polling settings and turns a waiter that gives up into an ``ActionError`` saying the
step can be re-run (every action is idempotent).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import boto3
import botocore.exceptions
import botocore.session
from botocore.config import Config

from approvals.actions.base import ActionError, ActionRefused
from config.model import AwsConfig, FinOpsConfig
from tools.cloud.aws import AwsAccessDeniedError, AwsError, AwsInventory, _shared_loader
from tools.cloud.inventory import scope_from_tags

#: error codes of a caller that lacks a permission (as tools.cloud.aws knows them)
DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess"}
)


class AwsActionAccessDeniedError(AwsAccessDeniedError):
    """The credentials work but lack the (write) permission an action needs."""


class AwsClients:
    """boto3 client factory for the actions: one session, one client per (service, region).

    ``poll_seconds`` is the delay between two polls of a waiter (an instance stopping, a snapshot
    completing ...); ``wait`` derives the number of polls from the longest wait a step allows."""

    def __init__(self, config: AwsConfig, *, poll_seconds: float = 5.0) -> None:
        if poll_seconds <= 0:
            raise ValueError("poll_seconds must be positive")
        self.config = config
        self.poll_seconds = poll_seconds
        self._session: Any = None
        self._clients: dict[tuple[str, str], Any] = {}

    @property
    def default_region(self) -> str:
        """The first configured region (for resources named without one)."""
        return self.config.regions[0] if self.config.regions else "us-east-1"

    def where(self) -> str:
        where = f"profile {self.config.profile!r}" if self.config.profile else "the default credential chain"
        if self.config.endpoint_url:
            where += f", endpoint {self.config.endpoint_url}"
        return where

    def client(self, service: str, region: str) -> Any:
        key = (service, region)
        if key not in self._clients:
            with self.calling(service, region, "creating the client", permission=None):
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
                        retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60
                    ),
                )
        return self._clients[key]

    @contextmanager
    def calling(self, service: str, region: str, what: str, *, permission: str | None = "") -> Iterator[None]:
        """Translate boto errors raised in the block into ``AwsError``. ``what`` starts with the API
        operation (``"StopInstances i-0abc"``); the permission named on access denied is ``permission``,
        or by default ``<service>:<first word of what>``; ``None``: none in particular."""
        try:
            yield
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self.translate(exc, service, region, what, permission=permission) from exc

    def translate(
        self, exc: Exception, service: str, region: str, what: str, *, permission: str | None = ""
    ) -> AwsError:
        place = f"AWS {service} in {region} ({what}, using {self.where()})"
        if isinstance(exc, botocore.exceptions.ClientError) and error_code(exc) in DENIED_CODES:
            needed = permission if permission or permission is None else f"{service}:{what.split()[0]}"
            message = str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
            grant = (
                f"Grant {needed} to the identity the assistant uses (see the action's permissions)"
                if needed
                else "Check the permissions of the identity the assistant uses"
            )
            return AwsActionAccessDeniedError(
                f"{place}: access denied ({error_code(exc)}: {message}). {grant}"
            )
        return AwsInventory._translate(exc, place)

    def wait(
        self,
        service: str,
        region: str,
        waiter: str,
        what: str,
        *,
        max_seconds: float,
        permission: str | None = "",
        **kwargs: Any,
    ) -> None:
        """Run boto3 waiter ``waiter`` (e.g. ``instance_stopped``) for at most about ``max_seconds``.

        A waiter that gives up (time out, or a failure state) raises ``ActionError``; AWS errors met while
        polling are translated like ``calling``'s."""
        attempts = max(1, math.ceil(max_seconds / self.poll_seconds))
        client = self.client(service, region)
        try:
            client.get_waiter(waiter).wait(
                **kwargs, WaiterConfig={"Delay": self.poll_seconds, "MaxAttempts": attempts}
            )
        except botocore.exceptions.WaiterError as exc:
            last: Mapping[str, Any] = exc.last_response or {}
            if "Error" in last and last["Error"].get("Code"):
                client_error = botocore.exceptions.ClientError(dict(last), waiter)
                raise self.translate(client_error, service, region, what, permission=permission) from exc
            raise ActionError(
                f"AWS {service} in {region}: {what} did not finish within about {max_seconds:.0f} s "
                f"({exc}). Nothing is lost: run the step again (it resumes where it stopped), or check "
                "the resource in the AWS console"
            ) from exc
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self.translate(exc, service, region, what, permission=permission) from exc


def error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_client_error(exc: BaseException, *codes: str) -> bool:
    """True for a botocore ClientError with one of ``codes``."""
    return isinstance(exc, botocore.exceptions.ClientError) and error_code(exc) in codes


def clients_of(ctx_aws: Any, action: str) -> AwsClients:
    """``ctx.aws`` as ``AwsClients``, or a refusal naming the action when AWS access is not configured."""
    if not isinstance(ctx_aws, AwsClients):
        raise ActionRefused(
            f"{action}: no AWS access is configured for remediations (ActionContext.aws is "
            f"{type(ctx_aws).__name__}); configure aws: in finops.yaml"
        )
    return ctx_aws


def tag_dict(raw: Any) -> dict[str, str]:
    """``[{"Key": k, "Value": v}, ...]`` as a dict (the last value of a repeated key wins)."""
    return {str(t["Key"]): str(t.get("Value", "")) for t in raw or []}


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """A dict as AWS's tag list, sorted by key; ``aws:``-prefixed keys (reserved for AWS) are left out."""
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items()) if not k.startswith("aws:")]


def user_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The tags a caller can set (without AWS's reserved ``aws:`` keys)."""
    return {k: v for k, v in tags.items() if not k.startswith("aws:")}


# --- helpers shared by the AWS actions ---------------------------------------------------------------


def scope_of(tags: Mapping[str, str], config: FinOpsConfig) -> dict[str, str]:
    """The canonical dimensions (team, environment ...) a resource's tags give, per the taxonomy."""
    return scope_from_tags(tags, config.taxonomy)


def money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


def owner_words(tags: Mapping[str, str], config: FinOpsConfig) -> str:
    """``", team search, env prod"`` (empty when the tags name neither), for plan summaries."""
    scope = scope_of(tags, config)
    parts = [f"team {scope['team']}"] if "team" in scope else []
    if "environment" in scope:
        parts.append(f"env {scope['environment']}")
    return "".join(f", {p}" for p in parts)
