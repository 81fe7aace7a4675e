"""Recording decisions: idempotency, escalations with due times, cursors, resolution."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rules_service.bootstrap import Container
from rules_service.domain.errors import Conflict, Forbidden, NotFound, RequestInvalid
from rules_service.services import decisions as dec
from rules_service.services import governance as gov
from tests.integration.conftest import FakeClock, definition

pytestmark = pytest.mark.usefixtures("people")

NAME = "refunds"


@pytest.fixture
def active(container: Container) -> gov.LoadedVersion:
    gov.propose_version(container.uow(), container.evaluator, NAME,
                        definition=definition(), actor="root")
    gov.sign_off(container.uow(), NAME, 1, decision="approve", actor="biz")
    gov.sign_off(container.uow(), NAME, 1, decision="approve", actor="appr")
    return gov.load_version(container.uow(), NAME)


def decide(c: Container, loaded: gov.LoadedVersion, amount: float, caller: str = "bot",
           key: str | None = None) -> dec.DecisionView:
    data = {"amount": amount}
    evaluation = c.evaluator.evaluate(loaded.ruleset, data)
    return dec.record_decision(c.uow(), ruleset=NAME, version=loaded.version,
                               evaluation=evaluation, caller=caller, idempotency_key=key,
                               request_hash=dec.request_hash(NAME, None, data))


def test_decision_is_recorded_with_everything(container: Container,
                                              active: gov.LoadedVersion) -> None:
    view = decide(container, active, 5)
    again = dec.get_decision(container.uow(), view.decision_id)
    body = again.to_dict(full=True)
    assert (body["outcome"], body["version"], body["deciding_rules"]) == ("approve", 1, ["small"])
    assert body["fired_rules"][0]["id"] == "small"
    assert (body["input"], body["caller"], body["escalation"]) == ({"amount": 5}, "bot", None)


def test_escalation_is_due_by_the_runbook_target(container: Container, clock: FakeClock,
                                                 active: gov.LoadedVersion) -> None:
    view = decide(container, active, 500)
    assert view.outcome == "escalate" and view.escalation is not None
    assert view.escalation.to_role == "approver"
    assert view.escalation.due_at == clock.now + timedelta(hours=4)
    assert dec.list_escalations(container.uow(), overdue=True) == []
    clock.advance(timedelta(hours=5))
    [overdue] = dec.list_escalations(container.uow(), overdue=True, ruleset=NAME)
    assert overdue.id == view.escalation.id and overdue.is_overdue(clock.now)


def test_same_key_same_request_returns_the_first_decision(container: Container,
                                                          active: gov.LoadedVersion) -> None:
    first = decide(container, active, 5, key="k1")
    second = decide(container, active, 5, key="k1")
    assert second.decision_id == first.decision_id and second.replayed
    assert len(dec.list_decisions(container.uow())[0]) == 1
    # Another caller may use the same key for its own request.
    assert decide(container, active, 5, caller="appr", key="k1").decision_id != \
        first.decision_id


def test_same_key_different_request_is_409(container: Container,
                                           active: gov.LoadedVersion) -> None:
    decide(container, active, 5, key="k1")
    with pytest.raises(Conflict) as info:
        decide(container, active, 6, key="k1")
    assert info.value.code == "idempotency_conflict"


def test_decisions_page_newest_first_by_cursor(container: Container, clock: FakeClock,
                                               active: gov.LoadedVersion) -> None:
    ids = []
    for i in range(5):
        ids.append(decide(container, active, i).decision_id)
        if i % 2:
            clock.advance(timedelta(seconds=1))  # some share a timestamp, some do not
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = dec.list_decisions(container.uow(), ruleset=NAME, limit=2,
                                          cursor=cursor)
        seen += [d.decision_id for d in page]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    times = [dec.get_decision(container.uow(), i).evaluated_at for i in seen]
    assert times == sorted(times, reverse=True)
    with pytest.raises(RequestInvalid):
        dec.list_decisions(container.uow(), cursor="garbage!")


def test_approver_resolves_an_escalation_once(container: Container,
                                              active: gov.LoadedVersion) -> None:
    esc = decide(container, active, 500).escalation
    assert esc is not None
    with pytest.raises(Forbidden):
        dec.resolve_escalation(container.uow(), esc.id, resolution="approve", actor="biz")
    done = dec.resolve_escalation(container.uow(), esc.id, resolution="reject",
                                  comment="no", actor="appr-backup")
    assert (done.status, done.resolution, done.resolved_by) == ("resolved", "reject",
                                                                "appr-backup")
    with pytest.raises(Conflict) as info:
        dec.resolve_escalation(container.uow(), esc.id, resolution="approve", actor="root")
    assert info.value.code == "already_resolved"
    with pytest.raises(NotFound):
        dec.resolve_escalation(container.uow(), "nope", resolution="approve", actor="root")
    assert [e.status for e in dec.list_escalations(container.uow(), status="resolved")] == \
        ["resolved"]
