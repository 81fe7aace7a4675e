"""The why of a decision, in values: each rule, its parts, what each part read, which held.

Derived from an input (defaults applied, as recorded) and the version's ruleset with the
reference evaluator of the condition language, never from the engine: asking for it
changes nothing that is decided or recorded, and a request that does not ask pays nothing.

A rule's parts are the top-level ``and`` parts of its condition, in order (the whole
condition when it has none); a table row's parts are its cells other than ``-``, one
each. A rule fired exactly when all its parts hold.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rules_service.domain.decision import decide
from rules_service.domain.ruleset import Rule, Ruleset
from rules_service.domain.tables import read_cell
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
    Or,
    ThresholdRef,
)
from rules_service.language.evaluator import evaluate, is_absent, lookup
from rules_service.language.printer import format_condition

_ORDERING = (CompareOp.LT, CompareOp.LE, CompareOp.GT, CompareOp.GE)


@dataclass(frozen=True)
class Part:
    """One part of a rule's condition: its text and its tree."""

    text: str
    condition: Expr


RuleParts = tuple[tuple[Rule, tuple[Part, ...]], ...]
"""Every rule of a ruleset with its parts, worked out once for many inputs."""


def _part(condition: Expr) -> Part:
    return Part(format_condition(condition), condition)


def _row_parts(ruleset: Ruleset) -> dict[str, tuple[Part, ...]]:
    """A table row's parts: one per cell other than ``-``."""
    out: dict[str, tuple[Part, ...]] = {}
    for table in ruleset.definition.get("tables", []):
        columns = list(table["columns"])
        for row in table["rows"]:
            cells = [read_cell(col, cell) for col, cell in zip(columns, row["when"], strict=True)]
            parts = tuple(_part(c.condition) for c in cells if c.condition is not None)
            out[f"{table['id']}.{row['id']}"] = parts or (_part(Literal(True)),)
    return out


def rule_parts(ruleset: Ruleset) -> RuleParts:
    """Each rule of ``ruleset``, in order, with its parts."""
    rows = _row_parts(ruleset)
    out = []
    for rule in ruleset.rules:
        parts = rows.get(rule.id)
        if parts is None:
            cond = rule.condition
            parts = tuple(_part(p) for p in (cond.operands if isinstance(cond, And) else (cond,)))
        out.append((rule, parts))
    return tuple(out)


def _refs(expr: Expr) -> Iterator[FieldRef | ThresholdRef]:
    """Fields and thresholds a condition reads, in the order written."""
    if isinstance(expr, FieldRef | ThresholdRef):
        yield expr
    elif isinstance(expr, And | Or):
        for operand in expr.operands:
            yield from _refs(operand)
    elif isinstance(expr, Not):
        yield from _refs(expr.operand)
    elif isinstance(expr, Exists):
        yield expr.field
    elif isinstance(expr, Compare):
        yield from _refs(expr.left)
        yield from _refs(expr.right)
    elif isinstance(expr, InList):
        yield from _refs(expr.operand)
        for item in expr.items:
            yield from _refs(item)
    elif isinstance(expr, Matches):
        yield from _refs(expr.operand)


def _value(ref: FieldRef | ThresholdRef, data: Mapping[str, Any],
           thresholds: Mapping[str, Any]) -> Any:
    if isinstance(ref, ThresholdRef):
        return thresholds.get(ref.name)
    found = lookup(data, ref.path)
    return None if is_absent(found) else found


def _name(ref: FieldRef | ThresholdRef) -> str:
    return ref.dotted if isinstance(ref, FieldRef) else f"thresholds.{ref.name}"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _missed_by(expr: Expr, values: Mapping[str, Any]) -> int | float | None:
    """How far apart the two sides of a failed numeric ordering comparison are."""
    if not isinstance(expr, Compare) or expr.op not in _ORDERING:
        return None
    sides: list[Any] = []
    for side in (expr.left, expr.right):
        sides.append(side.value if isinstance(side, Literal) else
                     values.get(_name(side)) if isinstance(side, FieldRef | ThresholdRef)
                     else None)
    if not all(_number(s) for s in sides):
        return None
    gap: int | float = abs(sides[0] - sides[1])
    return round(gap, 10) if isinstance(gap, float) else gap


