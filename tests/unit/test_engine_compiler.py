"""The pure compiler: durable definitions that avoid every measured hazard by construction."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from rules_service.engine.compiler import (
    ABSENT_HIGH,
    ABSENT_LOW,
    CATCH_ALL,
    MAX_DURABLE_RULES,
    MAX_FACT_KEYS,
    MAX_RULES,
    MAX_STACK_ENTRIES,
    EncodeError,
    EngineCompileError,
    FactEncoder,
    Shard,
    compile_ruleset,
    stack_cost,
)
from rules_service.language.ast import And, Compare, CompareOp, FieldRef, Literal, Or
from tests.unit.engine_support import field, ruleset

INPUTS = (field("amount", "number"), field("category", "string"), field("has_receipt", "boolean"),
          field("sid", "integer"), field("id", "string"),
          field("applicant", "object", field("country", "string")))

CONDITIONS = [
    "amount > 50 and not has_receipt",
    "not (amount > 50)",
    "category != 'x'",
    "not (category != 'x')",
    "not (category in ['a', 'b'])",
    "category not in ['a', 'b']",
    "not (category not in ['a'])",
    "not exists(applicant.country)",
    "not exists(applicant)",
    "not (category matches '^a')",
    "sid == 1 or id == 'sid'",
    "not (amount >= 1 and (amount < 5 or not has_receipt))",
    "true",
    "not false",
]


def _keys(obj: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            found.add(k)
            found |= _keys(v)
    elif isinstance(obj, list):
        for v in obj:
            found |= _keys(v)
    return found


@pytest.mark.parametrize("when", CONDITIONS)
def test_no_condition_ever_compiles_to_nex_or_ex(when: str) -> None:
    compiled = compile_ruleset(ruleset(INPUTS, [("r", when, "reject")]))
    keys = _keys(compiled.durable)
    assert "$nex" not in keys and "$ex" not in keys
    assert "$not" not in keys


@pytest.mark.parametrize("when", CONDITIONS)
def test_user_field_names_never_reach_durable(when: str) -> None:
    compiled = compile_ruleset(ruleset(INPUTS, [("r", when, "reject")]))
    exprs = [rule["all"][0]["m"] for rule in compiled.durable.values()]
    tested = {k for k in _keys(exprs) if not k.startswith("$")}
    names = {"amount", "category", "has_receipt", "sid", "id", "applicant", "country"}
    assert not tested & names
    assert all(k[0] in "fgm_" for k in tested)


def test_every_ruleset_has_a_catch_all_rule_on_the_sentinel() -> None:
    compiled = compile_ruleset(ruleset(INPUTS, [("r", "amount > 1", "reject")]))
    assert compiled.durable[CATCH_ALL]["all"] == [{"m": {"_e": 1}}]


def test_rule_names_map_back_to_rule_ids() -> None:
    rs = ruleset(INPUTS, [("first-rule", "amount > 1", "reject"),
                          ("never", "false", "approve"),
                          ("third", "has_receipt", "approve")])
    compiled = compile_ruleset(rs)
    named = {compiled.rule_ids[i] for i in compiled.rule_index.values()}
    assert named == {"first-rule", "third"}  # a constant-false rule needs no engine rule
    assert set(compiled.rule_index) | {CATCH_ALL} == set(compiled.durable)


def test_thresholds_are_inlined_as_constants() -> None:
    a = compile_ruleset(ruleset(INPUTS, [("r", "amount > thresholds.lim", "reject")],
                                {"lim": 500}))
    b = compile_ruleset(ruleset(INPUTS, [("r", "amount > 500", "reject")]))
    assert a.durable == b.durable and a.key == b.key


def test_the_durable_definition_is_plain_json_of_small_integers() -> None:
    cond = Or((Compare(CompareOp.GT, FieldRef(("amount",)), Literal(1e300)),
               Compare(CompareOp.EQ, FieldRef(("category",)), Literal("a\x00b")),
               Compare(CompareOp.EQ, FieldRef(("amount",)), Literal(2.5))))
    rs = ruleset(INPUTS, [("r", cond, "reject")])
    compiled = compile_ruleset(rs)
    text = json.dumps(compiled.durable)
    assert "e+" not in text and "\\u0000" not in text

    def values(obj: Any) -> list[Any]:
        if isinstance(obj, dict):
            return [v for k, x in obj.items() if k != "run" for v in values(x)]
        if isinstance(obj, list):
            return [v for x in obj for v in values(x)]
        return [obj]

    assert all(isinstance(v, int) and -2 < v < ABSENT_HIGH for v in values(compiled.durable))


def _encoder(when: str) -> tuple[FactEncoder, Any]:
    compiled = compile_ruleset(ruleset(INPUTS, [("r", when, "reject")]))
    return FactEncoder(compiled.to_wire()), compiled


def test_numbers_are_encoded_by_rank_among_the_constants() -> None:
    encoder, _ = _encoder("amount > 10 or amount < 2.5 or amount == 1e300")
    ranks = [encoder.encode({"amount": v})["f0"] for v in
             (-math.inf, 2, 2.5, 3, 10, 10.0, 11, 1e300, math.inf)]
    assert ranks == [0, 0, 1, 2, 3, 3, 4, 5, 6]


def test_an_absent_or_null_field_gets_the_absent_codes() -> None:
    encoder, _ = _encoder("amount > 10 or amount < 2")
    for data in ({}, {"amount": None}):
        fact = encoder.encode(data)
        assert fact["f0"] == ABSENT_LOW and fact["g0"] == ABSENT_HIGH


def test_strings_outside_the_literal_table_share_code_zero() -> None:
    nul = Compare(CompareOp.EQ, FieldRef(("category",)), Literal("a\x00b"))
    x = Compare(CompareOp.EQ, FieldRef(("category",)), Literal("x"))
    compiled = compile_ruleset(ruleset(INPUTS, [("r", Or((nul, x)), "reject")]))
    encoder = FactEncoder(compiled.to_wire())
    codes = [encoder.encode({"category": s})["f0"] for s in ("a\x00b", "x", "a\x00c", "", "y")]
    assert codes == [1, 2, 0, 0, 0]


@pytest.mark.parametrize(("data", "problem"), [
    ({"amount": "12"}, "must be a number"),
    ({"amount": math.nan}, "NaN"),
    ({"category": 5}, "must be a string"),
    ({"has_receipt": 1}, "must be a boolean"),
])
def test_a_value_of_the_wrong_type_is_an_encode_error(data: dict[str, Any], problem: str) -> None:
    encoder, _ = _encoder("amount > 1 or category == 'a' or has_receipt")
    with pytest.raises(EncodeError, match=problem):
        encoder.encode(data)


def test_a_rule_with_many_or_groups_is_split_into_several_engine_rules() -> None:
    # 20 nested and/or groups exceed durable's limit of 15 per rule (error 113).
    clauses = " or ".join(f"(amount > {i} and category == 'c{i}')" for i in range(20))
    compiled = compile_ruleset(ruleset(INPUTS, [("wide", clauses, "reject")]))
    assert len(compiled.rule_index) == 20
    assert set(compiled.rule_index.values()) == {0}


def test_a_condition_too_complex_for_the_engine_is_a_compile_error() -> None:
    clauses = " and ".join(f"(amount > {i} or category == 'c{i}')" for i in range(20))
    with pytest.raises(EngineCompileError, match="too complex"):
        compile_ruleset(ruleset(INPUTS, [("cnf", clauses, "reject")]))


@pytest.mark.slow
def test_more_rules_than_a_file_may_hold_is_a_compile_error() -> None:
    rules = [(f"r{i}", f"amount > {i}", "reject") for i in range(MAX_RULES + 1)]
    with pytest.raises(EngineCompileError, match="at most 10,000"):
        compile_ruleset(ruleset(INPUTS, rules))


def _shard_stack(shard: Shard) -> int:
    return sum(stack_cost(_node(rule["all"][0]["m"])) for rule in shard.durable.values())


def _node(expr: dict[str, Any]) -> tuple[Any, ...]:
    """The compiler's normal form back from emitted durable JSON."""
    (key, value), = expr.items()
    if key in ("$and", "$or"):
        return (key[1:], tuple(_node(e) for e in value))
    if key.startswith("$"):
        (field_key, constant), = value.items()
        return ("test", key, field_key, constant)
    return ("test", "==", key, value)


