"""Notification use cases: subscriptions, the delivery log and its retry, principals'
contact addresses, and the escalation breaches the dashboard counts."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

import uuid_utils

from rules_service.adapters import senders
from rules_service.adapters.heartbeats import Heartbeat
from rules_service.adapters.unit_of_work import UnitOfWork
from rules_service.domain import lifecycle
from rules_service.domain import notifications as rules
from rules_service.domain.errors import Forbidden, NotFound, RequestInvalid
from rules_service.domain.problems import Problem
from rules_service.domain.webhook_targets import (
    Address,
    AllowList,
    literal_address,
    status_class,
    strip_credentials,
)
from rules_service.services.governance import resolve_actor, ruleset_of
from rules_service.services.views import iso

MAX_PAGE = 1000
MIN_SECRET_LENGTH = 16
"""Shortest webhook secret accepted: a short HMAC key is a guessable one."""

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z|^[^@\s]+@localhost\Z")


@dataclass(frozen=True)
class SubscriptionView:
    """A subscription (its secret is never shown again)."""

    id: str
    url: str
    events: list[str]
    ruleset: str | None
    created_by: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"id": self.id, "url": self.url, "events": list(self.events),
                "ruleset": self.ruleset, "created_by": self.created_by,
                "created_at": iso(self.created_at)}


@dataclass(frozen=True)
class DeliveryView:
    """One event to one target, with the body a webhook receives."""

    id: str
    event_id: str
    event: str
    subscription: str | None
    recipient: str | None
    target: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"id": self.id, "event_id": self.event_id, "event": self.event,
                "subscription": self.subscription, "recipient": self.recipient,
                "target": self.target, "state": self.state, "attempts": self.attempts,
                "next_attempt_at": iso(self.next_attempt_at), "last_status": self.last_status,
                "last_error": self.last_error, "created_at": iso(self.created_at),
                "delivered_at": iso(self.delivered_at), "payload": self.payload}




def _subscription_view(row: rules.Subscription) -> SubscriptionView:
    return SubscriptionView(row.id, strip_credentials(row.url), list(row.events), row.ruleset,
                            row.created_by, row.created_at)


# --------------------------------------------------------------------------- subscriptions


def _check_subscription(url: str, events: list[str], secret: str | None) -> list[Problem]:
    problems = []
    parts = urlsplit(url) if isinstance(url, str) else None
    is_mail = parts is not None and parts.scheme == "mailto"
    if parts is None or parts.scheme not in ("http", "https", "mailto"):
        problems.append(Problem("url", "give an https:// (or http://) URL, or mailto:address"))
    elif is_mail:
        address = parseaddr(url[len("mailto:"):])[1]
        if not _EMAIL.match(address) or address != url[len("mailto:"):]:
            problems.append(Problem("url", "mailto: needs one plain address, like "
                                           "mailto:ops@example.com"))
        if secret:
            problems.append(Problem("secret", "an email subscription has no secret"))
    else:
        if not parts.hostname:
            problems.append(Problem("url", "the URL names no host"))
        if not secret or len(secret) < MIN_SECRET_LENGTH:
            problems.append(Problem("secret", f"a webhook needs a secret of at least "
                                              f"{MIN_SECRET_LENGTH} characters to sign with"))
    if not events:
        problems.append(Problem("events", "name at least one event type"))
    for i, name in enumerate(events):
        if name not in rules.EVENT_TYPES:
            problems.append(Problem(f"events[{i}]", f"unknown event type {name!r}; one of "
                                                    f"{', '.join(rules.EVENT_TYPES)}"))
    return problems


def _check_owner(uow: UnitOfWork, actor: str, ruleset: str | None, what: str) -> None:
    """Admins may do anything; otherwise the actor must hold a role in that ruleset (of its
    active version, else its newest)."""
    who = resolve_actor(uow, actor)
    if who.is_admin:
        return
    if who.is_automation:
        raise Forbidden(f"an automation cannot {what}")
    if ruleset is None:
        raise Forbidden(f"only an admin can {what} for every ruleset")
    rs = uow.rulesets.get(ruleset)
    if rs is None:
        raise NotFound(f"no ruleset named {ruleset}")
    governing = uow.versions.active(rs.id) or uow.versions.newest(rs.id)
    if governing is None or not ruleset_of(governing).roles_of(who.name):
        raise Forbidden(f"{who.name} is not an owner of {ruleset}; only its owners or an "
                        f"admin can {what}")


def _check_target(url: str, allow: tuple[str, ...],
                  resolve: Callable[[str, int], list[Address]]) -> list[Problem]:
    """A webhook's host may not be, or resolve to, an internal address unless allowed (a
    host that does not resolve yet is checked again at each delivery)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return []
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return [Problem("url", "the URL's port is not a number from 1 to 65535")]
    literal = literal_address(parts.hostname)
    addresses = [literal] if literal is not None else resolve(parts.hostname, port)
    refusal = AllowList.parse(allow)[0].refusal(parts.hostname, addresses)
    return [Problem("url", refusal)] if refusal else []


