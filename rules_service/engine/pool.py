"""A pool of engine worker processes: durable rules never runs in the calling process.

durable-rules can hang in C, segfault, or fail on a Host shared between threads (see
compiler.py and the hazards probe). Each worker is a fresh interpreter owning one durable
Host; a thread holds a worker for a round trip, so no Host ever sees two threads. A worker
that times out, dies or reports an engine error is killed and replaced. An evaluation whose
worker died (killed while starting or while answering) is tried once more on another
worker; it gets the ruleset's fallback outcome, with the reason, only when that fails too,
when the engine times out, or when it reports an error.

Concurrent calls for the same compiled ruleset share round trips, like a database's group
commit: a round trip's fixed cost dwarfs an input's (measured on 2 CPUs, one input alone
costs ~60-90 us of CPU in the calling process and ~150 us in the worker; sent 8 at a time,
~20 us and ~60-80 us each). A call that finds a worker free and no call waiting sends its
inputs at once: no timer, no added latency when the pool is quiet. Calls that find every
worker busy wait, by ruleset (engine/gather.py). When a round trip ends, the thread that
sent it hands its worker to the call waiting longest and returns with its own results; the
woken thread sends, in one round trip, every call waiting for its ruleset that fits in one
chunk, then wakes each with its own results (one event per call, so no thundering herd). A
gathered round trip's time limit grows with the work it carries. When it fails in a way one
call's inputs could have caused (an input that cannot be sent, an engine error, a dead
worker), each call is tried alone, so none gets a fallback it would not have got alone; a
timeout gives every call in it the fallback.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import Any

from rules_service.domain.decision import Evaluation, decide, fallback
from rules_service.domain.ruleset import Ruleset
from rules_service.engine.compiler import CompiledRuleset, EngineCompileError, compile_ruleset
from rules_service.engine.gather import Call, Gathering

_POOLS: weakref.WeakSet[EnginePool] = weakref.WeakSet()

WORK_PER_TIMEOUT = 10_000
"""Input x durable-rule assertions one round trip may carry within one timeout_s (measured:
a 10,000-rule ruleset with most rules firing takes about 0.35 s per input)."""


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection
    pid: int
    known: OrderedDict[str, None] = field(default_factory=OrderedDict)
    evaluations: int = 0
    alive: bool = True


class _Failure(Exception):
    """The engine could not decide a chunk; the message is the fallback reason."""


class _WorkerLost(_Failure):
    """The worker process died before it answered (not a hang, not an engine error): the
    chunk may be tried once more on another worker."""


class _EngineError(_Failure):
    """The worker reported an error of durable itself (and exits): one input may cause it."""


class _Unsendable(_Failure):
    """The inputs could not be pickled; nothing reached the worker, which stays usable."""


@dataclass
class _Claim:
    """A thread's hold on one of the pool's worker slots: a running worker, or (worker None)
    a free slot to start one in."""

    worker: _Worker | None = None


class EnginePool:
    """Evaluates rulesets with durable rules in worker processes; thread-safe.

    ``round_trips`` and ``inputs_sent`` count the requests sent to workers in this process
    and the inputs they carried (for monitoring, benchmarks and tests).
    """

    def __init__(self, workers: int = 2, timeout_s: float = 2.0, *,
                 start_timeout_s: float = 60.0, acquire_timeout_s: float = 30.0,
                 batch_size: int = 500, cache_size: int = 32,
                 recycle_after: int | None = 1_000_000, load_timeout_s: float = 60.0,
                 index: bool = True) -> None:
        if workers < 1:
            raise ValueError("an engine pool needs at least one worker")
        self.workers = workers
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self.acquire_timeout_s = acquire_timeout_s
        self.batch_size = max(1, batch_size)
        self.cache_size = max(1, cache_size)
        self.recycle_after = recycle_after
        self.load_timeout_s = load_timeout_s
        self.index = index  # assert each input only where a rule can fire (engine/index.py)
        self._reset_after_fork()
        self._compiled: OrderedDict[int, tuple[Ruleset, CompiledRuleset | EngineCompileError]]
        self._compiled = OrderedDict()
        self._closed = False
        # Test hooks: every worker sleeps this long before evaluating (simulates a hang);
        # called with each new worker's pid before it has reported ready.
        self._debug_delay_s = 0.0
        self._debug_on_start: Callable[[int], None] | None = None
        _POOLS.add(self)

    def _reset_after_fork(self) -> None:
        # Workers, locks and waiting calls belong to the process that created them; a forked
        # child (e.g. a gunicorn worker after preload) starts its own.
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._busy: set[int] = set()
        self._all: dict[int, _Worker] = {}
        self._starting = 0  # slots claimed without a running worker (one may be starting)
        self._waiting: Gathering[_Claim] = Gathering()
        self.round_trips = 0
        self.inputs_sent = 0

    # -- public API --------------------------------------------------------------------------

    def evaluate(self, ruleset: Ruleset, data: dict[str, Any]) -> Evaluation:
        """The decision for one input (the ruleset's fallback if the engine cannot decide)."""
        return self.evaluate_many(ruleset, [data])[0]

    def evaluate_many(self, ruleset: Ruleset, inputs: Sequence[dict[str, Any]]
                      ) -> list[Evaluation]:
        """Decisions for many inputs, in order, in as few worker round trips as possible."""
        inputs = list(inputs)
        if not inputs:
            return []
        try:
            if os.getpid() != self._pid:
                self._reset_after_fork()
            compiled = self._compile(ruleset)
            if isinstance(compiled, EngineCompileError):
                reason = f"ruleset cannot run on the engine: {compiled}"
                return [fallback(ruleset, reason, data) for data in inputs]
            chunks = list(_chunks(inputs, self._chunk_size(compiled)))
            if len(chunks) == 1 or self.workers == 1:
                return [ev for chunk in chunks for ev in self._call(ruleset, compiled, chunk)]
            # A large batch keeps every worker busy: one chunk per worker at a time.
            with ThreadPoolExecutor(max_workers=min(self.workers, len(chunks))) as threads:
                parts = threads.map(lambda c: self._call(ruleset, compiled, c), chunks)
                return [ev for part in parts for ev in part]
        except Exception as exc:  # the caller gets a fallback, never a traceback
            reason = f"engine error: {type(exc).__name__}: {exc}"
            return [_safe_fallback(ruleset, reason, data) for data in inputs]

    def warm_up(self) -> None:
        """Starts every worker now, so that no request pays for a worker's start."""
        if os.getpid() != self._pid:
            self._reset_after_fork()
        claims: list[_Claim] = []
        with self._lock:
            while not self._closed and (claim := self._claim_locked()) is not None:
                claims.append(claim)
        try:
            for claim in claims:
                if claim.worker is None:
                    self._start_in(claim)
        except _Failure:
            pass  # a worker that cannot start now is started (or reported) on first use
        finally:
            for claim in claims:
                self._release(claim)

    def close(self) -> None:
        """Stops every worker; later calls, and calls still waiting, get the fallback outcome."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            waiting = self._waiting.drain()
        for call in waiting:
            call.finish(_fallbacks(call, "engine pool is closed"))
        for worker in idle:
            self._stop(worker)

    def __enter__(self) -> EnginePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (for monitoring and tests)."""
        with self._lock:
            return sorted(w.pid for w in self._all.values() if w.alive)

    # -- internals ---------------------------------------------------------------------------

    def _compile(self, ruleset: Ruleset) -> CompiledRuleset | EngineCompileError:
        # Keyed by identity (and the object kept alive in the entry): rulesets built by hand
        # may share an empty definition, so content hashes cannot tell them apart.
        with self._lock:
            entry = self._compiled.get(id(ruleset))
            if entry is not None and entry[0] is ruleset:
                self._compiled.move_to_end(id(ruleset))
                return entry[1]
        result: CompiledRuleset | EngineCompileError
        try:
            result = compile_ruleset(ruleset, index=self.index)
        except EngineCompileError as exc:
            result = exc
        with self._lock:
            self._compiled[id(ruleset)] = (ruleset, result)
            while len(self._compiled) > 256:
                self._compiled.popitem(last=False)
        return result

    def _chunk_size(self, compiled: CompiledRuleset) -> int:
        # An evaluation costs about one unit per durable rule it is asserted against (at most
        # work_per_input, every rule without the index); a round trip carries at most
        # WORK_PER_TIMEOUT units (or one input).
        return max(1, min(self.batch_size,
                          WORK_PER_TIMEOUT // max(1, compiled.work_per_input)))

    def _time_limit(self, compiled: CompiledRuleset, inputs: int) -> float:
        """The time a round trip may take: timeout_s per WORK_PER_TIMEOUT units of work."""
        return self.timeout_s * max(1.0, inputs * compiled.work_per_input / WORK_PER_TIMEOUT)

    # -- gathering calls ---------------------------------------------------------------------

    def _call(self, ruleset: Ruleset, compiled: CompiledRuleset,
              chunk: Sequence[dict[str, Any]]) -> list[Evaluation]:
        """Decisions for at most one chunk of inputs: sent at once when a worker is free and
        no call waits, otherwise gathered with the other calls waiting for the ruleset."""
        call: Call[_Claim] = Call(ruleset, compiled, chunk)
        with self._lock:
            closed = self._closed
            claim = None if closed or self._waiting else self._claim_locked()
            if claim is None and not closed:
                self._waiting.add(call)
        if closed:
            return _fallbacks(call, "engine pool is closed")
        if claim is None:
            claim = self._wait(call)
            if claim is None:
                return call.answer()
        self._lead(call, claim)
        return call.answer()

    def _wait(self, call: Call[_Claim]) -> _Claim | None:
        """Waits until another thread answered the call (None) or handed it a claim to lead
        a round trip with. A call no round trip took within acquire_timeout_s falls back."""
        if not call.wait(self.acquire_timeout_s):
            with self._lock:
                expired = self._waiting.remove(call)
            if expired:
                reason = f"no engine worker free within {self.acquire_timeout_s} s"
                call.finish(_fallbacks(call, reason))
                return None
            # Taken into a round trip (or just handed a claim): its leader answers within the
            # round trip's own time limits.
            call.wait(None)
        return call.claim

    def _dispatch_locked(self) -> None:
        """Hands free workers (or free slots) to the calls waiting longest; each leads."""
        while self._waiting and not self._closed:
            claim = self._claim_locked()
            if claim is None:
                return
            self._waiting.next_leader().lead(claim)

    def _lead(self, call: Call[_Claim], claim: _Claim) -> None:
        """Sends the call, with the calls waiting for its ruleset that fit in one chunk, on
        the claimed worker; answers every one of them, then gives the claim back."""
        with self._lock:
            calls = (self._waiting.take(call, self._chunk_size(call.compiled))
                     if self._waiting else [call])
        try:
            self._answer(claim, calls)
        except BaseException as exc:  # never leave a gathered caller waiting
            reason = f"engine error: {type(exc).__name__}: {exc}"
            for unanswered in calls:
                if unanswered.results is None:
                    unanswered.finish(_fallbacks(unanswered, reason))
            if not isinstance(exc, Exception):
                raise
        finally:
            self._release(claim)

    def _answer(self, claim: _Claim, calls: list[Call[_Claim]]) -> None:
        """One round trip for the calls; each is tried alone after a failure that one call's
        inputs could have caused, or (a lone call) once more after its worker died."""
        compiled = calls[0].compiled
        inputs = [data for call in calls for data in call.inputs]
        started = time.perf_counter()
        try:
            replies = self._round_trip(claim, compiled, inputs)
        except _Failure as failure:
            alone = isinstance(failure, _WorkerLost) or (
                len(calls) > 1 and isinstance(failure, _EngineError | _Unsendable))
            if not alone:
                ms = (time.perf_counter() - started) * 1000 / len(inputs)
                for call in calls:
                    call.finish(_fallbacks(call, str(failure), ms))
                return
            for call in calls:
                self._answer_alone(claim, call)
            return
        ms = (time.perf_counter() - started) * 1000 / len(inputs)
        offset = 0
        for call in calls:
            call.finish(_decisions(call, replies[offset:offset + call.size], ms))
            offset += call.size

    def _answer_alone(self, claim: _Claim, call: Call[_Claim]) -> None:
        started = time.perf_counter()
        try:
            replies = self._round_trip(claim, call.compiled, call.inputs)
        except _Failure as failure:
            ms = (time.perf_counter() - started) * 1000 / call.size
            call.finish(_fallbacks(call, str(failure), ms))
            return
        ms = (time.perf_counter() - started) * 1000 / call.size
        call.finish(_decisions(call, replies, ms))

    # -- workers -----------------------------------------------------------------------------

    def _round_trip(self, claim: _Claim, compiled: CompiledRuleset,
                    inputs: Sequence[dict[str, Any]]) -> list[tuple[str, Any]]:
        """One request on the claimed worker (started first if the claim holds a free slot).
        A worker that fails is killed; the claim keeps its slot for another try."""
        worker = claim.worker if claim.worker is not None else self._start_in(claim)
        try:
            return self._exchange(worker, compiled, inputs)
        except _Unsendable:
            raise  # nothing reached the worker
        except BaseException:  # a failed worker, or a reply that broke off: never reused
            claim.worker = None
            _kill(worker.process, worker.conn)
            with self._lock:
                self._busy.discard(worker.pid)
                self._all.pop(worker.pid, None)
                worker.alive = False
                self._starting += 1  # the claim keeps the dead worker's slot
            raise

    def _exchange(self, worker: _Worker, compiled: CompiledRuleset,
                  inputs: Sequence[dict[str, Any]]) -> list[tuple[str, Any]]:
        wire = None if compiled.key in worker.known else compiled.to_wire()
        evict: list[str] = []
        if wire is not None:
            evict = list(worker.known)[:max(0, len(worker.known) - self.cache_size + 1)]
        try:  # pickled first: an input that cannot be pickled leaves the worker untouched
            message = ForkingPickler.dumps(("eval", compiled.key, wire, evict, list(inputs),
                                            self._debug_delay_s))
        except Exception as exc:
            raise _Unsendable(f"input could not be sent to the engine: {exc}") from None
        try:
            worker.conn.send_bytes(message)
        except (OSError, ValueError) as exc:
            raise _WorkerLost(f"engine worker could not be reached: {exc}") from None
        for key in evict:
            worker.known.pop(key, None)
        with self._lock:
            self.round_trips += 1
            self.inputs_sent += len(inputs)
        # Loading thousands of rules into a fresh worker takes seconds; that is not a hang.
        limit = self._time_limit(compiled, len(inputs)) \
            + (self.load_timeout_s if wire is not None else 0.0)
        try:
            ready = worker.conn.poll(limit)
        except (OSError, EOFError):
            ready = True  # recv below reports the dead worker
        if not ready:
            raise _Failure(f"engine timed out after {limit:g} s")
        try:
            reply = worker.conn.recv()
        except (OSError, EOFError):
            try:
                code = worker.process.wait(0.5)
            except subprocess.TimeoutExpired:
                code = None
            raise _WorkerLost(f"engine worker stopped unexpectedly (exit code {code})"
                              ) from None
        if reply[0] != "ok":
            raise _EngineError(f"engine error: {reply[1] if len(reply) > 1 else reply}")
        worker.known[compiled.key] = None
        worker.known.move_to_end(compiled.key)
        worker.evaluations += len(inputs)
        return list(reply[1])

    def _claim_locked(self) -> _Claim | None:
        """A live idle worker, else a free slot to start one in; None when every slot is
        held. The caller holds the lock."""
        worker = self._idle_worker_locked()
        if worker is not None:
            return _Claim(worker)
        if len(self._all) + self._starting < self.workers:
            self._starting += 1
            return _Claim()
        return None

    def _idle_worker_locked(self) -> _Worker | None:
        while self._idle:
            worker = self._idle.pop()
            if worker.process.poll() is None:
                self._busy.add(worker.pid)
                return worker
            # Died while idle (killed from outside): replace it, nothing was lost.
            self._all.pop(worker.pid, None)
            worker.alive = False
            _kill(worker.process, worker.conn)
        return None

    def _start_in(self, claim: _Claim) -> _Worker:
        """Fills a claim's free slot: with an idle worker if one is free (the slot going back
        to the pool), else with a worker started now."""
        with self._lock:
            if self._closed:
                raise _Failure("engine pool is closed")
            worker = self._idle_worker_locked()
            if worker is not None:
                self._starting -= 1  # the claim's free slot goes back to the pool
            self._dispatch_locked()
        if worker is None:
            worker = self._start()  # on failure the claim keeps the free slot
            with self._lock:
                self._starting -= 1
                self._all[worker.pid] = worker
                self._busy.add(worker.pid)
        claim.worker = worker
        return worker

    def _start(self) -> _Worker:
        # A fresh interpreter (not fork, and not multiprocessing's spawn, which re-imports the
        # caller's __main__ script) running worker.serve on one end of a socket pair.
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if isinstance(p, str) and p)
        code = f"from rules_service.engine.worker import serve; serve({child_sock.fileno()})"
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", code], pass_fds=(child_sock.fileno(),),
                stdin=subprocess.DEVNULL, env=env, close_fds=True)
        except OSError as exc:
            parent_sock.close()
            child_sock.close()
            raise _Failure(f"engine worker could not start: {exc}") from None
        child_sock.close()
        parent = Connection(parent_sock.detach())
        if self._debug_on_start is not None:
            self._debug_on_start(process.pid)
        try:
            if not parent.poll(self.start_timeout_s):
                raise _Failure(f"engine worker did not start within {self.start_timeout_s} s")
            reply = parent.recv()
            if reply[0] != "ready":
                raise _Failure(f"engine worker could not start: {reply[1:]}")
        except (OSError, EOFError):
            _kill(process, parent)
            raise _WorkerLost("engine worker could not start (exit code "
                              f"{process.returncode})") from None
        except _Failure:
            _kill(process, parent)
            raise
        return _Worker(process, parent, process.pid)

    def _release(self, claim: _Claim) -> None:
        """Gives a claim back: its worker to the call waiting longest, else idle (stopped
        when due for recycling or the pool is closed); a free slot back to the pool."""
        worker, claim.worker = claim.worker, None
        stop = False
        with self._lock:
            if worker is None:
                self._starting -= 1
            else:
                self._busy.discard(worker.pid)
                stop = self._closed or (self.recycle_after is not None
                                        and worker.evaluations >= self.recycle_after)
                if stop:
                    self._all.pop(worker.pid, None)
                    worker.alive = False
                else:
                    self._idle.append(worker)
            self._dispatch_locked()
        if worker is not None and stop:
            self._stop(worker)

    def _stop(self, worker: _Worker) -> None:
        worker.alive = False
        with contextlib.suppress(Exception):  # killed below anyway
            worker.conn.send(("stop",))
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(1.0)
        _kill(worker.process, worker.conn)
        with self._lock:
            self._all.pop(worker.pid, None)


def _kill(process: subprocess.Popen[bytes], conn: Connection) -> None:
    try:
        if process.poll() is None:
            process.kill()
        process.wait(5.0)
    except Exception:  # noqa: S110 - best effort on a process we are abandoning
        pass
    with contextlib.suppress(Exception):
        conn.close()


def _safe_fallback(ruleset: Ruleset, reason: str, data: Any, ms: float = 0.0) -> Evaluation:
    try:
        return fallback(ruleset, reason, data, ms)
    except Exception:  # data that is not a mapping cannot be echoed back
        return fallback(ruleset, reason, None, ms)


def _fallbacks(call: Call[_Claim], reason: str, ms: float = 0.0) -> list[Evaluation]:
    """The ruleset's fallback outcome for each of the call's inputs."""
    return [_safe_fallback(call.ruleset, reason, data, ms) for data in call.inputs]


def _decisions(call: Call[_Claim], replies: Sequence[tuple[str, Any]], ms: float
               ) -> list[Evaluation]:
    """The call's decisions from a worker's replies to its inputs, in order."""
    ruleset, compiled = call.ruleset, call.compiled
    try:
        out: list[Evaluation] = []
        for data, (kind, value) in zip(call.inputs, replies, strict=True):
            if kind == "fired":
                ids = [compiled.rule_ids[compiled.rule_index[name]] for name in value]
                out.append(decide(ruleset, ids, data, ms))
            else:
                out.append(fallback(ruleset, str(value), data, ms))
        return out
    except Exception as exc:  # e.g. an input that is not a mapping
        return _fallbacks(call, f"engine error: {type(exc).__name__}: {exc}", ms)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


@atexit.register
def _close_all() -> None:
    for pool in list(_POOLS):
        if pool._pid == os.getpid():
            pool.close()
