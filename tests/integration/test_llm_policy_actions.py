"""LLM policy store, the ``switch-llm-model`` / ``set-rate-limit`` actions, and the LiteLLM export, on
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import yaml

from approvals.actions.base import ActionContext, ActionError, ActionRefused, PlanContext
from approvals.actions.llm_policy import SetRateLimit, SwitchLlmModel
from config.loader import parse_config
from config.model import FinOpsConfig
from tools import llm_policy
from tools.store.db import Database

NOW = datetime(2024, 9, 21, 8, 0, tzinfo=UTC)
CONFIG_YAML = """
currency: USD
approved_models:
  prod: [gpt-4o-mini, gpt-4o, claude-3-5-haiku]
  dev: [gpt-4o-mini, llama-3.1-8b-instruct]
"""
#: exactly what premium-model-downgrade / unapproved-model propose
SWITCH = {"feature": "support-chat", "environment": "prod", "from_model": "gpt-4o", "to_model": "gpt-4o-mini"}


@pytest.fixture
def cfg() -> FinOpsConfig:
    return parse_config(CONFIG_YAML)


def ctx_for(db: Database, cfg: FinOpsConfig, request_id: str = "req-1") -> ActionContext:
    return ActionContext(config=cfg, now=NOW, request_id=request_id, db=db)


def run_to_applied(
    action: Any, db: Database, cfg: FinOpsConfig, raw: dict[str, Any]
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """observe, plan, capture, apply, as the service does; returns (params, captured, applied)."""
    params = action.parse_params(raw)
    ctx = ctx_for(db, cfg)
    observed = action.observe(ctx, params)
    action.plan(params, observed, PlanContext(cfg))
    captured = action.capture(ctx, params, observed)
    applied = action.apply(ctx, params, captured)
    return params, captured, applied


# ----- store -----------------------------------------------------------------------------------------


def test_routes_resolve_the_environment_before_the_wildcard(db: Database) -> None:
    assert llm_policy.route_for(db, "support-chat", "prod") is None
    llm_policy.set_route(db, "support-chat", "*", "gpt-4o", updated_by="alice", now=NOW)
    assert llm_policy.route_for(db, "support-chat", "prod") == "gpt-4o"
    assert llm_policy.get_route(db, "support-chat", "prod") is None
    llm_policy.set_route(db, "support-chat", "prod", "gpt-4o-mini", now=NOW)
    llm_policy.set_route(db, "support-chat", "prod", "claude-3-5-haiku", updated_by="bob", now=NOW)  # upsert
    assert llm_policy.route_for(db, "support-chat", "prod") == "claude-3-5-haiku"
    assert llm_policy.route_for(db, "support-chat", "dev") == "gpt-4o"
    route = llm_policy.get_route(db, "support-chat", "prod")
    assert route is not None and (route.updated_by, route.updated_at) == ("bob", NOW)
    assert [(r.feature, r.environment, r.model) for r in llm_policy.list_routes(db)] == [
        ("support-chat", "*", "gpt-4o"),
        ("support-chat", "prod", "claude-3-5-haiku"),
    ]
    assert llm_policy.delete_route(db, "support-chat", "prod") is True
    assert llm_policy.delete_route(db, "support-chat", "prod") is False
    assert llm_policy.route_for(db, "support-chat", "prod") == "gpt-4o"


def test_limits_are_replaced_whole_and_validated(db: Database) -> None:
    limits = llm_policy.set_limits(db, "team:search", "prod", tpm=2_000_000, rpm=5000, now=NOW)
    assert limits.values() == {"tpm": 2_000_000, "rpm": 5000, "max_budget": None, "monthly_tokens": None}
    limits = llm_policy.set_limits(db, "team:search", "prod", max_budget=Decimal("8000.50"), now=NOW)
    assert limits.values() == {"tpm": None, "rpm": None, "max_budget": "8000.5", "monthly_tokens": None}
    assert len(llm_policy.list_limits(db, subject="team:search")) == 1
    assert llm_policy.limits_for(db, "team:search", "dev") is None
    llm_policy.set_limits(db, "team:search", "*", rpm=10, now=NOW)
    found = llm_policy.limits_for(db, "team:search", "dev")
    assert found is not None and found.rpm == 10
    with pytest.raises(llm_policy.PolicyError, match="not 'team:NAME'"):
        llm_policy.set_limits(db, "search", "prod", rpm=1)
    with pytest.raises(llm_policy.PolicyError, match="no limit given"):
        llm_policy.set_limits(db, "team:search", "prod")
    with pytest.raises(llm_policy.PolicyError, match="positive"):
        llm_policy.set_limits(db, "team:search", "prod", tpm=0)
    assert llm_policy.delete_limits(db, "team:search", "prod") is True
    assert llm_policy.get_limits(db, "team:search", "prod") is None


# ----- switch-llm-model ------------------------------------------------------------------------------


def test_switch_params_accept_exactly_the_rule_proposal() -> None:
    params = SwitchLlmModel.parse_params(SWITCH)
    assert SwitchLlmModel.name == "switch-llm-model" and SwitchLlmModel.cloud is False
    assert SwitchLlmModel().target(params).id == "feature=support-chat/env=prod"
    assert SwitchLlmModel().target(params).kind == "llm-feature"
    assert SwitchLlmModel.parse_params({**SWITCH, "monthly_savings": "120.50"}).monthly_savings == Decimal(
        "120.50"
    )
    for bad, message in (
        ({**SWITCH, "region": "x"}, "region"),
        ({k: v for k, v in SWITCH.items() if k != "to_model"}, "to_model"),
        ({**SWITCH, "environment": "*"}, "named environment"),
        ({**SWITCH, "to_model": "gpt-4o"}, "nothing to switch"),
        ({**SWITCH, "monthly_savings": "-1"}, "monthly_savings"),
    ):
        with pytest.raises(ActionError, match=message):
            SwitchLlmModel.parse_params(bad)


def test_switch_creates_a_route_when_there_is_none_and_rolls_back_by_deleting_it(
    db: Database, cfg: FinOpsConfig
) -> None:
    action = SwitchLlmModel()
    params = action.parse_params({**SWITCH, "monthly_savings": "310.25"})
    ctx = ctx_for(db, cfg)
    observed = action.observe(ctx, params)
    assert (observed.state, dict(observed.attributes)) == (
        "unrouted",
        {"model": None, "wildcard_model": None},
    )
    plan = action.plan(params, observed, PlanContext(cfg))
    assert plan.summary.startswith("Create a route for support-chat in prod to gpt-4o-mini")
    assert [(c.resource, c.attribute, c.before, c.after) for c in plan.changes] == [
        ("feature=support-chat/env=prod", "model", None, "gpt-4o-mini")
    ]
    assert plan.blast_radius.startswith(
        "All requests of feature support-chat in prod that go through the gateway use gpt-4o-mini; "
        "prompts and callers unchanged."
    )
    assert plan.monthly_savings == Decimal("310.25") and plan.currency == "USD"
    assert plan.reversible and plan.environment == "prod"
    assert plan.params == {**SWITCH, "monthly_savings": "310.25"}

    captured = action.capture(ctx, params, observed)
    assert captured == {"route": None}
    applied = action.apply(ctx, params, captured)
    route = llm_policy.get_route(db, "support-chat", "prod")
    assert route is not None and (route.model, route.updated_by) == ("gpt-4o-mini", "finops:req-1")
    assert action.verify(ctx, params, captured, applied).ok

    assert action.apply(ctx, params, captured) == applied  # idempotent: a retry finds its own change
    assert len(llm_policy.list_routes(db)) == 1
    with pytest.raises(ActionRefused, match="already uses gpt-4o-mini"):
        action.plan(params, action.observe(ctx, params), PlanContext(cfg))

    action.rollback(ctx, params, captured, applied)
    assert llm_policy.list_routes(db) == []
    assert action.verify_rollback(ctx, params, captured, applied).ok
    action.rollback(ctx, params, captured, applied)  # idempotent too
    assert action.verify_rollback(ctx, params, captured, applied).ok


def test_switch_replaces_an_existing_route_and_restores_it(db: Database, cfg: FinOpsConfig) -> None:
    llm_policy.set_route(db, "support-chat", "prod", "gpt-4o-2024-08-06", updated_by="alice", now=NOW)
    action = SwitchLlmModel()
    params, captured, applied = run_to_applied(action, db, cfg, SWITCH)  # dated version of from_model
    assert captured == {"route": {"model": "gpt-4o-2024-08-06", "updated_by": "alice"}}
    assert llm_policy.route_for(db, "support-chat", "prod") == "gpt-4o-mini"
    ctx = ctx_for(db, cfg)
    assert action.verify(ctx, params, captured, applied).ok
    assert not action.verify_rollback(ctx, params, captured, applied).ok
    action.rollback(ctx, params, captured, applied)
    assert llm_policy.route_for(db, "support-chat", "prod") == "gpt-4o-2024-08-06"
    assert action.verify_rollback(ctx, params, captured, applied).ok
    assert not action.verify(ctx, params, captured, applied).ok


def test_switch_overrides_an_inherited_wildcard_route_for_one_environment(
    db: Database, cfg: FinOpsConfig
) -> None:
    llm_policy.set_route(db, "support-chat", "*", "gpt-4o", now=NOW)
    action = SwitchLlmModel()
    params = action.parse_params(SWITCH)
    ctx = ctx_for(db, cfg)
    observed = action.observe(ctx, params)
    assert (observed.state, observed.attributes["wildcard_model"]) == ("inherited", "gpt-4o")
    plan = action.plan(params, observed, PlanContext(cfg))
    assert "inherits gpt-4o" in plan.summary and "Other environments keep the '*' route" in plan.blast_radius
    captured = action.capture(ctx, params, observed)
    applied = action.apply(ctx, params, captured)
    assert llm_policy.route_for(db, "support-chat", "prod") == "gpt-4o-mini"
    assert llm_policy.route_for(db, "support-chat", "dev") == "gpt-4o"
    action.rollback(ctx, params, captured, applied)
    assert llm_policy.get_route(db, "support-chat", "prod") is None
    assert llm_policy.route_for(db, "support-chat", "prod") == "gpt-4o"


def test_switch_refuses_a_model_not_approved_for_the_environment(db: Database, cfg: FinOpsConfig) -> None:
    action = SwitchLlmModel()
    ctx = ctx_for(db, cfg)
    params = action.parse_params({**SWITCH, "to_model": "gpt-4-turbo"})
    with pytest.raises(ActionRefused, match="gpt-4-turbo is not approved for prod"):
        action.plan(params, action.observe(ctx, params), PlanContext(cfg))
    with pytest.raises(ActionRefused, match="not approved"):  # also at execution, should config change
        action.apply(ctx, params, {"route": None})
    assert llm_policy.list_routes(db) == []
    # a dated version of an approved name is approved; an environment without a list is not governed
    dated = action.parse_params({**SWITCH, "to_model": "gpt-4o-mini-2024-07-18"})
    action.plan(dated, action.observe(ctx, dated), PlanContext(cfg))
    staging = action.parse_params({**SWITCH, "environment": "staging", "to_model": "gpt-4-turbo"})
    action.plan(staging, action.observe(ctx, staging), PlanContext(cfg))


def test_switch_refuses_when_the_route_is_not_the_model_the_finding_saw(
    db: Database, cfg: FinOpsConfig
) -> None:
    llm_policy.set_route(db, "support-chat", "prod", "claude-3-5-haiku", now=NOW)
    action = SwitchLlmModel()
    ctx = ctx_for(db, cfg)
    params = action.parse_params(SWITCH)
    with pytest.raises(ActionRefused, match="routed to claude-3-5-haiku, not gpt-4o"):
        action.plan(params, action.observe(ctx, params), PlanContext(cfg))


def test_switch_plan_hash_is_stable_and_changes_when_the_routes_drift(
    db: Database, cfg: FinOpsConfig
) -> None:
    llm_policy.set_route(db, "support-chat", "prod", "gpt-4o", updated_by="alice", now=NOW)
    action = SwitchLlmModel()
    ctx = ctx_for(db, cfg)
    params = action.parse_params(SWITCH)

    def plan_hash() -> str:
        return action.plan(params, action.observe(ctx, params), PlanContext(cfg)).hash()

    first = plan_hash()
    assert plan_hash() == first
    # rewriting the same model (another person, later) is not drift: timestamps are not observed
    llm_policy.set_route(db, "support-chat", "prod", "gpt-4o", updated_by="bob", now=datetime.now(UTC))
    assert plan_hash() == first
    llm_policy.set_route(db, "support-chat", "*", "gpt-4o-mini", now=NOW)  # the wildcard changed: drift
    assert plan_hash() != first
    llm_policy.delete_route(db, "support-chat", "*")
    assert plan_hash() == first
    llm_policy.set_route(db, "support-chat", "prod", "claude-3-5-haiku", now=NOW)  # the route changed
    with pytest.raises(ActionRefused):
        plan_hash()


def test_switch_apply_and_rollback_refuse_to_overwrite_someone_elses_change(
    db: Database, cfg: FinOpsConfig
) -> None:
    llm_policy.set_route(db, "support-chat", "prod", "gpt-4o", now=NOW)
    action = SwitchLlmModel()
    ctx = ctx_for(db, cfg)
    params = action.parse_params(SWITCH)
    captured = action.capture(ctx, params, action.observe(ctx, params))
    llm_policy.set_route(db, "support-chat", "prod", "claude-3-5-haiku", updated_by="carol", now=NOW)
    with pytest.raises(ActionRefused, match="changed to claude-3-5-haiku"):
        action.apply(ctx, params, captured)
    llm_policy.set_route(db, "support-chat", "prod", "gpt-4o", now=NOW)
    applied = action.apply(ctx, params, captured)
    llm_policy.set_route(db, "support-chat", "prod", "claude-3-5-haiku", updated_by="carol", now=NOW)
    with pytest.raises(ActionRefused, match="not rolling it back"):
        action.rollback(ctx, params, captured, applied)
    assert llm_policy.route_for(db, "support-chat", "prod") == "claude-3-5-haiku"


def test_switch_needs_the_app_database(cfg: FinOpsConfig) -> None:
    action = SwitchLlmModel()
    params = action.parse_params(SWITCH)
    with pytest.raises(ActionError, match="app database"):
        action.observe(ActionContext(config=cfg, now=NOW, request_id="r"), params)


# ----- set-rate-limit --------------------------------------------------------------------------------


def test_rate_limit_params() -> None:
    rule_proposal = {"project": "support-bot", "tokens_per_month": 3_000_000_000}
    params = SetRateLimit.parse_params(rule_proposal)
    assert SetRateLimit.name == "set-rate-limit" and SetRateLimit.cloud is False
    target = SetRateLimit().target(params)
    assert (target.kind, target.id) == ("llm-limit", "project:support-bot/env=*")
    full = SetRateLimit.parse_params(
        {"team": "growth", "environment": "prod", "tpm": 200_000, "rpm": 300, "max_budget": 8000}
    )
    assert SetRateLimit().target(full).id == "team:growth/env=prod"
    for bad, message in (
        ({"tokens_per_month": 5}, "exactly one of team and project"),
        ({"team": "a", "project": "b", "rpm": 1}, "exactly one of team and project"),
        ({"team": "a"}, "at least one limit"),
        ({"team": "a", "rpm": 0}, "rpm"),
        ({"team": "a", "rpm": 1, "burst": 2}, "burst"),
    ):
        with pytest.raises(ActionError, match=message):
            SetRateLimit.parse_params(bad)


def test_rate_limit_from_the_token_budget_rule_sets_and_rolls_back(db: Database, cfg: FinOpsConfig) -> None:
    action = SetRateLimit()
    params = action.parse_params({"project": "support-bot", "tokens_per_month": 3_000_000_000})
    ctx = ctx_for(db, cfg)
    observed = action.observe(ctx, params)
    assert observed.state == "unlimited"
    plan = action.plan(params, observed, PlanContext(cfg))
    assert plan.summary == (
        "Set the gateway limits of project support-bot in every environment: monthly_tokens 3,000,000,000"
    )
    assert [(c.attribute, c.before, c.after) for c in plan.changes] == [
        ("monthly_tokens", None, 3_000_000_000)
    ]
    assert "LiteLLM has no token-count budget" in plan.blast_radius
    assert plan.monthly_savings == 0 and plan.environment is None

    captured = action.capture(ctx, params, observed)
    assert captured == {"limits": None}
    applied = action.apply(ctx, params, captured)
    row = llm_policy.get_limits(db, "project:support-bot", "*")
    assert row is not None and row.monthly_tokens == 3_000_000_000 and row.updated_by == "finops:req-1"
    assert action.verify(ctx, params, captured, applied).ok
    assert action.apply(ctx, params, captured) == applied  # idempotent
    assert len(llm_policy.list_limits(db)) == 1
    with pytest.raises(ActionRefused, match="already has these limits"):
        action.plan(params, action.observe(ctx, params), PlanContext(cfg))

    action.rollback(ctx, params, captured, applied)
    assert llm_policy.list_limits(db) == []
    assert action.verify_rollback(ctx, params, captured, applied).ok


def test_rate_limit_keeps_unnamed_limits_and_restores_the_previous_ones(
    db: Database, cfg: FinOpsConfig
) -> None:
    llm_policy.set_limits(db, "team:growth", "prod", tpm=200_000, rpm=300, updated_by="alice", now=NOW)
    action = SetRateLimit()
    raw = {"team": "growth", "environment": "prod", "rpm": 100, "max_budget": "8000"}
    params = action.parse_params(raw)
    ctx = ctx_for(db, cfg)
    observed = action.observe(ctx, params)
    plan = action.plan(params, observed, PlanContext(cfg))
    assert [(c.attribute, c.before, c.after) for c in plan.changes] == [
        ("rpm", 300, 100),
        ("max_budget", None, "8000"),
    ]
    assert plan.environment == "prod"
    first = plan.hash()
    assert action.plan(params, action.observe(ctx, params), PlanContext(cfg)).hash() == first
    llm_policy.set_limits(db, "team:growth", "prod", tpm=250_000, rpm=300, now=NOW)  # drift
    assert action.plan(params, action.observe(ctx, params), PlanContext(cfg)).hash() != first
    llm_policy.set_limits(db, "team:growth", "prod", tpm=200_000, rpm=300, updated_by="alice", now=NOW)

    captured = action.capture(ctx, params, observed)
    applied = action.apply(ctx, params, captured)
    after = llm_policy.get_limits(db, "team:growth", "prod")
    assert after is not None
    assert after.values() == {"tpm": 200_000, "rpm": 100, "max_budget": "8000", "monthly_tokens": None}
    assert action.verify(ctx, params, captured, applied).ok
    action.rollback(ctx, params, captured, applied)
    restored = llm_policy.get_limits(db, "team:growth", "prod")
    assert restored is not None
    assert restored.values() == {"tpm": 200_000, "rpm": 300, "max_budget": None, "monthly_tokens": None}
    assert action.verify_rollback(ctx, params, captured, applied).ok


def test_rate_limit_apply_refuses_after_a_concurrent_change(db: Database, cfg: FinOpsConfig) -> None:
    action = SetRateLimit()
    params = action.parse_params({"team": "search", "environment": "prod", "tpm": 1000})
    ctx = ctx_for(db, cfg)
    captured = action.capture(ctx, params, action.observe(ctx, params))
    llm_policy.set_limits(db, "team:search", "prod", rpm=5, now=NOW)
    with pytest.raises(ActionRefused, match="changed"):
        action.apply(ctx, params, captured)


# ----- LiteLLM export --------------------------------------------------------------------------------


@pytest.fixture
def policies(db: Database) -> Database:
    llm_policy.set_route(db, "support-chat", "*", "gpt-4o", now=NOW)
    llm_policy.set_route(db, "support-chat", "prod", "gpt-4o-mini", now=NOW)
    llm_policy.set_route(db, "ad-copy", "dev", "llama-3.1-8b-instruct", now=NOW)
    llm_policy.set_limits(db, "team:search", "prod", tpm=2_000_000, rpm=5000, now=NOW)
    llm_policy.set_limits(db, "team:search", "*", rpm=100, now=NOW)
    llm_policy.set_limits(db, "team:growth", "*", max_budget=Decimal("8000"), now=NOW)
    llm_policy.set_limits(db, "project:support-bot", "*", monthly_tokens=3_000_000_000, now=NOW)
    return db


def test_litellm_config_for_one_environment(policies: Database, cfg: FinOpsConfig) -> None:
    prod_models = ["gpt-4o-mini", "gpt-4o", "claude-3-5-haiku"]
    assert llm_policy.litellm_config(policies, cfg, "prod") == {
        "router_settings": {"model_group_alias": {"support-chat": "gpt-4o-mini"}},
        "teams": [
            {
                "team_alias": "growth",
                "models": prod_models,
                "max_budget": 8000.0,
                "budget_duration": "30d",
                "metadata": {"finops_subject": "team:growth", "environment": "*"},
            },
            {
                "team_alias": "search",
                "models": prod_models,
                "tpm_limit": 2_000_000,
                "rpm_limit": 5000,
                "metadata": {"finops_subject": "team:search", "environment": "prod"},
            },
        ],
        "projects": [
            {
                "project_alias": "support-bot",
                "models": prod_models,
                "metadata": {
                    "finops_subject": "project:support-bot",
                    "environment": "*",
                    "monthly_tokens": 3_000_000_000,
                },
            }
        ],
    }
    dev = llm_policy.litellm_config(policies, cfg, "dev")
    assert dev["router_settings"]["model_group_alias"] == {
        "ad-copy": "llama-3.1-8b-instruct",
        "support-chat": "gpt-4o",
    }
    assert [t["rpm_limit"] for t in dev["teams"] if t["team_alias"] == "search"] == [100]
    staging = llm_policy.litellm_config(policies, cfg, "staging")  # no approved_models list: no models key
    assert all("models" not in entry for entry in staging["teams"] + staging["projects"])


def test_litellm_config_for_every_environment_and_its_yaml(policies: Database, cfg: FinOpsConfig) -> None:
    fragment = llm_policy.litellm_config(policies, cfg)
    assert fragment["router_settings"] == {
        "model_group_alias": {
            "ad-copy@dev": "llama-3.1-8b-instruct",
            "support-chat": "gpt-4o",
            "support-chat@prod": "gpt-4o-mini",
        }
    }
    assert [(t["team_alias"], t.get("models"), t.get("rpm_limit")) for t in fragment["teams"]] == [
        ("growth", None, None),
        ("search", None, 100),
        ("search@prod", ["gpt-4o-mini", "gpt-4o", "claude-3-5-haiku"], 5000),
    ]
    assert [p["project_alias"] for p in fragment["projects"]] == ["support-bot"]
    text = llm_policy.render_yaml(fragment)
    assert text.startswith("# Generated by the FinOps assistant")
    assert yaml.safe_load(text) == fragment
    assert "router_settings:\n  model_group_alias:\n    ad-copy@dev: llama-3.1-8b-instruct\n" in text


def test_litellm_config_without_policies(db: Database, cfg: FinOpsConfig) -> None:
    assert llm_policy.litellm_config(db, cfg) == {"router_settings": {"model_group_alias": {}}}
    with pytest.raises(llm_policy.PolicyError, match="by its name"):
        llm_policy.litellm_config(db, cfg, "*")
