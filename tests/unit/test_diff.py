"""The rule-change diff an approver reads: one typed change and one sentence per edit."""

from __future__ import annotations

import copy
import json
from collections import Counter
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules_service.domain.diff import (
    RuleAdded,
    RuleChanged,
    ThresholdChanged,
    diff_definitions,
)

BASE_YAML = """
name: expense-approval
title: Expense approval
description: Decides whether an expense is paid automatically or needs a person.
owners:
  business_owner:   {primary: finance-lead, backup: finance-deputy}
  operations_owner: {primary: ops-oncall,   backup: ops-lead}
  approver:         {primary: controller,   backup: cfo}
  maintainer:       {primary: rules-dev,    backup: platform-dev}
signoff: [business_owner, approver]
thresholds:
  auto_approve_limit: 500
  manager_limit: 5000
  home_currency: EUR
inputs:
  amount:       {type: number,  required: true, minimum: 0}
  currency:     {type: string,  enum: [EUR, USD, GBP], default: EUR}
  category:     {type: string,  enum: [travel, meals, software, hardware, other], required: true}
  has_receipt:  {type: boolean, default: false}
  trip:
    type: object
    properties:
      international: {type: boolean, default: false}
      nights: {type: integer, minimum: 0}
rules:
  - id: receipt-required
    description: Expenses above 50 need a receipt.
    when: amount > 50 and not has_receipt
    then: reject
    reason: A receipt is required above 50.
  - id: small-expense
    when: amount <= 100
    then: approve
  - id: over-manager-limit
    when: amount > thresholds.manager_limit
    then: escalate
    escalate_to: approver
default: escalate
fallback: escalate
tests:
  - name: small meal is approved
    input: {amount: 20, category: meals}
    expect: {outcome: approve, fired: [small-expense]}
  - name: big claim is escalated
    input: {amount: 9000, category: travel, has_receipt: true}
    expect: {outcome: escalate}
runbook:
  purpose: Pay routine claims quickly.
  boundaries: Employee expense claims only.
  normal_steps: [Tool calls evaluate., Approved claims are paid.]
  exceptions: [{type: Engine fallback, response: Escalated automatically.}]
  escalation: {path: [controller, cfo], response_time_target: 4h}
  rollback: Roll back to the previous version.
impact:
  minutes_saved_per_auto_decision: 6
"""


def base() -> dict[str, Any]:
    return yaml.safe_load(BASE_YAML)


def only(diff: Any) -> dict[str, Any]:
    changes = diff.to_dict()["changes"]
    assert len(changes) == 1, diff.summary
    return changes[0]


