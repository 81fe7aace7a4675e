"""Checks a parsed condition against the ruleset's inputs and thresholds (COMMON type rules).

Every problem is reported, not just the first, each with the line and column of the
offending part relative to the condition text.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

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
from rules_service.language.patterns import regex_problem
from rules_service.language.types import FieldType, InputField
from rules_service.language.wording import TYPE_WORDS, show

FieldMap = Mapping[tuple[str, ...], InputField]

_NUMERIC = frozenset({FieldType.NUMBER, FieldType.INTEGER})
_ORDERING = frozenset({CompareOp.LT, CompareOp.LE, CompareOp.GT, CompareOp.GE})

@dataclass(frozen=True)
class TypeProblem:
    """A type error in a condition; line and column are 1-based, relative to the condition."""

    message: str
    line: int | None = None
    column: int | None = None


def field_paths(inputs: Iterable[InputField]) -> dict[tuple[str, ...], InputField]:
    """Every input field, nested ones included, by its dotted path."""
    out: dict[tuple[str, ...], InputField] = {}

    def walk(prefix: tuple[str, ...], fields: Iterable[InputField]) -> None:
        for f in fields:
            path = (*prefix, f.name)
            out[path] = f
            if f.type is FieldType.OBJECT:
                walk(path, f.properties)

    walk((), inputs)
    return out


def value_type(value: Any) -> FieldType | None:
    """The field type a scalar value has (None for anything else)."""
    if isinstance(value, bool):
        return FieldType.BOOLEAN
    if isinstance(value, int):
        return FieldType.INTEGER
    if isinstance(value, float):
        return FieldType.NUMBER
    if isinstance(value, str):
        return FieldType.STRING
    return None


def compatible(field_type: FieldType, value: Any) -> bool:
    """Whether a scalar value can be compared with a field of that type."""
    vt = value_type(value)
    if vt is None:
        return False
    if field_type in _NUMERIC:
        return vt in _NUMERIC
    return vt is field_type


def _enum_text(values: tuple[Any, ...]) -> str:
    return ", ".join(show(v) for v in values)


class _Checker:
    def __init__(self, fields: FieldMap, thresholds: Mapping[str, Any]):
        self.fields = fields
        self.thresholds = thresholds
        self.problems: list[TypeProblem] = []

    def add(self, message: str, span: Span | None) -> None:
        self.problems.append(TypeProblem(message, span.line if span else None,
                                         span.column if span else None))

    # -- references -------------------------------------------------------------------

    def field(self, ref: FieldRef) -> InputField | None:
        """The field a reference names, or None after reporting why it names none."""
        found = self.fields.get(ref.path)
        if found is not None:
            return found
        # A step through a field that is not an object is a clearer message than "unknown".
        for i in range(1, len(ref.path)):
            parent = self.fields.get(ref.path[:i])
            if parent is not None and parent.type is not FieldType.OBJECT:
                self.add(f"'{'.'.join(ref.path[:i])}' is {TYPE_WORDS[parent.type]}, "
                         f"it has no field '{ref.path[i]}'", ref.span)
                return None
        names = [".".join(p) for p in self.fields]
        message = f"unknown field '{ref.dotted}'"
        # 'applicant.cuntry' most likely means a sibling inside applicant: compare last names.
        parent_path = ref.path[:-1]
        siblings = [p[-1] for p in self.fields if p[:-1] == parent_path]
        close = [".".join((*parent_path, c)) for c in
                 difflib.get_close_matches(ref.path[-1], siblings, n=3, cutoff=0.6)]
        if not close:
            close = difflib.get_close_matches(ref.dotted, names, n=3, cutoff=0.6)
        if close:
            message += "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
        elif not names:
            message += "; the ruleset declares no inputs"
        elif len(names) <= 12:
            message += "; the fields are " + ", ".join(sorted(names))
        self.add(message, ref.span)
        return None

    def threshold(self, ref: ThresholdRef) -> tuple[bool, Any]:
        """(known, value) of a threshold; reports unknown ones."""
        if ref.name in self.thresholds:
            return True, self.thresholds[ref.name]
        message = f"unknown threshold 'thresholds.{ref.name}'"
        close = difflib.get_close_matches(ref.name, list(self.thresholds), n=3, cutoff=0.6)
        if close:
            message += "; did you mean " + " or ".join(f"'thresholds.{c}'" for c in close) + "?"
        else:
            message += "; add it under thresholds:"
        self.add(message, ref.span)
        return False, None

    # -- conditions -------------------------------------------------------------------

    def condition(self, expr: Expr) -> None:
        """Checks a node used where a true/false condition is expected."""
        if isinstance(expr, And | Or):
            for e in expr.operands:
                self.condition(e)
        elif isinstance(expr, Not):
            self.condition(expr.operand)
        elif isinstance(expr, Compare):
            self.compare(expr)
        elif isinstance(expr, InList):
            self.in_list(expr)
        elif isinstance(expr, Matches):
            self.matches(expr)
        elif isinstance(expr, Exists):
            self.field(expr.field)
        elif isinstance(expr, FieldRef):
            f = self.field(expr)
            if f is not None and f.type is not FieldType.BOOLEAN:
                self.add(f"'{expr.dotted}' is {TYPE_WORDS[f.type]}, not true/false; compare "
                         f"it with something (for example {expr.dotted} == ...)", expr.span)
        elif isinstance(expr, ThresholdRef):
            known, value = self.threshold(expr)
            if known and not isinstance(value, bool):
                self.add(f"'thresholds.{expr.name}' is not true/false, so it cannot be a "
                         "condition on its own", expr.span)
        elif isinstance(expr, Literal) and not isinstance(expr.value, bool):
            self.add(f"{show(expr.value)} on its own is not a condition; "
                     "compare a field with it", expr.span)

    def _constant(self, node: Operand) -> tuple[bool, Any]:
        """(usable, value) of a literal or threshold operand."""
        if isinstance(node, Literal):
            return True, node.value
        if isinstance(node, ThresholdRef):
            return self.threshold(node)
        return False, None  # pragma: no cover - callers pass constants only

    def _value_fits(self, f: InputField, dotted: str, value: Any, node: Operand,
                    what: str) -> None:
        """Reports a constant that has the wrong type for, or can never equal, a field."""
        shown = self._name(node, value)
        if not compatible(f.type, value):
            self.add(f"'{dotted}' is {TYPE_WORDS[f.type]}, so it cannot {what} {shown}",
                     node.span)
            return
        if f.enum is not None and not any(compatible(f.type, e) and e == value
                                          for e in f.enum):
            self.add(f"{shown} is not one of the allowed values of '{dotted}' "
                     f"({_enum_text(f.enum)}), so this can never match", node.span)
            return
        if f.type is FieldType.INTEGER and isinstance(value, float) and not value.is_integer():
            self.add(f"'{dotted}' is a whole number, so it can never equal {shown}", node.span)

    def compare(self, expr: Compare) -> None:
        left, right = expr.left, expr.right
        if isinstance(left, FieldRef) and isinstance(right, FieldRef):
            self.add(f"comparing two fields ('{left.dotted}' and '{right.dotted}') is not "
                     "supported; compare a field with a value or a threshold", expr.span)
            self.field(left)
            self.field(right)
            return
        if not isinstance(left, FieldRef) and not isinstance(right, FieldRef):
            for node in (left, right):
                if isinstance(node, ThresholdRef):
                    self.threshold(node)
            self.add("this comparison does not involve any input field, so it is always "
                     "true or always false", expr.span)
            return
        field_ref, other = (left, right) if isinstance(left, FieldRef) else (right, left)
        assert isinstance(field_ref, FieldRef)  # narrowed above
        f = self.field(field_ref)
        usable, value = self._constant(other)
        if f is None:
            return
        if f.type is FieldType.OBJECT:
            self.add(f"'{field_ref.dotted}' is a group of fields; compare one of its fields "
                     f"(for example {field_ref.dotted}.NAME)", field_ref.span)
            return
        if expr.op in _ORDERING:
            if f.type not in _NUMERIC:
                self.add(f"'{field_ref.dotted}' is {TYPE_WORDS[f.type]}; only numbers can be "
                         f"compared with {expr.op.value} (use == or != instead)", expr.span)
                return
            if usable and not compatible(f.type, value):
                self.add(f"'{field_ref.dotted}' is a number, so it cannot be compared with "
                         f"{self._name(other, value)}", other.span)
            return
        if usable:
            self._value_fits(f, field_ref.dotted, value, other, "be compared with")

    @staticmethod
    def _name(node: Operand, value: Any) -> str:
        if isinstance(node, ThresholdRef):
            return f"thresholds.{node.name} ({show(value)})"
        return show(value)

    def in_list(self, expr: InList) -> None:
        operand = expr.operand
        word = "not in" if expr.negated else "in"
        f: InputField | None = None
        if isinstance(operand, FieldRef):
            f = self.field(operand)
            if f is not None and f.type is FieldType.OBJECT:
                self.add(f"'{operand.dotted}' is a group of fields; use '{word}' on one of its "
                         "fields", operand.span)
                f = None
        else:
            if isinstance(operand, ThresholdRef):
                self.threshold(operand)
            self.add(f"the left side of '{word}' must be an input field", operand.span)
        if not expr.items:
            self.add(f"the list after '{word}' is empty", expr.span)
        for item in expr.items:
            if isinstance(item, FieldRef):
                self.add(f"a list may hold only values and thresholds, not the field "
                         f"'{item.dotted}'", item.span)
                continue
            usable, value = self._constant(item)
            if usable and f is not None and isinstance(operand, FieldRef):
                if not compatible(f.type, value):
                    self.add(f"'{operand.dotted}' is {TYPE_WORDS[f.type]}, so it can never be "
                             f"{self._name(item, value)}", item.span)
                elif f.enum is not None and not any(compatible(f.type, e) and e == value
                                                    for e in f.enum):
                    self.add(f"{self._name(item, value)} is not one of the allowed values of "
                             f"'{operand.dotted}' ({_enum_text(f.enum)}), so it can never "
                             "match", item.span)

    def matches(self, expr: Matches) -> None:
        operand = expr.operand
        if isinstance(operand, FieldRef):
            f = self.field(operand)
            if f is not None and f.type is not FieldType.STRING:
                self.add(f"'{operand.dotted}' is {TYPE_WORDS[f.type]}; 'matches' works only "
                         "on text fields", operand.span)
        else:
            if isinstance(operand, ThresholdRef):
                self.threshold(operand)
            self.add("the left side of 'matches' must be an input field", operand.span)
        problem = regex_problem(expr.pattern)
        if problem:
            self.add(problem, expr.span)


def check_condition(expr: Expr, fields: FieldMap,
                    thresholds: Mapping[str, Any]) -> list[TypeProblem]:
    """Every type problem of a condition, given the input fields by dotted path."""
    checker = _Checker(fields, thresholds)
    checker.condition(expr)
    return checker.problems


__all__ = ["TypeProblem", "check_condition", "compatible", "field_paths", "regex_problem",
           "value_type"]
