"""The product's own LLM policies, kept in the app database: model routes and gateway limits.

A **model route** says which model a feature uses in an environment (``model_routes``; environment
``"*"`` = every environment without a route of its own). A **limit** is a team's or project's rate
limit / budget in an environment (``llm_limits``; subject ``"team:NAME"`` or ``"project:NAME"``).
The remediation actions ``switch-llm-model`` and ``set-rate-limit`` (``approvals.actions.llm_policy``)
change them; ``litellm_config`` exports them for the LLM gateway.

Writes are upserts (``INSERT ... ON CONFLICT DO UPDATE`` on SQLite and PostgreSQL), so two writers of
the same key never fail on the unique constraint and running a write twice leaves one row.

The LiteLLM export follows LiteLLM's documentation (docs.litellm.ai):

- routes: ``router_settings.model_group_alias`` ("Model group alias mapping", ``dict`` alias -> model
  group; *proxy/config_settings*, ``router_settings`` reference). The alias is the feature's name, the
  target the routed model, which must be a ``model_name`` of the gateway's ``model_list``. Callers send
  ``model=<feature>`` and the gateway resolves it; the proxy checks access on the alias target.
- limits: LiteLLM does not read teams from config.yaml; they are created with the management API. Team
  subjects become entries with the fields of ``POST /team/new`` / ``/team/update`` (``team_alias``,
  ``models``, ``tpm_limit``, ``rpm_limit``, ``max_budget``, ``budget_duration``, ``metadata``;
  *proxy/users*, *proxy/team_budgets*); project subjects become entries with the fields of ``POST
  /project/new`` (``project_alias`` and the same limits; *proxy/project_management*, [Beta]; LiteLLM
  also requires the owning ``team_id``, which the product does not know and the sync must add).
  ``models`` = ``approved_models`` of the entry's environment. LiteLLM has no monthly *token* budget:
  ``monthly_tokens`` goes into ``metadata`` and is enforced by the FinOps token-budget checks, not by
  the gateway. ``max_budget`` is a monthly amount, hence ``budget_duration: 30d``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import yaml
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from config.model import FinOpsConfig
from tools.errors import FinOpsError
from tools.store.db import Database
from tools.store.models import LlmLimit, ModelRoute

#: the environment of a route or limit that applies to every environment without one of its own
ALL_ENVIRONMENTS = "*"
SubjectKind = Literal["team", "project"]
SUBJECT_KINDS: tuple[SubjectKind, ...] = ("team", "project")
#: LiteLLM ``budget_duration`` of an exported ``max_budget`` (a monthly amount)
BUDGET_DURATION = "30d"


class PolicyError(FinOpsError):
    """A policy value that cannot be stored or exported; the message says which and why."""


@dataclass(frozen=True)
class Route:
    feature: str
    environment: str
    model: str
    updated_at: datetime
    updated_by: str | None


@dataclass(frozen=True)
class Limits:
    subject: str
    environment: str
    tpm: int | None
    rpm: int | None
    max_budget: Decimal | None
    monthly_tokens: int | None
    updated_at: datetime
    updated_by: str | None

    def values(self) -> dict[str, Any]:
        """The four limits (``max_budget`` as a normalised decimal string), for comparisons and JSON."""
        return limit_values(self.tpm, self.rpm, self.max_budget, self.monthly_tokens)


def limit_values(
    tpm: int | None, rpm: int | None, max_budget: Decimal | None, monthly_tokens: int | None
) -> dict[str, Any]:
    """``{"tpm", "rpm", "max_budget", "monthly_tokens"}`` with ``max_budget`` as a normalised string
    (``Decimal("8000.000000")`` and ``Decimal("8E+3")`` both give ``"8000"``)."""
    return {
        "tpm": tpm,
        "rpm": rpm,
        "max_budget": decimal_text(max_budget),
        "monthly_tokens": monthly_tokens,
    }


def decimal_text(value: Decimal | None) -> str | None:
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


# ----- subjects --------------------------------------------------------------------------------------


def subject_of(kind: SubjectKind, name: str) -> str:
    """``subject_of("team", "search") == "team:search"``."""
    if kind not in SUBJECT_KINDS:
        raise PolicyError(f"a limit's subject is a team or a project, not {kind!r}")
    if not name or not name.strip():
        raise PolicyError(f"the {kind} name of a limit is empty")
    return f"{kind}:{name}"


def parse_subject(subject: str) -> tuple[SubjectKind, str]:
    """``"project:support-bot"`` -> ``("project", "support-bot")``."""
    kind, sep, name = subject.partition(":")
    if not sep or not name:
        raise PolicyError(f"limit subject {subject!r} is not 'team:NAME' or 'project:NAME'")
    for known in SUBJECT_KINDS:
        if kind == known:
            return known, name
    raise PolicyError(f"limit subject {subject!r} is not 'team:NAME' or 'project:NAME'")


# ----- model routes ----------------------------------------------------------------------------------


def _route(row: ModelRoute) -> Route:
    return Route(row.feature, row.environment, row.model, row.updated_at, row.updated_by)


def get_route(db: Database, feature: str, environment: str) -> Route | None:
    """The route row of exactly (feature, environment), without falling back to ``"*"``."""
    with db.session() as s:
        row = s.scalars(
            select(ModelRoute).where(ModelRoute.feature == feature, ModelRoute.environment == environment)
        ).first()
        return _route(row) if row is not None else None


def route_for(db: Database, feature: str, environment: str) -> str | None:
    """The model ``feature`` uses in ``environment``: its own route, else the ``"*"`` route, else None."""
    with db.session() as s:
        rows = {
            row.environment: row.model
            for row in s.scalars(
                select(ModelRoute).where(
                    ModelRoute.feature == feature,
                    ModelRoute.environment.in_([environment, ALL_ENVIRONMENTS]),
                )
            )
        }
    return rows.get(environment, rows.get(ALL_ENVIRONMENTS))


def set_route(
    db: Database,
    feature: str,
    environment: str,
    model: str,
    *,
    updated_by: str | None = None,
    now: datetime | None = None,
) -> Route:
    """Create or replace the route of (feature, environment); returns the stored route."""
    for label, value in (("feature", feature), ("environment", environment), ("model", model)):
        if not value or not value.strip():
            raise PolicyError(f"a model route needs a {label}; got {value!r}")
    at = now or datetime.now(UTC)
    with db.session() as s:
        _upsert(
            s,
            ModelRoute,
            {"feature": feature, "environment": environment},
            {"model": model, "updated_at": at, "updated_by": updated_by},
        )
    route = get_route(db, feature, environment)
    assert route is not None
    return route


def delete_route(db: Database, feature: str, environment: str) -> bool:
    """Delete the route of exactly (feature, environment); False when there was none."""
    with db.session() as s:
        result = s.execute(
            delete(ModelRoute).where(ModelRoute.feature == feature, ModelRoute.environment == environment)
        )
        return bool(getattr(result, "rowcount", 0))


def list_routes(db: Database, *, feature: str | None = None, environment: str | None = None) -> list[Route]:
    """Route rows (optionally of one feature / exactly one environment), by feature then environment."""
    query = select(ModelRoute)
    if feature is not None:
        query = query.where(ModelRoute.feature == feature)
    if environment is not None:
        query = query.where(ModelRoute.environment == environment)
    with db.session() as s:
        found = [_route(row) for row in s.scalars(query)]
    return sorted(found, key=lambda r: (r.feature, r.environment))  # code points, the same on every backend


# ----- limits ----------------------------------------------------------------------------------------


def _limits(row: LlmLimit) -> Limits:
    return Limits(
        row.subject,
        row.environment,
        row.tpm,
        row.rpm,
        row.max_budget,
        row.monthly_tokens,
        row.updated_at,
        row.updated_by,
    )


def get_limits(db: Database, subject: str, environment: str) -> Limits | None:
    """The limits row of exactly (subject, environment), without falling back to ``"*"``."""
    with db.session() as s:
        row = s.scalars(
            select(LlmLimit).where(LlmLimit.subject == subject, LlmLimit.environment == environment)
        ).first()
        return _limits(row) if row is not None else None


def limits_for(db: Database, subject: str, environment: str) -> Limits | None:
    """The limits that apply to ``subject`` in ``environment``: its own row, else the ``"*"`` row."""
    return get_limits(db, subject, environment) or get_limits(db, subject, ALL_ENVIRONMENTS)


def set_limits(
    db: Database,
    subject: str,
    environment: str,
    *,
    tpm: int | None = None,
    rpm: int | None = None,
    max_budget: Decimal | None = None,
    monthly_tokens: int | None = None,
    updated_by: str | None = None,
    now: datetime | None = None,
) -> Limits:
    """Create or replace **all four** limits of (subject, environment) (None = no limit of that kind)."""
    parse_subject(subject)
    if not environment or not environment.strip():
        raise PolicyError("a limit needs an environment ('*' for every environment)")
    for label, number in (("tpm", tpm), ("rpm", rpm), ("monthly_tokens", monthly_tokens)):
        if number is not None and number <= 0:
            raise PolicyError(f"limit {label} of {subject} must be positive; got {number}")
    if max_budget is not None and max_budget <= 0:
        raise PolicyError(f"limit max_budget of {subject} must be positive; got {max_budget}")
    if tpm is None and rpm is None and max_budget is None and monthly_tokens is None:
        raise PolicyError(
            f"no limit given for {subject} in {environment}; use delete_limits to remove its limits"
        )
    at = now or datetime.now(UTC)
    with db.session() as s:
        _upsert(
            s,
            LlmLimit,
            {"subject": subject, "environment": environment},
            {
                "tpm": tpm,
                "rpm": rpm,
                "max_budget": max_budget,
                "monthly_tokens": monthly_tokens,
                "updated_at": at,
                "updated_by": updated_by,
            },
        )
    limits = get_limits(db, subject, environment)
    assert limits is not None
    return limits


def delete_limits(db: Database, subject: str, environment: str) -> bool:
    """Delete the limits of exactly (subject, environment); False when there were none."""
    with db.session() as s:
        result = s.execute(
            delete(LlmLimit).where(LlmLimit.subject == subject, LlmLimit.environment == environment)
        )
        return bool(getattr(result, "rowcount", 0))


def list_limits(db: Database, *, subject: str | None = None, environment: str | None = None) -> list[Limits]:
    """Limit rows (optionally of one subject / exactly one environment), by subject then environment."""
    query = select(LlmLimit)
    if subject is not None:
        query = query.where(LlmLimit.subject == subject)
    if environment is not None:
        query = query.where(LlmLimit.environment == environment)
    with db.session() as s:
        found = [_limits(row) for row in s.scalars(query)]
    return sorted(found, key=lambda r: (r.subject, r.environment))


def _upsert(
    session: Session,
    model: type[ModelRoute] | type[LlmLimit],
    keys: Mapping[str, Any],
    values: Mapping[str, Any],
) -> None:
    """One atomic insert-or-update on the unique key ``keys`` (SQLite and PostgreSQL)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        pg = postgresql.insert(model).values({**keys, **values})
        session.execute(pg.on_conflict_do_update(index_elements=list(keys), set_=dict(values)))
    elif dialect == "sqlite":
        lite = sqlite.insert(model).values({**keys, **values})
        session.execute(lite.on_conflict_do_update(index_elements=list(keys), set_=dict(values)))
    else:  # pragma: no cover - the app database is SQLite or PostgreSQL
        query = select(model).with_for_update()
        for column, value in keys.items():
            query = query.where(getattr(model, column) == value)
        row = session.scalars(query).first()
        if row is None:
            session.add(model(**keys, **values))
        else:
            for column, value in values.items():
                setattr(row, column, value)


