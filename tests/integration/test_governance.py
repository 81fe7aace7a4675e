"""The version lifecycle and authority table on a real database (SQLite or PostgreSQL)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from rules_service.adapters.orm import VersionRow
from rules_service.bootstrap import Container
from rules_service.domain.errors import (
    Conflict,
    Forbidden,
    NotFound,
    RequestInvalid,
    RulesetInvalid,
    Unauthenticated,
)
from rules_service.services import governance as gov
from rules_service.services import runbook as runbooks
from rules_service.services.views import VersionView
from tests.integration.conftest import FakeClock, definition

pytestmark = pytest.mark.usefixtures("people")

NAME = "refunds"


def propose(c: Container, actor: str, limit: int = 100, **kw: Any) -> VersionView:
    changes = kw.pop("changes", {})
    return gov.propose_version(c.uow(), c.evaluator, NAME, definition=definition(limit, **changes),
                               actor=actor, **kw)


def approve_all(c: Container, number: int, signers: tuple[str, ...] = ("biz", "appr")
                ) -> VersionView:
    view = None
    for who in signers:
        view = gov.sign_off(c.uow(), NAME, number, decision="approve", comment="ok", actor=who)
    assert view is not None
    return view


def active_v1(c: Container) -> VersionView:
    """A ruleset whose version 1 is active."""
    propose(c, "root")
    return approve_all(c, 1)


def actions(c: Container) -> list[tuple[int | None, str, str]]:
    return [(e.version, e.action, e.actor) for e in gov.list_audit_events(c.uow(), NAME)]


# --------------------------------------------------------------------------- propose


def test_admin_proposes_first_version_as_pending_without_base(container: Container) -> None:
    view = propose(container, "root", note="first")
    assert (view.version, view.status, view.base_version, view.author, view.note) == \
        (1, "pending", None, "root", "first")
    assert view.required_signoffs == ("business_owner", "approver")
    assert actions(container) == [(1, "proposed", "root")]


@pytest.mark.parametrize("who", ["dev", "biz", "stranger"])
def test_only_an_admin_proposes_a_first_version(container: Container, who: str) -> None:
    with pytest.raises(Forbidden, match="only an admin"):
        propose(container, who)
    with pytest.raises(NotFound):
        gov.get_ruleset(container.uow(), NAME)


@pytest.mark.parametrize("who", ["dev", "dev-backup", "biz", "biz-backup", "root"])
def test_maintainers_business_owners_and_admins_propose_later_versions(
        container: Container, who: str) -> None:
    active_v1(container)
    view = propose(container, who, limit=200)
    assert (view.version, view.status, view.base_version, view.author) == (2, "pending", 1, who)


@pytest.mark.parametrize("who", ["ops", "ops-backup", "appr", "appr-backup", "stranger", "bot"])
def test_other_principals_cannot_propose(container: Container, who: str) -> None:
    active_v1(container)
    with pytest.raises(Forbidden):
        propose(container, who, limit=200)
    assert [v.version for v in gov.list_versions(container.uow(), NAME)] == [1]


def test_unknown_or_revoked_actor_is_unauthenticated(container: Container) -> None:
    from rules_service.services import principals
    with pytest.raises(Unauthenticated):
        propose(container, "nobody")
    principals.revoke_principal(container.uow(), "root")
    with pytest.raises(Unauthenticated):
        propose(container, "root")


def test_authority_comes_from_the_active_version_not_the_proposal(container: Container) -> None:
    active_v1(container)
    owners = definition()["owners"]
    owners["maintainer"] = {"primary": "stranger", "backup": "dev-backup"}
    v2 = propose(container, "dev", limit=200, changes={"owners": owners})
    # Not active yet: stranger is no maintainer, dev still is.
    with pytest.raises(Forbidden):
        propose(container, "stranger", limit=300, changes={"owners": owners})
    approve_all(container, v2.version)
    propose(container, "stranger", limit=300, changes={"owners": owners})
    with pytest.raises(Forbidden):
        propose(container, "dev", limit=400, changes={"owners": owners})


def test_identical_to_active_is_409(container: Container) -> None:
    active_v1(container)
    with pytest.raises(Conflict) as info:
        propose(container, "dev")
    assert info.value.code == "identical_to_active"


def test_duplicate_of_a_pending_version_is_409(container: Container) -> None:
    active_v1(container)
    propose(container, "dev", limit=200)
    with pytest.raises(Conflict) as info:
        propose(container, "biz", limit=200)
    assert info.value.code == "identical_to_pending"


def test_failing_embedded_test_blocks_the_version(container: Container) -> None:
    tests = [{"name": "tiny refund is approved", "input": {"amount": 1},
              "expect": {"outcome": "reject"}}]
    with pytest.raises(RulesetInvalid) as info:
        propose(container, "root", changes={"tests": tests})
    assert [p.place for p in info.value.problems] == ["tests[0]"]
    assert "expected outcome reject, got approve" in info.value.problems[0].message
    assert gov.list_rulesets(container.uow()) == []


def test_invalid_content_lists_every_problem_and_stores_nothing(container: Container) -> None:
    bad = definition()
    bad["rules"][0]["when"] = "amount > "
    bad["default"] = "maybe"
    with pytest.raises(RulesetInvalid) as info:
        gov.propose_version(container.uow(), container.evaluator, NAME,
                            content=json.dumps(bad), actor="root")
    places = {p.place for p in info.value.problems}
    assert {"rules[0].when", "default"} <= places
    assert gov.list_rulesets(container.uow()) == []


def test_content_naming_another_ruleset_is_refused(container: Container) -> None:
    with pytest.raises(RulesetInvalid) as info:
        gov.propose_version(container.uow(), container.evaluator, "other-name",
                            definition=definition(), actor="root")
    assert info.value.problems[0].place == "name"


def test_content_and_definition_are_exclusive(container: Container) -> None:
    with pytest.raises(RequestInvalid):
        gov.propose_version(container.uow(), container.evaluator, NAME, actor="root")


def test_yaml_content_is_stored_verbatim(container: Container) -> None:
    import yaml
    text_in = "# a comment kept as written\n" + yaml.safe_dump(definition(), sort_keys=False)
    gov.propose_version(container.uow(), container.evaluator, NAME, content=text_in,
                        actor="root")
    assert gov.get_version(container.uow(), NAME, 1).content == text_in


# --------------------------------------------------------------------------- sign-off


def test_every_signoff_role_approving_activates_the_version(container: Container) -> None:
    propose(container, "root")
    half = gov.sign_off(container.uow(), NAME, 1, decision="approve", actor="biz")
    assert half.status == "pending" and half.missing_signoffs == ("approver",)
    done = gov.sign_off(container.uow(), NAME, 1, decision="approve", actor="appr-backup")
    assert done.status == "active"
    assert [(s.role, s.principal, s.decision) for s in done.signoffs] == [
        ("business_owner", "biz", "approve"), ("approver", "appr-backup", "approve")]
    assert gov.list_rulesets(container.uow())[0].active_version == 1
    assert actions(container) == [
        (1, "proposed", "root"), (1, "signed_off", "biz"), (1, "signed_off", "appr-backup"),
        (1, "approved", "appr-backup"), (1, "activated", "appr-backup")]


def test_any_required_role_rejecting_rejects(container: Container) -> None:
    propose(container, "root")
    gov.sign_off(container.uow(), NAME, 1, decision="approve", actor="biz")
    view = gov.sign_off(container.uow(), NAME, 1, decision="reject", comment="no",
                        actor="appr")
    assert view.status == "rejected"
    with pytest.raises(Conflict) as info:
        gov.sign_off(container.uow(), NAME, 1, decision="approve", actor="appr-backup")
    assert info.value.code == "not_pending"
    assert actions(container)[-1] == (1, "rejected", "appr")


def test_author_cannot_sign_off_own_version(container: Container) -> None:
    active_v1(container)
    propose(container, "biz", limit=200)
    with pytest.raises(Forbidden, match="author"):
        gov.sign_off(container.uow(), NAME, 2, decision="approve", actor="biz")


@pytest.mark.parametrize("who", ["dev", "ops", "stranger", "root"])
def test_non_holders_of_signoff_roles_cannot_sign_off(container: Container, who: str) -> None:
    propose(container, "root")
    with pytest.raises(Forbidden):
        gov.sign_off(container.uow(), NAME, 1, decision="approve", actor=who)


def test_automation_cannot_sign_off_even_when_named(container: Container) -> None:
    owners = definition()["owners"]
    owners["approver"] = {"primary": "bot", "backup": "appr-backup"}
    gov.propose_version(container.uow(), container.evaluator, NAME,
                        definition=definition(owners=owners), actor="root")
    with pytest.raises(Forbidden, match="automation"):
        gov.sign_off(container.uow(), NAME, 1, decision="approve", actor="bot")


def test_one_person_fills_one_role(container: Container) -> None:
    owners = definition()["owners"]
    owners["approver"] = {"primary": "biz", "backup": "appr-backup"}
    gov.propose_version(container.uow(), container.evaluator, NAME,
                        definition=definition(owners=owners), actor="root")
    first = gov.sign_off(container.uow(), NAME, 1, decision="approve", actor="biz")
    assert [s.role for s in first.signoffs] == ["business_owner"]
    with pytest.raises(Conflict) as info:
        gov.sign_off(container.uow(), NAME, 1, decision="approve", actor="biz")
    assert info.value.code == "already_signed_off"
    assert gov.sign_off(container.uow(), NAME, 1, decision="approve",
                        actor="appr-backup").status == "active"


def test_a_signer_may_choose_the_role_to_fill(container: Container) -> None:
    owners = definition()["owners"]
    owners["approver"] = {"primary": "biz", "backup": "appr-backup"}
    gov.propose_version(container.uow(), container.evaluator, NAME,
                        definition=definition(owners=owners), actor="root")
    view = gov.sign_off(container.uow(), NAME, 1, decision="approve", role="approver",
                        actor="biz")
    assert [s.role for s in view.signoffs] == ["approver"]


def test_a_filled_role_cannot_be_signed_twice(container: Container) -> None:
    propose(container, "root")
    gov.sign_off(container.uow(), NAME, 1, decision="approve", actor="biz")
    with pytest.raises(Conflict) as info:
        gov.sign_off(container.uow(), NAME, 1, decision="approve", actor="biz-backup")
    assert info.value.code == "role_already_signed_off"


def test_signoff_roles_come_from_the_base_version(container: Container) -> None:
    active_v1(container)
    # Version 2 tries to drop the approver's sign-off; version 1's rules still govern it.
    propose(container, "dev", limit=200, changes={"signoff": ["business_owner"]})
    view = gov.sign_off(container.uow(), NAME, 2, decision="approve", actor="biz")
    assert view.status == "pending" and view.missing_signoffs == ("approver",)


def test_bad_decision_word_is_refused(container: Container) -> None:
    propose(container, "root")
    with pytest.raises(RequestInvalid):
        gov.sign_off(container.uow(), NAME, 1, decision="maybe", actor="biz")


def test_unknown_ruleset_or_version_is_not_found(container: Container) -> None:
    with pytest.raises(NotFound):
        gov.sign_off(container.uow(), "nope", 1, decision="approve", actor="biz")
    propose(container, "root")
    with pytest.raises(NotFound):
        gov.sign_off(container.uow(), NAME, 9, decision="approve", actor="biz")
    with pytest.raises(NotFound):
        gov.get_version(container.uow(), NAME, 9)


# --------------------------------------------------------------------------- supersede, stale


def test_new_active_version_supersedes_the_old_one(container: Container) -> None:
    active_v1(container)
    propose(container, "dev", limit=200)
    approve_all(container, 2)
    statuses = {v.version: v.status for v in gov.list_versions(container.uow(), NAME)}
    assert statuses == {1: "superseded", 2: "active"}
    assert (1, "superseded", "appr") in actions(container)


def test_version_based_on_a_replaced_active_version_goes_stale(container: Container) -> None:
    active_v1(container)
    propose(container, "dev", limit=200)
    propose(container, "biz", limit=300)
    approve_all(container, 2, ("biz", "appr"))
    v3 = gov.get_version(container.uow(), NAME, 3)
    assert (v3.status, v3.base_version) == ("stale", 1)
    with pytest.raises(Conflict) as info:
        gov.sign_off(container.uow(), NAME, 3, decision="approve", actor="appr")
    assert info.value.code == "stale"
    assert (3, "stale", "appr") in actions(container)
    # The author re-proposes on top of the new active version.
    v4 = propose(container, "biz", limit=300)
    assert (v4.version, v4.base_version) == (4, 2)


def test_activation_refuses_a_version_whose_base_moved(container: Container) -> None:
    active_v1(container)
    propose(container, "dev", limit=200)
    # Make version 2 look as if it were based on a version that is no longer active.
    with container.engine.begin() as conn:
        conn.execute(text("UPDATE ruleset_versions SET base_version = 99 WHERE number = 2"))
    gov.sign_off(container.uow(), NAME, 2, decision="approve", actor="biz")
    with pytest.raises(Conflict) as info:
        gov.sign_off(container.uow(), NAME, 2, decision="approve", actor="appr")
    assert info.value.code == "stale"
    assert gov.get_version(container.uow(), NAME, 2).status == "stale"
    assert gov.list_rulesets(container.uow())[0].active_version == 1
    assert actions(container)[-2:] == [(2, "signed_off", "appr"), (2, "stale", "appr")]


# --------------------------------------------------------------------------- withdraw


def test_author_withdraws_a_pending_version(container: Container) -> None:
    active_v1(container)
    propose(container, "dev", limit=200)
    with pytest.raises(Forbidden, match="only the author"):
        gov.withdraw_version(container.uow(), NAME, 2, actor="biz")
    view = gov.withdraw_version(container.uow(), NAME, 2, comment="oops", actor="dev")
    assert view.status == "withdrawn"
    with pytest.raises(Conflict) as info:
        gov.sign_off(container.uow(), NAME, 2, decision="approve", actor="biz")
    assert info.value.code == "not_pending"
    with pytest.raises(Conflict):
        gov.withdraw_version(container.uow(), NAME, 1, actor="root")
    assert actions(container)[-1] == (2, "withdrawn", "dev")


# --------------------------------------------------------------------------- schedule


def test_scheduled_version_activates_on_the_first_read_after_its_time(
        container: Container, clock: FakeClock) -> None:
    active_v1(container)
    propose(container, "dev", limit=200, effective_at=clock.now + timedelta(hours=1))
    view = approve_all(container, 2)
    assert view.status == "approved"
    summary = gov.list_rulesets(container.uow())[0]
    assert summary.active_version == 1
    assert [s.version for s in summary.scheduled_versions] == [2]
    clock.advance(timedelta(minutes=61))
    assert gov.get_ruleset(container.uow(), NAME).summary.active_version == 2
    assert gov.load_version(container.uow(), NAME).version == 2
    assert gov.activate_due(container.uow()) == []
    tail = actions(container)[-2:]
    assert tail == [(1, "superseded", "system"), (2, "activated", "system")]


def test_scheduled_version_goes_stale_when_another_activates_first(
        container: Container, clock: FakeClock) -> None:
    active_v1(container)
    propose(container, "dev", limit=200, effective_at=clock.now + timedelta(hours=1))
    approve_all(container, 2)
    propose(container, "dev", limit=300)
    approve_all(container, 3)
    assert gov.get_version(container.uow(), NAME, 2).status == "stale"
    clock.advance(timedelta(hours=2))
    assert gov.load_version(container.uow(), NAME).version == 3


def test_activate_due_is_idempotent(container: Container, clock: FakeClock) -> None:
    active_v1(container)
    propose(container, "dev", limit=200, effective_at=clock.now + timedelta(hours=1))
    approve_all(container, 2)
    clock.advance(timedelta(hours=1))
    assert gov.activate_due(container.uow()) == [(NAME, 2)]
    assert gov.activate_due(container.uow()) == []
    assert [a for a in actions(container) if a[1] == "activated"] == [
        (1, "activated", "appr"), (2, "activated", "system")]


def test_author_may_withdraw_a_scheduled_version(container: Container,
                                                  clock: FakeClock) -> None:
    active_v1(container)
    propose(container, "dev", limit=200, effective_at=clock.now + timedelta(hours=1))
    approve_all(container, 2)
    gov.withdraw_version(container.uow(), NAME, 2, actor="dev")
    clock.advance(timedelta(hours=2))
    assert gov.load_version(container.uow(), NAME).version == 1


# --------------------------------------------------------------------------- rollback


def two_active_versions(c: Container) -> None:
    active_v1(c)
    propose(c, "dev", limit=200)
    approve_all(c, 2)


@pytest.mark.parametrize("who", ["ops", "ops-backup", "biz", "biz-backup", "root"])
def test_rollback_restores_a_once_active_version(container: Container, who: str) -> None:
    two_active_versions(container)
    result = gov.rollback(container.uow(), NAME, to_version=1, reason="bad numbers", actor=who)
    assert (result.active_version, result.previous_version) == (1, 2)
    statuses = {v.version: v.status for v in gov.list_versions(container.uow(), NAME)}
    assert statuses == {1: "active", 2: "superseded"}
    event = gov.list_audit_events(container.uow(), NAME)[-1]
    assert (event.version, event.action, event.actor, event.comment) == \
        (1, "rolled_back", who, "bad numbers")
    assert event.details["from_version"] == 2


@pytest.mark.parametrize("who", ["dev", "appr", "stranger", "bot"])
def test_others_cannot_roll_back(container: Container, who: str) -> None:
    two_active_versions(container)
    with pytest.raises(Forbidden):
        gov.rollback(container.uow(), NAME, to_version=1, reason="x", actor=who)
    assert gov.load_version(container.uow(), NAME).version == 2


def test_rollback_only_to_a_superseded_version(container: Container) -> None:
    two_active_versions(container)
    propose(container, "dev", limit=300)
    with pytest.raises(Conflict) as info:
        gov.rollback(container.uow(), NAME, to_version=3, reason="x", actor="ops")
    assert info.value.code == "not_rollback_target"
    with pytest.raises(Conflict) as info:
        gov.rollback(container.uow(), NAME, to_version=2, reason="x", actor="ops")
    assert info.value.code == "already_active"
    with pytest.raises(NotFound):
        gov.rollback(container.uow(), NAME, to_version=7, reason="x", actor="ops")
    with pytest.raises(RequestInvalid):
        gov.rollback(container.uow(), NAME, to_version=1, reason=" ", actor="ops")


def test_rollback_makes_open_versions_stale_and_can_roll_forward(container: Container) -> None:
    two_active_versions(container)
    propose(container, "dev", limit=300)
    gov.rollback(container.uow(), NAME, to_version=1, reason="x", actor="ops")
    assert gov.get_version(container.uow(), NAME, 3).status == "stale"
    gov.rollback(container.uow(), NAME, to_version=2, reason="fixed", actor="ops")
    assert gov.load_version(container.uow(), NAME).version == 2


# --------------------------------------------------------------------------- audit, reads


def test_every_transition_has_its_audit_event(container: Container, clock: FakeClock) -> None:
    active_v1(container)                                            # 1 active
    propose(container, "dev", limit=200)                            # 2 pending
    gov.withdraw_version(container.uow(), NAME, 2, actor="dev")     # 2 withdrawn
    propose(container, "dev", limit=300)                            # 3 pending
    gov.sign_off(container.uow(), NAME, 3, decision="reject", actor="appr")  # 3 rejected
    propose(container, "dev", limit=400)                            # 4 pending
    propose(container, "biz", limit=500)                            # 5 pending
    approve_all(container, 4, ("biz", "appr"))                      # 4 active, 5 stale
    gov.rollback(container.uow(), NAME, to_version=1, reason="r", actor="ops")
    assert [(v, a) for v, a, _ in actions(container)] == [
        (1, "proposed"), (1, "signed_off"), (1, "signed_off"), (1, "approved"),
        (1, "activated"),
        (2, "proposed"), (2, "withdrawn"),
        (3, "proposed"), (3, "signed_off"), (3, "rejected"),
        (4, "proposed"), (5, "proposed"),
        (4, "signed_off"), (4, "signed_off"), (4, "approved"),
        (1, "superseded"), (4, "activated"), (5, "stale"),
        (4, "superseded"), (1, "rolled_back"),
    ]
    statuses = {v.version: v.status for v in gov.list_versions(container.uow(), NAME)}
    assert statuses == {1: "active", 2: "withdrawn", 3: "rejected", 4: "superseded",
                        5: "stale"}


def test_reads_describe_rulesets_versions_and_runbook(container: Container) -> None:
    active_v1(container)
    propose(container, "dev", limit=200, note="raise the limit")
    [summary] = gov.list_rulesets(container.uow())
    assert summary.to_dict()["pending_versions"] == [2]
    assert (summary.name, summary.title, summary.active_version, summary.latest_version) == \
        (NAME, "Refunds", 1, 2)
    detail = gov.get_ruleset(container.uow(), NAME).to_dict()
    assert detail["owners"]["approver"] == {"primary": "appr", "backup": "appr-backup"}
    assert detail["signoff"] == ["business_owner", "approver"]
    assert [v["version"] for v in detail["versions"]] == [1, 2]
    v2 = gov.get_version(container.uow(), NAME, 2).to_dict()
    assert v2["note"] == "raise the limit" and v2["base_version"] == 1
    assert v2["required_signoffs"] == ["business_owner", "approver"]
    assert json.loads(v2["content"])["thresholds"]["limit"] == 200
    runbook = runbooks.get_runbook(container.uow(), NAME)
    assert (runbook.version, runbook.response_time_target) == (1, "4h")
    assert runbook.runbook["purpose"] == "Refund quickly."


def test_no_active_version_is_a_conflict_for_evaluation(container: Container) -> None:
    propose(container, "root")
    with pytest.raises(Conflict) as info:
        gov.load_version(container.uow(), NAME)
    assert info.value.code == "no_active_version"
    assert gov.load_version(container.uow(), NAME, 1).status == "pending"


def test_database_refuses_two_active_versions(container: Container) -> None:
    two_active_versions(container)
    with container.session_factory() as session, pytest.raises(IntegrityError):
        row = session.scalars(select(VersionRow).where(VersionRow.number == 1)).one()
        row.status = "active"
        session.commit()
