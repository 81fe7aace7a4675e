"""The escalation rules at the service level, on fakes: who may resolve, resolving twice,
and the overdue walk along the runbook's escalation path (no database, no processes)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rules_service.domain.errors import Conflict, Forbidden, NotFound, RequestInvalid
from rules_service.domain.escalations import DecisionFacts, Escalation
from rules_service.services import decisions, notifications
from rules_service.services.delivery import Worker
from tests.unit.fakes_operations import NOON, FakeUnitOfWork, definition_of

DUE = NOON + timedelta(hours=4)


@pytest.fixture
def uow() -> FakeUnitOfWork:
    fake = FakeUnitOfWork()
    fake.versions.add("expense-approval", 1, definition_of("expense-approval.yaml"))
    for name in ("controller", "cfo", "finance-lead", "ops-oncall", "stranger"):
        fake.principals.add(name)
    fake.principals.add("admin", is_admin=True)
    fake.principals.add("robot", is_automation=True)
    fake.escalations.add(Escalation(
        "esc-1", "dec-1", NOON, 1, "expense-approval", 1, "approver", "open", DUE, NOON,
        decision=DecisionFacts({"amount": 9000}, "escalate",
                               [{"id": "big", "reason": "over 5000"}], ["big"], False, None,
                               NOON)))
    return fake


def test_the_holder_of_the_role_resolves_it_and_the_resolution_is_told(
        uow: FakeUnitOfWork) -> None:
    uow.clock.now = NOON + timedelta(hours=1)
    view = decisions.resolve_escalation(uow, "esc-1", resolution="approve", comment="ok",
                                        actor="controller")
    assert (view.status, view.resolution, view.resolved_by, view.comment) == \
        ("resolved", "approve", "controller", "ok")
    assert view.decision is not None
    assert view.decision["deciding_rules"] == [{"id": "big", "reason": "over 5000"}]
    [event] = uow.outbox.of_type("escalation.resolved")
    assert event.occurred_at == NOON + timedelta(hours=1)
    assert event.data == {"escalation_id": "esc-1", "decision_id": "dec-1", "version": 1,
                          "to_role": "approver", "resolution": "approve",
                          "resolved_by": "controller", "comment": "ok"}
    assert uow.escalations.resolutions == ["esc-1"]
    assert uow.committed == 1


@pytest.mark.parametrize("actor", ["cfo", "admin"])
def test_the_backup_and_an_admin_may_resolve(uow: FakeUnitOfWork, actor: str) -> None:
    view = decisions.resolve_escalation(uow, "esc-1", resolution="reject", actor=actor)
    assert view.resolved_by == actor


@pytest.mark.parametrize("actor", ["stranger", "ops-oncall", "robot"])
def test_anyone_else_is_refused_and_nothing_changes(uow: FakeUnitOfWork, actor: str) -> None:
    with pytest.raises(Forbidden):
        decisions.resolve_escalation(uow, "esc-1", resolution="approve", actor=actor)
    assert uow.escalations.items["esc-1"].status == "open"
    assert uow.outbox.events == []
    assert uow.committed == 0


def test_resolving_twice_is_a_conflict(uow: FakeUnitOfWork) -> None:
    decisions.resolve_escalation(uow, "esc-1", resolution="approve", actor="controller")
    with pytest.raises(Conflict) as caught:
        decisions.resolve_escalation(uow, "esc-1", resolution="reject", actor="cfo")
    assert caught.value.code == "already_resolved"
    assert "(approve) by controller" in str(caught.value)
    assert len(uow.outbox.of_type("escalation.resolved")) == 1


def test_unknown_escalations_and_resolutions_are_refused(uow: FakeUnitOfWork) -> None:
    with pytest.raises(NotFound):
        decisions.resolve_escalation(uow, "nope", resolution="approve", actor="admin")
    with pytest.raises(RequestInvalid):
        decisions.resolve_escalation(uow, "esc-1", resolution="maybe", actor="admin")


def test_the_list_shows_overdue_ones_with_their_decision(uow: FakeUnitOfWork) -> None:
    uow.clock.now = DUE - timedelta(seconds=1)
    assert decisions.list_escalations(uow, overdue=True) == []
    uow.clock.now = DUE + timedelta(seconds=1)
    [view] = decisions.list_escalations(uow, overdue=True, ruleset="expense-approval")
    assert view.id == "esc-1" and view.decision is not None
    assert view.decision["input"] == {"amount": 9000}


def test_an_overdue_escalation_walks_the_path_after_its_holder(uow: FakeUnitOfWork) -> None:
    worker = Worker(lambda: uow)
    uow.clock.now = DUE  # due, not yet past it
    assert worker.walk_escalations() == 0
    uow.clock.now = DUE + timedelta(minutes=1)
    assert worker.walk_escalations() == 1
    assert worker.walk_escalations() == 0  # the next step waits a whole interval
    uow.clock.now = DUE + timedelta(hours=4, minutes=1)
    assert worker.walk_escalations() == 1
    uow.clock.now = DUE + timedelta(days=3)
    assert worker.walk_escalations() == 0  # the path is exhausted

    steps = notifications.escalation_steps(uow, "esc-1")
    assert [(s.step, s.principal) for s in steps] == [(1, "cfo"), (2, "finance-lead")]
    overdue = uow.outbox.of_type("escalation.overdue")
    assert [e.data["notify"] for e in overdue] == ["cfo", "finance-lead"]
    assert overdue[0].data["next_step_at"] == (DUE + timedelta(hours=4)).isoformat()
    assert overdue[1].data["next_step_at"] is None
    esc = uow.escalations.items["esc-1"]
    assert esc.breached_at == DUE + timedelta(minutes=1)
    assert esc.steps_taken == 2
    assert notifications.escalation_breaches(uow) == 1
    assert notifications.escalation_breaches(uow, since=DUE + timedelta(seconds=1)) == 0


def test_a_resolved_escalation_is_never_walked(uow: FakeUnitOfWork) -> None:
    decisions.resolve_escalation(uow, "esc-1", resolution="approve", actor="controller")
    uow.clock.now = DUE + timedelta(hours=1)
    assert Worker(lambda: uow).walk_escalations() == 0
    assert uow.outbox.of_type("escalation.overdue") == []


def test_the_steps_of_an_unknown_escalation_are_404(uow: FakeUnitOfWork) -> None:
    with pytest.raises(NotFound):
        notifications.escalation_steps(uow, "nope")


def test_after_downtime_only_the_current_step_is_paged_and_the_skipped_are_recorded(
        uow: FakeUnitOfWork) -> None:
    worker = Worker(lambda: uow)
    uow.clock.now = DUE + timedelta(days=3)  # the worker was down the whole time
    assert worker.walk_escalations() == 1
    assert worker.walk_escalations() == 0  # nobody else is paged afterwards
    [overdue] = uow.outbox.of_type("escalation.overdue")
    assert (overdue.data["step"], overdue.data["notify"], overdue.data["skipped"]) == \
        (2, "finance-lead", ["cfo"])
    steps = notifications.escalation_steps(uow, "esc-1")
    assert [(s.step, s.principal, s.skipped) for s in steps] == [
        (1, "cfo", True), (2, "finance-lead", False)]


def test_a_walk_one_interval_late_skips_one_step_and_keeps_the_rhythm(
        uow: FakeUnitOfWork) -> None:
    uow.principals.add("maint")
    uow.escalations.items["esc-1"].to_role = "maintainer"  # path: all three people
    worker = Worker(lambda: uow)
    uow.clock.now = DUE + timedelta(hours=5)
    assert worker.walk_escalations() == 1
    [overdue] = uow.outbox.of_type("escalation.overdue")
    assert (overdue.data["notify"], overdue.data["skipped"]) == ("cfo", ["controller"])
    assert overdue.data["next_step_at"] == (DUE + timedelta(hours=8)).isoformat()


def test_a_person_on_the_path_may_resolve_once_the_walk_has_reached_them(
        uow: FakeUnitOfWork) -> None:
    # finance-lead is the business owner: no right of their own to an approver's escalation.
    with pytest.raises(Forbidden):
        decisions.resolve_escalation(uow, "esc-1", resolution="approve",
                                     actor="finance-lead")
    uow.clock.now = DUE + timedelta(hours=4, minutes=1)
    Worker(lambda: uow).walk_escalations()  # one interval late: finance-lead is paged
    view = decisions.resolve_escalation(uow, "esc-1", resolution="approve",
                                        actor="finance-lead")
    assert view.resolved_by == "finance-lead"


def test_someone_off_the_path_gains_nothing_from_the_walk(uow: FakeUnitOfWork) -> None:
    uow.clock.now = DUE + timedelta(days=3)
    Worker(lambda: uow).walk_escalations()
    for actor in ("stranger", "ops-oncall", "robot"):
        with pytest.raises(Forbidden):
            decisions.resolve_escalation(uow, "esc-1", resolution="approve", actor=actor)
