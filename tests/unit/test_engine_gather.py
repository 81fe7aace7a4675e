"""The queue of calls waiting to share an engine round trip (no worker processes)."""

from __future__ import annotations

import threading

from rules_service.domain.decision import fallback
from rules_service.engine import compile_ruleset
from rules_service.engine.gather import Call, Gathering
from tests.unit.engine_support import field, ruleset

A = ruleset((field("x", "integer"),), [("big", "x > 1", "reject")], name="a")
B = ruleset((field("x", "integer"),), [("small", "x < 1", "reject")], name="b")
COMPILED_A, COMPILED_B = compile_ruleset(A), compile_ruleset(B)


def _call(rs_b: bool = False, n: int = 1) -> Call[str]:
    rs, compiled = (B, COMPILED_B) if rs_b else (A, COMPILED_A)
    return Call(rs, compiled, [{"x": i} for i in range(n)])


def test_a_leader_takes_the_calls_for_its_ruleset_that_fit_oldest_first() -> None:
    waiting: Gathering[str] = Gathering()
    a1, b1, a2, a3, a4 = _call(n=2), _call(True), _call(n=3), _call(), _call()
    for call in (a1, b1, a2, a3, a4):
        waiting.add(call)
    leader = waiting.next_leader()
    assert leader is a1 and len(waiting) == 4
    # a2 (3 inputs) does not fit beside a1's 2 within 4; a3 and a4 do; a2 keeps waiting.
    assert waiting.take(leader, 4) == [a1, a3, a4]
    assert len(waiting) == 2
    # Ruleset a's left-over call now waits behind ruleset b.
    assert waiting.next_leader() is b1
    assert waiting.next_leader() is a2
    assert not waiting


def test_a_leader_with_nothing_waiting_takes_only_itself() -> None:
    waiting: Gathering[str] = Gathering()
    alone = _call()
    assert waiting.take(alone, 500) == [alone]
    other = _call(True)
    waiting.add(other)
    assert waiting.take(alone, 500) == [alone] and waiting.next_leader() is other


def test_a_call_can_be_withdrawn_only_while_it_waits() -> None:
    waiting: Gathering[str] = Gathering()
    first, second = _call(), _call()
    waiting.add(first)
    waiting.add(second)
    assert waiting.remove(second)
    assert not waiting.remove(second)
    assert waiting.take(waiting.next_leader(), 10) == [first]
    assert not waiting.remove(first) and not waiting


def test_drain_empties_the_queue() -> None:
    waiting: Gathering[str] = Gathering()
    calls = [_call(), _call(True), _call()]
    for call in calls:
        waiting.add(call)
    assert sorted(map(id, waiting.drain())) == sorted(map(id, calls))
    assert not waiting and len(waiting) == 0


def test_a_waiting_thread_is_woken_once_with_its_results_or_a_claim() -> None:
    waiting: Gathering[str] = Gathering()
    answered, leading = _call(), _call()
    waiting.add(answered)
    waiting.add(leading)
    assert not answered.wait(0.01)
    results = [fallback(A, "test", {"x": 0})]
    woke: list[bool] = []
    t = threading.Thread(target=lambda: woke.append(answered.wait(5)))
    t.start()
    answered.finish(results)
    t.join(5)
    assert woke == [True] and answered.answer() is results and answered.claim is None
    leading.lead("worker 1")
    assert leading.wait(0) and leading.claim == "worker 1" and leading.results is None


def test_a_call_that_never_waited_needs_no_event() -> None:
    call = _call()
    call.finish([])
    assert call.wait(0) and call.answer() == []
