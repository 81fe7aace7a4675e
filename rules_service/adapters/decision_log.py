"""The decision log's write side: decisions, their keys, escalations and outbox events,
and each decision's ``rollup_pending`` row, through SQLAlchemy Core, one statement per
table, and a group-commit writer that lets concurrent requests of one process share a
transaction. Every row written is the decision's own: nothing shared between writers is
locked. The rollups count each decision a moment later, through its pending row
(``adapters.rollup_fold``).

A decision is returned to its caller only after the transaction holding it has committed
(``GroupCommitWriter.write`` blocks until then), so nothing answered is ever lost. A
repeated ``(caller, idempotency_key)`` is not an error here: its key row is skipped (``ON
CONFLICT DO NOTHING`` on ``decision_keys``), the decision is not inserted, and the service
answers it as a replay of the decision that holds the key. Keys live in their own table
because ``decisions`` is partitioned on PostgreSQL (see ``adapters.orm``).

A request that gives up waiting (the database is down or hung: ``DatabaseUnavailable``,
answered 503) never has its decision committed afterwards: the writer claims each
request just before COMMIT, and a request that left before its claim is rolled back and
left out. Only a COMMIT already sent when the database stopped answering can still
complete; the request is then answered 503 too, and a retry with its Idempotency-Key
returns that one decision.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rules_service.adapters import outbox, rollup_fold
from rules_service.adapters.bulk_insert import insert_rows
from rules_service.adapters.database import (
    WRITE_TIMEOUT_S,
    DatabaseUnavailable,
    WriterTurn,
    is_unavailable,
)
from rules_service.adapters.orm import DecisionKeyRow, DecisionRow, EscalationRow

log = logging.getLogger(__name__)

DECISIONS: Table = DecisionRow.__table__  # type: ignore[assignment]
DECISION_KEYS: Table = DecisionKeyRow.__table__  # type: ignore[assignment]
ESCALATIONS: Table = EscalationRow.__table__  # type: ignore[assignment]

_WAITING, _COMMITTING, _ABANDONED = "waiting", "committing", "abandoned"


@dataclass(frozen=True)
class EscalationRecord:
    """The escalation a decision opens: who must look at it, and by when."""

    id: str
    to_role: str
    due_at: datetime | None


@dataclass(frozen=True)
class DecisionRecord:
    """Everything stored of one decision, ready to insert."""

    id: str
    ruleset_id: int
    version: int
    input: dict[str, Any]
    outcome: str
    fired_rules: list[dict[str, Any]]
    deciding_rules: list[str]
    fallback: bool
    fallback_reason: str | None
    caller: str
    idempotency_key: str | None
    request_hash: str | None
    evaluated_at: datetime
    duration_ms: float
    escalation: EscalationRecord | None = None
    paused_outcome: str | None = None
    paused_reason: str | None = None

    def decision_row(self) -> dict[str, Any]:
        """The ``decisions`` row."""
        return {"id": self.id, "ruleset_id": self.ruleset_id, "version": self.version,
                "input": self.input, "outcome": self.outcome,
                "fired_rules": self.fired_rules, "deciding_rules": self.deciding_rules,
                "fallback": self.fallback, "fallback_reason": self.fallback_reason,
                "caller": self.caller, "idempotency_key": self.idempotency_key,
                "request_hash": self.request_hash, "evaluated_at": self.evaluated_at,
                "duration_ms": self.duration_ms, "paused_outcome": self.paused_outcome,
                "paused_reason": self.paused_reason}

    def escalation_row(self) -> dict[str, Any] | None:
        """The ``escalations`` row, when the decision opens one."""
        esc = self.escalation
        if esc is None:
            return None
        return {"id": esc.id, "decision_id": self.id,
                "decision_evaluated_at": self.evaluated_at, "ruleset_id": self.ruleset_id,
                "version": self.version, "to_role": esc.to_role, "status": "open",
                "due_at": esc.due_at, "created_at": self.evaluated_at, "resolved_at": None,
                "resolved_by": None, "resolution": None, "comment": ""}

    def key_row(self) -> dict[str, Any] | None:
        """The ``decision_keys`` row, when the caller gave an idempotency key."""
        if not self.idempotency_key:
            return None
        return {"caller": self.caller, "idempotency_key": self.idempotency_key,
                "decision_id": self.id, "evaluated_at": self.evaluated_at}

    def pending_row(self) -> dict[str, Any]:
        """The ``rollup_pending`` row: what the rollups will count of it."""
        return {"decision_id": self.id, "ruleset_id": self.ruleset_id,
                "version": self.version, "evaluated_at": self.evaluated_at,
                "outcome": self.outcome, "fallback": self.fallback,
                "duration_ms": self.duration_ms}


class DecisionWriter:
    """Writes decisions in a unit of work's transaction (the evaluate path uses a
    ``DecisionStore`` instead, which groups commits)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def write(self, records: Sequence[DecisionRecord]) -> set[str]:
        """Inserts the records (see ``write_decisions``); the ids inserted."""
        return write_decisions(self.session.connection(), records)


