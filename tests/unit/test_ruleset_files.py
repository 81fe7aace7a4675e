"""Loading ruleset files: structure, meaning, every problem at once with places and lines."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules_service.adapters.ruleset_files import (
    load_ruleset_definition,
    load_ruleset_file,
    load_ruleset_text,
)
from rules_service.domain.errors import DomainError, RulesetInvalid
from rules_service.domain.problems import Problem
from rules_service.domain.ruleset import FieldType, Outcome, definition_hash

REPO = Path(__file__).resolve().parents[2]

VALID = """\
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
inputs:
  amount:       {type: number,  required: true, minimum: 0}
  currency:     {type: string,  enum: [EUR, USD, GBP], default: EUR}
  category:     {type: string,  enum: [travel, meals, software, hardware, other], required: true}
  has_receipt:  {type: boolean, default: false}
  employee_level: {type: integer, minimum: 1, maximum: 10}
  employee:
    type: object
    properties:
      country: {type: string, pattern: "^[A-Z]{2}$"}
      senior:  {type: boolean, default: false}
rules:
  - id: receipt-required
    description: Expenses above 50 need a receipt.
    when: amount > 50 and not has_receipt
    then: reject
    reason: A receipt is required above 50.
  - id: small-expense
    when: amount <= thresholds.auto_approve_limit
    then: approve
  - id: over-manager-limit
    when: amount > thresholds.manager_limit or (category == "hardware" and amount > 1000)
    then: escalate
    escalate_to: approver
  - id: foreign-senior
    when: employee.country != "DE" and employee.senior
    then: escalate
default: escalate
fallback: escalate
tests:
  - name: small meal is approved
    input: {amount: 20, category: meals}
    expect: {outcome: approve, fired: [small-expense]}
runbook:
  purpose: Pay small expenses at once.
  boundaries: Expenses only.
  normal_steps: [Watch the dashboard]
  exceptions: [{type: engine down, response: everything escalates}]
  escalation: {path: [controller, cfo], response_time_target: 4h}
  rollback: Roll back to the previous version.
impact:
  minutes_saved_per_auto_decision: 6
