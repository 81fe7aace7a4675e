"""The loader and condition-language fuzz properties with a few examples each, so every
`make test` exercises them; tests/reliability runs them with thousands."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz_properties import (
    condition_texts,
    load_definition_cleanly,
    load_text_cleanly,
    mutated_definitions,
    parse_and_check_cleanly,
    ruleset_texts,
)

FEW = settings(max_examples=40, deadline=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.slow
@FEW
@given(ruleset_texts())
def test_the_loader_answers_any_text_with_a_ruleset_or_its_problems(text: str) -> None:
    load_text_cleanly(text)


@FEW
@given(mutated_definitions())
def test_the_loader_answers_any_definition_with_a_ruleset_or_its_problems(
        definition: dict[str, Any]) -> None:
    load_definition_cleanly(definition)


@settings(max_examples=200, deadline=None)
@given(condition_texts)
def test_any_condition_text_parses_and_type_checks_or_is_a_syntax_error(text: str) -> None:
    parse_and_check_cleanly(text)