@pytest.mark.slow
def test_a_large_ruleset_is_split_into_shards_each_within_every_measured_limit() -> None:
    rules = [(f"r{i}", f"amount > {i} or (category == 'c{i % 7}' and amount < {i * 3})",
              "reject") for i in range(1500)]
    compiled = compile_ruleset(ruleset(INPUTS, rules))
    assert len(compiled.shards) > 1
    for shard in compiled.shards:
        assert len(shard.durable) <= MAX_DURABLE_RULES
        assert _shard_stack(shard) < MAX_STACK_ENTRIES
        assert len(shard.keys) + 2 <= MAX_FACT_KEYS
        assert CATCH_ALL in shard.durable
    assert {compiled.rule_ids[i] for i in compiled.rule_index.values()} == \
        {rule_id for rule_id, _, _ in rules}


def test_a_shard_fact_carries_only_the_keys_its_rules_test() -> None:
    rules = [(f"a{i}", f"amount > {i}", "reject") for i in range(100)] + \
        [(f"c{i}", f"category == 'c{i}'", "reject") for i in range(100)]
    compiled = compile_ruleset(ruleset(INPUTS, rules))
    for shard in compiled.shards:
        tested = {k for k in _keys([r["all"] for r in shard.durable.values()])
                  if not k.startswith("$") and k not in ("m", "all", CATCH_ALL)}
        assert set(shard.keys) == tested


