"""`$` is the end of the value unless multi-line mode is on where it stands, read from the
parsed pattern: flags inside a character class, after an escape or in a comment are text."""

from __future__ import annotations

import re
import warnings

import pytest
import regex
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rules_service.language.evaluator import evaluate
from rules_service.language.parser import parse_condition
from rules_service.language.patterns import regex_problem, search, whole_value


@pytest.mark.parametrize(("pattern", "text", "found"), [
    ("[(?m)]c$", "mc\n", False),          # (?m) in a class is four characters
    ("[(?m)]c$", "mc", True),
    ("(?m:^x)|c$", "c\n", False),        # the flag is scoped to its own group
    ("(?m:^x)|c$", "x\n", True),
    (r"(\(?m)c$", "mc\n", False),        # \( is a parenthesis, not a group
    ("(?#(?m)c$", "c\n", False),         # a comment
    ("(?x) c $ # (?m)", "c\n", False),   # a comment in verbose mode
    ("^CC-[0-9]{4}$", "CC-1234\n", False),
    ("^CC-[0-9]{4}$", "CC-1234", True),
    (r"\$$", "$", True),
    (r"\$$", "$\n", False),
    ("[]$]c$", "$c\n", False),
    ("(?m)c$", "c\nd", True),             # the whole pattern in multi-line mode
    ("(?im)c$", "C\nd", True),
    ("(?m:c$)", "c\nd", True),           # one group in multi-line mode
    ("(?m)(?-m:c$)", "c\n", False),      # ... and one group out of it
    ("(?m)(?-m:c$)|d$", "d\ne", True),
])
def test_dollar_is_the_end_of_the_value_outside_multi_line_mode(
        pattern: str, text: str, found: bool) -> None:
    assert regex_problem(pattern) is None
    assert search(pattern, text) is found
    assert (re.search(whole_value(pattern), text) is not None) is found


def test_the_two_reported_patterns_decide_as_the_guide_says() -> None:
    for pattern, text in (("[(?m)]c$", "mc\n"), ("(?m:^x)|c$", "c\n")):
        condition = parse_condition(f'code matches "{pattern}"')
        assert evaluate(condition, {"code": text}, {}) is False
        assert evaluate(condition, {"code": text.rstrip()}, {}) is True


PIECES = ["a", "c", "m", "x", "$", "^", "(", ")", "(?m)", "(?i)", "(?x)", "(?m:", "(?-m:",
          "(?i:", "(?:", "(?#", "[", "]", "[^", "\\", "\\(", "\\$", "\\[", "?", "*", "|",
          "#", " ", "\n", "(?=", "(?<!", "(?P<g>", "{2}"]
patterns = st.lists(st.sampled_from(PIECES), min_size=1, max_size=12).map("".join)
texts = st.text(alphabet="acmx$()[]# \n", max_size=8)


def _compiles(pattern: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            re.compile(pattern)
            regex.compile(pattern)
        except (re.error, regex.error):
            return False
    return True


MANY = settings(max_examples=600, deadline=None,
                suppress_health_check=[HealthCheck.filter_too_much])


@MANY
@given(patterns)
def test_every_valid_pattern_reads_the_same_but_for_its_end_anchors(pattern: str) -> None:
    assume(_compiles(pattern))
    # whole_value checks the rewritten pattern's parse against the original's with only
    # its end anchors outside multi-line mode changed; it raises when they differ.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "possible nested set" and the like
        assert regex_problem(pattern) is None
        assert _compiles(whole_value(pattern))


@MANY
@given(patterns, texts)
def test_only_a_trailing_line_break_can_change_a_match(pattern: str, text: str) -> None:
    assume(_compiles(pattern) and not text.endswith("\n"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = re.search(pattern, text)
        after = re.search(whole_value(pattern), text)
    assert (before and before.span()) == (after and after.span())