# ----- LiteLLM export --------------------------------------------------------------------------------


def litellm_config(db: Database, config: FinOpsConfig, environment: str | None = None) -> dict[str, Any]:
    """The routes and limits as a LiteLLM fragment (formats: see the module docstring).

    ``environment`` given: the fragment of that environment's gateway. Each feature's alias is its name
    and resolves as ``route_for`` does (the environment's own route, else ``"*"``); each subject has one
    entry (its own limits, else its ``"*"`` limits), with ``models`` = that environment's approved
    models (omitted when the environment has no ``approved_models`` list: every model is allowed).

    ``environment`` None: one gateway for every environment. ``"*"`` rows are named after the feature /
    subject, a row of one environment ``NAME@ENV``; ``models`` = the approved models of the row's
    environment (omitted for ``"*"`` rows).

    Result: ``{"router_settings": {"model_group_alias": {alias: model}}, "teams": [...],
    "projects": [...]}`` (``teams`` / ``projects`` only when there are some; aliases sorted, entries by
    subject then environment). Only ``router_settings`` belongs in config.yaml; ``teams`` and
    ``projects`` are bodies for LiteLLM's management API.
    """
    routes = list_routes(db)
    limits = effective_limits(db, config)
    aliases: dict[str, str] = {}
    chosen_limits: list[tuple[Limits, str]] = []
    if environment is not None:
        if environment == ALL_ENVIRONMENTS:
            raise PolicyError(
                "export one environment by its name, or every environment with environment=None"
            )
        for route in routes:  # an environment's own route wins over "*", whatever the order
            inherited = route.environment == ALL_ENVIRONMENTS and route.feature not in aliases
            if route.environment == environment or inherited:
                aliases[route.feature] = route.model
        by_subject: dict[str, Limits] = {}
        wildcard = {limit.subject: limit for limit in limits if limit.environment == ALL_ENVIRONMENTS}
        for limit in limits:
            inherited = limit.environment == ALL_ENVIRONMENTS and limit.subject not in by_subject
            if limit.environment == environment or inherited:
                by_subject[limit.subject] = limit
        for subject, limit in list(by_subject.items()):  # the environment's own limits, the rest from "*"
            star = wildcard.get(subject)
            if star is not None and limit is not star:
                by_subject[subject] = _fill(limit, star)
        chosen_limits = [(by_subject[s], parse_subject(s)[1]) for s in sorted(by_subject)]
    else:
        for route in routes:
            aliases[_export_name(route.feature, route.environment)] = route.model
        chosen_limits = [
            (limit, _export_name(parse_subject(limit.subject)[1], limit.environment)) for limit in limits
        ]

    teams: list[dict[str, Any]] = []
    projects: list[dict[str, Any]] = []
    for limit, name in chosen_limits:
        kind, _ = parse_subject(limit.subject)
        models_env = environment if environment is not None else limit.environment
        entry = _litellm_entry(limit, kind, name, config.approved_models.get(models_env))
        (teams if kind == "team" else projects).append(entry)

    fragment: dict[str, Any] = {"router_settings": {"model_group_alias": dict(sorted(aliases.items()))}}
    if teams:
        fragment["teams"] = teams
    if projects:
        fragment["projects"] = projects
    return fragment


