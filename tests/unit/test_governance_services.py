"""The governance use cases on the fake unit of work: the lifecycle rules, no database."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from rules_service.domain.errors import (
    Conflict,
    Forbidden,
    NotFound,
    RequestInvalid,
    RulesetInvalid,
    Unauthenticated,
)
from rules_service.services import governance as gov
from rules_service.services import review
from rules_service.services.views import VersionView
from tests.unit.fakes import FakeClock, FakeEvaluator, FakeUnitOfWork, staffed_unit_of_work

NAME = "refunds"

BASE: dict[str, Any] = {
    "name": NAME,
    "title": "Refunds",
    "description": "Decides refunds.",
    "owners": {
        "business_owner": {"primary": "biz", "backup": "biz-backup"},
        "operations_owner": {"primary": "ops", "backup": "ops-backup"},
        "approver": {"primary": "appr", "backup": "appr-backup"},
        "maintainer": {"primary": "dev", "backup": "dev-backup"},
    },
    "signoff": ["business_owner", "approver"],
    "thresholds": {"limit": 100},
    "inputs": {"amount": {"type": "number", "required": True, "minimum": 0}},
    "rules": [
        {"id": "small", "when": "amount <= thresholds.limit", "then": "approve"},
        {"id": "huge", "when": "amount > 100000", "then": "escalate"},
    ],
    "default": "escalate",
    "fallback": "escalate",
    "tests": [{"name": "tiny refund is approved", "input": {"amount": 1},
               "expect": {"outcome": "approve", "fired": ["small"]}}],
    "runbook": {"purpose": "Refund quickly.",
                "escalation": {"path": ["appr"], "response_time_target": "4h"}},
    "impact": {"minutes_saved_per_auto_decision": 5},
}

PEOPLE = ("dev", "dev-backup", "biz", "biz-backup", "ops", "ops-backup", "appr", "appr-backup",
          "stranger")


def definition(limit: int = 100, **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(BASE)
    out["thresholds"]["limit"] = limit
    out.update(copy.deepcopy(changes))
    return out


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def uow(clock: FakeClock) -> FakeUnitOfWork:
    return staffed_unit_of_work(PEOPLE, clock)


@pytest.fixture
def evaluator() -> FakeEvaluator:
    return FakeEvaluator()


def propose(uow: FakeUnitOfWork, evaluator: FakeEvaluator, actor: str, limit: int = 100,
            **kw: Any) -> VersionView:
    changes = kw.pop("changes", {})
    return gov.propose_version(uow, evaluator, NAME, definition=definition(limit, **changes),
                               actor=actor, **kw)


def sign(uow: FakeUnitOfWork, number: int, who: str, decision: str = "approve",
         **kw: Any) -> VersionView:
    return gov.sign_off(uow, NAME, number, decision=decision, comment="ok", actor=who, **kw)


def active_v1(uow: FakeUnitOfWork, evaluator: FakeEvaluator) -> None:
    propose(uow, evaluator, "root")
    sign(uow, 1, "biz")
    sign(uow, 1, "appr")


def actions(uow: FakeUnitOfWork) -> list[tuple[int | None, str, str]]:
    return [(e.version, e.action, e.actor) for e in gov.list_audit_events(uow, NAME)]


def statuses(uow: FakeUnitOfWork) -> dict[int, str]:
    return {v.version: v.status for v in gov.list_versions(uow, NAME)}


# --------------------------------------------------------------------------- propose


def test_admin_proposes_a_first_version_as_pending_without_base(
        uow: FakeUnitOfWork, evaluator: FakeEvaluator) -> None:
    view = propose(uow, evaluator, "root", note="first")
    assert (view.version, view.status, view.base_version, view.author) == (1, "pending",
                                                                           None, "root")
    assert actions(uow) == [(1, "proposed", "root")]
    assert evaluator.batches == 1  # the embedded tests ran
    assert [e[0] for e in uow.store.outbox] == ["version.proposed"]


@pytest.mark.parametrize("who", ["dev", "biz", "stranger"])
def test_only_an_admin_proposes_a_first_version(uow: FakeUnitOfWork, evaluator: FakeEvaluator,
                                               who: str) -> None:
    with pytest.raises(Forbidden, match="only an admin"):
        propose(uow, evaluator, who)
    assert uow.store.versions == {}


@pytest.mark.parametrize("who", ["dev", "biz", "biz-backup", "root"])
def test_maintainers_business_owners_and_admins_propose_later_versions(
        uow: FakeUnitOfWork, evaluator: FakeEvaluator, who: str) -> None:
    active_v1(uow, evaluator)
    view = propose(uow, evaluator, who, limit=200)
    assert (view.version, view.base_version) == (2, 1)


@pytest.mark.parametrize("who", ["appr", "ops", "stranger", "bot"])
def test_other_principals_cannot_propose(uow: FakeUnitOfWork, evaluator: FakeEvaluator,
                                         who: str) -> None:
    active_v1(uow, evaluator)
    with pytest.raises(Forbidden):
        propose(uow, evaluator, who, limit=200)


def test_unknown_or_revoked_actors_are_unauthenticated(uow: FakeUnitOfWork,
                                                      evaluator: FakeEvaluator) -> None:
    with pytest.raises(Unauthenticated):
        propose(uow, evaluator, "nobody")
    uow.store.revoked.add("root")
    with pytest.raises(Unauthenticated):
        propose(uow, evaluator, "root")


def test_identical_content_is_refused(uow: FakeUnitOfWork, evaluator: FakeEvaluator) -> None:
    active_v1(uow, evaluator)
    with pytest.raises(Conflict) as active:
        propose(uow, evaluator, "dev")
    assert active.value.code == "identical_to_active"
    propose(uow, evaluator, "dev", limit=200)
    with pytest.raises(Conflict) as pending:
        propose(uow, evaluator, "biz", limit=200)
    assert pending.value.code == "identical_to_pending"


def test_a_failing_embedded_test_or_an_unknown_owner_blocks_the_version(
        uow: FakeUnitOfWork, evaluator: FakeEvaluator) -> None:
    with pytest.raises(RulesetInvalid) as failing:
        propose(uow, evaluator, "root", limit=0)
    assert [p.place for p in failing.value.problems] == ["tests[0]"]
    owners = copy.deepcopy(BASE["owners"])
    owners["approver"]["backup"] = "ghost"
    with pytest.raises(RulesetInvalid) as unknown:
        propose(uow, evaluator, "root", changes={"owners": owners})
    assert [p.place for p in unknown.value.problems] == ["owners.approver.backup"]
    assert uow.store.versions == {}


def test_content_and_definition_are_exclusive_and_must_name_the_ruleset(
        uow: FakeUnitOfWork, evaluator: FakeEvaluator) -> None:
    with pytest.raises(RequestInvalid):
        gov.propose_version(uow, evaluator, NAME, actor="root")
    with pytest.raises(RulesetInvalid) as misnamed:
        gov.propose_version(uow, evaluator, "other", definition=definition(), actor="root")
    assert misnamed.value.problems[0].place == "name"


def test_a_stale_or_unknown_starting_point_is_refused(uow: FakeUnitOfWork,
                                                      evaluator: FakeEvaluator) -> None:
    active_v1(uow, evaluator)
    propose(uow, evaluator, "dev", limit=200, base_version=1)
    with pytest.raises(Conflict) as stale:
        propose(uow, evaluator, "biz", limit=300, base_version=1)
    assert stale.value.code == "stale_base"
    details: Any = stale.value.details
    assert [d["version"] for d in details] == [2]
    with pytest.raises(RequestInvalid, match="has no version 9"):
        propose(uow, evaluator, "biz", limit=300, base_version=9)


# --------------------------------------------------------------------------- sign-off


def test_every_signoff_role_approving_activates_the_version(uow: FakeUnitOfWork,
                                                            evaluator: FakeEvaluator) -> None:
    propose(uow, evaluator, "root")
    half = sign(uow, 1, "biz")
    assert (half.status, half.missing_signoffs) == ("pending", ("approver",))
    done = sign(uow, 1, "appr")
    assert done.status == "active"
    assert [s.role for s in done.signoffs] == ["business_owner", "approver"]
    assert actions(uow) == [(1, "proposed", "root"), (1, "signed_off", "biz"),
                            (1, "signed_off", "appr"), (1, "approved", "appr"),
                            (1, "activated", "appr")]
    assert gov.load_version(uow, NAME).version == 1
    assert uow.store.generation == 5  # every event announces a change to the processes


def test_any_required_role_rejecting_rejects(uow: FakeUnitOfWork,
                                             evaluator: FakeEvaluator) -> None:
    propose(uow, evaluator, "root")
    view = sign(uow, 1, "appr", "reject")
    assert view.status == "rejected" and view.closed_at is not None
    events = gov.list_audit_events(uow, NAME)
    assert (events[-1].action, events[-1].details) == ("rejected", {"role": "approver"})
    with pytest.raises(Conflict) as again:
        sign(uow, 1, "biz")
    assert again.value.code == "not_pending"


def test_four_eyes_the_author_cannot_sign_off(uow: FakeUnitOfWork,
                                              evaluator: FakeEvaluator) -> None:
    active_v1(uow, evaluator)
    propose(uow, evaluator, "biz", limit=200)
    with pytest.raises(Forbidden, match="author"):
        sign(uow, 2, "biz")
    assert review.signoff_eligibility(uow, NAME, 2, "biz").allowed is False
    assert review.signoff_eligibility(uow, NAME, 2, "biz-backup").role == "business_owner"


@pytest.mark.parametrize("who", ["ops", "dev", "stranger", "bot"])
def test_non_holders_and_automations_cannot_sign_off(uow: FakeUnitOfWork,
                                                     evaluator: FakeEvaluator,
                                                     who: str) -> None:
    propose(uow, evaluator, "root")
    with pytest.raises(Forbidden):
        sign(uow, 1, who)
    assert statuses(uow) == {1: "pending"}


def test_one_person_fills_one_role_and_a_role_is_filled_once(
        uow: FakeUnitOfWork, evaluator: FakeEvaluator) -> None:
    propose(uow, evaluator, "root")
    sign(uow, 1, "biz")
    with pytest.raises(Conflict) as twice:
        sign(uow, 1, "biz")
    assert twice.value.code == "already_signed_off"
    with pytest.raises(Conflict) as filled:
        sign(uow, 1, "biz-backup")
    assert filled.value.code == "role_already_signed_off"


def test_signoff_roles_come_from_the_base_version(uow: FakeUnitOfWork,
                                                  evaluator: FakeEvaluator) -> None:
    active_v1(uow, evaluator)
    view = propose(uow, evaluator, "dev", limit=200, changes={"signoff": ["approver"]})
    assert view.required_signoffs == ("business_owner", "approver")


def test_a_bad_decision_word_and_unknown_names_are_refused(uow: FakeUnitOfWork,
                                                           evaluator: FakeEvaluator) -> None:
    propose(uow, evaluator, "root")
    with pytest.raises(RequestInvalid):
        sign(uow, 1, "biz", "maybe")
    with pytest.raises(NotFound):
        sign(uow, 9, "biz")
    with pytest.raises(NotFound):
        gov.sign_off(uow, "other", 1, decision="approve", actor="biz")


# --------------------------------------------------------------------------- stale


def test_activation_makes_versions_based_on_the_old_active_one_stale(
        uow: FakeUnitOfWork, evaluator: FakeEvaluator) -> None:
    active_v1(uow, evaluator)
    propose(uow, evaluator, "dev", limit=200)
    propose(uow, evaluator, "biz", limit=300)
    sign(uow, 2, "biz")
    sign(uow, 2, "appr")
    assert statuses(uow) == {1: "superseded", 2: "active", 3: "stale"}
    stale = [e for e in gov.list_audit_events(uow, NAME) if e.action == "stale"]
    assert stale[0].details == {"base_version": 1, "active_version": 2}


def test_a_proposal_warns_of_every_other_open_version_on_its_base(
        uow: FakeUnitOfWork, evaluator: FakeEvaluator) -> None:
    active_v1(uow, evaluator)
    assert propose(uow, evaluator, "dev", limit=200).warnings == ()
    propose(uow, evaluator, "biz", limit=250)
    sign(uow, 3, "appr")
    third = propose(uow, evaluator, "biz-backup", limit=300)
    assert [(w["version"], w["author"], w["status"], w["base_version"])
            for w in third.warnings] == [(2, "dev", "pending", 1), (3, "biz", "pending", 1)]
    assert "whichever goes live first makes the other stale" in third.warnings[0]["message"]


def test_going_live_tells_each_stale_version_in_the_same_transaction(
        uow: FakeUnitOfWork, evaluator: FakeEvaluator) -> None:
    active_v1(uow, evaluator)
    propose(uow, evaluator, "dev", limit=200)
    propose(uow, evaluator, "biz", limit=300)
    sign(uow, 3, "appr")
    sign(uow, 2, "biz")
    before = len(uow.store.outbox)
    sign(uow, 2, "appr")
    assert statuses(uow) == {1: "superseded", 2: "active", 3: "stale"}
    told = [(t, data["version"], data["details"])
            for t, _, _, data in uow.store.outbox[before:] if t == "version.stale"]
    assert told == [("version.stale", 3, {"base_version": 1, "active_version": 2})]
    stale = [e for e in gov.list_audit_events(uow, NAME) if e.action == "stale"]
    assert [(e.version, e.actor) for e in stale] == [(3, "appr")]


def test_a_signoff_completing_a_version_whose_base_moved_marks_it_stale_and_fails(
        uow: FakeUnitOfWork, evaluator: FakeEvaluator, clock: FakeClock) -> None:
    active_v1(uow, evaluator)
    propose(uow, evaluator, "dev", limit=200)
    propose(uow, evaluator, "biz", limit=300, effective_at=clock.now + timedelta(days=1))
    sign(uow, 3, "biz-backup")
    sign(uow, 3, "appr")  # approved, scheduled for tomorrow
    propose(uow, evaluator, "dev", limit=400)
    sign(uow, 2, "biz")
    sign(uow, 2, "appr")
    assert statuses(uow)[3] == "stale"
    assert statuses(uow)[4] == "stale"


def test_signing_a_stale_version_is_refused(uow: FakeUnitOfWork,
                                            evaluator: FakeEvaluator) -> None:
    active_v1(uow, evaluator)
    propose(uow, evaluator, "dev", limit=200)
    propose(uow, evaluator, "biz", limit=300)
    sign(uow, 2, "biz")
    sign(uow, 2, "appr")
    with pytest.raises(Conflict) as refused:
        sign(uow, 3, "appr")
    assert refused.value.code == "stale"


# --------------------------------------------------------------------------- schedule


def test_a_scheduled_version_activates_on_the_first_call_after_its_time(
        uow: FakeUnitOfWork, evaluator: FakeEvaluator, clock: FakeClock) -> None:
    active_v1(uow, evaluator)
    propose(uow, evaluator, "dev", limit=200, effective_at=clock.now + timedelta(hours=2))
    sign(uow, 2, "biz")
    assert sign(uow, 2, "appr").status == "approved"
    assert gov.list_rulesets(uow)[0].scheduled_versions[0].version == 2
    clock.now += timedelta(hours=2)
    assert gov.get_version(uow, NAME, 2).status == "active"
    last = gov.list_audit_events(uow, NAME)[-1]
    assert (last.action, last.actor) == ("activated", "system")
    assert gov.activate_due(uow) == []  # idempotent


def test_a_due_version_whose_base_moved_goes_stale_instead(
        uow: FakeUnitOfWork, evaluator: FakeEvaluator, clock: FakeClock) -> None:
    active_v1(uow, evaluator)
    propose(uow, evaluator, "dev", limit=200, effective_at=clock.now + timedelta(hours=2))
    sign(uow, 2, "biz")
    sign(uow, 2, "appr")
    propose(uow, evaluator, "dev", limit=300)
    sign(uow, 3, "biz")
    sign(uow, 3, "appr")
    clock.now += timedelta(hours=3)
    assert statuses(uow) == {1: "superseded", 2: "stale", 3: "active"}


# --------------------------------------------------------------------------- withdraw


def test_only_the_author_withdraws_an_open_version(uow: FakeUnitOfWork,
                                                   evaluator: FakeEvaluator) -> None:
    active_v1(uow, evaluator)
    propose(uow, evaluator, "dev", limit=200)
    with pytest.raises(Forbidden, match="only the author"):
        gov.withdraw_version(uow, NAME, 2, actor="biz")
    view = gov.withdraw_version(uow, NAME, 2, comment="oops", actor="dev")
    assert view.status == "withdrawn"
    with pytest.raises(Conflict) as again:
        gov.withdraw_version(uow, NAME, 2, actor="dev")
    assert again.value.code == "not_pending"
    with pytest.raises(Conflict):
        gov.withdraw_version(uow, NAME, 1, actor="root")  # active: too late


# --------------------------------------------------------------------------- rollback


def two_active(uow: FakeUnitOfWork, evaluator: FakeEvaluator) -> None:
    active_v1(uow, evaluator)
    propose(uow, evaluator, "dev", limit=200)
    sign(uow, 2, "biz")
    sign(uow, 2, "appr")


@pytest.mark.parametrize("who", ["ops", "ops-backup", "biz", "root"])
def test_rollback_restores_a_once_active_version(uow: FakeUnitOfWork,
                                                 evaluator: FakeEvaluator, who: str) -> None:
    two_active(uow, evaluator)
    result = gov.rollback(uow, NAME, to_version=1, reason=" bad limit ", actor=who)
    assert (result.active_version, result.previous_version) == (1, 2)
    assert statuses(uow) == {1: "active", 2: "superseded"}
    last = gov.list_audit_events(uow, NAME)[-1]
    assert (last.action, last.comment, last.details) == (
        "rolled_back", "bad limit",
        {"previous_version": 2, "from_version": 2, "to_version": 1})


@pytest.mark.parametrize("who", ["dev", "appr", "stranger", "bot"])
def test_others_cannot_roll_back_even_to_an_unknown_version(
        uow: FakeUnitOfWork, evaluator: FakeEvaluator, who: str) -> None:
    two_active(uow, evaluator)
    with pytest.raises(Forbidden):
        gov.rollback(uow, NAME, to_version=99, reason="r", actor=who)


def test_rollback_only_to_a_superseded_version_and_with_a_reason(
        uow: FakeUnitOfWork, evaluator: FakeEvaluator) -> None:
    two_active(uow, evaluator)
    propose(uow, evaluator, "dev", limit=300)
    for target, code in ((2, "already_active"), (3, "not_rollback_target")):
        with pytest.raises(Conflict) as refused:
            gov.rollback(uow, NAME, to_version=target, reason="r", actor="ops")
        assert refused.value.code == code
    with pytest.raises(NotFound):
        gov.rollback(uow, NAME, to_version=9, reason="r", actor="ops")
    with pytest.raises(RequestInvalid):
        gov.rollback(uow, NAME, to_version=1, reason=" ", actor="ops")


def test_rollback_makes_open_versions_stale(uow: FakeUnitOfWork,
                                            evaluator: FakeEvaluator) -> None:
    two_active(uow, evaluator)
    propose(uow, evaluator, "dev", limit=300)
    gov.rollback(uow, NAME, to_version=1, reason="r", actor="ops")
    assert statuses(uow) == {1: "active", 2: "superseded", 3: "stale"}


# --------------------------------------------------------------------------- transactions


def test_a_refused_transition_changes_nothing(uow: FakeUnitOfWork,
                                              evaluator: FakeEvaluator) -> None:
    propose(uow, evaluator, "root")
    before = (dict(uow.store.versions), list(uow.store.audit), list(uow.store.outbox))
    with pytest.raises(Forbidden):
        sign(uow, 1, "root")
    assert (dict(uow.store.versions), list(uow.store.audit), list(uow.store.outbox)) == before


def test_every_event_is_audited_and_told_except_superseded(uow: FakeUnitOfWork,
                                                            evaluator: FakeEvaluator) -> None:
    two_active(uow, evaluator)
    audited = [e.action.value for _, e in uow.store.audit]
    told = [t for t, *_ in uow.store.outbox]
    assert "superseded" in audited
    assert told == [f"version.{a}" for a in audited if a != "superseded"]
