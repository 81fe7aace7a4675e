"""`db retention` removes old notification events and deliveries once settled."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, select

from rules_service.adapters.orm import DeliveryRow, OutboxEventRow
from rules_service.bootstrap import Container
from rules_service.services import retention
from tests.integration.conftest import FakeClock

DAY = timedelta(days=1)


def _event(container: Container, event_id: str, at, delivery_states: list[str],
           dispatched: bool = True) -> None:
    with container.engine.begin() as conn:
        conn.execute(insert(OutboxEventRow), [{
            "id": event_id, "type": "version.approved", "ruleset_id": None,
            "occurred_at": at, "data": {}, "dispatched_at": at if dispatched else None}])
        for n, state in enumerate(delivery_states):
            conn.execute(insert(DeliveryRow), [{
                "id": f"{event_id}-{n}", "event_id": event_id,
                "event_type": "version.approved", "subscription_id": None,
                "recipient": None, "target": "https://hooks.example.com/x", "state": state,
                "attempts": 1, "next_attempt_at": at, "created_at": at}])


def _left(container: Container) -> tuple[list[str], list[str]]:
    with container.engine.connect() as conn:
        events = sorted(conn.execute(select(OutboxEventRow.id)).scalars())
        deliveries = sorted(conn.execute(select(DeliveryRow.id)).scalars())
    return events, deliveries


def test_settled_old_notifications_go_and_everything_else_stays(
        container: Container, clock: FakeClock, tmp_path: Path) -> None:
    old = clock.now - 500 * DAY
    _event(container, "old-done", old, ["delivered", "dead"])
    _event(container, "old-retrying", old, ["delivered", "failed"])
    _event(container, "old-queued", old, ["queued"])
    _event(container, "old-not-fanned-out", old, [], dispatched=False)
    _event(container, "recent", clock.now - DAY, ["delivered"])

    dry = retention.apply_retention(container.engine, older_than=400 * DAY,
                                    archive_dir=tmp_path, now=clock.now, dry_run=True)
    assert dry.notifications == (1, 2)
    assert "notifications: 1 events and 2 deliveries" in "\n".join(dry.lines())
    assert "would be removed" in dry.lines()[-1]
    assert len(_left(container)[0]) == 5

    report = retention.apply_retention(container.engine, older_than=400 * DAY,
                                       archive_dir=tmp_path, now=clock.now)
    assert report.notifications == (1, 2)
    events, deliveries = _left(container)
    assert events == ["old-not-fanned-out", "old-queued", "old-retrying", "recent"]
    assert deliveries == ["old-queued-0", "old-retrying-0", "old-retrying-1", "recent-0"]