def rule(definition: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(r for r in definition["rules"] if r["id"] == rule_id)


# --------------------------------------------------------------------------- crafted pairs


def test_identical_definitions_have_no_changes() -> None:
    diff = diff_definitions(base(), base())
    assert diff.to_dict() == {"changes": [], "summary": []}
    assert not diff


def test_reordering_rules_is_not_a_change() -> None:
    new = base()
    new["rules"].reverse()
    assert diff_definitions(base(), new).changes == ()


def test_reordering_signoff_roles_or_enum_values_is_not_a_change() -> None:
    new = base()
    new["signoff"].reverse()
    new["inputs"]["category"]["enum"].reverse()
    assert diff_definitions(base(), new).changes == ()


def test_reordering_runbook_steps_is_a_change() -> None:
    new = base()
    new["runbook"]["normal_steps"].reverse()
    change = only(diff_definitions(base(), new))
    assert change["kind"] == "runbook_changed" and change["section"] == "normal_steps"
    assert change["summary"] == "Reordered runbook normal steps"


def test_raising_a_threshold_reads_as_raised() -> None:
    new = base()
    new["thresholds"]["auto_approve_limit"] = 750
    old = base()
    old["thresholds"]["auto_approve_limit"] = 500
    change = only(diff_definitions(old, new))
    assert change == {"kind": "threshold_changed", "name": "auto_approve_limit",
                      "before": 500, "after": 750, "direction": "up",
                      "summary": "Raised auto_approve_limit from 500 to 750"}


def test_lowering_a_threshold_reads_as_lowered() -> None:
    new = base()
    new["thresholds"]["manager_limit"] = 2500.5
    change = only(diff_definitions(base(), new))
    assert change["direction"] == "down"
    assert change["summary"] == "Lowered manager_limit from 5000 to 2500.5"


def test_a_string_threshold_change_has_no_direction() -> None:
    new = base()
    new["thresholds"]["home_currency"] = "USD"
    change = only(diff_definitions(base(), new))
    assert change["direction"] is None
    assert change["summary"] == 'Changed threshold home_currency from "EUR" to "USD"'


def test_a_number_becoming_a_float_of_the_same_value_is_reported() -> None:
    # The stored definition (and its hash) differs, so the approver must see something.
    new = base()
    new["thresholds"]["manager_limit"] = 5000.0
    change = only(diff_definitions(base(), new))
    assert change["kind"] == "threshold_changed" and change["direction"] is None


def test_thresholds_added_and_removed() -> None:
    new = base()
    new["thresholds"]["gift_limit"] = 20
    del new["thresholds"]["home_currency"]
    diff = diff_definitions(base(), new)
    # New file's order first, then what only the old file had.
    assert [c.to_dict() for c in diff.changes] == [
        {"kind": "threshold_added", "name": "gift_limit", "before": None, "after": 20,
         "summary": "Added threshold gift_limit = 20"},
        {"kind": "threshold_removed", "name": "home_currency", "before": "EUR", "after": None,
         "summary": 'Removed threshold home_currency (was "EUR")'},
    ]


def test_an_added_rule_shows_its_condition_and_outcome() -> None:
    new = base()
    new["rules"].insert(1, {"id": "gift-cards", "when": 'category == "gift"',
                            "then": "escalate"})
    change = only(diff_definitions(base(), new))
    assert change["kind"] == "rule_added"
    assert change["rule_id"] == "gift-cards"
    assert change["when"] == 'category == "gift"' and change["then"] == "escalate"
    assert change["summary"] == 'Added rule gift-cards (escalate when category == "gift")'


def test_a_removed_rule_shows_what_it_did() -> None:
    new = base()
    new["rules"] = [r for r in new["rules"] if r["id"] != "small-expense"]
    change = only(diff_definitions(base(), new))
    assert change["kind"] == "rule_removed" and change["then"] == "approve"
    assert change["summary"] == "Removed rule small-expense (was: approve when amount <= 100)"


def test_a_changed_condition_is_one_change_quoting_both_conditions() -> None:
    new = base()
    rule(new, "small-expense")["when"] = "amount <= thresholds.auto_approve_limit"
    change = only(diff_definitions(base(), new))
    assert change["kind"] == "rule_changed" and change["field"] == "when"
    assert change["summary"] == ("Rule small-expense: condition changed from `amount <= 100` "
                                 "to `amount <= thresholds.auto_approve_limit`")


def test_each_changed_rule_field_is_its_own_change() -> None:
    new = base()
    r = rule(new, "receipt-required")
    r["then"] = "escalate"
    r["escalate_to"] = "business_owner"
    del r["description"]
    r["reason"] = "Receipts please."
    diff = diff_definitions(base(), new)
    by_field = {c.field: c for c in diff.changes if isinstance(c, RuleChanged)}
    assert len(diff.changes) == 4 and set(by_field) == {"then", "escalate_to", "description",
                                                        "reason"}
    assert by_field["then"].sentence() == (
        "Rule receipt-required: outcome changed from reject to escalate")
    assert by_field["escalate_to"].sentence() == (
        "Rule receipt-required: escalation role set to business_owner")
    assert by_field["description"].after is None
    assert by_field["description"].sentence() == (
        'Rule receipt-required: description removed (was "Expenses above 50 need a receipt.")')
    assert by_field["reason"].before == "A receipt is required above 50."


def test_changing_an_owner_backup_reads_plainly() -> None:
    new = base()
    new["owners"]["approver"]["backup"] = "deputy-cfo"
    change = only(diff_definitions(base(), new))
    assert change == {"kind": "owners_changed", "role": "approver", "slot": "backup",
                      "before": "cfo", "after": "deputy-cfo",
                      "summary": "Changed approver backup from cfo to deputy-cfo"}


def test_signoff_change_names_the_roles_added_and_removed() -> None:
    new = base()
    new["signoff"] = ["approver", "operations_owner"]
    change = only(diff_definitions(base(), new))
    assert change["kind"] == "signoff_changed"
    assert change["added"] == ["operations_owner"] and change["removed"] == ["business_owner"]
    assert change["summary"] == ("Sign-off now also requires operations_owner and no longer "
                                 "requires business_owner")


def test_default_and_fallback_changes() -> None:
    new = base()
    new["default"] = "reject"
    new["fallback"] = "reject"
    diff = diff_definitions(base(), new)
    assert [c.kind for c in diff.changes] == ["default_changed", "fallback_changed"]
    assert diff.summary == [
        "Changed the default outcome (no rule fired) from escalate to reject",
        "Changed the fallback outcome (engine cannot decide) from escalate to reject",
    ]


@pytest.mark.parametrize(("edit", "attribute", "before", "after", "sentence"), [
    (lambda d: d["inputs"]["amount"].update(maximum=10000), "maximum", None, 10000,
     "Input amount: maximum set to 10000"),
    (lambda d: d["inputs"]["amount"].update(required=False), "required", True, False,
     "Input amount is no longer required"),
    (lambda d: d["inputs"]["currency"].update(enum=["EUR", "USD", "CHF"]), "enum",
     ["EUR", "USD", "GBP"], ["EUR", "USD", "CHF"],
     'Input currency: now also allows "CHF"; no longer allows "GBP"'),
    (lambda d: d["inputs"]["currency"].pop("default"), "default", "EUR", None,
     'Input currency: default removed (was "EUR")'),
    (lambda d: d["inputs"]["has_receipt"].update(type="string"), "type", "boolean", "string",
     "Input has_receipt: type changed from boolean to string"),
])
def test_input_attribute_changes(edit: Any, attribute: str, before: Any, after: Any,
                                 sentence: str) -> None:
    new = base()
    edit(new)
    change = only(diff_definitions(base(), new))
    assert change["kind"] == "input_changed" and change["attribute"] == attribute
    assert (change["before"], change["after"]) == (before, after)
    assert change["summary"] == sentence


def test_a_nested_input_attribute_is_named_by_its_dotted_path() -> None:
    new = base()
    new["inputs"]["trip"]["properties"]["nights"]["maximum"] = 365
    change = only(diff_definitions(base(), new))
    assert change["field"] == "trip.nights" and change["attribute"] == "maximum"
    assert change["summary"] == "Input trip.nights: maximum set to 365"


def test_an_added_object_input_is_one_change_that_carries_its_nested_fields() -> None:
    new = base()
    new["inputs"]["project"] = {"type": "object", "required": True,
                                "properties": {"code": {"type": "string"}}}
    change = only(diff_definitions(base(), new))
    assert change["kind"] == "input_added" and change["field"] == "project"
    assert change["after"]["properties"] == {"code": {"type": "string"}}
    assert change["summary"] == "Added input field project (object, required, with code)"


def test_removed_inputs_nested_and_top_level() -> None:
    new = base()
    del new["inputs"]["has_receipt"]
    del new["inputs"]["trip"]["properties"]["nights"]
    diff = diff_definitions(base(), new)
    assert {(c.kind, c.to_dict()["field"]) for c in diff.changes} == {
        ("input_removed", "has_receipt"), ("input_removed", "trip.nights")}
    assert "Removed input field has_receipt (was boolean, optional)" in diff.summary


def test_tests_changes_are_reported_by_name() -> None:
    new = base()
    new["tests"][0]["expect"]["outcome"] = "reject"
    new["tests"].pop(1)
    new["tests"].append({"name": "gift is escalated", "input": {"amount": 1},
                         "expect": {"outcome": "escalate"}})
    change = only(diff_definitions(base(), new))
    assert change["kind"] == "tests_changed"
    assert change["added"] == ["gift is escalated"]
    assert change["removed"] == ["big claim is escalated"]
    assert change["changed"] == ["small meal is approved"]
    assert change["summary"] == ('Tests: added "gift is escalated"; removed "big claim is '
                                 'escalated"; changed "small meal is approved"')


def test_runbook_changes_name_their_section() -> None:
    new = base()
    new["runbook"]["escalation"]["response_time_target"] = "2h"
    new["runbook"]["normal_steps"].append("Escalations are worked within the target.")
    new["runbook"]["rollback"] = "Ask the operations owner."
    diff = diff_definitions(base(), new)
    sections = {c.to_dict()["section"]: c.sentence() for c in diff.changes}
    assert sections == {
        "escalation.response_time_target":
            'Changed runbook escalation response time target from "4h" to "2h"',
        "normal_steps": "Changed runbook normal steps: 1 entry added, 0 removed",
        "rollback": 'Changed runbook rollback from "Roll back to the previous version." '
                    'to "Ask the operations owner."',
    }


def test_metadata_changes_cover_title_description_and_impact() -> None:
    new = base()
    new["title"] = "Expenses"
    new["impact"]["minutes_saved_per_auto_decision"] = 8
    diff = diff_definitions(base(), new)
    assert [(c.kind, c.to_dict()["field"]) for c in diff.changes] == [
        ("metadata_changed", "title"),
        ("metadata_changed", "impact.minutes_saved_per_auto_decision")]
    assert diff.summary == ['Changed title from "Expense approval" to "Expenses"',
                            "Changed impact minutes_saved_per_auto_decision from 6 to 8"]


def test_a_first_version_reports_every_rule_and_threshold_as_added() -> None:
    diff = diff_definitions(None, base())
    added_rules = [c for c in diff.changes if isinstance(c, RuleAdded)]
    assert [c.rule_id for c in added_rules] == ["receipt-required", "small-expense",
                                                "over-manager-limit"]
    assert {c.to_dict()["name"] for c in diff.of_kind("threshold_added")} == {
        "auto_approve_limit", "manager_limit", "home_currency"}
    assert {c.to_dict()["field"] for c in diff.of_kind("input_added")} == {
        "amount", "currency", "category", "has_receipt", "trip"}
    assert not diff.of_kind("rule_removed") and not diff.of_kind("threshold_changed")
    assert "Set approver backup to cfo" in diff.summary
    assert "Default outcome (no rule fired) set to escalate" in diff.summary


def test_replacing_every_rule_still_reports_each_rule() -> None:
    # DeepDiff reports a wholly different mapping as one value change unless told otherwise.
    new = base()
    new["rules"] = [{"id": f"new-{i}", "when": "true", "then": "approve"} for i in range(3)]
    diff = diff_definitions(base(), new)
    assert Counter(c.kind for c in diff.changes) == {"rule_added": 3, "rule_removed": 3}


def test_changes_come_rules_first_in_the_new_files_order() -> None:
    new = base()
    new["thresholds"]["manager_limit"] = 6000
    rule(new, "over-manager-limit")["then"] = "reject"
    rule(new, "receipt-required")["then"] = "escalate"
    diff = diff_definitions(base(), new)
    assert [(c.kind, getattr(c, "rule_id", None)) for c in diff.changes] == [
        ("rule_changed", "receipt-required"), ("rule_changed", "over-manager-limit"),
        ("threshold_changed", None)]


def test_the_diff_is_json_serialisable() -> None:
    new = base()
    new["rules"].append({"id": "x", "when": "true", "then": "approve"})
    new["inputs"]["amount"]["maximum"] = 9
    text = json.dumps(diff_definitions(base(), new).to_dict())
    assert '"rule_added"' in text


def test_direction_is_only_for_numbers() -> None:
    assert ThresholdChanged("t", True, False).direction is None
    new = base()
    new["thresholds"]["auto_approve_limit"] = True
    assert only(diff_definitions(base(), new))["direction"] is None


# --------------------------------------------------------------------------- properties

ROLES = ("business_owner", "operations_owner", "approver", "maintainer")
OUTCOMES = ("approve", "escalate", "reject")
# Built from small alphabets rather than st.from_regex, which is slow to generate.
slugs = st.builds(lambda a, b, c: a + b + (f"-{c}" if c else ""),
                  st.sampled_from("abcdefgh"), st.text("abc0123", max_size=5),
                  st.text("xyz9", max_size=3))
names = st.builds(str.__add__, st.sampled_from("abcdefgh"), st.text("abc_de", max_size=6))
texts = st.text(st.sampled_from("ab Z_.=<>\"é1"), max_size=12)
floats = st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f + 0.0)
scalars = st.one_of(st.integers(-10**6, 10**6), floats, texts, st.booleans())


