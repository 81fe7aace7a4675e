"""Writes an AST back as condition text, with only the parentheses precedence needs."""

from __future__ import annotations

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
    Or,
    ThresholdRef,
)

# Binding strength, as in the grammar: or < and < not < predicates and operands.
_OR, _AND, _NOT, _ATOM = 1, 2, 3, 4


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _string(value)
    return repr(value)


def _string(text: str) -> str:
    # Backslashes are doubled so the parser's escape rules read the exact text back.
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + body.replace("\t", "\\t").replace("\r", "\\r") + '"'


def _strength(expr: Expr) -> int:
    if isinstance(expr, Or):
        return _OR
    if isinstance(expr, And):
        return _AND
    if isinstance(expr, Not):
        return _NOT
    return _ATOM


def _wrap(expr: Expr, minimum: int) -> str:
    text = format_condition(expr)
    return f"({text})" if _strength(expr) < minimum else text


def format_condition(expr: Expr) -> str:
    """Condition text that parses back to an equal AST."""
    if isinstance(expr, Or):
        return " or ".join(_wrap(e, _AND) for e in expr.operands)
    if isinstance(expr, And):
        return " and ".join(_wrap(e, _NOT) for e in expr.operands)
    if isinstance(expr, Not):
        return "not " + _wrap(expr.operand, _NOT)
    if isinstance(expr, Compare):
        return f"{format_condition(expr.left)} {expr.op.value} {format_condition(expr.right)}"
    if isinstance(expr, InList):
        items = ", ".join(format_condition(i) for i in expr.items)
        keyword = "not in" if expr.negated else "in"
        return f"{format_condition(expr.operand)} {keyword} [{items}]"
    if isinstance(expr, Matches):
        return f"{format_condition(expr.operand)} matches {_string(expr.pattern)}"
    if isinstance(expr, Exists):
        return f"exists({expr.field.dotted})"
    if isinstance(expr, FieldRef):
        return expr.dotted
    if isinstance(expr, ThresholdRef):
        return f"thresholds.{expr.name}"
    if isinstance(expr, Literal):
        return _literal(expr.value)
    raise TypeError(f"not a condition node: {expr!r}")  # pragma: no cover


__all__ = ["format_condition"]
