"""The condition parser: precedence, every construct, clear syntax errors, and round trips."""

from __future__ import annotations

import inspect
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules_service.language.ast import (
    And,
    Compare,
    CompareOp,
    Exists,
    FieldRef,
    InList,
    Literal,
    Matches,
    Not,
    Or,
    ThresholdRef,
)
from rules_service.language.evaluator import evaluate
from rules_service.language.parser import (
    MAX_CONDITION_DEPTH,
    RESERVED,
    ConditionSyntaxError,
    parse_condition,
)
from rules_service.language.printer import format_condition


def f(*path: str) -> FieldRef:
    return FieldRef(tuple(path))


def test_not_binds_tighter_than_and_which_binds_tighter_than_or() -> None:
    expr = parse_condition("not a or b and c")
    assert expr == Or((Not(f("a")), And((f("b"), f("c")))))


def test_not_applies_to_a_whole_comparison_as_in_python() -> None:
    assert parse_condition("not amount > 5") == Not(Compare(CompareOp.GT, f("amount"), Literal(5)))


def test_parentheses_override_precedence() -> None:
    assert parse_condition("(a or b) and c") == And((Or((f("a"), f("b"))), f("c")))


@pytest.mark.parametrize(("text", "expected"), [
    ("amount >= 10.5", Compare(CompareOp.GE, f("amount"), Literal(10.5))),
    ("amount != -3", Compare(CompareOp.NE, f("amount"), Literal(-3))),
    ("5 < amount", Compare(CompareOp.LT, Literal(5), f("amount"))),
    ("amount <= thresholds.limit", Compare(CompareOp.LE, f("amount"), ThresholdRef("limit"))),
    ('applicant.country == "DE"',
     Compare(CompareOp.EQ, f("applicant", "country"), Literal("DE"))),
    ("flag == true", Compare(CompareOp.EQ, f("flag"), Literal(True))),
    ('c in ["a", "b",]', InList(f("c"), (Literal("a"), Literal("b")))),
    ("c not in [1, 2]", InList(f("c"), (Literal(1), Literal(2)), negated=True)),
    ("c in []", InList(f("c"), ())),
    ("email matches '@example\\.com$'", Matches(f("email"), "@example\\.com$")),
    ("exists(applicant.vat_id)", Exists(f("applicant", "vat_id"))),
    ("index > 1", Compare(CompareOp.GT, f("index"), Literal(1))),
    ("notes == 'it''s'", None),
])
def test_each_construct_parses_to_its_node(text: str, expected: object) -> None:
    if expected is None:
        with pytest.raises(ConditionSyntaxError):
            parse_condition(text)
    else:
        assert parse_condition(text) == expected


@pytest.mark.parametrize(("text", "fragment", "column"), [
    ("amount = 5", "write '=='", 8),
    ("amount > ", "ends too early", None),
    ("a < b < c", "cannot be chained", 7),
    ("amount >> 5", "'>>' is not an operator", 9),
    ("amount > > 5", "'>>' is not an operator", 10),
    ("amount <> 5", "write '!=' for not equal", 9),
    ("(a and b", "expected ')'", None),
    ('name == "open', "not closed", 9),
    ("a && b", "write 'and' / 'or'", 3),
    ("", "empty", 1),
    ("thresholds.a.b > 1", "thresholds.NAME", 1),
    ("exists(thresholds.x)", "takes a field name", None),
    ("a in b", "expected '['", 6),
])
def test_syntax_errors_say_what_is_wrong_and_where(text: str, fragment: str,
                                                   column: int | None) -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        parse_condition(text)
    assert fragment in info.value.message
    assert info.value.line == 1
    if column is not None:
        assert info.value.column == column


def test_positions_point_into_multiline_conditions() -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        parse_condition("amount > 5\n  and\n  or b")
    assert (info.value.line, info.value.column) == (3, 3)


def test_a_regex_escape_survives_as_written() -> None:
    assert parse_condition(r'code matches "^\d{3}$"') == Matches(f("code"), r"^\d{3}$")


def test_absent_fields_make_comparisons_false_and_not_negates_them() -> None:
    data: dict[str, object] = {}
    assert evaluate(parse_condition("x != 1"), data, {}) is False
    assert evaluate(parse_condition("x not in [1]"), data, {}) is False
    assert evaluate(parse_condition("not x == 1"), data, {}) is True
    assert evaluate(parse_condition("exists(x)"), data, {}) is False
    assert evaluate(parse_condition("not flag"), data, {}) is True


