"""Decision tables: rows load as rules TABLE.ROW, every bad cell is named by its place."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from rules_service.adapters.ruleset_files import load_ruleset_definition, load_ruleset_text
from rules_service.domain.errors import RulesetInvalid
from rules_service.domain.tables import CellError, read_cell
from rules_service.engine import ReferenceEvaluator
from rules_service.language.printer import format_condition

TEXT = """\
name: limits-demo
title: Limits
owners:
  business_owner: {primary: a, backup: b}
  operations_owner: {primary: a, backup: b}
  approver: {primary: a, backup: b}
  maintainer: {primary: a, backup: b}
thresholds: {auto_approve_limit: 500}
inputs:
  amount: {type: number, required: true}
  category: {type: string, enum: [hardware, software, travel]}
rules:
  - {id: tiny, when: amount < 1, then: approve}
tables:
  - id: limits
    columns: [category, amount]
    rows:
      - {id: hw-small, when: [hardware, "<= thresholds.auto_approve_limit"], then: approve}
      - {id: hw-mid,   when: [hardware, "500..2000"], then: escalate, escalate_to: approver}
      - {id: any-big,  when: ["-", "> 2000"], then: reject, reason: Too large.}
      - {id: sw,       when: [[software, travel], "> 0"], then: approve}
default: escalate
fallback: escalate
tests:
  - name: mid
    input: {amount: 700, category: hardware}
    expect: {outcome: escalate, fired: [limits.hw-mid]}
