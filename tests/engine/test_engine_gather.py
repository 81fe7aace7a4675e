"""Concurrent calls on one engine pool share round trips: each caller still gets exactly its
own decisions, or its own fallback, and never waits forever."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules_service.domain.decision import Evaluation
from rules_service.domain.ruleset import Ruleset
from rules_service.engine import EnginePool, ReferenceEvaluator
from rules_service.engine import pool as pool_module
from tests.engine.test_engine import EXPENSES
from tests.unit.engine_support import field, ruleset

COUNTRIES = ruleset(
    (field("country", "string"), field("n", "integer")),
    [("de", "country == 'DE'", "reject"), ("big", "n > 10", "escalate"),
     ("f", "country matches '^F'", "approve")],
    name="countries", default="approve", fallback="reject")

REFERENCE = ReferenceEvaluator()

expense_inputs = st.fixed_dictionaries({}, optional={
    "amount": st.one_of(st.integers(-10, 12_000),
                        st.floats(-1e4, 1e6, allow_nan=False, allow_infinity=False)),
    "category": st.sampled_from(["meals", "hardware", "travel"]),
    "has_receipt": st.booleans(),
    "employee_level": st.integers(0, 9)})
country_inputs = st.fixed_dictionaries({}, optional={
    "country": st.sampled_from(["DE", "FR", "FI", "US", ""]), "n": st.integers(-5, 50)})
# One call: a ruleset and one to four inputs for it (a single input goes through evaluate).
calls = st.one_of(st.tuples(st.just(EXPENSES), st.lists(expense_inputs, min_size=1, max_size=4)),
                  st.tuples(st.just(COUNTRIES), st.lists(country_inputs, min_size=1, max_size=4)))
GATHER_SETTINGS = settings(max_examples=25, deadline=None,
                           suppress_health_check=[HealthCheck.too_slow,
                                                  HealthCheck.function_scoped_fixture])


def _agrees(rs: Ruleset, data: dict[str, Any], got: Evaluation) -> str | None:
    """None when the evaluation is exactly the reference's decision for this input."""
    want = REFERENCE.evaluate(rs, data)
    if (got.fallback, got.outcome, got.fired_ids, got.input) != (
            False, want.outcome, want.fired_ids, data):
        return f"{rs.name} {data}: got {got.outcome} {got.fired_ids} {got.fallback_reason}"
    return None


def _in_threads(work: list[Callable[[], None]], timeout_s: float = 120.0) -> None:
    """Runs each function in its own thread, started together; none may hang."""
    barrier = threading.Barrier(len(work))

    def run(fn: Callable[[], None]) -> None:
        barrier.wait()
        fn()

    threads = [threading.Thread(target=run, args=(fn,), daemon=True) for fn in work]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout_s
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "a caller never returned"


def _wait_until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the pool never got there")
        time.sleep(0.005)


def _background(fn: Callable[[], Evaluation]) -> tuple[threading.Thread, list[Evaluation]]:
    out: list[Evaluation] = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    return t, out


@pytest.fixture(scope="module", params=[1, 2], ids=["one-worker", "two-workers"])
def shared(request: pytest.FixtureRequest) -> Iterator[EnginePool]:
    with EnginePool(workers=request.param, timeout_s=10.0) as p:
        p.warm_up()
        yield p


@GATHER_SETTINGS
@given(per_thread=st.lists(st.lists(calls, min_size=1, max_size=6), min_size=2, max_size=8))
def test_concurrent_callers_get_exactly_their_own_decisions(
        shared: EnginePool, per_thread: list[list[tuple[Ruleset, list[dict[str, Any]]]]]
        ) -> None:
    errors: list[str] = []
    trips, sent = shared.round_trips, shared.inputs_sent

    def caller(my_calls: list[tuple[Ruleset, list[dict[str, Any]]]]) -> Callable[[], None]:
        def run() -> None:
            for rs, inputs in my_calls:
                got = ([shared.evaluate(rs, inputs[0])] if len(inputs) == 1
                       else shared.evaluate_many(rs, inputs))
                assert len(got) == len(inputs)
                errors.extend(e for d, g in zip(inputs, got, strict=True)
                              if (e := _agrees(rs, d, g)) is not None)
        return run

    _in_threads([caller(c) for c in per_thread])
    assert errors == []
    total_calls = sum(len(c) for c in per_thread)
    assert shared.inputs_sent - sent == sum(len(i) for c in per_thread for _, i in c)
    assert shared.round_trips - trips <= total_calls


