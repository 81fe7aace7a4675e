"""Notifications as plain rules: which events exist, who hears of them by default, how an
overdue escalation walks the runbook's path, how long to wait before a retry, and how a
webhook is signed. No I/O here; the service layer and the worker apply these.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from rules_service.domain import weekly_report
from rules_service.domain.errors import Conflict
from rules_service.domain.lifecycle import AuditAction
from rules_service.domain.ruleset import ROLES, Ruleset
from rules_service.language.wording import with_article

EVENT_TYPES: tuple[str, ...] = (
    "version.proposed", "version.signed_off", "version.approved", "version.rejected",
    "version.activated", "version.rolled_back", "version.withdrawn", "version.stale",
    "escalation.opened", "escalation.overdue", "escalation.resolved",
    "ruleset.paused", "ruleset.resumed", "ruleset.review_due", "report.weekly",
    "version.shadow_diverged",
)
"""Every event type a subscription may name; the only ones ever told."""

VERSION_EVENTS: dict[AuditAction, str] = {
    AuditAction.PROPOSED: "version.proposed",
    AuditAction.SIGNED_OFF: "version.signed_off",
    AuditAction.APPROVED: "version.approved",
    AuditAction.REJECTED: "version.rejected",
    AuditAction.ACTIVATED: "version.activated",
    AuditAction.ROLLED_BACK: "version.rolled_back",
    AuditAction.WITHDRAWN: "version.withdrawn",
    AuditAction.STALE: "version.stale",
    AuditAction.PAUSED: "ruleset.paused",
    AuditAction.RESUMED: "ruleset.resumed",
}
"""The audit actions worth telling, and their event types (``superseded`` is told as the
activation or rollback that caused it); a pause and a resume are told as the ruleset's."""

REVIEW_DUE = "ruleset.review_due"
"""Told once per activation, when the policy's review rhythm (``review_every``) says the
active version is due for a review."""

DELIVERY_STATES: tuple[str, ...] = ("queued", "delivered", "failed", "dead")
"""A delivery is queued, delivered, failed (to be retried) or dead (no more tries)."""


def signoff_recipients(authority: Ruleset) -> list[str]:
    """Who hears of a proposal: holders (primary and backup) of each required sign-off role."""
    return _unique(name for role in authority.signoff for name in authority.holders_of(role))


def owner_recipients(ruleset: Ruleset) -> list[str]:
    """Who hears of an activation or rollback: the primary of each of the four roles."""
    return _unique(ruleset.owners[role].primary for role in ROLES if role in ruleset.owners)


def business_owner_recipients(ruleset: Ruleset) -> list[str]:
    """Who hears that a policy is due for review: the business owner, primary and backup."""
    return _unique(ruleset.holders_of("business_owner"))


def stale_recipients(author: str, signers: Iterable[str]) -> list[str]:
    """Who hears that a version went stale: its author and everyone who signed it."""
    return _unique([author, *signers])


def shadow_recipients(author: str, authority: Ruleset) -> list[str]:
    """Who hears that a version in shadow diverged: its author and the business owner
    (primary and backup), who set the threshold."""
    return _unique([author, *authority.holders_of("business_owner")])


def escalation_recipient(ruleset: Ruleset, role: str) -> str | None:
    """Who hears of a new escalation: the primary holder of the role it goes to."""
    holders = ruleset.owners.get(role)
    return holders.primary if holders is not None else None


def escalation_path(ruleset: Ruleset) -> list[str]:
    """The runbook's escalation path (people or teams, in order); empty when not given."""
    esc = ruleset.runbook.get("escalation") or {}
    path = esc.get("path") if isinstance(esc, dict) else None
    return [str(p) for p in path] if isinstance(path, list) else []


def next_on_path(ruleset: Ruleset, role: str) -> list[str]:
    """Who is told, in order, as an escalation stays open past each target interval: the
    path after the holder who already has it (the whole path when that holder is not on it)."""
    path = escalation_path(ruleset)
    holder = escalation_recipient(ruleset, role)
    if holder in path:
        return path[path.index(holder) + 1:]
    return path


@dataclass(frozen=True)
class EscalationStep:
    """One step of an overdue escalation's walk: its number, who is told, when the next is,
    and the steps passed over without paging anyone (``(number, person)``)."""

    step: int
    notify: str | None
    next_step_at: datetime | None
    skipped: tuple[tuple[int, str], ...] = ()


def escalation_step(ruleset: Ruleset, role: str, steps_taken: int, step_at: datetime,
                    interval: timedelta, now: datetime | None = None) -> EscalationStep:
    """The step current at ``now`` (default ``step_at``) after ``steps_taken`` earlier ones,
    the next being due at ``step_at``. When whole intervals have passed since (the worker was
    down), the steps they would have taken are skipped, recorded but not paged: only the
    person the walk has reached by now is told. The first step marks the breach even when
    the path is exhausted; later ones happen only while people remain."""
    remaining = next_on_path(ruleset, role)
    late = max(0, int(((now or step_at) - step_at) / interval)) if interval else 0
    current = min(steps_taken + late, max(len(remaining) - 1, steps_taken))
    skipped = tuple((i + 1, remaining[i]) for i in range(steps_taken, current))
    notify = remaining[current] if current < len(remaining) else None
    more = current + 1 < len(remaining)
    next_at = step_at + interval * (current - steps_taken + 1) if more else None
    return EscalationStep(current + 1, notify, next_at, skipped)