@st.composite
def input_specs(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    kind = draw(st.sampled_from(["number", "integer", "string", "boolean"]
                                + (["object"] if depth == 0 else [])))
    spec: dict[str, Any] = {"type": kind, "required": draw(st.booleans())}
    if kind in ("number", "integer") and draw(st.booleans()):
        spec["minimum"] = draw(st.integers(-100, 100))
    if kind == "string" and draw(st.booleans()):
        spec["enum"] = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    if draw(st.booleans()):
        spec["description"] = draw(texts)
    if kind == "object":
        spec["properties"] = draw(st.dictionaries(names, input_specs(depth + 1), max_size=3))
    return spec


@st.composite
def rules(draw: st.DrawFn) -> list[dict[str, Any]]:
    ids = draw(st.lists(slugs, max_size=6, unique=True))
    out = []
    for rule_id in ids:
        r: dict[str, Any] = {"id": rule_id, "when": draw(texts),
                             "then": draw(st.sampled_from(OUTCOMES))}
        for key in ("description", "reason"):
            if draw(st.booleans()):
                r[key] = draw(texts)
        if r["then"] == "escalate":
            r["escalate_to"] = draw(st.sampled_from(ROLES))
        out.append(r)
    return out


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "name": draw(slugs),
        "title": draw(texts),
        "description": draw(texts),
        "owners": {role: {"primary": draw(slugs), "backup": draw(slugs)} for role in ROLES},
        "signoff": draw(st.lists(st.sampled_from(ROLES), min_size=1, unique=True)),
        "thresholds": draw(st.dictionaries(names, scalars, max_size=5)),
        "inputs": draw(st.dictionaries(names, input_specs(), max_size=4)),
        "rules": draw(rules()),
        "default": draw(st.sampled_from(OUTCOMES)),
        "fallback": draw(st.sampled_from(OUTCOMES)),
        "tests": [{"name": n, "input": {"amount": draw(st.integers(0, 10))},
                   "expect": {"outcome": draw(st.sampled_from(OUTCOMES))}}
                  for n in draw(st.lists(texts.filter(bool), max_size=3, unique=True))],
        "runbook": {"purpose": draw(texts), "boundaries": draw(texts),
                    "normal_steps": draw(st.lists(texts, max_size=3)),
                    "exceptions": [{"type": draw(texts), "response": draw(texts)}],
                    "escalation": {"path": draw(st.lists(slugs, max_size=3)),
                                   "response_time_target": draw(st.sampled_from(["1h", "4h"]))},
                    "rollback": draw(texts)},
        "impact": {"minutes_saved_per_auto_decision": draw(st.integers(0, 60))},
    }