@pytest.mark.parametrize("workers", [1, 2])
def test_concurrent_calls_share_round_trips(workers: int) -> None:
    threads, each = 8, 40
    errors: list[str] = []
    with EnginePool(workers=workers, timeout_s=10.0) as p:
        p.warm_up()
        trips, sent = p.round_trips, p.inputs_sent

        def caller(k: int) -> Callable[[], None]:
            def run() -> None:
                for i in range(each):
                    data = {"amount": (i * 131 + k * 17) % 9000, "has_receipt": i % 3 == 0,
                            "category": ["meals", "hardware"][(i + k) % 2]}
                    if (e := _agrees(EXPENSES, data, p.evaluate(EXPENSES, data))) is not None:
                        errors.append(e)
            return run

        _in_threads([caller(k) for k in range(threads)])
        assert errors == []
        assert p.inputs_sent - sent == threads * each
        assert p.round_trips - trips < threads * each  # gathered: fewer round trips than calls


def test_a_caller_alone_sends_at_once_one_round_trip_per_call() -> None:
    with EnginePool(workers=2) as p:
        for i in range(5):
            assert p.evaluate(EXPENSES, {"amount": i}).fired_ids == ("small-expense",)
        assert (p.round_trips, p.inputs_sent) == (5, 5)


def test_a_gathered_round_trip_carries_at_most_one_chunk(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    sizes: list[int] = []
    with EnginePool(workers=1, batch_size=3, timeout_s=10.0) as p:
        time_limit = p._time_limit

        def spy(compiled: Any, inputs: int) -> float:
            sizes.append(inputs)
            return time_limit(compiled, inputs)

        monkeypatch.setattr(p, "_time_limit", spy)
        p.warm_up()
        p._debug_delay_s = 0.01  # round trips overlap the callers' arrivals
        errors: list[str] = []

        def caller(k: int) -> Callable[[], None]:
            def run() -> None:
                for i in range(10):
                    data = {"amount": k * 100 + i, "has_receipt": True}
                    if (e := _agrees(EXPENSES, data, p.evaluate(EXPENSES, data))) is not None:
                        errors.append(e)
            return run

        _in_threads([caller(k) for k in range(8)])
    assert errors == []
    assert sum(sizes) == 80 and max(sizes) == 3


def test_a_large_batch_still_splits_over_every_worker() -> None:
    inputs = [{"amount": (i * 37) % 9000, "has_receipt": i % 2 == 0} for i in range(1000)]
    with EnginePool(workers=2, batch_size=500, timeout_s=10.0) as p:
        got = p.evaluate_many(EXPENSES, inputs)
        assert (p.round_trips, p.inputs_sent) == (2, 1000)
        assert len(p.worker_pids()) == 2
    assert [_agrees(EXPENSES, d, g) for d, g in zip(inputs, got, strict=True)] == [None] * 1000


def _queue_behind_a_slow_call(p: EnginePool, calls: list[Callable[[], Evaluation]], delay: float
                              ) -> tuple[list[tuple[threading.Thread, list[Evaluation]]],
                                         tuple[threading.Thread, list[Evaluation]]]:
    """One call in flight on the pool's only worker (sleeping ``delay``), ``calls`` queued
    behind it."""
    trips = p.round_trips
    p._debug_delay_s = delay
    first = _background(lambda: p.evaluate(EXPENSES, {"amount": 1}))
    _wait_until(lambda: p.round_trips == trips + 1)
    queued = [_background(fn) for fn in calls]
    _wait_until(lambda: len(p._waiting) == len(calls))
    return queued, first


def test_a_worker_killed_during_a_gathered_round_trip_costs_no_caller_its_decision() -> None:
    with EnginePool(workers=1, timeout_s=10.0) as p:
        p.warm_up()
        inputs = [{"amount": 40 * k, "has_receipt": k % 2 == 0, "category": "hardware"}
                  for k in range(6)]
        queued, first = _queue_behind_a_slow_call(
            p, [lambda d=d: p.evaluate(EXPENSES, d) for d in inputs], delay=0.5)
        trips, sent = p.round_trips, p.inputs_sent
        _wait_until(lambda: p.round_trips == trips + 1)  # the six, gathered, in flight
        assert p.inputs_sent - sent == 6
        p._debug_delay_s = 0.0
        (pid,) = p.worker_pids()
        os.kill(pid, signal.SIGKILL)
        for t, _ in [first, *queued]:
            t.join(30)
        assert not first[1][0].fallback
        for data, (t, out) in zip(inputs, queued, strict=True):
            assert not t.is_alive()
            assert _agrees(EXPENSES, data, out[0]) is None  # retried alone on a new worker
        assert pid not in p.worker_pids()


def test_workers_killed_at_random_under_gathering_give_right_answers_or_fallbacks() -> None:
    stop = threading.Event()
    kills: list[int] = []
    wrong: list[str] = []
    answered = fellback = 0
    count = threading.Lock()
    with EnginePool(workers=2, timeout_s=10.0) as p:
        p.warm_up()

        def caller(k: int) -> Callable[[], None]:
            def run() -> None:
                nonlocal answered, fellback
                i = 0
                while not stop.is_set():
                    i += 1
                    data = {"amount": (i * 97 + k) % 9000, "has_receipt": i % 2 == 0}
                    got = p.evaluate(EXPENSES, data)
                    if got.fallback:
                        reason = got.fallback_reason or ""
                        if got.input != data or not any(
                                s in reason for s in ("stopped unexpectedly", "could not start",
                                                      "could not be reached")):
                            wrong.append(f"{data}: {got.input} {reason}")
                        with count:
                            fellback += 1
                    else:
                        if (e := _agrees(EXPENSES, data, got)) is not None:
                            wrong.append(e)
                        with count:
                            answered += 1
            return run

        def killer() -> None:
            rnd = random.Random(7)
            try:
                while len(kills) < 6:
                    time.sleep(0.25)
                    pids = p.worker_pids()
                    if pids:
                        pid = rnd.choice(pids)
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            continue
                        kills.append(pid)
                time.sleep(0.5)
            finally:
                stop.set()

        _in_threads([caller(k) for k in range(8)] + [killer])
        assert wrong == []
        assert len(kills) == 6 and answered > 100
        assert p.round_trips < answered + fellback  # calls were gathered
        assert not p.evaluate(EXPENSES, {"amount": 1}).fallback


def test_a_timeout_in_a_gathered_round_trip_falls_back_for_each_caller_within_the_bound(
        ) -> None:
    # No time added for loading the ruleset into the fresh worker the gathered calls go to.
    with EnginePool(workers=1, timeout_s=0.5, load_timeout_s=0.0) as p:
        p.warm_up()
        inputs = [{"amount": 10 * k} for k in range(5)]
        started = time.monotonic()
        queued, first = _queue_behind_a_slow_call(
            p, [lambda d=d: p.evaluate(EXPENSES, d) for d in inputs], delay=30.0)
        trips, sent = p.round_trips, p.inputs_sent
        for t, _ in [first, *queued]:
            t.join(20)
        elapsed = time.monotonic() - started
        assert first[1][0].fallback_reason == "engine timed out after 0.5 s"
        for data, (t, out) in zip(inputs, queued, strict=True):
            assert not t.is_alive()
            assert out[0].fallback and out[0].input == data
            assert out[0].fallback_reason == "engine timed out after 0.5 s"
        assert (p.round_trips - trips, p.inputs_sent - sent) == (1, 5)  # one gathered trip
        assert elapsed < 10.0  # two time limits and a worker's start, not five time limits
        p._debug_delay_s = 0.0
        assert p.evaluate(EXPENSES, {"amount": 1}).fired_ids == ("small-expense",)


def test_an_input_that_cannot_be_sent_costs_only_its_own_caller_a_fallback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[int] = []
    with EnginePool(workers=1, timeout_s=10.0) as p:
        exchange = p._exchange

        def spy(worker: Any, compiled: Any, inputs: Any) -> Any:
            tried.append(len(inputs))
            return exchange(worker, compiled, inputs)

        monkeypatch.setattr(p, "_exchange", spy)
        p.warm_up()
        good = [{"amount": 20}, {"amount": 120}, {"amount": 9000, "has_receipt": True}]
        bad = {"amount": 1, "junk": threading.Lock()}
        queued, first = _queue_behind_a_slow_call(
            p, [lambda: p.evaluate_many(EXPENSES, good[:2])[1],
                lambda: p.evaluate(EXPENSES, bad),
                lambda: p.evaluate(EXPENSES, good[2])], delay=0.3)
        (pid,) = p.worker_pids()
        p._debug_delay_s = 0.0
        for t, _ in [first, *queued]:
            t.join(30)
        (_, [second]), (_, [unsendable]), (_, [third]) = queued
        assert _agrees(EXPENSES, good[1], second) is None
        assert _agrees(EXPENSES, good[2], third) is None
        assert unsendable.fallback and "could not be sent" in (unsendable.fallback_reason or "")
        assert p.worker_pids() == [pid]  # nothing reached the worker: it was kept
    assert tried == [1, 4, 2, 1, 1]  # gathered, then each caller alone


def test_an_engine_error_in_a_gathered_round_trip_costs_only_its_cause_a_fallback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # durable failing on one input (simulated: the worker would report it and exit).
    with EnginePool(workers=1, timeout_s=10.0) as p:
        exchange = p._exchange

        def failing_on_poison(worker: Any, compiled: Any, inputs: Any) -> Any:
            if any("poison" in data for data in inputs):
                raise pool_module._EngineError("engine error: RuntimeError: boom")
            return exchange(worker, compiled, inputs)

        monkeypatch.setattr(p, "_exchange", failing_on_poison)
        p.warm_up()
        good = [{"amount": 20}, {"amount": 9000, "has_receipt": True}]
        queued, first = _queue_behind_a_slow_call(
            p, [lambda: p.evaluate(EXPENSES, good[0]),
                lambda: p.evaluate(EXPENSES, {"amount": 1, "poison": 1}),
                lambda: p.evaluate(EXPENSES, good[1])], delay=0.3)
        trips = p.round_trips
        p._debug_delay_s = 0.0
        for t, _ in [first, *queued]:
            t.join(30)
        (_, [one]), (_, [poisoned]), (_, [two]) = queued
        assert _agrees(EXPENSES, good[0], one) is None
        assert _agrees(EXPENSES, good[1], two) is None
        assert poisoned.fallback and poisoned.fallback_reason == "engine error: RuntimeError: boom"
        assert p.round_trips - trips == 2  # the two good calls, each alone


def test_a_caller_no_round_trip_takes_falls_back_after_the_acquire_timeout() -> None:
    with EnginePool(workers=1, timeout_s=10.0, acquire_timeout_s=0.3) as p:
        p.warm_up()
        queued, first = _queue_behind_a_slow_call(
            p, [lambda: p.evaluate(EXPENSES, {"amount": 2})], delay=2.0)
        [(t, out)] = queued
        t.join(1.5)
        assert not t.is_alive()
        assert out[0].fallback
        assert out[0].fallback_reason == "no engine worker free within 0.3 s"
        assert len(p._waiting) == 0
        first[0].join(10)
        assert not first[1][0].fallback


def test_closing_the_pool_answers_the_callers_still_waiting() -> None:
    p = EnginePool(workers=1, timeout_s=10.0)
    p.warm_up()
    queued, first = _queue_behind_a_slow_call(
        p, [lambda: p.evaluate(EXPENSES, {"amount": 2})] * 3, delay=1.0)
    p.close()
    for t, out in queued:
        t.join(5)
        assert not t.is_alive()
        assert out[0].fallback and "closed" in (out[0].fallback_reason or "")
    first[0].join(10)
    assert p.worker_pids() == []
