"""The remediation action contract and its registry.

An action type is a class registered by name with ``@register``. It declares a pydantic parameter model
(``Params``), the cloud permissions it needs, the resource kind it acts on, the resource states it may
start from, and implements, in this order of use:

- ``observe(ctx, params)``: read the real state of the target now (no change). Used at proposal time and
  again just before execution, to detect drift.
- ``plan(params, observed, pctx)``: **pure** — what will change, on which resource, the blast radius and
  the estimated monthly savings. Refuses (``ActionRefused``) when the observed state is not a start state.
  The approval is bound to ``Plan.hash()``; a re-plan that hashes differently means the world drifted.
- ``capture(ctx, params, observed)``: read what rollback will need (instance type, tags, endpoint config,
  volume attributes). The service stores it *before* ``apply`` runs.
- ``apply(ctx, params, captured)``: make the change. Idempotent: running it again after a crash finds its
  own earlier work (things it creates are tagged with the request id) instead of repeating it. Returns
  facts rollback needs that only exist after the change (e.g. the snapshot id).
- ``verify(ctx, params, captured, applied)``: read the real state afterwards and say whether the change
  is in effect.
- ``rollback(ctx, params, captured, applied)`` and ``verify_rollback(...)``: undo and check;
  ``verify_rollback`` receives ``{**applied, **rollback_result}``.

After a crash inside ``apply`` the service (``reconcile``) calls ``verify`` and ``rollback`` with
``applied == {}``: actions find what they created by its ``REQUEST_TAG`` instead of relying on ``applied``.
Actions with ``cloud = False`` (the product's own policies) may leave ``permissions`` empty.

``irreversible = True`` is only allowed together with ``makes_restorable_copy = True`` (a meta-test checks
the registry). Dry-run is decided in one place, the approvals service: in dry-run it observes and plans
but never calls ``capture``/``apply``/``rollback``.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from config.model import FinOpsConfig
from tools.errors import FinOpsError

if TYPE_CHECKING:
    from tools.store.db import Database

Json = dict[str, Any]

#: tag put on everything an action creates (snapshots, recreated volumes ...), so a retry finds it
REQUEST_TAG = "finops:request-id"


class ActionError(FinOpsError):
    """An action could not be planned or carried out; the message says what and what to do."""


class ActionRefused(ActionError):
    """The action must not run on this resource as it is now (wrong state, protected, gone ...)."""


class UnknownActionError(ActionError):
    pass


class ActionParams(BaseModel):
    """Base of every action's parameter model: strict keys, JSON-serialisable values."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Target:
    """What an action acts on. ``id`` is the resource id (EC2 id, volume id, endpoint name, or for policy
    actions a key such as ``feature=support-chat/env=prod``)."""

    kind: str
    id: str
    region: str | None = None
    account: str | None = None


