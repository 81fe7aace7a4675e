"""The notification worker (``rules-service worker``): walks overdue escalations along their
runbook's path, fans outbox events out to deliveries, and delivers them.

Each pass is three short transactions and the sends between them. Deliveries are claimed
with a lease (``lease_s``, longer than a send may take) and counted as an attempt before
anything is sent, so a worker killed mid-delivery loses nothing: the lease runs out and
the delivery is sent again (at least once; receivers deduplicate by event id). Several
workers share the work on PostgreSQL (``FOR UPDATE SKIP LOCKED``); on SQLite run one.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uuid_utils

from rules_service.adapters.database import DATABASE_ERRORS
from rules_service.adapters.heartbeats import Heartbeat
from rules_service.adapters.senders import (
    Attempt,
    SmtpSettings,
    post_webhook,
    send_email,
    write_email,
)
from rules_service.adapters.unit_of_work import Clock, UnitOfWork, utcnow
from rules_service.config import (
    SettingsError,
    env_base_url,
    env_bool,
    env_float,
    env_int,
    env_webhook_allow,
)
from rules_service.domain import notifications as rules
from rules_service.domain import weekly_report
from rules_service.domain.escalations import DecisionFacts
from rules_service.domain.versions import Version
from rules_service.domain.webhook_targets import AllowList
from rules_service.services import reviews_due
from rules_service.services.governance import ruleset_of
from rules_service.services.notices import Notice, email_content
from rules_service.services.weekly_report import send_scheduled_weekly_report

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
    digest_s: float = 300.0
    """A person's notices of new escalations are gathered and sent this often (0: at once)."""
    base_url: str = ""
    """The address people reach the pages at; notices link there (empty: no links)."""
    mail_dir: str = ""
    """A folder email is written to instead of sent (the demo's mail sink; empty: SMTP)."""
    webhook_allow: tuple[str, ...] = ()
    weekly_report: bool = False
    """Whether the worker sends the weekly report every Monday at 07:00 UTC. On when read
    from the environment unless ``RULES_SERVICE_WEEKLY_REPORT=off``; off for a worker set
    up in code unless asked."""

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
            smtp=smtp,
            digest_s=env_float(env, "RULES_SERVICE_NOTICE_DIGEST", d.digest_s, 0.0),
            base_url=env_base_url(env, "RULES_SERVICE_BASE_URL"),
            mail_dir=env.get("RULES_SERVICE_MAIL_DIR", "").strip(),
            webhook_allow=env_webhook_allow(env),
            weekly_report=env_bool(env, "RULES_SERVICE_WEEKLY_REPORT", True))


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


HEARTBEAT_S = 5.0
"""How often a running worker writes its heartbeat at most."""

REVIEW_CHECK_S = 60.0
"""How often the worker looks for policies whose review fell due."""


def worker_name() -> str:
    """``host:pid``: the worker's name in its heartbeat."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Pulse:
    """A worker's totals since it started, for its heartbeat."""

    worker: str
    started_at: datetime
    passes: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    last_pass_ms: float = 0.0

    def add(self, report: PassReport, duration_ms: float) -> None:
        """Counts one pass."""
        self.passes += 1
        self.last_pass_ms = duration_ms
        for name in ("escalation_steps", "events_dispatched", "delivered", "failed", "dead"):
            self.totals[name] = self.totals.get(name, 0) + getattr(report, name)

    def heartbeat(self, now: datetime) -> Heartbeat:
        """The row to write."""
        t = self.totals
        return Heartbeat(self.worker, self.started_at, now, self.passes,
                         t.get("escalation_steps", 0), t.get("events_dispatched", 0),
                         t.get("delivered", 0), t.get("failed", 0), t.get("dead", 0),
                         round(self.last_pass_ms, 3))


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
    decision: DecisionFacts | None = None

    def notice(self) -> Notice:
        """The event as a person reads it."""
        return Notice(self.event_id, self.event_type, self.occurred_at, self.ruleset,
                      self.data, self.decision)

    @property
    def gathered(self) -> bool:
        """A person's email: sent together with that person's other notices due now (a
        weekly report always goes alone, a document to keep or pass on)."""
        return (self.recipient is not None and self.target.lower().startswith("mailto:")
                and self.event_type != "report.weekly")


Webhook = Callable[[str, bytes, dict[str, str], float], Attempt]