"""


def base() -> dict[str, Any]:
    return yaml.safe_load(VALID)


def problems(text_or_definition: str | dict[str, Any]) -> list[Problem]:
    with pytest.raises(RulesetInvalid) as info:
        if isinstance(text_or_definition, str):
            load_ruleset_text(text_or_definition)
        else:
            load_ruleset_definition(text_or_definition)
    return list(info.value.problems)


def places(text_or_definition: str | dict[str, Any]) -> dict[str, str]:
    return {p.place: p.message for p in problems(text_or_definition)}


def with_changes(**changes: Any) -> dict[str, Any]:
    d = base()
    d.update(changes)
    return d


# -- a valid file -------------------------------------------------------------------------


def test_the_example_file_loads_into_a_typed_ruleset() -> None:
    r = load_ruleset_text(VALID)
    assert r.name == "expense-approval"
    assert r.signoff == ("business_owner", "approver")
    assert [rule.id for rule in r.rules] == ["receipt-required", "small-expense",
                                            "over-manager-limit", "foreign-senior"]
    assert r.rules[0].then is Outcome.REJECT
    assert r.rules[3].escalate_to == "approver"
    assert r.owners["approver"].holders() == ("controller", "cfo")
    employee = next(f for f in r.inputs if f.name == "employee")
    assert employee.type is FieldType.OBJECT
    assert [p.name for p in employee.properties] == ["country", "senior"]
    assert r.tests[0].expect_fired == ("small-expense",)
    assert r.response_time_target == "4h"
    assert r.minutes_saved_per_auto_decision == 6


def test_the_canonical_definition_has_the_agreed_shape() -> None:
    d = load_ruleset_text(VALID).definition
    assert list(d) == ["name", "title", "description", "owners", "signoff", "thresholds",
                       "inputs", "rules", "default", "fallback", "tests", "runbook", "impact"]
    assert d["inputs"]["amount"] == {"type": "number", "required": True, "minimum": 0}
    assert d["inputs"]["currency"] == {"type": "string", "required": False,
                                       "enum": ["EUR", "USD", "GBP"], "default": "EUR"}
    assert d["inputs"]["employee"]["properties"]["senior"] == {
        "type": "boolean", "required": False, "default": False}
    assert d["rules"][1] == {"id": "small-expense", "then": "approve",
                             "when": "amount <= thresholds.auto_approve_limit"}
    assert d["rules"][3]["escalate_to"] == "approver"  # the default, written out
    assert "escalate_to" not in d["rules"][0]
    json.dumps(d)  # JSON-able


def test_signoff_defaults_to_the_approver() -> None:
    d = base()
    del d["signoff"]
    assert load_ruleset_definition(d).signoff == ("approver",)


def test_optional_sections_may_be_left_out() -> None:
    d = base()
    for key in ("description", "thresholds", "tests", "impact"):
        d.pop(key)
    d["rules"] = [{"id": "all", "when": "amount > 0", "then": "approve"}]
    r = load_ruleset_definition(d)
    assert r.description == "" and r.tests == () and r.minutes_saved_per_auto_decision == 0


def test_yaml_and_json_of_the_same_content_hash_the_same() -> None:
    from_yaml = load_ruleset_text(VALID)
    from_json = load_ruleset_text(json.dumps(base(), indent=2), "x.json")
    assert from_yaml.definition == from_json.definition
    assert from_yaml.content_hash == from_json.content_hash


def test_key_order_comments_and_number_spelling_do_not_change_the_hash() -> None:
    d = base()
    reordered = dict(reversed(list(d.items())))
    reordered["thresholds"] = {"manager_limit": 5000.0, "auto_approve_limit": 500}
    reordered["signoff"] = ["approver", "business_owner"]
    text = "# a comment\n" + yaml.safe_dump(reordered, sort_keys=False)
    assert load_ruleset_text(text).content_hash == load_ruleset_text(VALID).content_hash


def test_a_real_change_changes_the_hash() -> None:
    d = base()
    d["thresholds"]["auto_approve_limit"] = 501
    assert load_ruleset_definition(d).content_hash != load_ruleset_text(VALID).content_hash


def test_the_canonical_definition_loads_to_itself() -> None:
    r = load_ruleset_text(VALID)
    again = load_ruleset_definition(copy.deepcopy(r.definition))
    assert again.definition == r.definition
    assert again.content_hash == definition_hash(r.definition)


def test_load_ruleset_file_reads_a_path(tmp_path: Path) -> None:
    path = tmp_path / "expense.yaml"
    path.write_text(VALID, encoding="utf-8")
    assert load_ruleset_file(path).name == "expense-approval"


def test_a_file_that_is_not_utf8_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"name: \xff\xfe")
    with pytest.raises(RulesetInvalid, match="1 problem"):
        load_ruleset_file(path)


@pytest.mark.parametrize("text, line, column, code", [
    ("name: x\u000b", 1, 8, "U+000B"),
    ("name: x\ntitle: \x07bell", 2, 8, "U+0007"),
    ("name: x\ntitle: a\x00", 2, 9, "U+0000"),
    ("name: \ud800", 1, 7, "U+D800"),
    ("name: \uffff", 1, 7, "U+FFFF"),
    ('{"name": "x", "title": "\ud800"}', 1, 25, "U+D800"),
])
def test_a_character_yaml_refuses_is_a_problem_with_line_and_column(
        text: str, line: int, column: int, code: str) -> None:
    [problem] = problems(text)
    assert (problem.line, problem.column) == (line, column)
    assert code in problem.message and "cannot contain" in problem.message


def test_a_condition_nested_past_the_limit_is_a_problem_of_its_rule() -> None:
    d = base()
    d["rules"][0]["when"] = "not " * 1000 + "amount > 1"
    found = places(d)
    assert set(found) == {"rules[0].when"}
    assert "levels deep" in found["rules[0].when"]


# -- every problem at once ----------------------------------------------------------------

MANY_PROBLEMS = """\
name: Expense_Approval
title: Expense approval
titel: typo
owners:
  business_owner:   {primary: finance-lead, backup: finance-lead}
  operations_owner: {primary: ops-oncall,   backup: ops-lead}
  approver:         {primary: controller}
