"""``ruleset.review_due``: told by the worker once per activation when the review rhythm
(``review_every``) says the active version is due, to the business owner."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select

from rules_service.adapters.orm import OutboxEventRow
from rules_service.bootstrap import Container
from rules_service.domain import notifications as rules
from rules_service.services import reviews_due
from rules_service.services.delivery import Worker, default_recipients
from tests.integration.api_fixtures import Api
from tests.integration.conftest import FakeClock, definition

NAME = "refunds"
BASE = f"/v1/rulesets/{NAME}"


def activate(api: Api, number: int, limit: int, **changes: object) -> None:
    who = "root" if number == 1 else "dev"
    assert api.post(f"{BASE}/versions", {"definition": definition(limit, **changes)},
                    who=who).status_code == 201
    for signer in ("biz", "appr"):
        assert api.post(f"{BASE}/versions/{number}/signoffs", {"decision": "approve"},
                        who=signer).status_code == 201


def told(container: Container) -> list[rules.OutboxEvent]:
    with container.engine.connect() as conn:
        rows = conn.execute(select(OutboxEventRow).where(
            OutboxEventRow.type == rules.REVIEW_DUE).order_by(OutboxEventRow.occurred_at))
        return [rules.OutboxEvent(r.id, r.type, r.ruleset_id, r.occurred_at, r.data)
                for r in rows]


def test_the_review_is_told_once_per_activation(api: Api, container: Container,
                                                clock: FakeClock) -> None:
    activate(api, 1, 100, review_every="30d")
    worker = Worker(container.uow, clock=container.clock)
    worker.run_once()
    assert told(container) == []
    clock.advance(timedelta(days=30))
    worker.run_once()
    [event] = told(container)
    assert event.data["version"] == 1
    assert event.data["details"]["review_every"] == "30d"
    assert reviews_due.tell_reviews_due(container.uow()) == 0  # once
    clock.advance(timedelta(days=31))
    assert reviews_due.tell_reviews_due(container.uow()) == 0  # still once
    uow = container.uow()
    with uow:
        assert default_recipients(uow, event) == ["biz", "biz-backup"]
    assert "refunds version 1 is due for review" in rules.summary(
        event.type, NAME, event.data)

    activate(api, 2, 120, review_every="30d")  # a new version starts the rhythm again
    assert reviews_due.tell_reviews_due(container.uow()) == 0
    clock.advance(timedelta(days=30))
    assert reviews_due.tell_reviews_due(container.uow()) == 1
    assert [e.data["version"] for e in told(container)] == [1, 2]


def test_racing_workers_tell_it_once(api: Api, container: Container,
                                     clock: FakeClock) -> None:
    activate(api, 1, 100, review_every="7d")
    clock.advance(timedelta(days=8))
    counts: list[int] = []
    errors: list[BaseException] = []

    def tell() -> None:
        try:
            counts.append(reviews_due.tell_reviews_due(container.uow()))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=tell) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sum(counts) == 1
    assert len(told(container)) == 1


def test_without_a_rhythm_nothing_is_told(api: Api, container: Container,
                                          clock: FakeClock) -> None:
    activate(api, 1, 100)
    clock.advance(timedelta(days=3650))
    assert reviews_due.tell_reviews_due(container.uow()) == 0
    assert api.get(BASE).get_json()["review_due_at"] is None