def same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def different_from(value: Any, strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return strategy.filter(lambda v: not same(v, value))


def all_inputs(inputs: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name, spec in inputs.items():
        out.append((prefix + name, spec))
        out.extend(all_inputs(spec.get("properties", {}), f"{prefix}{name}."))
    return out


@st.composite
def single_edits(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A definition, a copy with exactly one field edited, and the change expected."""
    old = draw(definitions())
    new = copy.deepcopy(old)
    options = ["threshold_added", "owner", "default", "fallback", "title", "runbook",
               "rule_added", "signoff", "impact", "input_added"]
    if old["thresholds"]:
        options += ["threshold_changed", "threshold_removed"]
    if old["rules"]:
        options += ["rule_field", "rule_removed"]
    if old["inputs"]:
        options += ["input_attribute", "input_removed"]
    if old["tests"]:
        options += ["test_changed"]
    choice = draw(st.sampled_from(options))
    if choice == "threshold_changed":
        name = draw(st.sampled_from(sorted(old["thresholds"])))
        before = old["thresholds"][name]
        after = new["thresholds"][name] = draw(different_from(before, scalars))
        return old, new, {"kind": "threshold_changed", "name": name, "before": before,
                          "after": after}
    if choice == "threshold_added":
        name = draw(names.filter(lambda n: n not in old["thresholds"]))
        after = new["thresholds"][name] = draw(scalars)
        return old, new, {"kind": "threshold_added", "name": name, "before": None,
                          "after": after}
    if choice == "threshold_removed":
        name = draw(st.sampled_from(sorted(old["thresholds"])))
        before = new["thresholds"].pop(name)
        return old, new, {"kind": "threshold_removed", "name": name, "before": before,
                          "after": None}
    if choice == "rule_field":
        index = draw(st.integers(0, len(old["rules"]) - 1))
        target = new["rules"][index]
        field = draw(st.sampled_from(["when", "then", "description", "reason", "escalate_to"]))
        before = target.get(field)
        values: st.SearchStrategy[Any] = st.sampled_from(OUTCOMES) if field == "then" else (
            st.sampled_from(ROLES) if field == "escalate_to" else texts)
        after = target[field] = draw(different_from(before, values))
        return old, new, {"kind": "rule_changed", "rule_id": target["id"], "field": field,
                          "before": before, "after": after}
    if choice == "rule_added":
        rule_id = draw(slugs.filter(lambda s: s not in {r["id"] for r in old["rules"]}))
        added = {"id": rule_id, "when": draw(texts), "then": draw(st.sampled_from(OUTCOMES))}
        new["rules"].insert(draw(st.integers(0, len(new["rules"]))), added)
        return old, new, {"kind": "rule_added", "rule_id": rule_id, "when": added["when"],
                          "then": added["then"]}
    if choice == "rule_removed":
        removed = new["rules"].pop(draw(st.integers(0, len(new["rules"]) - 1)))
        return old, new, {"kind": "rule_removed", "rule_id": removed["id"],
                          "when": removed["when"], "then": removed["then"]}
    if choice == "owner":
        role, slot = draw(st.sampled_from(ROLES)), draw(st.sampled_from(["primary", "backup"]))
        before = old["owners"][role][slot]
        after = new["owners"][role][slot] = draw(different_from(before, slugs))
        return old, new, {"kind": "owners_changed", "role": role, "slot": slot,
                          "before": before, "after": after}
    if choice in ("default", "fallback"):
        before = old[choice]
        after = new[choice] = draw(different_from(before, st.sampled_from(OUTCOMES)))
        return old, new, {"kind": f"{choice}_changed", "before": before, "after": after}
    if choice == "title":
        before = old["title"]
        after = new["title"] = draw(different_from(before, texts))
        return old, new, {"kind": "metadata_changed", "field": "title", "before": before,
                          "after": after}
    if choice == "impact":
        before = old["impact"]["minutes_saved_per_auto_decision"]
        after = draw(different_from(before, st.integers(0, 60)))
        new["impact"]["minutes_saved_per_auto_decision"] = after
        return old, new, {"kind": "metadata_changed",
                          "field": "impact.minutes_saved_per_auto_decision",
                          "before": before, "after": after}
    if choice == "runbook":
        section = draw(st.sampled_from(["purpose", "boundaries", "rollback"]))
        before = old["runbook"][section]
        after = new["runbook"][section] = draw(different_from(before, texts))
        return old, new, {"kind": "runbook_changed", "section": section, "before": before,
                          "after": after}
    if choice == "signoff":
        missing = [r for r in ROLES if r not in old["signoff"]]
        if missing:
            role = draw(st.sampled_from(missing))
            new["signoff"].insert(draw(st.integers(0, len(new["signoff"]))), role)
            return old, new, {"kind": "signoff_changed", "added": [role], "removed": []}
        role = new["signoff"].pop()
        return old, new, {"kind": "signoff_changed", "added": [], "removed": [role]}
    if choice == "input_attribute":
        path, spec = draw(st.sampled_from(all_inputs(new["inputs"])))
        attribute = draw(st.sampled_from(["required", "description", "maximum", "pattern"]))
        before = spec.get(attribute)
        attribute_values: st.SearchStrategy[Any] = st.booleans() if attribute == "required" else (
            st.integers(-5, 5) if attribute == "maximum" else texts)
        after = spec[attribute] = draw(different_from(before, attribute_values))
        return old, new, {"kind": "input_changed", "field": path, "attribute": attribute,
                          "before": before, "after": after}
    if choice == "input_added":
        name = draw(names.filter(lambda n: n not in old["inputs"]))
        spec = new["inputs"][name] = draw(input_specs())
        return old, new, {"kind": "input_added", "field": name, "before": None, "after": spec}
    if choice == "input_removed":
        path, spec = draw(st.sampled_from(all_inputs(new["inputs"])))
        parent, _, leaf = path.rpartition(".")
        holder = new["inputs"] if not parent else dict(all_inputs(new["inputs"]))[
            parent]["properties"]
        removed = holder.pop(leaf)
        return old, new, {"kind": "input_removed", "field": path, "before": removed,
                          "after": None}
    # test_changed
    index = draw(st.integers(0, len(new["tests"]) - 1))
    new["tests"][index]["input"]["amount"] += 1
    return old, new, {"kind": "tests_changed", "added": [], "removed": [],
                      "changed": [new["tests"][index]["name"]]}


MIRROR_KIND = {"rule_added": "rule_removed", "threshold_added": "threshold_removed",
               "input_added": "input_removed"}
MIRROR_KIND.update({v: k for k, v in MIRROR_KIND.items()})


def mirrored(change: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in change.items() if k != "summary"}
    out["kind"] = MIRROR_KIND.get(out["kind"], out["kind"])
    if "before" in out:
        out["before"], out["after"] = out["after"], out["before"]
    if out["kind"] == "signoff_changed" or out["kind"] == "tests_changed":
        out["added"], out["removed"] = out["removed"], out["added"]
    if out.get("direction"):
        out["direction"] = {"up": "down", "down": "up"}[out["direction"]]
    return out


def canonical(changes: list[dict[str, Any]]) -> Counter[str]:
    return Counter(json.dumps({k: v for k, v in c.items() if k != "summary"}, sort_keys=True)
                   for c in changes)


PROPERTY_SETTINGS = settings(max_examples=100, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.slow
@PROPERTY_SETTINGS
@given(definitions())
def test_a_definition_diffed_with_itself_has_no_changes(definition: dict[str, Any]) -> None:
    assert diff_definitions(definition, copy.deepcopy(definition)).changes == ()


@pytest.mark.slow
@PROPERTY_SETTINGS
@given(definitions(), st.randoms(use_true_random=False))
def test_shuffling_rules_never_changes_anything(definition: dict[str, Any], rnd: Any) -> None:
    shuffled = copy.deepcopy(definition)
    rnd.shuffle(shuffled["rules"])
    assert diff_definitions(definition, shuffled).changes == ()


@pytest.mark.slow
@PROPERTY_SETTINGS
@given(single_edits())
def test_every_single_edit_is_reported_exactly_once_with_its_values(
        edit: tuple[dict[str, Any], dict[str, Any], dict[str, Any]]) -> None:
    old, new, expected = edit
    diff = diff_definitions(old, new)
    assert len(diff.changes) == 1, diff.summary
    change = diff.changes[0].to_dict()
    for key, value in expected.items():
        assert same(change[key], value), (key, change[key], value)
    assert isinstance(change["summary"], str) and change["summary"]
    assert diff.summary == [change["summary"]]


@pytest.mark.slow
@PROPERTY_SETTINGS
@given(single_edits())
def test_a_single_edit_and_its_undo_are_mirror_images(
        edit: tuple[dict[str, Any], dict[str, Any], dict[str, Any]]) -> None:
    old, new, _ = edit
    forward = diff_definitions(old, new).to_dict()["changes"]
    backward = diff_definitions(new, old).to_dict()["changes"]
    assert canonical([mirrored(c) for c in forward]) == canonical(backward)


@pytest.mark.slow
@PROPERTY_SETTINGS
@given(definitions(), definitions())
def test_diffs_in_both_directions_are_mirror_images(a: dict[str, Any],
                                                    b: dict[str, Any]) -> None:
    forward = diff_definitions(a, b).to_dict()["changes"]
    backward = diff_definitions(b, a).to_dict()["changes"]
    assert canonical([mirrored(c) for c in forward]) == canonical(backward)
    assert len(forward) == len(backward)


@pytest.mark.slow
@PROPERTY_SETTINGS
@given(definitions())
def test_a_first_version_adds_every_rule_and_threshold(definition: dict[str, Any]) -> None:
    diff = diff_definitions(None, definition)
    assert [c.rule_id for c in diff.of_kind("rule_added")] == [  # type: ignore[attr-defined]
        r["id"] for r in definition["rules"]]
    assert {c.name for c in diff.of_kind("threshold_added")} == set(  # type: ignore[attr-defined]
        definition["thresholds"])
    removed = {"rule_removed", "threshold_removed", "input_removed"}
    assert not [c for c in diff.changes if c.kind in removed]
