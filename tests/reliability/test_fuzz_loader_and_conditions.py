"""Fuzzing the ruleset loader and the condition language (hypothesis), bounded in time.

Whatever the text (any unicode, control characters, lone surrogates, mutated structure,
conditions nested thousands deep), the loader answers with a Ruleset or RulesetInvalid and
the condition parser with an AST the type checker and printer handle or a
ConditionSyntaxError: never another exception, never a hang. Budget: about 100 s for the
three on one core (38,000 inputs: 50 s, 20 s, 30 s); pytest-timeout stops a hang at 300 s,
and an example slower than the 10 s deadline fails the test.
tests/unit/test_fuzz_properties.py runs the same properties with a few examples on every
`make test`.
"""

from __future__ import annotations

from datetime import timedelta
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

FUZZ = settings(deadline=timedelta(seconds=10), print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.timeout(300)
@settings(FUZZ, max_examples=5_000)
@given(ruleset_texts())
def test_the_loader_answers_any_text_with_a_ruleset_or_its_problems(text: str) -> None:
    load_text_cleanly(text)


@pytest.mark.timeout(300)
@settings(FUZZ, max_examples=3_000)
@given(mutated_definitions())
def test_the_loader_answers_any_definition_with_a_ruleset_or_its_problems(
        definition: dict[str, Any]) -> None:
    load_definition_cleanly(definition)


@pytest.mark.timeout(300)
@settings(FUZZ, max_examples=30_000)
@given(condition_texts)
def test_any_condition_text_parses_and_type_checks_or_is_a_syntax_error(text: str) -> None:
    parse_and_check_cleanly(text)
