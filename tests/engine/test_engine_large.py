"""Large rulesets and rulesets where most rules fire at once decide exactly like the reference.

The engine splits a ruleset into as many durable rulesets (shards) as its size needs and
bounds each by what can fire in one assertion, so a ruleset the loader accepts never falls
back on valid input for an engine limit. Sizes of 1,000 to 10,000 rules are few examples
(each takes seconds); small rulesets with most rules firing are many.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules_service.domain.ruleset import Ruleset
from rules_service.engine import EnginePool, ReferenceEvaluator, compile_ruleset
from tests.unit.engine_support import field, ruleset

INPUTS = (field("amount", "number"), field("level", "integer"),
          field("category", "string", enum=("a", "b", "c", "d", "e")),
          field("code", "string"), field("urgent", "boolean"))
CATEGORIES = ["a", "b", "c", "d", "e"]


@pytest.fixture(scope="module")
def pool() -> Iterator[EnginePool]:
    with EnginePool(workers=2, timeout_s=10.0, cache_size=4) as p:
        yield p


def _condition(rnd: random.Random, low: bool) -> str:
    """A random condition; with ``low`` its thresholds are small, so big inputs fire it."""
    top = 50 if low else 5000

    def atom() -> str:
        kind = rnd.randrange(7)
        if kind == 0:
            return f"amount > {rnd.randint(0, top)}"
        if kind == 1:
            lo = rnd.randint(0, top)
            return f"amount >= {lo} and amount <= {lo + rnd.randint(0, top * 4)}"
        if kind == 2:
            items = ", ".join(f'"{c}"' for c in rnd.sample(CATEGORIES, rnd.randint(1, 4)))
            return f"category in [{items}]"
        if kind == 3:
            return f'category != "{rnd.choice(CATEGORIES)}"'
        if kind == 4:
            return f"level < {rnd.randint(0, 10)}" if not low else "exists(level)"
        if kind == 5:
            return "not urgent" if rnd.random() < 0.5 else 'code matches "^CC-[0-9]{2}$"'
        return f"level in [{rnd.randint(0, 9)}, {rnd.randint(0, 9)}] or amount > {top}"

    shape = rnd.randrange(4)
    if shape == 0:
        return atom()
    if shape == 1:
        return f"{atom()} and {atom()}"
    if shape == 2:
        return f"({atom()}) or ({atom()})"
    return f"not ({atom()}) or ({atom()} and {atom()})"


def _ruleset(rnd: random.Random, size: int, low: bool) -> Ruleset:
    outcomes = ["approve", "escalate", "reject"]
    return ruleset(INPUTS, [(f"r{i}", _condition(rnd, low), rnd.choice(outcomes))
                            for i in range(size)])


def _inputs(rnd: random.Random, count: int, big: bool) -> list[dict[str, Any]]:
    out = []
    for _ in range(count):
        data: dict[str, Any] = {}
        if rnd.random() < 0.9:
            data["amount"] = rnd.choice([10**6, 20000, 5001]) if big else rnd.uniform(0, 25000)
        if rnd.random() < 0.9:
            data["level"] = rnd.randint(0, 10)
        if rnd.random() < 0.9:
            data["category"] = rnd.choice(CATEGORIES)
        if rnd.random() < 0.8:
            data["code"] = rnd.choice(["CC-12", "CC-12\n", "CC-123", "x"])
        if rnd.random() < 0.8:
            data["urgent"] = rnd.random() < 0.5
        out.append(data)
    return out


def _agree(pool: EnginePool, rs: Ruleset, batch: list[dict[str, Any]]) -> int:
    reference = ReferenceEvaluator()
    most = 0
    for data, got in zip(batch, pool.evaluate_many(rs, batch), strict=True):
        assert not got.fallback, got.fallback_reason
        expected = reference.evaluate(rs, data)
        assert got.fired_ids == expected.fired_ids, data
        assert got.outcome is expected.outcome
        most = max(most, len(got.fired_ids))
    return most


@pytest.mark.timeout(1200)
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(size=st.sampled_from([1000, 2500, 10_000]), seed=st.integers(0, 2**32))
def test_rulesets_of_thousands_of_rules_decide_exactly_like_the_reference(
        pool: EnginePool, size: int, seed: int) -> None:
    rnd = random.Random(seed)
    rs = _ruleset(rnd, size, low=False)
    assert len(compile_ruleset(rs).shards) > 1
    _agree(pool, rs, _inputs(rnd, 3, big=False))


@pytest.mark.timeout(1200)
@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
@given(size=st.sampled_from([1000, 3000]), seed=st.integers(0, 2**32))
def test_thousands_of_rules_firing_at_once_never_fall_back(
        pool: EnginePool, size: int, seed: int) -> None:
    rnd = random.Random(seed)
    rs = _ruleset(rnd, size, low=True)
    most = _agree(pool, rs, _inputs(rnd, 2, big=True))
    assert most > size // 3


@pytest.mark.timeout(1200)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(size=st.integers(1, 250), seed=st.integers(0, 2**32))
def test_small_rulesets_where_most_rules_fire_decide_exactly_like_the_reference(
        pool: EnginePool, size: int, seed: int) -> None:
    rnd = random.Random(seed)
    rs = _ruleset(rnd, size, low=True)
    _agree(pool, rs, _inputs(rnd, 8, big=True))


@pytest.mark.parametrize("rules", [
    [("wide", " or ".join(f"x > {i}" for i in range(64)))],
    [("wider", " or ".join(f"x > {i}" for i in range(300)))],
    [(f"r{i}", f"x > {i}") for i in range(64)],
    [(f"r{i}", f"x > {i} or x > {i + 1} or x > {i + 2}") for i in range(30)],
    [(f"r{i}", f"y > 1 or x > {i}") for i in range(80)],
], ids=["one rule of 64 true branches", "one rule of 300 true branches",
        "64 rules all true", "30 rules of three true branches", "80 rules of two true branches"])
def test_the_cases_that_overflowed_durables_stack_now_decide(
        pool: EnginePool, rules: list[tuple[str, str]]) -> None:
    rs = ruleset((field("x", "integer"), field("y", "integer")),
                 [(rule_id, when, "reject") for rule_id, when in rules])
    got = pool.evaluate(rs, {"x": 1000, "y": 1000})
    assert not got.fallback, got.fallback_reason
    assert set(got.fired_ids) == {rule_id for rule_id, _ in rules}


def test_dollar_is_the_end_of_the_value_not_before_a_trailing_newline(
        pool: EnginePool) -> None:
    rs = ruleset((field("s", "string"),), [("card", 's matches "^CC-[0-9]{4}$"', "reject")])
    reference = ReferenceEvaluator()
    for value, fires in (("CC-1234", True), ("CC-1234\n", False), ("CC-12345", False)):
        assert pool.evaluate(rs, {"s": value}).fired_ids == (("card",) if fires else ())
        assert reference.evaluate(rs, {"s": value}).fired_ids == (("card",) if fires else ())


def test_a_unicode_class_means_the_same_to_the_engine_and_the_reference(
        pool: EnginePool) -> None:
    # Python's re counts '¼' as a word character, the regex module does not: both evaluators
    # use the regex module, so they agree.
    rs = ruleset((field("s", "string"),), [("word", r's matches "^\\w+$"', "reject")])
    for value in ("abc", "¼", "a b"):
        assert pool.evaluate(rs, {"s": value}).fired_ids == \
            ReferenceEvaluator().evaluate(rs, {"s": value}).fired_ids
