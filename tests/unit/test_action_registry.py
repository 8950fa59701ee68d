"""Meta-test of the remediation action registry: every registered action keeps the contract of
``approvals.actions.base``, and every action type the catalogue (``ACTION_TYPES``) names, which waste
rules may propose, is registered. The action list is read from the registry, never written here."""

from __future__ import annotations

import inspect

import pytest

from approvals.actions import ACTION_TYPES
from approvals.actions.base import (
    Action,
    ActionError,
    ActionParams,
    UnknownActionError,
    registry,
)

ACTIONS = registry.names()


def test_action_registry_is_not_empty() -> None:
    assert ACTIONS, "no action registered"


def test_every_catalogued_action_type_is_registered() -> None:
    missing = sorted(set(ACTION_TYPES) - set(ACTIONS))
    assert not missing, f"ACTION_TYPES names actions nobody registered: {missing}"
    unknown = sorted(set(ACTIONS) - set(ACTION_TYPES))
    assert not unknown, f"registered actions missing from ACTION_TYPES: {unknown}"


@pytest.mark.parametrize("name", ACTIONS)
def test_action_keeps_the_contract(name: str) -> None:
    cls = registry.get(name)
    assert issubclass(cls, Action) and not inspect.isabstract(cls), f"{name}: abstract or not an Action"
    assert cls.name == name and name == name.lower() and " " not in name
    assert cls.description(), f"{name}: no docstring (it is the action's description)"
    assert cls.title.strip(), f"{name}: empty title"
    assert issubclass(cls.Params, ActionParams) and cls.Params is not ActionParams, f"{name}: no Params model"
    assert cls.Params.model_config.get("extra") == "forbid", f"{name}: Params must reject unknown keys"
    assert cls.resource_kind.strip(), f"{name}: empty resource_kind"
    assert isinstance(cls.permissions, tuple) and all(
        isinstance(p, str) and p.strip() for p in cls.permissions
    )
    if cls.cloud:  # the IAM actions it calls, as service:Operation
        assert cls.permissions, f"{name}: a cloud action must list the permissions it needs"
        bad = [p for p in cls.permissions if ":" not in p or not p.split(":", 1)[1][:1].isupper()]
        assert not bad, f"{name}: not IAM action names: {bad}"
    assert isinstance(cls.start_states, frozenset) and cls.start_states, f"{name}: no start_states"
    assert not cls.irreversible or cls.makes_restorable_copy, (
        f"{name}: irreversible without making a restorable copy first"
    )
    cls()  # every step is implemented


def test_unknown_action_lists_the_known_ones() -> None:
    with pytest.raises(UnknownActionError) as err:
        registry.get("no-such-action")
    assert all(name in str(err.value) for name in ACTIONS)


def test_duplicate_or_unsafe_registration_is_refused() -> None:
    cls = registry.get(ACTIONS[0])
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(ACTIONS[0])(cls)

    class Unsafe(cls):  # type: ignore[valid-type,misc]
        irreversible = True
        makes_restorable_copy = False

    with pytest.raises(ValueError, match="irreversible"):
        registry.register("unsafe-test-action")(Unsafe)
    assert "unsafe-test-action" not in registry.names()


@pytest.mark.parametrize("name", ACTIONS)
def test_bad_parameters_name_the_action(name: str) -> None:
    with pytest.raises(ActionError, match=name):
        registry.get(name).parse_params({"no_such_parameter": 1})
