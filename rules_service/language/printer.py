"""Writes an AST back as condition text, with only the parentheses precedence needs."""

from __future__ import annotations

from collections.abc import Callable

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


NameHook = Callable[[FieldRef | ThresholdRef, str], str]
"""Rewrites how a field or threshold is written (given the node and its name as written)."""


def _wrap(expr: Expr, minimum: int, named: NameHook | None) -> str:
    text = format_condition(expr, named)
    return f"({text})" if _strength(expr) < minimum else text


def format_condition(expr: Expr, named: NameHook | None = None) -> str:
    """Condition text that parses back to an equal AST.

    ``named``, when given, writes each field and threshold instead (``amount 900`` to
    show a value beside its name); the text is then for reading, not for parsing.
    """
    if isinstance(expr, Or):
        return " or ".join(_wrap(e, _AND, named) for e in expr.operands)
    if isinstance(expr, And):
        return " and ".join(_wrap(e, _NOT, named) for e in expr.operands)
    if isinstance(expr, Not):
        return "not " + _wrap(expr.operand, _NOT, named)
    if isinstance(expr, Compare):
        left, right = format_condition(expr.left, named), format_condition(expr.right, named)
        return f"{left} {expr.op.value} {right}"
    if isinstance(expr, InList):
        items = ", ".join(format_condition(i, named) for i in expr.items)
        keyword = "not in" if expr.negated else "in"
        return f"{format_condition(expr.operand, named)} {keyword} [{items}]"
    if isinstance(expr, Matches):
        return f"{format_condition(expr.operand, named)} matches {_string(expr.pattern)}"
    if isinstance(expr, Exists):
        inner = format_condition(expr.field, named)
        return f"exists({inner})"
    if isinstance(expr, FieldRef):
        return named(expr, expr.dotted) if named else expr.dotted
    if isinstance(expr, ThresholdRef):
        text = f"thresholds.{expr.name}"
        return named(expr, text) if named else text
    if isinstance(expr, Literal):
        return _literal(expr.value)
    raise TypeError(f"not a condition node: {expr!r}")  # pragma: no cover


__all__ = ["format_condition"]
