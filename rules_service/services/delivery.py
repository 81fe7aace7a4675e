"""The notification worker (``rules-service worker``): walks overdue escalations along their
runbook's path, fans outbox events out to deliveries, and delivers them.

Each pass is three short transactions and the sends between them. Deliveries are claimed
with a lease (``lease_s``, longer than a send may take) and counted as an attempt before
anything is sent, so a worker killed mid-delivery loses nothing: the lease runs out and
the delivery is sent again (at least once; receivers deduplicate by event id). Several
workers share the work on PostgreSQL (``FOR UPDATE SKIP LOCKED``); on SQLite run one.
"""

from __future__ import annotations

import html
import logging
import os
import random
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import uuid_utils
from sqlalchemy import insert, select
from sqlalchemy.exc import SQLAlchemyError

from rules_service.adapters import outbox
from rules_service.adapters.orm import (
    EscalationStepRow,
    OutboxEventRow,
    PrincipalRow,
    SubscriptionRow,
    VersionRow,
    utcnow,
)
from rules_service.adapters.senders import Attempt, SmtpSettings, post_webhook, send_email
from rules_service.adapters.unit_of_work import Clock, UnitOfWork
from rules_service.config import SettingsError, env_float, env_int
from rules_service.domain import lifecycle
from rules_service.domain import notifications as rules
from rules_service.services.governance import ruleset_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliverySettings:
    """How the worker delivers: tries, backoff, lease, timeouts, batch sizes, SMTP."""

    max_attempts: int = 8
    backoff_base_s: float = 10.0
    backoff_cap_s: float = 3600.0
    timeout_s: float = 10.0
    lease_s: float = 60.0
    poll_interval_s: float = 1.0
    batch: int = 100
    concurrency: int = 4
    smtp: SmtpSettings = field(default_factory=SmtpSettings)

    def __post_init__(self) -> None:
        if self.lease_s <= self.timeout_s:
            # A lease shorter than a send would let a second worker send it again.
            raise SettingsError(f"the delivery lease ({self.lease_s}s) must be longer than "
                                f"the send timeout ({self.timeout_s}s)")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DeliverySettings:
        """Settings from ``RULES_SERVICE_DELIVERY_*`` and ``RULES_SERVICE_SMTP_*``."""
        env = os.environ if env is None else env
        d = cls()
        smtp = SmtpSettings(
            host=env.get("RULES_SERVICE_SMTP_HOST", "").strip() or "localhost",
            port=env_int(env, "RULES_SERVICE_SMTP_PORT", 25, 1),
            sender=env.get("RULES_SERVICE_SMTP_FROM", "").strip() or "rules-service@localhost",
            username=env.get("RULES_SERVICE_SMTP_USERNAME", "").strip() or None,
            password=env.get("RULES_SERVICE_SMTP_PASSWORD") or None,
            starttls=env.get("RULES_SERVICE_SMTP_STARTTLS", "").lower() in ("1", "true", "yes"))
        return cls(
            max_attempts=env_int(env, "RULES_SERVICE_DELIVERY_MAX_ATTEMPTS",
                                 d.max_attempts, 1),
            backoff_base_s=env_float(env, "RULES_SERVICE_DELIVERY_BACKOFF_BASE",
                                       d.backoff_base_s, 0.0),
            backoff_cap_s=env_float(env, "RULES_SERVICE_DELIVERY_BACKOFF_CAP",
                                      d.backoff_cap_s, 0.0),
            timeout_s=env_float(env, "RULES_SERVICE_DELIVERY_TIMEOUT",
                                  d.timeout_s, 0.1),
            lease_s=env_float(env, "RULES_SERVICE_DELIVERY_LEASE", d.lease_s, 1.0),
            poll_interval_s=env_float(env, "RULES_SERVICE_WORKER_POLL_INTERVAL",
                                        d.poll_interval_s, 0.01),
            smtp=smtp)


@dataclass(frozen=True)
class PassReport:
    """What one pass did."""

    escalation_steps: int = 0
    events_dispatched: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0

    @property
    def busy(self) -> bool:
        """Whether the pass found anything to do (the worker then goes again at once)."""
        return any((self.escalation_steps, self.events_dispatched, self.delivered,
                    self.failed, self.dead))