def test_a_rule_with_more_branches_than_the_engine_stack_is_split_across_shards() -> None:
    wide = " or ".join(f"amount > {i}" for i in range(64))
    compiled = compile_ruleset(ruleset(INPUTS, [("wide", wide, "reject")]))
    assert len(compiled.rule_index) == 64
    assert all(_shard_stack(s) < MAX_STACK_ENTRIES for s in compiled.shards)


@pytest.mark.parametrize(("when", "cost"), [
    ("amount > 1", 1),
    ("amount > 1 and amount < 5 and category == 'a'", 1),
    ("amount > 1 or category == 'a'", 2),
    ("category in ['a', 'b', 'c'] and amount > 1", 3),
    ("amount > 1 and category in ['a', 'b', 'c']", 3),
    ("(amount > 1 or amount > 2) and (amount > 3 or amount > 4)", 3),
])
def test_the_stack_bound_counts_what_can_be_pending_at_once(when: str, cost: int) -> None:
    compiled = compile_ruleset(ruleset(INPUTS, [("r", when, "reject")]))
    assert _shard_stack(compiled.shards[0]) == cost + 1  # the catch-all takes one


def test_comparing_a_field_with_a_field_is_a_compile_error() -> None:
    cond = Compare(CompareOp.EQ, FieldRef(("amount",)), FieldRef(("sid",)))
    with pytest.raises(EngineCompileError, match="two fields"):
        compile_ruleset(ruleset(INPUTS, [("r", cond, "reject")]))


def test_an_unknown_field_is_a_compile_error() -> None:
    with pytest.raises(EngineCompileError, match="unknown field"):
        compile_ruleset(ruleset(INPUTS, [("r", "nope > 1", "reject")]))


def test_constant_conditions_fold_away() -> None:
    cond = And((Literal(True), Or((Literal(False), Compare(CompareOp.LT, Literal(1),
                                                             Literal(2))))))
    compiled = compile_ruleset(ruleset(INPUTS, [("r", cond, "reject")]))
    assert compiled.durable["r0"]["all"] == [{"m": {"_e": 1}}]
