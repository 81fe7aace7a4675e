"""Building a Ruleset from structure-checked data, by way of its canonical definition."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from rules_service.domain.ruleset import (
    ROLES,
    FieldType,
    InputField,
    Outcome,
    RoleHolders,
    Rule,
    Ruleset,
    RuleTest,
)
from rules_service.domain.tables import table_rows
from rules_service.language.ast import Expr
from rules_service.language.parser import parse_condition


def _canonical_field(spec: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": spec["type"], "required": bool(spec.get("required", False))}
    for key in ("default", "enum", "minimum", "maximum", "pattern", "description"):
        if key in spec:
            out[key] = spec[key]
    if "properties" in spec:
        out["properties"] = {n: _canonical_field(s) for n, s in spec["properties"].items()}
    return out


def plain_copy(value: Any) -> Any:
    """A deep copy of parsed data: dicts and lists copied, text, numbers, booleans and None
    shared (they cannot change), anything else deep-copied; several times faster than
    copy.deepcopy on a table of thousands of rows."""
    if isinstance(value, dict):
        return {k: plain_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_copy(v) for v in value]
    if value is None or isinstance(value, str | int | float):
        return value
    return copy.deepcopy(value)


def canonical_definition(data: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical, JSON-able form of structure-checked ruleset data."""
    rules = []
    for r in data["rules"]:
        rule: dict[str, Any] = {"id": r["id"], "when": r["when"], "then": r["then"]}
        for key in ("description", "reason"):
            if key in r:
                rule[key] = r[key]
        if r["then"] == Outcome.ESCALATE.value:
            rule["escalate_to"] = r.get("escalate_to", "approver")
        rules.append(rule)
    tests = []
    for t in data.get("tests", []):
        expect = {k: v for k, v in t["expect"].items() if k == "outcome"}
        for key in ("fired", "deciding"):
            if key in t["expect"]:
                expect[key] = sorted(set(t["expect"][key]))
        tests.append({"name": t["name"], "input": t["input"], "expect": expect})
    tables = []
    for t in data.get("tables", []):
        rows = []
        for r in t["rows"]:
            row: dict[str, Any] = {"id": r["id"], "when": [_canonical_cell(c) for c in r["when"]],
                                   "then": r["then"]}
            for key in ("description", "reason"):
                if key in r:
                    row[key] = r[key]
            if r["then"] == Outcome.ESCALATE.value:
                row["escalate_to"] = r.get("escalate_to", "approver")
            rows.append(row)
        table: dict[str, Any] = {"id": t["id"], "columns": list(t["columns"]), "rows": rows}
        if "description" in t:
            table["description"] = t["description"]
        tables.append(table)
    definition = {
        "name": data["name"],
        "title": data["title"],
        "description": data.get("description", ""),
        "owners": {role: {"primary": data["owners"][role]["primary"],
                          "backup": data["owners"][role]["backup"]} for role in ROLES},
        "signoff": sorted(set(data.get("signoff", ["approver"])), key=ROLES.index),
        "thresholds": dict(data.get("thresholds", {})),
        "inputs": {n: _canonical_field(s) for n, s in data.get("inputs", {}).items()},
        "rules": rules,
        # Only written when there are tables, so a ruleset without any hashes as before.
        **({"tables": tables} if tables else {}),
        "default": data["default"],
        "fallback": data["fallback"],
        "tests": tests,
        "runbook": data["runbook"],
        "impact": data.get("impact", {}),
        # Only written when set, so a ruleset without a review rhythm hashes as before.
        **({"review_every": data["review_every"]} if data.get("review_every") else {}),
    }
    # A deep copy, so nothing in the Ruleset shares mutable state with its definition.
    return plain_copy(definition)


def _canonical_cell(cell: Any) -> Any:
    return cell.strip() if isinstance(cell, str) else \
        [c.strip() if isinstance(c, str) else c for c in cell] if isinstance(cell, list) else cell


def _rules(d: Mapping[str, Any], parsed: Mapping[str, Expr]) -> tuple[Rule, ...]:
    """The rules, then every table's rows as rules ``TABLE.ROW``; conditions already in
    ``parsed`` are not parsed again."""
    rules = [Rule(id=r["id"], when=r["when"],
                  condition=parsed[r["when"]] if r["when"] in parsed
                  else parse_condition(r["when"]),
                  then=Outcome(r["then"]), description=r.get("description"),
                  reason=r.get("reason"), escalate_to=r.get("escalate_to", "approver"))
             for r in d["rules"]]
    for table in d.get("tables", []):
        for row in table_rows(table):
            body = row.body
            rules.append(Rule(id=row.rule_id, when=row.when, condition=row.condition,
                              then=Outcome(body["then"]), description=body.get("description"),
                              reason=body.get("reason"),
                              escalate_to=body.get("escalate_to", "approver")))
    return tuple(rules)


def _input_field(name: str, spec: Mapping[str, Any]) -> InputField:
    return InputField(
        name=name, type=FieldType(spec["type"]), required=spec["required"],
        default=spec.get("default"), has_default="default" in spec,
        enum=tuple(spec["enum"]) if "enum" in spec else None,
        minimum=spec.get("minimum"), maximum=spec.get("maximum"), pattern=spec.get("pattern"),
        description=spec.get("description"),
        properties=tuple(_input_field(n, s) for n, s in spec.get("properties", {}).items()))


def build_ruleset(definition: dict[str, Any], parsed: Mapping[str, Expr]) -> Ruleset:
    d = plain_copy(definition)
    return Ruleset(
        name=d["name"], title=d["title"], description=d["description"],
        owners={role: RoleHolders(h["primary"], h["backup"]) for role, h in d["owners"].items()},
        signoff=tuple(d["signoff"]),
        thresholds=d["thresholds"],
        inputs=tuple(_input_field(n, s) for n, s in d["inputs"].items()),
        rules=_rules(d, parsed),
        default=Outcome(d["default"]),
        fallback=Outcome(d["fallback"]),
        tests=tuple(RuleTest(name=t["name"], input=t["input"],
                             expect_outcome=Outcome(t["expect"]["outcome"])
                             if "outcome" in t["expect"] else None,
                             expect_fired=tuple(t["expect"]["fired"])
                             if "fired" in t["expect"] else None,
                             expect_deciding=tuple(t["expect"]["deciding"])
                             if "deciding" in t["expect"] else None)
                    for t in d["tests"]),
        runbook=d["runbook"],
        impact=d["impact"],
        definition=definition,
        review_every=d.get("review_every"),
    )
