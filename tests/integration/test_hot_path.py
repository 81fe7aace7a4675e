"""The evaluate hot path: no database reads when warm, one short write transaction, group
commit that never answers before the commit and never lets one bad record fail the rest."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import IntegrityError

from rules_service.adapters import rollup_fold
from rules_service.adapters.decision_log import DecisionRecord, GroupCommitWriter
from rules_service.adapters.orm import DecisionRow
from rules_service.bootstrap import Container
from rules_service.services import decisions, principals
from rules_service.services.live import LiveState
from tests.integration.api_fixtures import Api
from tests.integration.conftest import FakeClock, definition

NAME = "refunds"
BASE = f"/v1/rulesets/{NAME}"
EVALUATE = f"{BASE}/evaluate"
IGNORED_THREADS = ("live-state-poller", "rollup-fold")


def activate(api: Api, limit: int = 100, **extra: Any) -> int:
    response = api.post(f"{BASE}/versions", {"definition": definition(limit), **extra})
    assert response.status_code == 201, response.get_json()
    number = int(response.get_json()["version"])
    for signer in ("biz", "appr"):
        assert api.post(f"{BASE}/versions/{number}/signoffs", {"decision": "approve"},
                        who=signer).status_code == 201
    return number


@contextmanager
def statements(container: Container) -> Iterator[list[str]]:
    """Every SQL statement sent while the block runs (the live-state poller's and the
    rollup fold's aside)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if threading.current_thread().name not in IGNORED_THREADS:
            seen.append(" ".join(statement.split()).upper())

    event.listen(container.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(container.engine, "before_cursor_execute", record)


def stored_ids(container: Container) -> set[str]:
    with container.engine.connect() as conn:
        return set(conn.scalars(select(DecisionRow.id)))


def test_a_warm_evaluate_reads_nothing_and_writes_once(api: Api, container: Container) -> None:
    activate(api)
    assert api.post(EVALUATE, {"input": {"amount": 5}}, who="bot").status_code == 200  # warm
    with statements(container) as sent:
        approve = api.post(EVALUATE, {"input": {"amount": 5}}, who="bot")
        escalate = api.post(EVALUATE, {"input": {"amount": 500}}, who="bot",
                            headers={"Idempotency-Key": "k1"})
    assert (approve.status_code, escalate.status_code) == (200, 200)
    assert [s for s in sent if s.startswith("SELECT")] == []
    inserts = [s.split("(")[0].split()[-1].lower() for s in sent if s.startswith("INSERT")]
    # Per decision: (its idempotency key,) the decision, (its escalation and the
    # escalation.opened outbox event,) and its pending rollup row: one statement per
    # table, every row its own (the rollups, shared by every writer, are the fold's).
    assert inserts == ["decisions", "rollup_pending",
                       "decision_keys", "decisions", "escalations", "outbox_events",
                       "rollup_pending"]
    assert {approve.get_json()["decision_id"], escalate.get_json()["decision_id"]} \
        <= stored_ids(container)


def test_a_scheduled_version_goes_live_at_the_first_request_after_its_time(
        api: Api, container: Container, clock: FakeClock) -> None:
    activate(api)
    later = clock.now + timedelta(hours=1)
    second = activate(api, limit=200, effective_at=later.isoformat())
    assert api.post(EVALUATE, {"input": {"amount": 150}}, who="bot").get_json()["version"] == 1
    with statements(container) as sent:
        before = api.post(EVALUATE, {"input": {"amount": 150}}, who="bot").get_json()
    assert before["version"] == 1 and not [s for s in sent if s.startswith("SELECT")]
    clock.advance(timedelta(hours=1))
    after = api.post(EVALUATE, {"input": {"amount": 150}}, who="bot").get_json()
    assert (after["version"], after["outcome"]) == (second, "approve")


def test_a_token_revoked_in_this_process_is_refused_at_once(
        api: Api, container: Container) -> None:
    activate(api)
    assert api.post(EVALUATE, {"input": {"amount": 5}}, who="bot").status_code == 200
    principals.revoke_principal(container.uow(), "bot")
    assert api.post(EVALUATE, {"input": {"amount": 5}}, who="bot").status_code == 401


def test_a_change_through_another_process_is_served_after_the_poll(
        api: Api, container: Container, clock: FakeClock) -> None:
    activate(api)
    other = LiveState(container.uow, clock, poll_interval_s=0.05)
    try:
        assert other.deciding_version(NAME, None, dry_run=False).version == 1
        second = activate(api, limit=300)  # through the app's own container
        deadline = time.monotonic() + 10
        while other.deciding_version(NAME, None, dry_run=False).version != second:
            assert time.monotonic() < deadline, "the other process never saw the change"
            time.sleep(0.01)
    finally:
        other.close()


def test_concurrent_evaluations_each_answer_only_after_their_commit(
        app: Any, api: Api, container: Container) -> None:
    activate(api)
    headers = api.headers("bot")
    answers: list[tuple[int, str, bool]] = []
    lock = threading.Lock()
    start = threading.Barrier(12)

    def evaluate(amount: int) -> None:
        with app.test_client() as client:
            start.wait()
            with client.post(EVALUATE, json={"input": {"amount": amount}},
                             headers=headers) as response:
                decision_id = response.get_json()["decision_id"]
                # Read through another connection the moment the answer arrives.
                committed = decision_id in stored_ids(container)
            with lock:
                answers.append((response.status_code, decision_id, committed))

    threads = [threading.Thread(target=evaluate, args=(i * 20,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(answers) == 12
    assert all(status == 200 and committed for status, _, committed in answers), answers
    assert len({decision_id for _, decision_id, _ in answers}) == 12


# --------------------------------------------------------------------------- the writer


def _record(container: Container, ruleset_id: int, amount: float) -> DecisionRecord:
    return DecisionRecord(
        id=decisions.new_id(), ruleset_id=ruleset_id, version=1, input={"amount": amount},
        outcome="approve", fired_rules=[], deciding_rules=[], fallback=False,
        fallback_reason=None, caller="bot", idempotency_key=None, request_hash=None,
        evaluated_at=container.clock(), duration_ms=0.5)


@contextmanager
def write_lock_held(container: Container) -> Iterator[None]:
    """Another connection holds the decisions table's write lock until the block ends."""
    with container.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("LOCK TABLE decisions IN EXCLUSIVE MODE"))
        else:
            conn.execute(text("SELECT 1"))  # the engine begins SQLite writes IMMEDIATE
        try:
            yield
        finally:
            conn.rollback()


def _queue_while_locked(container: Container, writer: GroupCommitWriter,
                        records: list[DecisionRecord]) -> list[set[str] | BaseException]:
    results: list[set[str] | BaseException] = [set()] * len(records)

    def write(i: int) -> None:
        try:
            results[i] = writer.write([records[i]])
        except Exception as exc:  # asserted below
            results[i] = exc

    with write_lock_held(container):
        threads = [threading.Thread(target=write, args=(i,)) for i in range(len(records))]
        threads[0].start()
        time.sleep(0.3)  # the writer now waits for the lock with the first record
        for t in threads[1:]:
            t.start()
        deadline = time.monotonic() + 10
        while writer._queue.qsize() < len(records) - 1:  # the rest are queued behind it
            assert time.monotonic() < deadline
            time.sleep(0.01)
    for t in threads:
        t.join(timeout=60)
    return results


@pytest.mark.usefixtures("people")
def test_requests_queued_behind_a_commit_share_the_next_transaction(
        api: Api, container: Container) -> None:
    activate(api)
    ruleset_id = container.live.deciding_version(NAME, None, dry_run=False).ruleset_id
    writer = GroupCommitWriter(container.engine)
    try:
        records = [_record(container, ruleset_id, i) for i in range(8)]
        results = _queue_while_locked(container, writer, records)
        assert results == [{r.id} for r in records]
        assert (writer.groups_committed, writer.requests_committed) == (2, 8)
        assert {r.id for r in records} <= stored_ids(container)
    finally:
        writer.close()


@pytest.mark.usefixtures("people")
def test_one_bad_record_fails_only_its_own_request(api: Api, container: Container) -> None:
    activate(api)
    ruleset_id = container.live.deciding_version(NAME, None, dry_run=False).ruleset_id
    writer = GroupCommitWriter(container.engine)
    try:
        records = [_record(container, ruleset_id, 1), _record(container, ruleset_id, 2),
                   _record(container, ruleset_id + 999, 3),  # no such ruleset
                   _record(container, ruleset_id, 4)]
        results = _queue_while_locked(container, writer, records)
        assert isinstance(results[2], IntegrityError)
        assert [results[i] for i in (0, 1, 3)] == [{records[i].id} for i in (0, 1, 3)]
        stored = stored_ids(container)
        assert {records[i].id for i in (0, 1, 3)} <= stored and records[2].id not in stored
        rollup_fold.fold_pending(container.engine)
        with container.engine.connect() as conn:
            counted = conn.scalar(text("SELECT SUM(count) FROM decision_rollups"))
        assert counted == len(stored)
    finally:
        writer.close()


def test_stored_ids_are_time_ordered(api: Api, container: Container) -> None:
    activate(api)
    ids = [api.post(EVALUATE, {"input": {"amount": 5}}, who="bot").get_json()["decision_id"]
           for _ in range(5)]
    assert ids == sorted(ids)
    with container.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(DecisionRow)) == 5
