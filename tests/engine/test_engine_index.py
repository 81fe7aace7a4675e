"""The index changes no decision: durable with the index on and off fires exactly what the
reference evaluator fires, over random decision tables and rules (every cell kind, the
shapes the index reads and those it skips), on inputs on and beside every bound."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules_service.engine import EnginePool, ReferenceEvaluator, compile_ruleset
from tests.unit.engine_support import random_table_inputs, random_table_ruleset


@pytest.fixture(scope="module")
def pools() -> Iterator[tuple[EnginePool, EnginePool]]:
    with EnginePool(workers=1, timeout_s=10.0, cache_size=4) as on, \
            EnginePool(workers=1, timeout_s=10.0, cache_size=4, index=False) as off:
        yield on, off


@pytest.mark.timeout(900)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**32), rows=st.sampled_from([3, 80, 400]),
       rules=st.sampled_from([0, 10, 120]))
def test_the_index_on_and_off_decides_exactly_like_the_reference(
        pools: tuple[EnginePool, EnginePool], seed: int, rows: int, rules: int) -> None:
    rnd = random.Random(seed)
    rs = random_table_ruleset(rnd, rows, rules)
    inputs = random_table_inputs(rnd, 40)
    reference = ReferenceEvaluator()
    expected = [reference.evaluate(rs, data) for data in inputs]
    for pool in pools:
        for data, got, want in zip(inputs, pool.evaluate_many(rs, inputs), expected,
                                   strict=True):
            assert not got.fallback, got.fallback_reason
            assert got.fired_ids == want.fired_ids, (pool.index, data)
            assert got.outcome is want.outcome
        # one at a time too: a batch is cut into chunks by the index's work bound
        single = pool.evaluate(rs, inputs[0])
        assert single.fired_ids == expected[0].fired_ids


def test_a_five_thousand_row_grid_decides_like_the_reference_reaching_few_shards(
        pools: tuple[EnginePool, EnginePool]) -> None:
    from bench.tables import grid_definition, grid_inputs
    from rules_service.adapters.ruleset_files import load_ruleset_definition
    from rules_service.domain.inputs import validate_input

    rs = load_ruleset_definition(grid_definition(5000))
    compiled = compile_ruleset(rs)
    assert compiled.work_per_input * 5 < compiled.engine_rules
    inputs = [validate_input(rs, d) for d in grid_inputs(300)]
    reference = ReferenceEvaluator()
    got = pools[0].evaluate_many(rs, inputs)
    for data, evaluation in zip(inputs, got, strict=True):
        assert not evaluation.fallback
        assert evaluation.fired_ids == reference.evaluate(rs, data).fired_ids