def create_subscription(uow: UnitOfWork, *, url: str, events: list[str],
                        ruleset: str | None = None, secret: str | None = None,
                        actor: str, allow: tuple[str, ...] = (),
                        resolve: Callable[[str, int], list[Address]] = senders.resolve
                        ) -> SubscriptionView:
    """Subscribes a webhook or an email address to event types, for one ruleset or all.

    422 lists every problem (a target at an internal address the allow list does not
    name is one); 403 unless admin (or an owner of that ruleset); 404 unknown ruleset.
    A user name and password in the URL are dropped.
    """
    wanted = list(dict.fromkeys(events or []))
    problems = _check_subscription(url, wanted, secret)
    if not problems:
        url = strip_credentials(url)
        problems = _check_target(url, allow, resolve)
    if problems:
        raise RequestInvalid(problems)
    with uow:
        _check_owner(uow, actor, ruleset, "subscribe")
        if ruleset is not None and uow.rulesets.get(ruleset) is None:
            raise NotFound(f"no ruleset named {ruleset}")
        stored = uow.subscriptions.add(rules.Subscription(
            str(uuid_utils.uuid7()), url, wanted, ruleset, secret or None, actor, uow.now()))
        view = _subscription_view(stored)
        uow.commit()
    return view


def list_subscriptions(uow: UnitOfWork, *, actor: str) -> list[SubscriptionView]:
    """Every subscription for an admin; one's own for anyone else."""
    with uow.readonly():
        who = resolve_actor(uow, actor)
        found = uow.subscriptions.find(created_by=None if who.is_admin else who.name)
        return [_subscription_view(s) for s in found]


def delete_subscription(uow: UnitOfWork, subscription_id: str, *, actor: str) -> None:
    """Deletes a subscription; its deliveries still to be made are given up (dead).

    403 unless admin, its creator or an owner of its ruleset; 404 unknown.
    """
    with uow:
        sub = uow.subscriptions.get(subscription_id)
        if sub is None:
            raise NotFound(f"no subscription with id {subscription_id}")
        if resolve_actor(uow, actor).name != sub.created_by:
            _check_owner(uow, actor, sub.ruleset, "delete this subscription")
        uow.subscriptions.delete(sub.id)
        uow.commit()


# --------------------------------------------------------------------------- deliveries


def _encode_cursor(row: rules.Delivery) -> str:
    assert row.created_at is not None  # every stored delivery has one
    raw = f"{row.created_at.isoformat()}|{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, delivery_id = raw.split("|", 1)
        return lifecycle.ensure_utc(datetime.fromisoformat(at)), delivery_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise RequestInvalid([Problem("cursor", "not a cursor this service gave out")]) from None


def _delivery_views(uow: UnitOfWork, rows: list[rules.Delivery], *, admin: bool = True
                    ) -> list[DeliveryView]:
    """The deliveries as shown: an admin reads the status and error of the last attempt,
    anyone else the status class only (never the socket's error)."""
    events = uow.outbox.by_ids({r.event_id for r in rows})
    names = uow.outbox.ruleset_names(e.ruleset_id for e in events.values())
    out = []
    for row in rows:
        assert row.created_at is not None  # every stored delivery has one
        event = events[row.event_id]
        payload = json.loads(rules.webhook_body(event.id, event.type, event.occurred_at,
                                                names.get(event.ruleset_id or 0), event.data))
        out.append(DeliveryView(
            row.id, row.event_id, row.event_type, row.subscription_id, row.recipient,
            strip_credentials(row.target), row.state, row.attempts,
            row.next_attempt_at if row.state in ("queued", "failed") else None,
            row.last_status if admin else None,
            row.last_error if admin else status_class(row.last_status, row.last_error),
            row.created_at, row.delivered_at, payload))
    return out


