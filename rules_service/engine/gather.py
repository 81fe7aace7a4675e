"""Calls waiting to share an engine round trip (flat combining), for EnginePool.

A round trip to an engine worker costs far more than one input in it, so calls that find
every worker busy wait here, by compiled ruleset, instead of each waiting for a worker of its
own. When a worker comes free the pool hands it to the call waiting longest
(``Gathering.next_leader`` then ``Call.lead``); that call's thread takes every call waiting
for its ruleset that fits in one round trip (``Gathering.take``), sends them together and
``finish``es each with its own results. Every waiting thread is woken exactly once, by its
own event: with its results, or with a worker to lead a round trip on.

Nothing here locks: the pool calls a Gathering only under its own lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from rules_service.domain.decision import Evaluation
from rules_service.domain.ruleset import Ruleset
from rules_service.engine.compiler import CompiledRuleset

C = TypeVar("C")  # what the pool hands a leader: its hold on a worker


class Call(Generic[C]):
    """One caller's inputs for one ruleset: their results once answered, or the worker the
    caller was handed to lead a round trip with."""

    __slots__ = ("ruleset", "compiled", "inputs", "results", "claim", "_event")

    def __init__(self, ruleset: Ruleset, compiled: CompiledRuleset,
                 inputs: Sequence[dict[str, Any]]) -> None:
        self.ruleset = ruleset
        self.compiled = compiled
        self.inputs = inputs
        self.results: list[Evaluation] | None = None
        self.claim: C | None = None
        self._event: threading.Event | None = None  # made only for a call that waits

    @property
    def key(self) -> str:
        """Calls with the same key can share a round trip (the compiled form's hash)."""
        return self.compiled.key

    @property
    def size(self) -> int:
        return len(self.inputs)

    def finish(self, results: list[Evaluation]) -> None:
        """Answers the call, waking its thread if it waits."""
        self.results = results
        if self._event is not None:
            self._event.set()

    def lead(self, claim: C) -> None:
        """Wakes the waiting thread to send a round trip itself, with ``claim``."""
        self.claim = claim
        if self._event is not None:
            self._event.set()

    def wait(self, timeout: float | None) -> bool:
        """Whether the call was answered or handed a claim within ``timeout`` seconds."""
        return self._event is None or self._event.wait(timeout)

    def answer(self) -> list[Evaluation]:
        """The results (a call is always answered before its thread returns)."""
        if self.results is None:
            raise RuntimeError("engine call was never answered")
        return self.results


class Gathering(Generic[C]):
    """Calls waiting for a worker, by ruleset key; the ruleset waiting longest comes first."""

    def __init__(self) -> None:
        self._by_key: OrderedDict[str, deque[Call[C]]] = OrderedDict()

    def __bool__(self) -> bool:
        return bool(self._by_key)

    def __len__(self) -> int:
        return sum(len(calls) for calls in self._by_key.values())

    def add(self, call: Call[C]) -> None:
        """Queues the call; its thread then waits with ``call.wait``."""
        call._event = threading.Event()
        self._by_key.setdefault(call.key, deque()).append(call)

    def next_leader(self) -> Call[C]:
        """Removes and returns the oldest call of the ruleset waiting longest."""
        key, calls = next(iter(self._by_key.items()))
        call = calls.popleft()
        if not calls:
            del self._by_key[key]
        return call

    def take(self, leader: Call[C], limit: int) -> list[Call[C]]:
        """The leader, then the calls waiting for its ruleset, oldest first, whose inputs fit
        within ``limit`` inputs in all. Calls left over keep their order; their ruleset goes
        behind the others waiting."""
        taken = [leader]
        waiting = self._by_key.pop(leader.key, None)
        if waiting:
            room = limit - leader.size
            left: deque[Call[C]] = deque()
            for call in waiting:
                if call.size <= room:
                    taken.append(call)
                    room -= call.size
                else:
                    left.append(call)
            if left:
                self._by_key[leader.key] = left
        return taken

    def remove(self, call: Call[C]) -> bool:
        """Withdraws a call still waiting (not taken, not leading); whether it was waiting."""
        waiting = self._by_key.get(call.key)
        if waiting is None or call not in waiting:
            return False
        waiting.remove(call)
        if not waiting:
            del self._by_key[call.key]
        return True

    def drain(self) -> list[Call[C]]:
        """Removes and returns every waiting call."""
        calls = [call for waiting in self._by_key.values() for call in waiting]
        self._by_key.clear()
        return calls