class Worker:
    """Carries out escalation timers and delivers the outbox; ``run_once`` is one pass."""

    def __init__(self, uow_factory: Callable[[], UnitOfWork],
                 settings: DeliverySettings | None = None, *, clock: Clock = utcnow,
                 rng: random.Random | None = None, webhook: Webhook | None = None) -> None:
        self._uow = uow_factory
        self._clock = clock
        self.settings = settings or DeliverySettings()
        self._rng = rng or random.Random()  # jitter, not secrecy
        self._webhook = webhook or functools.partial(
            post_webhook, allow=AllowList.parse(self.settings.webhook_allow)[0])
        self._weekly_done: date | None = None
        self._policy = rules.RetryPolicy(self.settings.max_attempts,
                                         self.settings.backoff_base_s,
                                         self.settings.backoff_cap_s)
        self._next_review_check: datetime | None = None

    # ------------------------------------------------------------------ the loop

    def run_once(self) -> PassReport:
        """One pass: escalation steps due (and, at most once a minute, the reviews that
        fell due), the weekly report when due, then fan-out, then the deliveries due."""
        steps = self.walk_escalations()
        now = self._clock()
        if self._next_review_check is None or now >= self._next_review_check:
            self._next_review_check = now + timedelta(seconds=REVIEW_CHECK_S)
            reviews_due.tell_reviews_due(self._uow())
        if self.settings.weekly_report:
            self.send_weekly_report()
        dispatched = self.dispatch_events()
        delivered, failed, dead = self.deliver_due()
        return PassReport(steps, dispatched, delivered, failed, dead)

    def run(self, stop: threading.Event) -> None:
        """Passes until ``stop`` is set; idle passes wait ``poll_interval_s``. A failed
        pass (the database is down, say) is logged and tried again, never fatal. The
        heartbeat is written at most every ``HEARTBEAT_S`` seconds, and at the end."""
        pulse = Pulse(worker_name(), self._clock())
        last_beat = 0.0
        while not stop.is_set():
            started = time.monotonic()
            try:
                report = self.run_once()
            except DATABASE_ERRORS as exc:
                log.warning("worker pass failed (%s); trying again shortly", exc)
                report = PassReport()
            except Exception:  # one bad row must not stop every notification
                log.exception("worker pass failed; trying again shortly")
                report = PassReport()
            pulse.add(report, (time.monotonic() - started) * 1000)
            if time.monotonic() - last_beat >= HEARTBEAT_S:
                last_beat = time.monotonic() if self.beat(pulse) else last_beat
            if not report.busy:
                stop.wait(self.settings.poll_interval_s)
        self.beat(pulse)

    def beat(self, pulse: Pulse) -> bool:
        """Writes the worker's heartbeat and totals (read by /metrics); False when the
        database did not take it (tried again on the next pass)."""
        try:
            uow = self._uow()
            with uow:
                uow.heartbeats.save(pulse.heartbeat(uow.now()))
                uow.commit()
        except DATABASE_ERRORS as exc:
            log.warning("worker heartbeat not written (%s)", exc)
            return False
        return True

    # ------------------------------------------------------------------ escalation timers

    def walk_escalations(self) -> int:
        """Marks escalations past their target overdue and takes each step due along the
        runbook's path: the step is recorded and told (``escalation.overdue``)."""
        uow = self._uow()
        taken = 0
        with uow:
            now = uow.now()
            for escalation in uow.escalations.claim_due(now, self.settings.batch):
                version = uow.versions.get(escalation.ruleset_id, escalation.version)
                if version is None:
                    continue
                escalation.take_step(ruleset_of(version), now)
                uow.escalations.save(escalation)
                taken += 1
            uow.commit()
        return taken

    # ------------------------------------------------------------------ weekly report

    def send_weekly_report(self) -> date | None:
        """Queues the weekly report when it is due and no worker has sent it; returns the
        week sent. Once this worker knows the week is done it asks nobody until the next."""
        due = weekly_report.scheduled_week(self._clock())
        if due is None or due == self._weekly_done:
            return None
        sent = send_scheduled_weekly_report(self._uow)
        if sent is not None:
            log.info("weekly report of the week of %s queued", sent.isoformat())
        self._weekly_done = due
        return sent

    # ------------------------------------------------------------------ fan-out

    def dispatch_events(self) -> int:
        """Turns events not yet fanned out into deliveries: one per matching subscription
        and one per default recipient with a contact address."""
        uow = self._uow()
        with uow:
            now = uow.now()
            events = uow.outbox.claim(self.settings.batch)
            if not events:
                return 0
            names = uow.outbox.ruleset_names(e.ruleset_id for e in events)
            subscriptions = uow.subscriptions.live()
            contacts = uow.subscriptions.contacts()
            deliveries: list[rules.Delivery] = []
            for event in events:
                deliveries.extend(rules.fan_out(
                    event, names.get(event.ruleset_id or 0), subscriptions,
                    default_recipients(uow, event), contacts, now, _new_id,
                    timedelta(seconds=self.settings.digest_s)))
            uow.outbox.mark_dispatched(events, now)
            uow.deliveries.add_all(deliveries)
            uow.commit()
        return len(events)

    # ------------------------------------------------------------------ delivery

    def deliver_due(self) -> tuple[int, int, int]:
        """Sends every delivery due, a person's emails due together as one; returns
        (delivered, failed, dead), counting deliveries."""
        jobs = self._claim()
        if not jobs:
            return 0, 0, 0
        groups: dict[str, list[_Job]] = {}
        for job in jobs:  # a person's gathered emails due together go as one
            key = job.target.lower() if job.gathered else job.delivery_id
            groups.setdefault(key, []).append(job)
        lanes: dict[str, list[list[_Job]]] = {}
        for batch in groups.values():  # one lane per receiver: a slow one holds up its own
            lanes.setdefault(_receiver(batch[0].target), []).append(batch)
        if len(lanes) == 1 or self.settings.concurrency <= 1:
            states = [state for lane in lanes.values() for state in self._deliver_lane(lane)]
        else:
            with ThreadPoolExecutor(max_workers=min(self.settings.concurrency, len(lanes)),
                                    thread_name_prefix="delivery") as pool:
                states = [state for done in pool.map(self._deliver_lane, lanes.values())
                          for state in done]
        return (states.count("delivered"), states.count("failed"), states.count("dead"))

    def _deliver_lane(self, lane: list[list[_Job]]) -> list[str]:
        """One receiver's deliveries in turn; once it gives no answer, the rest of its
        deliveries in this pass fail without being sent (they are tried again later)."""
        states: list[str] = []
        silent: Attempt | None = None
        for batch in lane:
            if silent is not None:
                states += self._record(batch, Attempt(
                    False, None, "not sent: the receiver gave no answer to an earlier "
                                 "delivery in the same pass"))
                continue
            done, attempt = self._deliver(batch)
            states += done
            if not attempt.delivered and attempt.status is None:
                silent = attempt
        return states

    def _claim(self) -> list[_Job]:
        uow = self._uow()
        with uow:
            now = uow.now()
            lease_until = now + timedelta(seconds=self.settings.lease_s)
            rows = uow.deliveries.claim(now, lease_until, self.settings.batch)
            if not rows:
                return []
            events = uow.outbox.by_ids({r.event_id for r in rows})
            secrets = uow.subscriptions.secrets(r.subscription_id for r in rows)
            names = uow.outbox.ruleset_names(e.ruleset_id for e in events.values())
            jobs = []
            for row in rows:
                event = events[row.event_id]
                jobs.append(_Job(row.id, row.target, row.recipient, row.attempts, lease_until,
                                 secrets.get(row.subscription_id or ""), event.id, event.type,
                                 event.occurred_at, names.get(event.ruleset_id or 0),
                                 dict(event.data), _decision_of(uow, row, event)))
            uow.commit()
        return jobs

    def _deliver(self, batch: list[_Job]) -> tuple[list[str], Attempt]:
        """Sends one delivery, or one person's due emails as one digest, and records the
        attempt on each of them."""
        try:
            attempt = self._send(batch)
        except Exception as exc:  # a bug in one send must not stop the rest
            log.exception("delivery %s raised", batch[0].delivery_id)
            attempt = Attempt(False, None, f"{type(exc).__name__}: {exc}"[:500])
        return self._record(batch, attempt), attempt

    def _record(self, batch: list[_Job], attempt: Attempt) -> list[str]:
        """Records one attempt on each delivery of ``batch``; one log line per failure."""
        states = []
        uow = self._uow()
        with uow:
            now = uow.now()
            for job in batch:
                outcome = rules.attempt_outcome(attempt.delivered, attempt.status,
                                                attempt.error, job.attempts, now,
                                                self._policy, self._rng)
                states.append(outcome.state)
                if not uow.deliveries.finish(job.delivery_id, job.lease_until,
                                             outcome.values):
                    log.warning("delivery %s was taken over while it was sent",
                                job.delivery_id)
            uow.commit()
        for job, state in zip(batch, states, strict=True):
            if state != "delivered":
                _log_failure(job, attempt, state)
        return states

    def _send(self, batch: list[_Job]) -> Attempt:
        job = batch[0]
        if job.target.lower().startswith("mailto:"):
            content = email_content([j.notice() for j in batch], self.settings.base_url)
            key = job.event_id if len(batch) == 1 else job.delivery_id
            to = job.target[len("mailto:"):]
            if self.settings.mail_dir:
                return write_email(Path(self.settings.mail_dir), self.settings.smtp, to,
                                   *content, message_id_key=key)
            return send_email(self.settings.smtp, to, *content, message_id_key=key,
                              timeout_s=self.settings.timeout_s)
        body = rules.webhook_body(job.event_id, job.event_type, job.occurred_at, job.ruleset,
                                  job.data)
        if job.secret is None:
            return Attempt(False, None, "the subscription was deleted or its creator revoked")
        timestamp = int(self._clock().timestamp())
        headers = {"X-Rules-Event": job.event_type, "X-Rules-Delivery": job.delivery_id,
                   "X-Rules-Timestamp": str(timestamp),
                   "X-Rules-Signature": rules.signature(job.secret, timestamp, body)}
        return self._webhook(job.target, body, headers, self.settings.timeout_s)


