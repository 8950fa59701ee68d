"""The waste-rule contract and registry.

A rule is a class registered with ``@register``. It declares an id, a title, the resource kind it inspects,
a pydantic parameter model (defaults overridable per rule in finops.yaml, ``enabled: false`` disables it),
the evidence it records, the remediation action it proposes (an action type name, or ``None`` for a
recommendation only) and how it estimates monthly savings; ``evaluate`` yields findings and has no side
effects. An unknown rule id fails with the list of valid ids (as Cloud Custodian's registries do).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from config.model import FinOpsConfig
from tools.errors import FinOpsError
from tools.findings import Finding

if TYPE_CHECKING:
    import duckdb

    from tools.cloud.inventory import Inventory


class RuleParams(BaseModel):
    """Base of every rule's parameters. ``enabled`` is common to all rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True


@dataclass
class RuleContext:
    """What a rule may read. Everything is read-only; ``now`` is injected so tests never depend on the clock."""

    config: FinOpsConfig
    now: datetime
    costs: duckdb.DuckDBPyConnection | None = None  # the lake with the ``spend`` / ``usage_allocated`` views
    inventory: Inventory | None = None  # cloud resources and their metrics (None: no cloud access configured)
    extra: dict[str, Any] = field(default_factory=dict)


class Rule:
    """Base class of waste rules. Subclasses set the class attributes and implement ``evaluate``."""

    id: ClassVar[str]
    title: ClassVar[str]
    resource_kind: ClassVar[str]
    Params: ClassVar[type[RuleParams]] = RuleParams
    #: remediation action type name (implemented in approvals/actions), or None: recommendation only
    action: ClassVar[str | None] = None
    #: names of the evidence fields every finding of this rule carries
    evidence_fields: ClassVar[tuple[str, ...]] = ()
    #: True for rules that read the cloud inventory: a scan without one skips them (and does not resolve
    #: their open findings, which it could not look at)
    needs_inventory: ClassVar[bool] = False

    def __init__(self, params: RuleParams | None = None) -> None:
        self.params = params if params is not None else self.Params()

    @classmethod
    def description(cls) -> str:
        return (cls.__doc__ or "").strip()

    def evaluate(self, ctx: RuleContext) -> Iterator[Finding]:
        raise NotImplementedError


class UnknownRuleError(FinOpsError):
    pass


class RuleRegistry:
    def __init__(self) -> None:
        self._rules: dict[str, type[Rule]] = {}

    def register(self, rule: type[Rule]) -> type[Rule]:
        if rule.id in self._rules:
            raise ValueError(f"rule id {rule.id!r} is registered twice")
        self._rules[rule.id] = rule
        return rule

    def get(self, rule_id: str) -> type[Rule]:
        try:
            return self._rules[rule_id]
        except KeyError:
            raise UnknownRuleError(
                f"unknown rule {rule_id!r}; the rules are: {', '.join(sorted(self._rules))}"
            ) from None

    def ids(self) -> list[str]:
        return sorted(self._rules)

    def items(self) -> list[tuple[str, type[Rule]]]:
        return sorted(self._rules.items())

    def build(self, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> list[Rule]:
        """Instances of every enabled rule, with parameters from finops.yaml ``rules:`` overrides."""
        overrides = overrides or {}
        for rule_id in overrides:
            self.get(rule_id)  # unknown ids in the config are an error naming the valid ones
        out = []
        for rule_id, cls in self.items():
            params = cls.Params.model_validate(dict(overrides.get(rule_id, {})))
            if params.enabled:
                out.append(cls(params))
        return out


registry = RuleRegistry()
register = registry.register
