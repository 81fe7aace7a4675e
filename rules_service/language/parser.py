"""Parses condition text into the typed AST with lark (LALR). Nothing is ever evaluated as code."""

from __future__ import annotations

import math
import re
from functools import lru_cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.tree import Meta

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
    Span,
    ThresholdRef,
)

MAX_CONDITION_DEPTH = 32
"""How deeply a condition may nest: each '(' and each 'not' that is still open counts one.
Checked before parsing, so neither the parser nor anything that walks the tree (type
checker, printer, compiler, evaluators) recurses deeper than this allows; people write a
handful of levels."""

RESERVED = frozenset({"and", "or", "not", "in", "matches", "exists", "true", "false"})

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "/": "/"}

_TOKEN_NAMES = {
    "NAME": "a field name",
    "NUMBER": "a number",
    "STRING": "a string",
    "COMP_OP": "a comparison (== != < <= > >=)",
    "TRUE": "true",
    "FALSE": "false",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "COMMA": "','",
    "DOT": "'.'",
    "_OR": "'or'",
    "_AND": "'and'",
    "_NOT": "'not'",
    "_IN": "'in'",
    "_MATCHES": "'matches'",
    "_EXISTS": "'exists'",
    "$END": "the end of the condition",
}


class ConditionSyntaxError(ValueError):
    """The condition text is not a valid condition; line and column are 1-based."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


@lru_cache(maxsize=1)
def _lark() -> Lark:
    grammar = resources.files("rules_service.language").joinpath("grammar.lark").read_text()
    # The basic lexer makes keywords reserved everywhere (the contextual one would read a
    # misplaced `or` as a field named "or").
    return Lark(grammar, parser="lalr", lexer="basic", propagate_positions=True,
                maybe_placeholders=False)


def _span(meta_or_token: object) -> Span | None:
    line = getattr(meta_or_token, "line", None)
    column = getattr(meta_or_token, "column", None)
    if line is None or column is None:
        return None
    return Span(int(line), int(column))


def unescape(body: str) -> str:
    """Decodes the backslash escapes of a string literal's body."""
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            # Unknown escapes stay as written so regexes read naturally: "\d+" is \d+.
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


_Children = list[Any]
"""What lark hands a rule's callback: the already transformed children."""


@v_args(meta=True)
class _ToAst(Transformer[Token, Expr]):
    def or_expr(self, meta: Meta, children: _Children) -> Or:
        return Or(tuple(children), _span(meta))

    def and_expr(self, meta: Meta, children: _Children) -> And:
        return And(tuple(children), _span(meta))

    def not_(self, meta: Meta, children: _Children) -> Not:
        return Not(children[0], _span(meta))

    def compare(self, meta: Meta, children: _Children) -> Compare:
        left, op, right = children
        return Compare(CompareOp(str(op)), left, right, _span(meta))

    def in_list(self, meta: Meta, children: _Children) -> InList:
        operand, items = children
        return InList(operand, items, False, _span(meta))

    def not_in_list(self, meta: Meta, children: _Children) -> InList:
        operand, items = children
        return InList(operand, items, True, _span(meta))

    def matches(self, meta: Meta, children: _Children) -> Matches:
        operand, pattern = children
        return Matches(operand, _string(pattern), _span(meta))

    def exists(self, meta: Meta, children: _Children) -> Exists:
        ref = children[0]
        if not isinstance(ref, FieldRef):
            raise ConditionSyntaxError("exists() takes a field name, not a threshold",
                                       *_line_col(meta))
        return Exists(ref, _span(meta))

    def list(self, meta: Meta, children: _Children) -> tuple[Any, ...]:
        return tuple(c for c in children if c is not None)

    def path(self, meta: Meta, children: _Children) -> FieldRef | ThresholdRef:
        names = tuple(str(c) for c in children)
        span = _span(meta)
        if names[0] == "thresholds":
            if len(names) != 2:
                raise ConditionSyntaxError(
                    "write a threshold as thresholds.NAME", *_line_col(meta))
            return ThresholdRef(names[1], span)
        return FieldRef(names, span)

    def number(self, meta: Meta, children: _Children) -> Literal:
        text = str(children[0])
        value: int | float
        if any(c in text for c in ".eE"):
            value = float(text)
            if not math.isfinite(value):
                raise ConditionSyntaxError(f"number {text} is too large", *_line_col(meta))
        else:
            value = int(text)
        return Literal(value, _span(meta))

    def string(self, meta: Meta, children: _Children) -> Literal:
        return Literal(_string(children[0]), _span(meta))

    def true(self, meta: Meta, children: _Children) -> Literal:
        return Literal(True, _span(meta))

    def false(self, meta: Meta, children: _Children) -> Literal:
        return Literal(False, _span(meta))


def _line_col(meta: object) -> tuple[int | None, int | None]:
    return getattr(meta, "line", None), getattr(meta, "column", None)


def _string(token: Token) -> str:
    text = str(token)
    try:
        return unescape(text[1:-1])
    except ConditionSyntaxError as exc:
        raise ConditionSyntaxError(exc.message, token.line, token.column) from None