def list_deliveries(uow: UnitOfWork, *, actor: str, state: str | None = None,
                    event: str | None = None, subscription: str | None = None,
                    limit: int = 100, cursor: str | None = None
                    ) -> tuple[list[DeliveryView], str | None]:
    """Deliveries newest first, and the next page's cursor. An admin sees all; anyone else
    the deliveries of their own subscriptions."""
    problems = []
    if state is not None and state not in rules.DELIVERY_STATES:
        problems.append(Problem("state", f"must be one of {', '.join(rules.DELIVERY_STATES)}"))
    if event is not None and event not in rules.EVENT_TYPES:
        problems.append(Problem("event", f"unknown event type {event!r}"))
    if not 1 <= limit <= MAX_PAGE:
        problems.append(Problem("limit", f"must be between 1 and {MAX_PAGE}"))
    if problems:
        raise RequestInvalid(problems)
    before = _decode_cursor(cursor) if cursor else None
    with uow.readonly():
        who = resolve_actor(uow, actor)
        rows = uow.deliveries.page(limit=limit + 1, state=state, event=event,
                                   subscription=subscription, before=before,
                                   created_by=None if who.is_admin else who.name)
        next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
        return _delivery_views(uow, rows[:limit], admin=who.is_admin), next_cursor


def retry_delivery(uow: UnitOfWork, delivery_id: str, *, actor: str) -> DeliveryView:
    """Queues a dead delivery again with a fresh count of tries.

    403 unless admin or the subscription's creator; 404 unknown; 409 ``not_dead``.
    """
    with uow:
        who = resolve_actor(uow, actor)
        delivery = uow.deliveries.get(delivery_id)
        if delivery is None:
            raise NotFound(f"no delivery with id {delivery_id}")
        sub = uow.subscriptions.get(delivery.subscription_id) \
            if delivery.subscription_id else None
        if not who.is_admin and (sub is None or sub.created_by != who.name):
            raise Forbidden("only an admin or the subscription's creator can retry it")
        delivery.retry(uow.now())
        uow.deliveries.save(delivery)
        [view] = _delivery_views(uow, [delivery], admin=who.is_admin)
        uow.commit()
    return view


@dataclass(frozen=True)
class DeliveryHealth:
    """The delivery figures for /metrics: counts by state and the oldest undelivered age."""

    by_state: dict[str, int]
    oldest_undelivered_s: float


def delivery_health(uow: UnitOfWork) -> DeliveryHealth:
    """Counts by state, and how long the oldest queued or failed delivery (or event not yet
    fanned out) has waited."""
    with uow.readonly():
        now = uow.now()
        counts = {state: 0 for state in rules.DELIVERY_STATES}
        counts.update(uow.deliveries.counts_by_state())
        oldest = uow.deliveries.oldest_waiting()
        oldest_event = uow.outbox.oldest_waiting()
        waiting = [t for t in (oldest, oldest_event) if t is not None]
        age = (now - lifecycle.ensure_utc(min(waiting))).total_seconds() if waiting else 0.0
        return DeliveryHealth(counts, max(0.0, age))


def worker_heartbeats(uow: UnitOfWork) -> list[Heartbeat]:
    """Each notification worker heard from lately: its last pass and its totals."""
    with uow.readonly():
        return uow.heartbeats.all()


# --------------------------------------------------------------------------- escalations


def escalation_breaches(uow: UnitOfWork, *, since: datetime | None = None,
                        until: datetime | None = None) -> int:
    """How many escalations breached their target with their due time in [since, until)."""
    with uow.readonly():
        return sum(uow.escalations.breaches(since=since, until=until).values())


@dataclass(frozen=True)
class EscalationStepView:
    """One step of an overdue escalation's walk along the runbook's path."""

    step: int
    principal: str | None
    at: datetime
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``skipped``: passed over by a late walk, nobody paged)."""
        return {"step": self.step, "principal": self.principal, "at": iso(self.at),
                "skipped": self.skipped}


def escalation_steps(uow: UnitOfWork, escalation_id: str) -> list[EscalationStepView]:
    """The steps an escalation took along its path, in order; 404 when unknown."""
    with uow.readonly():
        if not uow.escalations.exists(escalation_id):
            raise NotFound(f"no escalation with id {escalation_id}")
        return [EscalationStepView(s.step, s.principal, s.at, s.skipped)
                for s in uow.escalations.steps(escalation_id)]


# --------------------------------------------------------------------------- contacts


def set_contact(uow: UnitOfWork, name: str, *, email: str | None) -> str | None:
    """Gives a principal the email address its notifications go to (None removes it)."""
    if email is not None and not _EMAIL.match(email):
        raise RequestInvalid([Problem("email", f"not an email address: {email!r}")])
    with uow:
        account = uow.people.get(name)
        if account is None:
            raise NotFound(f"no principal named {name}")
        account.email = email
        uow.people.save(account)
        uow.commit()
    return email
