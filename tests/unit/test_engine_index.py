"""The index in front of the engine never leaves out a shard where a rule can fire.

Checked without durable: each compiled rule's durable condition is evaluated in Python on
the encoded fact (the integers durable compares), and every rule that holds must be a
candidate of the index and its shard reached; the rules that hold are exactly the ones the
reference evaluator fires. Over random decision tables (every cell kind) and rules (index
shapes and shapes the index skips), on inputs on and beside every bound, fields absent.
"""

from __future__ import annotations

import operator
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules_service.engine import ReferenceEvaluator, compile_ruleset
from rules_service.engine.encoding import FactEncoder
from rules_service.engine.index import HIGHEST, LOWEST, ShardIndex, constraints
from rules_service.engine.normal_form import test_node as atom
from tests.unit.engine_support import (
    INDEX_INPUTS,
    random_table_inputs,
    random_table_ruleset,
    ruleset,
)

_OPS = {"$lt": operator.lt, "$lte": operator.le, "$gt": operator.gt, "$gte": operator.ge,
        "$neq": operator.ne}


def _holds(expr: dict[str, Any], fact: dict[str, Any]) -> bool:
    """A durable condition on a fact, as durable reads it (integers only)."""
    (key, value), = expr.items()
    if key == "$and":
        return all(_holds(e, fact) for e in value)
    if key == "$or":
        return any(_holds(e, fact) for e in value)
    if key in _OPS:
        (fact_key, constant), = value.items()
        return bool(_OPS[key](fact[fact_key], constant))
    return bool(fact[key] == value)


def _index(wire: dict[str, Any]) -> ShardIndex:
    shard_of = {rule: n for n, (_, durable, _) in enumerate(wire["shards"]) for rule in durable}
    return ShardIndex(wire["index"], shard_of, len(wire["shards"]))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**32), rows=st.sampled_from([1, 5, 60, 300]),
       rules=st.sampled_from([0, 3, 40]))
def test_every_rule_that_can_fire_is_a_candidate_in_a_reached_shard(
        seed: int, rows: int, rules: int) -> None:
    rnd = random.Random(seed)
    rs = random_table_ruleset(rnd, rows, rules)
    compiled = compile_ruleset(rs)
    wire = compiled.to_wire()
    index, encoder = _index(wire), FactEncoder(wire)
    bits = {name: 1 << i for i, (name, _) in enumerate(wire["index"])}
    reference = ReferenceEvaluator()
    rules_in = [len(s.durable) for s in compiled.shards]
    for data in random_table_inputs(rnd, 25):
        fact = {**encoder.encode(data), "_e": 1}
        candidates, reached = index.candidates(fact), index.shards(fact)
        holding = set()
        for n, shard in enumerate(compiled.shards):
            for name, rule in shard.durable.items():
                if name != "_e" and _holds(rule["all"][0]["m"], fact):
                    assert candidates & bits[name], (name, data)
                    assert n in reached, (name, data)
                    holding.add(compiled.rule_ids[compiled.rule_index[name]])
        assert sorted(holding) == sorted(reference.fired(rs, data))
        assert sum(rules_in[n] for n in reached) <= compiled.work_per_input


def test_the_index_reads_top_level_equalities_lists_and_ranges() -> None:
    piece = ("and", (atom(">=", "f0", 3), atom("<", "g0", 9),
                     ("or", (atom("==", "f1", 5), atom("==", "f1", 1))),
                     atom("!=", "f2", 4), atom(">", "f0", 4)))
    assert constraints(piece) == {"f0": ((5, HIGHEST),), "g0": ((LOWEST, 8),),
                                  "f1": ((1, 1), (5, 5))}
    # an or over two keys, or under an and inside an or, constrains nothing
    assert constraints(("or", (atom("==", "f1", 5), atom("==", "f2", 1)))) == {}


def test_an_input_reaches_only_the_shards_of_its_rows() -> None:
    rows = [(f"r{c}{b}", f'category == "c{c}" and amount >= {b * 100} and amount < '
             f'{b * 100 + 100}', "reject") for c in range(10) for b in range(60)]
    rs = ruleset((INDEX_INPUTS[0], INDEX_INPUTS[2]), rows)
    compiled = compile_ruleset(rs)
    wire = compiled.to_wire()
    index, encoder = _index(wire), FactEncoder(wire)
    assert len(compiled.shards) > 10
    assert len(index.shards(encoder.encode({"category": "c3", "amount": 250}))) == 1
    assert index.shards(encoder.encode({"category": "c3", "amount": 7000})) == []
    assert index.shards(encoder.encode({"amount": 250})) == []  # category absent: no row
    assert compiled.work_per_input < compiled.engine_rules / 5


@pytest.mark.parametrize("index", [True, False])
def test_without_the_index_every_input_reaches_every_shard(index: bool) -> None:
    rs = random_table_ruleset(random.Random(5), 200)
    compiled = compile_ruleset(rs, index=index)
    assert (compiled.to_wire()["index"] is not None) is index
    if not index:
        assert compiled.work_per_input == compiled.engine_rules


def test_a_flat_and_of_tests_costs_one_stack_entry_as_the_general_count_says() -> None:
    from rules_service.engine.shards import _deeper, _entry, stack_cost

    for n in range(1, 12):
        node = ("and", tuple(atom("==", f"f{i}", i) for i in range(n))) if n > 1 \
            else atom("==", "f0", 0)
        assert stack_cost(node) == _entry(node) + _deeper(node, 0) == 1


def test_a_loaded_table_is_compiled_once_for_the_load_and_the_engine(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from bench.tables import grid_definition
    from rules_service.adapters.ruleset_files import load_ruleset_text
    from rules_service.engine import EnginePool, compiler

    calls = []
    real = compiler._compile
    monkeypatch.setattr(compiler, "_compile", lambda rs, index: calls.append(rs) or real(rs, index))
    rs = load_ruleset_text(yaml.safe_dump(grid_definition(300), sort_keys=False))
    assert len(calls) == 1  # the load refuses what the engine cannot run
    pool = EnginePool(workers=1)  # no worker starts before an evaluation
    assert pool._compile(rs) is compile_ruleset(rs)
    assert len(calls) == 1
    assert compile_ruleset(rs, index=False) is not compile_ruleset(rs)
    assert len(calls) == 2


def test_a_key_with_too_many_bounds_for_its_rules_is_left_out_and_removes_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from rules_service.engine import index as index_module

    rules = [(f"r{i}", f"amount >= {i} and amount < {i + 1}", "reject") for i in range(300)]
    rs = ruleset((INDEX_INPUTS[2],), rules)
    wire = compile_ruleset(rs).to_wire()
    assert len(_index(wire).shards({"f0": 5, "g0": 5})) == 1
    monkeypatch.setattr(index_module, "MAX_INDEX_BITS", 1000)
    everything = list(range(len(wire["shards"])))
    assert _index(wire).shards({"f0": 5, "g0": 5}) == everything
