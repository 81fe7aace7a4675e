"""The code that runs inside an engine worker process: the only place durable rules run.

One durable Host per process, used from this single thread only (its timer threads are
switched off). The parent sends ``("eval", key, wire_or_None, evict_keys, inputs, delay)``
and gets back ``("ok", results)`` where each result is ``("fired", [durable rule names])``
or ``("error", message)`` for an input that could not be encoded. On any exception from
durable itself the worker reports ``("fatal", message)`` and exits: the parent replaces the
process instead of reusing a durable state that may be broken.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from rules_service.engine.compiler import CATCH_ALL, SENTINEL_KEY, EncodeError, FactEncoder
from rules_service.engine.index import ShardIndex
from rules_service.language.patterns import whole_value

REGEX_TIMEOUT_S = 0.25


class PatternProblem(Exception):
    """A ``matches`` pattern timed out or does not compile."""


def _searcher() -> Callable[[str, str], bool]:
    """``re.search`` semantics with a timeout, through the ``regex`` module (VERSION0)."""
    import re

    import regex

    cache: dict[str, tuple[Any, bool]] = {}

    def search(pattern: str, text: str) -> bool:
        entry: tuple[Any, bool] | None = cache.get(pattern)
        if entry is None:
            anchored = whole_value(pattern)
            try:
                entry = (regex.compile(anchored, regex.VERSION0), True)
            except regex.error:
                try:
                    entry = (re.compile(anchored), False)
                except re.error as exc:
                    raise PatternProblem(f"pattern {pattern!r} does not compile: {exc}") from None
            if len(cache) > 1024:
                cache.clear()
            cache[pattern] = entry
        compiled: Any = entry[0]  # a regex or re pattern; only regex takes a timeout
        has_timeout = entry[1]
        if not has_timeout:
            return compiled.search(text) is not None
        try:
            return compiled.search(text, timeout=REGEX_TIMEOUT_S) is not None
        except TimeoutError:
            raise PatternProblem(
                f"pattern {pattern!r} took longer than {REGEX_TIMEOUT_S} s") from None

    return search


class Engine:
    """Single-threaded durable Host holding compiled rulesets by key."""

    def __init__(self) -> None:
        from durable.engine import Host

        class QuietHost(Host):
            # Host starts two timer threads that dispatch actions concurrently with our
            # assertions; we never use timers or queued actions, so keep the process single
            # threaded.
            def _run(self) -> None:
                return None

            def get_action(self, action_name: str) -> Callable[[Any], None]:
                return lambda c: engine._fired.append(action_name)

        engine = self
        self._host = QuietHost()
        self._fired: list[str] = []
        # key -> ([(durable ruleset name, its fact keys)], encoder, index or None)
        self._specs: dict[str, tuple[list[tuple[str, tuple[str, ...]]], FactEncoder,
                                     ShardIndex | None]] = {}
        self._sid = 0
        self._search = _searcher()

    def load(self, key: str, wire: dict[str, Any]) -> None:
        """Registers a compiled ruleset under its key."""
        if key in self._specs:
            return
        shards = [(name, tuple(keys)) for name, _, keys in wire["shards"]]
        # durable deletes 'run' from the definition it is given.
        self._host.set_rulesets({name: copy.deepcopy(durable)
                                 for name, durable, _ in wire["shards"]})
        index = None
        if wire.get("index") is not None:
            shard_of = {rule: n for n, (_, durable, _) in enumerate(wire["shards"])
                        for rule in durable}
            index = ShardIndex(wire["index"], shard_of, len(shards))
        self._specs[key] = (shards, FactEncoder(wire, self._search), index)

    def evict(self, key: str) -> None:
        """Drops a compiled ruleset from this process."""
        import durable_rules_engine

        entry = self._specs.pop(key, None)
        if entry is None:
            return
        for name, _ in entry[0]:
            ruleset = self._host._ruleset_directory.pop(name, None)
            if ruleset is not None:
                self._host._ruleset_list.remove(ruleset)
                durable_rules_engine.delete_ruleset(ruleset._handle)

    def has(self, key: str) -> bool:
        """Whether the ruleset is loaded."""
        return key in self._specs

    def evaluate(self, key: str, data: Any) -> tuple[str, Any]:
        """Fired durable rule names for one input, or an error for an input it cannot take.

        The input is asserted into every shard where a rule can fire (every shard without
        an index), each fact carrying only the keys its shard tests; rules are independent,
        so the union is what one engine would fire.
        """
        shards, encoder, index = self._specs[key]
        try:
            fact = encoder.encode(data)
        except EncodeError as exc:
            return ("error", f"input cannot be evaluated: {exc}")
        except PatternProblem as exc:
            return ("error", str(exc))
        fired: set[str] = set()
        reached = shards if index is None else [shards[n] for n in index.shards(fact)]
        for name, keys in reached:
            self._sid += 1
            sid = str(self._sid)
            shard_fact = {k: fact[k] for k in keys}
            shard_fact[SENTINEL_KEY] = 1
            shard_fact["sid"] = sid
            self._fired = []
            # The catch-all rule matches every fact, so this never raises MessageNotHandled and
            # the state can always be deleted (deleting after that exception segfaults).
            self._host.assert_fact(name, shard_fact)
            self._host.delete_state(name, sid)
            if CATCH_ALL not in self._fired:
                raise RuntimeError("catch-all rule did not fire; engine state is suspect")
            fired.update(n for n in self._fired if n != CATCH_ALL)
        return ("fired", sorted(fired))


def serve(fd: int) -> None:
    """Worker process entry point: serve the connection on file descriptor ``fd``."""
    # Ctrl-C in a terminal reaches the whole process group; the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    main(Connection(fd))


def main(conn: Connection) -> None:
    """Serve requests on ``conn`` until told to stop or the parent goes away (EOF)."""
    try:
        engine = Engine()
    except BaseException as exc:  # report anything, then exit
        _report_fatal(conn, exc)
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        op = msg[0]
        if op == "stop":
            return
        try:
            if op == "eval":
                _, key, wire, evict, inputs, delay = msg
                if delay:
                    time.sleep(delay)  # test hook: simulates a hung engine
                for old in evict:
                    engine.evict(old)
                if wire is not None:
                    engine.load(key, wire)
                elif not engine.has(key):
                    raise RuntimeError(f"ruleset {key[:12]} was never sent to this worker")
                results = [engine.evaluate(key, data) for data in inputs]
                conn.send(("ok", results))
            else:
                raise RuntimeError(f"unknown request {op!r}")
        except BaseException as exc:  # never reuse a state that raised
            _report_fatal(conn, exc)
            return


def _report_fatal(conn: Connection, exc: BaseException) -> None:
    detail = f"{type(exc).__name__}: {exc}"
    with contextlib.suppress(Exception):  # the parent sees EOF instead
        conn.send(("fatal", detail[:500]))
    traceback.print_exception(exc, file=sys.stderr)
