"""Meta-test of the waste-rule registry: every registered rule keeps the contract (as Cloud Custodian's
tests/test_policy.py walks its registries). The rule list is read from the registry, never written here."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from approvals.actions import ACTION_TYPES
from config.model import FinOpsConfig
from tools.rules import load_rules, registry
from tools.rules.base import Rule, RuleParams, UnknownRuleError

load_rules()
RULE_IDS = registry.ids()
TESTS = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve()


def _test_sources() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in TESTS.rglob("*.py") if p.resolve() != THIS)


def test_rule_registry_is_not_empty() -> None:
    assert RULE_IDS, "load_rules() registered no rule"


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_rule_registry_rule_keeps_the_contract(rule_id: str) -> None:
    cls = registry.get(rule_id)
    assert issubclass(cls, Rule)
    assert cls.id == rule_id and cls.id.strip() and cls.id == cls.id.lower() and " " not in cls.id
    assert cls.title.strip(), f"{rule_id}: empty title"
    assert cls.resource_kind.strip(), f"{rule_id}: empty resource_kind"
    assert cls.description(), f"{rule_id}: no docstring (it is the rule's description)"
    assert issubclass(cls.Params, RuleParams) and cls.Params is not RuleParams, (
        f"{rule_id}: no Params subclass"
    )
    missing = [name for name, f in cls.Params.model_fields.items() if f.is_required()]
    assert not missing, f"{rule_id}: parameters without a default: {missing}"
    cls.Params()  # builds from defaults alone
    assert cls.evidence_fields, f"{rule_id}: evidence_fields is empty"
    assert len(set(cls.evidence_fields)) == len(cls.evidence_fields)
    assert cls.action is None or cls.action in ACTION_TYPES, (
        f"{rule_id}: action {cls.action!r} is not one of {sorted(ACTION_TYPES)}"
    )
    assert cls.evaluate is not Rule.evaluate, f"{rule_id}: does not implement evaluate"


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_rule_registry_every_rule_has_a_test(rule_id: str) -> None:
    assert rule_id in _test_sources(), f"no test under tests/ mentions rule {rule_id!r}"


def test_rule_registry_unknown_id_lists_valid_ids() -> None:
    with pytest.raises(UnknownRuleError) as err:
        registry.get("no-such-rule")
    message = str(err.value)
    assert "no-such-rule" in message and all(rule_id in message for rule_id in RULE_IDS)
    with pytest.raises(UnknownRuleError, match="no-such-rule"):
        registry.build({"no-such-rule": {"enabled": False}})


def test_rule_registry_duplicate_id_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(registry.get(RULE_IDS[0]))


def _overridable(cls: type[Rule]) -> tuple[str, object] | None:
    """A parameter (other than enabled) with a numeric default, and a different valid value for it."""
    for name, f in cls.Params.model_fields.items():
        default = f.get_default(call_default_factory=True)
        if name != "enabled" and isinstance(default, int | float) and not isinstance(default, bool):
            for candidate in (default + 1, default - 1, default * 2):
                try:
                    cls.Params(**{name: candidate})
                except ValidationError:
                    continue
                return name, candidate
    return None


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_rule_registry_config_override_changes_a_parameter(rule_id: str) -> None:
    cls = registry.get(rule_id)
    found = _overridable(cls)
    if found is None:
        pytest.skip(f"{rule_id} has no numeric parameter to override")
    name, value = found
    config = FinOpsConfig(rules={rule_id: {name: value}})
    built = {r.id: r for r in registry.build(config.rules)}
    assert getattr(built[rule_id].params, name) == value
    others = [r for r in built.values() if r.id != rule_id]
    assert all(r.params == type(r).Params() for r in others)


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_rule_registry_enabled_false_disables(rule_id: str) -> None:
    config = FinOpsConfig(rules={rule_id: {"enabled": False}})
    built = [r.id for r in registry.build(config.rules)]
    assert rule_id not in built
    assert sorted(built) == sorted(set(RULE_IDS) - {rule_id})


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_rule_registry_unknown_parameter_is_an_error(rule_id: str) -> None:
    with pytest.raises(ValidationError, match="no_such_parameter"):
        registry.build({rule_id: {"no_such_parameter": 1}})


def test_rule_registry_defaults_enable_every_rule() -> None:
    assert sorted(r.id for r in registry.build()) == RULE_IDS