def path_reached(ruleset: Ruleset, role: str, steps_taken: int) -> list[str]:
    """The people on the runbook's path an escalation to ``role`` has reached after
    ``steps_taken`` steps (paged or passed over): each of them may resolve it."""
    return next_on_path(ruleset, role)[:steps_taken]


def retry_delay(attempts: int, *, base_s: float, cap_s: float,
                rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with jitter after ``attempts`` failed tries: half the doubled
    delay fixed, half random, so retries of many deliveries spread out (never above cap)."""
    delay = min(cap_s, base_s * (2 ** max(0, attempts - 1)))
    jitter = (rng or random).uniform(0, delay / 2)
    return timedelta(seconds=delay / 2 + jitter)


def webhook_body(event_id: str, event_type: str, occurred_at: datetime, ruleset: str | None,
                 data: dict[str, Any]) -> bytes:
    """The JSON a webhook receives: the same bytes on every retry of one event."""
    payload = {"id": event_id, "type": event_type,
               "occurred_at": occurred_at.isoformat().replace("+00:00", "Z"),
               "ruleset": ruleset, "data": data}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode("utf-8")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``X-Rules-Signature``: ``sha256=`` and the hex HMAC-SHA256 of ``"<timestamp>.<body>"``."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, header: str, *,
                     now: int, tolerance_s: int = 300) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent (no replay)."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs(now - stamp) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, stamp, body), header)


_SUMMARIES: dict[str, str] = {
    "version.proposed": "{ruleset} version {version} was proposed by {actor} and waits for "
                        "sign-off",
    "version.signed_off": "{actor} signed off {ruleset} version {version}",
    "version.approved": "{ruleset} version {version} is approved",
    "version.rejected": "{ruleset} version {version} was rejected by {actor}",
    "version.activated": "{ruleset} version {version} is now active",
    "version.rolled_back": "{ruleset} was rolled back to version {version} by {actor}",
    "version.withdrawn": "{ruleset} version {version} was withdrawn by {actor}",
    "version.stale": "{ruleset} version {version} is stale: version {active_version} went "
                     "live on top of its base; propose the change again",
    "version.shadow_diverged": "{ruleset} version {version} in shadow disagrees with the "
                               "active version on {disagreements} of {decisions} decisions, "
                               "above the alert threshold {alert_above}",
    "escalation.opened": "{a_ruleset} decision needs the {to_role} by {due_at}",
    "escalation.overdue": "{a_ruleset} escalation to the {to_role} is overdue (step {step})",
    "escalation.resolved": "{a_ruleset} escalation was resolved ({resolution}) by "
                           "{resolved_by}",
    "ruleset.paused": "{ruleset} was paused by {actor}: {comment}; every decision goes to "
                      "the approver until it is resumed",
    "ruleset.resumed": "{ruleset} was resumed by {actor}: its rules decide again",
    "ruleset.review_due": "{ruleset} version {version} is due for review (active since "
                          "{activated_at}, reviewed every {review_every})",
    "report.weekly": "Weekly report of {ruleset}, week of {week_start}: {headline}",
}


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def summary(event_type: str, ruleset: str | None, data: dict[str, Any]) -> str:
    """One sentence saying what happened, for an email's subject and first line."""
    template = _SUMMARIES.get(event_type, event_type)
    details = data.get("details")
    facts = {**(details if isinstance(details, dict) else {}), **data}
    return template.format_map(_Blank({**facts, "ruleset": ruleset or "-",
                                       "a_ruleset": with_article(ruleset or "-")}))


DIGESTED: tuple[str, ...] = ("escalation.opened",)
"""The notices a person gets gathered into one email per digest interval; every other
notice (an overdue escalation above all) goes out at once."""


def notice_due(event_type: str, now: datetime, digest: timedelta) -> datetime:
    """When a person's notice of an event goes out: a gathered one at the next boundary of
    the digest interval (counted from the Unix epoch, so every notice of one interval goes
    together), any other at once; at once for everything when ``digest`` is zero."""
    if event_type not in DIGESTED or digest <= timedelta(0):
        return now
    epoch = datetime(1970, 1, 1, tzinfo=now.tzinfo)
    intervals = -((epoch - now) // digest)  # ceiling division
    return epoch + intervals * digest


def page_path(event_type: str, ruleset: str | None, data: Mapping[str, Any]) -> str | None:
    """Where on the pages a person acts on an event: the escalation in the queue, the
    version's review page, or the ruleset's page; None when there is nothing to link."""
    if event_type.startswith("escalation.") and data.get("escalation_id"):
        return f"/escalations#esc-{data['escalation_id']}"
    if event_type == "report.weekly" and isinstance(data.get("week_start"), str):
        try:
            monday = date.fromisoformat(data["week_start"])
        except ValueError:
            return None
        return weekly_report.report_path(ruleset, monday)
    if ruleset is None:
        return None
    if event_type.startswith("version.") and isinstance(data.get("version"), int):
        return f"/rulesets/{ruleset}/versions/{data['version']}"
    return f"/rulesets/{ruleset}"


def _unique(names: Any) -> list[str]:
    out: list[str] = []
    for name in names:
        if name and name not in out:
            out.append(name)
    return out


def matches(events: Sequence[str], ruleset_filter: str | None, event_type: str,
            ruleset: str | None) -> bool:
    """Whether a subscription (its events and ruleset, None for all) wants this event."""
    return event_type in events and (ruleset_filter is None or ruleset_filter == ruleset)


RETRYABLE_STATES: tuple[str, ...] = ("queued", "failed")
"""Deliveries still to be attempted."""


@dataclass(frozen=True)
class OutboxEvent:
    """Something that happened, waiting in the outbox to be fanned out to deliveries."""

    id: str
    type: str
    ruleset_id: int | None
    occurred_at: datetime
    data: dict[str, Any]
    dispatched_at: datetime | None = None


@dataclass(frozen=True)
class Subscription:
    """A webhook or email address that asked to hear of some event types."""

    id: str
    url: str
    events: list[str]
    ruleset: str | None
    secret: str | None
    created_by: str
    created_at: datetime

    def wants(self, event: OutboxEvent, ruleset: str | None) -> bool:
        """Whether this subscription hears of the event: one of its types and its ruleset
        filter, and only what happened after it was made (not the backlog)."""
        return (self.created_at <= event.occurred_at
                and matches(self.events, self.ruleset, event.type, ruleset))


@dataclass
class Delivery:
    """One event to one target (a subscription's URL or a person's address)."""

    id: str
    event_id: str
    event_type: str
    subscription_id: str | None
    recipient: str | None
    target: str
    state: str = "queued"
    attempts: int = 0
    next_attempt_at: datetime | None = None
    leased_until: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    created_at: datetime | None = None
    delivered_at: datetime | None = None

    def retry(self, now: datetime) -> None:
        """Queues a dead delivery again with a fresh count of tries: 409 ``not_dead`` for
        any other, 409 ``subscription_deleted`` when nobody is left to deliver to."""
        if self.state != "dead":
            raise Conflict("not_dead", f"the delivery is {self.state}; only a dead delivery "
                                       f"is retried by hand")
        if self.subscription_id is None and self.recipient is None:
            raise Conflict("subscription_deleted", "the delivery's subscription was deleted")
        self.state = "queued"
        self.attempts = 0
        self.next_attempt_at = now
        self.leased_until = None


def fan_out(event: OutboxEvent, ruleset: str | None, subscriptions: Iterable[Subscription],
            recipients: Iterable[str], contacts: Mapping[str, str], now: datetime,
            new_id: Callable[[], str], digest: timedelta = timedelta(0)) -> list[Delivery]:
    """The deliveries of one event: one per subscription that wants it (due at once), then
    one per default recipient with a contact address not already a target (due as
    ``notice_due`` says, so a person's notices are gathered)."""
    out: list[Delivery] = []
    targets: set[str] = set()
    person_due = notice_due(event.type, now, digest)

    def add(target: str, subscription_id: str | None, recipient: str | None) -> None:
        targets.add(target.lower())
        due = now if recipient is None else person_due
        out.append(Delivery(new_id(), event.id, event.type, subscription_id, recipient,
                            target, "queued", 0, due, None, None, None, now, None))

    for sub in subscriptions:
        if sub.wants(event, ruleset):
            add(sub.url, sub.id, None)
    for person in recipients:
        email = contacts.get(person)
        if email and f"mailto:{email}".lower() not in targets:
            add(f"mailto:{email}", None, person)
    return out


@dataclass(frozen=True)
class RetryPolicy:
    """How many tries a delivery gets, and the backoff between them."""

    max_attempts: int
    backoff_base_s: float
    backoff_cap_s: float


@dataclass(frozen=True)
class AttemptOutcome:
    """What an attempt leaves on its delivery: the new state and the fields to record."""

    state: str
    values: dict[str, Any] = field(default_factory=dict)


def attempt_outcome(delivered: bool, status: int | None, error: str | None, attempts: int,
                    now: datetime, policy: RetryPolicy,
                    rng: random.Random | None = None) -> AttemptOutcome:
    """After the ``attempts``-th try: delivered, failed (retried after a backoff with
    jitter), or dead once the tries are spent."""
    values: dict[str, Any] = {"last_status": status, "last_error": error}
    if delivered:
        state = "delivered"
        values["delivered_at"] = now
    elif attempts >= policy.max_attempts:
        state = "dead"
    else:
        state = "failed"
        values["next_attempt_at"] = now + retry_delay(
            attempts, base_s=policy.backoff_base_s, cap_s=policy.backoff_cap_s, rng=rng)
    values["state"] = state
    return AttemptOutcome(state, values)
