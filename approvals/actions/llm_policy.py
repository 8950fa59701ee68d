"""Actions on the product's own LLM policies (``tools.llm_policy``): switch a feature's model, set a
team's or project's gateway limits. They change rows of the app database, not a cloud (``cloud =
False``); the gateway picks the change up from the exported LiteLLM configuration.

Both are safe to retry: ``apply`` is an upsert of the desired value, and ``apply`` / ``rollback`` refuse
when the row holds neither the value captured before the change nor the value the change wrote (someone
else changed it meanwhile: a person must look).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field, model_validator

from approvals.actions.base import (
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
from config.model import FinOpsConfig
from tools import llm_policy
from tools.llm_policy import ALL_ENVIRONMENTS, limit_values
from tools.rules.premium_model import approved_name, is_version_of
from tools.store.db import Database

Name = Annotated[str, Field(min_length=1, max_length=128)]
Savings = Annotated[Decimal, Field(ge=0)] | None


def _db(ctx: ActionContext, action: str) -> Database:
    if ctx.db is None:
        raise ActionError(f"{action}: the action changes the app database, but none was given to it")
    return ctx.db


def _actor(ctx: ActionContext) -> str:
    return f"finops:{ctx.request_id}"


def _same_model(a: str | None, b: str | None) -> bool:
    """The same model, up to gateway prefixes and a dated version (``gpt-4o`` ~ ``gpt-4o-2024-08-06``)."""
    if a is None or b is None:
        return a is b
    return is_version_of(a, b) or is_version_of(b, a)


# ----- switch-llm-model ------------------------------------------------------------------------------


class SwitchModelParams(ActionParams):
    feature: Name
    environment: Name
    from_model: Name
    to_model: Name
    #: estimated monthly savings, filled by the service from the finding (0 when not given)
    monthly_savings: Savings = None

    @model_validator(mode="after")
    def _checks(self) -> SwitchModelParams:
        if self.environment == ALL_ENVIRONMENTS:
            raise ValueError("switch a feature's model in one named environment, not '*'")
        if self.from_model == self.to_model:
            raise ValueError(f"from_model and to_model are both {self.to_model!r}: nothing to switch")
        return self


def _require_approved(action: str, config: FinOpsConfig, environment: str, model: str) -> None:
    approved = config.approved_models.get(environment)
    if approved is not None and approved_name(model, approved) is None:
        raise ActionRefused(
            f"{action}: {model} is not approved for {environment} (approved_models: "
            f"{', '.join(approved) or 'none'}); pick an approved model or get {model} approved first"
        )


@register("switch-llm-model")
class SwitchLlmModel(Action):
    """Route a feature in one environment to another model in the product's model-routing policy (the
    ``model_routes`` table, exported to the LLM gateway as a LiteLLM model-group alias). Starts from the
    feature's current model being ``from_model`` (its own route, or the ``"*"`` route it inherits), or
    from no route at all (the feature calls ``from_model`` directly; the route is created). The target
    model must be approved for the environment. Rollback: the previous route, or no route."""

    title = "Switch a feature's LLM model"
    Params = SwitchModelParams
    resource_kind = "llm-feature"
    permissions = ()
    #: routed: the environment has its own route; inherited: only the "*" route; unrouted: no route
    start_states = frozenset({"routed", "inherited", "unrouted"})
    cloud = False

    def target(self, params: SwitchModelParams) -> Target:
        return Target(self.resource_kind, f"feature={params.feature}/env={params.environment}")

    def observe(self, ctx: ActionContext, params: SwitchModelParams) -> Observed:
        db = _db(ctx, self.name)
        own = llm_policy.get_route(db, params.feature, params.environment)
        wildcard = llm_policy.get_route(db, params.feature, ALL_ENVIRONMENTS)
        state = "routed" if own is not None else "inherited" if wildcard is not None else "unrouted"
        return Observed(
            exists=True,
            state=state,
            attributes={
                "model": own.model if own is not None else None,
                "wildcard_model": wildcard.model if wildcard is not None else None,
            },
        )

    def plan(self, params: SwitchModelParams, observed: Observed, pctx: PlanContext) -> Plan:
        self.check_start_state(observed)
        _require_approved(self.name, pctx.config, params.environment, params.to_model)
        own = observed.attributes.get("model")
        wildcard = observed.attributes.get("wildcard_model")
        effective = own if own is not None else wildcard
        where = f"{params.feature} in {params.environment}"
        if effective is not None and _same_model(effective, params.to_model):
            raise ActionRefused(f"{self.name}: {where} already uses {effective}; nothing to do")
        if effective is not None and not _same_model(effective, params.from_model):
            raise ActionRefused(
                f"{self.name}: {where} is routed to {effective}, not {params.from_model} as the finding "
                "saw; re-run the scan and propose again"
            )
        target = self.target(params)
        if observed.state == "routed":
            summary = f"Route {where} from {own} to {params.to_model}"
        elif observed.state == "inherited":
            summary = (
                f"Add a route for {where} to {params.to_model} (it inherits {wildcard} from the '*' route)"
            )
        else:
            summary = f"Create a route for {where} to {params.to_model} (no route yet; it calls {params.from_model})"
        blast = (
            f"All requests of feature {params.feature} in {params.environment} that go through the gateway "
            f"use {params.to_model}; prompts and callers unchanged."
        )
        if observed.state == "inherited":
            blast += f" Other environments keep the '*' route ({wildcard})."
        if observed.state == "unrouted":
            blast += (
                f" Callers that ask for {params.from_model} by name instead of the feature's alias are not "
                "affected."
            )
        return Plan(
            action=self.name,
            params=params.model_dump(mode="json", exclude_none=True),
            target=target,
            summary=summary,
            changes=(Change(target.id, "model", own, params.to_model),),
            blast_radius=blast,
            monthly_savings=params.monthly_savings or Decimal(0),
            currency=pctx.config.currency,
            observed=observed,
            reversible=True,
            environment=params.environment,
        )

    def capture(self, ctx: ActionContext, params: SwitchModelParams, observed: Observed) -> Json:
        route = llm_policy.get_route(_db(ctx, self.name), params.feature, params.environment)
        return {
            "route": ({"model": route.model, "updated_by": route.updated_by} if route is not None else None)
        }

    @staticmethod
    def _captured_model(captured: Json) -> str | None:
        route = captured.get("route")
        return str(route["model"]) if route else None

    def apply(self, ctx: ActionContext, params: SwitchModelParams, captured: Json) -> Json:
        db = _db(ctx, self.name)
        _require_approved(self.name, ctx.config, params.environment, params.to_model)
        current = llm_policy.get_route(db, params.feature, params.environment)
        now_model = current.model if current is not None else None
        if now_model not in (self._captured_model(captured), params.to_model):
            raise ActionRefused(
                f"{self.name}: the route of {params.feature} in {params.environment} changed to {now_model} "
                "after the plan was approved; not switching it"
            )
        if now_model != params.to_model:
            llm_policy.set_route(
                db, params.feature, params.environment, params.to_model, updated_by=_actor(ctx), now=ctx.now
            )
        return {"model": params.to_model}

    def verify(
        self, ctx: ActionContext, params: SwitchModelParams, captured: Json, applied: Json
    ) -> Verification:
        effective = llm_policy.route_for(_db(ctx, self.name), params.feature, params.environment)
        ok = effective == params.to_model
        detail = f"{params.feature} in {params.environment} is routed to {effective}" + (
            "" if ok else f", not {params.to_model}"
        )
        return Verification(ok, self.observe(ctx, params), detail)

    def rollback(self, ctx: ActionContext, params: SwitchModelParams, captured: Json, applied: Json) -> Json:
        db = _db(ctx, self.name)
        previous = self._captured_model(captured)
        current = llm_policy.get_route(db, params.feature, params.environment)
        now_model = current.model if current is not None else None
        if now_model not in (params.to_model, previous):
            raise ActionRefused(
                f"{self.name}: the route of {params.feature} in {params.environment} was changed to "
                f"{now_model} since the switch; not rolling it back over that change"
            )
        if previous is None:
            llm_policy.delete_route(db, params.feature, params.environment)
        elif now_model != previous:
            llm_policy.set_route(
                db, params.feature, params.environment, previous, updated_by=_actor(ctx), now=ctx.now
            )
        return {"restored": previous}

    def verify_rollback(
        self, ctx: ActionContext, params: SwitchModelParams, captured: Json, applied: Json
    ) -> Verification:
        previous = self._captured_model(captured)
        route = llm_policy.get_route(_db(ctx, self.name), params.feature, params.environment)
        now_model = route.model if route is not None else None
        ok = now_model == previous
        expected = previous if previous is not None else "no route of its own"
        detail = f"{params.feature} in {params.environment}: route {now_model or 'none'}, expected {expected}"
        return Verification(ok, self.observe(ctx, params), detail)


# ----- set-rate-limit --------------------------------------------------------------------------------

#: parameter name -> column of ``llm_limits``
_LIMIT_FIELDS = {"tpm": "tpm", "rpm": "rpm", "max_budget": "max_budget", "tokens_per_month": "monthly_tokens"}


class SetRateLimitParams(ActionParams):
    team: Name | None = None
    project: Name | None = None
    environment: Name = ALL_ENVIRONMENTS
    tpm: Annotated[int, Field(gt=0)] | None = None
    rpm: Annotated[int, Field(gt=0)] | None = None
    max_budget: Annotated[Decimal, Field(gt=0)] | None = None
    tokens_per_month: Annotated[int, Field(gt=0)] | None = None
    #: estimated monthly savings, filled by the service from the finding (0 when not given)
    monthly_savings: Savings = None

    @model_validator(mode="after")
    def _checks(self) -> SetRateLimitParams:
        if (self.team is None) == (self.project is None):
            raise ValueError("give exactly one of team and project")
        if all(getattr(self, name) is None for name in _LIMIT_FIELDS):
            raise ValueError(f"give at least one limit: {', '.join(_LIMIT_FIELDS)}")
        return self

    @property
    def subject(self) -> str:
        if self.team is not None:
            return llm_policy.subject_of("team", self.team)
        assert self.project is not None
        return llm_policy.subject_of("project", self.project)

    def requested(self) -> dict[str, Any]:
        """The limits this request sets, by column, as ``limit_values`` writes them."""
        values = limit_values(self.tpm, self.rpm, self.max_budget, self.tokens_per_month)
        return {
            column: values[column]
            for name, column in _LIMIT_FIELDS.items()
            if getattr(self, name) is not None
        }


def _desired(params: SetRateLimitParams, previous: dict[str, Any] | None) -> dict[str, Any]:
    """The four limits after the change: the previous ones with those named in ``params`` replaced."""
    base = dict(previous) if previous else limit_values(None, None, None, None)
    base.update(params.requested())
    return base


@register("set-rate-limit")
class SetRateLimit(Action):
    """Set a team's or project's gateway limits in one environment (``"*"`` = every environment without
    limits of its own): tokens / requests per minute, a monthly budget, a monthly token budget. Limits
    not named keep their value. The limits are exported to the LLM gateway (LiteLLM teams / projects;
    LiteLLM enforces tpm, rpm and max_budget, while the monthly token budget is tracked by the FinOps
    token-budget checks). Rollback: the previous limits, or none."""

    title = "Set an LLM rate limit or budget"
    Params = SetRateLimitParams
    resource_kind = "llm-limit"
    permissions = ()
    start_states = frozenset({"limited", "unlimited"})
    cloud = False

    def target(self, params: SetRateLimitParams) -> Target:
        return Target(self.resource_kind, f"{params.subject}/env={params.environment}")

    def _current(self, ctx: ActionContext, params: SetRateLimitParams) -> dict[str, Any] | None:
        row = llm_policy.get_limits(_db(ctx, self.name), params.subject, params.environment)
        return row.values() if row is not None else None

    def observe(self, ctx: ActionContext, params: SetRateLimitParams) -> Observed:
        current = self._current(ctx, params)
        return Observed(
            exists=True,
            state="limited" if current is not None else "unlimited",
            attributes=current if current is not None else limit_values(None, None, None, None),
        )

    def plan(self, params: SetRateLimitParams, observed: Observed, pctx: PlanContext) -> Plan:
        self.check_start_state(observed)
        target = self.target(params)
        kind, name = llm_policy.parse_subject(params.subject)
        where = "every environment" if params.environment == ALL_ENVIRONMENTS else params.environment
        changes = tuple(
            Change(target.id, column, observed.attributes.get(column), value)
            for column, value in params.requested().items()
            if observed.attributes.get(column) != value
        )
        if not changes:
            raise ActionRefused(
                f"{self.name}: {kind} {name} in {where} already has these limits; nothing to do"
            )
        described = ", ".join(f"{c.attribute} {_shown(c.after)}" for c in changes)
        blast = (
            f"Requests of {kind} {name} in {where} above these limits are refused by the gateway once the "
            "exported configuration is applied; other teams and projects, and the limits not named here, "
            "are unchanged."
        )
        if "monthly_tokens" in params.requested():
            blast += (
                " The monthly token budget is checked by the FinOps token-budget rule: LiteLLM has no "
                "token-count budget and receives it as metadata only."
            )
        return Plan(
            action=self.name,
            params=params.model_dump(mode="json", exclude_none=True),
            target=target,
            summary=f"Set the gateway limits of {kind} {name} in {where}: {described}",
            changes=changes,
            blast_radius=blast,
            monthly_savings=params.monthly_savings or Decimal(0),
            currency=pctx.config.currency,
            observed=observed,
            reversible=True,
            environment=None if params.environment == ALL_ENVIRONMENTS else params.environment,
        )

    def capture(self, ctx: ActionContext, params: SetRateLimitParams, observed: Observed) -> Json:
        return {"limits": self._current(ctx, params)}

    def _write(self, ctx: ActionContext, params: SetRateLimitParams, values: dict[str, Any]) -> None:
        budget = values["max_budget"]
        llm_policy.set_limits(
            _db(ctx, self.name),
            params.subject,
            params.environment,
            tpm=values["tpm"],
            rpm=values["rpm"],
            max_budget=Decimal(budget) if budget is not None else None,
            monthly_tokens=values["monthly_tokens"],
            updated_by=_actor(ctx),
            now=ctx.now,
        )

    def apply(self, ctx: ActionContext, params: SetRateLimitParams, captured: Json) -> Json:
        previous = captured.get("limits")
        desired = _desired(params, previous)
        current = self._current(ctx, params)
        if current != desired and current != previous:
            raise ActionRefused(
                f"{self.name}: the limits of {params.subject} in {params.environment} changed to {current} "
                "after the plan was approved; not overwriting them"
            )
        if current != desired:
            self._write(ctx, params, desired)
        return {"limits": desired}

    def verify(
        self, ctx: ActionContext, params: SetRateLimitParams, captured: Json, applied: Json
    ) -> Verification:
        current = self._current(ctx, params)
        desired = _desired(params, captured.get("limits"))
        ok = current == desired
        detail = f"{params.subject} in {params.environment}: limits {current}" + (
            "" if ok else f", expected {desired}"
        )
        return Verification(ok, self.observe(ctx, params), detail)

    def rollback(self, ctx: ActionContext, params: SetRateLimitParams, captured: Json, applied: Json) -> Json:
        previous = captured.get("limits")
        desired = _desired(params, previous)
        current = self._current(ctx, params)
        if current != desired and current != previous:
            raise ActionRefused(
                f"{self.name}: the limits of {params.subject} in {params.environment} were changed to "
                f"{current} since they were set; not rolling back over that change"
            )
        if previous is None:
            llm_policy.delete_limits(_db(ctx, self.name), params.subject, params.environment)
        elif current != previous:
            self._write(ctx, params, previous)
        return {"restored": previous}

    def verify_rollback(
        self, ctx: ActionContext, params: SetRateLimitParams, captured: Json, applied: Json
    ) -> Verification:
        previous = captured.get("limits")
        current = self._current(ctx, params)
        ok = current == previous
        detail = f"{params.subject} in {params.environment}: limits {current}, expected {previous}"
        return Verification(ok, self.observe(ctx, params), detail)


def _shown(value: Any) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return str(value) if value is not None else "none"
