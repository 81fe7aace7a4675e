"""Where a request's time goes: named phases timed in the thread handling it.

The HTTP layer calls ``begin()`` when a request starts and reads ``current()`` when it
ends (the request's log line and its phase histograms); code on the way wraps each phase
in ``with phase("engine"):``. Outside a request (a CLI command, a test calling a service
directly) nothing is recorded and a phase costs one context-variable lookup.

A phase entered twice in one request (a batch's chunks, say) adds up.
"""

from __future__ import annotations

from contextvars import ContextVar
from time import perf_counter
from types import TracebackType

_timings: ContextVar[dict[str, float] | None] = ContextVar("phase_timings", default=None)


def begin() -> dict[str, float]:
    """Starts timing the phases of a new request in this thread; its (empty) timings."""
    timings: dict[str, float] = {}
    _timings.set(timings)
    return timings


def end() -> None:
    """Stops timing phases in this thread (the request is over)."""
    _timings.set(None)


def current() -> dict[str, float]:
    """The seconds spent so far in each phase of this thread's request."""
    return _timings.get() or {}


class phase:  # noqa: N801 - used as a context manager, like a function
    """``with phase("record"): ...`` adds the block's wall time to the request's phase."""

    __slots__ = ("_name", "_started", "_timings")

    def __init__(self, name: str) -> None:
        self._name = name
        self._timings = _timings.get()
        self._started = 0.0

    def __enter__(self) -> None:
        if self._timings is not None:
            self._started = perf_counter()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        timings = self._timings
        if timings is not None:
            timings[self._name] = timings.get(self._name, 0.0) + perf_counter() - self._started
