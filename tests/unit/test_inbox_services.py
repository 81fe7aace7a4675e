"""What waits for a person, on the fake unit of work: the inbox follows the very rules
sign-off and resolve apply (no database)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rules_service.domain.errors import DomainError
from rules_service.domain.escalations import Escalation
from rules_service.services import governance as gov
from rules_service.services import inbox
from tests.unit.fakes import FakeClock, FakeEvaluator, FakeUnitOfWork, staffed_unit_of_work
from tests.unit.test_governance_services import NAME, PEOPLE, definition

EVERYONE = (*PEOPLE, "root", "bot")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def uow(clock: FakeClock) -> FakeUnitOfWork:
    return staffed_unit_of_work(PEOPLE, clock)


def propose(uow: FakeUnitOfWork, actor: str, limit: int = 100) -> None:
    gov.propose_version(uow, FakeEvaluator(), NAME, definition=definition(limit), actor=actor)


def sign(uow: FakeUnitOfWork, number: int, who: str) -> None:
    gov.sign_off(uow, NAME, number, decision="approve", comment="ok", actor=who)


def with_active_v1(uow: FakeUnitOfWork) -> None:
    propose(uow, "root")
    sign(uow, 1, "biz")
    sign(uow, 1, "appr")


def signoffs_of(uow: FakeUnitOfWork, who: str) -> list[tuple[int, tuple[str, ...]]]:
    return [(s.version, s.roles) for s in inbox.inbox(uow, who).signoffs]


def test_a_pending_version_waits_for_the_holders_of_its_missing_roles_never_its_author(
        uow: FakeUnitOfWork) -> None:
    with_active_v1(uow)
    propose(uow, "biz", 200)
    assert signoffs_of(uow, "appr") == [(2, ("approver",))]
    assert signoffs_of(uow, "biz-backup") == [(2, ("business_owner",))]
    assert signoffs_of(uow, "biz") == []
    assert signoffs_of(uow, "dev") == signoffs_of(uow, "bot") == signoffs_of(uow, "root") == []
    [mine] = inbox.inbox(uow, "biz").proposals
    assert (mine.version, mine.status, mine.missing_signoffs) == \
        (2, "pending", ("business_owner", "approver"))
    assert mine.holders == {"business_owner": ("biz-backup",), "approver": ("appr", "appr-backup")}
    sign(uow, 2, "appr")
    assert signoffs_of(uow, "appr-backup") == []
    assert signoffs_of(uow, "biz-backup") == [(2, ("business_owner",))]
    assert inbox.inbox(uow, "biz").proposals[0].missing_signoffs == ("business_owner",)


def test_the_inbox_lists_a_sign_off_exactly_when_sign_off_would_accept_it(
        uow: FakeUnitOfWork) -> None:
    with_active_v1(uow)
    propose(uow, "dev", 300)
    sign(uow, 2, "appr-backup")
    for who in EVERYONE:
        listed = signoffs_of(uow, who)
        before = uow.store.snapshot()
        try:
            sign(uow, 2, who)
        except DomainError:
            accepted = False
        else:
            accepted = True
        uow.store.restore(before)
        assert bool(listed) is accepted, who


def test_a_decided_version_waits_for_nobody(uow: FakeUnitOfWork) -> None:
    with_active_v1(uow)
    for who in EVERYONE:
        assert inbox.inbox(uow, who).to_dict() == {"signoffs": [], "escalations": [],
                                                   "proposals": [], "paused": [],
                                                   "reviews": []}


def escalation(ident: str, to_role: str, due_in: timedelta | None, clock: FakeClock,
               status: str = "open") -> Escalation:
    now = clock()
    return Escalation(ident, f"dec-{ident}", now, 1, NAME, 1, to_role, status,
                      now + due_in if due_in is not None else None, now)


def test_escalations_wait_for_whoever_may_resolve_them_soonest_due_first(
        uow: FakeUnitOfWork, clock: FakeClock) -> None:
    with_active_v1(uow)
    uow.escalations.items = [
        escalation("late", "operations_owner", timedelta(hours=9), clock),
        escalation("none", "operations_owner", None, clock),
        escalation("soon", "operations_owner", timedelta(hours=1), clock),
        escalation("appr", "approver", timedelta(hours=2), clock),
        escalation("done", "operations_owner", timedelta(hours=1), clock, "resolved")]
    clock.now += timedelta(hours=1, minutes=1)
    found = inbox.inbox(uow, "ops-backup").escalations
    assert [(e.id, e.overdue) for e in found] == [("soon", True), ("late", False),
                                                 ("none", False)]
    assert [e.id for e in inbox.inbox(uow, "appr").escalations] == \
        ["soon", "appr", "late", "none"]
    assert [e.id for e in inbox.inbox(uow, "root").escalations] == \
        ["soon", "appr", "late", "none"]
    for who in ("biz", "dev", "stranger", "bot"):
        assert inbox.inbox(uow, who).escalations == ()
    assert inbox.inbox(uow, "ops").count == 3


def test_who_may_resolve_names_the_holders_and_says_whether_it_is_me(
        uow: FakeUnitOfWork, clock: FakeClock) -> None:
    with_active_v1(uow)
    esc = escalation("e1", "operations_owner", timedelta(hours=1), clock)
    mine = inbox.who_may_resolve(uow, "ops", [esc])["e1"]
    assert mine.mine and mine.resolvers == ("ops", "ops-backup", "appr", "appr-backup")
    assert not inbox.who_may_resolve(uow, "biz", [esc])["e1"].mine


def test_me_lists_each_role_with_primary_or_backup(uow: FakeUnitOfWork) -> None:
    propose(uow, "root")  # a pending first version: its owners count already
    assert inbox.me(uow, "biz-backup").to_dict() == {
        "name": "biz-backup", "admin": False, "automation": False,
        "roles": [{"ruleset": NAME, "role": "business_owner", "as": "backup"}]}
    sign(uow, 1, "biz")
    sign(uow, 1, "appr")
    assert [r.to_dict() for r in inbox.me(uow, "appr").roles] == \
        [{"ruleset": NAME, "role": "approver", "as": "primary"}]
    root = inbox.me(uow, "root")
    assert (root.admin, root.automation, root.roles) == (True, False, ())
    assert inbox.me(uow, "bot").automation


def test_the_sentence_after_a_sign_off_says_where_the_version_stands(
        uow: FakeUnitOfWork) -> None:
    with_active_v1(uow)
    propose(uow, "biz", 200)
    view = gov.sign_off(uow, NAME, 2, decision="approve", actor="appr")
    assert view.signoff_sentence("appr") == \
        "Approved by you as approver; still waiting for the business owner (biz-backup)"
    view = gov.sign_off(uow, NAME, 2, decision="approve", actor="biz-backup")
    assert view.signoff_sentence("biz-backup") == ("Approved by you as business owner; every "
                                                   "sign-off is in and version 2 is active now")
    propose(uow, "dev", 300)
    view = gov.sign_off(uow, NAME, 3, decision="reject", actor="appr-backup")
    assert view.signoff_sentence("appr-backup") == \
        "Rejected by you as approver; version 3 will not take effect"