CONFIG_ORIGIN = "finops.yaml"
_CONFIG_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def config_limits(config: FinOpsConfig) -> list[Limits]:
    """The limits finops.yaml sets: ``rate_limits`` (tpm, rpm, max_budget per team and environment) and, for
    a team without a ``max_budget`` there, its monthly budget (a budget whose scope is just that team)."""
    out: dict[tuple[str, str], Limits] = {}
    for r in config.rate_limits:
        key = (subject_of("team", r.team), r.environment or ALL_ENVIRONMENTS)
        out[key] = Limits(key[0], key[1], r.tpm, r.rpm, r.max_budget, None, _CONFIG_TIME, CONFIG_ORIGIN)
    for b in config.budgets:
        if b.period != "monthly" or set(b.scope) != {"team"}:
            continue
        subject = subject_of("team", b.scope["team"])
        if any(k[0] == subject and v.max_budget is not None for k, v in out.items()):
            continue  # rate_limits names the team's gateway budget itself
        # one budget for the team, on its "*" entry: copying it into each environment's entry would let the
        # gateway spend it once per environment (an environment's export inherits it, see litellm_config)
        base = out.get((subject, ALL_ENVIRONMENTS))
        out[(subject, ALL_ENVIRONMENTS)] = (
            replace(base, max_budget=b.amount)
            if base
            else Limits(subject, ALL_ENVIRONMENTS, None, None, b.amount, None, _CONFIG_TIME, CONFIG_ORIGIN)
        )
    return [out[k] for k in sorted(out)]