def explain_part(part: Part, data: Mapping[str, Any],
                 thresholds: Mapping[str, Any]) -> dict[str, Any]:
    """``text``, ``holds`` and ``values`` of one part (``missed_by`` on a failed numeric
    comparison: how far the value is from the other side)."""
    values = {_name(ref): _value(ref, data, thresholds) for ref in _refs(part.condition)}
    holds = evaluate(part.condition, data, thresholds)
    out: dict[str, Any] = {"text": part.text, "holds": holds, "values": values}
    if not holds:
        missed = _missed_by(part.condition, values)
        if missed is not None:
            out["missed_by"] = missed
    return out


def show_value(value: Any) -> str:
    """A value beside its name in a sentence: ``900``, ``"meals"``, ``true``, ``absent``."""
    if value is None:
        return "absent"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value) if isinstance(value, float) else str(value)


def with_values(part: Part, data: Mapping[str, Any], thresholds: Mapping[str, Any]) -> str:
    """The part's text with each field and threshold followed by its value."""
    def named(ref: FieldRef | ThresholdRef, text: str) -> str:
        return f"{text} {show_value(_value(ref, data, thresholds))}"
    return format_condition(part.condition, named)


def _summary(ruleset: Ruleset, parts: RuleParts, rules: Sequence[dict[str, Any]],
             data: Mapping[str, Any], fallback_reason: str | None) -> str:
    if fallback_reason is not None:
        return f"{ruleset.fallback.value}: the ruleset's fallback decided, as the engine " \
               f"could not ({fallback_reason})"
    fired = [r["id"] for r in rules if r["fired"]]
    decided = decide(ruleset, fired)
    by_id = {rule.id: p for rule, p in parts}
    if decided.deciding_rules:
        because = []
        for rule_id in decided.deciding_rules:
            shown = " and ".join(with_values(p, data, ruleset.thresholds) for p in by_id[rule_id])
            because.append(f"{rule_id}: {shown}")
        return f"{decided.outcome.value} because " + "; ".join(because)
    failed = []
    for rule, explained in zip(parts, rules, strict=True):
        first = next(i for i, c in enumerate(explained["conditions"]) if not c["holds"])
        failed.append(f"{rule[0].id} failed on "
                      f"{with_values(rule[1][first], data, ruleset.thresholds)}")
    head = f"{ruleset.default.value}: no rule fired, so the default decided"
    return head + ("; " + "; ".join(failed) if failed else "")


def explain(ruleset: Ruleset, data: Mapping[str, Any], *, parts: RuleParts | None = None,
            fallback_reason: str | None = None) -> dict[str, Any]:
    """The explanation of deciding ``data`` (an input with its defaults applied) with
    ``ruleset``: ``summary`` and, for every rule, ``fired``, ``outcome`` and its parts.

    ``parts`` (from ``rule_parts``) saves working them out again for each of many inputs;
    ``fallback_reason`` is given when the engine could not decide and the fallback did.
    """
    parts = parts if parts is not None else rule_parts(ruleset)
    rules = []
    for rule, rule_parts_ in parts:
        conditions = [explain_part(p, data, ruleset.thresholds) for p in rule_parts_]
        rules.append({"id": rule.id, "fired": all(c["holds"] for c in conditions),
                      "outcome": rule.then.value, "conditions": conditions})
    return {"summary": _summary(ruleset, parts, rules, data, fallback_reason),
            "rules": rules}


__all__ = ["Part", "RuleParts", "explain", "explain_part", "rule_parts", "show_value",
           "with_values"]
