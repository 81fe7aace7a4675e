"""A pool of engine worker processes: durable rules never runs in the calling process.

durable-rules can hang in C, segfault, or fail on a Host shared between threads (see
compiler.py and the hazards probe). Each worker is a fresh interpreter owning one durable
Host; a caller thread takes a worker for one request, so no Host ever sees two threads. A
worker that times out, dies or reports an engine error is killed and replaced. An
evaluation whose worker died (killed while starting or while answering) is tried once more
on another worker; it gets the ruleset's fallback outcome, with the reason, only when that
fails too, when the engine times out, or when it reports an error.
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
from typing import Any

from rules_service.domain.decision import Evaluation, decide, fallback
from rules_service.domain.ruleset import Ruleset
from rules_service.engine.compiler import CompiledRuleset, EngineCompileError, compile_ruleset

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


class EnginePool:
    """Evaluates rulesets with durable rules in worker processes; thread-safe."""

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
        # Workers and locks belong to the process that created them; a forked child (e.g. a
        # gunicorn worker after preload) starts its own.
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._available = threading.Condition(self._lock)
        self._idle: list[_Worker] = []
        self._busy: set[int] = set()
        self._all: dict[int, _Worker] = {}
        self._starting = 0

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
                return [ev for chunk in chunks
                        for ev in self._run_chunk(ruleset, compiled, chunk)]
            # A large batch keeps every worker busy: one chunk per worker at a time.
            with ThreadPoolExecutor(max_workers=min(self.workers, len(chunks))) as threads:
                parts = threads.map(lambda c: self._run_chunk(ruleset, compiled, c), chunks)
                return [ev for part in parts for ev in part]
        except Exception as exc:  # the caller gets a fallback, never a traceback
            reason = f"engine error: {type(exc).__name__}: {exc}"
            return [_safe_fallback(ruleset, reason, data) for data in inputs]

    def warm_up(self) -> None:
        """Starts every worker now, so that no request pays for a worker's start."""
        if os.getpid() != self._pid:
            self._reset_after_fork()
        started: list[_Worker] = []
        try:
            for _ in range(self.workers):
                started.append(self._acquire())
        except _Failure:
            pass  # a worker that cannot start now is started (or reported) on first use
        finally:
            for worker in started:
                self._release(worker, healthy=True)

    def close(self) -> None:
        """Stops every worker; later calls get the fallback outcome."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._available.notify_all()
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

    def _run_chunk(self, ruleset: Ruleset, compiled: CompiledRuleset,
                   chunk: Sequence[dict[str, Any]]) -> list[Evaluation]:
        started = time.perf_counter()
        try:
            try:
                replies = self._round_trip(compiled, chunk)
            except _WorkerLost:
                # Its worker died, not the engine's answer: once more, on another worker.
                replies = self._round_trip(compiled, chunk)
        except _Failure as failure:
            ms = (time.perf_counter() - started) * 1000 / len(chunk)
            return [fallback(ruleset, str(failure), data, ms) for data in chunk]
        ms = (time.perf_counter() - started) * 1000 / len(chunk)
        out: list[Evaluation] = []
        for data, (kind, value) in zip(chunk, replies, strict=True):
            if kind == "fired":
                ids = [compiled.rule_ids[compiled.rule_index[name]] for name in value]
                out.append(decide(ruleset, ids, data, ms))
            else:
                out.append(fallback(ruleset, str(value), data, ms))
        return out

    def _round_trip(self, compiled: CompiledRuleset, chunk: Sequence[dict[str, Any]]
                    ) -> list[tuple[str, Any]]:
        worker = self._acquire()
        healthy = False
        try:
            wire = None if compiled.key in worker.known else compiled.to_wire()
            evict: list[str] = []
            if wire is not None:
                while len(worker.known) >= self.cache_size:
                    evict.append(worker.known.popitem(last=False)[0])
            try:
                worker.conn.send(("eval", compiled.key, wire, evict, list(chunk),
                                  self._debug_delay_s))
            except (OSError, ValueError) as exc:
                raise _WorkerLost(f"engine worker could not be reached: {exc}") from None
            except Exception as exc:  # e.g. an input that cannot be pickled
                raise _Failure(f"input could not be sent to the engine: {exc}") from None
            # Loading thousands of rules into a fresh worker takes seconds; that is not a hang.
            limit = self._time_limit(compiled, len(chunk)) \
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
                raise _Failure(f"engine error: {reply[1] if len(reply) > 1 else reply}")
            worker.known[compiled.key] = None
            worker.known.move_to_end(compiled.key)
            worker.evaluations += len(chunk)
            healthy = True
            return list(reply[1])
        finally:
            self._release(worker, healthy)

    def _acquire(self) -> _Worker:
        deadline = time.monotonic() + self.acquire_timeout_s
        with self._lock:
            while True:
                if self._closed:
                    raise _Failure("engine pool is closed")
                if self._idle:
                    worker = self._idle.pop()
                    if worker.process.poll() is not None:
                        # Died while idle (killed from outside): replace it, nothing was lost.
                        self._all.pop(worker.pid, None)
                        worker.alive = False
                        _kill(worker.process, worker.conn)
                        continue
                    self._busy.add(worker.pid)
                    return worker
                if len(self._all) + self._starting < self.workers:
                    self._starting += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _Failure(f"no engine worker free within {self.acquire_timeout_s} s")
                self._available.wait(left)
        try:
            worker = self._start()
        except BaseException:
            with self._lock:
                self._starting -= 1
                self._available.notify()
            raise
        with self._lock:
            self._starting -= 1
            self._all[worker.pid] = worker
            self._busy.add(worker.pid)
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

    def _release(self, worker: _Worker, healthy: bool) -> None:
        recycle = (self.recycle_after is not None
                   and worker.evaluations >= self.recycle_after)
        with self._lock:
            self._busy.discard(worker.pid)
            keep = healthy and not recycle and not self._closed
            if keep:
                self._idle.append(worker)
            else:
                self._all.pop(worker.pid, None)
                worker.alive = False
            self._available.notify()
        if not keep:
            if healthy:
                self._stop(worker)
            else:
                _kill(worker.process, worker.conn)

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


def _safe_fallback(ruleset: Ruleset, reason: str, data: Any) -> Evaluation:
    try:
        return fallback(ruleset, reason, data)
    except Exception:  # data that is not a mapping cannot be echoed back
        return fallback(ruleset, reason)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


@atexit.register
def _close_all() -> None:
    for pool in list(_POOLS):
        if pool._pid == os.getpid():
            pool.close()
