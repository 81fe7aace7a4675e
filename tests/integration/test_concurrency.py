"""Races between transitions, with real threads on PostgreSQL: nothing lost, never two active."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from rules_service.bootstrap import Container
from rules_service.domain.errors import DomainError
from rules_service.services import governance as gov
from tests.integration.conftest import FakeClock, definition

pytestmark = [pytest.mark.postgres_only, pytest.mark.usefixtures("people")]

NAME = "refunds"


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Runs the calls at the same moment in threads; returns each result or DomainError."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except DomainError as exc:
            results[i] = exc
        except Exception as exc:  # a crash is a failure of the test, reported below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    crashes = [r for r in results if isinstance(r, Exception) and not isinstance(r, DomainError)]
    assert not crashes, crashes
    return results


def propose(c: Container, actor: str, limit: int) -> int:
    return gov.propose_version(c.uow(), c.evaluator, NAME, definition=definition(limit),
                               actor=actor).version


def sign(c: Container, number: int, who: str) -> Callable[[], Any]:
    return lambda: gov.sign_off(c.uow(), NAME, number, decision="approve", actor=who)


def active_versions(c: Container) -> list[int]:
    return [v.version for v in gov.list_versions(c.uow(), NAME) if v.status == "active"]


def audit_counts(c: Container) -> Counter[tuple[int | None, str]]:
    return Counter((e.version, e.action) for e in gov.list_audit_events(c.uow(), NAME))


def test_two_simultaneous_final_signoffs_activate_once(container: Container) -> None:
    for round_ in range(5):
        number = propose(container, "root" if round_ == 0 else "dev", 100 + round_)
        results = race(sign(container, number, "biz"), sign(container, number, "appr"))
        assert not [r for r in results if isinstance(r, Exception)]
        assert active_versions(container) == [number]
        counts = audit_counts(container)
        assert counts[(number, "signed_off")] == 2
        assert counts[(number, "approved")] == 1
        assert counts[(number, "activated")] == 1


def test_racing_final_signoffs_on_two_versions_of_one_base_leave_one_live_one_stale(
        container: Container) -> None:
    for round_ in range(4):
        if round_ == 0:
            gov.sign_off(container.uow(), NAME, propose(container, "root", 90),
                         decision="approve", actor="biz")
            gov.sign_off(container.uow(), NAME, 1, decision="approve", actor="appr")
        base = active_versions(container)[0]
        first = propose(container, "dev", 200 + round_)
        second = propose(container, "dev-backup", 300 + round_)
        for number in (first, second):
            gov.sign_off(container.uow(), NAME, number, decision="approve", actor="biz")
        results = race(sign(container, first, "appr"), sign(container, second, "appr-backup"))
        statuses = {v.version: v.status for v in gov.list_versions(container.uow(), NAME)}
        assert sorted((statuses[first], statuses[second])) == ["active", "stale"], statuses
        winner, loser = (first, second) if statuses[first] == "active" else (second, first)
        assert active_versions(container) == [winner]
        [refused] = [r for r in results if isinstance(r, Exception)]
        assert getattr(refused, "code", None) == "stale"
        stale = [e for e in gov.list_audit_events(container.uow(), NAME)
                 if e.action == "stale" and e.version == loser]
        assert [e.details for e in stale] == [{"base_version": base,
                                              "active_version": winner}]
        counts = audit_counts(container)
        assert counts[(loser, "approved")] == 0 and counts[(winner, "activated")] == 1


def test_two_holders_racing_for_one_role_fill_it_once(container: Container) -> None:
    number = propose(container, "root", 100)
    results = race(sign(container, number, "biz"), sign(container, number, "biz-backup"))
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and getattr(errors[0], "code", None) == "role_already_signed_off"
    view = gov.get_version(container.uow(), NAME, number)
    assert [s.role for s in view.signoffs] == ["business_owner"]


def test_rollback_racing_activation_leaves_exactly_one_active_version(
        container: Container) -> None:
    v1 = propose(container, "root", 100)
    sign(container, v1, "biz")()
    sign(container, v1, "appr")()
    v2 = propose(container, "dev", 200)
    sign(container, v2, "biz")()
    sign(container, v2, "appr")()
    outcomes: Counter[str] = Counter()
    for i in range(6):
        pending = propose(container, "dev", 300 + i)
        sign(container, pending, "biz")()
        target = [v.version for v in gov.list_versions(container.uow(), NAME)
                  if v.status == "superseded"][-1]

        def roll_back(to: int = target) -> Any:
            return gov.rollback(container.uow(), NAME, to_version=to, reason="race",
                                actor="ops")

        results = race(sign(container, pending, "appr"), roll_back)
        assert len(active_versions(container)) == 1
        signed, rolled = results
        assert not isinstance(rolled, Exception), rolled
        if isinstance(signed, Exception):
            # The rollback won: the pending version can no longer activate over it.
            assert getattr(signed, "code", None) == "stale"
            assert gov.get_version(container.uow(), NAME, pending).status == "stale"
            assert active_versions(container) == [target]
            outcomes["rollback first"] += 1
        else:
            # The activation won, then the rollback replaced it.
            assert active_versions(container) == [target]
            assert gov.get_version(container.uow(), NAME, pending).status == "superseded"
            outcomes["activation first"] += 1
    assert sum(outcomes.values()) == 6


def test_concurrent_proposals_lose_no_version_and_no_event(container: Container) -> None:
    propose(container, "root", 100)
    sign(container, 1, "biz")()
    sign(container, 1, "appr")()
    authors = ["dev", "dev-backup", "biz", "biz-backup", "root"] * 2
    calls = [lambda a=a, i=i: propose(container, a, 1000 + i) for i, a in enumerate(authors)]
    numbers = race(*calls)
    assert sorted(numbers) == list(range(2, 2 + len(authors)))
    counts = audit_counts(container)
    assert all(counts[(n, "proposed")] == 1 for n in numbers)


def test_concurrent_first_proposals_create_the_ruleset_once(container: Container) -> None:
    calls = [lambda i=i: propose(container, "root", 100 + i) for i in range(6)]
    numbers = race(*calls)
    assert sorted(numbers) == [1, 2, 3, 4, 5, 6]
    assert [s.name for s in gov.list_rulesets(container.uow())] == [NAME]


def test_concurrent_reads_activate_a_due_version_once(container: Container,
                                                      clock: FakeClock) -> None:
    propose(container, "root", 100)
    sign(container, 1, "biz")()
    sign(container, 1, "appr")()
    gov.propose_version(container.uow(), container.evaluator, NAME,
                        definition=definition(200), actor="dev",
                        effective_at=clock.now + timedelta(hours=1))
    sign(container, 2, "biz")()
    sign(container, 2, "appr")()
    clock.advance(timedelta(hours=2))
    results = race(*[lambda: gov.load_version(container.uow(), NAME).version] * 8)
    assert results == [2] * 8
    counts = audit_counts(container)
    assert counts[(2, "activated")] == 1 and counts[(1, "superseded")] == 1


def test_racing_retries_with_one_idempotency_key_record_one_decision(
        container: Container) -> None:
    from rules_service.services import decisions as dec

    propose(container, "root", 100)
    sign(container, 1, "biz")()
    sign(container, 1, "appr")()
    loaded = gov.load_version(container.uow(), NAME)
    data = {"amount": 5}
    evaluation = container.evaluator.evaluate(loaded.ruleset, data)

    def record() -> str:
        return dec.record_decision(container.uow(), ruleset=NAME, version=1,
                                   evaluation=evaluation, caller="bot", idempotency_key="k",
                                   request_hash=dec.request_hash(NAME, None, data)).decision_id

    ids = race(*[record] * 8)
    assert len(set(ids)) == 1
    assert len(dec.list_decisions(container.uow())[0]) == 1
