"""The typed syntax tree of a condition: frozen dataclasses, compared without their positions."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as _field
from enum import StrEnum


class CompareOp(StrEnum):
    """Comparison operators."""

    EQ = "=="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="

    def negated(self) -> CompareOp:
        """The operator whose result is the opposite on present, comparable values."""
        return _NEGATION[self]

    def flipped(self) -> CompareOp:
        """The operator with its operands swapped (``5 < x`` is ``x > 5``)."""
        return _FLIP[self]


_NEGATION = {
    CompareOp.EQ: CompareOp.NE, CompareOp.NE: CompareOp.EQ,
    CompareOp.LT: CompareOp.GE, CompareOp.GE: CompareOp.LT,
    CompareOp.GT: CompareOp.LE, CompareOp.LE: CompareOp.GT,
}
_FLIP = {
    CompareOp.EQ: CompareOp.EQ, CompareOp.NE: CompareOp.NE,
    CompareOp.LT: CompareOp.GT, CompareOp.GT: CompareOp.LT,
    CompareOp.LE: CompareOp.GE, CompareOp.GE: CompareOp.LE,
}

Scalar = bool | int | float | str


@dataclass(frozen=True)
class Span:
    """Where a node starts in the condition text (1-based line and column)."""

    line: int
    column: int


@dataclass(frozen=True)
class Literal:
    """A number, string or boolean written in the condition."""

    value: Scalar
    span: Span | None = _field(default=None, compare=False)


@dataclass(frozen=True)
class FieldRef:
    """An input field, dotted for nested objects: ``applicant.country``."""

    path: tuple[str, ...]
    span: Span | None = _field(default=None, compare=False)

    @property
    def dotted(self) -> str:
        """The field's name as written."""
        return ".".join(self.path)


@dataclass(frozen=True)
class ThresholdRef:
    """``thresholds.NAME``."""

    name: str
    span: Span | None = _field(default=None, compare=False)


Operand = Literal | FieldRef | ThresholdRef


@dataclass(frozen=True)
class Compare:
    """``left OP right``."""

    op: CompareOp
    left: Operand
    right: Operand
    span: Span | None = _field(default=None, compare=False)


@dataclass(frozen=True)
class InList:
    """``operand in [..]`` or, with ``negated``, ``operand not in [..]``."""

    operand: Operand
    items: tuple[Operand, ...]
    negated: bool = False
    span: Span | None = _field(default=None, compare=False)


@dataclass(frozen=True)
class Matches:
    """``operand matches "regex"`` (a search anywhere in the text, Python ``re`` syntax)."""

    operand: Operand
    pattern: str
    span: Span | None = _field(default=None, compare=False)


@dataclass(frozen=True)
class Exists:
    """``exists(field)``: the field has a value (given or by default)."""

    field: FieldRef
    span: Span | None = _field(default=None, compare=False)


@dataclass(frozen=True)
class Not:
    """``not operand``."""

    operand: Expr
    span: Span | None = _field(default=None, compare=False)


@dataclass(frozen=True)
class And:
    """``a and b and ...``."""

    operands: tuple[Expr, ...]
    span: Span | None = _field(default=None, compare=False)


@dataclass(frozen=True)
class Or:
    """``a or b or ...``."""

    operands: tuple[Expr, ...]
    span: Span | None = _field(default=None, compare=False)


Expr = Literal | FieldRef | ThresholdRef | Compare | InList | Matches | Exists | Not | And | Or
