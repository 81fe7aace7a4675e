"""The rollup fold: each recorded decision is added to the rollups exactly once, a moment
after it commits, by a background fold instead of by the transaction that records it.

Why: the rollup rows (a minute, an hour, a day, the all-time totals of a ruleset's
version and outcome) are shared by every writer, so counting in the decision's own
transaction made every process's commits wait on the same row locks. The evaluate path's
transaction now holds only rows of its own: the decision, its idempotency key, its
escalation, that escalation's outbox event, and one ``rollup_pending`` row carrying what
the rollups count of the decision (insert-only; ``hold``).

How it stays exact. The fold claims pending rows by their identity, never by a
watermark: one transaction deletes a batch of pending rows (``DELETE .. RETURNING``) and
adds exactly the rows it deleted to the rollups (``adapters.rollups.add_decisions``),
then commits. Either both happen or neither does, so:

- a decision is counted once: its pending row is gone in the same commit that counted it;
- none is lost to commit order: a "fold every position above the last one folded" scheme
  would skip a decision whose transaction took its position early but committed late
  (PostgreSQL hands out sequence values in start order, not commit order). Here a row the
  fold cannot see yet stays pending and is claimed by a later fold, whatever its position;
- a fold killed half-way (SIGKILL, a lost connection) rolls back: its rows are pending
  again and the rollups unchanged.

``position`` only orders the claims (oldest first), so a backlog drains in order.

Who folds. One folder at a time: on PostgreSQL each fold transaction first takes the
transaction-scoped advisory lock ``FOLD_LOCK_KEY`` (``pg_try_advisory_xact_lock``: a
busy folder elsewhere means this one skips its turn) and claims with ``FOR UPDATE SKIP
LOCKED``; on SQLite the fold is one more writer taking the writers' turn
(``WriterTurn``), and SQLite has one writer at a time. ``RollupFolder`` runs it in a
background thread every ``FOLD_INTERVAL_S``: in each API process and in ``rules-service
worker``. The dashboard and ``/metrics`` read only the rollups, so they are at most
``FIGURES_BEHIND_S`` behind the recorded decisions while a folder runs.

Escalation resolutions are still counted in the resolving transaction
(``adapters.rollups.add_resolutions``): that is not the evaluate path, and one resolution
at a time takes a person.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, func, select

from rules_service.adapters import rollups
from rules_service.adapters.bulk_insert import insert_rows
from rules_service.adapters.database import READONLY_OPTION, WriterTurn
from rules_service.adapters.orm import rollup_pending

log = logging.getLogger(__name__)

PENDING: Table = rollup_pending

FOLD_INTERVAL_S = 0.5
"""How often a folder looks for decisions waiting to be counted."""

FIGURES_BEHIND_S = 2.0
"""The most the rollups (so the dashboard and ``/metrics``) lag the recorded decisions
while a folder runs: one interval, plus the fold itself, with room for a busy machine."""

FOLD_BATCH = 5000
"""Pending rows claimed per fold transaction (a backlog is folded in several)."""

FOLD_LOCK_KEY = 0x726F6C6C  # "roll"
"""The PostgreSQL advisory lock held by the one fold running at a time."""


def hold(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Inserts the pending rows of decisions being recorded, in the caller's transaction
    (one statement; ``DecisionRecord.pending_row`` gives each row)."""
    insert_rows(connection, PENDING, rows)


def fold_batch(connection: Connection, limit: int = FOLD_BATCH) -> int:
    """Claims up to ``limit`` pending rows, oldest first, and adds them to the rollups, in
    the caller's transaction; the number folded (fewer than ``limit``: none are left that
    this transaction can see)."""
    claim = select(PENDING.c.position).order_by(PENDING.c.position).limit(limit)
    if connection.dialect.name == "postgresql":
        claim = claim.with_for_update(skip_locked=True)
    c = PENDING.c
    rows = connection.execute(
        delete(PENDING).where(c.position.in_(claim))
        .returning(c.ruleset_id, c.version, c.evaluated_at, c.outcome, c.fallback,
                   c.duration_ms)).all()
    rollups.add_decisions(connection, (rollups.RolledDecision(*row) for row in rows))
    return len(rows)


def _fold_once(engine: Engine, turn: WriterTurn, *, wait: bool, limit: int) -> int | None:
    """One fold transaction; None when another folder holds the fold and ``wait`` is
    false."""
    with turn(), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            if wait:
                connection.execute(select(func.pg_advisory_xact_lock(FOLD_LOCK_KEY)))
            elif not connection.execute(
                    select(func.pg_try_advisory_xact_lock(FOLD_LOCK_KEY))).scalar_one():
                return None
        return fold_batch(connection, limit)


def fold_pending(engine: Engine, *, wait: bool = True, limit: int = FOLD_BATCH,
                 turn: WriterTurn | None = None) -> int:
    """Folds until nothing is pending (a batch per transaction); the decisions folded.

    ``wait``: wait for a fold running elsewhere to finish, then fold what it left (so
    the rollups count every decision committed before the call); otherwise skip.
    """
    own_turn = turn is None
    turn = turn or WriterTurn(engine)
    folded = 0
    try:
        while True:
            count = _fold_once(engine, turn, wait=wait, limit=limit)
            if count is None:
                return folded
            folded += count
            if count < limit:
                return folded
    finally:
        if own_turn:
            turn.close()


def anything_pending(engine: Engine) -> bool:
    """Whether any decision waits to be counted: a read, so an idle folder never takes
    SQLite's write lock."""
    with engine.connect().execution_options(**{READONLY_OPTION: True}) as connection:
        return connection.execute(select(PENDING.c.position).limit(1)).first() is not None


class RollupFolder:
    """Folds in a background thread every ``interval_s``, skipping a turn while another
    process folds. The thread starts with ``start`` (after a fork, never before) and
    stops with ``close``; a failed fold (the database is down) is logged once per outage
    and tried again at every turn."""

    def __init__(self, engine: Engine, *, interval_s: float = FOLD_INTERVAL_S) -> None:
        self._engine = engine
        self._interval_s = interval_s
        self._turn = WriterTurn(engine)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.folded = 0

    def start(self) -> None:
        """Starts the thread (once; later calls do nothing)."""
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="rollup-fold",
                                                daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Stops the thread after the fold in progress."""
        self._stop.set()
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30)
        self._turn.close()

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self._interval_s):
            try:
                if anything_pending(self._engine):
                    self.folded += fold_pending(self._engine, wait=False, turn=self._turn)
            except Exception as exc:  # the database is down: the rows wait for the next turn
                if not failing:  # once per outage, not twice a second
                    log.warning("folding decisions into the rollups failed (%s); trying "
                                "again every %g s", str(exc).splitlines()[0] if str(exc)
                                else type(exc).__name__, self._interval_s)
                failing = True
            else:
                if failing:
                    log.info("folding decisions into the rollups works again")
                failing = False