runbook: {purpose: p, escalation: {path: [x], response_time_target: 4h}}
"""


def _problems(text: str) -> list[tuple[str, str, int | None]]:
    with pytest.raises(RulesetInvalid) as info:
        load_ruleset_text(text)
    return [(p.place, p.message, p.line) for p in info.value.problems]


def test_each_row_is_a_rule_named_table_dot_row_after_the_rules() -> None:
    ruleset = load_ruleset_text(TEXT)
    assert [r.id for r in ruleset.rules] == [
        "tiny", "limits.hw-small", "limits.hw-mid", "limits.any-big", "limits.sw"]
    mid = ruleset.rule("limits.hw-mid")
    assert mid.when == 'category == "hardware" and amount >= 500 and amount <= 2000'
    assert mid.escalate_to == "approver"
    assert ruleset.rule("limits.any-big").reason_text() == "Too large."


def test_rows_decide_exactly_like_the_rules_they_stand_for() -> None:
    ruleset = load_ruleset_text(TEXT)
    reference = ReferenceEvaluator()
    assert reference.evaluate(ruleset, {"amount": 700, "category": "hardware"}).fired_ids == (
        "limits.hw-mid",)
    assert reference.evaluate(ruleset, {"amount": 3000}).fired_ids == ("limits.any-big",)
    assert reference.evaluate(ruleset, {"amount": 10, "category": "travel"}).fired_ids == (
        "limits.sw",)


def test_every_bad_cell_is_listed_with_its_place_and_line() -> None:
    bad = (TEXT.replace('"500..2000"', '"500..abc"').replace("[software, travel]", "[software, 5]")
           .replace('"> 2000"', '"> big"')
           .replace("{id: tiny, when: amount < 1, then: approve}",
                    "{id: tiny, when: amount < 1, then: aprove}")
           .replace("fired: [limits.hw-mid]", "fired: [limits.hw-mud]"))
    problems = _problems(bad)
    assert [(place, line) for place, _, line in problems] == [
        ("rules[0].then", 13), ("tables[0].rows[1].when[1]", 19),
        ("tables[0].rows[2].when[1]", 20), ("tables[0].rows[3].when[0]", 21),
        ("tests[0].expect.fired[0]", 27)]
    assert "not a range" in problems[1][1]
    assert "cannot be compared" in problems[2][1]
    assert "did you mean 'limits.hw-mid'" in problems[4][1]


def test_a_row_with_the_wrong_number_of_cells_and_an_unknown_column_are_named() -> None:
    bad = TEXT.replace('when: [hardware, "500..2000"]', "when: [hardware]").replace(
        "columns: [category, amount]", "columns: [category, amount, colour]").replace(
        '["-", "> 2000"]', '["-", "> 2000", "-"]')
    places = [place for place, _, _ in _problems(bad)]
    assert "tables[0].columns[2]" in places


def test_a_row_shorter_than_the_columns_is_named() -> None:
    bad = TEXT.replace('when: [hardware, "500..2000"]', "when: [hardware]")
    assert _problems(bad) == [(
        "tables[0].rows[1].when",
        "the row has 1 cells, but the table has 2 columns (category, amount); write - for a "
        "column the row does not test", 19)]


def test_duplicate_row_and_table_ids_are_named() -> None:
    bad = TEXT.replace("{id: sw,", "{id: hw-mid,")
    assert [p for p, _, _ in _problems(bad)] == ["tables[0].rows[3].id"]


def test_a_file_with_only_tables_and_no_rules_loads() -> None:
    data = yaml.safe_load(TEXT)
    del data["rules"]
    ruleset = load_ruleset_definition(data)
    assert len(ruleset.rules) == 4


def test_a_ruleset_without_tables_keeps_its_content_hash_shape() -> None:
    data = yaml.safe_load(TEXT)
    del data["tables"]
    data["tests"] = []
    assert "tables" not in load_ruleset_definition(data).definition


def test_the_definition_keeps_the_table_as_written() -> None:
    definition = load_ruleset_text(TEXT).definition
    again = load_ruleset_definition(copy.deepcopy(definition))
    assert again.definition == definition
    assert definition["tables"][0]["rows"][1]["when"] == ["hardware", "500..2000"]


def test_more_rows_than_a_file_may_hold_is_refused() -> None:
    data: dict[str, Any] = yaml.safe_load(TEXT)
    data["tables"][0]["rows"] = [{"id": f"r{i}", "when": ["-", f"> {i}"], "then": "approve"}
                                 for i in range(10_000)]
    data["tests"] = []
    with pytest.raises(RulesetInvalid) as info:
        load_ruleset_definition(data)
    assert [p.message for p in info.value.problems] == [
        "the ruleset has 1 rules and 10,000 table rows; a ruleset may hold at most 10,000 "
        "rules and table rows together"]


@pytest.mark.parametrize(("cell", "text"), [
    ("-", None),
    ("hardware", 'x == "hardware"'),
    (5, "x == 5"),
    (True, "x == true"),
    (["a", "b"], 'x in ["a", "b"]'),
    ("> 5", "x > 5"),
    ("!= thresholds.t", "x != thresholds.t"),
    ("!= hardware", 'x != "hardware"'),
    ("1..thresholds.t", "x >= 1 and x <= thresholds.t"),
    ("-2.5..7", "x >= -2.5 and x <= 7"),
    ('"eu"', 'x == "eu"'),                  # quoted text is the text inside the quotes
    ("'eu'", 'x == "eu"'),
    ('"a \\"b\\""', 'x == "a \\"b\\""'),
    ('"1e3"', 'x == "1e3"'),                # ... so quotes keep a number-like text text
    ("1e3", "x == 1000.0"),                 # YAML leaves 1e3 as text; it is the number
    (["1e3", '"eu"', "us"], 'x in [1000.0, "eu", "us"]'),
])
def test_each_kind_of_cell_reads_as_a_condition(cell: Any, text: str | None) -> None:
    read = read_cell("x", cell)
    assert (format_condition(read.condition) if read.condition is not None else None) == text


@pytest.mark.parametrize("cell", ["", "5..", "a..b", [], {"x": 1}, "> thresholds.1x",
                                  '"a"b"', '"eu', "'s-Hertogenbosch", ['"eu']])
def test_a_cell_that_cannot_be_read_is_a_cell_error(cell: Any) -> None:
    with pytest.raises(CellError):
        read_cell("x", cell)


def test_a_badly_quoted_cell_says_how_to_write_it() -> None:
    with pytest.raises(CellError) as info:
        read_cell("x", '"a"b"')
    assert str(info.value) == (
        '"a"b" is not one quoted text; write the text without quotes (eu) or in one pair of '
        'quotes ("eu"), with a backslash before a quote inside it (\\")')


_WORDS = st.text(alphabet="abcxyz _-.", min_size=1, max_size=8).filter(
    lambda w: w.strip() == w and w not in ("-", "true", "false") and ".." not in w
    and not w.startswith("-"))


@settings(max_examples=200, deadline=None)
@given(_WORDS)
def test_quoted_text_means_the_same_as_the_text_bare_and_after_an_operator(word: str) -> None:
    bare = read_cell("x", word).condition
    for written in (f'"{word}"', f"'{word}'", f'== "{word}"'):
        assert read_cell("x", written).condition == bare


_EXPONENTS = st.builds(lambda m, f, e, s: f"{m}{f}e{s}{e}", st.integers(-99, 99),
                       st.sampled_from(["", ".5", ".25"]), st.integers(0, 3),
                       st.sampled_from(["", "+", "-"]))


@settings(max_examples=200, deadline=None)
@given(_EXPONENTS)
def test_an_exponent_reads_the_same_in_every_cell_form(number: str) -> None:
    from rules_service.language.evaluator import evaluate

    value = float(number)
    for form in (number, [number], f"== {number}", f"{number}..{number}", value):
        condition = read_cell("x", form).condition
        assert condition is not None
        assert evaluate(condition, {"x": value}, {}), form
        assert not evaluate(condition, {"x": value + 1}, {}), form


def test_quoted_text_cells_and_exponents_load_on_their_columns() -> None:
    text = (TEXT.replace('[hardware, "<=', """['"hardware"', "<=""")
            .replace('"500..2000"', '"5e2..2e3"').replace('"> 2000"', '"> 2e3"')
            .replace("[[software, travel]", """[['"software"', travel]"""))
    ruleset = load_ruleset_text(text)
    evaluator = ReferenceEvaluator()
    assert evaluator.fired(ruleset, {"amount": 400, "category": "hardware"}) == [
        "limits.hw-small"]
    assert evaluator.fired(ruleset, {"amount": 2000, "category": "hardware"}) == [
        "limits.hw-mid"]
    assert evaluator.fired(ruleset, {"amount": 2001, "category": "software"}) == [
        "limits.any-big", "limits.sw"]


