"""The condition type checker: conditions are checked against inputs and thresholds at load."""

from __future__ import annotations

import pytest

from rules_service.domain.ruleset import FieldType, InputField
from rules_service.language.parser import parse_condition
from rules_service.language.patterns import regex_problem
from rules_service.language.typecheck import TypeProblem, check_condition, field_paths

INPUTS = (
    InputField("amount", FieldType.NUMBER, required=True, minimum=0),
    InputField("level", FieldType.INTEGER),
    InputField("currency", FieldType.STRING, enum=("EUR", "USD", "GBP")),
    InputField("category", FieldType.STRING, enum=("travel", "meals", "hardware")),
    InputField("note", FieldType.STRING),
    InputField("has_receipt", FieldType.BOOLEAN),
    InputField("applicant", FieldType.OBJECT, properties=(
        InputField("country", FieldType.STRING),
        InputField("age", FieldType.INTEGER),
        InputField("address", FieldType.OBJECT, properties=(
            InputField("zip", FieldType.STRING),)),
    )),
)
FIELDS = field_paths(INPUTS)
THRESHOLDS = {"limit": 500, "ratio": 0.5, "home": "DE", "strict": True}


def problems(text: str) -> list[TypeProblem]:
    return check_condition(parse_condition(text), FIELDS, THRESHOLDS)


def messages(text: str) -> list[str]:
    return [p.message for p in problems(text)]


@pytest.mark.parametrize("text", [
    "amount > 50 and not has_receipt",
    "amount <= thresholds.limit",
    "thresholds.limit < amount",
    "5 < amount",
    "level >= 2.0",
    "amount > thresholds.ratio or level == 3",
    'category == "hardware" and amount > 1000',
    'currency in ["EUR", "USD"]',
    'currency not in ["GBP"]',
    'note matches "^INV-[0-9]+$"',
    "has_receipt == true",
    "has_receipt",
    "not has_receipt",
    "true",
    "not false",
    "thresholds.strict",
    "exists(level)",
    "exists(applicant)",
    "exists(applicant.address.zip)",
    'applicant.country == thresholds.home',
    'applicant.address.zip matches "^1"',
    "applicant.age in [18, 19, 20]",
    "amount in [1, 2.5, thresholds.limit]",
])
def test_well_typed_conditions_have_no_problems(text: str) -> None:
    assert problems(text) == []


def test_field_paths_reach_nested_fields() -> None:
    assert ("applicant", "address", "zip") in FIELDS
    assert FIELDS[("applicant", "age")].type is FieldType.INTEGER


def test_unknown_field_suggests_a_close_name() -> None:
    assert messages("amout > 5") == ["unknown field 'amout'; did you mean 'amount'?"]


def test_unknown_field_without_close_match_lists_the_fields() -> None:
    (message,) = messages("zzz == 1")
    assert message.startswith("unknown field 'zzz'; the fields are ")
    assert "amount" in message and "applicant.country" in message


def test_unknown_nested_field_suggests_the_nested_name() -> None:
    assert messages('applicant.cuntry == "DE"') == [
        "unknown field 'applicant.cuntry'; did you mean 'applicant.country'?"]


def test_a_dotted_name_through_a_plain_field_says_it_has_no_fields() -> None:
    assert messages("amount.cents > 5") == ["'amount' is a number, it has no field 'cents'"]


def test_unknown_threshold_suggests_a_close_name() -> None:
    assert messages("amount > thresholds.limt") == [
        "unknown threshold 'thresholds.limt'; did you mean 'thresholds.limit'?"]


def test_missing_threshold_says_where_to_add_it() -> None:
    assert messages("amount > thresholds.max_amount") == [
        "unknown threshold 'thresholds.max_amount'; add it under thresholds:"]


@pytest.mark.parametrize("text", ["category > 5", 'note < "b"', "has_receipt >= true"])
def test_ordering_works_only_on_numbers(text: str) -> None:
    (message,) = messages(text)
    assert "only numbers can be compared with" in message


