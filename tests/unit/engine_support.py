"""Builders shared by the engine tests: hand-written rulesets without a YAML loader."""

from __future__ import annotations

import dataclasses
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


# -- random decision tables and rules, for the index in front of the engine ---------------

INDEX_INPUTS = (
    field("category", "string"), field("region", "string"), field("amount", "number"),
    field("days", "integer"), field("urgent", "boolean"), field("code", "string"))
_CATEGORIES = ["hardware", "software", "travel", "meals", "legal"]
_REGIONS = ["eu", "us", "apac"]
_NUMBER_COLUMNS = {"amount": [0, 50, 99.5, 100, 250, 1000, 1e6], "days": [0, 1, 7, 30, 90]}


def _table_cell(rnd: Any, column: str) -> Any:
    """A random cell of every kind the loader reads, biased to the indexed kinds."""
    kind = rnd.random()
    if column == "urgent":
        return rnd.choice(["-", True, False, "!= true"])
    if column in ("category", "region", "code"):
        values = {"category": _CATEGORIES, "region": _REGIONS, "code": ["CC-1", "x"]}[column]
        if kind < 0.15:
            return "-"
        if kind < 0.6:
            return rnd.choice(values)
        if kind < 0.8:
            return rnd.sample(values, rnd.randint(1, 2))
        return f"!= {rnd.choice(values)}"
    numbers = _NUMBER_COLUMNS[column]
    if kind < 0.1:
        return "-"
    if kind < 0.5:
        lo, hi = sorted(rnd.sample(numbers, 2))
        return f"{lo}..{hi}"
    if kind < 0.8:
        return f"{rnd.choice(['<', '<=', '>', '>=', '==', '!='])} {rnd.choice(numbers)}"
    return rnd.choice(numbers)


def _plain_condition(rnd: Any) -> str:
    """A random rule condition: top-level equality and ranges, or shapes the index skips."""
    category, region = rnd.choice(_CATEGORIES), rnd.choice(_REGIONS)
    lo = rnd.choice(_NUMBER_COLUMNS["amount"])
    shapes = [
        f'category == "{category}" and amount >= {lo} and amount < {lo * 2 + 1}',
        f'category in ["{category}", "legal"] and region == "{region}"',
        f'not (category != "{category}") and days <= {rnd.choice([0, 7, 30])}',
        f'(category == "{category}" or region == "{region}") and amount > {lo}',
        f'region != "{region}" or urgent',
        f'category not in ["{category}"] and exists(days)',
        f'code matches "^CC-[0-9]$" and amount >= {lo}',
        f'not (code matches "x$") and days > {rnd.choice([0, 7])}',
    ]
    return rnd.choice(shapes)


def random_table_ruleset(rnd: Any, rows: int, rules: int = 0) -> Ruleset:
    """A ruleset of ``rules`` random rules and one random table of ``rows`` rows."""
    from rules_service.domain.tables import table_rows

    columns = rnd.sample([f.name for f in INDEX_INPUTS], rnd.randint(1, 4))
    table = {"id": "grid", "columns": columns,
             "rows": [{"id": f"row{i}", "when": [_table_cell(rnd, c) for c in columns],
                       "then": rnd.choice(["approve", "escalate", "reject"])}
                      for i in range(rows)]}
    built = ruleset(INDEX_INPUTS, [(f"r{i}", _plain_condition(rnd),
                                    rnd.choice(["approve", "escalate", "reject"]))
                                   for i in range(rules)])
    extra = tuple(Rule(row.rule_id, row.when, row.condition, Outcome(row.body["then"]))
                  for row in table_rows(table))
    return dataclasses.replace(built, rules=built.rules + extra)


def random_table_inputs(rnd: Any, count: int) -> list[dict[str, Any]]:
    """Inputs on and beside every bound the tables use, some fields absent."""
    out = []
    for _ in range(count):
        data: dict[str, Any] = {}
        if rnd.random() < 0.9:
            data["category"] = rnd.choice([*_CATEGORIES, "other"])
        if rnd.random() < 0.9:
            data["region"] = rnd.choice([*_REGIONS, "mars"])
        for column, numbers in _NUMBER_COLUMNS.items():
            if rnd.random() < 0.9:
                base = rnd.choice(numbers)
                value = base + rnd.choice([0, 0, -1, 1, 0.25, -0.25])
                data[column] = int(value) if column == "days" else value
        if rnd.random() < 0.8:
            data["urgent"] = rnd.random() < 0.5
        if rnd.random() < 0.8:
            data["code"] = rnd.choice(["CC-1", "CC-1\n", "x", "yx"])
        out.append(data)
    return out
