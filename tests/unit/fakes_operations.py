"""Fakes of the repositories the operational services use, and a fake unit of work shaped
like ``adapters.unit_of_work.UnitOfWork``: the escalation and notification services run
on them in memory, without a database or processes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from rules_service.domain.escalations import Escalation, StepTaken
from rules_service.domain.lifecycle import Actor
from rules_service.domain.notifications import (
    RETRYABLE_STATES,
    Delivery,
    OutboxEvent,
    Subscription,
)
from tests.unit.fakes import FakeClock

RULESETS_DIR = Path(__file__).resolve().parents[2] / "rulesets"
NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def definition_of(file_name: str) -> dict[str, Any]:
    """A ruleset file's definition, as a stored version holds it."""
    loaded = yaml.safe_load((RULESETS_DIR / file_name).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@dataclass
class FakePrincipal:
    name: str
    is_admin: bool = False
    is_automation: bool = False
    revoked_at: datetime | None = None
    email: str | None = None


class FakePrincipals:
    def __init__(self) -> None:
        self.items: dict[str, FakePrincipal] = {}

    def add(self, name: str, *, email: str | None = None, is_admin: bool = False,
            is_automation: bool = False) -> FakePrincipal:
        self.items[name] = FakePrincipal(name, is_admin, is_automation, email=email)
        return self.items[name]

    def get(self, name: str) -> FakePrincipal | None:
        return self.items.get(name)

    def all(self) -> list[FakePrincipal]:
        return sorted(self.items.values(), key=lambda p: p.name)


class FakeActors:
    """Principals as the lifecycle rules see them (``uow.actors``)."""

    def __init__(self, principals: FakePrincipals) -> None:
        self.principals = principals

    def get(self, name: str) -> Actor | None:
        who = self.principals.get(name)
        if who is None or who.revoked_at is not None:
            return None
        return Actor(who.name, who.is_admin, who.is_automation)

    def active_names(self) -> set[str]:
        return {p.name for p in self.principals.all() if p.revoked_at is None}


class FakeRulesets:
    def __init__(self) -> None:
        self.items: dict[str, SimpleNamespace] = {}

    def add(self, name: str) -> SimpleNamespace:
        row = SimpleNamespace(id=len(self.items) + 1, name=name)
        self.items[name] = row
        return row

    def get(self, name: str) -> SimpleNamespace | None:
        return self.items.get(name)

    def by_id(self, ruleset_id: int) -> SimpleNamespace:
        return next(r for r in self.items.values() if r.id == ruleset_id)


class FakeVersions:
    """Stored versions: what ``governance.ruleset_of`` reads of one."""

    def __init__(self, rulesets: FakeRulesets) -> None:
        self.rulesets = rulesets
        self.items: dict[tuple[int, int], SimpleNamespace] = {}

    def add(self, ruleset: str, number: int, definition: dict[str, Any], *,
            state: str = "active", base_version: int | None = None, author: str = "admin",
            signers: tuple[str, ...] = ()) -> SimpleNamespace:
        rs = self.rulesets.get(ruleset) or self.rulesets.add(ruleset)
        text = json.dumps(definition, sort_keys=True, default=str)
        row = SimpleNamespace(
            ruleset_id=rs.id, ruleset=rs, number=number, state=state, definition=definition,
            base_version=base_version, author=author,
            signoffs=[SimpleNamespace(principal=name) for name in signers],
            content_hash=hashlib.sha256(text.encode()).hexdigest())
        self.items[(rs.id, number)] = row
        return row

    def get(self, ruleset_id: int, number: int) -> SimpleNamespace | None:
        return self.items.get((ruleset_id, number))

    def active(self, ruleset_id: int) -> SimpleNamespace | None:
        return next((v for (rid, _), v in self.items.items()
                     if rid == ruleset_id and v.state == "active"), None)

    def newest(self, ruleset_id: int) -> SimpleNamespace | None:
        mine = [v for (rid, _), v in self.items.items() if rid == ruleset_id]
        return max(mine, key=lambda v: v.number) if mine else None


class FakeOutbox:
    def __init__(self, rulesets: FakeRulesets) -> None:
        self.rulesets = rulesets
        self.events: list[OutboxEvent] = []

    def add(self, event_type: str, ruleset_id: int | None, occurred_at: datetime,
            data: dict[str, Any]) -> None:
        self.events.append(OutboxEvent(f"event-{len(self.events) + 1:04d}", event_type,
                                       ruleset_id, occurred_at, data))

    def claim(self, limit: int) -> list[OutboxEvent]:
        waiting = [e for e in self.events if e.dispatched_at is None]
        return sorted(waiting, key=lambda e: (e.occurred_at, e.id))[:limit]

    def mark_dispatched(self, events: list[OutboxEvent], now: datetime) -> None:
        done = {e.id for e in events}
        self.events = [replace(e, dispatched_at=now) if e.id in done else e
                       for e in self.events]

    def by_ids(self, ids: Any) -> dict[str, OutboxEvent]:
        wanted = set(ids)
        return {e.id: e for e in self.events if e.id in wanted}

    def ruleset_names(self, ids: Any) -> dict[int, str]:
        return {rid: self.rulesets.by_id(rid).name for rid in ids if rid is not None}

    def oldest_waiting(self) -> datetime | None:
        return min((e.occurred_at for e in self.events if e.dispatched_at is None),
                   default=None)

    def of_type(self, event_type: str) -> list[OutboxEvent]:
        return [e for e in self.events if e.type == event_type]


class FakeEscalations:
    def __init__(self, outbox: FakeOutbox) -> None:
        self.outbox = outbox
        self.items: dict[str, Escalation] = {}
        self.steps_of: dict[str, list[StepTaken]] = {}
        self.resolutions: list[str] = []

    def add(self, escalation: Escalation) -> Escalation:
        self.items[escalation.id] = escalation
        return escalation

    def get(self, escalation_id: str, *, for_update: bool = False,
            with_decision: bool = False) -> Escalation | None:
        found = self.items.get(escalation_id)
        return replace(found, new_steps=[], events=[]) if found is not None else None

    def exists(self, escalation_id: str) -> bool:
        return escalation_id in self.items

    def find(self, *, status: str | None = None, ruleset_id: int | None = None,
             overdue_at: datetime | None = None, limit: int = 1000) -> list[Escalation]:
        out = [e for e in self.items.values()
               if (status is None or e.status == status)
               and (ruleset_id is None or e.ruleset_id == ruleset_id)
               and (overdue_at is None or e.is_overdue(overdue_at))]
        return sorted(out, key=lambda e: (e.created_at, e.id))[:limit]

    def claim_due(self, now: datetime, limit: int) -> list[Escalation]:
        due = [e for e in self.items.values()
               if e.status == "open" and e.due_at is not None and e.due_at < now
               and (e.breached_at is None
                    or (e.next_step_at is not None and e.next_step_at < now))]
        return [replace(e, new_steps=[], events=[])
                for e in sorted(due, key=lambda e: (e.due_at, e.id))[:limit]]

    def save(self, escalation: Escalation) -> None:
        before = self.items[escalation.id]
        if before.status == "open" and escalation.status == "resolved":
            self.resolutions.append(escalation.id)
        self.steps_of.setdefault(escalation.id, []).extend(escalation.new_steps)
        for event in escalation.events:
            self.outbox.add(event.type, escalation.ruleset_id, event.occurred_at, event.data)
        self.items[escalation.id] = replace(escalation, new_steps=[], events=[])

    def steps(self, escalation_id: str) -> list[StepTaken]:
        return list(self.steps_of.get(escalation_id, []))

    def breaches(self, *, since: datetime | None = None, until: datetime | None = None,
                 ruleset_ids: Any = None) -> dict[int, int]:
        out: dict[int, int] = {}
        for e in self.items.values():
            if e.breached_at is None or e.due_at is None:
                continue
            if (since is not None and e.due_at < since) or \
                    (until is not None and e.due_at >= until):
                continue
            out[e.ruleset_id] = out.get(e.ruleset_id, 0) + 1
        return out


class FakeSubscriptions:
    def __init__(self, principals: FakePrincipals) -> None:
        self.principals = principals
        self.items: dict[str, Subscription] = {}
        self.deliveries: FakeDeliveries | None = None

    def add(self, subscription: Subscription) -> Subscription:
        self.items[subscription.id] = subscription
        return subscription

    def get(self, subscription_id: str) -> Subscription | None:
        return self.items.get(subscription_id)

    def find(self, *, created_by: str | None = None) -> list[Subscription]:
        return sorted((s for s in self.items.values()
                       if created_by is None or s.created_by == created_by),
                      key=lambda s: (s.created_at, s.id))

    def all(self) -> list[Subscription]:
        return list(self.items.values())

    def _live(self, subscription: Subscription) -> bool:
        creator = self.principals.get(subscription.created_by)
        return creator is not None and creator.revoked_at is None

    def live(self) -> list[Subscription]:
        return [s for s in self.items.values() if self._live(s)]

    def delete(self, subscription_id: str) -> None:
        assert self.deliveries is not None
        for d in self.deliveries.items.values():
            if d.subscription_id == subscription_id and d.state in RETRYABLE_STATES:
                d.state, d.last_error, d.leased_until = \
                    "dead", "the subscription was deleted", None
            if d.subscription_id == subscription_id:
                d.subscription_id = None  # ON DELETE SET NULL
        del self.items[subscription_id]

    def secrets(self, ids: Any) -> dict[str, str | None]:
        return {i: self.items[i].secret for i in ids
                if i and i in self.items and self._live(self.items[i])}

    def contacts(self) -> dict[str, str]:
        return {p.name: p.email for p in self.principals.items.values()
                if p.email and p.revoked_at is None}


class FakeDeliveries:
    def __init__(self) -> None:
        self.items: dict[str, Delivery] = {}

    def add_all(self, deliveries: list[Delivery]) -> None:
        for d in deliveries:
            self.items[d.id] = d

    def get(self, delivery_id: str) -> Delivery | None:
        found = self.items.get(delivery_id)
        return replace(found) if found is not None else None

    def save(self, delivery: Delivery) -> None:
        self.items[delivery.id] = replace(delivery)

    def page(self, *, limit: int, state: str | None = None, event: str | None = None,
             subscription: str | None = None, before: tuple[datetime, str] | None = None,
             created_by: str | None = None) -> list[Delivery]:
        raise NotImplementedError("the delivery log's pages are tested on the database")

    def claim(self, now: datetime, lease_until: datetime, limit: int) -> list[Delivery]:
        due = sorted((d for d in self.items.values()
                      if d.state in RETRYABLE_STATES and d.next_attempt_at is not None
                      and d.next_attempt_at <= now
                      and (d.leased_until is None or d.leased_until <= now)),
                     key=lambda d: (d.next_attempt_at, d.id))[:limit]
        for d in due:
            d.leased_until = lease_until
            d.attempts += 1
        return [replace(d) for d in due]

    def finish(self, delivery_id: str, lease_until: datetime, values: dict[str, Any]) -> bool:
        d = self.items[delivery_id]
        if d.leased_until != lease_until or d.state not in RETRYABLE_STATES:
            return False
        d.leased_until = None
        for key, value in values.items():
            setattr(d, key, value)
        return True

    def counts_by_state(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.items.values():
            out[d.state] = out.get(d.state, 0) + 1
        return out

    def oldest_waiting(self) -> datetime | None:
        return min((d.created_at for d in self.items.values()
                    if d.state in RETRYABLE_STATES and d.created_at is not None),
                   default=None)


@dataclass
class FakeUnitOfWork:
    """Shaped like ``UnitOfWork``: enter, commit, leave (rolls back what was not committed
    only in the sense that ``committed`` counts the commits the service made)."""

    clock: FakeClock = field(default_factory=lambda: FakeClock(NOON))
    committed: int = 0

    def __post_init__(self) -> None:
        self.principals = FakePrincipals()
        self.actors = FakeActors(self.principals)
        self.rulesets = FakeRulesets()
        self.versions = FakeVersions(self.rulesets)
        self.outbox = FakeOutbox(self.rulesets)
        self.escalations = FakeEscalations(self.outbox)
        self.subscriptions = FakeSubscriptions(self.principals)
        self.deliveries = FakeDeliveries()
        self.subscriptions.deliveries = self.deliveries

    def readonly(self) -> FakeUnitOfWork:
        return self

    def __enter__(self) -> FakeUnitOfWork:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def commit(self) -> None:
        self.committed += 1

    def rollback(self) -> None:
        return None

    def live_changed(self) -> None:
        return None

    def now(self) -> datetime:
        return self.clock()
