"""Builders shared by the engine tests: hand-written rulesets without a YAML loader."""

from __future__ import annotations

from typing import Any

from rules_service.domain.ruleset import FieldType, InputField, Outcome, RoleHolders, Rule, Ruleset
from rules_service.language.ast import Expr
from rules_service.language.parser import parse_condition

_HOLDERS = RoleHolders("a", "b")


def field(name: str, type_: str, *properties: InputField, enum: tuple[Any, ...] | None = None
          ) -> InputField:
    """An input field of the given type name."""
    return InputField(name, FieldType(type_), enum=enum, properties=tuple(properties))


def ruleset(inputs: tuple[InputField, ...], rules: list[tuple[str, str | Expr, str]],
            thresholds: dict[str, Any] | None = None, name: str = "t",
            default: str = "approve", fallback: str = "escalate") -> Ruleset:
    """A ruleset from (id, condition text or AST, outcome) triples."""
    built = []
    for rule_id, when, then in rules:
        condition = parse_condition(when) if isinstance(when, str) else when
        text = when if isinstance(when, str) else repr(when)
        built.append(Rule(rule_id, text, condition, Outcome(then)))
    return Ruleset(
        name=name, title=name, description="", signoff=("approver",),
        thresholds=dict(thresholds or {}), inputs=inputs,
        owners={"business_owner": _HOLDERS, "operations_owner": _HOLDERS,
                "approver": _HOLDERS, "maintainer": _HOLDERS},
        rules=tuple(built), default=Outcome(default), fallback=Outcome(fallback))
