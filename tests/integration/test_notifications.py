"""Notifications end to end on the real database, a real local webhook receiver and a real
local SMTP server: who hears what, signatures, retries, dead letters, rolled-back changes,
a killed worker, and escalations walking their runbook's path on a controllable clock."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from rules_service.adapters.orm import DeliveryRow, OutboxEventRow
from rules_service.adapters.senders import SmtpSettings
from rules_service.bootstrap import Container
from rules_service.domain.lifecycle import AuditAction
from rules_service.domain.notifications import verify_signature
from rules_service.engine import EnginePool
from rules_service.services import dashboard, events, governance, notifications
from rules_service.services.delivery import DeliverySettings, PassReport, Worker
from tests.e2e.support import cli_command, server_env
from tests.integration.api_fixtures import Api, error_of
from tests.integration.conftest import PEOPLE, FakeClock, definition
from tests.integration.notify_support import WAIT_S, Mailbox, Receiver

NAME = "refunds"
BASE = f"/v1/rulesets/{NAME}"
SECRET = "a-long-enough-shared-secret"
MAX_PASSES = 20
DIGEST_S = 300


def address(name: str) -> str:
    return f"{name}@example.com"


@pytest.fixture
def contacts(container: Container, people: dict[str, str]) -> None:
    """Every test principal has an email address."""
    for name in PEOPLE:
        notifications.set_contact(container.uow(), name, email=address(name))


@pytest.fixture
def worker(container: Container, mailbox: Mailbox) -> Worker:
    """The worker in process, on the test clock, mailing through the local SMTP server."""
    settings = DeliverySettings(max_attempts=5, backoff_base_s=10, backoff_cap_s=60,
                                timeout_s=5, lease_s=30, concurrency=1,
                                smtp=SmtpSettings(host=mailbox.host, port=mailbox.port),
                                digest_s=DIGEST_S, base_url="https://rules.example.com",
                                webhook_allow=("127.0.0.1",))
    return Worker(container.uow, settings, clock=container.clock, rng=random.Random(7))


def drain(worker: Worker) -> list[PassReport]:
    """Passes until one finds nothing to do (bounded)."""
    reports = []
    for _ in range(MAX_PASSES):
        report = worker.run_once()
        reports.append(report)
        if not report.busy:
            return reports
    raise AssertionError(f"the worker was still busy after {MAX_PASSES} passes")


def propose(api: Api, limit: int, who: str = "root", **changes: Any) -> int:
    response = api.post(f"{BASE}/versions", {"definition": definition(limit, **changes)},
                        who=who)
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["version"])


def activate(api: Api, limit: int = 100, **changes: Any) -> int:
    number = propose(api, limit, **changes)
    for signer in ("biz", "appr"):
        assert api.post(f"{BASE}/versions/{number}/signoffs", {"decision": "approve"},
                        who=signer).status_code == 201
    return number


def subscribe(api: Api, url: str, events: list[str], **extra: Any) -> str:
    """Subscribes as root (drain the worker first: a subscription made at the very instant
    of earlier events, as on the test clock, would hear of them too)."""
    body = {"url": url, "events": events, "ruleset": NAME, **extra}
    if url.startswith("http"):
        body.setdefault("secret", SECRET)
    response = api.post("/v1/subscriptions", body)
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["id"])


def subjects(mailbox: Mailbox, name: str) -> list[str]:
    return [str(m["Subject"]) for m in mailbox.to(address(name))]


def texts(mailbox: Mailbox, name: str) -> str:
    """Every plain-text body sent to ``name``, together (a digest tells several events)."""
    return "\n".join(m.get_body(("plain",)).get_content() for m in mailbox.to(address(name)))


def outbox_count(container: Container, event_type: str) -> int:
    with container.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(OutboxEventRow)
                               .where(OutboxEventRow.type == event_type)) or 0)


# --------------------------------------------------------------------------- who hears what


@pytest.mark.usefixtures("contacts")
def test_approvers_learn_of_a_pending_change_and_owners_of_its_activation(
        api: Api, worker: Worker, mailbox: Mailbox) -> None:
    activate(api)
    drain(worker)
    for holder in ("biz", "biz-backup", "appr", "appr-backup"):
        assert "version 1 was proposed" in texts(mailbox, holder), holder
    for owner in ("biz", "ops", "appr", "dev"):
        assert "version 1 is now active" in texts(mailbox, owner), owner
    assert subjects(mailbox, "ops-backup") == []
    assert subjects(mailbox, "stranger") == []

    propose(api, 200, who="dev")
    drain(worker)
    for holder in ("biz", "biz-backup", "appr", "appr-backup"):
        assert any("version 2 was proposed by dev" in s for s in subjects(mailbox, holder))
    message = mailbox.to(address("appr"))[-1]
    kinds = {part.get_content_type() for part in message.walk()}
    assert {"text/plain", "text/html"} <= kinds
    assert message["X-Rules-Event-Id"]


def test_a_webhook_is_signed_so_the_receiver_can_verify_it(
        api: Api, worker: Worker, receiver: Receiver, clock: FakeClock) -> None:
    activate(api)
    drain(worker)
    subscription = subscribe(api, receiver.url, ["version.proposed"])
    propose(api, 200, who="dev")
    drain(worker)

    [got] = receiver.received
    headers, body = got.headers, got.body
    assert headers["X-Rules-Event"] == "version.proposed"
    assert verify_signature(SECRET, headers["X-Rules-Timestamp"], body,
                            headers["X-Rules-Signature"], now=int(clock().timestamp()))
    assert not verify_signature("another-secret-entirely", headers["X-Rules-Timestamp"],
                                body, headers["X-Rules-Signature"],
                                now=int(clock().timestamp()))
    payload = json.loads(body)
    assert set(payload) == {"id", "type", "occurred_at", "ruleset", "data"}
    assert (payload["type"], payload["ruleset"], payload["data"]["version"]) == \
        ("version.proposed", NAME, 2)
    [delivery] = api.get(f"/v1/deliveries?subscription={subscription}").get_json()["deliveries"]
    assert delivery["id"] == headers["X-Rules-Delivery"]
    assert (delivery["state"], delivery["payload"]) == ("delivered", payload)


def test_a_receiver_failing_three_times_then_answering_gets_exactly_one_accepted_delivery(
        api: Api, worker: Worker, receiver: Receiver, clock: FakeClock) -> None:
    activate(api)
    drain(worker)
    subscribe(api, receiver.url, ["version.proposed"])
    receiver.script = [500, 500, 500]
    propose(api, 200, who="dev")
    for _ in range(MAX_PASSES):
        worker.run_once()
        if receiver.accepted():
            break
        clock.advance(timedelta(seconds=60))  # the backoff cap: the retry is due
    assert [r.answered for r in receiver.received] == [500, 500, 500, 200]
    assert len(receiver.accepted()) == 1
    assert len({r.body for r in receiver.received}) == 1  # the same event every time
    clock.advance(timedelta(hours=1))
    drain(worker)
    assert len(receiver.received) == 4
    [delivery] = api.get("/v1/deliveries?event=version.proposed").get_json()["deliveries"]
    assert (delivery["state"], delivery["attempts"], delivery["last_status"]) == \
        ("delivered", 4, 200)


def test_a_delivery_that_keeps_failing_goes_dead_and_can_be_retried_by_hand(
        api: Api, worker: Worker, receiver: Receiver, clock: FakeClock) -> None:
    activate(api)
    drain(worker)
    subscribe(api, receiver.url, ["version.proposed"])
    receiver.script = [503] * 5
    propose(api, 200, who="dev")
    for _ in range(MAX_PASSES):
        worker.run_once()
        clock.advance(timedelta(seconds=60))
    assert len(receiver.received) == 5  # max_attempts, then no more
    [dead] = api.get("/v1/deliveries?state=dead").get_json()["deliveries"]
    assert (dead["attempts"], dead["last_status"]) == (5, 503)
    assert error_of(api.post(f"/v1/deliveries/{dead['id']}/retry", who="stranger"))["code"] \
        == "forbidden"

    retried = api.post(f"/v1/deliveries/{dead['id']}/retry")
    assert retried.status_code == 202
    assert (retried.get_json()["state"], retried.get_json()["attempts"]) == ("queued", 0)
    drain(worker)
    assert len(receiver.accepted()) == 1
    again = api.post(f"/v1/deliveries/{dead['id']}/retry")
    assert (again.status_code, error_of(again)["code"]) == (409, "not_dead")


def test_a_change_rolled_back_inside_its_transaction_sends_nothing(
        api: Api, container: Container, engine_pool: EnginePool, worker: Worker,
        receiver: Receiver) -> None:
    activate(api)
    drain(worker)
    subscribe(api, receiver.url, ["version.proposed"])
    drain(worker)
    failing = container.uow()

    def commit_fails() -> None:
        raise RuntimeError("the database went away at commit")

    failing.commit = commit_fails  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        governance.propose_version(failing, engine_pool, NAME, definition=definition(200),
                                   actor="dev")
    drain(worker)
    assert receiver.received == []
    assert outbox_count(container, "version.proposed") == 1  # version 1's only

    governance.propose_version(container.uow(), engine_pool, NAME,
                               definition=definition(200), actor="dev")
    drain(worker)
    assert len(receiver.accepted()) == 1


def test_killing_the_worker_mid_delivery_loses_nothing(
        api: Api, container: Container, database_url: str, worker: Worker,
        receiver: Receiver, clock: FakeClock) -> None:
    activate(api)
    drain(worker)
    subscribe(api, receiver.url, ["version.proposed"])
    propose(api, 200, who="dev")
    receiver.hold = threading.Event()
    receiver.hold.set()
    env = {**server_env(database_url), "RULES_SERVICE_DELIVERY_TIMEOUT": "20",
           "RULES_SERVICE_DELIVERY_LEASE": "30", "RULES_SERVICE_WORKER_POLL_INTERVAL": "0.1"}
    process = subprocess.Popen([*cli_command(), "worker"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert receiver.arrived.wait(WAIT_S), "the worker never sent the webhook"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(WAIT_S)
    receiver.release.set()
    assert receiver.accepted() == []

    # The killed worker's lease still holds: nobody sends it twice meanwhile.
    worker.run_once()
    assert receiver.accepted() == []
    clock.advance(timedelta(seconds=60))  # past the lease the dead worker took
    drain(worker)
    [accepted] = receiver.accepted()
    assert json.loads(accepted.body)["data"]["version"] == 2
    [delivery] = api.get("/v1/deliveries?event=version.proposed").get_json()["deliveries"]
    assert (delivery["state"], delivery["attempts"]) == ("delivered", 2)


# --------------------------------------------------------------------------- escalations


RUNBOOK = {"purpose": "Refund quickly.",
           "escalation": {"path": ["appr", "biz", "ops"], "response_time_target": "4h"}}


@pytest.mark.usefixtures("contacts")
def test_an_escalation_left_open_walks_its_runbook_path_on_the_clock(
        api: Api, container: Container, worker: Worker, mailbox: Mailbox,
        receiver: Receiver, clock: FakeClock) -> None:
    activate(api, runbook=RUNBOOK)
    drain(worker)
    subscribe(api, receiver.url, ["escalation.opened", "escalation.overdue",
                                  "escalation.resolved"])
    evaluate = {"input": {"amount": 500}}
    first = api.post(f"{BASE}/evaluate", evaluate, who="bot",
                     headers={"Idempotency-Key": "claim-1"})
    replay = api.post(f"{BASE}/evaluate", evaluate, who="bot",
                      headers={"Idempotency-Key": "claim-1"})
    escalation = first.get_json()["escalation"]["id"]
    assert replay.get_json()["escalation"]["id"] == escalation
    assert outbox_count(container, "escalation.opened") == 1  # the replay opened nothing
    drain(worker)
    assert not any("needs the approver" in s for s in subjects(mailbox, "appr"))  # gathered
    clock.advance(timedelta(seconds=DIGEST_S))
    drain(worker)
    assert any("needs the approver" in s for s in subjects(mailbox, "appr"))

    clock.advance(timedelta(hours=4) - timedelta(seconds=DIGEST_S))
    assert worker.run_once().escalation_steps == 0  # at its target, not past it

    clock.advance(timedelta(seconds=1))
    drain(worker)
    assert any("overdue (step 1)" in s for s in subjects(mailbox, "biz"))
    assert not any("overdue" in s for s in subjects(mailbox, "ops"))
    overdue = api.get("/v1/escalations?overdue=true").get_json()["escalations"]
    assert [e["id"] for e in overdue] == [escalation]

    clock.advance(timedelta(hours=4))
    drain(worker)
    assert any("overdue (step 2)" in s for s in subjects(mailbox, "ops"))

    clock.advance(timedelta(hours=4))
    assert worker.run_once().escalation_steps == 0  # the path is walked to its end

    steps = notifications.escalation_steps(container.uow(), escalation)
    assert [(s.step, s.principal) for s in steps] == [(1, "biz"), (2, "ops")]
    listed = api.get("/v1/escalations?status=open").get_json()["escalations"]
    assert [(s["step"], s["principal"]) for s in listed[0]["steps"]] == [(1, "biz"),
                                                                         (2, "ops")]
    assert notifications.escalation_breaches(container.uow()) == 1
    figures = dashboard.dashboard(container.uow())
    assert figures["overall"]["escalations"]["breached"] == 1
    assert [r["escalations"]["breached"] for r in figures["rulesets"]] == [1]
    served = api.get("/v1/dashboard").get_json()
    assert served["overall"]["escalations"]["breached"] == 1
    assert [r["escalations"]["breached"] for r in served["rulesets"]] == [1]

    resolved = api.post(f"/v1/escalations/{escalation}/resolve", {"resolution": "approve"},
                        who="appr")
    assert resolved.status_code == 200
    assert [s["step"] for s in resolved.get_json()["steps"]] == [1, 2]
    drain(worker)
    told = [json.loads(r.body) for r in receiver.accepted()]
    assert [(e["type"], e["data"].get("step")) for e in told] == [
        ("escalation.opened", None), ("escalation.overdue", 1), ("escalation.overdue", 2),
        ("escalation.resolved", None)]
    assert {e["data"]["escalation_id"] for e in told} == {escalation}
    assert told[1]["data"]["notify"] == "biz"


# --------------------------------------------------------------------------- the API


def test_subscriptions_are_checked_and_every_problem_is_named(api: Api) -> None:
    activate(api)
    bad = api.post("/v1/subscriptions", {"url": "ftp://example.com/x",
                                         "events": ["version.proposed"], "ruleset": NAME,
                                         "secret": "short"})
    assert bad.status_code == 422
    assert {d["place"] for d in error_of(bad)["details"]} >= {"url"}
    unknown = api.post("/v1/subscriptions", {"url": "https://example.com/x",
                                             "events": ["version.exploded"], "ruleset": NAME,
                                             "secret": SECRET})
    assert unknown.status_code == 422
    weak = api.post("/v1/subscriptions", {"url": "https://example.com/x",
                                          "events": ["version.proposed"], "ruleset": NAME,
                                          "secret": "short"})
    assert [d["place"] for d in error_of(weak)["details"]] == ["secret"]
    missing = api.post("/v1/subscriptions", {"url": "mailto:ops@example.com",
                                             "events": ["version.proposed"],
                                             "ruleset": "nothing-here"})
    assert missing.status_code == 404


def test_owners_and_admins_manage_subscriptions_and_others_cannot(api: Api) -> None:
    activate(api)
    body = {"url": "mailto:ops-team@example.com", "events": ["version.activated"],
            "ruleset": NAME}
    assert error_of(api.post("/v1/subscriptions", body, who="stranger"))["code"] == "forbidden"
    assert api.post("/v1/subscriptions", {**body, "ruleset": None},
                    who="ops").status_code == 403
    created = api.post("/v1/subscriptions", body, who="ops")
    assert created.status_code == 201
    made = created.get_json()
    assert (made["url"], made["events"], made["created_by"]) == \
        (body["url"], ["version.activated"], "ops")
    assert "secret" not in made
    hook = subscribe(api, "https://hooks.example.com/rules", ["version.proposed"])

    mine = api.get("/v1/subscriptions", who="ops").get_json()["subscriptions"]
    assert [s["id"] for s in mine] == [made["id"]]
    every = api.get("/v1/subscriptions").get_json()["subscriptions"]
    assert {s["id"] for s in every} == {made["id"], hook}

    assert api.client.delete(f"/v1/subscriptions/{made['id']}",
                             headers=api.headers("stranger")).status_code == 403
    assert api.client.delete(f"/v1/subscriptions/{made['id']}",
                             headers=api.headers("ops")).status_code == 204
    assert api.client.delete(f"/v1/subscriptions/{made['id']}",
                             headers=api.headers("ops")).status_code == 404


def test_the_openapi_document_describes_the_webhook_body_and_metrics_count_deliveries(
        api: Api, worker: Worker, receiver: Receiver) -> None:
    spec = api.get("/openapi.json").get_json()
    assert {"/v1/subscriptions", "/v1/subscriptions/{subscription_id}", "/v1/deliveries",
            "/v1/deliveries/{delivery_id}/retry"} <= set(spec["paths"])
    assert set(spec["components"]["schemas"]["WebhookEvent"]["properties"]) == \
        {"id", "type", "occurred_at", "ruleset", "data"}

    activate(api)
    drain(worker)
    subscribe(api, receiver.url, ["version.proposed"])
    propose(api, 200, who="dev")
    worker.dispatch_events()
    queued = api.get("/metrics").get_data(as_text=True)
    assert 'rules_service_deliveries{state="queued"} 1.0' in queued
    drain(worker)
    done = api.get("/metrics").get_data(as_text=True)
    assert 'rules_service_deliveries{state="delivered"} 1.0' in done
    assert "rules_service_delivery_oldest_undelivered_seconds 0.0" in done


def test_the_delivery_log_filters_and_pages(api: Api, container: Container, worker: Worker,
                                            receiver: Receiver) -> None:
    activate(api)
    drain(worker)
    subscribe(api, receiver.url, ["version.proposed", "version.signed_off"])
    number = propose(api, 200, who="dev")
    assert api.post(f"{BASE}/versions/{number}/signoffs", {"decision": "approve"},
                    who="biz").status_code == 201
    drain(worker)
    everything = api.get("/v1/deliveries").get_json()["deliveries"]
    assert sorted(d["event"] for d in everything) == ["version.proposed",
                                                      "version.signed_off"]
    first = api.get("/v1/deliveries?limit=1").get_json()
    second = api.get(f"/v1/deliveries?limit=1&cursor={first['next_cursor']}").get_json()
    assert [d["id"] for d in first["deliveries"] + second["deliveries"]] == \
        [d["id"] for d in everything]
    assert second["next_cursor"] is None
    assert api.get("/v1/deliveries?state=stuck").status_code == 422
    assert api.get("/v1/deliveries", who="stranger").get_json()["deliveries"] == []
    with container.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(DeliveryRow)) == 2


def test_two_workers_share_the_work_without_sending_anything_twice(
        api: Api, container: Container, mailbox: Mailbox,
        receiver: Receiver) -> None:
    settings = DeliverySettings(timeout_s=5, lease_s=30, batch=5, concurrency=2,
                                smtp=SmtpSettings(host=mailbox.host, port=mailbox.port),
                                webhook_allow=("127.0.0.1",))
    workers = [Worker(container.uow, settings, clock=container.clock) for _ in range(2)]
    activate(api)
    drain(workers[0])
    subscribe(api, receiver.url, ["version.signed_off"])
    with container.uow() as uow:
        rs = uow.rulesets.get(NAME)
        assert rs is not None
        for i in range(40):
            events.version_event(uow, rs.id, 1, AuditAction.SIGNED_OFF, f"signer-{i}",
                                 uow.now() + timedelta(microseconds=i))
        uow.commit()
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def run(worker: Worker) -> None:
        try:
            start.wait(WAIT_S)
            drain(worker)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S * 4)
    assert failures == []
    ids = [json.loads(r.body)["id"] for r in receiver.accepted()]
    assert len(ids) == 40
    assert len(set(ids)) == 40


def test_an_owner_subscribes_a_team_mailbox_to_activations(
        api: Api, worker: Worker, mailbox: Mailbox) -> None:
    activate(api)
    drain(worker)
    assert api.post("/v1/subscriptions", {"url": "mailto:ops-team@example.com",
                                          "events": ["version.activated"], "ruleset": NAME},
                    who="ops").status_code == 201
    activate(api, 200)
    drain(worker)
    [message] = mailbox.to("ops-team@example.com")
    assert message["Subject"] == "[rules-service] refunds version 2 is now active"
    assert "event id:" in message.get_body(("plain",)).get_content()


@pytest.mark.usefixtures("contacts")
def test_a_persons_new_escalations_come_as_one_digest_and_an_overdue_one_at_once(
        api: Api, container: Container, worker: Worker, mailbox: Mailbox,
        clock: FakeClock) -> None:
    activate(api, runbook=RUNBOOK)
    drain(worker)
    ids = [api.post(f"{BASE}/evaluate", {"input": {"amount": 500 + i}}, who="bot")
           .get_json()["escalation"]["id"] for i in range(3)]
    before = len(mailbox.to(address("appr")))
    drain(worker)
    assert len(mailbox.to(address("appr"))) == before
    clock.advance(timedelta(seconds=DIGEST_S))
    drain(worker)
    [digest] = mailbox.to(address("appr"))[before:]
    assert str(digest["Subject"]).startswith("[rules-service] 3 notices for you: a refunds "
                                             "decision needs the approver by ")
    text = digest.get_body(("plain",)).get_content()
    for escalation in ids:
        assert f"Open it: https://rules.example.com/escalations#esc-{escalation}" in text
    assert 'input: {"amount": 501}' in text
    assert "rules that fired: " in text and "due: " in text

    clock.advance(timedelta(hours=8))  # the worker was down past the path's second step
    drain(worker)
    # At once, without waiting for a digest (the three due together go in one email).
    [overdue] = [s for s in subjects(mailbox, "ops") if "overdue" in s]
    assert overdue.startswith("[rules-service] 3 notices for you: a refunds escalation to "
                              "the approver is overdue (step 2)")
    assert not any("overdue" in s for s in subjects(mailbox, "biz"))  # passed over
    steps = notifications.escalation_steps(container.uow(), ids[0])
    assert [(s.step, s.principal, s.skipped) for s in steps] == [
        (1, "biz", True), (2, "ops", False)]
    assert api.post(f"/v1/escalations/{ids[0]}/resolve", {"resolution": "approve"},
                    who="ops").status_code == 200


def test_a_running_worker_writes_its_heartbeat_and_totals_for_metrics(
        api: Api, container: Container, mailbox: Mailbox) -> None:
    from rules_service.services.delivery import worker_name

    activate(api)  # events for the worker to fan out and mail
    running = Worker(container.uow, DeliverySettings(
        poll_interval_s=0.01, smtp=SmtpSettings(host=mailbox.host, port=mailbox.port)),
        clock=container.clock)
    before = api.get("/metrics").get_data(as_text=True)
    assert "rules_service_worker_passes_total{" not in before
    stop = threading.Event()
    thread = threading.Thread(target=running.run, args=(stop,))
    thread.start()
    try:
        for _ in range(500):  # the first heartbeat comes after the first pass
            if notifications.worker_heartbeats(container.uow()):
                break
            threading.Event().wait(0.01)
    finally:
        stop.set()
        thread.join()
    [beat] = notifications.worker_heartbeats(container.uow())
    assert beat.worker == worker_name() and beat.passes >= 1
    assert beat.events_dispatched >= 1 and beat.beat_at == container.clock()
    text = api.get("/metrics").get_data(as_text=True)
    label = f'worker="{worker_name()}"'
    assert f"rules_service_worker_passes_total{{{label}}} {float(beat.passes)}" in text
    assert (f'rules_service_worker_work_total{{kind="events_dispatched",{label}}} '
            f"{float(beat.events_dispatched)}") in text
    stamp = [line for line in text.splitlines()
             if line.startswith(f"rules_service_worker_last_pass_timestamp_seconds{{{label}}}")]
    assert [float(line.split()[-1]) for line in stamp] == [container.clock().timestamp()]
