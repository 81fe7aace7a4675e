"""The reference evaluator: decides a condition in plain Python, straight from the AST.

It is the specification the durable-rules engine is tested against, and the baseline of
the benchmark. Absent-field semantics: a comparison, ``in``,
``not in`` or ``matches`` on an absent field is false; ``exists(f)`` tests presence;
``not`` negates whatever its operand evaluated to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import regex

from rules_service.language.ast import (
    And,
    Compare,
    CompareOp,
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
from rules_service.language.patterns import whole_value

_ABSENT = object()


def lookup(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at a dotted path, or the ABSENT marker when any step is missing or null."""
    current: Any = data
    for name in path:
        if not isinstance(current, Mapping) or name not in current:
            return _ABSENT
        current = current[name]
        if current is None:
            return _ABSENT
    return current


def is_absent(value: Any) -> bool:
    """True for the marker ``lookup`` returns for a missing field."""
    return value is _ABSENT


def _operand(node: Operand, data: Mapping[str, Any], thresholds: Mapping[str, Any]) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, ThresholdRef):
        return thresholds[node.name]
    return lookup(data, node.path)


def _compare(op: CompareOp, left: Any, right: Any) -> bool:
    if op is CompareOp.EQ:
        return bool(left == right)
    if op is CompareOp.NE:
        return bool(left != right)
    if op is CompareOp.LT:
        return bool(left < right)
    if op is CompareOp.LE:
        return bool(left <= right)
    if op is CompareOp.GT:
        return bool(left > right)
    return bool(left >= right)


def evaluate(expr: Expr, data: Mapping[str, Any], thresholds: Mapping[str, Any]) -> bool:
    """Whether the condition holds for ``data`` (an input with its defaults applied)."""
    if isinstance(expr, And):
        return all(evaluate(e, data, thresholds) for e in expr.operands)
    if isinstance(expr, Or):
        return any(evaluate(e, data, thresholds) for e in expr.operands)
    if isinstance(expr, Not):
        return not evaluate(expr.operand, data, thresholds)
    if isinstance(expr, Exists):
        return not is_absent(lookup(data, expr.field.path))
    if isinstance(expr, Compare):
        left = _operand(expr.left, data, thresholds)
        right = _operand(expr.right, data, thresholds)
        if is_absent(left) or is_absent(right):
            return False
        return _compare(expr.op, left, right)
    if isinstance(expr, InList):
        value = _operand(expr.operand, data, thresholds)
        if is_absent(value):
            return False
        items = [_operand(i, data, thresholds) for i in expr.items]
        found = any(not is_absent(i) and i == value for i in items)
        return not found if expr.negated else found
    if isinstance(expr, Matches):
        value = _operand(expr.operand, data, thresholds)
        if is_absent(value) or not isinstance(value, str):
            return False
        # The regex module (its default VERSION0 dialect), as the engine's workers use: Python's
        # re and regex disagree on a few Unicode classes (is '¼' a \w?).
        return regex.search(whole_value(expr.pattern), value) is not None
    if isinstance(expr, FieldRef):
        return lookup(data, expr.path) is True
    if isinstance(expr, ThresholdRef):
        return thresholds.get(expr.name) is True
    if isinstance(expr, Literal):
        return expr.value is True
    raise TypeError(f"not a condition node: {expr!r}")  # pragma: no cover