@dataclass(frozen=True)
class _Job:
    delivery_id: str
    target: str
    recipient: str | None
    attempts: int
    lease_until: datetime
    secret: str | None
    event_id: str
    event_type: str
    occurred_at: datetime
    ruleset: str | None
    data: dict[str, Any]


Webhook = Callable[[str, bytes, dict[str, str], float], Attempt]


class Worker:
    """Carries out escalation timers and delivers the outbox; ``run_once`` is one pass."""

    def __init__(self, uow_factory: Callable[[], UnitOfWork],
                 settings: DeliverySettings | None = None, *, clock: Clock = utcnow,
                 rng: random.Random | None = None, webhook: Webhook = post_webhook) -> None:
        self._uow = uow_factory
        self._clock = clock
        self.settings = settings or DeliverySettings()
        self._rng = rng or random.Random()  # jitter, not secrecy
        self._webhook = webhook

    # ------------------------------------------------------------------ the loop

    def run_once(self) -> PassReport:
        """One pass: escalation steps due, then fan-out, then the deliveries due."""
        steps = self.walk_escalations()
        dispatched = self.dispatch_events()
        delivered, failed, dead = self.deliver_due()
        return PassReport(steps, dispatched, delivered, failed, dead)

    def run(self, stop: threading.Event) -> None:
        """Passes until ``stop`` is set; idle passes wait ``poll_interval_s``. A failed
        pass (the database is down, say) is logged and tried again, never fatal."""
        while not stop.is_set():
            try:
                busy = self.run_once().busy
            except SQLAlchemyError as exc:
                log.warning("worker pass failed (%s); trying again shortly", exc)
                busy = False
            except Exception:  # one bad row must not stop every notification
                log.exception("worker pass failed; trying again shortly")
                busy = False
            if not busy:
                stop.wait(self.settings.poll_interval_s)

    # ------------------------------------------------------------------ escalation timers

    def walk_escalations(self) -> int:
        """Marks escalations past their target overdue and takes each step due along the
        runbook's path: the step is recorded and told (``escalation.overdue``)."""
        uow = self._uow()
        taken = 0
        with uow:
            now = uow.now()
            for row in outbox.claim_due_escalations(uow.session, now, self.settings.batch):
                version = uow.versions.get(row.ruleset_id, row.version)
                if version is None:
                    continue
                ruleset = ruleset_of(version)
                try:
                    interval = lifecycle.parse_duration(ruleset.response_time_target or "")
                except ValueError:
                    interval = None
                step_at = row.due_at if row.steps_taken == 0 else row.next_step_at
                assert step_at is not None  # the claim selects only rows with a step due
                if interval is None or interval <= timedelta(0):
                    step = rules.EscalationStep(row.steps_taken + 1, None, None)
                else:
                    step = rules.escalation_step(ruleset, row.to_role, row.steps_taken,
                                                 step_at, interval)
                if row.breached_at is None:
                    row.breached_at = now
                row.steps_taken = step.step
                row.next_step_at = step.next_step_at
                uow.session.add(EscalationStepRow(escalation_id=row.id,
                                                  decision_evaluated_at=row.decision_evaluated_at,
                                                  step=step.step,
                                                  principal=step.notify, at=now))
                outbox.add_event(uow.session, outbox.event_row(
                    "escalation.overdue", row.ruleset_id, now,
                    {"escalation_id": row.id, "decision_id": row.decision_id,
                     "version": row.version, "to_role": row.to_role,
                     "due_at": row.due_at.isoformat() if row.due_at else None,
                     "step": step.step, "notify": step.notify,
                     "next_step_at": step.next_step_at.isoformat()
                     if step.next_step_at else None}))
                taken += 1
            uow.session.flush()
            uow.commit()
        return taken

    # ------------------------------------------------------------------ fan-out

    def dispatch_events(self) -> int:
        """Turns events not yet fanned out into deliveries: one per matching subscription
        and one per default recipient with a contact address."""
        uow = self._uow()
        with uow:
            now = uow.now()
            events = outbox.claim_events(uow.session, self.settings.batch)
            if not events:
                return 0
            names = outbox.ruleset_names(uow.session, (e.ruleset_id for e in events))
            subscriptions = list(uow.session.scalars(select(SubscriptionRow)))
            contacts = {name: email for name, email in uow.session.execute(
                select(PrincipalRow.name, PrincipalRow.email)
                .where(PrincipalRow.email.is_not(None), PrincipalRow.revoked_at.is_(None)))
                if email}
            rows: list[dict[str, Any]] = []
            for event in events:
                rows.extend(self._deliveries_of(uow, event, names.get(event.ruleset_id or 0),
                                                subscriptions, contacts, now))
                event.dispatched_at = now
            uow.session.flush()
            if rows:
                uow.session.execute(insert(outbox.DELIVERIES), rows)
            uow.commit()
        return len(events)

    def _deliveries_of(self, uow: UnitOfWork, event: OutboxEventRow, ruleset: str | None,
                       subscriptions: list[SubscriptionRow], contacts: dict[str, str],
                       now: datetime) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        targets: set[str] = set()

        def add(target: str, subscription_id: str | None, recipient: str | None) -> None:
            targets.add(target.lower())
            out.append({"id": str(uuid_utils.uuid7()), "event_id": event.id,
                        "event_type": event.type, "subscription_id": subscription_id,
                        "recipient": recipient, "target": target, "state": "queued",
                        "attempts": 0, "next_attempt_at": now, "leased_until": None,
                        "last_status": None, "last_error": None, "created_at": now,
                        "delivered_at": None})

        for sub in subscriptions:
            # A subscription hears of what happens after it was made, not the backlog.
            if sub.created_at > event.occurred_at:
                continue
            if rules.matches(sub.events, sub.ruleset, event.type, ruleset):
                add(sub.url, sub.id, None)
        for person in default_recipients(uow, event):
            email = contacts.get(person)
            if email and f"mailto:{email}".lower() not in targets:
                add(f"mailto:{email}", None, person)
        return out

    # ------------------------------------------------------------------ delivery

    def deliver_due(self) -> tuple[int, int, int]:
        """Sends every delivery due; returns (delivered, failed, dead)."""
        jobs = self._claim()
        if not jobs:
            return 0, 0, 0
        if len(jobs) == 1 or self.settings.concurrency <= 1:
            states = [self._deliver(job) for job in jobs]
        else:
            with ThreadPoolExecutor(max_workers=min(self.settings.concurrency, len(jobs)),
                                    thread_name_prefix="delivery") as pool:
                states = list(pool.map(self._deliver, jobs))
        return (states.count("delivered"), states.count("failed"), states.count("dead"))

    def _claim(self) -> list[_Job]:
        uow = self._uow()
        with uow:
            now = uow.now()
            lease_until = now + timedelta(seconds=self.settings.lease_s)
            rows = outbox.claim_deliveries(uow.session, now, lease_until, self.settings.batch)
            if not rows:
                return []
            events = {e.id: e for e in uow.session.scalars(
                select(OutboxEventRow).where(OutboxEventRow.id.in_({r.event_id for r in rows})))}
            secrets = {sub_id: secret for sub_id, secret in uow.session.execute(
                select(SubscriptionRow.id, SubscriptionRow.secret).where(
                    SubscriptionRow.id.in_({r.subscription_id for r in rows
                                            if r.subscription_id})))}
            names = outbox.ruleset_names(uow.session, (e.ruleset_id for e in events.values()))
            jobs = []
            for row in rows:
                event = events[row.event_id]
                jobs.append(_Job(row.id, row.target, row.recipient, row.attempts, lease_until,
                                 secrets.get(row.subscription_id or ""), event.id, event.type,
                                 event.occurred_at, names.get(event.ruleset_id or 0),
                                 dict(event.data)))
            uow.commit()
        return jobs

    def _deliver(self, job: _Job) -> str:
        try:
            attempt = self._send(job)
        except Exception as exc:  # a bug in one send must not stop the rest
            log.exception("delivery %s raised", job.delivery_id)
            attempt = Attempt(False, None, f"{type(exc).__name__}: {exc}"[:500])
        uow = self._uow()
        with uow:
            now = uow.now()
            values: dict[str, Any] = {"last_status": attempt.status,
                                      "last_error": attempt.error}
            if attempt.delivered:
                state = "delivered"
                values["delivered_at"] = now
            elif job.attempts >= self.settings.max_attempts:
                state = "dead"
            else:
                state = "failed"
                values["next_attempt_at"] = now + rules.retry_delay(
                    job.attempts, base_s=self.settings.backoff_base_s,
                    cap_s=self.settings.backoff_cap_s, rng=self._rng)
            values["state"] = state
            if not outbox.finish_delivery(uow.session, job.delivery_id, job.lease_until,
                                          values):
                log.warning("delivery %s was taken over while it was sent", job.delivery_id)
            uow.commit()
        return state

    def _send(self, job: _Job) -> Attempt:
        body = rules.webhook_body(job.event_id, job.event_type, job.occurred_at, job.ruleset,
                                  job.data)
        if job.target.lower().startswith("mailto:"):
            return send_email(self.settings.smtp, job.target[len("mailto:"):],
                              *email_content(job.event_type, job.ruleset, job.data,
                                             job.event_id, job.occurred_at),
                              message_id_key=job.event_id, timeout_s=self.settings.timeout_s)
        if job.secret is None:
            return Attempt(False, None, "the subscription was deleted")
        timestamp = int(self._clock().timestamp())
        headers = {"X-Rules-Event": job.event_type, "X-Rules-Delivery": job.delivery_id,
                   "X-Rules-Timestamp": str(timestamp),
                   "X-Rules-Signature": rules.signature(job.secret, timestamp, body)}
        return self._webhook(job.target, body, headers, self.settings.timeout_s)