signoff: [business_owner, aprover]
thresholds:
  auto_approve_limit: 500
inputs:
  amount:       {type: number,  required: true, minimum: 10, maximum: 5}
  currency:     {type: string,  enum: [EUR, USD, 5], default: JPY}
  category:     {type: string,  enum: [travel, meals], required: true}
  thresholds:   {type: string}
  flag:         {type: boolean, default: false}
  flag:         {type: boolean}
  code:         {type: string, pattern: "([a-z"}
rules:
  - id: r1
    when: amout > 50 and not flag
    then: reject
  - id: r1
    when: category > 5
    then: aprove
  - id: r3
    when: >
      amount > thresholds.nope
      and category in ["travel", "cars"]
    then: approve
    escalate_to: approver
  - id: r4
    when: amount >
    then: escalate
    escalate_to: boss
default: escalate
tests:
  - name: t
    input: {amount: "20", category: meals, extra: 1}
    expect: {outcome: approve, fired: [r9]}
runbook:
  purpose: x
  escalation: {path: [], response_time_target: 4 hours}
"""


def test_a_file_with_many_problems_lists_them_all_with_places_and_lines() -> None:
    found = {(p.place, p.line, p.column) for p in problems(MANY_PROBLEMS)}
    expected = {
        ("name", 1, 7),
        ("titel", 3, 8),
        ("owners.maintainer", 4, 1),
        ("owners.business_owner.backup", 5, 53),
        ("owners.approver.backup", 7, 3),
        ("signoff[1]", 8, 27),
        ("inputs.amount.minimum", 12, 58),
        ("inputs.currency.enum[2]", 13, 50),
        ("inputs.currency.default", 13, 63),
        ("inputs.thresholds", 15, 3),
        ("inputs.flag", 17, 3),
        ("inputs.code.pattern", 18, 41),
        ("rules[0].when", 21, 11),            # amout, inside the condition
        ("rules[1].id", 23, 9),
        ("rules[1].when", 24, 11),            # category > 5
        ("rules[1].then", 25, 11),
        ("rules[2].when", 28, 16),            # thresholds.nope, in a folded block
        ("rules[2].when", 29, 34),            # "cars", on the block's second line
        ("rules[2].escalate_to", 31, 18),
        ("rules[3].when", 33, 18),            # the condition ends too early
        ("rules[3].escalate_to", 35, 18),
        ("tests[0].input.amount", 39, 21),
        ("tests[0].input.extra", 39, 51),
        ("tests[0].expect.fired[0]", 40, 40),
        ("runbook.escalation.path", 43, 16),
        ("runbook.escalation.response_time_target", 43, 48),
        ("fallback", None, None),
    }
    assert found == expected


def test_problems_come_in_file_order_and_read_plainly() -> None:
    found = problems(MANY_PROBLEMS)
    lines = [p.line for p in found if p.line is not None]
    assert lines == sorted(lines)
    by_place = {p.place: p.message for p in found}
    assert by_place["titel"].startswith("'titel' is not a known setting here; did you mean "
                                        "'title'?")
    assert "did you mean 'approve'" in by_place["rules[1].then"]
    assert "did you mean 'amount'" in by_place["rules[0].when"]
    assert "first on line 16" in by_place["inputs.flag"]
    assert str(found[0]).startswith("name (line 1, column 7): ")


def test_ruleset_invalid_is_a_domain_error_that_counts_its_problems() -> None:
    with pytest.raises(DomainError, match=r"the ruleset has \d+ problems"):
        load_ruleset_text(MANY_PROBLEMS)


# -- reading the text ---------------------------------------------------------------------


def test_a_yaml_syntax_error_has_its_line() -> None:
    (p,) = problems("name: x\nrules:\n  - id: a\n   when: b\n")
    assert p.message.startswith("the file is not valid YAML")
    assert p.line == 4


def test_a_colon_in_a_value_gets_a_hint() -> None:
    (p,) = problems("name: x\ntitle: Note: this\n")
    assert "put the value in quotes" in p.message


def test_duplicate_keys_are_problems_not_silently_kept() -> None:
    text = VALID.replace("default: escalate\n", "default: escalate\ndefault: approve\n")
    (p,) = problems(text)
    assert p.place == "default"
    first = VALID.count("\n", 0, VALID.index("\ndefault: escalate")) + 2
    assert "written twice" in p.message and f"first on line {first}" in p.message
    assert (p.line, p.column) == (first + 1, 1)


def test_anchors_and_aliases_are_refused() -> None:
    text = VALID.replace("approver:         {primary: controller,   backup: cfo}",
                         "approver: &a {primary: controller,   backup: cfo}").replace(
        "maintainer:       {primary: rules-dev,    backup: platform-dev}", "maintainer: *a")
    assert "anchors and aliases" in places(text)["owners.maintainer"]


def test_python_tags_are_refused_by_the_safe_loader() -> None:
    (p,) = problems("name: !!python/object/apply:os.system ['echo hi']\n")
    assert "not valid YAML" in p.message


@pytest.mark.parametrize("text", ["", "   \n# only a comment\n"])
def test_an_empty_file_is_a_problem(text: str) -> None:
    (p,) = problems(text)
    assert "empty" in p.message


@pytest.mark.parametrize("text", ["~\n", "null\n", "Null", "--- null\n"])
def test_a_file_holding_only_null_is_a_problem(text: str) -> None:
    (p,) = problems(text)
    assert p.place == "" and "null" in p.message


def test_a_file_that_is_not_a_mapping_is_a_problem() -> None:
    (p,) = problems("- a\n- b\n")
    assert p.place == "" and "not a list" in p.message


def test_several_yaml_documents_are_a_problem() -> None:
    (p,) = problems(VALID + "---\nname: other\n")
    assert "not valid YAML" in p.message


def test_a_json_syntax_error_has_its_line() -> None:
    with pytest.raises(RulesetInvalid) as info:
        load_ruleset_text('{\n  "name": "x",\n  "title": \n}', "r.json")
    (p,) = info.value.problems
    assert p.message.startswith("the file is not valid JSON") and p.line == 4


def test_text_that_is_neither_json_nor_yaml_gets_the_json_error() -> None:
    (p,) = problems('{\n  "name": "x",,\n}')
    assert p.message.startswith("the file is not valid JSON") and p.line == 2


def test_json_duplicate_keys_are_problems() -> None:
    text = json.dumps(base(), indent=2).replace('"default": "escalate",',
                                                '"default": "escalate", "default": "approve",')
    (p,) = problems(text)
    assert p.place == "default" and "written twice" in p.message and p.line is not None


def test_json_nan_is_refused() -> None:
    text = json.dumps(base()).replace('"auto_approve_limit": 500', '"auto_approve_limit": NaN')
    assert any("NaN" in p.message for p in problems(text))


def test_json_condition_errors_point_into_the_file() -> None:
    d = base()
    d["rules"][2]["when"] = 'category == "hardwar"'
    text = json.dumps(d, indent=2)
    found = [p for p in problems(text) if p.place == "rules[2].when"]
    (p,) = found
    line_text = text.splitlines()[p.line - 1]
    assert line_text[p.column - 1:].startswith('"hardwar')


def test_a_yaml_flow_mapping_that_is_not_json_still_loads() -> None:
    text = json.dumps(base()).replace('"name": "expense-approval"', "name: expense-approval")
    assert load_ruleset_text(text).name == "expense-approval"


@pytest.mark.parametrize(("when", "line_offset", "column"), [
    ("'amount > 5 and amout < 3'", 0, 27),
    ('"amount > 5 and amout < 3"', 0, 27),
    ("|\n      amount > 5\n      and amout < 3", 2, 11),
    (">-\n      amount > 5\n      and amout < 3", 2, 11),
])
def test_condition_positions_point_into_the_file_for_every_scalar_style(
        when: str, line_offset: int, column: int) -> None:
    text = VALID.replace("when: amount <= thresholds.auto_approve_limit", f"when: {when}")
    rule_line = VALID.count("\n", 0, VALID.index("when: amount <= thresholds")) + 1
    (p,) = problems(text)
    assert p.place == "rules[1].when"
    assert (p.line, p.column) == (rule_line + line_offset, column)


def test_a_definition_without_a_file_gives_the_position_in_the_message() -> None:
    d = base()
    d["rules"][1]["when"] = "amount > 5 and amout < 3"
    (p,) = problems(d)
    assert p.line is None
    assert p.message.endswith("(at column 16 of the condition)")


# -- structure ----------------------------------------------------------------------------


def test_unknown_top_level_keys_are_errors_with_a_suggestion() -> None:
    assert "did you mean 'thresholds'" in places(with_changes(treshold={}))["treshold"]


def test_unknown_keys_inside_a_rule_are_errors() -> None:
    d = base()
    d["rules"][0]["then_"] = "reject"
    assert "rules[0].then_" in places(d)


def test_a_comma_inside_a_flow_mapping_value_gets_a_hint() -> None:
    text = VALID.replace("{type: boolean, default: false}\n  employee_level",
                         "{type: boolean, description: Given, e.g. paper}\n  employee_level")
    message = places(text)["inputs.has_receipt.e.g. paper"]
    assert "put text that contains commas in quotes" in message


@pytest.mark.parametrize("name", ["Expense", "a_b", "-a", "a--b", "a-", "", "x" * 64])
def test_the_name_must_be_a_slug(name: str) -> None:
    assert "name" in places(with_changes(name=name))


def test_a_name_of_63_characters_is_fine() -> None:
    assert load_ruleset_definition(with_changes(name="x" * 63)).name == "x" * 63


@pytest.mark.parametrize("key", ["name", "title", "owners", "rules", "default", "fallback",
                                 "runbook"])
def test_required_settings_are_named_when_missing(key: str) -> None:
    d = base()
    del d[key]
    assert places(d) == {key: "is required but missing"}


def test_a_runbook_needs_an_escalation_path_and_target() -> None:
    d = base()
    del d["runbook"]["escalation"]["response_time_target"]
    d["runbook"]["escalation"]["path"] = []
    assert set(places(d)) == {"runbook.escalation.response_time_target",
                              "runbook.escalation.path"}


@pytest.mark.parametrize("target", ["4h", "30m", "2d", "1h30m", "1d2h"])
def test_response_time_targets_accept_durations(target: str) -> None:
    d = base()
    d["runbook"]["escalation"]["response_time_target"] = target
    assert load_ruleset_definition(d).response_time_target == target


@pytest.mark.parametrize("target", ["4", "4 hours", "h", "0h", "1m4h"])
def test_response_time_targets_refuse_other_text(target: str) -> None:
    d = base()
    d["runbook"]["escalation"]["response_time_target"] = target
    assert "runbook.escalation.response_time_target" in places(d)


def test_impact_minutes_must_not_be_negative() -> None:
    assert "impact.minutes_saved_per_auto_decision" in places(
        with_changes(impact={"minutes_saved_per_auto_decision": -1}))


@pytest.mark.parametrize(("value", "fragment"), [
    ("5", "must be a number"), (True, "must be a number"), (float("inf"), "finite")])
def test_numbers_are_not_coerced(value: Any, fragment: str) -> None:
    d = base()
    d["inputs"]["amount"]["minimum"] = value
    assert fragment in places(d)["inputs.amount.minimum"]


def test_required_must_be_true_or_false_not_yes_text() -> None:
    d = base()
    d["inputs"]["amount"]["required"] = "yes"
    assert places(d) == {"inputs.amount.required": "must be true or false, not text"}


def test_thresholds_must_be_scalars() -> None:
    d = base()
    d["thresholds"]["extra"] = [1, 2]
    assert places(d) == {
        "thresholds.extra": "must be a number, text or true/false, not a list"}


def test_a_yaml_date_gets_a_quoting_hint() -> None:
    text = VALID.replace("title: Expense approval", "title: 2024-01-01")
    assert "put it in quotes" in places(text)["title"]


# -- meaning ------------------------------------------------------------------------------


def test_duplicate_rule_ids_are_reported() -> None:
    d = base()
    d["rules"][2]["id"] = "receipt-required"
    assert places(d) == {"rules[2].id": "the rule id 'receipt-required' is already used by "
                                        "rules[0]; ids must be unique"}


def test_an_unknown_outcome_is_reported_for_rules_default_and_fallback() -> None:
    d = base()
    d["rules"][0]["then"] = "deny"
    d["default"] = "maybe"
    d["fallback"] = "rejected"
    found = places(d)
    assert set(found) == {"rules[0].then", "default", "fallback"}
    assert "did you mean 'reject'" in found["fallback"]


def test_every_role_must_have_owners() -> None:
    d = base()
    del d["owners"]["approver"]
    assert places(d) == {"owners.approver": "the role approver is missing; name its primary and "
                                            "backup (every ruleset needs all four roles filled)"}


def test_an_unknown_role_in_owners_is_reported() -> None:
    d = base()
    d["owners"]["auditor"] = {"primary": "a", "backup": "b"}
    assert "owners.auditor" in places(d)


def test_signoff_naming_an_unknown_role_is_reported() -> None:
    assert "signoff[0]" in places(with_changes(signoff=["auditor"]))


def test_signoff_listing_a_role_twice_is_reported() -> None:
    assert places(with_changes(signoff=["approver", "approver"])) == {
        "signoff[1]": "approver is listed twice"}


def test_escalate_to_must_be_a_role() -> None:
    d = base()
    d["rules"][2]["escalate_to"] = "cfo"
    assert "rules[2].escalate_to" in places(d)


def test_escalate_to_on_a_rule_that_does_not_escalate_is_reported() -> None:
    d = base()
    d["rules"][1]["escalate_to"] = "approver"
    assert "rules[1].escalate_to" in places(d)


def test_the_same_person_cannot_be_primary_and_backup() -> None:
    d = base()
    d["owners"]["approver"]["backup"] = "controller"
    assert list(places(d)) == ["owners.approver.backup"]


@pytest.mark.parametrize(("spec", "fragment"), [
    ({"type": "string", "enum": ["EUR"], "default": "JPY"}, 'must be one of "EUR"'),
    ({"type": "number", "default": "5"}, "must be a number"),
    ({"type": "number", "minimum": 0, "default": -1}, "must be at least 0"),
    ({"type": "integer", "maximum": 3, "default": 4}, "must be at most 3"),
    ({"type": "integer", "default": 1.5}, "whole number"),
    ({"type": "string", "pattern": "^a", "default": "b"}, "required form"),
])
def test_a_default_must_fit_its_own_field(spec: dict[str, Any], fragment: str) -> None:
    d = base()
    d["inputs"]["extra"] = spec
    message = places(d)["inputs.extra.default"]
    assert message.startswith("the default") and fragment in message


def test_a_required_field_cannot_have_a_default() -> None:
    d = base()
    d["inputs"]["amount"]["default"] = 1
    assert "inputs.amount.default" in places(d)


def test_enum_values_of_the_wrong_type_are_reported_with_a_yaml_hint() -> None:
    text = VALID.replace("enum: [EUR, USD, GBP]", "enum: [EUR, yes, 5]")
    found = places(text)
    assert set(found) == {"inputs.currency.enum[1]", "inputs.currency.enum[2]"}
    assert "put it in quotes" in found["inputs.currency.enum[1]"]


def test_an_empty_or_repeated_enum_is_reported() -> None:
    d = base()
    d["inputs"]["currency"]["enum"] = ["EUR", "EUR"]
    d["inputs"]["category"]["enum"] = []
    d["tests"] = []
    d["rules"] = [{"id": "a", "when": "amount > 1", "then": "approve"}]
    assert set(places(d)) == {"inputs.currency.enum[1]", "inputs.category.enum"}


def test_minimum_above_maximum_is_reported() -> None:
    d = base()
    d["inputs"]["employee_level"]["minimum"] = 11
    assert places(d) == {"inputs.employee_level.minimum":
                         "the minimum (11) is larger than the maximum (10)"}


def test_settings_that_do_not_apply_to_a_type_are_reported() -> None:
    d = base()
    d["inputs"]["extra"] = {"type": "string", "minimum": 1}
    d["inputs"]["flag"] = {"type": "boolean", "pattern": "x"}
    d["inputs"]["obj"] = {"type": "object"}
    d["inputs"]["num"] = {"type": "number", "properties": {"a": {"type": "string"}}}
    assert set(places(d)) == {"inputs.extra.minimum", "inputs.flag.pattern", "inputs.obj",
                              "inputs.num.properties"}


def test_an_invalid_field_pattern_is_reported() -> None:
    d = base()
    d["inputs"]["employee"]["properties"]["country"]["pattern"] = "[A-Z"
    assert "inputs.employee.properties.country.pattern" in places(d)


def test_an_input_named_thresholds_is_reserved() -> None:
    d = base()
    d["inputs"]["thresholds"] = {"type": "number"}
    assert "reserved" in places(d)["inputs.thresholds"]


@pytest.mark.parametrize("name", ["and", "not", "true", "2fast", "my-field"])
def test_input_names_must_be_usable_in_conditions(name: str) -> None:
    d = base()
    d["inputs"][name] = {"type": "number"}
    assert f"inputs.{name}" in places(d)


def test_a_threshold_referenced_but_missing_is_reported() -> None:
    d = base()
    del d["thresholds"]["manager_limit"]
    assert places(d) == {"rules[2].when": "unknown threshold 'thresholds.manager_limit'; "
                                          "add it under thresholds: (at column 10 of the "
                                          "condition)"}


def test_condition_syntax_and_type_errors_are_reported_per_rule() -> None:
    d = base()
    d["rules"][0]["when"] = "amount > 50 and and"
    d["rules"][1]["when"] = "category > 5"
    found = places(d)
    assert found["rules[0].when"].startswith("the condition cannot be read: ")
    assert "only numbers can be compared" in found["rules[1].when"]


def test_a_broken_field_does_not_also_make_every_rule_using_it_fail() -> None:
    d = base()
    d["inputs"]["amount"]["type"] = "money"
    assert list(places(d)) == ["inputs.amount.type"]


def test_rules_with_sound_structure_are_checked_even_when_others_are_broken() -> None:
    d = base()
    d["rules"][0]["then"] = 5
    d["rules"][1]["when"] = "amout > 1"
    d["title"] = ""
    assert set(places(d)) == {"rules[0].then", "rules[1].when", "title"}


def test_tests_referencing_unknown_rules_are_reported() -> None:
    d = base()
    d["tests"][0]["expect"] = {"fired": ["small-expence"], "deciding": ["nope"]}
    found = places(d)
    assert found["tests[0].expect.fired[0]"] == (
        "there is no rule 'small-expence' in this ruleset; did you mean 'small-expense'?")
    assert "tests[0].expect.deciding[0]" in found


def test_a_deciding_rule_must_fire_and_match_the_outcome() -> None:
    d = base()
    d["tests"][0]["expect"] = {"outcome": "reject", "fired": ["small-expense"],
                               "deciding": ["receipt-required"]}
    (message,) = places(d).values()
    assert "must also be listed under fired" in message or "decides reject" in message
    assert len(problems(d)) == 1


def test_test_inputs_that_break_the_schema_are_reported() -> None:
    d = base()
    d["tests"][0]["input"] = {"amount": -1, "category": "food", "employee": {"country": "de"}}
    assert set(places(d)) == {"tests[0].input.amount", "tests[0].input.category",
                              "tests[0].input.employee.country"}


def test_test_names_must_be_unique_and_say_what_they_expect() -> None:
    d = base()
    d["tests"].append({"name": "small meal is approved", "expect": {},
                       "input": {"amount": 1, "category": "meals"}})
    assert set(places(d)) == {"tests[1].name", "tests[1].expect"}


# -- the example rulesets -----------------------------------------------------------------


@pytest.mark.parametrize("path", sorted((REPO / "rulesets").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_example_ruleset_loads(path: Path) -> None:
    try:
        load_ruleset_file(path)
    except RulesetInvalid as exc:
        pytest.fail("\n".join(str(p) for p in exc.problems))


# -- property: any valid definition round-trips through YAML and JSON ---------------------

_ident = st.from_regex(r"^[a-z][a-z0-9_]{0,6}$", fullmatch=True).filter(
    lambda s: s not in {"and", "or", "not", "in", "matches", "exists", "true", "false",
                        "thresholds"})
_slug = st.from_regex(r"^[a-z0-9]{1,6}(-[a-z0-9]{1,4}){0,2}$", fullmatch=True)
_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                min_size=1, max_size=20).filter(lambda s: s.strip() == s and s != "")


@st.composite
def _definitions(draw: st.DrawFn) -> dict[str, Any]:
    d = base()
    d["name"] = draw(_slug)
    d["title"] = draw(_text)
    d["description"] = draw(_text)
    d["thresholds"] = draw(st.dictionaries(_ident, st.one_of(
        st.integers(-10**6, 10**6), st.floats(-1e6, 1e6, allow_nan=False), _text,
        st.booleans()), max_size=4))
    numbers = draw(st.lists(_ident, min_size=1, max_size=4, unique=True))
    d["inputs"] = {n: {"type": draw(st.sampled_from(["number", "integer"])),
                       "required": draw(st.booleans())} for n in numbers}
    rule_ids = draw(st.lists(_slug, min_size=1, max_size=5, unique=True))
    d["rules"] = []
    for rid in rule_ids:
        field = draw(st.sampled_from(numbers))
        op = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
        value = draw(st.integers(-1000, 1000))
        then = draw(st.sampled_from(["approve", "escalate", "reject"]))
        rule: dict[str, Any] = {"id": rid, "when": f"{field} {op} {value}", "then": then}
        if then == "escalate" and draw(st.booleans()):
            rule["escalate_to"] = draw(st.sampled_from(["approver", "maintainer"]))
        if draw(st.booleans()):
            rule["reason"] = draw(_text)
        d["rules"].append(rule)
    d["tests"] = [{"name": "t", "input": {n: 1 for n in numbers},
                   "expect": {"fired": draw(st.lists(st.sampled_from(rule_ids), unique=True))}}]
    d["signoff"] = draw(st.lists(st.sampled_from(["business_owner", "approver", "maintainer"]),
                                 min_size=1, unique=True))
    d["default"] = draw(st.sampled_from(["approve", "escalate", "reject"]))
    return d


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_definitions())
def test_any_valid_definition_round_trips_through_yaml_and_json(d: dict[str, Any]) -> None:
    from_yaml = load_ruleset_text(yaml.safe_dump(d, allow_unicode=True), "r.yaml")
    from_json = load_ruleset_text(json.dumps(d, ensure_ascii=False), "r.json")
    from_dict = load_ruleset_definition(d)
    assert from_yaml.content_hash == from_json.content_hash == from_dict.content_hash
    assert load_ruleset_definition(from_yaml.definition).content_hash == from_yaml.content_hash


def test_a_load_pauses_the_cycle_collector_and_leaves_it_as_it_was() -> None:
    import gc

    from rules_service.adapters.ruleset_files import load_ruleset_text

    seen = []
    real = gc.disable

    def spy() -> None:
        seen.append(gc.isenabled())
        real()

    assert gc.isenabled()
    gc.disable = spy  # type: ignore[assignment]
    try:
        with pytest.raises(RulesetInvalid):
            load_ruleset_text("name: [")
    finally:
        gc.disable = real  # type: ignore[assignment]
    assert seen == [True] and gc.isenabled()  # paused during the load, resumed after
    gc.disable()
    try:
        with pytest.raises(RulesetInvalid):
            load_ruleset_text("name: [")
        assert not gc.isenabled()  # a process that turned it off keeps it off
    finally:
        gc.enable()
