"""The durable engine pool: decisions, and every measured durable-rules hazard as a regression."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rules_service.domain.decision import Evaluation
from rules_service.domain.evaluator import Evaluator
from rules_service.domain.ruleset import Outcome
from rules_service.engine import EnginePool, ReferenceEvaluator
from tests.unit.engine_support import field, ruleset

EXPENSES = ruleset(
    (field("amount", "number"), field("currency", "string"), field("category", "string"),
     field("has_receipt", "boolean"), field("employee_level", "integer")),
    [("receipt-required", "amount > 50 and not has_receipt", "reject"),
     ("small-expense", "amount <= thresholds.auto_approve_limit", "approve"),
     ("over-manager-limit",
      "amount > thresholds.manager_limit or (category == \"hardware\" and amount > 1000)",
      "escalate")],
    {"auto_approve_limit": 500, "manager_limit": 5000}, name="expense-approval",
    default="escalate", fallback="escalate")


@pytest.fixture(scope="module")
def pool() -> Iterator[EnginePool]:
    with EnginePool(workers=2, timeout_s=5.0) as p:
        yield p


def _same(a: Evaluation, b: Evaluation) -> None:
    assert (a.outcome, a.fired_ids, a.deciding_rules, a.fallback, a.escalate_to) == (
        b.outcome, b.fired_ids, b.deciding_rules, b.fallback, b.escalate_to)


def test_both_evaluators_satisfy_the_evaluator_protocol(pool: EnginePool) -> None:
    # Typed as the protocol, so mypy checks that both fit it; each then answers through it,
    # one input and a batch in order, with the same decisions.
    evaluators: list[Evaluator] = [pool, ReferenceEvaluator()]
    inputs = [{"amount": 20, "category": "meals", "has_receipt": False},
              {"amount": 1500, "category": "hardware", "has_receipt": True}]
    for evaluator in evaluators:
        one = evaluator.evaluate(EXPENSES, inputs[0])
        many = evaluator.evaluate_many(EXPENSES, inputs)
        assert isinstance(one, Evaluation) and all(isinstance(e, Evaluation) for e in many)
        assert [(e.outcome, e.fired_ids) for e in many] == [
            (Outcome.APPROVE, ("small-expense",)), (Outcome.ESCALATE, ("over-manager-limit",))]
        _same(one, many[0])


@pytest.mark.parametrize(("data", "outcome", "fired"), [
    ({"amount": 20, "category": "meals", "has_receipt": False}, "approve", ["small-expense"]),
    ({"amount": 120, "category": "meals", "has_receipt": False}, "reject",
     ["receipt-required", "small-expense"]),
    ({"amount": 1500, "category": "hardware", "has_receipt": True}, "escalate",
     ["over-manager-limit"]),
    ({"amount": 9000, "category": "travel", "has_receipt": False}, "reject",
     ["receipt-required", "over-manager-limit"]),
    ({"amount": 700, "category": "travel", "has_receipt": True}, "escalate", []),
])
def test_the_engine_decides_the_expense_example(pool: EnginePool, data: dict[str, Any],
                                                outcome: str, fired: list[str]) -> None:
    evaluation = pool.evaluate(EXPENSES, data)
    assert not evaluation.fallback, evaluation.fallback_reason
    assert evaluation.outcome is Outcome(outcome)
    assert list(evaluation.fired_ids) == fired
    assert evaluation.input == data
    assert evaluation.duration_ms > 0
    _same(evaluation, ReferenceEvaluator().evaluate(EXPENSES, data))


def test_an_input_matching_no_rule_gets_the_default_and_the_worker_survives(
        pool: EnginePool) -> None:
    rs = ruleset((field("x", "number"),), [("big", "x > 10", "reject")], default="approve")
    before = pool.worker_pids()
    for _ in range(20):
        evaluation = pool.evaluate(rs, {"x": 1})
        assert (evaluation.outcome, evaluation.fired_ids, evaluation.fallback) == (
            Outcome.APPROVE, (), False)
    assert pool.evaluate(rs, {"x": 11}).fired_ids == ("big",)
    assert not before or set(before) <= set(pool.worker_pids())


def test_an_or_true_on_both_sides_fires_the_rule_once(pool: EnginePool) -> None:
    rs = ruleset((field("a", "integer"), field("b", "integer")),
                 [("either", "a == 1 or b == 1 or (a == 1 and b == 1)", "reject")])
    evaluation = pool.evaluate(rs, {"a": 1, "b": 1})
    assert evaluation.fired_ids == ("either",)
    assert [r.id for r in evaluation.fired_rules] == ["either"]


@pytest.mark.parametrize("name", ["sid", "id", "_e", "f0", "m0"])
def test_a_field_named_like_an_engine_key_is_just_a_field(pool: EnginePool, name: str) -> None:
    rs = ruleset((field(name, "string"), field("n", "integer")),
                 [("hit", f"{name} == 'x'", "reject"), ("miss", f"not exists({name})", "approve"),
                  ("n", "n > 0", "escalate")])
    assert pool.evaluate(rs, {name: "x", "n": 1}).fired_ids == ("hit", "n")
    assert pool.evaluate(rs, {name: "1"}).fired_ids == ()
    assert pool.evaluate(rs, {}).fired_ids == ("miss",)


def test_not_on_an_absent_field_is_true_but_a_comparison_is_false(pool: EnginePool) -> None:
    rs = ruleset((field("x", "integer"), field("s", "string")),
                 [("not-eq", "not (x == 1)", "approve"), ("ne", "x != 1", "approve"),
                  ("not-in", "s not in ['a']", "approve"),
                  ("not-of-in", "not (s in ['a'])", "approve"),
                  ("not-gt", "not (x > 5)", "approve"), ("lt", "x < 5", "approve")])
    assert pool.evaluate(rs, {}).fired_ids == ("not-eq", "not-of-in", "not-gt")
    assert pool.evaluate(rs, {"x": 2, "s": "b"}).fired_ids == (
        "not-eq", "ne", "not-in", "not-of-in", "not-gt", "lt")


def test_values_durable_cannot_parse_or_compare_are_decided_exactly(pool: EnginePool) -> None:
    rs = ruleset((field("x", "number"), field("s", "string")),
                 [("huge", "x > 1e20", "reject"), ("tiny", "x > 0 and x < 0.001", "approve"),
                  ("exact", "x == 9007199254740993", "approve"),
                  ("text", "s == '1'", "escalate"), ("empty", "s == ''", "escalate")])
    reference = ReferenceEvaluator()
    cases = [{"x": 1e300}, {"x": 5e-324}, {"x": 2**53}, {"x": 2**53 + 1}, {"x": 2**70},
             {"x": -1e300}, {"s": "1"}, {"s": ""}, {"s": "a\x00b"}, {"s": 'quote"\\'},
             {"s": "é😀"}, {"x": float("inf")}]
    for data, evaluation in zip(cases, pool.evaluate_many(rs, cases), strict=True):
        assert not evaluation.fallback, (data, evaluation.fallback_reason)
        _same(evaluation, reference.evaluate(rs, data))


def test_a_value_the_engine_cannot_take_falls_back_alone(pool: EnginePool) -> None:
    rs = ruleset((field("x", "number"),), [("big", "x > 10", "reject")], fallback="escalate")
    good, nan, good2 = pool.evaluate_many(rs, [{"x": 11}, {"x": float("nan")}, {"x": 1}])
    assert good.fired_ids == ("big",) and not good2.fired_ids
    assert nan.fallback and nan.outcome is Outcome.ESCALATE and "NaN" in nan.fallback_reason


def test_a_ruleset_the_engine_cannot_run_falls_back_with_the_reason(pool: EnginePool) -> None:
    when = " and ".join(f"(x > {i} or x < -{i})" for i in range(20))
    rs = ruleset((field("x", "number"),), [("cnf", when, "reject")], fallback="reject")
    evaluation = pool.evaluate(rs, {"x": 1})
    assert evaluation.fallback and evaluation.outcome is Outcome.REJECT
    assert "too complex" in (evaluation.fallback_reason or "")


def test_a_catastrophic_pattern_falls_back_instead_of_hanging(pool: EnginePool) -> None:
    rs = ruleset((field("s", "string"),), [("rx", "s matches '(a|aa)+$'", "reject")])
    started = time.monotonic()
    slow, fast = pool.evaluate_many(rs, [{"s": "a" * 40 + "b"}, {"s": "aa"}])
    assert time.monotonic() - started < 5
    assert slow.fallback and "took longer" in (slow.fallback_reason or "")
    assert fast.fired_ids == ("rx",)


def test_two_thousand_evaluations_in_a_row_stay_correct(pool: EnginePool) -> None:
    reference = ReferenceEvaluator()
    inputs = [{"amount": (i * 37) % 9000, "category": ["meals", "hardware"][i % 2],
               "has_receipt": i % 3 == 0} for i in range(2200)]
    for data in inputs[:300]:
        _same(pool.evaluate(EXPENSES, data), reference.evaluate(EXPENSES, data))
    for data, evaluation in zip(inputs, pool.evaluate_many(EXPENSES, inputs), strict=True):
        _same(evaluation, reference.evaluate(EXPENSES, data))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_batch_larger_than_one_round_trip_keeps_its_order(workers: int) -> None:
    with EnginePool(workers=workers, batch_size=7) as small:
        inputs = [{"amount": i * 100, "has_receipt": True} for i in range(60)]
        got = small.evaluate_many(EXPENSES, inputs)
    assert [e.input for e in got] == inputs
    assert not any(e.fallback for e in got)
    assert [e.fired_ids for e in got] == [
        ReferenceEvaluator().evaluate(EXPENSES, d).fired_ids for d in inputs]


def test_four_threads_hammering_one_pool_get_correct_answers() -> None:
    reference = ReferenceEvaluator()
    errors: list[str] = []
    with EnginePool(workers=2, timeout_s=10.0) as shared:
        def work(k: int) -> None:
            for i in range(250):
                data = {"amount": (i * 13 + k) % 7000, "category": "hardware",
                        "has_receipt": bool(i % 2)}
                got = shared.evaluate(EXPENSES, data) if i % 5 else shared.evaluate_many(
                    EXPENSES, [data, data])[1]
                want = reference.evaluate(EXPENSES, data)
                if (got.fallback, got.fired_ids) != (False, want.fired_ids):
                    errors.append(f"{data}: {got.fired_ids} {got.fallback_reason}")

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(shared.worker_pids()) <= 2
    assert errors == []


def _evaluate_in_background(p: EnginePool, data: dict[str, Any]
                            ) -> tuple[threading.Thread, list[Evaluation]]:
    result: list[Evaluation] = []
    caller = threading.Thread(target=lambda: result.append(p.evaluate(EXPENSES, data)))
    caller.start()
    return caller, result


def _wait_for_worker_other_than(p: EnginePool, old: set[int], timeout_s: float = 10.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fresh = set(p.worker_pids()) - old
        if fresh:
            return fresh.pop()
        time.sleep(0.02)
    raise AssertionError("no new engine worker started")


def test_a_worker_killed_mid_flight_is_retried_once_on_a_fresh_worker() -> None:
    with EnginePool(workers=1, timeout_s=10.0) as p:
        p.evaluate(EXPENSES, {"amount": 1})
        (pid,) = p.worker_pids()
        p._debug_delay_s = 1.0
        caller, result = _evaluate_in_background(p, {"amount": 1})
        time.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
        caller.join(30)
        (evaluation,) = result
        assert not evaluation.fallback, evaluation.fallback_reason
        assert evaluation.fired_ids == ("small-expense",)
        assert p.worker_pids() != [pid]


def test_a_worker_killed_while_starting_gives_its_request_a_retry_not_the_fallback() -> None:
    with EnginePool(workers=1, timeout_s=10.0) as p:
        killed: list[int] = []

        def kill_the_first(pid: int) -> None:
            if not killed:
                killed.append(pid)
                os.kill(pid, signal.SIGKILL)

        p._debug_on_start = kill_the_first
        evaluation = p.evaluate(EXPENSES, {"amount": 1})
        assert len(killed) == 1
        assert not evaluation.fallback, evaluation.fallback_reason
        assert evaluation.fired_ids == ("small-expense",)
        assert killed[0] not in p.worker_pids()


def test_a_request_whose_retry_dies_too_gets_the_fallback_and_the_next_call_works() -> None:
    with EnginePool(workers=1, timeout_s=10.0) as p:
        p.evaluate(EXPENSES, {"amount": 1})
        (first,) = p.worker_pids()
        p._debug_delay_s = 1.0
        caller, result = _evaluate_in_background(p, {"amount": 1})
        time.sleep(0.3)
        os.kill(first, signal.SIGKILL)
        second = _wait_for_worker_other_than(p, {first})
        time.sleep(0.3)
        os.kill(second, signal.SIGKILL)
        caller.join(30)
        (evaluation,) = result
        assert evaluation.fallback and evaluation.outcome is Outcome.ESCALATE
        assert "stopped unexpectedly" in (evaluation.fallback_reason or "")
        p._debug_delay_s = 0.0
        again = p.evaluate(EXPENSES, {"amount": 1, "has_receipt": True})
        assert not again.fallback and again.fired_ids == ("small-expense",)
        assert set(p.worker_pids()).isdisjoint({first, second})


def test_a_worker_that_died_while_idle_is_replaced_without_a_fallback() -> None:
    with EnginePool(workers=1) as p:
        p.evaluate(EXPENSES, {"amount": 1})
        (pid,) = p.worker_pids()
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        evaluation = p.evaluate(EXPENSES, {"amount": 1})
        assert not evaluation.fallback and evaluation.fired_ids == ("small-expense",)


def test_a_hung_engine_falls_back_within_the_timeout_and_the_next_call_works() -> None:
    with EnginePool(workers=1, timeout_s=0.5) as p:
        p.evaluate(EXPENSES, {"amount": 1})
        p._debug_delay_s = 30.0
        started = time.monotonic()
        evaluation = p.evaluate(EXPENSES, {"amount": 1})
        assert time.monotonic() - started < 3.0
        assert evaluation.fallback
        assert evaluation.fallback_reason == "engine timed out after 0.5 s"
        p._debug_delay_s = 0.0
        assert p.evaluate(EXPENSES, {"amount": 1}).fired_ids == ("small-expense",)


def test_rulesets_evicted_from_a_worker_cache_are_reloaded_correctly() -> None:
    reference = ReferenceEvaluator()
    rulesets = [ruleset((field("x", "integer"),), [(f"over-{i}", f"x > {i}", "reject")])
                for i in range(6)]
    with EnginePool(workers=1, cache_size=2) as p:
        for _ in range(3):
            for rs in rulesets:
                for x in (0, 3, 9):
                    _same(p.evaluate(rs, {"x": x}), reference.evaluate(rs, {"x": x}))


def test_a_worker_is_recycled_after_its_evaluation_budget() -> None:
    with EnginePool(workers=1, recycle_after=10) as p:
        p.evaluate(EXPENSES, {"amount": 1})
        first = p.worker_pids()
        for _ in range(12):
            assert p.evaluate(EXPENSES, {"amount": 1}).fired_ids == ("small-expense",)
        assert p.worker_pids() != first


def test_a_closed_pool_falls_back_instead_of_raising() -> None:
    p = EnginePool(workers=1)
    assert not p.evaluate(EXPENSES, {"amount": 1}).fallback
    p.close()
    evaluation = p.evaluate(EXPENSES, {"amount": 1})
    assert evaluation.fallback and "closed" in (evaluation.fallback_reason or "")
    assert p.worker_pids() == []


def test_an_empty_batch_needs_no_worker() -> None:
    with EnginePool(workers=1) as p:
        assert p.evaluate_many(EXPENSES, []) == []
        assert p.worker_pids() == []


def test_an_input_that_is_not_an_object_falls_back_instead_of_raising(pool: EnginePool) -> None:
    evaluation = pool.evaluate(EXPENSES, ["not", "an", "object"])  # type: ignore[arg-type]
    assert evaluation.fallback and evaluation.outcome is Outcome.ESCALATE


def test_an_input_that_cannot_be_sent_to_a_worker_falls_back(pool: EnginePool) -> None:
    evaluation = pool.evaluate(EXPENSES, {"amount": 1, "junk": threading.Lock()})
    assert evaluation.fallback and "could not be sent" in (evaluation.fallback_reason or "")
    assert not pool.evaluate(EXPENSES, {"amount": 1}).fallback


def test_warming_up_starts_every_worker_before_the_first_evaluation() -> None:
    with EnginePool(workers=2) as warm:
        assert warm.worker_pids() == []
        warm.warm_up()
        pids = warm.worker_pids()
        assert len(pids) == 2
        evaluation = warm.evaluate(EXPENSES, {"amount": 10, "has_receipt": True})
        assert not evaluation.fallback
        assert warm.worker_pids() == pids
