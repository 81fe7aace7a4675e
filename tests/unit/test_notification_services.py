"""The notification rules at the service level, on fakes: who may subscribe, who hears
what (the fan-out of an outbox event to subscriptions and people), and delivery retry,
backoff and death (no database, no processes, no network)."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from rules_service.adapters.senders import Attempt
from rules_service.domain import notifications as rules
from rules_service.domain.errors import Conflict, Forbidden
from rules_service.services import notifications
from rules_service.services.delivery import DeliverySettings, Worker
from tests.unit.fakes_operations import NOON, FakeUnitOfWork, definition_of

SECRET = "s" * 20


@pytest.fixture
def uow() -> FakeUnitOfWork:
    fake = FakeUnitOfWork()
    fake.versions.add("expense-approval", 1, definition_of("expense-approval.yaml"))
    fake.principals.add("admin", is_admin=True)
    fake.principals.add("finance-lead")
    fake.principals.add("stranger")
    fake.principals.add("controller", email="controller@example.com")
    fake.principals.add("cfo", email="cfo@example.com")
    return fake


def _opened(uow: FakeUnitOfWork, to_role: str = "approver") -> None:
    uow.outbox.add("escalation.opened", 1, uow.now(),
                   {"escalation_id": "esc-1", "decision_id": "dec-1", "version": 1,
                    "to_role": to_role, "due_at": None})


class Receiver:
    def __init__(self, answers: list[Attempt]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, str]]] = []

    def __call__(self, url: str, body: bytes, headers: dict[str, str],
                 timeout_s: float) -> Attempt:
        self.calls.append((url, headers))
        return self.answers.pop(0) if self.answers else Attempt(True, 200)


def _worker(uow: FakeUnitOfWork, receiver: Receiver, **settings: float) -> Worker:
    return Worker(lambda: uow, DeliverySettings(**settings),  # type: ignore[arg-type]
                  clock=uow.clock, rng=random.Random(7), webhook=receiver)


def test_only_an_admin_or_an_owner_subscribes(uow: FakeUnitOfWork) -> None:
    with pytest.raises(Forbidden):
        notifications.create_subscription(uow, url="https://hooks.example.com/x",
                                          events=["escalation.opened"], secret=SECRET,
                                          actor="stranger")
    with pytest.raises(Forbidden):
        notifications.create_subscription(uow, url="https://hooks.example.com/x",
                                          events=["escalation.opened"], secret=SECRET,
                                          actor="finance-lead")  # every ruleset: admin only
    mine = notifications.create_subscription(
        uow, url="https://hooks.example.com/x", events=["escalation.opened"], secret=SECRET,
        ruleset="expense-approval", actor="finance-lead")
    notifications.create_subscription(uow, url="mailto:ops@example.com",
                                      events=["version.activated"], actor="admin")
    assert [s.id for s in notifications.list_subscriptions(uow, actor="finance-lead")] == \
        [mine.id]
    assert len(notifications.list_subscriptions(uow, actor="admin")) == 2


def test_an_event_goes_to_matching_subscriptions_and_the_role_holder(
        uow: FakeUnitOfWork) -> None:
    hook = notifications.create_subscription(
        uow, url="https://hooks.example.com/x", events=["escalation.opened"], secret=SECRET,
        actor="admin")
    notifications.create_subscription(uow, url="https://hooks.example.com/other",
                                      events=["version.activated"], secret=SECRET,
                                      actor="admin")
    notifications.create_subscription(  # already told as the holder: no second email
        uow, url="mailto:CONTROLLER@example.com", events=["escalation.opened"], actor="admin")
    _opened(uow)
    uow.clock.now = NOON + timedelta(minutes=1)
    notifications.create_subscription(  # made after the event: not told of it
        uow, url="https://hooks.example.com/late", events=["escalation.opened"],
        secret=SECRET, actor="admin")

    assert Worker(lambda: uow).dispatch_events() == 1
    assert Worker(lambda: uow).dispatch_events() == 0
    targets = sorted((d.target, d.subscription_id, d.recipient)
                     for d in uow.deliveries.items.values())
    mail = next(s.id for s in uow.subscriptions.all() if s.url.startswith("mailto:"))
    assert targets == [("https://hooks.example.com/x", hook.id, None),
                       ("mailto:CONTROLLER@example.com", mail, None)]


def test_a_default_recipient_without_an_address_is_not_told(uow: FakeUnitOfWork) -> None:
    _opened(uow, to_role="business_owner")  # finance-lead has no email
    assert Worker(lambda: uow).dispatch_events() == 1
    assert uow.deliveries.items == {}
    _opened(uow)
    Worker(lambda: uow).dispatch_events()
    [delivery] = uow.deliveries.items.values()
    assert (delivery.target, delivery.recipient) == ("mailto:controller@example.com",
                                                     "controller")


def test_a_stale_version_is_told_to_its_author_and_signers_with_the_version_that_won(
        uow: FakeUnitOfWork) -> None:
    uow.principals.add("finance-deputy", email="deputy@example.com")
    uow.versions.add("expense-approval", 3, definition_of("expense-approval.yaml"),
                     state="stale", base_version=1, author="finance-deputy",
                     signers=("controller", "finance-lead", "cfo"))
    uow.outbox.add("version.stale", 1, uow.now(),
                   {"version": 3, "actor": "cfo", "comment": "",
                    "details": {"base_version": 1, "active_version": 2}})
    Worker(lambda: uow).dispatch_events()
    told = sorted((d.recipient, d.target) for d in uow.deliveries.items.values())
    # finance-lead signed but has no address; the others are told once each.
    assert told == [("cfo", "mailto:cfo@example.com"),
                    ("controller", "mailto:controller@example.com"),
                    ("finance-deputy", "mailto:deputy@example.com")]
    subject = rules.summary("version.stale", "expense-approval",
                            {"version": 3, "details": {"active_version": 2}})
    assert subject == ("expense-approval version 3 is stale: version 2 went live on top of "
                       "its base; propose the change again")


def test_a_failing_webhook_is_retried_with_backoff_then_dead(uow: FakeUnitOfWork) -> None:
    notifications.create_subscription(uow, url="https://hooks.example.com/x",
                                      events=["escalation.opened"], secret=SECRET,
                                      actor="admin")
    uow.principals.items["controller"].email = None
    _opened(uow)
    receiver = Receiver([Attempt(False, 500, "boom")] * 3)
    worker = _worker(uow, receiver, max_attempts=3, backoff_base_s=10.0, backoff_cap_s=15.0)
    worker.dispatch_events()
    [delivery_id] = uow.deliveries.items

    assert worker.deliver_due() == (0, 1, 0)
    first = uow.deliveries.items[delivery_id]
    assert (first.state, first.attempts, first.last_status) == ("failed", 1, 500)
    assert first.next_attempt_at is not None
    wait = first.next_attempt_at - NOON
    assert timedelta(seconds=5) <= wait <= timedelta(seconds=10)
    assert worker.deliver_due() == (0, 0, 0)  # not due yet

    uow.clock.now = first.next_attempt_at
    assert worker.deliver_due() == (0, 1, 0)
    second = uow.deliveries.items[delivery_id]
    assert second.next_attempt_at is not None
    assert second.next_attempt_at - uow.now() <= timedelta(seconds=15)  # the cap

    uow.clock.now = second.next_attempt_at
    assert worker.deliver_due() == (0, 0, 1)
    assert uow.deliveries.items[delivery_id].state == "dead"
    assert [h["X-Rules-Event"] for _, h in receiver.calls] == ["escalation.opened"] * 3
    health = notifications.delivery_health(uow)
    assert health.by_state["dead"] == 1 and health.oldest_undelivered_s == 0.0

    with pytest.raises(Forbidden):
        notifications.retry_delivery(uow, delivery_id, actor="stranger")
    view = notifications.retry_delivery(uow, delivery_id, actor="admin")
    assert (view.state, view.attempts) == ("queued", 0)
    with pytest.raises(Conflict) as caught:
        notifications.retry_delivery(uow, delivery_id, actor="admin")
    assert caught.value.code == "not_dead"
    assert worker.deliver_due() == (1, 0, 0)
    assert uow.deliveries.items[delivery_id].delivered_at == uow.now()


def test_deleting_a_subscription_gives_up_its_deliveries(uow: FakeUnitOfWork) -> None:
    sub = notifications.create_subscription(uow, url="https://hooks.example.com/x",
                                            events=["escalation.opened"], secret=SECRET,
                                            actor="admin")
    uow.principals.items["controller"].email = None
    _opened(uow)
    Worker(lambda: uow).dispatch_events()
    notifications.delete_subscription(uow, sub.id, actor="admin")
    [delivery] = uow.deliveries.items.values()
    assert (delivery.state, delivery.last_error) == ("dead", "the subscription was deleted")
    with pytest.raises(Conflict) as caught:
        notifications.retry_delivery(uow, delivery.id, actor="admin")
    assert caught.value.code == "subscription_deleted"


def test_each_failed_delivery_is_logged_once_with_its_status_and_no_credentials(
        uow: FakeUnitOfWork, caplog: pytest.LogCaptureFixture) -> None:
    notifications.create_subscription(uow, url="https://hooks.example.com:8443/x?k=v",
                                      events=["escalation.opened"], secret=SECRET,
                                      actor="admin")
    uow.principals.items["controller"].email = None
    _opened(uow)
    receiver = Receiver([Attempt(False, 401, "HTTP 401"), Attempt(False, None, "timed out")])
    worker = _worker(uow, receiver, max_attempts=2, backoff_base_s=10.0, backoff_cap_s=15.0)
    worker.dispatch_events()
    with caplog.at_level("INFO", logger="rules_service.services.delivery"):
        assert worker.deliver_due() == (0, 1, 0)
        uow.clock.now = uow.clock.now + timedelta(seconds=20)
        assert worker.deliver_due() == (0, 0, 1)
        assert worker.deliver_due() == (0, 0, 0)
    lines = [r for r in caplog.records if r.name == "rules_service.services.delivery"]
    assert [(r.status, r.state, r.attempt) for r in lines] == [  # type: ignore[attr-defined]
        (401, "failed", 1), (None, "dead", 2)]
    assert {r.target for r in lines} == {"https://hooks.example.com:8443"}  # type: ignore[attr-defined]
    assert "(401): retried later" in lines[0].getMessage()
    assert "(no answer): dead, not retried" in lines[1].getMessage()