def test_validate_lists_test_references_in_the_same_pass_as_broken_rules() -> None:
    bad = TEXT.replace("{id: tiny, when: amount < 1, then: approve}",
                       "{id: tiny, when: amount < 1, then: aprove}").replace(
        "fired: [limits.hw-mid]", "fired: [tiny, nope]")
    assert [place for place, _, _ in _problems(bad)] == ["rules[0].then",
                                                          "tests[0].expect.fired[1]"]


def _analysis(**changes: Any) -> list[str]:
    from rules_service.domain.table_analysis import analyze_tables

    definition = copy.deepcopy(load_ruleset_text(TEXT).definition)
    definition["tables"][0]["rows"].extend(changes.get("rows", []))
    if changes.get("only_rows_testing_category"):
        definition["tables"][0]["rows"] = [r for r in definition["tables"][0]["rows"]
                                           if r["when"][0] != "-"]
    if "enum" in changes:
        definition["inputs"]["category"]["enum"] = changes["enum"]
    return [f"{w.kind} {w}" for w in analyze_tables(definition)]


def test_analysis_names_a_row_with_an_empty_range() -> None:
    assert "never_fires tables[0].rows[4]: limits.dead can never fire: no value of amount " \
           "3000..2000 is possible" in _analysis(
               rows=[{"id": "dead", "when": ["hardware", "3000..2000"], "then": "approve"}])


def test_analysis_names_a_row_shadowed_by_an_earlier_row_with_the_same_outcome() -> None:
    found = _analysis(rows=[{"id": "dup", "when": ["hardware", "600..700"], "then": "escalate"}])
    assert "shadowed tables[0].rows[4]: limits.dup never changes a decision: every input it " \
           "matches, the earlier row limits.hw-mid matches too, with the same outcome " \
           "(escalate)" in found


def test_analysis_gives_an_example_input_for_rows_that_overlap_with_different_outcomes() -> None:
    assert 'overlap tables[0].rows[1]: limits.hw-small (approve) and limits.hw-mid (escalate) ' \
           'both fire for some inputs, e.g. {"category": "hardware", "amount": 500}; the more ' \
           'severe outcome decides' in _analysis()


def test_analysis_names_enum_values_no_row_covers() -> None:
    found = _analysis(enum=["hardware", "software", "travel", "meals"],
                      only_rows_testing_category=True)
    assert any(f.startswith("gap tables[0].columns[0]") and '"meals"' in f for f in found)


def test_the_diff_carries_the_table_warnings_without_blocking() -> None:
    from rules_service.domain.diff import diff_definitions

    definition = load_ruleset_text(TEXT).definition
    diff = diff_definitions(definition, definition)
    assert not diff.changes and any("both fire for some inputs" in w for w in diff.warnings)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(cells=st.lists(st.one_of(
    st.integers(-5, 5),
    st.tuples(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), st.integers(-5, 5)).map(
        lambda t: f"{t[0]} {t[1]}"),
    st.tuples(st.integers(-5, 5), st.integers(-5, 5)).map(lambda t: f"{t[0]}..{t[1]}")),
    min_size=1, max_size=6))
def test_the_analysis_reads_numeric_cells_as_the_evaluator_does(cells: list[Any]) -> None:
    from rules_service.domain import table_analysis as ta
    from rules_service.language.evaluator import evaluate

    reads = [read_cell("x", c) for c in cells]
    constants = [v for r in reads for v in ta._constants(r.condition, {})]
    classes = ta._classes({"type": "integer"}, constants)
    numbers = ta._sorted_numbers(classes)
    for read in reads:
        slow = sum(1 << i for i, v in enumerate(classes)
                   if evaluate(read.condition, ta._nested("x", v), {}))
        assert ta._fast_mask(read.condition, numbers, {}) == slow


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_a_rows_condition_text_is_the_printers_text_of_its_condition(seed: int) -> None:
    import random

    from tests.unit.engine_support import random_table_ruleset

    rs = random_table_ruleset(random.Random(seed), 40)
    for rule in rs.rules:
        assert rule.when == format_condition(rule.condition)