def _log_failure(job: _Job, attempt: Attempt, state: str) -> None:
    """One line per failed attempt: which delivery, to where (scheme and host only), the
    receiver's HTTP status (null: no answer), why, and whether it will be tried again."""
    log.warning("delivery %s of %s to %s failed (%s): %s", job.delivery_id, job.event_type,
                target_place(job.target), attempt.status or "no answer",
                "retried later" if state == "failed" else "dead, not retried",
                extra={"delivery_id": job.delivery_id, "event": job.event_type,
                       "event_id": job.event_id, "target": target_place(job.target),
                       "status": attempt.status, "error": attempt.error,
                       "attempt": job.attempts, "state": state})


def target_place(target: str) -> str:
    """Where a delivery goes, without path, query or credentials: ``https://host:port``
    or ``mailto:`` with the address's domain."""
    if target.lower().startswith("mailto:"):
        return "mailto:*@" + target.rpartition("@")[2]
    parts = urlsplit(target)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _receiver(target: str) -> str:
    """Who a target's deliveries go to: the webhook's host, or the mail server."""
    if target.lower().startswith("mailto:"):
        return "mailto:"
    return (urlsplit(target).hostname or target).lower()


def _new_id() -> str:
    return str(uuid_utils.uuid7())


def default_recipients(uow: UnitOfWork, event: rules.OutboxEvent) -> list[str]:
    """Who hears of an event without subscribing: a proposal, the holders of the
    required sign-off roles; an activation, rollback, pause or resume, the four owners; a
    review falling due, the business owner (primary and backup); a new escalation,
    the holder of its role; an overdue one, the person on the runbook's path the walk has
    reached (never the steps it passed over); a version gone stale, its author and everyone
    who signed it; a weekly report, the business and operations owners (primary and backup)
    it names; a version in shadow that diverged, its author and business owner."""
    data = event.data or {}
    if event.type == "report.weekly":
        owners = data.get("owners")
        return weekly_report.recipients(owners) if isinstance(owners, dict) else []
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
    if event.type == "version.shadow_diverged":
        return rules.shadow_recipients(row.author, ruleset_of(_authority(uow, row)))
    if event.type == "version.stale":
        return rules.stale_recipients(row.author, (s.principal for s in row.signoffs))
    if event.type in ("version.activated", "version.rolled_back", "ruleset.paused",
                      "ruleset.resumed"):
        return rules.owner_recipients(ruleset_of(row))
    if event.type == rules.REVIEW_DUE:
        return rules.business_owner_recipients(ruleset_of(row))
    if event.type == "escalation.opened":
        holder = rules.escalation_recipient(ruleset_of(row), str(data.get("to_role")))
        return [holder] if holder else []
    return []


def _decision_of(uow: UnitOfWork, row: rules.Delivery,
                 event: rules.OutboxEvent) -> DecisionFacts | None:
    # A person's email about an escalation shows the decision's input and fired rules.
    if row.recipient is None or not event.type.startswith("escalation."):
        return None
    escalation = uow.escalations.get(str(event.data.get("escalation_id")),
                                     with_decision=True)
    return escalation.decision if escalation is not None else None


def _authority(uow: UnitOfWork, row: Version) -> Version:
    # Whose sign-off a version needs: its base's owners (as governance decides it).
    if row.base_version is not None:
        base = uow.versions.get(row.ruleset_id, row.base_version)
        if base is not None:
            return base
    return row