def write_decisions(connection: Connection, records: Sequence[DecisionRecord]) -> set[str]:
    """Inserts decisions, their escalations (with their ``escalation.opened`` outbox events)
    and their pending rollup rows in the caller's transaction; returns
    the ids inserted (a decision whose caller already used its idempotency key is skipped).

    One statement per table, whatever the number of records.
    """
    if not records:
        return set()
    dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" \
        else sqlite.insert
    keys = [row for row in (r.key_row() for r in records) if row is not None]
    if keys:
        # The key decides which decisions are new; the decisions follow, in the same
        # transaction.
        stmt = (dialect_insert(DECISION_KEYS)
                .on_conflict_do_nothing(index_elements=["caller", "idempotency_key"])
                .returning(DECISION_KEYS.c.decision_id))
        taken = {row[0] for row in connection.execute(stmt, keys)}
        stored = [r for r in records if not r.idempotency_key or r.id in taken]
    else:
        stored = list(records)
    inserted = {r.id for r in stored}
    if stored:
        insert_rows(connection, DECISIONS, [r.decision_row() for r in stored])
    escalations = [row for row in (r.escalation_row() for r in stored) if row is not None]
    if escalations:
        insert_rows(connection, ESCALATIONS, escalations)
        # Only escalations actually opened (a skipped replay opens nothing) are told.
        outbox.add_events(connection, outbox.escalation_opened_rows(escalations))
    rollup_fold.hold(connection, [r.pending_row() for r in stored])
    return inserted


class DecisionStore(Protocol):
    """Where the evaluate use cases record decisions."""

    def write(self, records: Sequence[DecisionRecord]) -> set[str]:
        """Stores the records durably before returning; the ids actually inserted."""
        ...


@dataclass
class _Pending:
    records: Sequence[DecisionRecord]
    done: threading.Event = field(default_factory=threading.Event)
    inserted: set[str] = field(default_factory=set)
    error: BaseException | None = None
    state: str = _WAITING
    """waiting -> committing (claimed by the writer just before COMMIT) or abandoned (its
    request gave up first); changed only under the writer's claim lock."""


_STOP = object()


class GroupCommitWriter:
    """Records decisions for every thread of a process, many requests per transaction.

    Request threads queue their records and wait; one writer thread takes everything
    queued (up to ``max_group`` requests), writes it with ``write_decisions`` in one
    transaction on a connection it keeps, commits, and wakes each waiter. If a group fails,
    each request in it is retried in a transaction of its own, so one bad record fails
    only its own request. The thread starts on first use (after a fork, never before).
    ``wait_s`` bounds how long a request waits for its commit (the service passes its
    statement timeout; ``WRITE_TIMEOUT_S`` otherwise).
    """

    def __init__(self, engine: Engine, *, max_group: int = 256,
                 wait_s: float = WRITE_TIMEOUT_S) -> None:
        self._engine = engine
        self._max_group = max_group
        self._wait_s = wait_s
        self._claims = threading.Lock()
        self._turn = WriterTurn(engine)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._connection: Connection | None = None
        self.groups_committed = 0
        self.requests_committed = 0

    def write(self, records: Sequence[DecisionRecord]) -> set[str]:
        """Stores the records (committed when this returns); the ids inserted."""
        if not records:
            return set()
        pending = _Pending(records)
        self._start()
        self._queue.put(pending)
        if not pending.done.wait(self._wait_s):
            with self._claims:
                if pending.state == _WAITING:
                    pending.state = _ABANDONED
            if pending.state == _ABANDONED:
                raise DatabaseUnavailable(
                    f"the decision was not recorded within {self._wait_s:g} s: the database "
                    f"did not answer; nothing was recorded")
            # Claimed: its COMMIT is under way, and bounded by the connection's round trip.
            if not pending.done.wait(self._wait_s):
                raise DatabaseUnavailable(
                    "the database did not confirm the commit of the decision in time; a "
                    "retry with the same Idempotency-Key returns it if it was recorded")
        if pending.error is not None:
            raise pending.error
        return pending.inserted

    def close(self) -> None:
        """Stops the writer thread after the queued work and releases its connection."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout=WRITE_TIMEOUT_S)
        self._turn.close()

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="decision-writer",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                group = [first]
                stop = False
                while len(group) < self._max_group:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    group.append(item)
                self._commit(group)
                if stop:
                    return
        finally:
            self._release()

    def _commit(self, group: list[_Pending]) -> None:
        try:
            self._transaction(group)
            self.groups_committed += 1
            self.requests_committed += len(group)
        except Exception as exc:  # handed to the waiting requests
            if len(group) == 1 or is_unavailable(exc):
                # The database is down: one at a time would only make everyone wait longer.
                for pending in group:
                    pending.error = exc
            else:
                log.warning("a group of %d decisions failed (%s); retrying each alone",
                            len(group), exc)
                for pending in group:
                    try:
                        self._transaction([pending])
                    except Exception as alone:
                        pending.error = alone
        finally:
            for pending in group:
                pending.done.set()

    def _transaction(self, group: Sequence[_Pending]) -> None:
        """Writes the records of the group's requests still waiting in one transaction and
        commits them; a request that gave up meanwhile is left out (rollback, write again)."""
        while True:
            waiting = [p for p in group if p.state == _WAITING]
            if not waiting:
                return
            connection = self._connection
            if connection is None or connection.closed or connection.invalidated:
                connection = self._connection = self._engine.connect()
            try:
                with self._turn(), connection.begin() as transaction:
                    inserted = write_decisions(connection, [r for p in waiting
                                                            for r in p.records])
                    with self._claims:
                        gave_up = any(p.state != _WAITING for p in waiting)
                        if not gave_up:
                            for pending in waiting:
                                pending.state = _COMMITTING
                    if gave_up:
                        transaction.rollback()
                        continue
            except Exception as exc:
                if not is_unavailable(exc):
                    # Not committed (a bad record): each may be tried again on its own.
                    with self._claims:
                        for pending in waiting:
                            if pending.state == _COMMITTING:
                                pending.state = _WAITING
                # The connection may be broken (database restarted): take a fresh one next time.
                self._release()
                raise
            for pending in waiting:
                pending.inserted = {r.id for r in pending.records if r.id in inserted}
            return

    def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # already broken
                log.debug("closing a broken connection failed", exc_info=True)
