"""The seals' SQL: reading the chain and the items, writing a seal with its items.

The items waiting are read and hashed without any lock; the seal is then written in a short
transaction that first takes the sealing lock (a transaction-level advisory lock on
PostgreSQL, the write lock ``BEGIN IMMEDIATE`` takes on SQLite) and checks that the head
is still the one the seal was built on (``services.seals`` reads again when it is not).
Two sealers at once therefore never fork the chain, and SQLite's writers (the decision
log's group commit) wait only for the inserts, not for the reading and hashing. The
primary keys (the seal's number, each item's kind and id) would refuse a fork or an item
sealed twice even without the lock.

Rows are handed back as domain values (``Seal``, ``SealedItem``) and as each item's
content (``domain.seals.decision_content``, ``audit_event_content``), never as rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    String,
    Table,
    and_,
    cast,
    exists,
    func,
    insert,
    select,
    text,
)

from rules_service.adapters.database import READONLY_OPTION
from rules_service.adapters.orm import (
    AuditEventRow,
    DecisionRow,
    RulesetRow,
    SealItemRow,
    SealRow,
)
from rules_service.domain.seals import (
    AUDIT_EVENT,
    DECISION,
    ItemKind,
    Seal,
    SealedItem,
    audit_event_content,
    decision_content,
)

SEALS: Table = SealRow.__table__  # type: ignore[assignment]
ITEMS: Table = SealItemRow.__table__  # type: ignore[assignment]
DECISIONS: Table = DecisionRow.__table__  # type: ignore[assignment]
AUDIT: Table = AuditEventRow.__table__  # type: ignore[assignment]
RULESETS: Table = RulesetRow.__table__  # type: ignore[assignment]

SEALING_LOCK = 0x5EA15EA1
"""The PostgreSQL advisory lock key held by the transaction that writes a seal."""

BATCH = 500
"""Ids per ``IN (...)`` when items are read back."""

Content = dict[str, Any]
Pending = tuple[ItemKind, str, datetime, Content]
"""An item to seal: kind, id, recorded time, content."""


def _seal(row: Any) -> Seal:
    return Seal(row.number, row.previous_hash, row.root, row.items, row.cutoff,
                row.sealed_at, row.hash)


def _decision(row: Any) -> Content:
    return decision_content(
        id=row.id, ruleset=row.ruleset, version=row.version, input=row.input,
        outcome=row.outcome, fired_rules=row.fired_rules, deciding_rules=row.deciding_rules,
        fallback=row.fallback, fallback_reason=row.fallback_reason, caller=row.caller,
        idempotency_key=row.idempotency_key, request_hash=row.request_hash,
        evaluated_at=row.evaluated_at, duration_ms=row.duration_ms)


def _audit_event(row: Any) -> Content:
    return audit_event_content(id=row.id, ruleset=row.ruleset, version=row.version,
                               action=row.action, actor=row.actor, comment=row.comment,
                               details=row.details, at=row.at)


def _decisions() -> Any:
    return (select(*DECISIONS.c, RULESETS.c.name.label("ruleset"))
            .select_from(DECISIONS.outerjoin(RULESETS,
                                             RULESETS.c.id == DECISIONS.c.ruleset_id)))


def _audit_events() -> Any:
    return (select(*AUDIT.c, RULESETS.c.name.label("ruleset"))
            .select_from(AUDIT.outerjoin(RULESETS, RULESETS.c.id == AUDIT.c.ruleset_id)))


def _unsealed(kind: ItemKind, id_column: Any) -> Any:
    return ~exists().where(ITEMS.c.kind == kind, ITEMS.c.item_id == id_column)


def _audit_id() -> Any:
    return cast(AUDIT.c.id, String(36))


def _span(column: Any, floor: datetime | None, before: datetime) -> Any:
    return and_(column < before, column >= floor) if floor is not None else column < before


class SealStore:
    """The seals of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self.engine.execution_options(**{READONLY_OPTION: True}).connect() as conn, \
                conn.begin():
            yield conn

    # ------------------------------------------------------------------ reading

    def newest(self, count: int = 1) -> list[Seal]:
        """The newest seals, newest first."""
        with self._reading() as conn:
            return self._newest(conn, count)

    @staticmethod
    def _newest(conn: Connection, count: int) -> list[Seal]:
        rows = conn.execute(select(SEALS).order_by(SEALS.c.number.desc()).limit(count))
        return [_seal(r) for r in rows]

    def all_seals(self) -> list[Seal]:
        """Every seal, oldest first."""
        with self._reading() as conn:
            return [_seal(r) for r in conn.execute(select(SEALS).order_by(SEALS.c.number))]

    def seal(self, number: int) -> Seal | None:
        """One seal, or None."""
        with self._reading() as conn:
            row = conn.execute(select(SEALS).where(SEALS.c.number == number)).first()
            return _seal(row) if row else None

    def items_of(self, number: int) -> list[SealedItem]:
        """The items a seal lists, in their leaf order."""
        with self._reading() as conn:
            rows = conn.execute(select(ITEMS).where(ITEMS.c.seal == number)
                                .order_by(ITEMS.c.position))
            return [SealedItem(r.kind, r.item_id, r.recorded_at, r.hash) for r in rows]

    def item(self, kind: ItemKind, item_id: str) -> tuple[int, SealedItem] | None:
        """The seal that lists an item, and the item as it listed it; None if unsealed."""
        with self._reading() as conn:
            r = conn.execute(select(ITEMS).where(ITEMS.c.kind == kind,
                                                 ITEMS.c.item_id == item_id)).first()
            return (r.seal, SealedItem(r.kind, r.item_id, r.recorded_at, r.hash)) if r else None

    def contents(self, kind: ItemKind, ids: Sequence[str]) -> dict[str, Content]:
        """The current content of the items with these ids that still exist."""
        out: dict[str, Content] = {}
        with self._reading() as conn:
            for start in range(0, len(ids), BATCH):
                chunk = list(ids[start:start + BATCH])
                if kind == DECISION:
                    rows = conn.execute(_decisions().where(DECISIONS.c.id.in_(chunk)))
                    out.update((r.id, _decision(r)) for r in rows)
                else:
                    numbers = [int(i) for i in chunk if i.isdigit()]
                    rows = conn.execute(_audit_events().where(AUDIT.c.id.in_(numbers)))
                    out.update((str(r.id), _audit_event(r)) for r in rows)
        return out

    def unsealed_before(self, floor: datetime) -> list[tuple[ItemKind, str, datetime]]:
        """Items recorded before ``floor`` that no seal lists, oldest first."""
        with self._reading() as conn:
            decisions = conn.execute(
                select(DECISIONS.c.id, DECISIONS.c.evaluated_at)
                .where(DECISIONS.c.evaluated_at < floor, _unsealed(DECISION, DECISIONS.c.id))
                .order_by(DECISIONS.c.evaluated_at, DECISIONS.c.id))
            found: list[tuple[ItemKind, str, datetime]] = [
                (DECISION, r.id, r.evaluated_at) for r in decisions]
            events = conn.execute(
                select(AUDIT.c.id, AUDIT.c.at)
                .where(AUDIT.c.at < floor, _unsealed(AUDIT_EVENT, _audit_id()))
                .order_by(AUDIT.c.at, AUDIT.c.id))
            found += [(AUDIT_EVENT, str(r.id), r.at) for r in events]
        return found

    def covering(self, start: datetime, end: datetime) -> list[Seal]:
        """The seals that list a decision recorded in [start, end)."""
        with self._reading() as conn:
            numbers = select(ITEMS.c.seal).where(
                ITEMS.c.kind == DECISION, ITEMS.c.recorded_at >= start,
                ITEMS.c.recorded_at < end).distinct()
            rows = conn.execute(select(SEALS).where(SEALS.c.number.in_(numbers))
                                .order_by(SEALS.c.number))
            return [_seal(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """How many items of each kind the seals list."""
        with self._reading() as conn:
            rows = conn.execute(select(ITEMS.c.kind, func.count()).group_by(ITEMS.c.kind))
            return {kind: int(n) for kind, n in rows}

    def pending(self, floor: datetime | None, before: datetime,
                limit: int | None) -> tuple[list[Pending], list[Pending]]:
        """Unsealed decisions and audit events recorded in [floor, before), each oldest
        first, at most ``limit`` of each when given (read without the sealing lock)."""
        with self._reading() as conn:
            return self._pending(conn, floor, before, limit)

    @staticmethod
    def _pending(conn: Connection, floor: datetime | None, before: datetime,
                 limit: int | None) -> tuple[list[Pending], list[Pending]]:
        decisions = conn.execute(
            _decisions().where(_span(DECISIONS.c.evaluated_at, floor, before),
                               _unsealed(DECISION, DECISIONS.c.id))
            .order_by(DECISIONS.c.evaluated_at, DECISIONS.c.id).limit(limit))
        events = conn.execute(
            _audit_events().where(_span(AUDIT.c.at, floor, before),
                                  _unsealed(AUDIT_EVENT, _audit_id()))
            .order_by(AUDIT.c.at, AUDIT.c.id).limit(limit))
        return ([(DECISION, r.id, r.evaluated_at, _decision(r)) for r in decisions],
                [(AUDIT_EVENT, str(r.id), r.at, _audit_event(r)) for r in events])

    # ------------------------------------------------------------------ writing

    @contextmanager
    def sealing(self) -> Iterator[SealingTransaction]:
        """One sealing transaction, holding the sealing lock; commits when the block ends
        without an exception."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                             {"key": SEALING_LOCK})
            yield SealingTransaction(conn)


class SealingTransaction:
    """What the sealer reads and writes while it holds the lock."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def newest(self, count: int) -> list[Seal]:
        """The newest seals, newest first."""
        return SealStore._newest(self.conn, count)

    def add(self, seal: Seal, items: Sequence[SealedItem]) -> None:
        """Writes the seal and its items (in leaf order)."""
        self.conn.execute(insert(SEALS).values(
            number=seal.number, previous_hash=seal.previous_hash, root=seal.root,
            items=seal.items, cutoff=seal.cutoff, sealed_at=seal.sealed_at, hash=seal.hash))
        rows = [{"kind": i.kind, "item_id": i.id, "seal": seal.number, "position": n,
                 "recorded_at": i.recorded_at, "hash": i.hash} for n, i in enumerate(items)]
        for start in range(0, len(rows), 2000):
            self.conn.execute(insert(ITEMS), rows[start:start + 2000])