def effective_limits(db: Database, config: FinOpsConfig) -> list[Limits]:
    """finops.yaml's limits overlaid with the ones the product keeps (set by approved remediations): for the
    same subject and environment, each limit the database sets wins over the file's."""
    merged = {(limit.subject, limit.environment): limit for limit in config_limits(config)}
    for row in list_limits(db):
        key = (row.subject, row.environment)
        base = merged.get(key)
        if base is None:
            merged[key] = row
            continue
        merged[key] = Limits(
            row.subject,
            row.environment,
            row.tpm if row.tpm is not None else base.tpm,
            row.rpm if row.rpm is not None else base.rpm,
            row.max_budget if row.max_budget is not None else base.max_budget,
            row.monthly_tokens if row.monthly_tokens is not None else base.monthly_tokens,
            row.updated_at,
            row.updated_by,
        )
    return [merged[k] for k in sorted(merged)]


def _fill(own: Limits, star: Limits) -> Limits:
    """An environment's limits with the ones it does not set taken from the subject's ``"*"`` limits."""
    return replace(
        own,
        tpm=own.tpm if own.tpm is not None else star.tpm,
        rpm=own.rpm if own.rpm is not None else star.rpm,
        max_budget=own.max_budget if own.max_budget is not None else star.max_budget,
        monthly_tokens=own.monthly_tokens if own.monthly_tokens is not None else star.monthly_tokens,
    )


