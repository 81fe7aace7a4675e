"""The editor's thresholds form written into the file: through ruamel's round trip, comments
and alignment kept, any number typed valid YAML, a field that is not a number refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from api.pages.filters import place_words
from rules_service.adapters.ruleset_files import load_ruleset_text
from rules_service.adapters.ruleset_files.edit import (
    place_lines,
    read_thresholds,
    set_thresholds,
)
from rules_service.domain.errors import RulesetInvalid

REPO = Path(__file__).resolve().parents[2]
EXPENSES = (REPO / "rulesets" / "expense-approval.yaml").read_text()
LIMIT = "  auto_approve_limit: {}         # paid without review up to this amount"


def lines_with(text: str, key: str) -> list[str]:
    return [t for t in text.splitlines() if t.lstrip().startswith(key + ":")]


def test_a_number_typed_keeps_the_comment_in_its_column() -> None:
    edited, problems = set_thresholds(EXPENSES, {"auto_approve_limit": "800"})
    assert problems == []
    assert load_ruleset_text(edited).thresholds["auto_approve_limit"] == 800
    assert lines_with(edited, "auto_approve_limit") == [LIMIT.format(800)]
    # Nothing else in the file moved, the owners' padded flow mappings included.
    changed = [(a, b) for a, b in zip(EXPENSES.splitlines(), edited.splitlines(), strict=True)
               if a != b]
    assert changed == [(LIMIT.format(500), LIMIT.format(800))]


def test_a_longer_number_still_leaves_a_space_before_the_comment() -> None:
    edited, _ = set_thresholds(EXPENSES, {"foreign_currency_review_at": "123456"})
    [line] = lines_with(edited, "foreign_currency_review_at")
    assert line.startswith("  foreign_currency_review_at: 123456 # claims")


@pytest.mark.parametrize("typed", ["", "   ", "abc", "8o0", "5k", "1e3", "nan", "inf", "0x10"])
def test_a_field_that_is_not_a_number_is_a_problem_on_it_and_the_file_keeps_its_value(
        typed: str) -> None:
    edited, problems = set_thresholds(EXPENSES, {"auto_approve_limit": typed})
    assert edited == EXPENSES
    [problem] = problems
    assert problem.place == "thresholds.auto_approve_limit"
    assert "number" in problem.message


def test_a_bad_field_does_not_stop_a_good_one() -> None:
    edited, problems = set_thresholds(EXPENSES, {"auto_approve_limit": "",
                                                 "manager_limit": "6000"})
    assert [p.place for p in problems] == ["thresholds.auto_approve_limit"]
    assert read_thresholds(edited) == {**(read_thresholds(EXPENSES) or {}),
                                       "manager_limit": 6000}


def test_an_unknown_threshold_is_a_problem() -> None:
    edited, problems = set_thresholds(EXPENSES, {"no_such_limit": "5"})
    assert edited == EXPENSES and "no such threshold" in problems[0].message


def test_a_file_the_form_cannot_rewrite_in_place_is_left_alone() -> None:
    compact = '{\n  "name": "x",\n  "thresholds": {"a": 1, "b": 2}\n}\n'
    edited, problems = set_thresholds(compact, {"a": "3"})
    assert edited == compact and "edit it in the file" in problems[0].message


@pytest.mark.slow  # 40 round trips through ruamel.yaml: about 20 s
@settings(max_examples=40, deadline=None)
@given(st.one_of(st.integers(-10**15, 10**15),
                 st.decimals(min_value=-10**9, max_value=10**9, places=4,
                             allow_nan=False, allow_infinity=False)))
def test_any_number_typed_gives_a_valid_file_holding_that_number(number: object) -> None:
    typed = str(number)
    edited, problems = set_thresholds(EXPENSES, {"auto_approve_limit": typed})
    assert problems == []
    assert (read_thresholds(edited) or {})["auto_approve_limit"] == float(typed)
    [line] = lines_with(edited, "auto_approve_limit")
    assert "# paid without review up to this amount" in line
    assert yaml.safe_load(line.strip())["auto_approve_limit"] == float(typed)


def test_failing_tests_and_other_places_have_their_lines() -> None:
    lines = place_lines(EXPENSES, ["tests[0]", "rules[8].when", "nowhere[3]"])
    text = EXPENSES.splitlines()
    assert text[lines["tests[0]"] - 1].strip() == "- name: small meal is approved"
    assert "amount <= thresholds.auto_approve_limit" in text[lines["rules[8].when"] - 1] or \
        text[lines["rules[8].when"] - 1].strip().startswith("when:")
    assert "nowhere[3]" not in lines


def syntax_error_line(text: str) -> int | None:
    with pytest.raises(RulesetInvalid) as raised:
        load_ruleset_text(text)
    return raised.value.problems[0].line


def test_a_key_without_its_colon_is_reported_on_its_own_line() -> None:
    lines = EXPENSES.splitlines()
    at = next(i for i, t in enumerate(lines) if t.startswith("  manager_limit:"))
    lines[at] = lines[at].replace("manager_limit:", "manager_limit", 1)
    assert syntax_error_line("\n".join(lines)) == at + 1


def test_an_unclosed_bracket_is_reported_where_it_opens() -> None:
    lines = EXPENSES.splitlines()
    at = next(i for i, t in enumerate(lines) if t.startswith("  manager_limit:"))
    lines[at] = lines[at].replace("5000", "[5000", 1)
    assert syntax_error_line("\n".join(lines)) == at + 1


@pytest.mark.parametrize(("place", "line", "words"), [
    ("rules[8].when", 145, "rule 9 (when), line 145"),
    ("tests[0]", None, "test 1"),
    ("", 33, "line 33"),
    ("", None, "the file"),
    ("tables[0].rows[3]", 7, "table 1, row 4, line 7"),
    ("thresholds.auto_approve_limit", None, "thresholds.auto_approve_limit"),
])
def test_places_are_counted_from_one_for_people(place: str, line: int | None,
                                                words: str) -> None:
    assert place_words(place, line) == words
