"""Phase timings: recorded only inside a request, added up per phase, one request's
timings never seen by the next."""

from __future__ import annotations

import threading

from rules_service.services import phases


def test_outside_a_request_nothing_is_recorded() -> None:
    phases.end()
    with phases.phase("engine"):
        pass
    assert phases.current() == {}


def test_a_phase_entered_twice_adds_up_and_the_next_request_starts_empty() -> None:
    timings = phases.begin()
    with phases.phase("engine"):
        pass
    first = timings["engine"]
    with phases.phase("engine"):
        pass
    with phases.phase("record"):
        pass
    assert set(phases.current()) == {"engine", "record"}
    assert phases.current()["engine"] >= first
    phases.end()
    assert phases.current() == {}
    phases.begin()
    assert phases.current() == {}
    phases.end()


def test_a_phase_is_recorded_when_its_block_raises() -> None:
    phases.begin()
    try:
        with phases.phase("validate"):
            raise ValueError("bad input")
    except ValueError:
        pass
    assert "validate" in phases.current()
    phases.end()


def test_each_thread_times_its_own_request() -> None:
    phases.begin()
    seen: list[dict[str, float]] = []

    def other() -> None:
        seen.append(dict(phases.current()))
        phases.begin()
        with phases.phase("auth"):
            pass
        seen.append(dict(phases.current()))

    with phases.phase("engine"):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert seen[0] == {} and set(seen[1]) == {"auth"}
    assert set(phases.current()) == {"engine"}
    phases.end()