def default_recipients(uow: UnitOfWork, event: OutboxEventRow) -> list[str]:
    """Who hears of an event without subscribing (issue 10): a proposal, the holders of the
    required sign-off roles; an activation or rollback, the four owners; a new escalation,
    the holder of its role; an overdue one, the next person on the runbook's path."""
    data = event.data or {}
    if event.type == "escalation.overdue":
        return [data["notify"]] if data.get("notify") else []
    number = data.get("version")
    if event.ruleset_id is None or not isinstance(number, int):
        return []
    row = uow.versions.get(event.ruleset_id, number)
    if row is None:
        return []
    if event.type == "version.proposed":
        return rules.signoff_recipients(ruleset_of(_authority(uow, row)))
    if event.type in ("version.activated", "version.rolled_back"):
        return rules.owner_recipients(ruleset_of(row))
    if event.type == "escalation.opened":
        holder = rules.escalation_recipient(ruleset_of(row), str(data.get("to_role")))
        return [holder] if holder else []
    return []


def _authority(uow: UnitOfWork, row: VersionRow) -> VersionRow:
    # Whose sign-off a version needs: its base's owners (as governance decides it).
    if row.base_version is not None:
        base = uow.versions.get(row.ruleset_id, row.base_version)
        if base is not None:
            return base
    return row


def email_content(event_type: str, ruleset: str | None, data: dict[str, Any], event_id: str,
                  occurred_at: datetime) -> tuple[str, str, str]:
    """Subject, plain text and HTML of the email telling an event."""
    sentence = rules.summary(event_type, ruleset, data)
    subject = f"[rules-service] {sentence}"
    facts = [(key, value) for key, value in data.items()
             if value not in (None, "", {}, []) and key != "details"]
    facts += [("event", event_type), ("event id", event_id),
              ("occurred at", occurred_at.isoformat())]
    text = sentence + ".\n\n" + "\n".join(f"{k}: {v}" for k, v in facts) + "\n"
    rows = "".join(f"<tr><th align=\"left\">{html.escape(str(k))}</th>"
                   f"<td>{html.escape(str(v))}</td></tr>" for k, v in facts)
    page = (f"<!DOCTYPE html><html><body><p>{html.escape(sentence)}.</p>"
            f"<table>{rows}</table></body></html>")
    return subject, text, page