def _describe(token: Token) -> str:
    if token.type == "$END":
        return "the end of the condition"
    return f"'{token.value}'"


def _expected(names: set[str]) -> str:
    shown = sorted({_TOKEN_NAMES.get(n, n.lower()) for n in names if not n.startswith("__")})
    if not shown:
        return ""
    return "; expected " + (", ".join(shown[:-1]) + " or " + shown[-1] if len(shown) > 1
                            else shown[0])


def _friendly(exc: UnexpectedInput, text: str) -> ConditionSyntaxError:
    line, column = getattr(exc, "line", None), getattr(exc, "column", None)
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        ch = text[pos] if pos < len(text) else "?"
        if ch in "\"'":
            msg = "a string is not closed"
        elif ch == "=":
            msg = "unexpected '='; to compare, write '=='"
        elif ch == "&" or ch == "|":
            msg = f"unexpected '{ch}'; write 'and' / 'or'"
        else:
            msg = f"unexpected character '{ch}'"
        return ConditionSyntaxError(msg, line, column)
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        if tok.type == "$END":
            return ConditionSyntaxError(
                "the condition ends too early" + _expected(set(exc.expected)), line, column)
        if tok.type == "COMP_OP":
            before = text[:tok.start_pos].rstrip() if tok.start_pos is not None else ""
            if before and before[-1] in "<>=!":
                # Two operators in a row ('>>', '<>', '> >'): a mistyped operator, not a
                # chained comparison.
                typed = before[-1] + str(tok.value)
                hint = "write '!=' for not equal" if typed == "<>" else \
                    "compare with one of == != < <= > >="
                return ConditionSyntaxError(f"'{typed}' is not an operator; {hint}",
                                            line, column)
            return ConditionSyntaxError(
                f"unexpected {_describe(tok)} (comparisons cannot be chained; join them "
                f"with 'and')" + _expected(set(exc.expected)), line, column)
        msg = f"unexpected {_describe(tok)}"
        return ConditionSyntaxError(msg + _expected(set(exc.expected)), line, column)
    if isinstance(exc, UnexpectedEOF):
        return ConditionSyntaxError("the condition ends too early" + _expected(set(exc.expected)),
                                    line, column)
    return ConditionSyntaxError(str(exc), line, column)


# What the depth check needs of a condition's tokens, by one regex pass (a fraction of the
# parser's cost): strings are skipped whole, so a '(' or 'not' inside one counts nothing.
_DEPTH_TOKENS = re.compile(r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'"""
                           r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<mark>\S)")
_OPENS_A_NOT = frozenset({None, "and", "or", "not", "("})


def _too_deep(text: str) -> ConditionSyntaxError | None:
    """The error for the first token that nests past MAX_CONDITION_DEPTH, or None.

    A prefix 'not' stays open until the 'and', 'or' or ')' that ends its operand, since it
    binds tighter than both; the 'not' of 'not in' opens nothing.
    """
    open_nots = [0]  # per parenthesis level: the prefix nots still open there
    depth = 0
    previous: str | None = None
    for token in _DEPTH_TOKENS.finditer(text):
        kind = token.group("word") or token.group("mark") or "string"
        if kind == "(":
            open_nots.append(0)
            depth += 1
        elif kind == "not" and previous in _OPENS_A_NOT:
            open_nots[-1] += 1
            depth += 1
        elif kind in ("and", "or"):
            depth -= open_nots[-1]
            open_nots[-1] = 0
        elif kind == ")" and len(open_nots) > 1:
            depth -= open_nots.pop() + 1
        if depth > MAX_CONDITION_DEPTH:
            line = text.count("\n", 0, token.start()) + 1
            column = token.start() - (text.rfind("\n", 0, token.start()) + 1) + 1
            return ConditionSyntaxError(
                f"the condition nests more than {MAX_CONDITION_DEPTH} levels deep "
                "(parentheses and 'not'); split it into simpler rules", line, column)
        previous = kind
    return None


def parse_condition(text: str) -> Expr:
    """Parses a condition; raises ConditionSyntaxError with a plain message and position."""
    if not isinstance(text, str) or not text.strip():
        raise ConditionSyntaxError("the condition is empty", 1, 1)
    too_deep = _too_deep(text)
    if too_deep is not None:
        raise too_deep
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as exc:
        raise _friendly(exc, text) from None
    try:
        result = _ToAst().transform(tree)
    except Exception as exc:  # lark wraps transformer errors in VisitError
        inner = getattr(exc, "orig_exc", exc)
        if isinstance(inner, ConditionSyntaxError):
            raise inner from None
        raise
    if isinstance(result, Tree | Token):  # pragma: no cover - grammar guarantees a node
        raise ConditionSyntaxError("not a condition", 1, 1)
    return result


__all__ = ["ConditionSyntaxError", "MAX_CONDITION_DEPTH", "Operand", "parse_condition",
           "RESERVED"]
