"""Subscriptions and their deliveries in the database, as ``domain.notifications``
objects: the pages of the delivery log, the worker's claim with a lease, and the figures
for /metrics."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from rules_service.adapters import outbox
from rules_service.adapters.orm import DeliveryRow, PrincipalRow, SubscriptionRow
from rules_service.domain.notifications import RETRYABLE_STATES, Delivery, Subscription


def subscription_of(row: SubscriptionRow) -> Subscription:
    """The domain subscription of a row."""
    return Subscription(row.id, row.url, list(row.events), row.ruleset, row.secret,
                        row.created_by, row.created_at)


def delivery_of(row: DeliveryRow) -> Delivery:
    """The domain delivery of a row."""
    return Delivery(row.id, row.event_id, row.event_type, row.subscription_id, row.recipient,
                    row.target, row.state, row.attempts, row.next_attempt_at,
                    row.leased_until, row.last_status, row.last_error, row.created_at,
                    row.delivered_at)


class SubscriptionRepository:
    """Webhook and email subscriptions."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, subscription: Subscription) -> Subscription:
        """Stores a new subscription; returns it as stored."""
        row = SubscriptionRow(id=subscription.id, url=subscription.url,
                              events=list(subscription.events), ruleset=subscription.ruleset,
                              secret=subscription.secret, created_by=subscription.created_by,
                              created_at=subscription.created_at)
        self.session.add(row)
        self.session.flush()
        return subscription_of(row)

    def get(self, subscription_id: str) -> Subscription | None:
        """One subscription by id, or None."""
        row = self.session.get(SubscriptionRow, subscription_id)
        return subscription_of(row) if row is not None else None

    def find(self, *, created_by: str | None = None) -> list[Subscription]:
        """Subscriptions oldest first; only those one principal made when ``created_by``."""
        stmt = select(SubscriptionRow).order_by(SubscriptionRow.created_at, SubscriptionRow.id)
        if created_by is not None:
            stmt = stmt.where(SubscriptionRow.created_by == created_by)
        return [subscription_of(r) for r in self.session.scalars(stmt)]

    def all(self) -> list[Subscription]:
        """Every subscription, in no particular order."""
        return [subscription_of(r) for r in self.session.scalars(select(SubscriptionRow))]

    def live(self) -> list[Subscription]:
        """Every subscription whose creator is a known, unrevoked principal."""
        return [subscription_of(r) for r in self.session.scalars(
            select(SubscriptionRow).join(PrincipalRow,
                                         PrincipalRow.name == SubscriptionRow.created_by)
            .where(PrincipalRow.revoked_at.is_(None)))]

    def delete(self, subscription_id: str) -> None:
        """Deletes a subscription; its deliveries still to be made are given up (dead)."""
        self.session.execute(
            update(DeliveryRow).where(DeliveryRow.subscription_id == subscription_id,
                                      DeliveryRow.state.in_(RETRYABLE_STATES))
            .values(state="dead", last_error="the subscription was deleted",
                    leased_until=None))
        row = self.session.get(SubscriptionRow, subscription_id)
        if row is not None:
            self.session.delete(row)

    def secrets(self, ids: Iterable[str | None]) -> dict[str, str | None]:
        """The signing secrets of subscriptions by id; a subscription whose creator is
        revoked has none (its deliveries are not sent)."""
        wanted = {i for i in ids if i}
        return {sub_id: secret for sub_id, secret in self.session.execute(
            select(SubscriptionRow.id, SubscriptionRow.secret)
            .join(PrincipalRow, PrincipalRow.name == SubscriptionRow.created_by)
            .where(SubscriptionRow.id.in_(wanted), PrincipalRow.revoked_at.is_(None)))}

    def contacts(self) -> dict[str, str]:
        """The email address of every unrevoked principal that has one, by name."""
        return {name: email for name, email in self.session.execute(
            select(PrincipalRow.name, PrincipalRow.email)
            .where(PrincipalRow.email.is_not(None), PrincipalRow.revoked_at.is_(None)))
            if email}


class DeliveryRepository:
    """The delivery log: one row per event and target."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._rows: dict[str, DeliveryRow] = {}

    def add_all(self, deliveries: Iterable[Delivery]) -> None:
        """Inserts new deliveries in one statement."""
        rows = [asdict(d) for d in deliveries]
        if rows:
            self.session.execute(insert(outbox.DELIVERIES), rows)

    def get(self, delivery_id: str) -> Delivery | None:
        """One delivery by id, or None."""
        row = self.session.get(DeliveryRow, delivery_id)
        if row is None:
            return None
        self._rows[row.id] = row
        return delivery_of(row)

    def save(self, delivery: Delivery) -> None:
        """Writes back a delivery loaded here (its state, tries and timing)."""
        row = self._rows[delivery.id]
        row.state = delivery.state
        row.attempts = delivery.attempts
        if delivery.next_attempt_at is not None:
            row.next_attempt_at = delivery.next_attempt_at
        row.leased_until = delivery.leased_until
        self.session.flush()

    def page(self, *, limit: int, state: str | None = None, event: str | None = None,
             subscription: str | None = None, before: tuple[datetime, str] | None = None,
             created_by: str | None = None) -> list[Delivery]:
        """Deliveries newest first; ``before`` is the (created_at, id) cursor, and
        ``created_by`` keeps the deliveries of that principal's subscriptions."""
        d = DeliveryRow
        stmt = select(d).order_by(d.created_at.desc(), d.id.desc()).limit(limit)
        if state is not None:
            stmt = stmt.where(d.state == state)
        if event is not None:
            stmt = stmt.where(d.event_type == event)
        if subscription is not None:
            stmt = stmt.where(d.subscription_id == subscription)
        if before is not None:
            stmt = stmt.where(or_(d.created_at < before[0],
                                  and_(d.created_at == before[0], d.id < before[1])))
        if created_by is not None:
            mine = select(SubscriptionRow.id).where(SubscriptionRow.created_by == created_by)
            stmt = stmt.where(d.subscription_id.in_(mine))
        return [delivery_of(r) for r in self.session.scalars(stmt)]

    def claim(self, now: datetime, lease_until: datetime, limit: int) -> list[Delivery]:
        """Deliveries due now and not leased to a live worker; leased to the caller until
        ``lease_until`` and counted as an attempt."""
        return [delivery_of(r) for r in outbox.claim_deliveries(self.session, now,
                                                               lease_until, limit)]

    def finish(self, delivery_id: str, lease_until: datetime, values: dict[str, Any]) -> bool:
        """Records an attempt's outcome unless the lease was lost meanwhile; True when
        recorded."""
        return outbox.finish_delivery(self.session, delivery_id, lease_until, values)

    def counts_by_state(self) -> dict[str, int]:
        """How many deliveries are in each state (states with none are left out)."""
        return {state: int(count) for state, count in self.session.execute(
            select(DeliveryRow.state, func.count()).group_by(DeliveryRow.state))}

    def oldest_waiting(self) -> datetime | None:
        """When the oldest delivery still to be attempted was made."""
        return self.session.scalar(select(func.min(DeliveryRow.created_at))
                                   .where(DeliveryRow.state.in_(RETRYABLE_STATES)))