# --- property: printing any AST and parsing it back gives the same AST ----------------------

names = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda n: n not in RESERVED and n != "thresholds")
fields = st.lists(names, min_size=1, max_size=3).map(lambda p: FieldRef(tuple(p)))
scalars = st.one_of(
    st.booleans(),
    st.integers(-10**12, 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.text(max_size=12),
)
literals = scalars.map(Literal)
operands = st.one_of(fields, literals, names.map(ThresholdRef))
atoms = st.one_of(
    st.builds(Compare, st.sampled_from(list(CompareOp)), operands, operands),
    st.builds(InList, operands, st.lists(operands, max_size=4).map(tuple), st.booleans()),
    st.builds(Matches, operands, st.text(max_size=8)),
    st.builds(Exists, fields),
    fields,
    st.booleans().map(Literal),
)
conditions = st.recursive(
    atoms,
    lambda inner: st.one_of(
        inner.map(Not),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
    ),
    max_leaves=12,
)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None)
@given(conditions)
def test_any_condition_survives_printing_and_parsing(expr: object) -> None:
    text = format_condition(expr)  # type: ignore[arg-type]
    assert parse_condition(text) == expr


@pytest.mark.slow
@settings(max_examples=500, deadline=None)
@given(st.text(max_size=40))
def test_the_parser_never_fails_with_anything_but_a_syntax_error(text: str) -> None:
    try:
        parse_condition(text)
    except ConditionSyntaxError as exc:
        assert exc.message


@pytest.mark.parametrize("text", ["amount >> 5", "amount <> 5", "amount >= > 5"])
def test_a_doubled_operator_is_not_called_a_chained_comparison(text: str) -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        parse_condition(text)
    assert "chained" not in info.value.message


# -- nesting depth ----------------------------------------------------------------------


def _deepest(depth: int) -> str:
    """A condition nesting exactly ``depth`` levels: 'not (' pairs, then a comparison."""
    pairs, odd = divmod(depth, 2)
    return "not (" * pairs + "not " * odd + "amount > 1" + ")" * pairs


@pytest.mark.parametrize("text", [
    "not " * 1000 + "amount > 1",
    "(" * 1000 + "amount > 1" + ")" * 1000,
    _deepest(MAX_CONDITION_DEPTH + 1),
])
def test_a_condition_nested_past_the_limit_is_a_syntax_error_naming_the_limit(
        text: str) -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        parse_condition(text)
    assert f"more than {MAX_CONDITION_DEPTH} levels" in info.value.message
    assert info.value.line == 1 and info.value.column is not None


def test_many_nots_side_by_side_do_not_add_up_to_depth() -> None:
    text = " and ".join(["not amount > 1"] * (MAX_CONDITION_DEPTH * 3))
    expr = parse_condition(text)
    assert isinstance(expr, And) and len(expr.operands) == MAX_CONDITION_DEPTH * 3
    assert parse_condition("not a in [1] and " * 40 + "b")


def test_nothing_downstream_recurses_far_at_the_deepest_condition_allowed() -> None:
    from rules_service.domain.ruleset import FieldType, InputField
    from rules_service.engine.compiler import compile_ruleset
    from rules_service.engine.reference import ReferenceEvaluator
    from rules_service.language.typecheck import check_condition, field_paths
    from tests.unit.engine_support import ruleset

    text = _deepest(MAX_CONDITION_DEPTH)
    inputs = (InputField("amount", FieldType.NUMBER),)
    # Every step runs with only a few hundred frames to spare above this test's own.
    spare = 300
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack(0)) + spare)
    try:
        expr = parse_condition(text)
        assert check_condition(expr, field_paths(inputs), {}) == []
        assert parse_condition(format_condition(expr)) == expr
        assert evaluate(expr, {"amount": 5}, {}) is True  # an even number of nots
        built = ruleset(inputs, [("deep", text, "reject")])
        compile_ruleset(built)
        assert ReferenceEvaluator().fired(built, {"amount": 5}) == ["deep"]
    finally:
        sys.setrecursionlimit(old)
