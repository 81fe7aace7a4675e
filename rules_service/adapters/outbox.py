"""The outbox's storage: events written beside the change that caused them, the deliveries
the worker fans them out to, and the claims that let several workers share the work.

Claims use ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent workers take
disjoint rows; SQLite has no row locks (its write transactions are serialised by ``BEGIN
IMMEDIATE``), so run one worker there. A claimed delivery carries a lease: a worker that
dies mid-delivery leaves the lease to run out, and the delivery is taken again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import uuid_utils
from sqlalchemy import Connection, Table, and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from rules_service.adapters.bulk_insert import insert_rows
from rules_service.adapters.orm import (
    DeliveryRow,
    EscalationRow,
    OutboxEventRow,
    RulesetRow,
    SubscriptionRow,
)
from rules_service.domain import notifications
from rules_service.domain.notifications import OutboxEvent

OUTBOX: Table = OutboxEventRow.__table__  # type: ignore[assignment]
DELIVERIES: Table = DeliveryRow.__table__  # type: ignore[assignment]
SUBSCRIPTIONS: Table = SubscriptionRow.__table__  # type: ignore[assignment]
ESCALATIONS: Table = EscalationRow.__table__  # type: ignore[assignment]
RULESETS: Table = RulesetRow.__table__  # type: ignore[assignment]

RETRYABLE_STATES = notifications.RETRYABLE_STATES
"""Deliveries the worker still has to attempt."""


def new_event_id() -> str:
    """A time-ordered UUID (version 7), so the outbox is read in the order things happened."""
    return str(uuid_utils.uuid7())


def event_row(event_type: str, ruleset_id: int | None, occurred_at: datetime,
              data: dict[str, Any]) -> dict[str, Any]:
    """One ``outbox_events`` row, ready to insert."""
    return {"id": new_event_id(), "type": event_type, "ruleset_id": ruleset_id,
            "occurred_at": occurred_at, "data": data, "dispatched_at": None}


def add_events(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Inserts events in the caller's transaction: one statement, whatever their number."""
    insert_rows(connection, OUTBOX, rows)


def escalation_opened_rows(opened: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``escalation.opened`` events of freshly inserted ``escalations`` rows: small, so the
    decision path pays one cheap insert; the worker does the fan-out."""
    return [event_row("escalation.opened", row["ruleset_id"], row["created_at"],
                      {"escalation_id": row["id"], "decision_id": row["decision_id"],
                       "version": row["version"], "to_role": row["to_role"],
                       "due_at": row["due_at"].isoformat() if row["due_at"] else None})
            for row in opened]


def add_event(session: Session, row: dict[str, Any]) -> None:
    """Inserts one event in the session's transaction (rolled back with it)."""
    session.execute(insert(OUTBOX), [row])


def skip_locked(stmt: Any, session: Session) -> Any:
    # SQLite renders no FOR UPDATE at all; its writers are serialised by BEGIN IMMEDIATE.
    if session.get_bind().dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=True)
    return stmt


def claim_events(session: Session, limit: int) -> list[OutboxEventRow]:
    """Events not yet fanned out, oldest first, locked for this transaction."""
    stmt = (select(OutboxEventRow).where(OutboxEventRow.dispatched_at.is_(None))
            .order_by(OutboxEventRow.occurred_at, OutboxEventRow.id).limit(limit))
    return list(session.scalars(skip_locked(stmt, session)))


def claim_deliveries(session: Session, now: datetime, lease_until: datetime,
                     limit: int) -> list[DeliveryRow]:
    """Deliveries due now and not leased to a live worker; leased to the caller until
    ``lease_until`` and counted as an attempt."""
    d = DeliveryRow
    stmt = (select(d).where(d.state.in_(RETRYABLE_STATES), d.next_attempt_at <= now,
                            or_(d.leased_until.is_(None), d.leased_until <= now))
            .order_by(d.next_attempt_at, d.id).limit(limit))
    rows = list(session.scalars(skip_locked(stmt, session)))
    for row in rows:
        row.leased_until = lease_until
        row.attempts += 1
    session.flush()
    return rows


def finish_delivery(session: Session, delivery_id: str, lease_until: datetime,
                    values: dict[str, Any]) -> bool:
    """Records an attempt's outcome, unless the lease was lost meanwhile (the delivery was
    taken again by another worker after this one overran its lease); True when recorded."""
    d = DELIVERIES
    result = session.execute(
        update(d).where(and_(d.c.id == delivery_id, d.c.leased_until == lease_until,
                             d.c.state.in_(RETRYABLE_STATES)))
        .values(leased_until=None, **values))
    return bool(getattr(result, "rowcount", 0))


def ruleset_names(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    """Ruleset names by id."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(select(RULESETS.c.id, RULESETS.c.name)
                           .where(RULESETS.c.id.in_(wanted)))
    return {row.id: row.name for row in rows}


def outbox_event(row: OutboxEventRow) -> OutboxEvent:
    """The domain event of an ``outbox_events`` row."""
    return OutboxEvent(row.id, row.type, row.ruleset_id, row.occurred_at, row.data,
                       row.dispatched_at)


class OutboxRepository:
    """The outbox as the services use it: add an event, claim the ones to fan out."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._claimed: dict[str, OutboxEventRow] = {}

    def add(self, event_type: str, ruleset_id: int | None, occurred_at: datetime,
            data: dict[str, Any]) -> None:
        """Adds one event in the current transaction (rolled back with it)."""
        add_event(self.session, event_row(event_type, ruleset_id, occurred_at, data))

    def claim(self, limit: int) -> list[OutboxEvent]:
        """Events not yet fanned out, oldest first, locked for this transaction."""
        rows = claim_events(self.session, limit)
        self._claimed.update((row.id, row) for row in rows)
        return [outbox_event(row) for row in rows]

    def mark_dispatched(self, events: Iterable[OutboxEvent], now: datetime) -> None:
        """Marks claimed events fanned out."""
        for event in events:
            self._claimed[event.id].dispatched_at = now
        self.session.flush()

    def by_ids(self, ids: Iterable[str]) -> dict[str, OutboxEvent]:
        """Events by id."""
        return {row.id: outbox_event(row) for row in self.session.scalars(
            select(OutboxEventRow).where(OutboxEventRow.id.in_(set(ids))))}

    def ruleset_names(self, ids: Iterable[int | None]) -> dict[int, str]:
        """Ruleset names by id."""
        return ruleset_names(self.session, ids)

    def oldest_waiting(self) -> datetime | None:
        """When the oldest event not yet fanned out happened."""
        return self.session.scalar(select(func.min(OutboxEventRow.occurred_at))
                                   .where(OutboxEventRow.dispatched_at.is_(None)))