@dataclass(frozen=True)
class Observed:
    """The real state of a target, read now. ``attributes`` hold what the plan depends on (and nothing
    volatile such as timestamps), so two reads of an unchanged resource are equal."""

    exists: bool
    state: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> Json:
        return {
            "exists": self.exists,
            "state": self.state,
            "attributes": dict(self.attributes),
            "tags": dict(sorted(self.tags.items())),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Observed:
        return cls(
            bool(data["exists"]),
            data.get("state"),
            dict(data.get("attributes") or {}),
            dict(data.get("tags") or {}),
        )


@dataclass(frozen=True)
class Change:
    """One attribute of one resource, before and after."""

    resource: str
    attribute: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Plan:
    action: str
    params: Mapping[str, Any]
    target: Target
    summary: str  # one line: "Stop EC2 instance i-0abc (g5.xlarge, team ml-research)"
    changes: tuple[Change, ...]
    blast_radius: str  # in words: what else is affected, and what is not
    monthly_savings: Decimal
    currency: str
    observed: Observed
    reversible: bool
    environment: str | None = None

    def as_dict(self) -> Json:
        return {
            "action": self.action,
            "params": dict(self.params),
            "target": asdict(self.target),
            "summary": self.summary,
            "changes": [asdict(c) for c in self.changes],
            "blast_radius": self.blast_radius,
            "monthly_savings": str(self.monthly_savings),
            "currency": self.currency,
            "observed": self.observed.as_dict(),
            "reversible": self.reversible,
            "environment": self.environment,
        }

    def hash(self) -> str:
        """SHA-256 over the plan's canonical JSON: an approval is bound to exactly this plan."""
        return hashlib.sha256(canonical_json(self.as_dict()).encode()).hexdigest()


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, Decimals and datetimes as strings: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default, ensure_ascii=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


@dataclass(frozen=True)
class Verification:
    ok: bool
    observed: Observed
    detail: str = ""


@dataclass
class PlanContext:
    """What a pure ``plan()`` may consult: the configuration and a price lookup (no I/O)."""

    config: FinOpsConfig
    price: Callable[[str], Decimal | None] = lambda _type: None  # on-demand $/hour of an instance type


@dataclass
class ActionContext:
    """What an action may use to read and change the world. ``aws`` is an AWS client factory
    (``approvals.actions.aws_clients.AwsClients``) or None; ``db`` holds the product's own policies
    (model routing, limits)."""

    config: FinOpsConfig
    now: datetime
    request_id: str
    aws: Any = None
    db: Database | None = None


class Action(ABC):
    """Base class of remediation actions; subclasses set the class attributes and implement the steps."""

    name: ClassVar[str]
    title: ClassVar[str]
    Params: ClassVar[type[ActionParams]]
    resource_kind: ClassVar[str]
    permissions: ClassVar[tuple[str, ...]]
    start_states: ClassVar[frozenset[str]]
    irreversible: ClassVar[bool] = False
    makes_restorable_copy: ClassVar[bool] = False
    #: True for actions that call a cloud API (dry-run and cloud access checks apply)
    cloud: ClassVar[bool] = True

    @classmethod
    def description(cls) -> str:
        return (cls.__doc__ or "").strip()

    @classmethod
    def parse_params(cls, raw: Mapping[str, Any]) -> ActionParams:
        """Validate ``raw`` against ``Params``; errors name the action and the bad key."""
        try:
            return cls.Params.model_validate(dict(raw))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(params)'}: {e['msg']}" for e in exc.errors()
            )
            raise ActionError(f"parameters of action {cls.name!r} are invalid: {problems}") from None

    @abstractmethod
    def target(self, params: Any) -> Target: ...

    @abstractmethod
    def observe(self, ctx: ActionContext, params: Any) -> Observed: ...

    @abstractmethod
    def plan(self, params: Any, observed: Observed, pctx: PlanContext) -> Plan: ...

    @abstractmethod
    def capture(self, ctx: ActionContext, params: Any, observed: Observed) -> Json: ...

    @abstractmethod
    def apply(self, ctx: ActionContext, params: Any, captured: Json) -> Json: ...

    @abstractmethod
    def verify(self, ctx: ActionContext, params: Any, captured: Json, applied: Json) -> Verification: ...

    @abstractmethod
    def rollback(self, ctx: ActionContext, params: Any, captured: Json, applied: Json) -> Json: ...

    @abstractmethod
    def verify_rollback(
        self, ctx: ActionContext, params: Any, captured: Json, applied: Json
    ) -> Verification: ...

    def check_start_state(self, observed: Observed) -> None:
        """Refuse unless the resource exists and is in one of ``start_states`` (helper for ``plan``)."""
        if not observed.exists:
            raise ActionRefused(f"{self.name}: the resource no longer exists; nothing to do")
        if observed.state not in self.start_states:
            raise ActionRefused(
                f"{self.name}: the resource is {observed.state!r}; this action only starts from "
                f"{sorted(self.start_states)}"
            )


class ActionRegistry:
    def __init__(self) -> None:
        self._actions: dict[str, type[Action]] = {}

    def register(self, name: str) -> Callable[[type[Action]], type[Action]]:
        def decorate(cls: type[Action]) -> type[Action]:
            if name in self._actions:
                raise ValueError(f"action {name!r} is registered twice")
            if cls.irreversible and not cls.makes_restorable_copy:
                raise ValueError(f"action {name!r} is irreversible without making a restorable copy first")
            cls.name = name
            self._actions[name] = cls
            return cls

        return decorate

    def get(self, name: str) -> type[Action]:
        load_actions()
        try:
            return self._actions[name]
        except KeyError:
            raise UnknownActionError(
                f"unknown action {name!r}; the actions are: {', '.join(sorted(self._actions))}"
            ) from None

    def create(self, name: str) -> Action:
        return self.get(name)()

    def names(self) -> list[str]:
        load_actions()
        return sorted(self._actions)

    def items(self) -> list[tuple[str, type[Action]]]:
        load_actions()
        return sorted(self._actions.items())


registry = ActionRegistry()
register = registry.register

#: modules holding action classes (imported on first use of the registry)
ACTION_MODULES = (
    "approvals.actions.aws_ec2",
    "approvals.actions.aws_ebs",
    "approvals.actions.aws_sagemaker",
    "approvals.actions.aws_tags",
    "approvals.actions.llm_policy",
)
_LOADED: list[bool] = []


def load_actions() -> None:
    """Import every action module (once; a failed import is raised again on the next call)."""
    if _LOADED:
        return
    import importlib

    for module in ACTION_MODULES:
        importlib.import_module(module)
    _LOADED.append(True)
