"""Property: for random well-typed rulesets and inputs, durable fires exactly what the reference
evaluator fires.

Rulesets use every condition node (comparisons both ways round, in / not in, matches, exists,
bare booleans, literals, thresholds, not / and / or) over a random schema with nested objects;
inputs leave fields out and use edge values (huge and tiny floats, 2**53+1, NUL and quote
characters, empty strings). Each generated ruleset is checked on a batch of inputs, so the
number of compared cases is examples x batch size (printed at the end of the module).
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rules_service.domain.ruleset import FieldType, InputField
from rules_service.engine import EngineCompileError, EnginePool, ReferenceEvaluator, compile_ruleset
from rules_service.language.ast import (
    And,
    Compare,
    CompareOp,
    Exists,
    Expr,
    FieldRef,
    InList,
    Literal,
    Matches,
    Not,
    Or,
    ThresholdRef,
)
from tests.unit.engine_support import ruleset

# 500 examples x ~65 inputs is ~60,000 compared cases for the two tests in about a minute;
# ENGINE_PROPERTY_EXAMPLES=1500 (or more) for a deeper run.
EXAMPLES = int(os.environ.get("ENGINE_PROPERTY_EXAMPLES", "500"))
ENGINE_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much])

NAMES = ["amount", "sid", "id", "category", "$s", "a", "b", "level", "country", "x_1", "m", "_e",
         "f0", "g0", "label"]
NUMBERS: list[int | float] = [
    0, 1, -1, 2, 7, 50, 100, 0.5, -0.5, 0.1, 0.30000000000000004, 0.3, 1.5, 99.99999999999999,
    1e20, -1e20, 1e300, -1e300, 1e-300, 5e-324, 2**53, 2**53 + 1, 2**63 + 5, -(2**63), 123.456]
INTEGERS = [n for n in NUMBERS if isinstance(n, int)]
STRINGS = ["", "a", "A", "DE", "travel", 'a"b', "a\\b", "a'b", "é", "😀", "a\x00b", "a\x00c", "1",
           " ", "sid", "true", "line\nbreak"]
PATTERNS = ["^a", "b$", "a.b", r"\d+", "^$", "é", "(?i)de", "x|y", "\x00", r"^\w+$", "^A",
            r"\\", '"']
SCALARS = ("number", "integer", "string", "boolean")

cases_compared = 0


@pytest.fixture(scope="module")
def pool() -> Iterator[EnginePool]:
    with EnginePool(workers=2, timeout_s=10.0, cache_size=8) as p:
        yield p
    print(f"\nengine property cases compared: {cases_compared}")


# -- schemas --------------------------------------------------------------------------------


@st.composite
def schemas(draw: st.DrawFn) -> tuple[InputField, ...]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=6, unique=True))
    fields = []
    for name in names:
        kind = draw(st.sampled_from(SCALARS + ("object",)))
        if kind == "object":
            inner = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
            props = tuple(InputField(n, FieldType(draw(st.sampled_from(SCALARS))))
                          for n in inner)
            fields.append(InputField(name, FieldType.OBJECT, properties=props))
        else:
            fields.append(InputField(name, FieldType(kind)))
    return tuple(fields)


def leaves(fields: tuple[InputField, ...], prefix: tuple[str, ...] = ()
           ) -> list[tuple[tuple[str, ...], str]]:
    out = []
    for f in fields:
        path = prefix + (f.name,)
        out.append((path, f.type.value))
        out.extend(leaves(f.properties, path))
    return out


def constant_for(kind: str) -> st.SearchStrategy[Any]:
    if kind == "number":
        return st.sampled_from(NUMBERS)
    if kind == "integer":
        return st.sampled_from(INTEGERS)
    if kind == "string":
        return st.sampled_from(STRINGS)
    return st.booleans()


# -- conditions -----------------------------------------------------------------------------


@st.composite
def atoms(draw: st.DrawFn, paths: list[tuple[tuple[str, ...], str]],
          thresholds: dict[str, Any]) -> Expr:
    path, kind = draw(st.sampled_from(paths))
    ref = FieldRef(path)
    if kind == "object":
        return Exists(ref)

    def operand() -> Literal | ThresholdRef:
        usable = [n for n, v in thresholds.items() if _same_kind(v, kind)]
        if usable and draw(st.booleans()):
            return ThresholdRef(draw(st.sampled_from(usable)))
        return Literal(draw(constant_for(kind)))

    shape = draw(st.sampled_from(["compare", "in", "exists", "bare", "matches", "literal",
                                  "threshold"]))
    if shape == "exists":
        return Exists(ref)
    if shape == "literal":
        return Literal(draw(st.booleans()))
    if shape == "threshold":
        flags = [n for n, v in thresholds.items() if isinstance(v, bool)]
        if flags:
            return ThresholdRef(draw(st.sampled_from(flags)))
        return Literal(True)
    if shape == "bare" and kind == "boolean":
        return ref
    if shape == "matches" and kind == "string":
        return Matches(ref, draw(st.sampled_from(PATTERNS)))
    if shape == "in":
        items = tuple(operand() for _ in range(draw(st.integers(1, 4))))
        return InList(ref, items, draw(st.booleans()))
    ops = list(CompareOp) if kind in ("number", "integer") else [CompareOp.EQ, CompareOp.NE]
    op = draw(st.sampled_from(ops))
    other = operand()
    if draw(st.booleans()):
        return Compare(op, other, ref)
    return Compare(op, ref, other)


def _same_kind(value: Any, kind: str) -> bool:
    if kind in ("number", "integer"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    return isinstance(value, bool)


def conditions(paths: list[tuple[tuple[str, ...], str]], thresholds: dict[str, Any]
               ) -> st.SearchStrategy[Expr]:
    return st.recursive(
        atoms(paths, thresholds),
        lambda inner: st.one_of(
            inner.map(Not),
            st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
            st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
        ),
        max_leaves=10,
    )


@st.composite
def rulesets(draw: st.DrawFn) -> Any:
    fields = draw(schemas())
    thresholds = {
        f"t{i}": draw(st.one_of(st.sampled_from(NUMBERS), st.sampled_from(STRINGS), st.booleans()))
        for i in range(draw(st.integers(0, 4)))}
    paths = leaves(fields)
    n = draw(st.integers(1, 5))
    rules = [(f"rule-{i}", draw(conditions(paths, thresholds)),
              draw(st.sampled_from(["approve", "escalate", "reject"]))) for i in range(n)]
    return ruleset(fields, rules, thresholds)


# -- inputs ---------------------------------------------------------------------------------


def value_for(kind: str) -> st.SearchStrategy[Any]:
    if kind == "number":
        return st.one_of(st.sampled_from(NUMBERS + [math.inf, -math.inf]),
                         st.floats(allow_nan=False, allow_infinity=False),
                         st.integers(-(2**70), 2**70))
    if kind == "integer":
        return st.one_of(st.sampled_from(INTEGERS), st.integers(-(2**70), 2**70))
    if kind == "string":
        return st.one_of(st.sampled_from(STRINGS), st.text(max_size=4))
    return st.booleans()


def inputs_for(fields: tuple[InputField, ...]) -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def build(draw: st.DrawFn, fields: tuple[InputField, ...] = fields) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for f in fields:
            presence = draw(st.sampled_from(["present", "present", "present", "missing", "null"]))
            if presence == "missing":
                continue
            if presence == "null":
                data[f.name] = None
            elif f.type is FieldType.OBJECT:
                data[f.name] = draw(build(f.properties))
            else:
                data[f.name] = draw(value_for(f.type.value))
        return data

    return build()


def check(pool: EnginePool, rs: Any, batch: list[dict[str, Any]]) -> None:
    global cases_compared
    try:
        compile_ruleset(rs)
    except EngineCompileError:
        assume(False)
    reference = ReferenceEvaluator()
    got = pool.evaluate_many(rs, batch)
    for data, evaluation in zip(batch, got, strict=True):
        assert not evaluation.fallback, evaluation.fallback_reason
        expected = reference.evaluate(rs, data)
        assert evaluation.fired_ids == expected.fired_ids, (data, [r.condition for r in rs.rules])
        assert evaluation.outcome is expected.outcome
    cases_compared += len(batch)


RANDOM_INPUTS = 60


def random_inputs(rs: Any, rnd: random.Random, count: int) -> list[dict[str, Any]]:
    """Many cheap inputs from a seeded generator: hypothesis drawing is the slow part."""
    constants = [*rs.thresholds.values()]
    for rule in rs.rules:
        constants.extend(_literals(rule.condition))
    numbers = [c for c in constants if isinstance(c, int | float) and not isinstance(c, bool)]
    near = numbers + [c + d for c in numbers for d in (1, -1, 0.5)]

    def value(kind: str) -> Any:
        roll = rnd.random()
        if kind == "boolean":
            return rnd.random() < 0.5
        if kind == "string":
            own = [c for c in constants if isinstance(c, str)]
            if own and roll < 0.5:
                return rnd.choice(own)
            return rnd.choice(STRINGS) if roll < 0.9 else "".join(
                rnd.choice("aAé\x00\"' ") for _ in range(rnd.randint(0, 3)))
        pick: list[Any] = near if near and roll < 0.6 else NUMBERS
        if kind == "integer":
            pick = [int(v) for v in pick if math.isfinite(v)] or INTEGERS
            return rnd.choice(pick) if roll < 0.9 else rnd.randint(-(2**64), 2**64)
        return rnd.choice(pick) if roll < 0.9 else rnd.uniform(-1e6, 1e6)

    def build(fields: tuple[InputField, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields:
            roll = rnd.random()
            if roll < 0.15:
                continue
            if roll < 0.2:
                out[f.name] = None
            elif f.type is FieldType.OBJECT:
                out[f.name] = build(f.properties)
            else:
                out[f.name] = value(f.type.value)
        return out

    return [build(rs.inputs) for _ in range(count)]


@pytest.mark.timeout(1800)
@ENGINE_SETTINGS
@given(data=st.data())
def test_durable_fires_exactly_what_the_reference_fires(pool: EnginePool, data: st.DataObject
                                                        ) -> None:
    rs = data.draw(rulesets())
    batch = data.draw(st.lists(inputs_for(rs.inputs), min_size=1, max_size=5))
    batch += random_inputs(rs, random.Random(data.draw(st.integers(0, 2**32))), RANDOM_INPUTS)
    check(pool, rs, batch)


@pytest.mark.timeout(1800)
@ENGINE_SETTINGS
@given(data=st.data())
def test_durable_agrees_on_inputs_next_to_the_rules_own_constants(
        pool: EnginePool, data: st.DataObject) -> None:
    # Values equal to (or next to) the compared constants hit the == / < boundaries that random
    # values rarely reach; hypothesis shrinks a failure to a small ruleset and one input.
    rs = data.draw(rulesets())
    constants = [*rs.thresholds.values()]
    for rule in rs.rules:
        constants.extend(_literals(rule.condition))
    values = constants + [c + d for c in constants
                          if isinstance(c, int | float) and not isinstance(c, bool)
                          for d in (1, -1)]

    @st.composite
    def near(draw: st.DrawFn, fields: tuple[InputField, ...] = rs.inputs) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields:
            if draw(st.integers(0, 4)) == 0:
                continue
            if f.type is FieldType.OBJECT:
                out[f.name] = draw(near(f.properties))
                continue
            typed = [v for v in values if _same_kind(v, f.type.value)
                     and (f.type is not FieldType.INTEGER or isinstance(v, int))]
            out[f.name] = draw(st.sampled_from(typed)) if typed else draw(
                value_for(f.type.value))
        return out

    batch = data.draw(st.lists(near(), min_size=1, max_size=5))
    batch += random_inputs(rs, random.Random(data.draw(st.integers(0, 2**32))), RANDOM_INPUTS)
    check(pool, rs, batch)


def _literals(expr: Expr) -> list[Any]:
    if isinstance(expr, Literal):
        return [expr.value]
    if isinstance(expr, Not):
        return _literals(expr.operand)
    if isinstance(expr, And | Or):
        return [v for e in expr.operands for v in _literals(e)]
    if isinstance(expr, Compare):
        return _literals(expr.left) + _literals(expr.right)
    if isinstance(expr, InList):
        return [v for i in expr.items for v in _literals(i)]
    return []