@pytest.mark.parametrize(("text", "expected"), [
    ('amount == "x"', "'amount' is a number, so it cannot be compared with \"x\""),
    ("note == 5", "'note' is text, so it cannot be compared with 5"),
    ("has_receipt == 1", "'has_receipt' is true/false, so it cannot be compared with 1"),
    ("amount > true", "'amount' is a number, so it cannot be compared with true"),
    ("note == thresholds.limit",
     "'note' is text, so it cannot be compared with thresholds.limit (500)"),
    ('amount > thresholds.home',
     "'amount' is a number, so it cannot be compared with thresholds.home (\"DE\")"),
])
def test_literal_and_threshold_types_must_match_the_field(text: str, expected: str) -> None:
    assert messages(text) == [expected]


def test_a_value_outside_the_enum_can_never_match() -> None:
    assert messages('currency == "JPY"') == [
        '"JPY" is not one of the allowed values of \'currency\' ("EUR", "USD", "GBP"), '
        "so this can never match"]


def test_an_enum_check_covers_every_item_of_in_and_not_in() -> None:
    found = problems('category in ["travel", "cars", "boats"] or currency not in ["YEN"]')
    assert len(found) == 3
    assert all("can never match" in p.message for p in found)
    assert [p.column for p in found] == [24, 32, 61]


def test_a_list_item_of_the_wrong_type_is_reported() -> None:
    assert messages('amount in [1, "two"]') == ["'amount' is a number, so it can never be \"two\""]


def test_a_whole_number_field_can_never_equal_a_fraction() -> None:
    assert messages("level == 2.5") == ["'level' is a whole number, so it can never equal 2.5"]


def test_matches_works_only_on_text() -> None:
    assert messages('amount matches "1"') == [
        "'amount' is a number; 'matches' works only on text fields"]


def test_matches_with_an_invalid_regex_is_reported() -> None:
    (message,) = messages('note matches "([a-z"')
    assert message.startswith("the pattern '([a-z' is not a valid regular expression")


def test_regex_problem_accepts_good_patterns_and_explains_bad_ones() -> None:
    assert regex_problem(r"^INV-\d{4}$") is None
    assert "not a valid regular expression" in (regex_problem("a{2,1}") or "")
    assert "not a valid regular expression" in (regex_problem("*a") or "")


def test_comparing_two_fields_is_not_supported() -> None:
    assert messages("amount > level") == [
        "comparing two fields ('amount' and 'level') is not supported; compare a field with "
        "a value or a threshold"]


def test_comparing_two_fields_still_reports_unknown_ones() -> None:
    assert len(messages("amount > levle")) == 2


def test_a_comparison_without_any_field_is_always_the_same() -> None:
    (message,) = messages("5 > 3")
    assert "does not involve any input field" in message


@pytest.mark.parametrize(("text", "fragment"), [
    ("amount", "'amount' is a number, not true/false"),
    ("not note", "'note' is text, not true/false"),
    ("applicant", "'applicant' is a group of fields, not true/false"),
    ("5", "5 on its own is not a condition"),
    ('"yes"', '"yes" on its own is not a condition'),
    ("thresholds.limit", "'thresholds.limit' is not true/false"),
])
def test_a_non_boolean_on_its_own_is_not_a_condition(text: str, fragment: str) -> None:
    (message,) = messages(text)
    assert fragment in message


def test_exists_of_an_unknown_field_is_reported() -> None:
    assert messages("exists(levl)") == ["unknown field 'levl'; did you mean 'level'?"]


def test_comparing_a_whole_object_is_reported() -> None:
    (message,) = messages('applicant == "x"')
    assert "'applicant' is a group of fields" in message


def test_in_needs_a_field_on_the_left_and_values_in_the_list() -> None:
    assert messages("5 in [1, 2]") == ["the left side of 'in' must be an input field"]
    assert messages("amount in [level]") == [
        "a list may hold only values and thresholds, not the field 'level'"]
    assert messages("amount in []") == ["the list after 'in' is empty"]


def test_every_problem_is_reported_with_its_position() -> None:
    found = problems('amout > 5 and category > 1\n  or currency == "JPY"')
    assert [(p.line, p.column) for p in found] == [(1, 1), (1, 15), (2, 18)]


def test_no_inputs_at_all_says_so() -> None:
    found = check_condition(parse_condition("amount > 1"), {}, {})
    assert [p.message for p in found] == [
        "unknown field 'amount'; the ruleset declares no inputs"]