def _export_name(name: str, environment: str) -> str:
    return name if environment == ALL_ENVIRONMENTS else f"{name}@{environment}"


def _litellm_entry(limit: Limits, kind: SubjectKind, name: str, approved: list[str] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {f"{kind}_alias": name}
    if approved is not None:
        entry["models"] = list(approved)
    if limit.tpm is not None:
        entry["tpm_limit"] = limit.tpm
    if limit.rpm is not None:
        entry["rpm_limit"] = limit.rpm
    if limit.max_budget is not None:
        entry["max_budget"] = float(limit.max_budget)
        entry["budget_duration"] = BUDGET_DURATION
    metadata: dict[str, Any] = {"finops_subject": limit.subject, "environment": limit.environment}
    if limit.monthly_tokens is not None:
        metadata["monthly_tokens"] = limit.monthly_tokens
    entry["metadata"] = metadata
    return entry


def render_yaml(fragment: Mapping[str, Any]) -> str:
    """YAML text of a ``litellm_config`` fragment (keys in the order given, block style)."""
    header = (
        "# Generated by the FinOps assistant from its model routes and LLM limits.\n"
        "# router_settings goes into the LiteLLM proxy config.yaml; teams / projects are bodies for\n"
        "# POST /team/new (/team/update) and POST /project/new (add the owning team_id).\n"
    )
    body = yaml.safe_dump(dict(fragment), sort_keys=False, default_flow_style=False, allow_unicode=True)
    return header + body
