"""Look-alike values: a ruleset may not allow two values that print the same, and an input
that imitates an allowed value is told which character is the impostor."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules_service.domain.errors import InputInvalid
from rules_service.domain.inputs import validate_input
from rules_service.domain.lookalikes import (
    allowed_values_problems,
    is_mixed_script,
    looks_like,
    skeleton,
)
from tests.unit.test_inputs import RULESET
from tests.unit.test_ruleset_files import base, places, problems

CYRILLIC_E = "\u0415"  # Е, CYRILLIC CAPITAL LETTER IE
GREEK_O = "\u03bf"  # ο, GREEK SMALL LETTER OMICRON


def test_the_skeleton_makes_look_alikes_equal_and_keeps_different_words_apart() -> None:
    assert skeleton(f"{CYRILLIC_E}UR") == skeleton("EUR")
    assert skeleton(f"s{GREEK_O}ftware") == skeleton("software")
    assert skeleton("\uff25\uff35\uff32") == skeleton("EUR")  # fullwidth ＥＵＲ
    assert skeleton("EUR") != skeleton("USD") and skeleton("EUR") != skeleton("eur")


def test_mixed_scripts_are_found_but_scripts_written_together_are_not() -> None:
    assert is_mixed_script(f"{CYRILLIC_E}UR")
    assert not is_mixed_script("EUR") and not is_mixed_script("Москва")
    assert not is_mixed_script("café-2") and not is_mixed_script("東京タワーとabc")


def test_a_ruleset_may_not_allow_two_values_that_look_alike() -> None:
    definition = base()
    definition["inputs"]["currency"] = {"type": "string", "enum": ["EUR", "USD",
                                                                   f"{CYRILLIC_E}UR"]}
    [message] = [p.message for p in problems(definition)
                  if p.place == "inputs.currency.enum[2]" and "looks like" in p.message]
    assert "looks like 'EUR' but its 'Е' is CYRILLIC CAPITAL LETTER IE" in message
    assert "(enum[0])" in message


def test_a_ruleset_may_not_allow_a_value_that_mixes_scripts() -> None:
    definition = base()
    definition["inputs"]["currency"] = {"type": "string", "enum": [f"{CYRILLIC_E}UR", "USD"]}
    message = places(definition)["inputs.currency.enum[0]"]
    assert "mixes scripts" in message and "CYRILLIC CAPITAL LETTER IE" in message


def test_the_allowed_values_of_the_example_file_pass() -> None:
    for values in (["EUR", "USD", "GBP"], ["travel", "meals", "software", "hardware", "other"],
                   ["Zürich", "Genève", "Москва", "東京"], [1, 2, 3]):
        assert allowed_values_problems(values) == []


def test_an_input_that_imitates_an_allowed_value_is_told_which_letter_is_wrong() -> None:
    with pytest.raises(InputInvalid) as info:
        validate_input(RULESET, {"amount": 1, "currency": f"{CYRILLIC_E}UR"})
    [problem] = info.value.problems
    assert problem.place == "input.currency"
    assert problem.message.startswith("must be one of \"EUR\", \"USD\"")
    assert "looks like 'EUR' but its 'Е' is CYRILLIC CAPITAL LETTER IE" in problem.message


def test_an_input_that_imitates_nothing_gets_the_plain_message() -> None:
    with pytest.raises(InputInvalid) as info:
        validate_input(RULESET, {"amount": 1, "currency": "JPY"})
    assert "looks like" not in info.value.problems[0].message
    assert looks_like("x" * 1_000_000, ["EUR"]) is None  # a long value costs nothing


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=12))
def test_a_value_never_imitates_itself_and_a_look_alike_names_a_real_character(text: str) -> None:
    assert looks_like(text, [text]) is None
    assert skeleton(text) == skeleton(unicodedata.normalize("NFKD", text))
    found = looks_like(text, ["EUR", "USD", "travel"])
    if found is not None:
        assert found.value == text and skeleton(found.like) == skeleton(text)
        assert "looks like" in found.explain()
