"""Which versions a rollback left, and when the active version changed, from the audit
trail alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rules_service.services.rollbacks import rolled_back, version_changes
from rules_service.services.views import AuditEventView

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event(minute: int, action: str, version: int, **details: Any) -> AuditEventView:
    return AuditEventView(minute, "refunds", version, action, "ops", "", details,
                          T0 + timedelta(minutes=minute))


def test_a_version_left_by_a_rollback_is_rolled_back() -> None:
    trail = [event(0, "activated", 1, previous_version=None),
             event(1, "superseded", 1, by_version=2),
             event(2, "activated", 2, previous_version=1),
             event(3, "superseded", 2, by_version=1),
             event(4, "rolled_back", 1, previous_version=2, from_version=2, to_version=1)]
    assert rolled_back(trail) == {2}
    assert [(c.version, c.rolled_back) for c in version_changes(trail)] == [
        (1, False), (2, False), (1, True)]


def test_a_rolled_back_version_activated_again_and_left_normally_is_not() -> None:
    trail = [event(4, "rolled_back", 1, previous_version=2),
             event(0, "activated", 1, previous_version=None),
             event(2, "activated", 2, previous_version=1),
             event(6, "rolled_back", 2, previous_version=1),  # back to 2 ...
             event(8, "activated", 3, previous_version=2)]    # ... then 3 replaced it
    assert rolled_back(trail) == {1}


def test_no_rollback_no_rolled_back_version() -> None:
    trail = [event(0, "activated", 1, previous_version=None),
             event(2, "activated", 2, previous_version=1), event(3, "proposed", 3)]
    assert rolled_back(trail) == set()
    assert len(version_changes(trail)) == 2
