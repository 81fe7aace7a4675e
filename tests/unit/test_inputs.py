"""Request inputs are checked against the ruleset's schema; every bad field is named."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules_service.domain.errors import DomainError, InputInvalid
from rules_service.domain.inputs import MAX_SAFE_INTEGER, check_values, validate_input
from rules_service.domain.ruleset import FieldType, InputField, Outcome, RoleHolders, Ruleset

FIELDS = (
    InputField("amount", FieldType.NUMBER, required=True, minimum=0, maximum=1_000_000),
    InputField("currency", FieldType.STRING, enum=("EUR", "USD"), default="EUR",
               has_default=True),
    InputField("level", FieldType.INTEGER, minimum=1, maximum=10),
    InputField("has_receipt", FieldType.BOOLEAN, default=False, has_default=True),
    InputField("invoice", FieldType.STRING, pattern=r"^INV-\d{4}$"),
    InputField("applicant", FieldType.OBJECT, properties=(
        InputField("country", FieldType.STRING, required=True),
        InputField("vip", FieldType.BOOLEAN, default=False, has_default=True),
    )),
)


def _ruleset(fields: tuple[InputField, ...] = FIELDS) -> Ruleset:
    holders = RoleHolders("a", "b")
    return Ruleset(name="r", title="R", description="", signoff=("approver",), thresholds={},
                   inputs=fields, rules=(), default=Outcome.ESCALATE, fallback=Outcome.ESCALATE,
                   owners={"business_owner": holders, "operations_owner": holders,
                           "approver": holders, "maintainer": holders})


RULESET = _ruleset()


def problems_of(raw: Any) -> dict[str, str]:
    with pytest.raises(InputInvalid) as info:
        validate_input(RULESET, raw)
    return {p.place: p.message for p in info.value.problems}


def test_defaults_are_applied_and_absent_optional_fields_stay_absent() -> None:
    assert validate_input(RULESET, {"amount": 20}) == {
        "amount": 20, "currency": "EUR", "has_receipt": False}


def test_nested_defaults_are_applied_inside_a_given_object() -> None:
    out = validate_input(RULESET, {"amount": 1, "applicant": {"country": "DE"}})
    assert out["applicant"] == {"country": "DE", "vip": False}


def test_an_explicit_null_counts_as_absent() -> None:
    out = validate_input(RULESET, {"amount": 1, "level": None, "currency": None})
    assert "level" not in out
    assert out["currency"] == "EUR"


def test_a_required_field_given_as_null_is_missing() -> None:
    assert problems_of({"amount": None}) == {"input.amount": "is required"}


def test_input_must_be_an_object() -> None:
    assert problems_of([1, 2]) == {"input": "must be an object of field values, not a list"}


def test_unknown_fields_are_rejected_with_a_suggestion() -> None:
    assert problems_of({"amount": 1, "amout": 2}) == {
        "input.amout": "'amout' is not a field of this ruleset; did you mean 'amount'?"}


def test_unknown_nested_fields_are_rejected() -> None:
    found = problems_of({"amount": 1, "applicant": {"country": "DE", "contry": "x"}})
    assert list(found) == ["input.applicant.contry"]


@pytest.mark.parametrize("value", [True, False, "5", [5], {"a": 1}])
def test_a_number_field_takes_only_numbers(value: Any) -> None:
    assert list(problems_of({"amount": value})) == ["input.amount"]


def test_booleans_are_not_numbers() -> None:
    assert problems_of({"amount": True}) == {"input.amount": "must be a number, not true/false"}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_rejected(value: float) -> None:
    assert problems_of({"amount": value}) == {"input.amount": "must be a finite number"}


def test_numbers_beyond_the_safe_integer_range_are_rejected() -> None:
    wide = _ruleset((InputField("n", FieldType.NUMBER),))
    assert validate_input(wide, {"n": MAX_SAFE_INTEGER}) == {"n": MAX_SAFE_INTEGER}
    for value in (MAX_SAFE_INTEGER + 1, -MAX_SAFE_INTEGER - 1, 1e300):
        with pytest.raises(InputInvalid) as info:
            validate_input(wide, {"n": value})
        assert "too large" in info.value.problems[0].message


def test_an_integer_field_needs_a_whole_number() -> None:
    assert validate_input(RULESET, {"amount": 1, "level": 3.0})["level"] == 3
    assert isinstance(validate_input(RULESET, {"amount": 1, "level": 3.0})["level"], int)
    assert problems_of({"amount": 1, "level": 3.5}) == {
        "input.level": "must be a whole number, not 3.5"}


def test_enum_minimum_maximum_and_pattern_are_enforced() -> None:
    found = problems_of({"amount": -1, "currency": "JPY", "level": 11, "invoice": "INV-12"})
    assert found == {
        "input.amount": "must be at least 0; got -1",
        "input.currency": 'must be one of "EUR", "USD"; got "JPY"',
        "input.level": "must be at most 10; got 11",
        "input.invoice": r"does not have the required form (pattern ^INV-\d{4}$)",
    }


def test_a_boolean_enum_value_does_not_accept_one() -> None:
    ruleset = _ruleset((InputField("n", FieldType.INTEGER, enum=(1, 2)),))
    with pytest.raises(InputInvalid):
        validate_input(ruleset, {"n": True})


def test_a_pattern_that_backtracks_forever_is_stopped() -> None:
    ruleset = _ruleset((InputField("s", FieldType.STRING, pattern=r"^(a|aa)+$"),))
    with pytest.raises(InputInvalid) as info:
        validate_input(ruleset, {"s": "a" * 60 + "b"})
    assert "in time" in info.value.problems[0].message


def test_every_bad_field_is_named_at_once() -> None:
    found = problems_of({"currency": 5, "level": "x", "has_receipt": "yes", "extra": 1,
                         "applicant": {"vip": 1}})
    assert set(found) == {"input.amount", "input.currency", "input.level", "input.has_receipt",
                          "input.extra", "input.applicant.country", "input.applicant.vip"}


def test_a_nested_object_must_be_an_object() -> None:
    assert problems_of({"amount": 1, "applicant": "DE"}) == {
        "input.applicant": "must be an object (a group of fields), not text"}


def test_input_invalid_is_a_domain_error_with_a_summary() -> None:
    with pytest.raises(DomainError, match="2 problems"):
        validate_input(RULESET, {"amount": "1", "x": 1})


def test_check_values_uses_the_given_place() -> None:
    _, found = check_values(FIELDS, {"amount": "1"}, "tests[3].input")
    assert [p.place for p in found] == ["tests[3].input.amount"]


# -- property: whatever a generated schema allows is accepted ----------------------------

_names = st.from_regex(r"^[a-z][a-z0-9_]{0,8}$", fullmatch=True)


@st.composite
def _field_and_value(draw: st.DrawFn, name: str, depth: int = 0) -> tuple[InputField, Any]:
    kinds = ["number", "integer", "string", "boolean"] + (["object"] if depth < 2 else [])
    kind = draw(st.sampled_from(kinds))
    required = draw(st.booleans())
    if kind == "object":
        names = draw(st.lists(_names, min_size=1, max_size=3, unique=True))
        pairs = [draw(_field_and_value(n, depth + 1)) for n in names]
        value = {f.name: v for f, v in pairs if v is not None}
        return InputField(name, FieldType.OBJECT, required,
                          properties=tuple(f for f, _ in pairs)), value
    if kind in ("number", "integer"):
        lo = draw(st.integers(-1000, 1000))
        hi = draw(st.integers(lo, lo + 1000))
        value = draw(st.integers(lo, hi) if kind == "integer"
                     else st.floats(lo, hi, allow_nan=False))
        field = InputField(name, FieldType(kind), required, minimum=lo, maximum=hi)
    elif kind == "string":
        options = draw(st.lists(st.text(max_size=5), min_size=1, max_size=4, unique=True))
        value = draw(st.sampled_from(options))
        field = InputField(name, FieldType.STRING, required,
                           enum=tuple(options) if draw(st.booleans()) else None)
    else:
        value = draw(st.booleans())
        field = InputField(name, FieldType.BOOLEAN, required)
    if not required and draw(st.booleans()):
        value = None  # leave optional fields out sometimes
    return field, value


@st.composite
def _schema_and_input(draw: st.DrawFn) -> tuple[tuple[InputField, ...], dict[str, Any]]:
    names = draw(st.lists(_names, min_size=1, max_size=5, unique=True))
    pairs = [draw(_field_and_value(n)) for n in names]
    return tuple(f for f, _ in pairs), {f.name: v for f, v in pairs if v is not None}


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(_schema_and_input())
def test_validate_input_accepts_whatever_a_generated_schema_allows(
        case: tuple[tuple[InputField, ...], dict[str, Any]]) -> None:
    fields, raw = case
    assert validate_input(_ruleset(fields), raw) == raw


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(_schema_and_input(), st.sampled_from(["text", [1], {"x": {}}]))
def test_a_value_of_the_wrong_kind_is_always_named(
        case: tuple[tuple[InputField, ...], dict[str, Any]], wrong: Any) -> None:
    fields, raw = case
    target = fields[0]
    if target.type is FieldType.STRING and isinstance(wrong, str):
        wrong = 5
    if target.type is FieldType.OBJECT and isinstance(wrong, dict):
        wrong = "text"
    with pytest.raises(InputInvalid) as info:
        validate_input(_ruleset(fields), {**raw, target.name: wrong})
    assert f"input.{target.name}" in {p.place for p in info.value.problems}
