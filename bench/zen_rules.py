"""The example rules in GoRules' zen-engine, for the bench only: each rule's typed condition
(``rules_service.language.ast``) translated into a zen expression with the same
absent-field semantics, all of them in one expression node of a JSON decision model.

Absent fields: in the reference evaluator a comparison, ``in``, ``not in`` or ``matches``
on an absent (missing or null) field is false, and ``not`` negates whatever its operand
gave. Zen raises on ``null > 5`` and answers ``true`` for ``null not in [..]``, so every
atom that reads a field is guarded by ``field != null`` (every prefix of a dotted path),
which makes the atom false exactly when the reference's is.
"""

from __future__ import annotations

import json
from typing import Any

from rules_service.domain.ruleset import Outcome, Ruleset
from rules_service.language.ast import (
    And,
    Compare,
    Exists,
    Expr,
    FieldRef,
    InList,
    Literal,
    Matches,
    Not,
    Operand,
    Or,
    ThresholdRef,
)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def _path(ref: FieldRef) -> str:
    return ".".join(ref.path)


def _present(ref: FieldRef) -> list[str]:
    """``a != null``, ``a.b != null``, ... for every prefix of the path."""
    return [".".join(ref.path[:i]) + " != null" for i in range(1, len(ref.path) + 1)]


def _operand(node: Operand, thresholds: dict[str, Any]) -> tuple[str, list[str]]:
    """The operand's zen text and the guards that make it present."""
    if isinstance(node, Literal):
        return _scalar(node.value), []
    if isinstance(node, ThresholdRef):
        return _scalar(thresholds[node.name]), []
    return _path(node), _present(node)


def _guarded(guards: list[str], atom: str) -> str:
    unique = list(dict.fromkeys(guards))
    return "(" + " and ".join([*unique, atom]) + ")"


def to_zen(expr: Expr, thresholds: dict[str, Any]) -> str:
    """A zen expression that is true exactly when the reference evaluator says ``expr`` holds."""
    if isinstance(expr, And):
        return "(" + " and ".join(to_zen(e, thresholds) for e in expr.operands) + ")"
    if isinstance(expr, Or):
        return "(" + " or ".join(to_zen(e, thresholds) for e in expr.operands) + ")"
    if isinstance(expr, Not):
        return "(not " + to_zen(expr.operand, thresholds) + ")"
    if isinstance(expr, Exists):
        return _guarded(_present(expr.field), "true")
    if isinstance(expr, Compare):
        left, lg = _operand(expr.left, thresholds)
        right, rg = _operand(expr.right, thresholds)
        return _guarded(lg + rg, f"{left} {expr.op.value} {right}")
    if isinstance(expr, InList):
        value, guards = _operand(expr.operand, thresholds)
        items = [_operand(i, thresholds) for i in expr.items]
        if any(g for _, g in items):  # a field among the items: compare one by one
            found = " or ".join(_guarded(g, f"{value} == {text}") for text, g in items)
            atom = f"not ({found})" if expr.negated else f"({found})"
        else:
            atom = f"{value} {'not in' if expr.negated else 'in'} " \
                   f"[{', '.join(text for text, _ in items)}]"
        return _guarded(guards, atom)
    if isinstance(expr, Matches):
        value, guards = _operand(expr.operand, thresholds)
        return _guarded([*guards, f'type({value}) == "string"'],
                        f"matches({value}, {json.dumps(expr.pattern)})")
    if isinstance(expr, FieldRef):
        return _guarded(_present(expr), f"{_path(expr)} == true")
    if isinstance(expr, ThresholdRef):
        return "true" if thresholds.get(expr.name) is True else "false"
    if isinstance(expr, Literal):
        return "true" if expr.value is True else "false"
    raise TypeError(f"not a condition node: {expr!r}")


def _outcome(ruleset: Ruleset, keys: dict[str, str]) -> str:
    """The most severe fired outcome, else the default, as one zen expression."""
    text = json.dumps(ruleset.default.value)
    for outcome in sorted(Outcome, key=lambda o: o.severity):
        fired = [f"$.{key}" for key, rule in keys.items()
                 if ruleset.rule(rule).then is outcome]
        if fired:
            text = f"({' or '.join(fired)}) ? {json.dumps(outcome.value)} : ({text})"
    return text


def decision_model(ruleset: Ruleset) -> dict[str, Any]:
    """A zen JSON decision model: input -> one expression node (a boolean per rule and the
    outcome) -> output."""
    keys = {f"rule_{i}": rule.id for i, rule in enumerate(ruleset.rules)}
    thresholds = dict(ruleset.thresholds)
    expressions = [{"id": f"e{i}", "key": key,
                    "value": to_zen(ruleset.rule(rule_id).condition, thresholds)}
                   for i, (key, rule_id) in enumerate(keys.items())]
    expressions.append({"id": "outcome", "key": "outcome", "value": _outcome(ruleset, keys)})
    position = {"x": 0, "y": 0}
    return {
        "nodes": [
            {"id": "input", "type": "inputNode", "name": "input", "position": position},
            {"id": "rules", "type": "expressionNode", "name": "rules", "position": position,
             "content": {"expressions": expressions}},
            {"id": "output", "type": "outputNode", "name": "output", "position": position},
        ],
        "edges": [
            {"id": "in-rules", "type": "edge", "sourceId": "input", "targetId": "rules"},
            {"id": "rules-out", "type": "edge", "sourceId": "rules", "targetId": "output"},
        ],
    }


class ZenRules:
    """The ruleset as a zen decision: fired rule ids (in rule order) and the outcome."""

    def __init__(self, ruleset: Ruleset) -> None:
        import zen  # bench-only dependency: pip install -e '.[bench]'

        self.ruleset = ruleset
        self.keys = {f"rule_{i}": rule.id for i, rule in enumerate(ruleset.rules)}
        self.decision = zen.ZenEngine().create_decision(json.dumps(decision_model(ruleset)))

    def evaluate(self, data: dict[str, Any]) -> tuple[tuple[str, ...], str]:
        """(fired rule ids, outcome) for one input with its defaults applied."""
        result = self.decision.evaluate(data)["result"]
        fired = tuple(rule_id for key, rule_id in self.keys.items() if result.get(key) is True)
        return fired, str(result["outcome"])
